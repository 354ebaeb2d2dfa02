"""``alliance codebook draft`` (issue 21): drafted codebooks ingest as the hand-written ones.

The references are codebooks written by hand: the shipped demo codebooks (the round trip: a
drafted codebook must give the same tidy tables, row for row and value for value) and, for the
variants (renamed columns, a 0-4 scale, the wide layout, sentinels, SPSS labels), a codebook
written for the variant in the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import yaml
from workflow_support import srs_export

from alliance.cli import main
from alliance.data.codebook import load_codebook
from alliance.data.codebook_draft import draft_codebook, numbered_families, write_draft
from alliance.data.ingest import ingest

ROOT = Path(__file__).resolve().parents[1]
DEMO = {
    "site_a": "site_a.csv",
    "site_b": "site_b.sav",
    "site_c": "site_c.xlsx",
    "published": "published.csv",
}


def tables(result, codebook) -> dict[str, pd.DataFrame]:
    """The tidy tables of an ingest, covariates named by their raw column."""
    if result.effects is not None:
        return {"effects": result.effects}
    names = {c.name: c.column for c in codebook.covariates}
    patients = result.patients.rename(columns=names)
    return {
        "items": result.items,
        "outcomes": result.outcomes,
        "patients": patients[sorted(patients.columns)],
        "attendance": result.attendance,
    }


def assert_same_tidy(a, cb_a, b, cb_b) -> None:
    ta, tb = tables(a, cb_a), tables(b, cb_b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name], check_dtype=True, obj=name)
    for key in ("rows_in", "rows_kept", "rows_quarantined", "cells_quarantined", "problems"):
        assert a.report[key] == b.report[key], key


def draft_to(tmp_path: Path, export: Path, **kwargs) -> Path:
    out = tmp_path / f"{export.stem}.yaml"
    write_draft(draft_codebook(export, out=out, **kwargs), out)
    return out


@pytest.mark.parametrize("dataset", sorted(DEMO))
def test_round_trip_of_the_demo_exports(dataset, tmp_path):
    """Drafting each shipped demo export gives a codebook that ingests to the same tidy data."""
    shipped = load_codebook(ROOT / "config" / "codebooks" / f"{dataset}.yaml")
    drafted_path = draft_to(tmp_path, ROOT / "data" / "demo" / DEMO[dataset], dataset=dataset)
    drafted = load_codebook(drafted_path)
    assert drafted.kind == shipped.kind
    if shipped.kind == "items":
        assert drafted.layout == shipped.layout
        assert drafted.item_columns == shipped.item_columns
        assert drafted.recode_shift == shipped.recode_shift
    assert_same_tidy(ingest(shipped), shipped, ingest(drafted), drafted)


def test_draft_yaml_reads_back_as_its_document(tmp_path):
    draft = draft_codebook(ROOT / "data" / "demo" / "site_c.xlsx", out=tmp_path / "c.yaml")
    text = draft.to_yaml()
    assert yaml.safe_load(text) == draft.doc
    assert draft.doc["recode"] == {"shift": 1}
    assert draft.doc["missing_codes"] == [999, "n/a"]
    # evidence above the keys
    assert "# 0-4 lies 1 step below the wai_sr scale 1-5: recode shift 1" in text
    assert any(
        n.startswith("999: ") and "a usual sentinel" in n for n in draft.notes["missing_codes"]
    )


# --------------------------------------------------------------------------- variants


def site_a_sample(n_patients: int = 40) -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "data" / "demo" / "site_a.csv", dtype=str, keep_default_na=False)
    keep = sorted(frame["patient_id"].replace("", np.nan).dropna().unique())[:n_patients]
    return frame[frame["patient_id"].isin(keep)].reset_index(drop=True)


def write_codebook(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


RENAMED = {
    "patient_id": "Client Code",
    "therapist_id": "Clinician",
    "session": "Visit",
    "rater": "Informant",
    "phq9": "PHQ-9 Total",
    **{f"wai_{k:02d}": f"Item_{k}" for k in range(1, 13)},
}


def test_renamed_columns_are_found(tmp_path):
    frame = site_a_sample().rename(columns=RENAMED)
    frame["Informant"] = frame["Informant"].map({"client": "1", "therapist": "2"})
    export = tmp_path / "clinic.csv"
    frame.to_csv(export, index=False)
    hand = write_codebook(
        tmp_path / "hand.yaml",
        {
            "dataset": "clinic",
            "file": "clinic.csv",
            "format": "csv",
            "ids": {
                "patient": "Client Code",
                "therapist": "Clinician",
                "session": "Visit",
                "rater": "Informant",
            },
            "rater_values": {1: "client", 2: "therapist"},
            "groups": ["site"],
            "instrument": "wai_sr",
            "items": {"pattern": "Item_{number}"},
            "outcomes": [{"measure": "phq9", "column": "PHQ-9 Total", "min": 0, "max": 27}],
            "covariates": [
                {"column": "age", "name": "age", "type": "numeric", "min": 0, "max": 120},
                {"column": "sex", "name": "sex", "type": "categorical"},
            ],
        },
    )
    draft = draft_codebook(export, out=tmp_path / "draft.yaml")
    assert draft.doc["ids"] == {
        "patient": "Client Code",
        "therapist": "Clinician",
        "session": "Visit",
        "rater": "Informant",
    }
    # numeric rater codes without labels: guessed, with a TODO
    assert "rater_values" not in draft.doc
    assert any("rater codes ['1', '2']" in t for t in draft.open_questions)
    draft.doc["rater_values"] = {1: "client", 2: "therapist"}
    write_draft(draft, tmp_path / "draft.yaml")
    a, b = load_codebook(hand), load_codebook(tmp_path / "draft.yaml")
    assert_same_tidy(ingest(a), a, ingest(b), b)


def test_a_0_4_export_gets_recode_shift_1(tmp_path):
    frame = site_a_sample()
    items = [f"wai_{k:02d}" for k in range(1, 13)]

    def down(cell: str) -> str:
        return str(int(cell) - 1) if cell.isdigit() else cell

    frame[items] = frame[items].map(down)
    export = tmp_path / "zero.csv"
    frame.to_csv(export, index=False)
    draft = draft_codebook(export, out=tmp_path / "zero.yaml")
    assert draft.doc["recode"] == {"shift": 1}
    write_draft(draft, tmp_path / "zero.yaml")
    hand_doc = yaml.safe_load((tmp_path / "zero.yaml").read_text())
    hand_doc.pop("recode")
    hand_doc["recode"] = {"map": {0: 1, 1: 2, 2: 3, 3: 4, 4: 5}}
    hand = write_codebook(tmp_path / "hand.yaml", hand_doc)
    a, b = load_codebook(hand), load_codebook(tmp_path / "zero.yaml")
    ra, rb = ingest(a), ingest(b)
    assert_same_tidy(ra, a, rb, b)
    # and the answers are those of the original 1-5 export
    original = ingest(ROOT / "config" / "codebooks" / "site_a.yaml").items
    got = rb.items.merge(original, on=["patient_id", "session", "rater"], suffixes=("", "_o"))
    assert len(got) == len(rb.items)
    for item in items:
        pd.testing.assert_series_equal(got[item], got[f"{item}_o"], check_names=False)


def test_a_wide_export_is_drafted_wide(tmp_path):
    frame = site_a_sample(30)
    frame = frame[(frame["rater"] == "client") & frame["session"].isin(["1", "2", "3"])]
    frame = frame.drop_duplicates(["patient_id", "session"])
    wide = frame.pivot(  # noqa: PD010 - one value per cell
        index=["patient_id", "therapist_id"],
        columns="session",
        values=[f"wai_{k:02d}" for k in range(1, 13)] + ["phq9"],
    )
    wide.columns = [
        f"T{s}_WAI{int(c[4:])}" if c.startswith("wai") else f"PHQ9_T{s}" for c, s in wide.columns
    ]
    wide = wide.reset_index().fillna("")
    export = tmp_path / "wide.csv"
    wide.to_csv(export, index=False)
    draft = draft_codebook(export, out=tmp_path / "wide.yaml")
    assert draft.doc["layout"] == "wide"
    assert draft.doc["sessions"] == [1, 2, 3]
    assert draft.doc["items"] == {"pattern": "T{session}_WAI{number}"}
    assert draft.doc["outcomes"] == [
        {"measure": "phq9", "column": "PHQ9_T{session}", "min": 0, "max": 27}
    ]
    write_draft(draft, tmp_path / "wide.yaml")
    result = ingest(tmp_path / "wide.yaml")
    # the same answers as the long export's client rows of sessions 1-3
    long = ingest(ROOT / "config" / "codebooks" / "site_a.yaml").items
    long = long[(long["rater"] == "client") & long["session"].isin([1, 2, 3])]
    long = long[long["patient_id"].isin(set(result.items["patient_id"]))]
    got = result.items.merge(long, on=["patient_id", "session"], suffixes=("", "_long"))
    assert len(got) == len(result.items) == len(long)
    for k in range(1, 13):
        item = f"wai_{k:02d}"
        pd.testing.assert_series_equal(got[item], got[f"{item}_long"], check_names=False)


def test_sentinels_are_codes_unless_they_are_valid_scores(tmp_path):
    frame = site_a_sample()
    frame.loc[0:9, "wai_03"] = "-99"
    frame.loc[10:19, "wai_04"] = "9"  # beyond 1-5, but a valid PHQ-9 total
    frame.loc[20:22, "wai_05"] = "N/A"
    frame.loc[23, "wai_06"] = "55"  # once: a typo
    export = tmp_path / "codes.csv"
    frame.to_csv(export, index=False)
    draft = draft_codebook(export, out=tmp_path / "codes.yaml")
    assert draft.doc["missing_codes"] == [-99, "N/A"]
    todos = " ".join(draft.open_questions)
    assert "9 occurs 10 times beyond the valid range in wai_04" in todos
    assert "valid value of phq9" in todos
    notes = " ".join(draft.notes["missing_codes"])
    assert "55 occurs once beyond the valid range in wai_06: no missing code" in notes
    write_draft(draft, tmp_path / "codes.yaml")
    result = ingest(tmp_path / "codes.yaml")
    assert result.report["missing_codes_seen"] == {"-99": 10, "N/A": 3}
    q = result.quarantine
    assert sorted(q.loc[q["reason"] == "out_of_range", "value"]) == ["55"] + ["9"] * 10


def test_spss_value_labels_and_user_missing(tmp_path):
    rows = []
    for p in range(1, 9):
        for s in (1, 2):
            rows.append(
                {
                    "caseid": f"K{p:03d}",
                    "therapist": f"T{p % 3}",
                    "sess": s,
                    "gender": 1 + p % 2,
                    **{f"it{k}": float((p + s + k) % 5) for k in range(1, 13)},
                    "GAD7": float((p * 3 + s) % 22),
                }
            )
    frame = pd.DataFrame(rows)
    frame.loc[0, "it1"] = 8.0  # declared user-missing in the items
    frame.loc[1, "GAD7"] = 99.0  # declared user-missing in GAD7
    labels = {0: "Seldom", 1: "Sometimes", 2: "Fairly often", 3: "Very often", 4: "Always"}
    export = tmp_path / "labelled.sav"
    pyreadstat.write_sav(
        frame,
        str(export),
        variable_value_labels={
            **{f"it{k}": {**labels, 8: "No answer"} for k in range(1, 13)},
            "gender": {1: "female", 2: "male"},
        },
        missing_ranges={
            **{f"it{k}": [8] for k in range(1, 13)},
            "GAD7": [99],
        },
    )
    draft = draft_codebook(export, out=tmp_path / "labelled.yaml")
    assert draft.doc["items"] == {"pattern": "it{number}"}
    assert draft.doc["recode"] == {"shift": 1}
    assert draft.doc["declared_missing"] is True
    assert "missing_codes" not in draft.doc
    assert draft.doc["outcomes"] == [{"measure": "gad7", "column": "GAD7", "min": 0, "max": 21}]
    cov = draft.doc["covariates"]
    assert cov == [
        {
            "column": "gender",
            "name": "gender",
            "type": "categorical",
            "values": {1: "female", 2: "male"},
        }
    ]
    text = draft.to_yaml()
    assert "value labels of it1, it2, ... it12 (12 columns): 0 Seldom" in text
    assert "user-missing 8 in it1, it2, ... it12" in text
    write_draft(draft, tmp_path / "labelled.yaml")
    result = ingest(tmp_path / "labelled.yaml")
    assert result.report["missing_codes_seen"] == {"8": 1, "99": 1}
    assert result.items["wai_01"].isna().sum() == 1
    assert sorted(result.patients["gender"].unique()) == ["female", "male"]
    assert result.items["wai_02"].min() == 1 and result.items["wai_02"].max() == 5


def test_no_patient_id_and_no_free_text_in_the_draft(tmp_path):
    frame = site_a_sample()
    frame["note"] = "talked about " + frame["patient_id"]
    export = tmp_path / "notes.csv"
    frame.to_csv(export, index=False)
    text = draft_codebook(export, out=tmp_path / "notes.yaml").to_yaml()
    for pid in frame["patient_id"].unique():
        if pid:
            assert pid not in text
    assert "talked" not in text
    assert "note (text, " in text


def test_a_hostile_header_cannot_write_yaml(tmp_path):
    frame = site_a_sample(5)
    frame = frame.rename(columns={"age": "x\nstrict: true\n=HYPERLINK(1)"})
    export = tmp_path / "hostile.csv"
    frame.to_csv(export, index=False)
    out = tmp_path / "hostile.yaml"
    write_draft(draft_codebook(export, out=out), out)
    doc = yaml.safe_load(out.read_text())
    assert doc["strict"] is False
    assert "x\\nstrict: true" in out.read_text()
    load_codebook(out)


def test_numbered_families_hold_literal_numbers():
    fams = numbered_families(["PHQ9_S1", "PHQ9_S2", "S1_Q1", "S1_Q2", "S2_Q1", "S2_Q2", "age"])
    shapes = sorted(f.texts for f in fams)
    assert shapes == [("PHQ9_S", ""), ("S", "_Q", "")]


# --------------------------------------------------------------------------- the command


def test_cli_writes_the_draft_and_lists_the_todos(tmp_path, capsys):
    out = tmp_path / "codebooks" / "site_a.yaml"
    code = main(
        ["codebook", "draft", str(ROOT / "data" / "demo" / "site_a.csv"), "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert out.is_file()
    assert "TODO covariates[0]: set min/max" in captured.err
    assert load_codebook(out).dataset == "site_a"
    # never over an existing file
    code = main(
        ["codebook", "draft", str(ROOT / "data" / "demo" / "site_a.csv"), "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("alliance codebook: error: ")
    assert "exists" in captured.err and captured.err.count("\n") == 1


def test_cli_bad_export_is_one_line(tmp_path, capsys):
    code = main(["codebook", "draft", str(tmp_path / "nothing.csv")])
    captured = capsys.readouterr()
    assert code == 2
    assert "nothing.csv: no such file" in captured.err
    assert "Traceback" not in captured.err
    (tmp_path / "empty.csv").write_text("")
    code = main(["codebook", "draft", str(tmp_path / "empty.csv")])
    captured = capsys.readouterr()
    assert code == 2 and "empty.csv" in captured.err and captured.err.count("\n") == 1


def test_an_unknown_layout_gets_todos_and_ingest_names_them(tmp_path, capsys):
    export = tmp_path / "odd.csv"
    export.write_text("who,when,a,b\nP1,1,3,4\nP2,1,2,2\n")
    out = tmp_path / "odd.yaml"
    assert main(["codebook", "draft", str(export), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "TODO items: write the item columns' pattern" in err
    assert "TODO ids.patient" in err
    code = main(["ingest", str(out), "--out", str(tmp_path / "ingest")])
    err = capsys.readouterr().err
    assert code == 2 and "'TODO'" in err and err.count("\n") == 1


def test_a_session_rating_scale_export_is_drafted_as_read(tmp_path):
    """An SRS export (0-10 lines read to 0.1) is matched to the srs instrument by its numbered
    columns, read as it is (a measured line is never shifted), and ingests every record; a
    reading in millimetres (0-100) gets a TODO naming the unit, not a recode."""
    frame = srs_export(np.random.default_rng(3), patients=30, sessions=(1, 2))
    export = tmp_path / "vas.csv"
    frame.to_csv(export, index=False)
    draft = draft_codebook(export, out=tmp_path / "vas.yaml")
    assert draft.doc["instrument"] == "srs"
    assert "recode" not in draft.doc
    assert not draft.todos
    write_draft(draft, tmp_path / "vas.yaml")
    text = (tmp_path / "vas.yaml").read_text()
    assert "on the continuous srs scale 0-10 read to 0.1: no" in text
    result = ingest(load_codebook(tmp_path / "vas.yaml"))
    assert result.report["rows_kept"] == len(frame) and result.quarantine.empty
    lines = [f"srs{k}" for k in range(1, 5)]
    np.testing.assert_array_equal(
        result.items.sort_values("source_row")[[f"srs_{k}" for k in range(1, 5)]].to_numpy(float),
        frame[lines].to_numpy(float),
    )
    frame[lines] = frame[lines].astype(float) * 10  # millimetres
    frame.to_csv(export, index=False)
    millimetres = draft_codebook(export, out=tmp_path / "mm.yaml", instrument="srs")
    todos = [t for notes in millimetres.todos.values() for t in notes]
    assert any("36-100 reach beyond the 0-10 line" in t and "millimetres" in t for t in todos)
