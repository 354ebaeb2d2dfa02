"""Small bad exports for ``tests/test_bad_inputs.py`` (issue 14): one folder per case.

Each folder holds the export, its ``codebook.yaml`` and ``expected.yaml``. This script writes
the exports and codebooks (CSV byte by byte, so that quotes, blank lines and field counts are
exactly as described; ``.xlsx`` with openpyxl, which writes formulas without a cached value;
``.sav`` with pyreadstat). ``expected.yaml`` is written by hand from the description of each
case (record counts by counting lines), never by running the ingest.

Run from the repository root:  .venv/bin/python tests/data/bad_inputs/make_cases.py
(the CSV files come out byte for byte the same; ``.xlsx`` and ``.sav`` files carry the time
they were written, so they differ in those bytes only).
"""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).parent
ITEMS = [f"Q{k}" for k in range(1, 13)]
HEADER = ["pid", "ther", "sess", *ITEMS, "PHQ"]


def answers(p: int, s: int, low: int = 1) -> list[str]:
    """Twelve answers on low..low+4, varied by patient and session."""
    return [str(low + (p + s + k) % 5) for k in range(12)]


def row(p: int, s: int, pid: str | None = None, low: int = 1, phq: int | None = None) -> list:
    return [pid or f"P{p:02d}", "T1", str(s), *answers(p, s, low), str(phq or (p * 3 + s) % 28)]


def csv_text(lines: list[list[str] | str]) -> str:
    """Lines joined by commas (a str is written as it is), each ending in a newline."""
    return "".join((line if isinstance(line, str) else ",".join(line)) + "\n" for line in lines)


def codebook(**extra) -> dict:
    doc = {
        "dataset": "bad",
        "file": "export.csv",
        "format": "csv",
        "ids": {"patient": "pid", "therapist": "ther", "session": "sess"},
        "instrument": "wai_sr",
        "items": {"pattern": "Q{number}"},
        "outcomes": [{"measure": "phq9", "column": "PHQ", "min": 0, "max": 27}],
    }
    doc.update(extra)
    return doc


def case(name: str, doc: dict | None, files: dict[str, str | bytes] | None = None) -> Path:
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    if doc is not None:
        text = f"# issue 14 bad input: {name} (written by make_cases.py)\n" + yaml.safe_dump(
            doc, sort_keys=False
        )
        (folder / "codebook.yaml").write_text(text)
    for file, content in (files or {}).items():
        path = folder / file
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8"))
    return folder


def main() -> None:
    long = [row(p, s) for p in (1, 2) for s in (1, 2, 3)]

    # -- numbers beyond int64
    rows = [list(r) for r in long]
    rows[1][2], rows[3][2], rows[5][2] = "inf", "1e20", "-inf"
    case("session_beyond_int64", codebook(), {"export.csv": csv_text([HEADER, *rows])})
    case(
        "effects_n_beyond_int64",
        {
            "dataset": "pub",
            "kind": "effects",
            "file": "effects.csv",
            "format": "csv",
            "effects": {"study": "study", "r": "r", "n": "n"},
        },
        {
            "effects.csv": csv_text(
                [
                    "study,r,n",
                    "A,0.30,50",
                    "B,0.20,1e30",
                    "C,0.25,inf",
                    "D,0.10,9223372036854775808",
                    "E,0.15,120",
                ]
            )
        },
    )

    # -- long numeric IDs stored as floats
    ids = [
        ("12345678901234567890.0", 1),
        ("12345678901234567890.0", 2),
        ("99999999999999999999.0", 1),
        ("99999999999999999999.0", 2),
        ("12345678901234567891", 1),
        ("1.23457E+19", 1),  # as Excel writes a long number into a CSV
    ]
    rows = [row(k, s, pid=pid) for k, (pid, s) in enumerate(ids, start=1)]
    case("long_ids_as_text", codebook(), {"export.csv": csv_text([HEADER, *rows])})
    _binary_cases(long)

    # -- quotes and lines
    rows = [row(p, s) for p in range(1, 14) for s in (1, 2, 3)]  # 39 data lines
    lines: list = [HEADER, *rows]
    lines[9] = lines[9][:5] + ['"' + lines[9][5]] + lines[9][6:]  # line 10: a quote opens
    lines[16] = lines[16][:14] + [lines[16][14] + '"'] + lines[16][15:]  # closes on line 17
    lines[29] = lines[29][:3] + ["9"] + lines[29][4:]  # line 30: Q1 = 9, off the scale
    case("open_quote_absorbs_lines", codebook(), {"export.csv": csv_text(lines)})

    header = [*HEADER, "note"]
    lines = [
        header,
        [*row(1, 1), "fine"],
        [*row(1, 2), ""],
        [*row(1, 3), '"first line\nsecond line"'],  # lines 4-5, a note nobody reads
        [*row(2, 1), "ok"],
        [*row(2, 2)[:4], "x", *row(2, 2)[5:], "ok"],  # line 7: Q2 = x
    ]
    case("multiline_note_kept", codebook(), {"export.csv": csv_text(lines)})
    lines = [
        HEADER,
        row(1, 1),
        [*row(1, 2)[:3], '"3\n4"', *row(1, 2)[4:]],  # lines 3-4: a line break in Q1
        row(1, 3),
    ]
    case("multiline_in_item", codebook(), {"export.csv": csv_text(lines)})

    lines = [HEADER, row(1, 1), row(1, 2)[:8], row(1, 3), [*row(2, 1), "5"], row(2, 2)]
    case("short_and_long_rows", codebook(), {"export.csv": csv_text(lines)})

    bad_q1 = row(2, 2)
    bad_q1[3] = "0"
    lines = [HEADER, row(1, 1), "," * (len(HEADER) - 1), row(1, 2), "", bad_q1]
    case("row_of_commas_and_blank_line", codebook(), {"export.csv": csv_text(lines)})
    case("only_commas", codebook(), {"export.csv": csv_text([HEADER, "," * (len(HEADER) - 1)])})
    case("header_only", codebook(), {"export.csv": csv_text([HEADER])})
    case("empty_file", codebook(), {"export.csv": ""})
    latin = csv_text([HEADER, row(1, 1), row(2, 1, pid="Zoë")]).encode("latin-1")
    case("not_utf8", codebook(), {"export.csv": latin})

    # -- one bad cell must not turn an attended session into a dropout
    rows = [row(1, s) for s in (1, 2, 3, 4)]
    rows[2][7] = "7"  # session 3, Q5
    case("bad_cell_keeps_session", codebook(), {"export.csv": csv_text([HEADER, *rows])})
    # -- a quarantined record is still an attended session (attendance.parquet)
    records = [
        *[[*row(1, s), "client"] for s in (1, 2, 3, 4)],
        [*row(1, 4)[:3], "5", *row(1, 4)[4:], "client"],  # session 4 again, Q1 differs
        *[[*row(2, s), "client"] for s in (1, 2)],
        [*row(2, 3), "clinet"],  # a bad rater code
        [row(2, 4)[0], "", *row(2, 4)[2:], "client"],  # no therapist ID
        *[[*row(3, s), "client"] for s in (1, 2)],
        [*row(3, 3)[:2], "3.5", *row(3, 3)[3:], "client"],  # no session: no attendance
        [*row(3, 1, pid="1.2E+5"), "client"],  # an inexact ID: no attendance
        ["", *row(3, 4)[1:], "client"],  # no patient ID: no attendance
        *[[*row(4, s), "client"] for s in (1, 2, 3, 4)],
    ]
    case(
        "quarantined_rows_keep_attendance",
        codebook(ids={"patient": "pid", "therapist": "ther", "session": "sess", "rater": "who"}),
        {"export.csv": csv_text([[*HEADER, "who"], *records])},
    )
    wide_header = ["pid", *[f"S{s}_Q{k}" for s in (1, 2, 3) for k in range(1, 13)]]
    wide = []
    for p in (1, 2):
        cells = [f"P{p}"]
        for s in (1, 2, 3):
            cells += ["x"] * 12 if (p, s) == (1, 2) else answers(p, s)
        wide.append(cells)

    def wide_case(name: str, sessions: list[int]) -> None:
        doc = codebook(
            layout="wide",
            sessions=sessions,
            ids={"patient": "pid"},
            items={"pattern": "S{session}_Q{number}"},
            outcomes=[],
        )
        case(name, doc, {"export.csv": csv_text([wide_header, *wide])})

    wide_case("wide_bad_cells_keep_session", [1, 2, 3])

    # -- forgotten (or wrong) recode
    rows = [row(p, s, low=0) for p in range(1, 5) for s in (1, 2)]
    case("forgotten_recode", codebook(), {"export.csv": csv_text([HEADER, *rows])})
    rows = [row(p, s) for p in range(1, 5) for s in (1, 2)]
    case(
        "recode_on_scale_export",
        codebook(recode={"shift": 1}),
        {"export.csv": csv_text([HEADER, *rows])},
    )

    # -- ambiguous layouts
    dup = [*HEADER[:5], "Q3", *HEADER[5:]]
    rows = [[*r[:5], "1", *r[5:]] for r in long]
    case("duplicated_column", codebook(), {"export.csv": csv_text([dup, *rows])})
    dup = [*HEADER, "note", "note"]
    rows = [[*r, "a", "b"] for r in long]
    case("duplicated_unused_column", codebook(), {"export.csv": csv_text([dup, *rows])})
    mapping = {f"wai_{k:02d}": f"Q{k}" for k in range(1, 13)}
    mapping["wai_02"] = "Q1"
    case(
        "items_map_one_column",
        codebook(items={"map": mapping}),
        {"export.csv": csv_text([HEADER, *long])},
    )
    wide_case("wide_repeated_sessions", [1, 1, 2])
    folder = case("codebook_is_directory", None)
    (folder / "codebook.yaml").mkdir(exist_ok=True)
    (folder / "codebook.yaml" / ".gitkeep").write_text("")


def _binary_cases(long: list[list[str]]) -> None:
    import openpyxl
    import pandas as pd
    import pyreadstat

    def number(text: str) -> float | int:
        value = float(text)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value

    # xlsx: numeric IDs beyond 2**53 are floats (Excel keeps 15 significant digits)
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "data"
    ws.append(HEADER)
    pids = [12345678901234567890.0, 12345678901234567891.0, 99999999999999999999.0, 1001]
    for k, pid in enumerate(pids, start=1):
        ws.append([pid, *[number(v) if i >= 1 else v for i, v in enumerate(row(k, 1)[1:])]])
    book.save(
        HERE
        / case("xlsx_float_ids", codebook(file="export.xlsx", format="xlsx")).joinpath(
            "export.xlsx"
        )
    )

    # xlsx: formulas saved without a cached value (openpyxl never computes them)
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(HEADER)
    for k, cells in enumerate(long[:4]):
        values = [cells[0], cells[1], int(cells[2]), *[int(v) for v in cells[3:]]]
        if k == 1:
            values[6] = "=1+2"  # Q4 of data row 2
        if k == 2:
            values[0] = '="P0"&"1"'  # the patient ID of data row 3
        ws.append(values)
    folder = case("xlsx_formula_without_value", codebook(file="export.xlsx", format="xlsx"))
    book.save(folder / "export.xlsx")

    # sav: 9 = "no answer" declared on the WAI items only; PHQ-9 totals of 9 are scores
    frame = pd.DataFrame([[c for c in r] for r in long[:6]], columns=HEADER)
    frame = frame.astype({c: float for c in ["sess", *ITEMS, "PHQ"]})
    frame.loc[0, "Q1"] = 9.0
    frame.loc[3, "Q12"] = 9.0
    frame.loc[[1, 2, 4], "PHQ"] = 9.0
    folder = case("sav_user_missing_per_column", codebook(file="export.sav", format="sav"))
    pyreadstat.write_sav(
        frame,
        str(folder / "export.sav"),
        missing_ranges={q: [9.0] for q in ITEMS},
        variable_value_labels={q: {9.0: "No answer"} for q in ITEMS},
    )
    case(
        "sav_declared_missing_off",
        codebook(file="../sav_user_missing_per_column/export.sav", format="sav",
                 declared_missing=False),
    )  # fmt: skip

    # sav: numeric patient IDs beyond 2**53 (a double cannot hold them exactly)
    frame = pd.DataFrame([[c for c in r] for r in long[:3]], columns=HEADER)
    frame = frame.astype({c: float for c in ["sess", *ITEMS, "PHQ"]})
    frame["pid"] = [12345678901234567890.0, 12345678901234567891.0, 1001.0]
    folder = case("sav_float_ids", codebook(file="export.sav", format="sav"))
    pyreadstat.write_sav(frame, str(folder / "export.sav"))


def byo_cases() -> None:
    """Issue 21: REDCap and Qualtrics exports, hostile and malformed."""
    dictionary_header = "Variable / Field Name,Form Name,Section Header,Field Type,Field Label"
    fields = [f"{q},wai,,radio,WAI-SR item {q[1:]}" for q in ITEMS]
    dictionary = [dictionary_header, "pid,intake,,text,Patient", "ther,intake,,text,Therapist"]
    dictionary += [*fields, "PHQ,wai,,text,PHQ-9 total"]
    redcap = codebook(
        file="export.csv",
        format="redcap",
        read={"dictionary": "dictionary.csv", "events": {"s1_arm_1": 1, "s2_arm_1": 2}},
        ids={"patient": "pid", "therapist": "ther", "session": "redcap_event_name"},
    )
    head = ["pid", "redcap_event_name", "ther", *ITEMS, "PHQ"]
    lines = [head]
    for p in (1, 2):
        lines.append([f"P{p:02d}", "intake_arm_1", "T1", *[""] * 13])
        for s, event in ((1, "s1_arm_1"), (2, "s2_arm_1"), (3, "s3_arm_1")):
            lines.append([f"P{p:02d}", event, "", *answers(p, s), str(p + s)])
    lines[4][3] = "=HYPERLINK(1)"  # P01 s3: a formula in an item cell
    case(
        "redcap_unmapped_event_and_formula",
        redcap,
        {"export.csv": csv_text(lines), "dictionary.csv": "\n".join(dictionary) + "\n"},
    )
    case(
        "redcap_dictionary_missing",
        codebook(
            file="../redcap_unmapped_event_and_formula/export.csv",
            format="redcap",
            read={"dictionary": "nowhere.csv"},
            ids={"patient": "pid", "therapist": "ther", "session": "redcap_event_name"},
        ),
    )
    case(
        "redcap_dictionary_twice",
        codebook(
            file="../redcap_unmapped_event_and_formula/export.csv",
            format="redcap",
            read={"dictionary": "dictionary.csv"},
            ids={"patient": "pid", "therapist": "ther", "session": "redcap_event_name"},
        ),
        {"dictionary.csv": "\n".join([*dictionary, "Q3,wai,,radio,again"]) + "\n"},
    )
    # Qualtrics: a question text spanning lines in an item column (a header, not a record),
    # a bad cell on line 6, a record with a missing field on line 7
    names = ["ResponseId", "pid", "ther", "sess", *ITEMS, "PHQ"]
    text = ["Response ID", "pid", "ther", "sess", '"WAI-SR item 1\n(text not shipped)"']
    text += [f"WAI-SR item {k}" for k in range(2, 13)] + ["PHQ-9"]
    ids = ['"{""ImportId"":""_recordId""}"'] * len(names)
    rows = [[f"R_{n}", f"P{p:02d}", "T1", str(s), *answers(p, s, low=0), str(p + s)]
            for n, (p, s) in enumerate([(1, 1), (1, 2), (2, 1), (2, 2)])]  # fmt: skip
    rows[1][6] = "@SUM(1)"
    rows[2] = rows[2][:-1]
    qualtrics = codebook(file="export.csv", format="qualtrics", recode={"shift": 1})
    case(
        "qualtrics_header_lines_and_bad_cells",
        qualtrics,
        {"export.csv": csv_text([names, text, ids, *rows])},
    )
    case(
        "qualtrics_without_import_ids",
        codebook(file="export.csv", format="qualtrics"),
        {"export.csv": csv_text([names, text, *rows])},
    )


if __name__ == "__main__":
    main()
    byo_cases()
