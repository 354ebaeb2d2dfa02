import json

import numpy as np
import pandas as pd
import pytest

from alliance.describe.items import describe_dataset, describe_items, one_row_per_patient


def test_category_counts_and_shares(items_table, wai_sr):
    out = describe_items(items_table, wai_sr, session=2)
    rows = items_table[(items_table["rater"] == "client") & (items_table["session"] == 2)]
    counts, shares = out["counts"], out["proportions"]
    assert list(counts.columns) == [1, 2, 3, 4, 5]
    # items grouped by factor, in instrument order
    assert list(counts.index) == [i for f in wai_sr.factors.values() for i in f]
    for item in ("wai_01", "wai_09"):
        direct = rows[item].value_counts().reindex([1.0, 2, 3, 4, 5], fill_value=0)
        assert counts.loc[item].tolist() == direct.tolist()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    stats = out["item_stats"]
    assert stats.loc["wai_03", "ceiling_share"] == pytest.approx(
        (rows["wai_03"] == 5).sum() / rows["wai_03"].notna().sum()
    )
    assert stats.loc["wai_03", "floor_share"] == pytest.approx(shares.loc["wai_03", 1])
    assert stats.loc["wai_03", "factor"] == "bond"
    values = rows["wai_05"].dropna().astype(float)
    assert stats.loc["wai_05", "mean"] == pytest.approx(values.mean())
    assert stats.loc["wai_05", "sd"] == pytest.approx(values.std())
    assert stats.loc["wai_05", "skew"] == pytest.approx(values.skew())  # pandas: G1
    assert stats.loc["wai_05", "kurtosis"] == pytest.approx(values.kurt())  # pandas: G2


def test_missingness(items_table, wai_sr):
    out = describe_items(items_table, wai_sr, session=1)
    client = items_table[items_table["rater"] == "client"]
    s1 = client[client["session"] == 1]
    by_item = out["missing_by_item"]
    assert by_item.loc["wai_07", "n_missing"] == s1["wai_07"].isna().sum()
    assert by_item.loc["wai_07", "share_missing"] == pytest.approx(s1["wai_07"].isna().mean())
    by_session = out["missing_by_session"]
    assert list(by_session.index) == [1, 2, 3]  # all client sessions, whatever `session` is
    expected = client.groupby("session")["wai_10"].apply(lambda s: s.isna().mean())
    np.testing.assert_allclose(by_session["wai_10"], expected.to_numpy())


def test_item_total_is_corrected_correlation(make_items, wai_sr):
    table = make_items(wai_sr, missing_share=0.0)
    out = describe_items(table, wai_sr, session=1)
    rows = table[(table["rater"] == "client") & (table["session"] == 1)]
    members = list(wai_sr.factors["goal"])
    for item in members:
        rest = rows[[m for m in members if m != item]].astype(float).sum(axis=1)
        r = np.corrcoef(rows[item].astype(float), rest)[0, 1]
        assert out["item_total"].loc[("goal", item), "r_drop"] == pytest.approx(r, abs=1e-12)
    assert list(out["reliability"].index) == ["task", "goal", "bond", "total"]


def test_sample_is_reported(items_table, wai_sr):
    out = describe_items(items_table, wai_sr, rater="therapist")
    sample = out["sample"].iloc[0]
    assert sample["rule"] == "rater == 'therapist', all sessions"
    assert sample["n_rows"] == 120 and sample["n_patients"] == 120
    with pytest.raises(
        ValueError, match=r"no rows for rater='observer'.*\['client', 'therapist'\]"
    ):
        describe_items(items_table, wai_sr, rater="observer")
    with pytest.raises(ValueError, match="session must be an integer or None, got '1'"):
        describe_items(items_table, wai_sr, session="1")


def test_one_row_per_patient_takes_earliest_answered_session(items_table, wai_sr):
    table = items_table.copy()
    first = table.index[(table["patient_id"] == "P001") & (table["session"] == 1)]
    table.loc[first, list(wai_sr.items)] = np.nan
    rows, sample = one_row_per_patient(table, wai_sr)
    assert len(rows) == 120 and rows["patient_id"].is_unique
    assert rows.set_index("patient_id").loc["P001", "session"] == 2
    assert rows.set_index("patient_id").loc["P002", "session"] == 1
    assert (rows["rater"] == "client").all()
    assert sample["n_rows_selected"] == 360
    assert "earliest session with at least one answered item" in sample["rule"]


def test_describe_dataset(items_table, wai_sr):
    out = describe_dataset(items_table, wai_sr, n_iter=20)
    text = json.dumps(out, allow_nan=False)  # strictly JSON-serialisable
    assert json.loads(text) == out
    sample = out["sample"]
    first = items_table[(items_table["rater"] == "client") & (items_table["session"] == 1)]
    n_complete = int(first[list(wai_sr.items)].notna().all(axis=1).sum())
    assert sample["n_rows_used"] == 120
    assert sample["n_complete"] == n_complete == sample["n_obs"]
    assert sample["missing_data"].startswith("complete cases")
    assert out["kmo"]["n_obs"] == out["bartlett"]["n_obs"] == n_complete
    assert set(out["kmo"]["per_item"]) == set(wai_sr.items)
    assert out["bartlett"]["df"] == 66
    assert out["parallel_analysis"]["seed"] == 20261125
    assert len(out["parallel_analysis"]["eigenvalues"]) == 12
    assert out["efa"]["n_factors"] == 3
    assert set(out["efa"]["loadings"]["wai_01"]) == {"F1", "F2", "F3"}


def test_describe_dataset_pairwise(items_table, wai_sr):
    out = describe_dataset(items_table, wai_sr, session=1, use="pairwise", n_iter=10)
    first = items_table[(items_table["rater"] == "client") & (items_table["session"] == 1)]
    answered = first[list(wai_sr.items)].notna().astype(int)
    pair_n = answered.T @ answered
    assert out["kmo"]["n_obs"] == int(pair_n.to_numpy().min())
    assert out["sample"]["missing_data"].startswith("pairwise")


def test_describe_dataset_records_step_errors(items_table, wai_sr):
    table = items_table.copy()
    table["wai_01"] = pd.array([3.0] * len(table), dtype="Float64")
    out = describe_dataset(table, wai_sr, n_iter=5)
    for step in ("kmo", "bartlett", "parallel_analysis", "efa"):
        assert "items without variance" in out[step]["error"]


def test_describe_dataset_unknown_use(items_table, wai_sr):
    with pytest.raises(ValueError, match="use must be one of .*, got 'listwise'"):
        describe_dataset(items_table, wai_sr, use="listwise")


def test_describe_dataset_flags_factors_parallel_analysis_does_not_support(wai_sr, rng):
    # 80 patients whose answers come from one factor: parallel analysis suggests 1 factor,
    # the EFA extracts the instrument's 3; efa.warnings says both numbers.
    n = 80
    eta = rng.normal(size=n)
    answers = {
        item: (3 + 0.9 * eta + rng.normal(0, 0.6, n)).round().clip(1, 5) for item in wai_sr.items
    }
    table = pd.DataFrame(
        {"patient_id": [f"P{i}" for i in range(n)], "session": 3, "rater": "client"} | answers
    )
    out = describe_dataset(table, wai_sr, session=3, n_iter=50)
    assert out["parallel_analysis"]["n_factors"] == 1  # the truth: one factor
    assert out["efa"]["n_factors"] == 3
    assert out["efa"]["warnings"][-1].startswith(
        "3 factors were extracted (the factors of wai_sr) where parallel analysis suggests 1"
    )
