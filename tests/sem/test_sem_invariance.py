"""Invariance ladder against lavaan: fit per step, parameters, LRT, deltas, score tests."""

from __future__ import annotations

import pytest
from conftest import LADDERS, dataset, ladder_fitted, ladder_reference, reference

from alliance.sem.invariance import chen_decision

CHISQ_LIKE = {
    "chisq",
    "chisq.scaled",
    "baseline.chisq",
    "baseline.chisq.scaled",
    "logl",
    "unrestricted.logl",
    "aic",
    "bic",
    "bic2",
}
MAIN = (
    "npar", "chisq", "df", "pvalue", "cfi", "tli", "rmsea", "rmsea.ci.lower", "rmsea.ci.upper",
    "srmr", "logl", "aic", "bic", "baseline.chisq", "chisq.scaled", "chisq.scaling.factor",
    "cfi.scaled", "cfi.robust", "tli.robust", "rmsea.robust",
)  # fmt: skip


def _fit_params():
    out = []
    for name in LADDERS:
        ref = ladder_reference(name)
        for step in ("configural", "metric", "scalar", "strict"):
            if step not in ref:
                continue
            official = "strict" not in name  # the shared reference files: every fit measure
            for measure in ref[step]["fit"] if official else MAIN:
                if measure in ref[step]["fit"]:
                    out.append(pytest.param(name, step, measure, id=f"{name}-{step}-{measure}"))
    return out


@pytest.mark.parametrize(("name", "step", "measure"), _fit_params())
def test_step_fit_matches_lavaan(name, step, measure):
    ref = ladder_reference(name)[step]["fit"][measure]
    mine = ladder_fitted(name)[step]["fit_all"][measure]
    if ref is None:
        assert mine is None
        return
    tol = 0.01 if measure in CHISQ_LIKE else 1e-3
    assert mine == pytest.approx(ref, abs=tol)


@pytest.mark.parametrize("name", list(LADDERS))
def test_step_parameters_match_lavaan(name):
    ref = ladder_reference(name)
    mine = ladder_fitted(name)
    for step in ("configural", "metric", "scalar", "strict"):
        if step not in ref:
            continue
        want = {(p["lhs"], p["op"], p["rhs"], p["group"]): p for p in ref[step]["parameters"]}
        got = mine[step]["parameters"]
        assert len(got) == len(want)
        for row in got:
            r = want[(row["lhs"], row["op"], row["rhs"], row["group"])]
            assert row["est"] == pytest.approx(r["est"], abs=1e-3)
            assert row["se"] == pytest.approx(r["se"], abs=1e-3)


@pytest.mark.parametrize("name", list(LADDERS))
def test_lrt_matches_lavaan(name):
    ref = ladder_reference(name)["lrt"]
    ref_rows = ref["table"] if isinstance(ref, dict) else ref
    mine = ladder_fitted(name)["lrt"]["table"]
    assert [r["model"] for r in mine] == [r["model"] for r in ref_rows]
    for a, b in zip(mine, ref_rows, strict=True):
        assert a["Df"] == b["Df"]
        assert a["Chisq"] == pytest.approx(b["Chisq"], abs=0.01)
        if b["Chisq_diff"] is None:
            continue
        assert a["Chisq_diff"] == pytest.approx(b["Chisq_diff"], abs=0.01)
        assert a["Pr_gt_Chisq"] == pytest.approx(b["Pr_gt_Chisq"], abs=1e-3)
        if b.get("RMSEA") is not None:
            assert a["RMSEA"] == pytest.approx(b["RMSEA"], abs=1e-3)


@pytest.mark.parametrize("name", ["holzinger_ml", "wai_ml"])
def test_deltas_match_lavaan(name):
    ref = ladder_reference(name)["deltas"]
    mine = ladder_fitted(name)["deltas"]
    for pair, values in ref.items():
        for k, v in values.items():
            assert mine[pair][k] == pytest.approx(v, abs=1e-3), (pair, k)


@pytest.mark.parametrize("name", ["holzinger_ml_strict", "wai_ml_strict", "wai_mlr_strict"])
def test_release_score_tests_match_lavtestscore(name):
    ref = ladder_reference(name)["score_scalar"]
    plabel = {r["plabel"]: r for r in ref["partable"]}
    want = {}
    for row in ref["uni"]:
        other = plabel[row["rhs"]]
        want[(other["lhs"], other["op"], other["rhs"], other["group"])] = row["X2"]
    got = ladder_fitted(name)["partial"]["scalar"]
    assert len(got) == 10
    for row in got:
        assert row["X2"] == pytest.approx(want[(row["lhs"], row["op"], row["rhs"], row["group"])],
                                          abs=0.01)  # fmt: skip
    assert got[0]["X2"] == pytest.approx(max(want.values()), abs=0.01)


def test_decisions_named_and_consistent():
    out = ladder_fitted("holzinger_ml")
    dec = out["decisions"]
    assert set(dec) == {"metric", "scalar"}
    assert "Chen (2007)" in dec["scalar"]["criterion"]
    assert dec["metric"]["invariant"] is True
    assert dec["scalar"]["invariant"] is False  # delta CFI -.038, delta RMSEA .015
    assert dec["scalar"]["cutoffs"]["delta_srmr"] == 0.010
    assert dec["metric"]["cutoffs"]["delta_srmr"] == 0.030


def test_chen_decision_rules():
    ok = chen_decision("metric", {"cfi": -0.005, "rmsea": 0.02, "srmr": 0.04})
    assert ok["invariant"] is True
    bad = chen_decision("scalar", {"cfi": -0.02, "rmsea": 0.001, "srmr": 0.02})
    assert bad["invariant"] is False
    assert chen_decision("scalar", {"cfi": None, "rmsea": 0.0, "srmr": 0.0})["invariant"] is None
    deltas = {"cfi": -0.02, "rmsea": 0.02, "srmr": 0.0, "cfi.robust": -0.001, "rmsea.robust": 0.0}
    robust = chen_decision("metric", deltas, robust=True)
    assert robust["invariant"] is True and robust["indices"]["cfi"] == "cfi.robust"


def test_ladder_bad_input():
    from alliance.sem.api import invariance_ladder

    data = dataset("holzinger_ml")
    model = reference("holzinger_ml")["meta"]["model"]
    with pytest.raises(ValueError, match="not in the data"):
        invariance_ladder(data, model, "nope")
    with pytest.raises(ValueError, match="at least 2 levels"):
        invariance_ladder(data.assign(one="x"), model, "one")
    with pytest.raises(ValueError, match="unknown invariance steps"):
        invariance_ladder(data, model, "school", steps=("configural", "partial"))
