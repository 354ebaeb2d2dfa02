"""WLSMV CFA and the ordinal invariance ladder against lavaan 0.6-14 reference files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.sem.api import fit_cfa, fit_model, invariance_ladder
from alliance.sem.teststats import satorra2000_difference

DATA = Path(__file__).parent.parent / "data" / "lavaan" / "wai_sr_sim"
MODEL = (DATA / "wai_sr.lav").read_text()
REF = json.loads((DATA / "lavaan_wlsmv.json").read_text())
REF_INV = json.loads((DATA / "lavaan_wlsmv_invariance_site.json").read_text())["invariance"]
REF_PAIR = json.loads((DATA / "lavaan_wlsmv_extra.json").read_text())["pairwise_fit"]
LEVELS = ("configural", "metric", "scalar")

# Tolerances from /work/shared/reference/README.md for the WLSMV files: thresholds and
# polychoric-based estimates within 2e-3 (absolute), robust SEs and the scaled chi-square
# within 1% (relative). Chi-square-type values use the relative tolerance; indices, p-values
# and estimates the absolute one; counts must be equal.
EST_TOL = 2e-3
REL_TOL = 0.01
COUNTS = {"npar", "df", "df.scaled", "baseline.df", "baseline.df.scaled"}


def check_fit_value(key: str, ours: float | None, ref: float | None) -> None:
    """Compare one fit measure with the tolerance of its kind."""
    if ref is None:
        assert ours is None
        return
    assert ours is not None
    if key in COUNTS:
        assert ours == ref
    elif "chisq" in key:
        assert ours == pytest.approx(ref, rel=REL_TOL)
    else:
        assert ours == pytest.approx(ref, abs=EST_TOL)


def check_row(ours: dict, ref: dict, est: str) -> None:
    """Compare one parameter (or standardized) row: estimate absolute, SE relative."""
    assert ours[est] == pytest.approx(ref[est], abs=EST_TOL)
    if ref["se"] == 0:
        assert ours["se"] == 0
        assert ours["z"] is None
    else:
        assert ours["se"] == pytest.approx(ref["se"], rel=REL_TOL)
    if "free" in ref:
        assert ours["free"] == ref["free"]


def key(row: dict) -> tuple:
    return (row["lhs"], row["op"], row["rhs"], row.get("group", 1))


@pytest.fixture(scope="module")
def wai() -> pd.DataFrame:
    return pd.read_csv(DATA / "wai_sr_sim.csv")


@pytest.fixture(scope="module")
def single(wai: pd.DataFrame) -> dict:
    return fit_cfa(wai, MODEL, estimator="WLSMV")


@pytest.fixture(scope="module")
def pairwise() -> dict:
    data = pd.read_csv(DATA / "wai_sr_sim_missing.csv")
    return fit_cfa(data, MODEL, estimator="WLSMV", missing="pairwise")


@pytest.fixture(scope="module")
def invariance(wai: pd.DataFrame) -> dict:
    return invariance_ladder(wai, MODEL, "site", estimator="WLSMV", steps=LEVELS)


# ------------------------------------------------------------------ single group


def test_layout_and_json(single: dict) -> None:
    assert set(REF) - {"fit_all", "reliability"} <= set(single)
    assert single["converged"] is True
    assert single["nobs"] == REF["nobs"]
    assert single["ntotal"] == REF["ntotal"]
    assert single["meta"]["estimator"] == "WLSMV"
    assert single["meta"]["test"] == REF["meta"]["test"]
    assert single["meta"]["se"] == REF["meta"]["se"]
    json.dumps(single, allow_nan=False)
    assert [key(r) for r in single["parameters"]] == [key(r) for r in REF["parameters"]]


@pytest.mark.parametrize("name", list(REF["fit"]))
def test_fit_measure(single: dict, name: str) -> None:
    check_fit_value(name, single["fit"].get(name), REF["fit"][name])


@pytest.mark.parametrize("ref", REF["parameters"], ids=lambda r: "".join(key(r)[:3]))
def test_parameter(single: dict, ref: dict) -> None:
    ours = {key(r): r for r in single["parameters"]}[key(ref)]
    check_row(ours, ref, "est")


@pytest.mark.parametrize("ref", REF["standardized"], ids=lambda r: "".join(key(r)[:3]))
def test_standardized(single: dict, ref: dict) -> None:
    ours = {key(r): r for r in single["standardized"]}[key(ref)]
    check_row(ours, ref, "est.std")


def test_scaled_shifted_identity(single: dict) -> None:
    fit = single["fit"]
    shifted = fit["chisq"] / fit["chisq.scaling.factor"] + fit["chisq.shift.parameter"]
    assert fit["chisq.scaled"] == pytest.approx(shifted, rel=1e-12)


# ------------------------------------------------------------------ pairwise missing data


@pytest.mark.parametrize(
    "name",
    [k for k in REF["fit"] if REF_PAIR["fit"].get(k) is not None],
)
def test_pairwise_fit_measure(pairwise: dict, name: str) -> None:
    check_fit_value(name, pairwise["fit"][name], REF_PAIR["fit"][name])


@pytest.mark.parametrize("ref", REF_PAIR["parameters"], ids=lambda r: "".join(key(r)[:3]))
def test_pairwise_parameter(pairwise: dict, ref: dict) -> None:
    ours = {key(r): r for r in pairwise["parameters"]}[key(ref)]
    check_row(ours, ref, "est")


@pytest.mark.parametrize("ref", REF_PAIR["standardized"], ids=lambda r: "".join(key(r)[:3]))
def test_pairwise_standardized(pairwise: dict, ref: dict) -> None:
    ours = {key(r): r for r in pairwise["standardized"]}[key(ref)]
    check_row(ours, ref, "est.std")


# ------------------------------------------------------------------ invariance ladder


def test_invariance_layout(invariance: dict) -> None:
    json.dumps(invariance, allow_nan=False)
    for level in LEVELS:
        assert invariance[level]["group_labels"] == REF_INV[level]["group_labels"]
        assert invariance[level]["nobs"] == REF_INV[level]["nobs"]
        assert invariance[level]["converged"] is True
        assert sorted(invariance[level]["group.equal"]) == sorted(
            np.atleast_1d(REF_INV[level]["group.equal"]).tolist()
        )


@pytest.mark.parametrize(("level", "name"), [(lv, k) for lv in LEVELS for k in REF_INV[lv]["fit"]])
def test_invariance_fit_measure(invariance: dict, level: str, name: str) -> None:
    check_fit_value(name, invariance[level]["fit"].get(name), REF_INV[level]["fit"][name])


@pytest.mark.parametrize(
    ("level", "ref"),
    [(lv, r) for lv in LEVELS for r in REF_INV[lv]["parameters"]],
    ids=lambda v: v if isinstance(v, str) else "".join(map(str, key(v))),
)
def test_invariance_parameter(invariance: dict, level: str, ref: dict) -> None:
    ours = {key(r): r for r in invariance[level]["parameters"]}[key(ref)]
    check_row(ours, ref, "est")
    assert ours.get("label", "") == ref.get("label", "")


@pytest.mark.parametrize(
    ("level", "ref"),
    [(lv, r) for lv in LEVELS for r in REF_INV[lv]["standardized"]],
    ids=lambda v: v if isinstance(v, str) else "".join(map(str, key(v))),
)
def test_invariance_standardized(invariance: dict, level: str, ref: dict) -> None:
    ours = {key(r): r for r in invariance[level]["standardized"]}[key(ref)]
    check_row(ours, ref, "est.std")


@pytest.mark.parametrize("row", range(len(REF_INV["lrt"]["table"])))
def test_invariance_lrt(invariance: dict, row: int) -> None:
    ref = REF_INV["lrt"]["table"][row]
    ours = invariance["lrt"]["table"][row]
    assert ours["model"] == ref["model"]
    assert ours["Df"] == ref["Df"]
    assert ours["Chisq"] == pytest.approx(ref["Chisq"], rel=REL_TOL)
    for name, tol in (("Chisq_diff", {"rel": REL_TOL}), ("Pr_gt_Chisq", {"abs": EST_TOL})):
        if ref[name] is None:
            assert ours[name] is None
        else:
            assert ours[name] == pytest.approx(ref[name], **tol)
    assert ours["Df_diff"] == ref["Df_diff"]


@pytest.mark.parametrize(
    ("pair", "name"),
    [(p, k) for p, d in REF_INV["deltas"].items() for k in d],
)
def test_invariance_deltas(invariance: dict, pair: str, name: str) -> None:
    ref = REF_INV["deltas"][pair][name]
    ours = invariance["deltas"][pair][name]
    if ref is None:
        assert ours is None
    else:
        assert ours == pytest.approx(ref, abs=EST_TOL)


def test_lrt_needs_nested_order(wai: pd.DataFrame) -> None:
    m1 = fit_model(wai, MODEL, "WLSMV", group="site")
    m0 = fit_model(wai, MODEL, "WLSMV", group="site", group_equal=("loadings",))
    test = satorra2000_difference(m1, m0)
    assert test["df_diff"] == 9
    assert math.isfinite(test["chisq_diff"])
    with pytest.raises(ValueError, match="more degrees of freedom"):
        satorra2000_difference(m0, m1)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "f =~ wai_01 + wai_02 + nope"}, "not in the data"),
        ({"ordered": ["wai_01"]}, "every observed indicator ordered"),
        ({"ordered": ["zzz"]}, "ordered variables not in the model"),
        ({"missing": "everything"}, "missing must be"),
        ({"ordered": "wai_01"}, "ordered must be None, True or a list"),
        ({"group": "nogroup"}, "group column not in the data"),
        ({"group": "one"}, "at least two groups"),
    ],
)
def test_bad_input(wai: pd.DataFrame, kwargs: dict, message: str) -> None:
    data = wai.assign(one="x")
    args = {"model": MODEL} | kwargs
    with pytest.raises(ValueError, match=message):
        fit_cfa(data, estimator="WLSMV", **args)


def test_constant_item_is_an_error(wai: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="at least two categories"):
        fit_cfa(wai.assign(wai_01=3), MODEL, estimator="WLSMV")


def test_empty_category_in_a_group_is_named(wai: pd.DataFrame) -> None:
    data = wai.copy()
    data.loc[(data["site"] == "B") & (data["wai_03"] == 1), "wai_03"] = 2
    if not ((data["site"] == "A") & (data["wai_03"] == 1)).any():
        pytest.skip("category 1 of wai_03 absent in both groups")
    with pytest.raises(ValueError, match="empty categories .* in group 'B'"):
        fit_cfa(data, MODEL, estimator="WLSMV", group="site")


def test_ordered_true_means_all_items(wai: pd.DataFrame, single: dict) -> None:
    out = fit_cfa(wai, MODEL, estimator="WLSMV", ordered=True)
    assert out["fit"]["chisq"] == pytest.approx(single["fit"]["chisq"], rel=1e-10)


def test_invariance_ladder_drops_strict_with_a_note(wai: pd.DataFrame) -> None:
    steps = ("configural", "metric", "strict")
    out = invariance_ladder(wai, MODEL, "site", estimator="WLSMV", steps=steps)
    assert "strict" not in out
    assert out["notes"]
    assert out["lrt"]["table"][1]["Chisq_diff"] == pytest.approx(
        REF_INV["lrt"]["table"][1]["Chisq_diff"], rel=REL_TOL
    )
    with pytest.raises(ValueError, match="unknown invariance steps"):
        invariance_ladder(wai, MODEL, "site", estimator="WLSMV", steps=("configural", "partial"))
