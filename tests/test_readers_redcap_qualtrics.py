"""REDCap and Qualtrics exports (issue 21) against the demo data they were made from.

``data/examples`` holds a REDCap and a Qualtrics export of the client ratings of the first 12
patients of demo site A, sessions 1-6 (``data/examples/make_examples.py``). The reference is the
same patients and sessions ingested from ``data/demo/site_a.csv`` with the shipped codebook:
every answer, outcome and patient-level value must be the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from alliance.data.codebook import load_codebook
from alliance.data.codebook_draft import draft_codebook, write_draft
from alliance.data.ingest import ingest
from alliance.data.readers import ReadError
from alliance.data.redcap import parse_choices, read_dictionary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "data" / "examples"
ITEMS = [f"wai_{k:02d}" for k in range(1, 13)]


@pytest.fixture(scope="module")
def reference() -> dict[str, pd.DataFrame]:
    result = ingest(ROOT / "config" / "codebooks" / "site_a.yaml")
    patients = sorted(result.items["patient_id"].unique())[:12]
    items = result.items
    items = items[
        items["patient_id"].isin(patients)
        & (items["rater"] == "client")
        & items["session"].between(1, 6)
    ]
    outcomes = result.outcomes
    outcomes = outcomes[outcomes["patient_id"].isin(patients) & outcomes["session"].between(1, 6)]
    return {
        "items": items.reset_index(drop=True),
        "outcomes": outcomes.reset_index(drop=True),
        "patients": result.patients[result.patients["patient_id"].isin(patients)],
    }


def same_answers(got: pd.DataFrame, want: pd.DataFrame) -> None:
    key = ["patient_id", "session"]
    a = got.sort_values(key).reset_index(drop=True)
    b = want.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key + ITEMS], b[key + ITEMS])


def same_outcomes(got: pd.DataFrame, want: pd.DataFrame) -> None:
    cols = ["patient_id", "session", "measure", "value"]
    a = got[cols].sort_values(cols[:2]).reset_index(drop=True)
    b = want[cols].sort_values(cols[:2]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_redcap_repeating_instrument_reads_as_the_long_export(reference):
    result = ingest(EXAMPLES / "redcap" / "codebook.yaml")
    assert result.report["rows_in"] == 61 == result.report["rows_kept"]
    same_answers(result.items, reference["items"])
    same_outcomes(result.outcomes, reference["outcomes"])
    # record-level fields of the intake row reach every session
    want = reference["patients"].set_index("patient_id")
    got = result.patients.set_index("patient_id")
    assert (got["therapist_id"] == want["therapist_id"]).all()
    assert (got["age"] == want["age"]).all()
    assert (got["sex"] == want["sex"].map({"F": "female", "M": "male"})).all()
    # source rows are the lines of the records file (row N on line N + 1)
    lines = (EXAMPLES / "redcap" / "alliance_records.csv").read_text().splitlines()
    for r in result.items.head(5).itertuples():
        fields = lines[r.source_row].split(",")
        assert fields[0] == r.patient_id and fields[2] == str(r.session)


def events_export(tmp_path: Path) -> Path:
    """The REDCap example as a longitudinal project: an event per session."""
    folder = tmp_path / "events"
    folder.mkdir()
    shutil.copy(EXAMPLES / "redcap" / "alliance_DataDictionary.csv", folder / "dict.csv")
    frame = pd.read_csv(
        EXAMPLES / "redcap" / "alliance_records.csv", dtype=str, keep_default_na=False
    )
    instance = frame.pop("redcap_repeat_instance")
    frame.pop("redcap_repeat_instrument")
    frame.insert(1, "redcap_event_name", "intake_arm_1")
    frame.loc[instance != "", "redcap_event_name"] = "week_" + instance[instance != ""] + "_arm_1"
    frame.to_csv(folder / "records.csv", index=False)
    doc = yaml.safe_load((EXAMPLES / "redcap" / "codebook.yaml").read_text())
    doc.update(
        file="records.csv",
        read={
            "dictionary": "dict.csv",
            "events": {f"week_{s}_arm_1": s for s in range(1, 7)},
        },
        ids={"patient": "record_id", "therapist": "therapist_id", "session": "redcap_event_name"},
    )
    (folder / "codebook.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder / "codebook.yaml"


def test_redcap_events_read_as_sessions(reference, tmp_path):
    result = ingest(events_export(tmp_path))
    assert result.report["rows_in"] == 61 == result.report["rows_kept"]
    same_answers(result.items, reference["items"])
    same_outcomes(result.outcomes, reference["outcomes"])


def test_redcap_dictionary_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "dict.csv"
    bad.write_text("Field,Form\nx,y\n")
    with pytest.raises(ReadError, match=r"dict\.csv line 1: not a REDCap data dictionary"):
        read_dictionary(bad)
    bad.write_text("Variable / Field Name,Form Name,Field Type\nrecord_id,a,text\n,a,text\n")
    with pytest.raises(ReadError, match=r"dict\.csv line 3: the field name is empty"):
        read_dictionary(bad)
    assert parse_choices("1, Seldom | 2, Sometimes, often", "radio") == {
        "1": "Seldom",
        "2": "Sometimes, often",
    }
    assert parse_choices("", "yesno") == {"1": "Yes", "0": "No"}


def test_redcap_export_of_another_project_is_an_error(tmp_path):
    codebook = events_export(tmp_path)
    dictionary = codebook.parent / "dict.csv"
    text = dictionary.read_text().replace("record_id,intake", "study_id,intake", 1)
    dictionary.write_text(text)
    from alliance.data.ingest import IngestError

    with pytest.raises(IngestError, match=r"lacks the record ID field 'study_id'"):
        ingest(codebook)


def test_qualtrics_reads_below_its_header_lines(reference):
    result = ingest(EXAMPLES / "qualtrics" / "codebook.yaml")
    assert result.report["rows_in"] == 61 == result.report["rows_kept"]
    assert result.report["values_recoded"] > 0
    same_answers(result.items, reference["items"])
    same_outcomes(result.outcomes, reference["outcomes"])
    # row N is line N + 1: the first response is on line 4
    assert result.items.sort_values("source_row")["source_row"].iloc[0] == 3


def test_qualtrics_question_text_never_reaches_the_quarantine(tmp_path):
    folder = tmp_path / "q"
    shutil.copytree(EXAMPLES / "qualtrics", folder)
    lines = (folder / "alliance_survey.csv").read_text().splitlines()
    cells = lines[6].split(",")
    cells[14] = "=cmd"  # Q1_2 of the response on line 7
    lines[6] = ",".join(cells)
    (folder / "alliance_survey.csv").write_text("\n".join(lines) + "\n")
    result = ingest(folder / "codebook.yaml")
    result.write(tmp_path / "out")
    text = (tmp_path / "out" / "quarantine.csv").read_text()
    assert "text not shipped" not in text
    assert "6,Q1_2,'=cmd,non_numeric" in text


@pytest.mark.parametrize("kind", ["redcap", "qualtrics"])
def test_drafts_of_the_examples_ingest_as_their_codebooks(kind, tmp_path):
    export = {"redcap": "alliance_records.csv", "qualtrics": "alliance_survey.csv"}[kind]
    out = tmp_path / "draft.yaml"
    draft = draft_codebook(EXAMPLES / kind / export, out=out)
    assert draft.doc["format"] == kind
    if kind == "qualtrics":  # Q2 holds the PHQ-9 total: a name the draft cannot know
        draft.doc["outcomes"] = [{"measure": "phq9", "column": "Q2", "min": 0, "max": 27}]
        assert "192.0.2.1" not in draft.to_yaml()
    write_draft(draft, out)
    hand, drafted = load_codebook(EXAMPLES / kind / "codebook.yaml"), load_codebook(out)
    a, b = ingest(hand), ingest(drafted)
    same_answers(b.items, a.items)
    same_outcomes(b.outcomes, a.outcomes)
    assert a.report["rows_in"] == b.report["rows_in"]
