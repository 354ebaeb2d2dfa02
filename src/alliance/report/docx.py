"""The summary's tables as a Word document in APA style, for pasting into a manuscript.

:func:`summary_tables` finds every pipe table of ``summary.md`` with its title (the bold line
right above it, else its section heading) and its note (the ``*Note.*`` paragraph right
below it); :func:`write_tables_docx` writes them to one ``.docx``: each table numbered
("Table 1" in bold), its title in italics on the next line, horizontal rules only (above and
below the column headings and below the last row) and the note below it beginning with
*Note.* in italics, as the APA Publication Manual (7th ed., sections 7.8-7.14) lays tables out.
The cells are the Markdown's text with its escapes removed (python-docx writes text, never
markup, so a ``<script>`` or ``=cmd`` cell is shown as written).

References
----------
American Psychological Association. (2020). *Publication manual of the American Psychological
Association* (7th ed.). https://doi.org/10.1037/0000165-000
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

#: A Markdown escape written by :func:`alliance.tables.md_cell` (``\|``, ``\<``, ``\\``, ...).
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_RULE = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+\s*$")
_BOLD = re.compile(r"^\*\*(.+)\*\*$")
_NOTE = re.compile(r"^\*Note\.\*\s*(.*)$", flags=re.S)


@dataclass
class Table:
    """One table of the summary: title, column headings, rows of text and the note."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _unescape(text: str) -> str:
    return _ESCAPE.sub(r"\1", text.strip())


def _cells(line: str) -> list[str]:
    r"""The cells of a pipe-table line (``\|`` is a bar inside a cell)."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    cells, current, k = [], "", 0
    while k < len(body):
        if body[k] == "\\" and k + 1 < len(body):
            current += body[k : k + 2]
            k += 2
            continue
        if body[k] == "|":
            cells.append(current)
            current = ""
        else:
            current += body[k]
        k += 1
    cells.append(current)
    return [_unescape(c) for c in cells]


def summary_tables(markdown: str) -> list[Table]:
    """Every pipe table of a summary's Markdown with its title and note, in order."""
    lines = markdown.splitlines()
    tables: list[Table] = []
    heading = ""
    k = 0
    while k < len(lines):
        line = lines[k]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        is_table = (
            line.lstrip().startswith("|") and k + 1 < len(lines) and _RULE.match(lines[k + 1])
        )
        if not is_table:
            k += 1
            continue
        title = heading
        above = [ln for ln in lines[max(0, k - 2) : k] if ln.strip()]
        if above and (bold := _BOLD.match(above[-1].strip())):
            title = bold.group(1)
        header = _cells(line)
        rows = []
        k += 2
        while k < len(lines) and lines[k].lstrip().startswith("|"):
            rows.append(_cells(lines[k]))
            k += 1
        note = ""
        j = k
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and (found := _NOTE.match(lines[j].strip())):
            parts = [found.group(1)]
            j += 1
            while j < len(lines) and lines[j].strip() and not lines[j].startswith(("#", "|")):
                parts.append(lines[j].strip())
                j += 1
            note = _unescape(" ".join(parts))
        tables.append(Table(title=_unescape(title), header=header, rows=rows, note=note))
    return tables


def _rule(cell, edges: tuple[str, ...]) -> None:
    """Give a table cell a single horizontal border on ``edges`` (top, bottom), none else."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    props = cell._tc.get_or_add_tcPr()
    borders = OxmlElement("w:tcBorders")
    for edge in ("top", "left", "bottom", "right"):
        element = OxmlElement(f"w:{edge}")
        if edge in edges:
            element.set(qn("w:val"), "single")
            element.set(qn("w:sz"), "8")
            element.set(qn("w:color"), "000000")
        else:
            element.set(qn("w:val"), "nil")
        borders.append(element)
    props.append(borders)


def write_tables_docx(tables: list[Table], path: str | Path, heading: str = "") -> Path:
    """Write ``tables`` to a ``.docx`` file in APA layout; returns the path.

    The document's properties carry no author and a fixed date, and every zip entry a fixed
    date, so the same tables give the same bytes.
    """
    import datetime as dt

    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt

    doc = Document()
    props = doc.core_properties
    props.author = props.last_modified_by = ""
    props.title = heading
    fixed = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    props.created = props.modified = fixed
    props.revision = 1
    style = doc.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(12)
    if heading:
        doc.add_paragraph().add_run(heading).bold = True
    for number, table in enumerate(tables, start=1):
        label = doc.add_paragraph()
        label.add_run(f"Table {number}").bold = True
        label.paragraph_format.space_after = Pt(0)
        label.paragraph_format.keep_with_next = True
        title = doc.add_paragraph()
        title.add_run(table.title).italic = True
        title.paragraph_format.keep_with_next = True
        width = max([len(table.header), *(len(r) for r in table.rows)])
        grid = doc.add_table(rows=1 + len(table.rows), cols=width)
        for j, text in enumerate(table.header):
            cell = grid.rows[0].cells[j]
            cell.text = text
            _rule(cell, ("top", "bottom"))
        for i, row in enumerate(table.rows, start=1):
            last = i == len(table.rows)
            for j in range(width):
                cell = grid.rows[i].cells[j]
                cell.text = row[j] if j < len(row) else ""
                numeric = re.fullmatch(r"[-+−]?[\d.,]+%?|—|-", cell.text or "x") is not None
                if numeric and j:
                    cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
                _rule(cell, ("bottom",) if last else ())
        if table.note:
            note = doc.add_paragraph()
            note.add_run("Note.").italic = True
            note.add_run(f" {table.note}")
        doc.add_paragraph()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    doc.save(buffer)
    out.write_bytes(_fixed_zip(buffer.getvalue()))
    return out


def _fixed_zip(data: bytes) -> bytes:
    """The same zip with every entry dated 1980-01-01 (a rerun writes the same bytes)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


def write_summary_docx(markdown: str, path: str | Path) -> Path:
    """Every table of a summary's Markdown as a ``.docx`` (see the module docstring)."""
    return write_tables_docx(summary_tables(markdown), path, heading="Results summary: tables")
