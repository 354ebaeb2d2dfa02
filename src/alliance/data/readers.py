"""Read a raw export as text, record by record, with the source row of every record.

Every reader returns a :class:`RawTable`: the well-formed records as text exactly as in the
source (CSV fields as written; numbers of binary formats written back without loss), the row
number of each record, and the records that could not be read as the header's fields
(quarantined, never padded, cut or merged).

Row numbers
-----------
``row`` N is the record that starts on line N + 1 of a CSV file or in row N + 1 of a sheet
(with the header on line 1, data row N is line N + 1). A record holding a line break inside a
quoted field spans several lines; the next record's number is still its own first line minus
one, so the numbers point at the right line after any multi-line field (and may skip). Blank
lines and empty sheet rows (without any cell) are no records: they are skipped and counted; a
line of only separators (``,,,,``, as a spreadsheet saves an empty row) is a record,
quarantined as ``empty_row``. ``.sav`` and Parquet files have no lines: ``row`` N is case N.
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Integers up to this size are exact in a double; a float beyond it may have lost digits.
EXACT_FLOAT_INT = 2**53

#: Quarantine columns (``scope``: ``row`` = the record is quarantined, ``cell`` = only the
#: cell is set missing and the record kept).
QUARANTINE_COLUMNS = ["row", "column", "value", "reason", "detail", "scope"]

_SHOWN = 200  # characters of a rejected record shown in quarantine.csv


class ReadError(ValueError):
    """A file that cannot be read as its format (the ingest wraps it with the codebook)."""


@dataclass(frozen=True)
class DeclaredMissing:
    """User-missing values a ``.sav`` file declares for one column."""

    values: tuple[Any, ...] = ()
    ranges: tuple[tuple[float, float], ...] = ()

    def describe(self) -> str:
        """The values and ranges as text (``-99``, ``97 thru 99``)."""
        parts = [_number_label(v) for v in self.values]
        parts += [f"{_number_label(lo)} thru {_number_label(hi)}" for lo, hi in self.ranges]
        return ", ".join(parts)


@dataclass
class RawTable:
    """The records of one export, as text, with their source rows.

    Attributes
    ----------
    frame
        The well-formed records: one ``str`` column per header name, ``""`` for an empty cell,
        index 0..n-1.
    rows
        Source row of each record of ``frame`` (see the module docstring).
    rejected
        Quarantine lines (:data:`QUARANTINE_COLUMNS`, scope ``row``) of the records that are
        not in ``frame``: a wrong number of fields, or a quoted field spanning lines where the
        codebook reads it.
    n_records
        Every data record of the file: ``len(frame)`` plus the rejected records.
    declared_missing
        Column -> user-missing values the file declares for it (``.sav``).
    formulas
        Column -> {position in ``frame``: formula} of spreadsheet cells holding a formula
        without a cached value (the cell is ``""`` in ``frame``).
    notes
        Warnings for the ingest report (blank lines, kept multi-line records, duplicated names
        of unused columns).
    """

    frame: pd.DataFrame
    rows: np.ndarray
    rejected: pd.DataFrame
    n_records: int
    declared_missing: dict[str, DeclaredMissing] = field(default_factory=dict)
    formulas: dict[str, dict[int, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def empty_quarantine() -> pd.DataFrame:
    """A quarantine table without lines."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in QUARANTINE_COLUMNS})


# --------------------------------------------------------------------------- text of values


def _number_label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def float_text(value: float) -> str:
    """A float as text that reads back as the same float; ``""`` for NaN.

    Whole numbers below 2**53 lose their ``.0`` (``3.0`` reads ``3``). Beyond 2**53 a float
    cannot tell neighbouring integers apart, so it is written in scientific notation with 17
    significant digits (``1.2345678901234567e+19``), which ID columns reject as inexact.
    """
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if abs(value) >= EXACT_FLOAT_INT:
        return f"{value:.16e}"
    if value.is_integer():
        return str(int(value))
    return repr(value)


def cell_text(value: Any) -> str:
    """Any cell value of a binary format as text (see :func:`float_text` for floats)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return float_text(float(value))
    if isinstance(value, _dt.datetime | _dt.date | _dt.time | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def series_text(series: pd.Series) -> np.ndarray:
    """A column of a binary format as an object array of ``str`` (vectorized for numbers)."""
    if pd.api.types.is_float_dtype(series.dtype):
        x = series.to_numpy(dtype=float, na_value=np.nan)
        out = np.full(len(x), "", dtype=object)
        whole = np.isfinite(x) & (np.abs(x) < EXACT_FLOAT_INT) & (x == np.floor(x))
        out[whole] = [str(v) for v in x[whole].astype(np.int64).tolist()]
        other = ~np.isnan(x) & ~whole
        out[other] = [float_text(v) for v in x[other].tolist()]
        return out
    if pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.astype(object).to_numpy()
        return np.array(["" if pd.isna(v) else str(int(v)) for v in values], dtype=object)
    return np.array([cell_text(v) for v in series.astype(object).tolist()], dtype=object)


def _text_frame(columns: dict[str, Any]) -> pd.DataFrame:
    """A frame of ``str`` columns (pandas' string dtype) from sequences of text."""
    import pyarrow as pa

    return pd.DataFrame(
        {name: pa.array(list(v), type=pa.large_string()).to_pandas() for name, v in columns.items()}
    ).astype("str")


def _show(text: str) -> str:
    """A record's text for quarantine.csv: line breaks shown as a backslash-n, cut at 200."""
    shown = text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."


def _header_names(names: Iterable[Any]) -> list[str]:
    """Header cells as column names; an empty one is ``Unnamed: k`` (0-based, as pandas)."""
    out = []
    for k, name in enumerate(names):
        text = cell_text(name) if not isinstance(name, str) else name
        out.append(text if text.strip() else f"Unnamed: {k}")
    return out


def check_header(names: list[str], used: dict[str, str], source: str) -> tuple[list[str], str]:
    """Reject a duplicated name the codebook reads; rename other duplicates, with a note.

    Parameters
    ----------
    names
        The header, in file order.
    used
        Column -> the codebook key that names it.
    source
        The file's name, for messages.

    Returns
    -------
    names, note
        Unique names (a later copy of an unused name becomes ``name [column k]``, 1-based) and
        a warning naming them ("" if there are none).

    Raises
    ------
    ReadError
        If a column the codebook reads appears more than once: which copy holds the data is
        ambiguous (a reader that renames the copy, as pandas' ``name.1``, would silently use
        the first).
    """
    positions: dict[str, list[int]] = {}
    for k, name in enumerate(names):
        positions.setdefault(name, []).append(k + 1)
    dups = {n: p for n, p in positions.items() if len(p) > 1}
    if not dups:
        return list(names), ""
    bad = {n: p for n, p in dups.items() if n in used}
    if bad:
        listing = "; ".join(
            f"{n!r} at columns {', '.join(map(str, p))} (named by key '{used[n]}')"
            for n, p in bad.items()
        )
        raise ReadError(
            f"{source}: duplicated column names in the header: {listing}; which copy holds the "
            "data is ambiguous: rename or remove the copies"
        )
    out = list(names)
    for name, pos in dups.items():
        for k in pos[1:]:
            out[k - 1] = f"{name} [column {k}]"
    listing = ", ".join(f"{n!r} (columns {', '.join(map(str, p))})" for n, p in dups.items())
    return out, f"duplicated column names the codebook does not read: {listing}"


# --------------------------------------------------------------------------- CSV


_LINE_BREAK = re.compile(r"[\r\n]")


def read_csv(path: Path, used: dict[str, str], sep: str = ",", encoding: str = "utf-8") -> RawTable:
    """Read a CSV file record by record (RFC 4180 quoting) with each record's lines.

    A record whose number of fields differs from the header's is rejected (never padded or
    cut). A record holding a line break inside a quoted field spans several lines: it is kept
    only when it has the header's number of fields and no column the codebook reads
    (``used``) holds the line break; otherwise it is rejected with its line span, so a quote
    left open never absorbs the following lines silently.

    Raises
    ------
    ReadError
        For an empty file, a header without data records, an undecodable byte (with its line)
        or a column the codebook reads appearing twice in the header.
    """
    if len(sep) != 1:
        raise ReadError(f"key 'read.sep' must be one character for CSV, got {sep!r}")
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ReadError(f"key 'read.encoding': unknown encoding {encoding!r}") from None
    name = path.name
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig" if codec == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ReadError(
            f"{name} cannot be decoded as {encoding} on line {line} (bytes "
            f"{data[exc.start : exc.end]!r}): set key 'read.encoding' (for example latin-1 or "
            "cp1252)"
        ) from None
    records: list[list[str]] = []
    starts: list[int] = []
    ends: list[int] = []
    header: list[str] | None = None
    header_line = 0
    blank = 0
    line = 0
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=sep, quotechar='"', doublequote=True, strict=False
    )
    try:
        for fields in reader:
            start, line = line + 1, reader.line_num
            if len(fields) <= 1 and not "".join(fields).strip():  # a blank line
                blank += 1
                continue
            if header is None:
                header, header_line = fields, start
                continue
            records.append(fields)
            starts.append(start)
            ends.append(line)
    except csv.Error as exc:
        raise ReadError(f"{name} line {reader.line_num + 1}: not CSV: {exc}") from None
    del text
    if header is None:
        raise ReadError(f"{name} is empty: no header line")
    names, dup_note = check_header(_header_names(header), used, name)
    if not records:
        raise ReadError(
            f"{name} has a header (line {header_line}) but no data rows: nothing to ingest"
        )
    width = len(names)
    read_pos = [k for k, n in enumerate(names) if n in used]
    good: list[list[str]] = []
    good_rows: list[int] = []
    bad_lines: list[dict[str, Any]] = []
    kept_spans: list[str] = []
    for fields, start, end in zip(records, starts, ends, strict=True):
        row = start - 1
        if end == start and len(fields) == width and (fields[0].strip() or "".join(fields).strip()):
            good.append(fields)  # the common case: one line, the header's width, not empty
            good_rows.append(row)
            continue
        if not "".join(fields).strip():  # only separators
            bad_lines.append(
                {
                    "row": row,
                    "column": "",
                    "value": _show(sep.join(fields)),
                    "reason": "empty_row",
                    "detail": f"every field of line {start} is empty (a spreadsheet saves an "
                    "empty row so)",
                    "scope": "row",
                }
            )
            continue
        broken = [k for k, f in enumerate(fields) if _LINE_BREAK.search(f)]
        span = f"lines {start}-{end}" if end > start else f"line {start}"
        if len(fields) == width and not any(k in read_pos for k in broken):
            good.append(fields)
            good_rows.append(row)
            kept_spans.append(f"row {row} ({span})")
            continue
        text = sep.join(fields)
        if broken:
            columns = [names[k] if k < width else f"field {k + 1}" for k in broken]
            read = [c for c in columns if c in used]
            where = f"column {read[0]!r}" if read else f"field {broken[0] + 1}"
            detail = (
                f"a quoted field ({where}) holds a line break: the record spans {span} "
                f"({end - start + 1} lines) with {len(fields)} fields (the header has {width}); "
                "a quote left open absorbs the lines that follow, so the record is not used"
            )
            reason = "multiline_record"
        else:
            detail = (
                f"{len(fields)} fields on {span}, the header has {width}: the record is "
                "neither padded nor cut"
            )
            reason = "wrong_field_count"
        bad_lines.append(
            {
                "row": row,
                "column": "",
                "value": _show(text),
                "reason": reason,
                "detail": detail,
                "scope": "row",
            }
        )
    notes = []
    if blank:
        notes.append(f"{blank} blank lines of {name} are no records and were skipped")
    if kept_spans:
        shown = ", ".join(kept_spans[:5]) + (" ..." if len(kept_spans) > 5 else "")
        notes.append(
            f"{len(kept_spans)} records of {name} hold a line break inside a quoted field of a "
            f"column the codebook does not read; they are kept: {shown}"
        )
    if dup_note:
        notes.append(f"{name}: {dup_note}")
    by_column = list(zip(*good, strict=True)) if good else [() for _ in names]
    frame = _text_frame(dict(zip(names, by_column, strict=True)))
    rejected = (
        pd.DataFrame(bad_lines, columns=QUARANTINE_COLUMNS) if bad_lines else (empty_quarantine())
    )
    return RawTable(
        frame=frame,
        rows=np.asarray(good_rows, dtype=np.int64),
        rejected=rejected,
        n_records=len(records),
        notes=notes,
    )


# --------------------------------------------------------------------------- binary formats


def _table_from_frame(
    frame: pd.DataFrame, used: dict[str, str], name: str, notes: list[str]
) -> RawTable:
    """A :class:`RawTable` of a binary format's frame: case N is row N, every value as text."""
    if len(frame) == 0:
        raise ReadError(f"{name} has columns but no data rows: nothing to ingest")
    names, dup_note = check_header([str(c) for c in frame.columns], used, name)
    if dup_note:
        notes.append(f"{name}: {dup_note}")
    text = {n: series_text(frame.iloc[:, k]) for k, n in enumerate(names)}
    return RawTable(
        frame=_text_frame(text),
        rows=np.arange(1, len(frame) + 1, dtype=np.int64),
        rejected=empty_quarantine(),
        n_records=len(frame),
        notes=notes,
    )


def read_sav(path: Path, used: dict[str, str]) -> RawTable:
    """Read an SPSS ``.sav`` file with the user-missing values each column declares."""
    import pyreadstat

    frame, meta = pyreadstat.read_sav(str(path), user_missing=True)
    declared: dict[str, DeclaredMissing] = {}
    declaring = set(meta.missing_user_values or {}) | set(meta.missing_ranges or {})
    for col in (c for c in frame.columns if c in declaring):  # in file order
        values = list((meta.missing_user_values or {}).get(col, []))
        ranges = []
        for bounds in (meta.missing_ranges or {}).get(col, []):
            lo, hi = bounds["lo"], bounds["hi"]
            if lo == hi:
                values.append(lo)
            else:
                ranges.append((float(lo), float(hi)))
        unique = tuple(dict.fromkeys(values))
        if unique or ranges:
            declared[str(col)] = DeclaredMissing(values=unique, ranges=tuple(ranges))
    raw = _table_from_frame(frame, used, path.name, [])
    raw.declared_missing = declared
    return raw


def read_parquet(path: Path, used: dict[str, str]) -> RawTable:
    """Read a Parquet file; integers stay exact, floats are written as in :func:`float_text`."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path).read()  # read_table refuses duplicated names
    names, dup_note = check_header([str(c) for c in table.column_names], used, path.name)
    frame = table.rename_columns(names).to_pandas()
    return _table_from_frame(frame, used, path.name, [f"{path.name}: {dup_note}"] * bool(dup_note))


def _is_formula(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith("=")
    return type(value).__name__ in ("ArrayFormula", "DataTableFormula")


def _sheet_rows(path: Path, sheet: str | int, data_only: bool) -> list[tuple[Any, ...]]:
    """Every row of a sheet from row 1 (``data_only``: cached values, else formulas)."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=data_only, keep_links=False)
    try:
        if isinstance(sheet, int):
            if not 0 <= sheet < len(book.worksheets):
                raise ReadError(
                    f"key 'read.sheet': sheet {sheet} does not exist in {path.name} "
                    f"(its sheets: {book.sheetnames})"
                )
            ws = book.worksheets[sheet]
        else:
            if sheet not in book.sheetnames:
                raise ReadError(
                    f"key 'read.sheet': sheet {sheet!r} does not exist in {path.name} "
                    f"(its sheets: {book.sheetnames})"
                )
            ws = book[sheet]
        ws.reset_dimensions()  # some writers record a wrong size
        return [tuple(r) for r in ws.iter_rows(min_row=1, values_only=True)]
    finally:
        book.close()


def read_xlsx(path: Path, used: dict[str, str], sheet: str | int = 0) -> RawTable:
    """Read an Excel sheet: the first non-empty row is the header, sheet row N + 1 is row N.

    Cell values are the values Excel cached; a formula cell without a cached value (a file
    written by a program that does not compute formulas) is ``""`` in the frame and listed in
    ``formulas`` so that the ingest quarantines it instead of taking it for non-response.
    Empty sheet rows are no records (counted in a note).
    """
    values = _sheet_rows(path, sheet, data_only=True)

    def trimmed(row: tuple[Any, ...]) -> tuple[Any, ...]:
        end = len(row)
        while end and (row[end - 1] is None or row[end - 1] == ""):
            end -= 1
        return row[:end]

    rows = [trimmed(r) for r in values]
    filled = [k for k, r in enumerate(rows) if r]
    if not filled:
        raise ReadError(f"{path.name}: the sheet is empty: no header row")
    head = filled[0]
    data_idx = filled[1:]
    blank = (len(rows) - head - 1) - len(data_idx)
    width = max(len(rows[k]) for k in filled)
    header = list(rows[head]) + [None] * (width - len(rows[head]))
    names, dup_note = check_header(_header_names(header), used, path.name)
    if not data_idx:
        raise ReadError(
            f"{path.name} has a header (sheet row {head + 1}) but no data rows: nothing to ingest"
        )
    notes = []
    if blank:
        notes.append(f"{blank} empty rows of {path.name} are no records and were skipped")
    if dup_note:
        notes.append(f"{path.name}: {dup_note}")
    cells = [rows[k] + (None,) * (width - len(rows[k])) for k in data_idx]
    by_column = list(zip(*cells, strict=True))
    frame = _text_frame(
        {n: [cell_text(v) for v in col] for n, col in zip(names, by_column, strict=True)}
    )
    formulas: dict[str, dict[int, str]] = {}
    if any(v is None for col in by_column for v in col):
        raw_formulas = _sheet_rows(path, sheet, data_only=False)
        for pos, k in enumerate(data_idx):
            row = raw_formulas[k] if k < len(raw_formulas) else ()
            for j, formula in enumerate(row[:width]):
                if cells[pos][j] is None and _is_formula(formula):
                    text = (
                        formula if isinstance(formula, str) else str(getattr(formula, "text", ""))
                    )
                    formulas.setdefault(names[j], {})[pos] = text
    return RawTable(
        frame=frame,
        rows=np.asarray(data_idx, dtype=np.int64),  # sheet row k + 1 holds row k
        rejected=empty_quarantine(),
        n_records=len(data_idx),
        formulas=formulas,
        notes=notes,
    )
