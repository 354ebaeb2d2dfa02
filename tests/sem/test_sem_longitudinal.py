"""Longitudinal measurement invariance against lavaan 0.6-14 / semTools 0.5-6.

The references (tests/data/lavaan/longinv, made by make_longinv.R) fit semTools'
measEq.syntax() model of each step to 300 simulated patients at sessions 1, 3 and 6:
continuous items with ML and MLR (FIML for the missed sessions), five-category items with
WLSMV (pairwise). Measured: chi-squares within 2.7e-8 relative, the other fit measures within
1.6e-5 absolute (robust RMSEA intervals), estimates within 3.2e-6 and SEs within 3.3e-7 of
lavaan's.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from alliance.sem.fitmeasures import fit_measures
from alliance.sem.fitting import fit_model
from alliance.sem.invariance import chen_decision
from alliance.sem.longitudinal import (
    longitudinal_ladder,
    longitudinal_syntax,
    wave_name,
    wave_structure,
)

HERE = Path(__file__).parents[1] / "data" / "lavaan" / "longinv"
CASES = ("ml", "mlr", "wlsmv")
CHISQ_LIKE = {"chisq", "chisq.scaled", "baseline.chisq", "baseline.chisq.scaled", "logl",
              "unrestricted.logl", "aic", "bic", "bic2", "ntotal"}  # fmt: skip
#: tolerances (the brief's: chi-squares and estimates 1e-4 relative, SEs 1e-3)
REL_CHISQ, ABS_INDEX, REL_EST, ABS_EST, REL_SE = 1e-4, 1e-4, 1e-4, 1e-5, 1e-3


@cache
def reference() -> dict[str, Any]:
    return json.loads((HERE / "lavaan_longinv.json").read_text())


@cache
def wide(case: str) -> pd.DataFrame:
    """The long table reshaped as the R script does: one row per patient, ``item_session``."""
    long = pd.read_csv(HERE / reference()["meta"]["data"][case])
    out = long.pivot(index="patient", columns="session")  # noqa: PD010 - one row per cell
    out.columns = [wave_name(i, s) for i, s in out.columns]
    return out.reset_index(drop=True)


@cache
def ladder(case: str) -> dict[str, Any]:
    meta = reference()["meta"]
    return longitudinal_ladder(wide(case), meta["model"], meta["waves"], case.upper(),
                               ordered=case == "wlsmv")  # fmt: skip


def _steps(case: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in ladder(case)["steps"]}


def _params():
    return [
        pytest.param(case, step, id=f"{case}-{step}")
        for case in CASES
        for step in reference()["cases"][case]["steps"]
    ]


def test_steps_and_missing_data():
    assert [s["name"] for s in ladder("ml")["steps"]] == ["configural", "metric", "scalar",
                                                          "strict"]  # fmt: skip
    assert [s["name"] for s in ladder("wlsmv")["steps"]] == ["configural", "metric", "scalar"]
    assert ladder("ml")["missing"] == "fiml"
    assert ladder("wlsmv")["missing"] == "pairwise"
    assert any("strict invariance is not fitted" in n for n in ladder("wlsmv")["notes"])
    for case in CASES:  # every patient kept (FIML / pairwise), as lavaan
        for step, ref in reference()["cases"][case]["steps"].items():
            assert _steps(case)[step]["ntotal"] == ref["nobs"] == 300


@pytest.mark.parametrize(("case", "step"), _params())
def test_fit_matches_lavaan(case, step):
    ref = reference()["cases"][case]["steps"][step]["fit"]
    mine = _steps(case)[step]["fit_all"]
    compared = 0
    for name, want in ref.items():
        if name not in mine:
            continue
        got = mine[name]
        if want is None or got is None:
            assert got is None and want is None, name
            continue
        if name in CHISQ_LIKE:
            assert got == pytest.approx(want, rel=REL_CHISQ), name
        else:
            assert got == pytest.approx(want, rel=REL_CHISQ, abs=ABS_INDEX), name
        compared += 1
    assert compared >= 30
    for name in ("npar", "df"):
        assert mine[name] == ref[name]


@pytest.mark.parametrize(("case", "step"), _params())
def test_parameters_match_lavaan(case, step):
    ref = reference()["cases"][case]["steps"][step]["parameters"]
    want = {(p["lhs"], p["op"], p["rhs"]): p for p in ref}
    got = {(p["lhs"], p["op"], p["rhs"]): p for p in _steps(case)[step]["parameters"]}
    assert set(got) == set(want)  # the same model as measEq.syntax writes
    for key, p in want.items():
        assert got[key]["est"] == pytest.approx(p["est"], rel=REL_EST, abs=ABS_EST), key
        if p["se"] is None or p["se"] == 0:
            assert not got[key]["se"], key
        else:
            assert got[key]["se"] == pytest.approx(p["se"], rel=REL_SE), key


@pytest.mark.parametrize("case", CASES)
def test_difference_tests_match_lavtestlrt(case):
    rows = {r["model"]: r for r in reference()["cases"][case]["lrt"]}
    steps = ladder(case)["steps"]
    assert steps[0]["test"] is None
    for prev, step in zip(steps, steps[1:], strict=False):
        r, test = rows[step["name"]], step["test"]
        assert test["against"] == prev["name"]
        assert test["df_diff"] == r["Df_diff"]
        assert test["chisq_diff"] == pytest.approx(r["Chisq_diff"], rel=REL_CHISQ)
        assert test["pvalue"] == pytest.approx(r["Pr_gt_Chisq"], rel=1e-3)


@pytest.mark.parametrize("case", CASES)
def test_chen_decisions_from_lavaans_fit(case):
    ref = reference()["cases"][case]["steps"]
    names = list(ref)
    pre = {"ml": "", "mlr": "", "wlsmv": ".scaled"}[case]
    for prev, cur in zip(names, names[1:], strict=False):
        a, b = ref[prev]["fit"], ref[cur]["fit"]
        keys = {"cfi": f"cfi{pre}", "rmsea": f"rmsea{pre}", "srmr": "srmr"}
        if case == "mlr":
            keys = {"cfi": "cfi.robust", "rmsea": "rmsea.robust", "srmr": "srmr"}
        deltas = {k: b[v] - a[v] for k, v in keys.items()}
        want = chen_decision(cur, deltas)
        got = ladder(case)["decisions"][cur]
        assert got["invariant"] == want["invariant"]
        for k in ("cfi", "rmsea", "srmr"):
            assert got[f"delta_{k}"] == pytest.approx(deltas[k], abs=1e-5)
    # the simulated intercept shift of t3 at session 6: the scalar difference test rejects
    assert _steps("ml")["scalar"]["test"]["pvalue"] < 0.001


@pytest.mark.parametrize(("case", "step"), [("ml", "configural"), ("ml", "strict"),
                                            ("wlsmv", "scalar")])  # fmt: skip
def test_measeq_syntax_itself_fits_as_lavaan(case, step):
    """The engine reads measEq.syntax's own text (``NA*x + label*x``, ``y ~*~ NA*y``)."""
    ref = reference()["cases"][case]["steps"][step]
    kw = {"missing": "pairwise", "ordered": True} if case == "wlsmv" else {"missing": "fiml"}
    res = fit_model(wide(case), ref["syntax"], case.upper(), **kw)
    m = fit_measures(res)
    assert m["df"] == ref["fit"]["df"]
    assert m["chisq"] == pytest.approx(ref["fit"]["chisq"], rel=REL_CHISQ)


def test_syntax_per_step():
    model = "bond =~ b1 + b2\ntask =~ t1 + t2\nb1 ~~ t1"
    configural = longitudinal_syntax(model, [1, 2], "configural")
    assert "bond_2 =~ NA*b1_2 + b1_2 + NA*b2_2 + b2_2" in configural
    assert "bond_2 ~~ 1*bond_2" in configural and "bond_2 ~ 0*1" in configural
    assert "b1_1 ~~ b1_2" in configural and "b1_2 ~~ t1_2" in configural
    metric = longitudinal_syntax(model, [1, 2], "metric")
    assert "lambda.bond.b1*b1_2" in metric and "bond_2 ~~ NA*bond_2" in metric
    assert "bond_1 ~~ 1*bond_1" in metric and "bond_2 ~ 0*1" in metric
    scalar = longitudinal_syntax(model, [1, 2], "scalar", ordered=True,
                                 n_thresholds={"b1": 2, "b2": 2, "t1": 2, "t2": 2})  # fmt: skip
    assert "b1_2 | b1.thr1*t1 + b1.thr2*t2" in scalar and "b1_2 ~*~ NA*b1_2" in scalar
    assert "b1_1 ~*~" not in scalar and "bond_2 ~ NA*1" in scalar
    strict = longitudinal_syntax(model, [1, 2], "strict")
    assert "b1_2 ~~ theta.b1*b1_2" in strict and "b1_2 ~ nu.b1*1" in strict


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ("f =~ 1*x1 + x2 + x3", "plain 'factor =~ items'"),
        ("f =~ x1 + x2 + x3\nx1 ~ 1", "plain 'factor =~ items'"),
        ('efa("a")*f1 + efa("a")*f2 =~ x1 + x2 + x3', "plain 'factor =~ items'"),
        ("f =~ x1 + x2\ng =~ f + x3", "factors measured by factors"),
    ],
)
def test_wave_model_errors(model, match):
    with pytest.raises(ValueError, match=match):
        wave_structure(model)


def test_argument_errors():
    data, model = wide("ml"), reference()["meta"]["model"]
    with pytest.raises(ValueError, match="two or more distinct waves"):
        longitudinal_syntax(model, [1, 1], "configural")
    with pytest.raises(ValueError, match="ordered items need estimator='WLSMV'"):
        longitudinal_ladder(data, model, [1, 3, 6], "ML", ordered=True)
    with pytest.raises(ValueError, match=r"lack the columns \['b1_2'"):
        longitudinal_ladder(data, model, [1, 2], "ML")
    with pytest.raises(ValueError, match="unknown invariance steps"):
        longitudinal_ladder(data, model, [1, 3, 6], "ML", steps=["weak"])


def test_categories_must_match_over_waves():
    data = wide("wlsmv").copy()
    data.loc[data["b1_6"] == 1, "b1_6"] = 2  # no answer in category 1 at session 6
    with pytest.raises(ValueError, match="item 'b1' has a different number of answered"):
        longitudinal_ladder(data, reference()["meta"]["model"], [1, 3, 6], "WLSMV", ordered=True)


@pytest.mark.parametrize(
    ("extra", "parameterization", "match"),
    [
        ("x1 ~*~ NA*x1", "theta", "scale factors .* delta parameterization only"),
        ("x1 ~*~ NA*x2", "delta", "written y ~\\*~ y"),
    ],
)
def test_scale_factor_statement_errors(extra, parameterization, match):
    from alliance.sem.model import ModelSpec

    with pytest.raises(ValueError, match=match):
        ModelSpec.from_syntax(f"f =~ x1 + x2 + x3\n{extra}", ordered=["x1", "x2", "x3"],
                              n_thresholds={"x1": 2, "x2": 2, "x3": 2},
                              parameterization=parameterization)  # fmt: skip


def test_inadmissible_step_gets_no_fit_and_no_test(monkeypatch):
    import alliance.sem.longitudinal as lng

    real = lng.admissibility

    def fake(res):
        out = real(res)
        if res.df == 118:  # the scalar step
            out = {**out, "admissible": False, "issues": ["negative variances (test)"]}
        return out

    monkeypatch.setattr(lng, "admissibility", fake)
    meta = reference()["meta"]
    out = longitudinal_ladder(wide("ml"), meta["model"], meta["waves"], "ML")
    steps = {s["name"]: s for s in out["steps"]}
    assert steps["scalar"]["fit"] is None and steps["scalar"]["test"] is None
    assert steps["strict"]["test"]["against"] == "metric"
    assert "scalar" not in out["decisions"] and "strict" in out["decisions"]
    ref = reference()["cases"]["ml"]["steps"]
    want = ref["strict"]["fit"]["chisq"] - ref["metric"]["fit"]["chisq"]
    assert steps["strict"]["test"]["chisq_diff"] == pytest.approx(want, rel=REL_CHISQ)
