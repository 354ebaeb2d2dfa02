import numpy as np
import pandas as pd
import pytest

from alliance.data.instruments import Instrument
from alliance.data.scoring import reverse_key, score_items

NAN = np.nan


@pytest.fixture
def tiny() -> Instrument:
    """Two 4-item factors on a 1-5 scale, one reverse-keyed item."""
    return Instrument(
        name="tiny",
        title="Tiny test instrument",
        rater="client",
        scale_min=1,
        scale_max=5,
        items=("a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"),
        factors={"a": ("a1", "a2", "a3", "a4"), "b": ("b1", "b2", "b3", "b4")},
        reverse_keyed=("b4",),
    )


@pytest.fixture
def tiny_items() -> pd.DataFrame:
    rows = [
        # a: all answered; b: b4=1 reversed to 5
        ("P1", 1, [1, 2, 3, 4, 5, 5, 5, 1]),
        # a: 3 of 4 answered (75%: scored); b: 2 of 4 (50%: missing)
        ("P2", 1, [2, NAN, 4, 3, NAN, 4, NAN, 2]),
        # nothing answered
        ("P3", 2, [NAN] * 8),
    ]
    table = pd.DataFrame(
        {
            "patient_id": [r[0] for r in rows],
            "therapist_id": ["T1", "T1", None],
            "session": pd.array([r[1] for r in rows], dtype="Int64"),
            "rater": "client",
            "site": ["A", "B", "A"],
            "source_row": pd.array([1, 2, 3], dtype="Int64"),
        },
        index=[10, 11, 12],
    )
    values = np.array([r[2] for r in rows], dtype=float)
    for j, item in enumerate(("a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4")):
        table[item] = pd.array(values[:, j], dtype="Float64")
    return table


def test_scores_by_hand(tiny, tiny_items):
    scores = score_items(tiny_items, tiny)
    # P1: a = mean(1, 2, 3, 4) = 2.5, sum 10; b = mean(5, 5, 5, 5 [reversed 1]) = 5, sum 20
    assert scores.loc[10, "a_mean"] == 2.5
    assert scores.loc[10, "a_sum"] == 10
    assert scores.loc[10, "b_mean"] == 5
    assert scores.loc[10, "b_sum"] == 20
    assert scores.loc[10, "total_mean"] == 3.75
    assert scores.loc[10, "total_sum"] == 30
    # P2: a answered 3 of 4 -> mean(2, 4, 3) = 3, prorated sum 3 * 4 = 12
    assert scores.loc[11, "a_answered"] == 3
    assert scores.loc[11, "a_mean"] == 3
    assert scores.loc[11, "a_sum"] == 12
    # b answered 2 of 4 (b2 = 4, b4 = 2 reversed to 4): 50% < 75% -> missing
    assert scores.loc[11, "b_answered"] == 2
    assert pd.isna(scores.loc[11, "b_mean"]) and pd.isna(scores.loc[11, "b_sum"])
    # total: 5 of 8 answered = 62.5% < 75% -> missing
    assert scores.loc[11, "total_answered"] == 5
    assert pd.isna(scores.loc[11, "total_mean"])
    # P3: nothing answered, every score missing, counts zero
    assert scores.loc[12, ["a_answered", "b_answered", "total_answered"]].tolist() == [0, 0, 0]
    assert scores.loc[12, ["a_mean", "b_sum", "total_mean"]].isna().all()


def test_lower_threshold_scores_half_answered(tiny, tiny_items):
    scores = score_items(tiny_items, tiny, min_answered_share=0.5)
    # b for P2: mean(4, 4) = 4, prorated sum 16
    assert scores.loc[11, "b_mean"] == 4
    assert scores.loc[11, "b_sum"] == 16


def test_columns_ids_and_dtypes(tiny, tiny_items):
    scores = score_items(tiny_items, tiny)
    ids = ["patient_id", "therapist_id", "session", "rater", "site", "source_row"]
    assert list(scores.columns[:6]) == ids
    assert list(scores.index) == [10, 11, 12]
    pd.testing.assert_frame_equal(scores[ids], tiny_items[ids])
    expected = [f"{f}_{s}" for f in ("a", "b", "total") for s in ("mean", "sum", "answered")]
    assert list(scores.columns[6:]) == expected
    assert str(scores["a_mean"].dtype) == "Float64"
    assert str(scores["a_answered"].dtype) == "Int64"
    assert not any(c in scores.columns for c in tiny.items)


def test_no_total_when_instrument_has_none(tiny, tiny_items):
    no_total = Instrument(**{**tiny.__dict__, "total": False})
    scores = score_items(tiny_items, no_total)
    assert not any(c.startswith("total_") for c in scores.columns)


def test_reverse_key_only_touches_keyed_items(tiny, tiny_items):
    keyed = reverse_key(tiny_items, tiny)
    assert keyed["b4"].tolist()[:2] == [5.0, 4.0]  # 1 + 5 - 1, 1 + 5 - 2
    pd.testing.assert_series_equal(keyed["b3"], tiny_items["b3"])
    assert tiny_items.loc[10, "b4"] == 1  # input unchanged


def test_wai_sr_scores_match_row_means(items_table, wai_sr):
    scores = score_items(items_table, wai_sr)
    values = items_table[list(wai_sr.factors["bond"])].astype(float)
    answered = values.notna().sum(axis=1)
    expected = values.mean(axis=1).where(answered >= 3)
    np.testing.assert_allclose(
        scores["bond_mean"].astype(float).to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        scores["bond_sum"].astype(float).to_numpy(), 4 * expected.to_numpy(), atol=1e-12
    )
    assert (scores["total_answered"] == items_table[list(wai_sr.items)].notna().sum(axis=1)).all()


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_min_answered_share_out_of_range(tiny, tiny_items, share):
    with pytest.raises(ValueError, match=rf"min_answered_share must lie in \(0, 1\], got {share}"):
        score_items(tiny_items, tiny, min_answered_share=share)


def test_min_answered_share_not_a_number(tiny, tiny_items):
    with pytest.raises(ValueError, match="min_answered_share must be a number, got '0.5'"):
        score_items(tiny_items, tiny, min_answered_share="0.5")


def test_missing_item_column(tiny, tiny_items):
    with pytest.raises(ValueError, match=r"item columns missing from the table, got \['a2'\]"):
        score_items(tiny_items.drop(columns="a2"), tiny)


def test_value_off_scale(tiny, tiny_items):
    bad = tiny_items.copy()
    bad.loc[11, "a3"] = 7.0
    with pytest.raises(ValueError, match=r"item 'a3' must lie in \[1, 5\].*got 7.0"):
        score_items(bad, tiny)


def test_non_numeric_item(tiny, tiny_items):
    bad = tiny_items.copy()
    bad["a1"] = ["x", "y", "z"]
    with pytest.raises(ValueError, match=r"must be numeric, got non-numeric columns \['a1'\]"):
        score_items(bad, tiny)


def test_factor_named_total_clashes(tiny, tiny_items):
    clash = Instrument(**{**tiny.__dict__, "factors": {"total": tiny.factors["a"]}})
    with pytest.raises(ValueError, match="clashes with the instrument total"):
        score_items(tiny_items, clash)
