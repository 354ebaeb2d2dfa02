"""Result tables as CSV (full precision) and Markdown (rounded for reading), side by side.

Every CSV the project writes goes through :func:`write_csv`, which makes it formula-safe: a
spreadsheet that opens it never runs a cell as a formula (OWASP, "CSV Injection"). Text cells
that begin with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return get a leading single
quote, which spreadsheets read as "this cell is text" and do not display. The decision is made
per cell type, not per look: a number (a cell of a numeric column, or a number in a mixed
column) is written as it is, so ``-0.25`` stays a number that ``pandas.read_csv`` and
``alliance verify`` read back; a text cell holding ``"-3"`` (a raw answer in quarantine.csv)
is text and is quoted, ``'-3``. Column names and index labels are text cells too.
:func:`read_csv` undoes the quote, so a table written and read back is unchanged.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "FORMULA_TRIGGERS",
    "formula_safe",
    "md_cell",
    "md_text",
    "read_csv",
    "to_markdown",
    "unquote",
    "write_csv",
    "write_csv_and_markdown",
    "write_table",
]

#: First characters that make a spreadsheet read a text cell as a formula (OWASP, "CSV
#: Injection": https://owasp.org/www-community/attacks/CSV_Injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: Any) -> Any:
    """``value`` with a leading single quote if it is text a spreadsheet would run as a formula.

    Only ``str`` values are changed: text whose first character after any leading single
    quotes is one of :data:`FORMULA_TRIGGERS` gets one more quote in front (so that text which
    already began with a quote, ``'=x``, survives the round trip through :func:`unquote`).
    Numbers, missing values and everything else are returned unchanged.

    Examples
    --------
    >>> formula_safe("=1+2"), formula_safe("-3"), formula_safe(-3), formula_safe("a-b")
    ("'=1+2", "'-3", -3, 'a-b')
    """
    if isinstance(value, str) and value.lstrip("'")[:1] in FORMULA_TRIGGERS:
        return "'" + value
    return value


def unquote(value: Any) -> Any:
    """The inverse of :func:`formula_safe` (a text cell read back from :func:`write_csv`)."""
    if isinstance(value, str) and value[:1] == "'" and value.lstrip("'")[:1] in FORMULA_TRIGGERS:
        return value[1:]
    return value


def _is_text_column(column: pd.Series) -> bool:
    """Whether a column can hold text cells (object, string or categorical dtype)."""
    return not (
        pd.api.types.is_numeric_dtype(column.dtype)
        or pd.api.types.is_bool_dtype(column.dtype)
        or pd.api.types.is_datetime64_any_dtype(column.dtype)
        or pd.api.types.is_timedelta64_dtype(column.dtype)
    )


def _mapped(values: pd.Index | pd.Series, cell: Any) -> pd.Index | pd.Series | None:
    """``values`` with ``cell`` applied to each text value, or None when nothing changes."""
    if not _is_text_column(values):
        return None
    original = values.astype(object)
    mapped = original.map(cell)
    if all(a is b for a, b in zip(mapped, original, strict=True)):
        return None
    if isinstance(values.dtype, pd.StringDtype):
        return mapped.astype(values.dtype)
    return mapped


def _map_text(frame: pd.DataFrame, cell: Any, index: bool) -> pd.DataFrame:
    """``frame`` with ``cell`` applied to every text cell, column name and (index) label.

    Columns and labels without a changed value keep their dtype.
    """
    out = frame.copy()
    for position in range(out.shape[1]):
        mapped = _mapped(out.iloc[:, position], cell)
        if mapped is not None:
            out.isetitem(position, mapped)
    if not isinstance(out.columns, pd.MultiIndex) and (
        (columns := _mapped(out.columns, cell)) is not None
    ):
        out.columns = columns
    if index and not isinstance(out.index, pd.MultiIndex):
        labels = _mapped(out.index, cell)
        if labels is not None:
            out.index = labels
        out.index.name = cell(out.index.name)
    return out


def write_csv(frame: pd.DataFrame, path: str | Path, **to_csv: Any) -> None:
    """Write ``frame`` to ``path`` as :meth:`pandas.DataFrame.to_csv`, formula-safe.

    Every text cell, column name and written index label passes :func:`formula_safe`;
    numeric columns (and numbers in mixed columns) are written unchanged. ``to_csv`` are
    :meth:`pandas.DataFrame.to_csv`'s keywords (``index``, ``float_format``, ...), with its
    defaults.

    References
    ----------
    OWASP Foundation. CSV Injection. https://owasp.org/www-community/attacks/CSV_Injection
    """
    index = to_csv.get("index", True)
    _map_text(frame, formula_safe, index).to_csv(path, **to_csv)


def read_csv(path: str | Path, **read_csv_kwargs: Any) -> pd.DataFrame:
    """Read a CSV written by :func:`write_csv`, with the formula-safety quotes removed."""
    frame = pd.read_csv(path, **read_csv_kwargs)
    return _map_text(frame, unquote, index=True)


#: A backslash that would escape the next character (CommonMark: before ASCII punctuation).
_ESCAPING_BACKSLASH = re.compile(r"\\(?=[!-/:-@\[-`{-~])")
#: A ``<`` that could open raw HTML or an autolink (a tag name, ``/``, ``!`` or ``?`` follows).
_HTML_OPENING = re.compile(r"<(?=[A-Za-z/!?])")


def md_text(value: Any) -> str:
    r"""``value`` as inert Markdown text: data (a column header, a reason) is shown, never run.

    Line breaks become spaces, a backslash that would escape the next character is doubled
    and a ``<`` that could open an HTML tag or autolink is escaped (``\<``), so that any
    CommonMark renderer shows ``<script>`` as text; other characters are left as they are, so
    the Markdown stays readable (``P(OR < 1)``). :func:`alliance.report.summary.markdown_to_html`
    escapes all HTML as well.
    """
    text = " ".join(str(value).splitlines())
    text = _ESCAPING_BACKSLASH.sub(r"\\\\", text)
    return _HTML_OPENING.sub(r"\\<", text)


def md_cell(value: Any) -> str:
    """``value`` as the text of a Markdown pipe-table cell: :func:`md_text`, ``|`` escaped."""
    return md_text(value).replace("|", "\\|")


def write_csv_and_markdown(
    table: pd.DataFrame,
    path: str | Path,
    title: str,
    note: str | None = None,
    digits: int = 3,
    index: bool = False,
) -> None:
    """Write ``table`` to ``path`` (CSV) and beside it as ``.md`` with a title and a note.

    The CSV keeps full precision (it is what `alliance verify` checks) and is formula-safe
    (:func:`write_csv`); the Markdown rounds numbers to ``digits`` decimals for reading.
    """
    path = Path(path)
    write_csv(table, path, index=index)
    shown = table.reset_index() if index else table.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}f}")
    path.with_suffix(".md").write_text(to_markdown(shown, title=title, note=note) + "\n")


def _md_cell(value: Any) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return md_cell(text)


def to_markdown(df: pd.DataFrame, title: str | None = None, note: str | None = None) -> str:
    """A GitHub/pandoc pipe table with the title above and ``*Note.* ...`` below.

    ``title`` and ``note`` default to ``df.attrs["title"]`` / ``df.attrs["note"]``. Text
    columns are left-aligned, the others right-aligned.
    """
    title = df.attrs.get("title") if title is None else title
    note = df.attrs.get("note") if note is None else note
    header = [_md_cell(c) for c in df.columns]
    left = [
        c in ("Model", "Step", "Factor", "Item", "Decision", "Criterion", "Status")
        or str(c).startswith(("Release", "Misses"))
        for c in df.columns
    ]
    align = [":--" if lf else "--:" for lf in left]
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join(align) + " |")
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if note:
        lines += ["", f"*Note.* {note}"]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Write ``{path_stem}.csv`` (the cells as they are) and ``{path_stem}.md`` (with note).

    The CSV is UTF-8 without the index; the title and note go to the Markdown file only.

    Returns
    -------
    list of pathlib.Path
        The two files written.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv = stem.with_name(stem.name + ".csv")
    md = stem.with_name(stem.name + ".md")
    write_csv(df, csv, index=False, lineterminator="\n")
    md.write_text(to_markdown(df), encoding="utf-8")
    return [csv, md]
