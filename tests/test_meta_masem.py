"""MASEM stage 1 against lavaan 0.6-14 and metafor 3.8, and against simulated truth.

References: tests/data/masem/masem_references.json (make_references.R) on
metadat::dat.craft2003 (10 samples, 4 variables, two samples with missing correlations; the
fixed-effects model uses the 8 complete ones) and on six simulated WAI-SR samples
(wai_correlations.json, make_data.py).

Tolerances. Fixed effects: lavaan's nlminb stops about 1e-6 from the optimum that Fisher
scoring reaches here (1e-10), so pooled correlations are checked to 5e-6, their asymptotic
covariances to 1e-8 (absolute; they are about 1e-3), the chi-square and the fit measures to
1e-6 relative. Random effects on the craft data: metafor's optimum and ours agree to 1e-8 in
tau2 and the pooled correlations (checked to 1e-7). On the 66 correlations of the WAI samples
metafor's nlminb stops early (its log-likelihood is 1.1e-3 below ours), so there our
log-likelihood must be at least metafor's and the estimates are checked to the distance that
gap allows (2e-4; tau2 5e-5).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alliance.meta.masem import (
    acov_correlations,
    compare_stage2,
    correlation_matrix,
    fit_stage2,
    masem,
    pool_fixed,
    pool_random,
    unvechs,
    vechs,
)
from alliance.sem.syntax import builtin_models

DATA = Path(__file__).parent / "data" / "masem"
NESTED = (("one_factor", "two_factor"), ("two_factor", "correlated"), ("one_factor", "correlated"))


def load(name: str) -> tuple[list[str], list[np.ndarray], list[int], list[str]]:
    doc = json.loads((DATA / name).read_text())
    mats = [
        np.array([[np.nan if v is None else v for v in row] for row in s["R"]], dtype=float)
        for s in doc["studies"]
    ]
    return (
        doc["variables"],
        mats,
        [s["n"] for s in doc["studies"]],
        [s["study"] for s in doc["studies"]],
    )


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((DATA / "masem_references.json").read_text())


@pytest.fixture(scope="module")
def craft() -> tuple[list[str], list[np.ndarray], list[int], list[str]]:
    return load("craft2003.json")


@pytest.fixture(scope="module")
def wai() -> tuple[list[str], list[np.ndarray], list[int], list[str]]:
    return load("wai_correlations.json")


@pytest.fixture(scope="module")
def wai_fixed(wai) -> dict:
    variables, mats, n, studies = wai
    return pool_fixed(mats, n, variables, studies)


def check_fixed(ours: dict, theirs: dict) -> None:
    assert ours["converged"]
    assert vechs(ours["pooled"]) == pytest.approx(theirs["estimate"], abs=5e-6)
    assert np.asarray(ours["acov"]) == pytest.approx(np.array(theirs["acov"]), abs=1e-8)
    assert [c["se"] for c in ours["correlations"]] == pytest.approx(theirs["se"], rel=1e-5)
    assert ours["ntotal"] == theirs["ntotal"]
    for key, value in theirs["fit"].items():
        if key in ("df", "baseline.df"):
            assert ours["fit"][key] == value
        elif key == "pvalue" and value < 1e-15:  # lavaan prints 0 below double precision
            assert ours["fit"][key] < 1e-15
        else:
            assert ours["fit"][key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


def test_acov_of_one_sample_matches_lavaan_and_metafor(craft, ref):
    _, mats, _, _ = craft
    single = ref["craft"]["single_sample"]
    # lavaan: the inverse expected information with N; metafor's rcalc divides by N - 1
    assert acov_correlations(mats[0], single["n"]) == pytest.approx(
        np.array(single["lavaan_acov"]), abs=1e-10
    )
    assert acov_correlations(mats[0], single["n"] - 1) == pytest.approx(
        np.array(single["rcalc_V"]), abs=1e-14
    )


def test_fixed_effects_match_lavaan_multigroup_equal_correlations(craft, ref):
    variables, mats, n, studies = craft
    keep = [i for i, m in enumerate(mats) if not np.isnan(m).any()]
    assert [studies[i] for i in keep] == ref["craft"]["fixed"]["studies"]
    ours = pool_fixed([mats[i] for i in keep], [n[i] for i in keep], variables)
    check_fixed(ours, ref["craft"]["fixed"])


def test_fixed_effects_twelve_items_match_lavaan(wai_fixed, ref):
    check_fixed(wai_fixed, ref["wai"]["fixed"])


@pytest.mark.parametrize(
    ("acov", "key"), [("weighted", "random_weighted"), ("individual", "random_individual")]
)
def test_random_effects_match_metafor_rma_mv(craft, ref, acov, key):
    variables, mats, n, studies = craft
    ours = pool_random(mats, n, variables, studies, acov=acov)
    theirs = ref["craft"][key]
    assert ours["converged"]
    assert vechs(ours["pooled"]) == pytest.approx(theirs["estimate"], abs=1e-7)
    assert np.asarray(ours["acov"]) == pytest.approx(np.array(theirs["acov"]), abs=1e-9)
    assert ours["heterogeneity"]["tau2"] == pytest.approx(theirs["tau2"], abs=1e-7)
    assert ours["heterogeneity"]["Q"] == pytest.approx(theirs["QE"], rel=1e-10)
    assert ours["heterogeneity"]["Q.df"] == theirs["QEdf"]
    assert ours["loglik"] == pytest.approx(theirs["loglik"], abs=1e-7)


def test_random_effects_twelve_items_at_least_metafor_optimum(wai, ref):
    variables, mats, n, studies = wai
    ours = pool_random(mats, n, variables, studies)
    theirs = ref["wai"]["random_weighted"]
    assert ours["converged"]
    assert ours["loglik"] >= theirs["loglik"] - 1e-9
    assert ours["loglik"] == pytest.approx(theirs["loglik"], abs=2e-3)
    assert vechs(ours["pooled"]) == pytest.approx(theirs["estimate"], abs=2e-4)
    assert ours["heterogeneity"]["tau2"] == pytest.approx(theirs["tau2"], abs=5e-5)
    assert ours["heterogeneity"]["Q"] == pytest.approx(theirs["QE"], rel=1e-10)


@pytest.mark.slow
def test_random_effects_recover_simulated_truth(rng):
    """200 meta-analyses of 30 samples from r_g ~ N(rho, V_g + T): bias, tau2 and coverage."""
    variables = ["a", "b", "c", "d"]
    rho = unvechs(np.array([0.5, 0.3, 0.2, 0.4, 0.3, 0.1]), 4)
    tau2 = np.array([0.010, 0.0, 0.005, 0.020, 0.0, 0.010])
    est, tau_hat, cover = [], [], []
    for _ in range(200):
        mats, sizes = [], []
        while len(mats) < 30:
            n = int(rng.integers(60, 400))
            v = acov_correlations(rho, n)
            r = rng.multivariate_normal(vechs(rho), v + np.diag(tau2))
            m = unvechs(r, 4)
            if np.min(np.linalg.eigvalsh(m)) > 0:
                mats.append(m)
                sizes.append(n)
        fit = pool_random(mats, sizes, variables)
        assert fit["converged"]
        mu = vechs(fit["pooled"])
        se = np.sqrt(np.diag(fit["acov"]))
        est.append(mu)
        tau_hat.append(fit["heterogeneity"]["tau2"])
        cover.append(np.abs(mu - vechs(rho)) <= 1.96 * se)
    est, tau_hat, cover = np.array(est), np.array(tau_hat), np.array(cover)
    mc_se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    # the sampling covariances come from the mean matrix, not the truth: small bias only
    assert np.all(np.abs(est.mean(axis=0) - vechs(rho)) < 4 * mc_se + 0.005)
    # ML tau2 is biased downwards by about (k - 1) / k; the mean is near the truth
    assert tau_hat.mean(axis=0) == pytest.approx(tau2, abs=0.003)
    assert 0.90 <= cover.mean() <= 0.97


def test_fixed_effects_recover_truth_with_a_variable_not_measured(rng):
    variables = ["a", "b", "c", "d"]
    rho = unvechs(np.array([0.5, 0.3, 0.2, 0.4, 0.3, 0.1]), 4)
    sizes = [400, 300, 500, 250]
    mats = []
    for g, n in enumerate(sizes):
        sd = np.array([1.0, 2.0, 0.5, 3.0]) * (g + 1)
        x = rng.multivariate_normal(np.zeros(4), rho * np.outer(sd, sd), size=n)
        m = np.cov(x, rowvar=False)
        if g == 1:  # sample 2 did not measure d
            m[3, :] = m[:, 3] = np.nan
        mats.append(m)
    fit = pool_fixed(mats, sizes, variables)
    assert fit["converged"]
    est = vechs(fit["pooled"])
    se = np.array([c["se"] for c in fit["correlations"]])
    assert np.all(np.abs(est - vechs(rho)) < 3.5 * se)
    # homogeneous samples: statistics 3 x 6 + 3 = 21, 6 pooled correlations
    assert fit["fit"]["df"] == 15
    assert fit["samples"][1]["n_variables"] == 3


def test_fixed_effects_equal_the_one_matrix_when_all_agree():
    cor = unvechs(np.array([0.5, 0.3, 0.2]), 3)
    fit = pool_fixed([cor, cor, cor], [100, 200, 300], ["a", "b", "c"])
    assert vechs(fit["pooled"]) == pytest.approx(vechs(cor), abs=1e-10)
    assert fit["fit"]["chisq"] == pytest.approx(0.0, abs=1e-8)
    # the pooled matrix is as precise as one sample of the total size
    assert fit["acov"] == pytest.approx(acov_correlations(cor, 600), abs=1e-12)


def test_bad_input_is_named():
    cor = unvechs(np.array([0.5, 0.3, 0.2]), 3)
    with pytest.raises(ValueError, match="at least two correlation matrices"):
        pool_fixed([cor], [100], ["a", "b", "c"])
    with pytest.raises(ValueError, match="sample 'x': n must be a whole number above"):
        pool_fixed([cor, cor], [3, 100], ["a", "b", "c"], studies=["x", "y"])
    bad = cor.copy()
    bad[0, 1] = 0.9
    with pytest.raises(ValueError, match="sample '1': the matrix is not symmetric"):
        pool_random([bad, cor], [100, 100], ["a", "b", "c"])
    gap = cor.copy()
    gap[0, 1] = gap[1, 0] = np.nan
    with pytest.raises(ValueError, match="needs every correlation among the measured"):
        pool_fixed([gap, cor], [100, 100], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"no sample gives the correlation of \['b~~a'\]"):
        pool_random([gap, gap], [100, 100], ["a", "b", "c"])
    with pytest.raises(ValueError, match="acov must be one of"):
        pool_random([cor, cor], [100, 100], ["a", "b", "c"], acov="median")


def test_correlation_matrix_uses_complete_rows(wai_items_table):
    data = wai_items_table
    items = [f"wai_{k:02d}" for k in range(1, 13)]
    cor, n = correlation_matrix(data, items)
    complete = data[items].dropna()
    assert n == len(complete)
    assert cor == pytest.approx(np.corrcoef(complete.to_numpy(float), rowvar=False))
    with pytest.raises(ValueError, match="variables not in the data"):
        correlation_matrix(data, [*items, "wai_13"])


@pytest.fixture
def wai_items_table(wai_sr, make_items):
    items = make_items(wai_sr, n_patients=80, n_sessions=1)
    return items[items["rater"] == "client"].reset_index(drop=True)


def test_masem_both_stages_and_nested_tests(wai, wai_sr, ref):
    variables, mats, n, studies = wai
    models = {k: builtin_models(wai_sr)[k] for k in ("one_factor", "two_factor", "correlated")}
    out = masem(mats, n, variables, models, studies, pairs=NESTED)
    fixed = out["stage2"]["fixed"]["models"]
    assert {m["status"] for m in fixed.values()} == {"ok"}
    for name in models:
        assert fixed[name]["fit"]["chisq"] == pytest.approx(
            ref["wai"]["stage2"][name]["chisq"], rel=1e-5
        )
    tests = out["stage2"]["fixed"]["comparisons"]
    assert [(t["restricted"], t["general"]) for t in tests] == list(NESTED)
    first = tests[0]
    assert first["chisq_diff"] == pytest.approx(
        fixed["one_factor"]["fit"]["chisq"] - fixed["two_factor"]["fit"]["chisq"]
    )
    assert first["df_diff"] == 1
    assert set(out["stage2"]["random"]["models"]) == set(models)
    assert out["ntotal"] == sum(n)
    json.dumps(out)  # JSON-ready: matrices as lists, NaN as None
    assert out["stage1"]["fixed"]["pooled"][0][0] == 1.0


def test_inadmissible_model_gets_no_fit_and_no_test():
    cor = np.array([[1.0, 0.8, 0.8], [0.8, 1.0, 0.5], [0.8, 0.5, 1.0]])
    stage1 = {
        "pooled": cor,
        "acov": acov_correlations(cor, 500),
        "ntotal": 500,
        "variables": ["a", "b", "c"],
    }
    fits = fit_stage2(stage1, {"heywood": "f =~ a + b + c", "broken": "f =~ a + b + zz"})
    assert fits["heywood"]["status"] == "inadmissible"
    assert fits["heywood"]["fit"] is None
    assert any("Heywood" in i for i in fits["heywood"]["issues"])
    assert fits["broken"]["status"] == "error"
    tests = compare_stage2(fits, [("heywood", "broken")])
    assert "not_tested" in tests[0] and "inadmissible" in tests[0]["not_tested"]
