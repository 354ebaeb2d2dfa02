"""Two-level CFA (issue 17 part 3) against lavaan 0.6-14 on simulated sessions within patients.

References: tests/data/twolevel/lavaan_twolevel.json, made by make_twolevel.R from the data
of make_data.py (150 patients x 6 sessions, and 150 patients with 2-8 sessions; 12 WAI-like
items, three within factors, three or one between factors). Tests never call R.
Tolerances (issue 17): estimates 1e-4 absolute, SEs 1e-3 relative, chi-square 1e-3 absolute.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from alliance.cli import main
from alliance.sem.mvnorm_cluster import (
    Moments2L,
    cluster_stats,
    loglik,
    saturated,
    saturated_gradient,
)
from alliance.sem.syntax import SyntaxError_, parse_syntax, split_levels
from alliance.sem.twolevel import (
    TwoLevelModel,
    baseline_twolevel,
    estimate_twolevel,
)
from alliance.sem.twolevel_fitmeasures import twolevel_fit_measures
from alliance.sem.twolevel_output import fit_twolevel, twolevel_result, twolevel_standardized

HERE = Path(__file__).parents[1] / "data" / "twolevel"
ML_CASES = ["balanced_ml_same", "balanced_ml_one", "unbalanced_ml_same", "unbalanced_ml_one",
            "unbalanced_ml_same_stdlv", "unbalanced_ml_onelevel"]  # fmt: skip
MLR_CASES = ["balanced_mlr_same", "unbalanced_mlr_one", "unbalanced_mlr_onelevel"]
EST_TOL, SE_RTOL, CHISQ_TOL = 1e-4, 1e-3, 1e-3


@cache
def _references() -> dict[str, Any]:
    return json.loads((HERE / "lavaan_twolevel.json").read_text())


@cache
def _data(file: str) -> pd.DataFrame:
    return pd.read_csv(HERE / file)


@cache
def _fit(case: str) -> tuple[Any, Any]:
    ref = _references()[case]
    fit = estimate_twolevel(
        _data(ref["file"]), ref["syntax"], "patient", ref["estimator"], std_lv=ref["std.lv"]
    )
    return fit, baseline_twolevel(fit)


def _ov_order(ref: dict[str, Any]) -> list[str]:
    """lavaan's variable order of a level's matrices: first appearance in the level-1 block."""
    return list(
        dict.fromkeys(r["rhs"] for r in ref["partable"] if r["op"] == "=~" and r["level"] == 1)
    )


# --------------------------------------------------------------------------- syntax, table


def test_split_levels_reads_both_spellings() -> None:
    text = "level: within\nf =~ a + b + c  # comment\nlevel: 2\ng =~ a + b + c\n"
    blocks = split_levels(text)
    assert [s.rhs for s in parse_syntax(blocks[1])] == ["a", "b", "c"]
    assert [s.lhs for s in parse_syntax(blocks[2])] == ["g"] * 3
    assert blocks[1].splitlines()[1].startswith("f =~")  # line numbers kept


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("f =~ a + b\nlevel: 1\nf =~ a + b\nlevel: 2\ng =~ a + b", "before the first 'level:'"),
        ("level: 1\nf =~ a + b + c", r"needs a 'level: 1' and a 'level: 2'"),
        ("level: 1\nf =~ a + b\nlevel: 1\ng =~ a + b", "level 1 is given twice"),
        ("level: 3\nf =~ a + b", "unknown level '3'"),
        ("level: 1\nf =~ a + b + c\nlevel: 2\n", "level 2 of the two-level model holds no"),
    ],
)
def test_split_levels_rejects(text: str, match: str) -> None:
    with pytest.raises(SyntaxError_, match=match):
        split_levels(text)


def test_single_level_parser_names_the_level_line() -> None:
    with pytest.raises(ValueError, match=r"line 1: 'level: 1' starts a level.*cluster"):
        parse_syntax("level: 1\nf =~ a + b + c")


@pytest.mark.parametrize(
    "case", ["balanced_ml_same", "balanced_ml_one", "unbalanced_ml_same_stdlv"]
)
def test_parameter_table_matches_lavaan(case: str) -> None:
    """Rows, order, level, free numbering and fixed values as lavaan's parTable()."""
    ref = _references()[case]
    model = TwoLevelModel.from_syntax(ref["syntax"], std_lv=ref["std.lv"])
    rows = model.rows()
    assert len(rows) == len(ref["partable"])
    for (level, r, free), lav in zip(rows, ref["partable"], strict=True):
        assert (r.lhs, r.op, r.rhs, level) == (lav["lhs"], lav["op"], lav["rhs"], lav["level"])
        assert free == lav["free"], (r.name(), level)
        if not free:
            assert r.value == pytest.approx(lav["ustart"] if lav["ustart"] is not None else 0.0)


def test_model_rejects_what_it_cannot_fit() -> None:
    with pytest.raises(ValueError, match=r"labels used at both levels.*\['l2'\]"):
        TwoLevelModel.from_syntax("level: 1\nf =~ a + l2*b + c\nlevel: 2\ng =~ a + l2*b + c")
    with pytest.raises(
        ValueError, match="line 3: a ~ 1 at level 1: in a two-level model the means"
    ):
        TwoLevelModel.from_syntax("level: 1\nf =~ a + b + c\na ~ 1\nlevel: 2\ng =~ a + b + c")
    with pytest.raises(ValueError, match="':=' is not supported in a two-level model"):
        TwoLevelModel.from_syntax(
            "level: 1\nf =~ a + l2*b + c\nd := 2*l2\nlevel: 2\ng =~ a + b + c"
        )


# --------------------------------------------------------------------------- statistics


def test_one_level_variables_are_within_or_between_only() -> None:
    ref = _references()["unbalanced_ml_onelevel"]
    model = TwoLevelModel.from_syntax(ref["syntax"])
    assert model.within_only == ["x_w"] and model.between_only == ["z_b"]
    assert model.ov[-1] == "z_b" and "x_w" in model.within.ov
    intercept = model.within.find("x_w", "~1", "")
    assert intercept.free  # a within-only variable's mean is at level 1 (lavaan)
    bad = _data("unbalanced.csv").copy()
    bad.loc[5, "z_b"] += 1.0
    with pytest.raises(ValueError, match=r"between-only variable 'z_b' varies within cluster"):
        estimate_twolevel(bad, ref["syntax"], "patient")


def test_cluster_stats_rejects_bad_data() -> None:
    df = _data("balanced.csv")
    ov = ["wai_01", "wai_02"]
    with pytest.raises(ValueError, match="cluster column 'therapist' is not in the data"):
        cluster_stats(df, ov, "therapist")
    bad = df.copy()
    bad.loc[3, "wai_02"] = np.nan
    with pytest.raises(ValueError, match=r"complete data.*\['wai_02'\]"):
        cluster_stats(bad, ov, "patient")
    with pytest.raises(ValueError, match="two or more clusters in 'patient', got 1"):
        cluster_stats(df.assign(patient=1), ov, "patient")
    flat = df.assign(wai_02=df.groupby("patient")["wai_01"].transform("mean"))
    with pytest.raises(ValueError, match=r"no variation within the clusters.*\['wai_02'\]"):
        cluster_stats(flat, ov, "patient")
    with pytest.raises(ValueError, match="every cluster of 'patient' has one row"):
        cluster_stats(df.drop_duplicates("patient"), ov, "patient")


@pytest.mark.parametrize(
    "case", ["balanced_ml_same", "unbalanced_ml_same", "unbalanced_ml_onelevel"]
)
def test_saturated_em_matches_lavaan_h1(case: str) -> None:
    """lavaan 0.6-14's EM (start I, stop at a gain < 1e-4): its h1 moments and log-likelihood.

    With a within-only (x_w) and a between-only (z_b) variable too: lavaan's h1 then has the
    within-only mean at level 1 and no between row for it, z_b only at level 2.
    """
    ref = _references()[case]
    model = TwoLevelModel.from_syntax(ref["syntax"])
    stats = cluster_stats(
        _data(ref["file"]), model.within.ov, "patient", model.between_only, model.within_only
    )
    sat = saturated(stats)
    m, ll = sat.moments, sat.logl
    assert sat.em_converged and sat.em_iterations > 10
    h1 = ref["h1"]
    level1 = _ov_order(ref)
    level2 = list(
        dict.fromkeys(r["rhs"] for r in ref["partable"] if r["op"] == "=~" and r["level"] == 2)
    )
    assert set(level1) == set(model.within.ov) and set(level2) == set(model.between.ov)
    w_pos = [stats.ov.index(v) for v in level1]
    b_pos = [stats.ov.index(v) for v in level2]
    mu = np.zeros(stats.p)
    mu[w_pos] += np.ravel(h1["within"]["mean"])
    mu[b_pos] += np.ravel(h1["patient"]["mean"])
    np.testing.assert_allclose(m.mu, mu, atol=1e-8)
    sw = m.sigma_w[np.ix_(w_pos, w_pos)]
    np.testing.assert_allclose(sw, np.asarray(h1["within"]["cov"]), atol=1e-8)
    sb = m.sigma_b[np.ix_(b_pos, b_pos)]
    np.testing.assert_allclose(sb, np.asarray(h1["patient"]["cov"]), atol=1e-8)
    assert ll == pytest.approx(ref["fit"]["unrestricted.logl"], abs=1e-6)


def test_saturated_em_says_when_it_did_not_stop() -> None:
    stats = cluster_stats(_data("unbalanced.csv"), ["wai_01", "wai_02", "wai_03"], "patient")
    short = saturated(stats, max_iter=3)
    assert not short.em_converged and short.em_iterations == 3
    full = saturated(stats)
    assert full.em_converged and full.logl > short.logl
    with pytest.raises(ValueError, match="method must be 'lavaan' or 'exact', got 'em'"):
        saturated(stats, method="em")


def test_exact_saturated_is_muthen_closed_form_when_balanced() -> None:
    """Balanced clusters: mu the grand mean, Sigma_W = S_PW, Sigma_B = (S_B - S_PW)/n."""
    ref = _references()["balanced_ml_same"]
    stats = cluster_stats(_data(ref["file"]), _ov_order(ref), "patient")
    sat = saturated(stats, method="exact")
    m, ll = sat.moments, sat.logl
    n = 6
    mu = stats.means.mean(axis=0)
    d = stats.means - mu
    s_b = n * d.T @ d / stats.nclusters
    np.testing.assert_allclose(m.mu, mu, atol=1e-8)
    np.testing.assert_allclose(m.sigma_w, stats.s_pw, atol=1e-7)
    np.testing.assert_allclose(m.sigma_b, (s_b - stats.s_pw) / n, atol=1e-7)
    # the maximum lies above lavaan's early-stopped EM
    assert ll > ref["fit"]["unrestricted.logl"]
    assert np.max(np.abs(saturated_gradient(stats, m))) < 1e-5


def test_loglik_matches_lavaan_at_its_estimates() -> None:
    ref = _references()["unbalanced_ml_same"]  # same item order at both levels
    stats = cluster_stats(_data(ref["file"]), _ov_order(ref), "patient")
    imp = ref["implied"]
    m = Moments2L(
        np.ravel(imp["within"]["mean"]) + np.ravel(imp["patient"]["mean"]),
        np.asarray(imp["within"]["cov"]),
        np.asarray(imp["patient"]["cov"]),
    )
    assert loglik(stats, m) == pytest.approx(ref["fit"]["logl"], abs=1e-6)


# --------------------------------------------------------------------------- estimates, fit


def _check_parameters(case: str) -> None:
    fit, _ = _fit(case)
    ref = _references()[case]
    values = fit.model.row_values(fit.x)
    se = fit.se
    assert se is not None
    for (level, r, free), est, lav in zip(fit.model.rows(), values, ref["parameters"], strict=True):
        assert (r.lhs, r.op, r.rhs, level) == (lav["lhs"], lav["op"], lav["rhs"], lav["level"])
        assert est == pytest.approx(lav["est"], abs=EST_TOL), (r.name(), level)
        if free:
            assert se[free - 1] == pytest.approx(lav["se"], rel=SE_RTOL), (r.name(), level)


@pytest.mark.parametrize("case", ML_CASES + MLR_CASES)
def test_estimates_and_standard_errors_match_lavaan(case: str) -> None:
    _check_parameters(case)


@pytest.mark.parametrize("case", ML_CASES + MLR_CASES)
def test_fit_measures_match_lavaan(case: str) -> None:
    fit, base = _fit(case)
    ref = _references()[case]["fit"]
    fm = twolevel_fit_measures(fit, base)
    assert fm["npar"] == ref["npar"] and fm["df"] == ref["df"]
    assert fm["baseline.df"] == ref["baseline.df"]
    for key in ("chisq", "baseline.chisq"):
        assert fm[key] == pytest.approx(ref[key], abs=CHISQ_TOL), key
    for key in ("logl", "unrestricted.logl", "aic", "bic", "bic2"):
        assert fm[key] == pytest.approx(ref[key], abs=1e-3), key
    keys = ["pvalue", "cfi", "tli", "nnfi", "rfi", "nfi", "pnfi", "ifi", "rni", "rmsea"]
    keys += ["rmsea.ci.lower", "rmsea.ci.upper", "rmsea.pvalue", "rmsea.notclose.pvalue"]
    for key in keys:
        assert fm[key] == pytest.approx(ref[key], abs=1e-6), key
    for key in ("srmr_within", "srmr_between", "srmr"):
        assert fm[key] == pytest.approx(ref[key], abs=1e-5), key


@pytest.mark.parametrize(
    "case",
    [
        "balanced_ml_same",
        "unbalanced_mlr_one",
        "unbalanced_ml_same_stdlv",
        "unbalanced_mlr_onelevel",
    ],
)
def test_standardized_solution_matches_lavaan(case: str) -> None:
    """std.all by level (each level by its own implied SDs) with delta-method SEs."""
    fit, _ = _fit(case)
    ref = _references()[case]["standardized"]
    rows = twolevel_standardized(fit)
    assert len(rows) == len(ref)
    for row, lav in zip(rows, ref, strict=True):
        assert (row["lhs"], row["op"], row["rhs"]) == (lav["lhs"], lav["op"], lav["rhs"])
        # between intercepts are means in between-SD units (about 6 here): relative tolerance
        assert row["est.std"] == pytest.approx(lav["est.std"], rel=EST_TOL, abs=EST_TOL), row
        if lav["se"]:
            assert row["se"] == pytest.approx(lav["se"], rel=SE_RTOL), row
        else:
            assert not row["se"], row


@pytest.mark.parametrize("case", MLR_CASES)
def test_yuan_bentler_scaled_test_matches_lavaan(case: str) -> None:
    fit, base = _fit(case)
    ref = _references()[case]["fit"]
    fm = twolevel_fit_measures(fit, base)
    assert fm["chisq.scaling.factor"] == pytest.approx(ref["chisq.scaling.factor"], abs=1e-5)
    assert fm["chisq.scaled"] == pytest.approx(ref["chisq.scaled"], abs=CHISQ_TOL)
    assert fm["baseline.chisq.scaling.factor"] == pytest.approx(
        ref["baseline.chisq.scaling.factor"], abs=1e-5
    )
    assert fm["baseline.chisq.scaled"] == pytest.approx(ref["baseline.chisq.scaled"], abs=1e-3)
    for key in ("pvalue.scaled", "cfi.scaled", "tli.scaled", "rni.scaled", "rmsea.scaled",
                "rmsea.ci.lower.scaled", "rmsea.ci.upper.scaled", "rmsea.pvalue.scaled",
                "cfi.robust", "tli.robust", "rni.robust", "rmsea.robust", "rmsea.ci.lower.robust",
                "rmsea.ci.upper.robust", "rmsea.pvalue.robust"):  # fmt: skip
        assert fm[key] == pytest.approx(ref[key], abs=1e-5), key


def test_options_are_lavaans_two_level_defaults() -> None:
    """The references were made with observed information and the mplus YB test."""
    refs = _references()
    assert all(r["options"]["information"][0] == "observed" for r in refs.values())
    assert refs["balanced_mlr_same"]["options"]["test"] == "yuan.bentler.mplus"
    assert refs["balanced_mlr_same"]["options"]["se"] == "robust.huber.white"


# --------------------------------------------------------------------------- JSON, status, CLI


def test_json_layout_carries_levels_and_srmr_by_level() -> None:
    ref = _references()["balanced_ml_one"]
    out = fit_twolevel(_data(ref["file"]), ref["syntax"], "patient", "ML")
    assert out["status"]["admissible"] and out["converged"]
    assert out["nclusters"] == 150 and out["ntotal"] == 900
    assert {p["level"] for p in out["parameters"]} == {1, 2}
    assert out["fit"]["srmr_within"] == pytest.approx(ref["fit"]["srmr_within"], abs=1e-5)
    assert out["fit"]["srmr_between"] == pytest.approx(ref["fit"]["srmr_between"], abs=1e-5)
    between = [p for p in out["parameters"] if p["level"] == 2 and p["op"] == "~1"]
    assert all(p["free"] for p in between if p["lhs"].startswith("wai"))
    assert any("Bayesian" in n for n in out["meta"]["notes"])


def test_heywood_case_is_a_status_without_fit_indices() -> None:
    fit, base = _fit("balanced_ml_one")
    bad = fit.model.between.table
    row = next(r for r in bad if r.op == "~~" and r.lhs == "wai_03" and r.rhs == "wai_03")
    x = fit.x.copy()
    x[fit.model.within.npar + row.free - 1] = -0.01
    heywood = type(fit)(**{**fit.__dict__, "x": x})
    out = twolevel_result(heywood, base, meta={"notes": []})
    assert out["fit"] == {} and not out["status"]["admissible"]
    assert out["status"]["negative_variances"] == ["wai_03~~wai_03 (level 2)"]
    assert any("no fit indices" in n for n in out["meta"]["notes"])


def test_cli_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = _references()["unbalanced_mlr_one"]
    model = tmp_path / "m.lav"
    model.write_text(ref["syntax"])
    out = tmp_path / "fit.json"
    args = ["cfa", str(HERE / "unbalanced.csv"), "--model", str(model), "--cluster", "patient"]
    assert main([*args, "--estimator", "MLR", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["meta"]["estimator"] == "MLR" and result["meta"]["cluster"] == "patient"
    assert result["fit"]["chisq.scaled"] == pytest.approx(ref["fit"]["chisq.scaled"], abs=1e-3)
    assert "srmr_between" in capsys.readouterr().out
    assert main([*args, "--estimator", "WLSMV", "--out", str(out)]) == 2
    assert "two-level CFA is fitted by ML or MLR" in capsys.readouterr().err
    assert main([*args, "--group", "session", "--out", str(out)]) == 2
    assert "cannot be combined with --group" in capsys.readouterr().err


def test_unidentified_between_model_is_a_status_without_se() -> None:
    """One indicator of a between factor with its residual variance free: not identified."""
    model = "level: 1\nf =~ wai_01 + wai_02 + wai_03\nlevel: 2\ng =~ wai_01\nwai_02 ~~ wai_03\n"
    out = fit_twolevel(_data("balanced.csv"), model, "patient")
    assert out["status"]["standard_errors"] is False and out["fit"] == {}
    assert all(p["se"] is None for p in out["parameters"] if p["free"])
    assert any("information matrix is not positive definite" in n for n in out["meta"]["notes"])
