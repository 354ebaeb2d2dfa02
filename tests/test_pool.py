import json

import pandas as pd
import pytest

from alliance.data.pool import pool_items, pool_to


def write_ingested(folder, instrument="wai_sr", patients=("P1", "P2"), extra_group=None):
    folder.mkdir(parents=True)
    rows = []
    for i, patient in enumerate(patients):
        row = {"patient_id": patient, "therapist_id": "T1", "session": 1, "rater": "client"}
        if extra_group:
            row[extra_group] = "g"
        row["source_row"] = i + 1
        row |= {f"wai_{k:02d}": float(1 + (k + i) % 5) for k in range(1, 13)}
        rows.append(row)
    items = pd.DataFrame(rows).astype({"patient_id": "string", "therapist_id": "string"})
    items.to_parquet(folder / "items.parquet", index=False)
    report = {"dataset": folder.parent.name, "kind": "items", "instrument": instrument}
    (folder / "ingest_report.json").write_text(json.dumps(report))
    return folder


def test_pooling_keeps_every_row_and_keeps_ids_apart(tmp_path):
    a = write_ingested(tmp_path / "a" / "ingest", extra_group="site")
    b = write_ingested(tmp_path / "b" / "ingest", patients=("P1", "P2", "P3"))
    items, report = pool_items({"a": a, "b": b})
    assert report["rows_per_dataset"] == {"a": 2, "b": 3}
    assert len(items) == 5
    assert items["patient_id"].nunique() == 5  # P1 of a and P1 of b are different people
    assert items["patient_id"].iloc[0] == "a:P1"
    assert items.columns[:5].tolist() == [
        "dataset",
        "patient_id",
        "therapist_id",
        "session",
        "rater",
    ]
    assert items.columns[-1] == "wai_12"
    assert items["site"].isna().sum() == 3
    original = pd.read_parquet(b / "items.parquet")
    pooled_b = items[items["dataset"] == "b"].reset_index(drop=True)
    pd.testing.assert_series_equal(pooled_b["wai_07"], original["wai_07"])
    written = pool_to({"a": a, "b": b}, tmp_path / "pooled")
    assert written == report
    assert len(pd.read_parquet(tmp_path / "pooled" / "items.parquet")) == 5


def test_pooling_refuses_different_instruments(tmp_path):
    a = write_ingested(tmp_path / "a" / "ingest")
    b = write_ingested(tmp_path / "b" / "ingest", instrument="phq9")
    with pytest.raises(ValueError, match=r"different instruments"):
        pool_items({"a": a, "b": b})


def test_pooling_needs_two(tmp_path):
    a = write_ingested(tmp_path / "a" / "ingest")
    with pytest.raises(ValueError, match=r"at least two datasets, got \['a'\]"):
        pool_items({"a": a})
