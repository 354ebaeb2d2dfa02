"""Every bad export of tests/data/bad_inputs through ``alliance ingest`` (issue 14).

Each folder holds an export, its ``codebook.yaml`` and ``expected.yaml`` (written by hand from
the case's description; ``make_cases.py`` writes the exports). Keys of ``expected.yaml``:

- ``exit``: the exit status (0, or 2 for an error message without a traceback);
- ``error``: substrings of the error message (exit 2);
- ``records``: the physical data records of the export, counted by hand; the ingest must have
  ``rows_in == records == rows_kept + rows_quarantined``;
- ``report``: keys of ``ingest_report.json`` and their exact values (a dict is compared key by
  key);
- ``quarantine``: every line of ``quarantine.csv`` as ``[row, column, reason, scope]``, or
  ``quarantine_count``: their number;
- ``values``: row -> the raw value of that row's first quarantine line;
- ``details`` / ``warnings``: substrings each found in some quarantine detail / warning;
- ``patients``: the patient IDs of ``patients.parquet``; ``outcome_values``: the sorted values
  of ``outcomes.parquet``;
- ``attendance``: every row of ``attendance.parquet`` as ``[patient, session, rater (null for
  an invalid code), source records, kept]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from alliance.cli import main
from alliance.tables import read_csv

CASES = Path(__file__).parent / "data" / "bad_inputs"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "expected.yaml").is_file())


def test_every_case_folder_has_an_expectation():
    folders = sorted(p.name for p in CASES.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == NAMES
    assert len(NAMES) >= 20


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name, tmp_path, capsys):
    folder = CASES / name
    want = yaml.safe_load((folder / "expected.yaml").read_text())
    out = tmp_path / "out"
    code = main(["ingest", str(folder / want.get("codebook", "codebook.yaml")), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == want["exit"], captured.err
    assert "Traceback" not in captured.err
    if want["exit"] != 0:
        assert captured.err.startswith("alliance ingest: error: "), captured.err
        assert captured.err.count("\n") == 1, "one line"
        for text in want["error"]:
            assert text in captured.err
        return
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["rows_in"] == want["records"] == report["rows_kept"] + report["rows_quarantined"]
    for key, value in want.get("report", {}).items():
        if isinstance(value, dict) and key in ("tidy",):
            for sub, v in value.items():
                assert report[key][sub] == v, (key, sub)
        else:
            assert report[key] == value, key
    # formula-safe on disk ('=1+2); read_csv gives the raw value back
    quarantine = read_csv(out / "quarantine.csv", dtype=str, keep_default_na=False)
    assert not any(
        v.startswith("=") for v in pd.read_csv(out / "quarantine.csv", dtype=str)["value"].dropna()
    )
    lines = sorted(
        [int(r["row"]), r["column"], r["reason"], r["scope"]] for _, r in quarantine.iterrows()
    )
    if "quarantine" in want:
        assert lines == sorted(want["quarantine"])
    if "quarantine_count" in want:
        assert len(lines) == want["quarantine_count"]
    for row, value in want.get("values", {}).items():
        assert quarantine.loc[quarantine["row"] == str(row), "value"].iloc[0] == str(value)
    for text in want.get("details", []):
        assert quarantine["detail"].str.contains(text, regex=False).any(), text
    for text in want.get("warnings", []):
        assert any(text in w for w in report["warnings"]), (text, report["warnings"])
    if "patients" in want:
        patients = pd.read_parquet(out / "patients.parquet")
        assert sorted(patients["patient_id"]) == sorted(want["patients"])
    if "outcome_values" in want:
        outcomes = pd.read_parquet(out / "outcomes.parquet")
        assert sorted(outcomes["value"].astype(float)) == want["outcome_values"]
    if "attendance" in want:
        attendance = pd.read_parquet(out / "attendance.parquet")
        got = [
            [r.patient_id, int(r.session), None if pd.isna(r.rater) else r.rater, r.records, r.kept]
            for r in attendance.itertuples()
        ]
        assert got == want["attendance"]
    # the printed summary agrees with the report
    assert f"{report['rows_in']} rows in, {report['rows_kept']} kept" in captured.out
