"""The summary's tables as a Word document (issue 21), read back with python-docx."""

from __future__ import annotations

import hashlib

import pandas as pd
from docx import Document
from docx.oxml.ns import qn

from alliance.report.docx import summary_tables, write_summary_docx
from alliance.report.summary import markdown_table

FIT = pd.DataFrame(
    {
        "Model": ["one_factor", "correlated"],
        "df": [54, 51],
        "CFI": ["0.912", "0.987"],
        "RMSEA [90% CI]": ["0.081 [0.07, 0.09]", "0.031 [0.02, 0.04]"],
    }
)
HOSTILE = pd.DataFrame({"Warning": ["<script>alert(1)</script>", "=HYPERLINK(1)", "a|b \\ c"]})
SUMMARY = "\n\n".join(
    [
        "# Results summary",
        "## Data",
        markdown_table(HOSTILE),
        "## Confirmatory factor analysis",
        "**site_a: Fit of the competing CFA models (MLR)**",
        markdown_table(FIT),
        "*Note.* CFI = comparative fit index; RMSEA = root mean square error of approximation.",
        "## Methods",
        "Text without a table.",
    ]
)


def test_tables_are_found_with_titles_and_notes():
    tables = summary_tables(SUMMARY)
    assert [t.title for t in tables] == ["Data", "site_a: Fit of the competing CFA models (MLR)"]
    assert tables[0].rows == [[v] for v in HOSTILE["Warning"]]  # escapes removed
    assert tables[1].header == list(FIT.columns)
    assert tables[1].rows == FIT.astype(str).to_numpy().tolist()
    assert tables[1].note.startswith("CFI = comparative fit index;")
    assert tables[0].note == ""


def borders(cell) -> dict[str, str]:
    found = cell._tc.tcPr.find(qn("w:tcBorders"))
    return {child.tag.split("}")[1]: child.get(qn("w:val")) for child in found}


def test_docx_reads_back_in_apa_layout(tmp_path):
    path = write_summary_docx(SUMMARY, tmp_path / "tables.docx")
    doc = Document(str(path))
    assert len(doc.tables) == 2
    fit = doc.tables[1]
    assert [c.text for c in fit.rows[0].cells] == list(FIT.columns)
    body = [[c.text for c in row.cells] for row in fit.rows[1:]]
    assert body == FIT.astype(str).to_numpy().tolist()
    hostile = [row.cells[0].text for row in doc.tables[0].rows[1:]]
    assert hostile == list(HOSTILE["Warning"])  # text, as written
    paragraphs = [p for p in doc.paragraphs if p.text]
    texts = [p.text for p in paragraphs]
    k = texts.index("Table 2")
    assert paragraphs[k].runs[0].bold
    assert texts[k + 1] == "site_a: Fit of the competing CFA models (MLR)"
    assert paragraphs[k + 1].runs[0].italic
    note = paragraphs[k + 2]
    assert note.text.startswith("Note. CFI = comparative fit index;")
    assert note.runs[0].italic and note.runs[0].text == "Note."
    # horizontal rules only: above and below the headings, below the last row
    assert borders(fit.rows[0].cells[0]) == {
        "top": "single",
        "left": "nil",
        "bottom": "single",
        "right": "nil",
    }
    assert set(borders(fit.rows[1].cells[1]).values()) == {"nil"}
    assert borders(fit.rows[-1].cells[2])["bottom"] == "single"


def test_docx_bytes_are_reproducible(tmp_path):
    a = write_summary_docx(SUMMARY, tmp_path / "a.docx").read_bytes()
    b = write_summary_docx(SUMMARY, tmp_path / "b.docx").read_bytes()
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
