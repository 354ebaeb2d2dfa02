"""Small REDCap and Qualtrics exports for the README and the tests (issue 21).

Both hold the client ratings of the first 12 patients of the simulated demo site A
(``data/demo/site_a.csv``, sessions 1-6), so every answer can be checked against that file:

- ``redcap/``: a REDCap records export with a repeating instrument ``wai_session`` (one row per
  session, ``redcap_repeat_instance`` = session) and the record-level form ``intake``
  (therapist, age, sex, site), with its data dictionary and a codebook;
- ``qualtrics/``: a Qualtrics CSV export (names, question text and import IDs on lines 1-3)
  with the items as the matrix ``Q1_1`` ... ``Q1_12`` recoded 0-4, the patient, therapist and
  session as embedded data, and a codebook (``recode: {shift: 1}``).

No item text is shipped: labels read "WAI-SR item k". Run from the repository root:
``.venv/bin/python data/examples/make_examples.py`` (byte for byte the same files).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
ITEMS = [f"wai_{k:02d}" for k in range(1, 13)]
ANCHORS = "1, Seldom | 2, Sometimes | 3, Fairly often | 4, Very often | 5, Always"


def sample() -> pd.DataFrame:
    """Client rows of sessions 1-6 of the first 12 patients of site A, as text."""
    frame = pd.read_csv(ROOT / "data" / "demo" / "site_a.csv", dtype=str, keep_default_na=False)
    patients = sorted(p for p in frame["patient_id"].unique() if p)[:12]
    keep = frame["patient_id"].isin(patients) & frame["rater"].eq("client")
    keep &= frame["session"].isin([str(s) for s in range(1, 7)])
    return frame[keep].drop_duplicates(["patient_id", "session"]).reset_index(drop=True)


def write_csv(path: Path, rows: list[list[str]]) -> None:
    """Rows as RFC 4180 CSV with LF line ends."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue())


def redcap(frame: pd.DataFrame) -> None:
    """The REDCap records export, its data dictionary and its codebook."""
    folder = HERE / "redcap"
    folder.mkdir(exist_ok=True)
    dictionary = [
        [
            "Variable / Field Name",
            "Form Name",
            "Section Header",
            "Field Type",
            "Field Label",
            "Choices, Calculations, OR Slider Labels",
            "Field Note",
            "Text Validation Type OR Show Slider Number",
            "Text Validation Min",
            "Text Validation Max",
            "Identifier?",
        ],
        ["record_id", "intake", "", "text", "Record ID", "", "", "", "", "", "y"],
        ["therapist_id", "intake", "", "text", "Therapist", "", "", "", "", "", ""],
        ["site", "intake", "", "text", "Site", "", "", "", "", "", ""],
        ["age", "intake", "", "text", "Age (years)", "", "", "integer", "16", "99", ""],
        ["sex", "intake", "", "radio", "Sex", "F, female | M, male", "", "", "", "", ""],
    ]
    for k, item in enumerate(ITEMS, start=1):
        dictionary.append(
            [item, "wai_session", "", "radio", f"WAI-SR item {k}", ANCHORS, "", "", "", "", ""]
        )
    dictionary.append(
        ["phq9", "wai_session", "", "text", "PHQ-9 total", "", "", "integer", "0", "27", ""]
    )
    write_csv(folder / "alliance_DataDictionary.csv", dictionary)
    header = [
        "record_id",
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
        "therapist_id",
        "site",
        "age",
        "sex",
        "intake_complete",
        *ITEMS,
        "phq9",
        "wai_session_complete",
    ]
    rows = [header]
    for pid, part in frame.groupby("patient_id", sort=True):
        first = part.iloc[0]
        rows.append(
            [pid, "", "", first["therapist_id"], first["site"], first["age"], first["sex"], "2"]
            + [""] * 14
        )
        for _, r in part.sort_values("session", key=lambda s: s.astype(int)).iterrows():
            rows.append(
                [pid, "wai_session", r["session"], "", "", "", "", ""]
                + [r[i] for i in ITEMS]
                + [r["phq9"], "2"]
            )
    write_csv(folder / "alliance_records.csv", rows)
    (folder / "codebook.yaml").write_text(
        "# A REDCap export: records with a repeating instrument and the data dictionary\n"
        "# (written by data/examples/make_examples.py)\n"
        "dataset: redcap_example\n"
        "description: REDCap records export, repeating instrument wai_session\n"
        "file: alliance_records.csv\n"
        "format: redcap\n"
        "read: {dictionary: alliance_DataDictionary.csv}\n"
        "ids: {patient: record_id, therapist: therapist_id, session: redcap_repeat_instance}\n"
        "rater: client\n"
        "groups: [site]\n"
        "instrument: wai_sr\n"
        "items: {pattern: 'wai_{number:02d}'}\n"
        "outcomes:\n"
        "  - {measure: phq9, column: phq9, min: 0, max: 27}\n"
        "covariates:\n"
        "  - {column: age, name: age, type: numeric, min: 16, max: 99}\n"
        "  - {column: sex, name: sex, type: categorical, values: {F: female, M: male}}\n"
    )


def qualtrics(frame: pd.DataFrame) -> None:
    """The Qualtrics CSV export and its codebook."""
    folder = HERE / "qualtrics"
    folder.mkdir(exist_ok=True)
    meta = [
        "StartDate",
        "EndDate",
        "Status",
        "IPAddress",
        "Progress",
        "Duration (in seconds)",
        "Finished",
        "RecordedDate",
        "ResponseId",
        "LocationLatitude",
        "LocationLongitude",
        "DistributionChannel",
        "UserLanguage",
    ]
    items = [f"Q1_{k}" for k in range(1, 13)]
    names = [*meta, *items, "Q2", "pid", "therapist", "session"]
    text = [*meta, *[f"WAI-SR item {k} (text not shipped)" for k in range(1, 13)]]
    text += ["PHQ-9 total", "pid", "therapist", "session"]
    ids = [json.dumps({"ImportId": m.lower()}, separators=(",", ":")) for m in meta]
    ids += [json.dumps({"ImportId": f"QID1_{k}"}, separators=(",", ":")) for k in range(1, 13)]
    ids += ['{"ImportId":"QID2_TEXT"}', '{"ImportId":"pid"}', '{"ImportId":"therapist"}']
    ids += ['{"ImportId":"session"}']
    rows = [names, text, ids]
    for n, (_, r) in enumerate(frame.iterrows()):
        day = f"2026-03-{1 + n % 28:02d} 10:{n % 60:02d}:00"
        answers = ["" if r[i] in ("", "x") else str(int(float(r[i])) - 1) for i in ITEMS]
        rows.append(
            [
                day,
                day,
                "0",
                "192.0.2.1",
                "100",
                "240",
                "1",
                day,
                f"R_{n + 1:05d}",
                "",
                "",
                "anonymous",
                "EN",
                *answers,
                r["phq9"],
                r["patient_id"],
                r["therapist_id"],
                r["session"],
            ]
        )
    write_csv(folder / "alliance_survey.csv", rows)
    (folder / "codebook.yaml").write_text(
        "# A Qualtrics CSV export: three header lines, the items recoded 0-4\n"
        "# (written by data/examples/make_examples.py)\n"
        "dataset: qualtrics_example\n"
        "description: Qualtrics survey export, matrix Q1 recoded 0-4\n"
        "file: alliance_survey.csv\n"
        "format: qualtrics\n"
        "ids: {patient: pid, therapist: therapist, session: session}\n"
        "rater: client\n"
        "instrument: wai_sr\n"
        "items: {pattern: 'Q1_{number}'}\n"
        "recode: {shift: 1}\n"
        "outcomes:\n"
        "  - {measure: phq9, column: Q2, min: 0, max: 27}\n"
    )


if __name__ == "__main__":
    rows = sample()
    redcap(rows)
    qualtrics(rows)
