"""Ordered categories that are empty in some group: collapsing them, against lavaan 0.6-14.

lavaan stops when a category of an ordered item has no responses in one group ("some
categories of variable ... are empty in group ..."); so do we unless asked to collapse. With
``collapse_empty_categories=True`` the empty category is merged with an adjacent one of the
same item in every group (:mod:`alliance.sem.categories`). ``tests/data/lavaan/collapse``
holds the raw data, the collapsed data (written by ``make_data.py`` with that function) and
lavaan's fits of the collapsed data (``make_collapse.R``): the WLSMV ladder across two sites
(three items edited: a lowest, an inner and two neighbouring categories empty) and across five
simulated sites (the bench's pooled sample, eleven items without a 1 in some site; delta and
theta parameterizations), and a single-group listwise fit in which deletion empties a
category. Tolerances: chi-squares (also the difference tests) within 1e-4 relative, CFI, RMSEA
and SRMR within 1e-5; measured: chi-squares 5e-8 (difference tests 3e-7) relative, indices 1e-7.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.sem.api import fit_cfa, invariance_ladder
from alliance.sem.categories import collapse_empty_categories, empty_categories
from alliance.sem.model import ModelSpec

HERE = Path(__file__).parents[1] / "data" / "lavaan"
DIR = HERE / "collapse"
REF = json.loads((DIR / "lavaan_collapse.json").read_text())
MODEL = (HERE / "wai_sr_sim" / "wai_sr.lav").read_text()
ITEMS = ModelSpec.from_syntax(MODEL).ov  # the order in which the fit collapses them
CHISQ_REL = 1e-4
INDEX_ABS = 1e-5
#: case -> (grouping column, missing)
CASES = {"wai_empty": ("site", "listwise"), "sites5_empty": ("dataset", "pairwise")}
LADDERS = [
    ("wai_empty", "delta"),
    ("sites5_empty", "delta"),
    ("sites5_empty", "theta"),
]
FIT_KEYS = ("chisq", "chisq.scaled", "cfi.scaled", "rmsea.scaled", "cfi.robust", "rmsea.robust",
            "srmr")  # fmt: skip


def _raw(case: str) -> pd.DataFrame:
    return pd.read_csv(DIR / f"{case}.csv")


_LADDERS: dict[tuple[str, str], dict] = {}


def _ladder(case: str, parameterization: str) -> dict:
    key = (case, parameterization)
    if key not in _LADDERS:
        group, missing = CASES[case]
        steps = [s for s in ("configural", "metric", "scalar", "strict") if s in REF[case][key[1]]]
        _LADDERS[key] = invariance_ladder(
            _raw(case), MODEL, group, "WLSMV", missing, steps=steps,
            parameterization=parameterization, collapse_empty_categories=True,
        )  # fmt: skip
    return _LADDERS[key]


def _assert_fit(ours: dict, ref: dict) -> None:
    assert ours["df"] == ref["df"]
    for key in FIT_KEYS:
        want = ref.get(key)
        if want is None:
            assert ours.get(key) is None, key
        elif key.startswith("chisq"):
            assert ours[key] == pytest.approx(want, rel=CHISQ_REL), key
        else:
            assert ours[key] == pytest.approx(want, abs=INDEX_ABS), key


# ------------------------------------------------------------------ the collapsing rule


def _frame(values_by_group: dict[str, list[float]]) -> pd.DataFrame:
    rows = [(g, v) for g, vals in values_by_group.items() for v in vals]
    data = pd.DataFrame(rows, columns=["g", "y"])
    data["z"] = 1.0
    return data


def test_lowest_and_highest_categories_merge_inwards():
    data = _frame({"a": [1, 2, 3, 4, 4], "b": [2, 2, 3, 3, 3]})
    out, rec = collapse_empty_categories(data, ["y"], "g")
    assert [(r["category"], r["merged_into"]) for r in rec] == [(1.0, 2.0), (4.0, 3.0)]
    assert rec[0]["empty_in_groups"] == ["b"]
    assert rec[0]["counts"] == {"a": [1, 1], "b": [0, 2]}
    assert out["y"].tolist() == [2, 2, 3, 3, 3, 2, 2, 3, 3, 3]
    assert data["y"].tolist()[0] == 1  # the input is left alone


def test_inner_category_merges_with_the_smaller_neighbour():
    # 3 is empty in b; 2 has 2 responses in all, 4 has 4: merge 3 into 2
    data = _frame({"a": [1, 2, 3, 4, 4, 5], "b": [1, 2, 4, 4, 5, 5]})
    _, rec = collapse_empty_categories(data, ["y"], "g")
    assert [(r["category"], r["merged_into"]) for r in rec] == [(3.0, 2.0)]
    # a tie goes to the lower neighbour
    data = _frame({"a": [1, 2, 3, 4, 5], "b": [1, 2, 4, 5, 5]})
    _, rec = collapse_empty_categories(data, ["y"], "g")
    assert [(r["category"], r["merged_into"]) for r in rec] == [(3.0, 2.0)]


def test_neighbouring_empty_categories_merge_in_turn():
    data = _frame({"a": [3, 3, 4, 5], "b": [1, 2, 3, 4, 5]})
    out, rec = collapse_empty_categories(data, ["y"], "g")
    assert [(r["category"], r["merged_into"]) for r in rec] == [(1.0, 2.0), (2.0, 3.0)]
    assert rec[1]["original_categories"] == [1.0, 2.0, 3.0]
    assert sorted(out["y"].unique()) == [3, 4, 5]
    assert empty_categories(out, ["y"], "g") == []


def test_nothing_to_collapse_returns_the_data():
    data = _frame({"a": [1, 2, 3], "b": [1, 2, 3]})
    out, rec = collapse_empty_categories(data, ["y", "z"], "g")
    assert rec == []
    pd.testing.assert_frame_equal(out, data)


def test_counts_follow_the_missing_data_method():
    # category 1 of y is answered only in a row that lacks z: empty after listwise deletion
    data = pd.DataFrame({"y": [1, 2, 2, 3, 3], "z": [np.nan, 1, 2, 1, 2]})
    assert collapse_empty_categories(data, ["y", "z"], None, "pairwise")[1] == []
    out, rec = collapse_empty_categories(data, ["y", "z"], None, "listwise")
    assert [(r["item"], r["category"], r["merged_into"]) for r in rec] == [("y", 1.0, 2.0)]
    assert "listwise deletion" in rec[0]["reason"]
    assert empty_categories(data, ["y", "z"], None, "listwise") == [
        {"item": "y", "category": 1.0, "groups": ["1"]}
    ]


def test_bad_input():
    data = _frame({"a": [1, 2], "b": [2, 2]})
    with pytest.raises(ValueError, match=r"would keep fewer than two categories"):
        collapse_empty_categories(data, ["y"], "g")
    with pytest.raises(ValueError, match=r"items not in the data: \['nope'\]"):
        collapse_empty_categories(data, ["nope"], "g")
    with pytest.raises(ValueError, match=r"group column not in the data: 'h'"):
        collapse_empty_categories(data, ["y"], "h")
    with pytest.raises(ValueError, match=r"missing must be 'listwise' or 'pairwise', got 'ml'"):
        collapse_empty_categories(data, ["y"], "g", missing="ml")


# ------------------------------------------------------------------ the reference data


@pytest.mark.parametrize("case", ["wai_empty", "sites5_empty", "wai_listwise_empty"])
def test_collapsed_data_are_the_data_lavaan_saw(case):
    group, missing = CASES.get(case, (None, "listwise"))
    ours, records = collapse_empty_categories(_raw(case), ITEMS, group, missing)
    theirs = pd.read_csv(DIR / f"{case}_collapsed.csv")
    np.testing.assert_array_equal(
        ours[ITEMS].to_numpy(dtype=float), theirs[ITEMS].to_numpy(dtype=float)
    )
    assert records == json.loads((DIR / f"{case}_collapsed.json").read_text())
    assert records and empty_categories(ours, ITEMS, group, missing) == []


@pytest.mark.parametrize("case", list(CASES))
def test_raw_data_stop_as_in_lavaan(case):
    group, missing = CASES[case]
    assert "are empty in group" in REF[case]["raw_error"]
    with pytest.raises(ValueError, match=r"has empty categories .* in group .*collapse_empty"):
        invariance_ladder(_raw(case), MODEL, group, "WLSMV", missing)


def test_wai_empty_merges():
    records = json.loads((DIR / "wai_empty_collapsed.json").read_text())
    got = [(r["item"], r["category"], r["merged_into"], r["empty_in_groups"]) for r in records]
    assert got == [
        ("wai_03", 1.0, 2.0, ["B"]),  # the lowest category, merged upwards
        ("wai_05", 2.0, 1.0, ["B"]),  # an inner one, merged with the smaller neighbour
        ("wai_07", 1.0, 2.0, ["A"]),  # 1 and 2 both empty in A: two merges
        ("wai_07", 2.0, 3.0, ["A"]),
    ]


# ------------------------------------------------------------------ against lavaan


@pytest.mark.parametrize(("case", "parameterization"), LADDERS)
def test_ladder_on_collapsed_data_matches_lavaan(case, parameterization):
    ladder = _ladder(case, parameterization)
    ref = REF[case][parameterization]
    steps = [s for s in ("configural", "metric", "scalar", "strict") if s in ref]
    for step in steps:
        assert ladder[step]["nobs"] == np.atleast_1d(ref[step]["nobs"]).tolist()
        assert ladder[step]["fit"]["npar"] == ref[step]["fit"]["npar"]
        _assert_fit(ladder[step]["fit"], ref[step]["fit"])
        ours_th = sum(1 for r in ladder[step]["parameters"] if r["op"] == "|" and r["group"] == 1)
        assert ours_th == ref[step]["nthresholds"]
    theirs = {r["model"]: r for r in ref["lrt"]}
    for row in ladder["lrt"]["table"][1:]:
        want = theirs[row["model"]]
        assert row["Df_diff"] == want["Df_diff"]
        assert row["Chisq_diff"] == pytest.approx(want["Chisq_diff"], rel=CHISQ_REL)


@pytest.mark.parametrize(("case", "parameterization"), LADDERS)
def test_ladder_records_the_merges(case, parameterization):
    ladder = _ladder(case, parameterization)
    records = json.loads((DIR / f"{case}_collapsed.json").read_text())
    assert ladder["collapsed_categories"] == records
    note = ladder["notes"][-1]
    assert note.startswith("Ordered categories without responses in some group were merged")
    assert "Rutkowski, Svetina & Liaw 2019" in note
    assert all(f"{r['item']}: {r['category']:g} -> {r['merged_into']:g}" in note for r in records)


def test_single_group_listwise_fit_matches_lavaan():
    raw = _raw("wai_listwise_empty")
    assert "are empty in group 1" in REF["wai_listwise_empty"]["raw_error"]
    with pytest.raises(ValueError, match=r"'wai_03' has empty categories \[1.0\]"):
        fit_cfa(raw, MODEL, "WLSMV", "listwise")
    out = fit_cfa(raw, MODEL, "WLSMV", "listwise", collapse_empty_categories=True)
    ref = REF["wai_listwise_empty"]["single"]
    assert out["ntotal"] == ref["nobs"]
    assert out["fit"]["npar"] == ref["fit"]["npar"] == 62
    _assert_fit(out["fit"], ref["fit"])
    assert [r["item"] for r in out["collapsed_categories"]] == ["wai_03"]
    assert any("merged" in n for n in out["meta"]["notes"])
    # pairwise deletion keeps the answers, so nothing is empty and nothing is collapsed
    pair = fit_cfa(raw, MODEL, "WLSMV", "pairwise", collapse_empty_categories=True)
    assert pair["collapsed_categories"] == []


def test_collapse_is_off_by_default_and_ignored_for_continuous_items():
    ladder = invariance_ladder(_raw("wai_empty"), MODEL, "site", "MLR", "listwise",
                               steps=("configural",), collapse_empty_categories=True)  # fmt: skip
    assert "collapsed_categories" not in ladder
