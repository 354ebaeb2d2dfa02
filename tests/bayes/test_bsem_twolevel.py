"""Bayesian two-level CFA (issue 18 part 2): sessions within patients, continuous and ordinal.

References: the two-level normal density against SciPy's multivariate normal of each patient's
stacked sessions (exact); continuous items against lavaan 0.6-14's two-level ML on the data of
tests/data/twolevel (made by make_twolevel.R; tests never call R); ordinal items, which lavaan
cannot fit at two levels (its issue #225), by recovery of simulated truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alliance.bayes.bsem import Measurement
from alliance.bayes.bsem_stage import run_bsem_twolevel, twolevel_measurements
from alliance.bayes.diagnostics import summarize
from alliance.bayes.sampling import sample, sampler_settings
from alliance.bayes.twolevel_cfa import (
    cluster_layout,
    twolevel_cfa_model,
    twolevel_loglik,
    twolevel_parameters,
)

TWOLEVEL = Path(__file__).parents[1] / "data" / "twolevel"


def _stacked_loglik(x, ids, mu, sw, sb) -> float:
    total = 0.0
    for c in pd.unique(ids):
        xc = x[ids == c]
        n = len(xc)
        cov = np.kron(np.eye(n), sw) + np.kron(np.ones((n, n)), sb)
        total += stats.multivariate_normal(np.tile(mu, n), cov).logpdf(xc.reshape(-1))
    return total


def _random_moments(rng: np.random.Generator, p: int):
    a = rng.normal(size=(p, p))
    b = rng.normal(size=(p, p))
    return a @ a.T + np.eye(p), 0.4 * b @ b.T + 0.1 * np.eye(p), rng.normal(size=p)


def test_density_is_the_stacked_multivariate_normal(rng: np.random.Generator) -> None:
    ids = np.array(["p3", "p1", "p3", "p2", "p2", "p2", "p1", "p3", "p4", "p5", "p5"])
    x = rng.normal(size=(len(ids), 3))
    sw, sb, mu = _random_moments(rng, 3)
    layout = cluster_layout(ids)
    value = twolevel_loglik(x[layout.order], mu, sw, sb, layout)
    assert value == pytest.approx(_stacked_loglik(x, ids, mu, sw, sb), rel=1e-12)
    assert sorted(layout.groups) == [1, 2, 3]


def test_pytensor_density_equals_numpy(rng: np.random.Generator) -> None:
    import pytensor
    import pytensor.tensor as pt

    ids = np.repeat(np.arange(6), [1, 2, 3, 3, 4, 2])
    x = rng.normal(size=(len(ids), 4))
    sw, sb, mu = _random_moments(rng, 4)
    layout = cluster_layout(ids)
    xs, ws, bs, ms = pt.matrix("x"), pt.matrix("sw"), pt.matrix("sb"), pt.vector("mu")
    f = pytensor.function([xs, ms, ws, bs], twolevel_loglik(xs, ms, ws, bs, layout, backend=pt))
    expected = _stacked_loglik(x, ids, mu, sw, sb)
    assert float(f(x[layout.order], mu, sw, sb)) == pytest.approx(expected, rel=1e-10)


def test_model_potential_is_the_density_at_a_point(rng: np.random.Generator) -> None:
    """The model's likelihood term equals SciPy's density at the model's implied moments."""
    ids = np.repeat(np.arange(30), 3)
    data = pd.DataFrame(rng.normal(size=(90, 4)), columns=["a", "b", "c", "d"])
    data["patient"] = ids
    structure = Measurement({"f": ["a", "b", "c", "d"]})
    model = twolevel_cfa_model(data, structure, structure, "patient")
    point = model.initial_point()
    outputs = model.replace_rvs_by_values([model.potentials[0], model["icc"]])
    potential, icc = model.compile_fn(outputs, inputs=model.value_vars)(point)
    assert np.all((icc > 0) & (icc < 1))
    lam_w = np.exp(point["loading_within_log__"])
    lam_b = np.exp(point["loading_between_log__"])
    th_w = np.exp(point["theta_within_sd_log__"]) ** 2
    th_b = np.exp(point["theta_between_sd_log__"]) ** 2
    sw = np.outer(lam_w, lam_w) + np.diag(th_w)
    sb = np.outer(lam_b, lam_b) + np.diag(th_b)
    values = data[["a", "b", "c", "d"]].to_numpy()
    z = (values - values.mean(axis=0)) / values.std(axis=0, ddof=1)
    expected = _stacked_loglik(z, ids, point["intercept"], sw, sb)
    assert float(potential) == pytest.approx(expected, rel=1e-10)


def test_inputs_that_cannot_make_a_two_level_model(rng: np.random.Generator) -> None:
    data = pd.DataFrame(rng.normal(size=(12, 3)), columns=["a", "b", "c"])
    data["patient"] = np.repeat([1, 2, 3, 4], 3)
    structure = Measurement({"f": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="lack the cluster column"):
        twolevel_cfa_model(data, structure, structure, "id")
    with pytest.raises(ValueError, match="same items"):
        twolevel_cfa_model(data, structure, Measurement({"g": ["a", "b"]}), "patient")
    broken = data.assign(a=data["a"].where(data.index != 4))
    with pytest.raises(ValueError, match=r"complete answers .* NaN in \['a'\]"):
        twolevel_cfa_model(broken, structure, structure, "patient")
    with pytest.raises(ValueError, match="at least two clusters, got 1"):
        cluster_layout(np.zeros(5))
    with pytest.raises(ValueError, match="needs its cluster, got 1 missing"):
        cluster_layout(np.array([1, 2, None, 2], dtype=object))
    with pytest.raises(ValueError, match="same items"):
        twolevel_measurements("level: 1\nf =~ a + b + c\nlevel: 2\ng =~ a + b\n")


def test_single_level_model_gives_both_levels() -> None:
    within, between = twolevel_measurements("f =~ a + b\ng =~ c + d\n", "same")
    assert within.factors == {"f_w": ["a", "b"], "g_w": ["c", "d"]}
    assert between.factors == {"f_b": ["a", "b"], "g_b": ["c", "d"]}
    _, general = twolevel_measurements("f =~ a + b\ng =~ c + d\n", "one_factor")
    assert general.factors == {"general_b": ["a", "b", "c", "d"]}


# --------------------------------------------------------------------------- against lavaan


def _lavaan_case(case: str) -> dict:
    return json.loads((TWOLEVEL / "lavaan_twolevel.json").read_text())[case]


def _lavaan_standardized(ref: dict) -> dict[str, float]:
    """lavaan's std.all keyed as the posterior's rows (each level's factor names differ)."""
    out = {}
    for row in ref["standardized"]:
        level = "within" if row["lhs"].endswith("_w") else "between"
        if row["op"] == "=~":
            out[f"std_loading_{level}[{row['lhs']}=~{row['rhs']}]"] = row["est.std"]
        elif row["op"] == "~~" and row["lhs"] != row["rhs"] and row["rhs"][-2:] in ("_w", "_b"):
            out[f"factor_correlation_{level}[{row['lhs']}~~{row['rhs']}]"] = row["est.std"]
            out[f"factor_correlation_{level}[{row['rhs']}~~{row['lhs']}]"] = row["est.std"]
    return out


@pytest.mark.slow
def test_continuous_agrees_with_lavaan_two_level_ml() -> None:
    """Posterior means against lavaan's std.all, 150 patients with 2-8 sessions, 12 items.

    Three factors per level. Within (763 sessions): the posterior concentrates at the ML
    estimates, |difference| <= 0.005 (measured 0.002, 0.05 posterior SD). Between (150
    patients) the priors still show: loadings within 0.02 and half a posterior SD (measured
    0.013, 0.44 SD); the factor correlations (lavaan .68-.86) lie below ML by 0.04-0.05, the
    LKJ(2) prior's pull towards 0 and the left skew of a correlation's posterior near 1, within
    one posterior SD (measured 0.72 SD) and 0.06.
    """
    ref = _lavaan_case("unbalanced_ml_same")
    data = pd.read_csv(TWOLEVEL / ref["file"])
    within, between = twolevel_measurements(ref["syntax"])
    model = twolevel_cfa_model(data, within, between, "patient")
    idata, _ = sample(model, sampler_settings({"draws": 1000, "seed": 11}))
    table = summarize(idata, twolevel_parameters(model)).set_index("parameter")
    lavaan = _lavaan_standardized(ref)
    compared = [k for k in lavaan if k in table.index]
    assert len(compared) == 24 + 6
    for key in compared:
        diff = abs(table.loc[key, "mean"] - lavaan[key])
        sd = table.loc[key, "sd"]
        if "within" in key:
            assert diff <= 0.005, (key, diff)
        elif key.startswith("std_loading_between"):
            assert diff <= 0.02 and diff <= 0.5 * sd, (key, diff, sd)
        else:
            assert diff <= 0.06 and diff <= sd, (key, diff, sd)


# --------------------------------------------------------------------------- ordinal recovery


def _simulate_ordinal(rng: np.random.Generator, patients: int, sessions: int):
    """One factor per level, 6 five-point items; latent responses with within variance 1."""
    lam_w = np.array([0.8, 0.9, 1.0, 0.7, 0.8, 0.9])
    lam_b = np.array([0.6, 0.7, 0.5, 0.6, 0.8, 0.7])
    theta_b = np.full(6, 0.1)
    f_b = rng.normal(size=patients)
    b = f_b[:, None] * lam_b + rng.normal(size=(patients, 6)) * np.sqrt(theta_b)
    ids = np.repeat(np.arange(patients), sessions)
    f_w = rng.normal(size=len(ids))
    x = b[ids] + f_w[:, None] * lam_w + rng.normal(size=(len(ids), 6))
    cuts = np.array([-1.5, -0.5, 0.5, 1.5])
    answers = np.searchsorted(cuts, x) + 1
    data = pd.DataFrame(answers, columns=[f"i{k}" for k in range(1, 7)])
    data["patient"] = ids
    sw = np.outer(lam_w, lam_w) + np.eye(6)
    sb = np.outer(lam_b, lam_b) + np.diag(theta_b)
    truth = {
        "std_loading_within": lam_w / np.sqrt(np.diag(sw)),
        "std_loading_between": lam_b / np.sqrt(np.diag(sb)),
        "icc": np.diag(sb) / (np.diag(sb) + np.diag(sw)),
    }
    return data, truth


@pytest.mark.slow
def test_ordinal_two_level_recovers_simulated_truth() -> None:
    """Standardized loadings at both levels and the ICCs of 6 ordinal items recovered.

    200 patients x 4 sessions: each posterior mean within 3 posterior SDs of the truth, and
    the mean absolute error per quantity below 0.06.
    """
    data, truth = _simulate_ordinal(np.random.default_rng(20261204), 200, 4)
    structure = Measurement({"f": [f"i{k}" for k in range(1, 7)]})
    model = twolevel_cfa_model(data, structure, structure, "patient", ordered=True)
    idata, _ = sample(model, sampler_settings({"draws": 1000, "seed": 3}))
    for name, values in truth.items():
        mean = idata.posterior[name].mean(("chain", "draw")).to_numpy()
        sd = idata.posterior[name].std(("chain", "draw")).to_numpy()
        assert np.all(np.abs(mean - values) < 3 * sd), (name, mean, values, sd)
        assert np.mean(np.abs(mean - values)) < 0.06, (name, mean, values)


@pytest.mark.slow
def test_stage_writes_no_patient_identifier(tmp_path: Path) -> None:
    data, _ = _simulate_ordinal(np.random.default_rng(5), 60, 3)
    data["patient"] = [f"PT-{k:04d}" for k in data["patient"]]
    data.to_csv(tmp_path / "sessions.csv", index=False)
    (tmp_path / "m.lav").write_text("f =~ i1 + i2 + i3 + i4 + i5 + i6\n")
    result = run_bsem_twolevel(
        tmp_path / "sessions.csv",
        str(tmp_path / "m.lav"),
        tmp_path / "out",
        cluster="patient",
        sampler={"draws": 500, "seed": 1},
    )
    assert result["data"]["clusters"] == 60 and result["data"]["sessions"] == 180
    written = "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    assert "PT-" not in written
    assert "std_loading_between[f_b=~i1]" in written


def test_summary_rows_give_ranges_per_level_and_warn_of_skips(tmp_path: Path) -> None:
    from alliance.bayes.bsem_summary import twolevel_rows
    from alliance.report.summary import bsem_section

    ok = tmp_path / "site_a" / "bsem_twolevel" / "correlated"
    ok.mkdir(parents=True)
    (ok / "summary.json").write_text(
        json.dumps(
            {
                "model_name": "correlated",
                "status": "pass",
                "ordered": True,
                "data": {"sessions": 900, "clusters": 150},
            }
        )
    )
    pd.DataFrame(
        {
            "parameter": [
                "std_loading_within[f_w=~a]",
                "std_loading_within[f_w=~b]",
                "std_loading_between[f_b=~a]",
                "icc[a]",
                "icc[b]",
            ],
            "mean": [0.61, 0.734, 0.95, 0.2, 0.341],
        }
    ).to_csv(ok / "parameters.csv", index=False)
    bad = tmp_path / "site_b" / "bsem_twolevel" / "correlated"
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text(
        json.dumps({"model_name": "correlated", "status": "skipped", "reason": "too few"})
    )
    rows, warnings = twolevel_rows(tmp_path, ["site_a", "site_b", "site_c"])
    assert rows.to_dict("records")[0] == {
        "Dataset": "site_a",
        "Model": "correlated",
        "Items": "ordinal",
        "Status": "pass",
        "Sessions": 900,
        "Patients": 150,
        "Loadings within": "0.61-0.73",
        "Loadings between": "0.95-0.95",
        "ICC": "0.20-0.34",
    }
    assert rows.iloc[1]["Status"] == "skipped" and rows.iloc[1]["ICC"] == ""
    assert warnings == ["site_b: two-level BSEM of correlated skipped: too few"]
    text, _ = bsem_section(tmp_path, ["site_a"])
    assert text.startswith("### Two-level Bayesian CFA") and "0.20-0.34" in text
