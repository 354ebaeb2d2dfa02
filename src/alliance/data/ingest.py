"""Apply a codebook to a raw export: tidy tables, a quarantine of rejected rows and an account."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.data.codebook import RATERS, Codebook, load_codebook
from alliance.data.exports import read_export
from alliance.data.readers import (
    EXACT_FLOAT_INT,
    QUARANTINE_COLUMNS,  # noqa: F401 - re-exported: the columns of quarantine.csv
    DeclaredMissing,
    RawTable,
    ReadError,
    empty_quarantine,
)
from alliance.jsonio import write_json
from alliance.tables import write_csv

ID_COLUMNS = ["patient_id", "therapist_id", "session", "rater"]

#: Reasons quarantined as a cell (set missing, the record kept): a bad answer, outcome score or
#: covariate value (and a formula without a value outside the ID columns). Every other reason
#: (IDs, sessions, raters, duplicates, malformed records) quarantines the record.
CELL_REASONS = (
    "non_numeric",
    "out_of_range",
    "not_on_scale",
    "outcome_non_numeric",
    "outcome_out_of_range",
    "covariate_invalid",
    "formula_without_value",
)


class IngestError(ValueError):
    """An export that cannot be read as its codebook says, or a quarantine in strict mode."""


@dataclass
class IngestResult:
    """The tidy tables, the quarantine and the accounting of one ingest."""

    items: pd.DataFrame
    outcomes: pd.DataFrame
    patients: pd.DataFrame
    effects: pd.DataFrame | None
    quarantine: pd.DataFrame
    report: dict[str, Any]
    #: patient x session x rater attested by a source record, kept or quarantined (items only)
    attendance: pd.DataFrame | None = None
    problems: list[pd.DataFrame] = field(default_factory=list, repr=False)

    def write(self, out_dir: str | Path) -> None:
        """Write the tables, ``quarantine.csv`` and ``ingest_report.json`` into ``out_dir``.

        Items datasets: ``items.parquet``, ``outcomes.parquet``, ``patients.parquet`` and
        ``attendance.parquet``; effects datasets: ``effects.parquet``.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if self.effects is not None:
            self.effects.to_parquet(out / "effects.parquet", index=False)
        else:
            self.items.to_parquet(out / "items.parquet", index=False)
            self.outcomes.to_parquet(out / "outcomes.parquet", index=False)
            self.patients.to_parquet(out / "patients.parquet", index=False)
            if self.attendance is not None:
                self.attendance.to_parquet(out / "attendance.parquet", index=False)
        write_csv(self.quarantine, out / "quarantine.csv", index=False)
        write_json(out / "ingest_report.json", self.report)


# --------------------------------------------------------------------------- reading


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_raw(codebook: Codebook) -> RawTable:
    """Read the export named by ``codebook`` as text, without interpreting any value.

    Returns
    -------
    RawTable
        The well-formed records as text with their source rows (``row`` N starts on line or
        sheet row N + 1; case N of a ``.sav`` or Parquet file), the records rejected as
        malformed, the user-missing values each column declares and the formula cells
        without a value (see :mod:`alliance.data.readers`).

    Raises
    ------
    IngestError
        If the file cannot be read as the codebook's ``format``, has no data rows, or names a
        column the codebook reads twice; the message names the codebook, the key and the file.
    """
    fmt, path = codebook.format, codebook.file
    try:
        return read_export(fmt, path, codebook.read, required_columns(codebook))
    except ReadError as exc:
        raise IngestError(f"{codebook.path}: {exc}") from exc
    except OSError as exc:
        raise IngestError(
            f"{codebook.path}: key 'file' names {path}, which cannot be read: {exc.strerror or exc}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any other reader failure means the same thing
        raise IngestError(
            f"{codebook.path}: key 'format' says {fmt!r}, but {path} cannot be read as {fmt}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def required_columns(codebook: Codebook) -> dict[str, str]:
    """Every raw column the codebook names -> the codebook key that names it."""
    needed: dict[str, str] = {}
    if codebook.kind == "effects":
        for key in ("study", "r", "n", "yi", "vi", "cluster"):
            if key in codebook.effects:
                needed[codebook.effects[key]] = f"effects.{key}"
        for col in codebook.effects.get("moderators", []):
            needed[col] = "effects.moderators"
        return needed
    for role, col in codebook.ids.items():
        needed[col] = f"ids.{role}"
    for col in codebook.group_columns.values():
        needed[col] = "groups"
    item_key = "items.map" if "map" in codebook.raw["items"] else "items.pattern"
    sessions = codebook.sessions if codebook.layout == "wide" else (None,)
    for item in codebook.instrument.items:
        for session in sessions:
            needed[codebook.item_column(item, session)] = item_key
    for i, outcome in enumerate(codebook.outcomes):
        if codebook.layout == "wide" and outcome.timepoint is None:
            for session in codebook.sessions:
                needed[codebook.outcome_column(outcome, session)] = f"outcomes[{i}].column"
        else:
            needed[outcome.column] = f"outcomes[{i}].column"
    for i, cov in enumerate(codebook.covariates):
        needed[cov.column] = f"covariates[{i}].column"
    return needed


def check_columns(codebook: Codebook, frame: pd.DataFrame) -> list[str]:
    """Raise if a named column is absent; return the file's columns the codebook does not use."""
    needed = required_columns(codebook)
    absent = [(col, key) for col, key in needed.items() if col not in frame.columns]
    if absent:
        listing = "; ".join(f"key '{key}' names column {col!r}" for col, key in absent[:10])
        more = f" (and {len(absent) - 10} more)" if len(absent) > 10 else ""
        raise IngestError(
            f"{codebook.path}: {listing}{more}, which {codebook.file.name} lacks "
            f"(its columns: {', '.join(frame.columns[:40])})"
        )
    return [c for c in frame.columns if c not in needed]


# --------------------------------------------------------------------------- cells


def _blank(raw: pd.Series) -> pd.Series:
    """True where a cell is empty (NA, NaN or only white space)."""
    blank = raw.isna()
    if raw.dtype == object or pd.api.types.is_string_dtype(raw):
        blank |= raw.astype("string").str.strip().fillna("").eq("")
    return blank.astype(bool)


@dataclass
class Cells:
    """A raw column classified cell by cell."""

    value: pd.Series  # float, NaN unless the cell is a number
    blank: pd.Series
    code: pd.Series  # the missing code a cell holds, else NA
    non_numeric: pd.Series


def classify(
    raw: pd.Series,
    missing_codes: tuple[Any, ...],
    decimal: str = ".",
    ranges: tuple[tuple[float, float], ...] = (),
) -> Cells:
    """Split a raw column into numbers, blanks, missing codes and non-numeric text.

    A missing code matches numerically when it is a number (so ``-99`` matches ``"-99"``,
    ``"-99.0"`` and ``-99.0``) and by its stripped text otherwise (``"n/a"``); ``ranges``
    (SPSS user-missing ranges, ``lo <= value <= hi``) match numerically.
    """
    blank = _blank(raw)
    text = raw.astype("string").str.strip()
    if pd.api.types.is_numeric_dtype(raw):
        number = raw.astype(float)
    else:
        cleaned = text if decimal == "." else text.str.replace(decimal, ".", regex=False)
        number = pd.to_numeric(cleaned, errors="coerce").astype(float)
    number = number.where(~blank)
    code = pd.Series(pd.NA, index=raw.index, dtype="object")
    numeric_codes = [c for c in missing_codes if isinstance(c, int | float)]
    text_codes = [str(c).strip() for c in missing_codes if isinstance(c, str)]
    for c in text_codes:  # a quoted number is a numeric code too
        try:
            numeric_codes.append(float(c))
        except ValueError:
            pass
    if numeric_codes:
        hit = number.isin([float(c) for c in numeric_codes]) & ~blank
        code = code.mask(hit, number.where(hit))
    for lo, hi in ranges:
        hit = number.between(lo, hi).fillna(False).astype(bool) & ~blank
        code = code.mask(hit, number.where(hit))
    if text_codes:
        hit = text.isin(text_codes).fillna(False).astype(bool) & ~blank
        code = code.mask(hit, text.where(hit))
    is_code = code.notna()
    value = number.where(~is_code)
    non_numeric = ~blank & ~is_code & number.isna()
    return Cells(value=value, blank=blank, code=code, non_numeric=non_numeric)


_WHOLE_TEXT = r"^([+-]?\d+)\.0+$"  # a pattern string: pyarrow runs it vectorized
#: A number in scientific notation: how a spreadsheet writes a long number, digits lost.
_SCIENTIFIC = r"^[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d+$"
#: An infinite number as the readers and spreadsheets write it (``inf``, ``-Infinity``).
_INFINITE = r"^[+-]?(?:inf|infinity)$"


def _as_id(raw: pd.Series) -> pd.Series:
    """IDs as text exactly as in the source: whole numbers lose a ``.0``; blanks become NA.

    The ``.0`` is removed from the text (``12345678901234567890.0`` reads
    ``12345678901234567890``), never by way of a float, so long numeric IDs stay distinct.
    """
    blank = _blank(raw)
    text = raw.astype("string").str.strip()
    text = text.str.replace(_WHOLE_TEXT, r"\1", regex=True)
    return text.mask(blank, pd.NA).astype("string")


def _inexact_id(raw: pd.Series) -> pd.Series:
    """True where an ID is a number in scientific notation (``1.2345678901234567e+19``).

    Such an ID has lost digits (Excel keeps 15 significant digits; a float beyond 2**53 cannot
    tell neighbouring integers apart, and the binary readers write one so), so two patients
    may share it.
    """
    text = raw.astype("string").str.strip()
    return text.str.match(_SCIENTIFIC).fillna(False).astype(bool)


def _infinite_id(raw: pd.Series) -> pd.Series:
    """True where an ID is an infinite number (``inf``, ``-Infinity``).

    A numeric ID column of a binary file, or a CSV written from one, holds it where an overflow
    or a division by zero left no identifier.
    """
    text = raw.astype("string").str.strip()
    return text.str.match(_INFINITE, case=False).fillna(False).astype(bool)


class ProblemLog:
    """Collects problems (row, column, value, reason, detail, scope) column by column.

    ``scope`` is ``"row"`` when the problem quarantines the record, ``"cell"`` when only the
    cell is set missing and the record is kept.
    """

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []

    def add(
        self,
        mask: pd.Series,
        rows: pd.Series,
        column: str,
        values: pd.Series,
        reason: str,
        detail: str,
        scope: str = "row",
    ) -> None:
        """Record a problem for every row where ``mask`` is true."""
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        self.frames.append(
            pd.DataFrame(
                {
                    "row": rows[mask].to_numpy(),
                    "column": column,
                    "value": values[mask].astype("string").fillna("").to_numpy(),
                    "reason": reason,
                    "detail": detail,
                    "scope": scope,
                }
            )
        )

    def table(self) -> pd.DataFrame:
        """All problems, ordered by row then column."""
        frames = [f for f in self.frames if len(f)]
        if not frames:
            return empty_quarantine()
        out = pd.concat(frames, ignore_index=True)
        out["row"] = out["row"].astype("int64")
        return out.sort_values(["row", "column", "reason"], kind="stable").reset_index(drop=True)

    def rows(self, scope: str = "row") -> set[int]:
        """Source rows with a problem of ``scope``."""
        table = self.table()
        return set(table.loc[table["scope"] == scope, "row"].astype(int))


def _code_label(code: Any) -> str:
    """A missing code as text: ``-99.0`` reads ``-99``."""
    if isinstance(code, float) and code.is_integer():
        return str(int(code))
    return str(code)


def _count_codes(counter: Counter, cells: Cells) -> None:
    for code in cells.code.dropna():
        counter[_code_label(code)] += 1


# --------------------------------------------------------------------------- items datasets


@dataclass
class _Columns:
    """Cleaned columns of a raw frame, aligned on its index."""

    problems: ProblemLog
    codes: Counter = field(default_factory=Counter)
    recoded: int = 0
    declared: dict[str, DeclaredMissing] = field(default_factory=dict)
    formulas: dict[str, dict[int, str]] = field(default_factory=dict)
    #: per item column: numeric answers (after recoding), answers one below / one above the
    #: scale, answers at its lowest / highest category (the forgotten-recode check)
    scale_counts: dict[str, Counter] = field(default_factory=dict)


def _classify(codebook: Codebook, raw: pd.Series, column: str, acc: _Columns) -> Cells:
    """Classify a column with the codebook's missing codes and those the column declares."""
    declared = acc.declared.get(column, DeclaredMissing())
    codes = tuple(codebook.missing_codes) + tuple(
        c for c in declared.values if c not in codebook.missing_codes
    )
    cells = classify(raw, codes, codebook.read.get("decimal", "."), ranges=declared.ranges)
    _count_codes(acc.codes, cells)
    return cells


def _item_cells(
    codebook: Codebook, raw: pd.Series, column: str, rows: pd.Series, acc: _Columns
) -> tuple[pd.Series, pd.Series]:
    """Clean one item column: missing codes to NaN, recode, quarantine what is not an answer.

    Returns the values on the instrument's scale (NaN for non-response and quarantined cells)
    and whether each cell held something other than a blank or a missing code (an answer,
    valid or not: for the wide layout, a session attended).
    """
    inst = codebook.instrument
    cells = _classify(codebook, raw, column, acc)
    acc.problems.add(
        cells.non_numeric,
        rows,
        column,
        raw,
        "non_numeric",
        f"not a number; the scale is {inst.scale_min}-{inst.scale_max}",
        scope="cell",
    )
    value = cells.value
    present = value.notna()
    if codebook.recode_map is not None:
        mapped = value.map(codebook.recode_map)
        unmapped = present & mapped.isna()
        acc.problems.add(
            unmapped,
            rows,
            column,
            raw,
            "out_of_range",
            f"not among the raw values of recode.map {sorted(codebook.recode_map)}",
            scope="cell",
        )
        value = mapped.astype(float)
        acc.recoded += int((present & ~unmapped & (value != cells.value)).sum())
        present = present & ~unmapped
    elif codebook.recode_shift:
        value = value + codebook.recode_shift
        acc.recoded += int(present.sum())
    shown = value[present]
    below = above = 0
    if not inst.continuous:  # one category outside the scale: a shifted export (_scale_hint)
        below = int((shown == inst.scale_min - 1).sum())
        above = int((shown == inst.scale_max + 1).sum())
    acc.scale_counts[column] = Counter(
        answers=len(shown),
        below=below,
        above=above,
        lowest=int((shown == inst.scale_min).sum()),
        highest=int((shown == inst.scale_max).sum()),
    )
    out_range = present & ((value < inst.scale_min) | (value > inst.scale_max))
    if inst.continuous:
        steps = (value - inst.scale_min) / inst.scale_step
        off_scale = present & ~out_range & ((steps - np.round(steps)).abs() > 1e-6)
        between = f"finer than the step {inst.scale_step:g} of the scale"
    else:
        off_scale = present & ~out_range & (value != np.round(value))
        between = "between the categories of the scale"
    shifted = f" after recoding (shift {codebook.recode_shift})" if codebook.recode_shift else ""
    acc.problems.add(
        out_range,
        rows,
        column,
        raw,
        "out_of_range",
        f"outside the scale {inst.scale_min}-{inst.scale_max}{shifted}",
        scope="cell",
    )
    acc.problems.add(
        off_scale,
        rows,
        column,
        raw,
        "not_on_scale",
        f"{between} {inst.scale_min}-{inst.scale_max}",
        scope="cell",
    )
    answered = ~cells.blank & cells.code.isna()
    if column in acc.formulas:  # a formula without a value: an answer nobody can read
        answered |= raw.index.isin(list(acc.formulas[column]))
    return value.where(present & ~out_range & ~off_scale), answered


def _outcome_cells(
    codebook: Codebook, raw: pd.Series, column: str, outcome: Any, rows: pd.Series, acc: _Columns
) -> tuple[pd.Series, pd.Series]:
    """Clean one outcome column; out-of-range or non-numeric scores are quarantined cells.

    Returns the scores (NaN for missing and quarantined cells) and whether each cell held
    something other than a blank or a missing code (a score, valid or not: for the wide
    layout, a session attended).
    """
    cells = _classify(codebook, raw, column, acc)
    span = f"{outcome.measure} range {outcome.min:g}-{outcome.max:g}"
    acc.problems.add(
        cells.non_numeric,
        rows,
        column,
        raw,
        "outcome_non_numeric",
        f"not a number; {span}",
        scope="cell",
    )
    value = cells.value
    bad = value.notna() & ((value < outcome.min) | (value > outcome.max))
    acc.problems.add(
        bad, rows, column, raw, "outcome_out_of_range", f"outside the {span}", scope="cell"
    )
    if outcome.integer:
        frac = value.notna() & ~bad & (value != np.round(value))
        acc.problems.add(
            frac,
            rows,
            column,
            raw,
            "outcome_out_of_range",
            f"not a whole number; {span} in whole points",
            scope="cell",
        )
        bad = bad | frac
    held = ~cells.blank & cells.code.isna()
    if column in acc.formulas:  # a formula without a value: a score nobody can read
        held |= raw.index.isin(list(acc.formulas[column]))
    return value.where(~bad), held


#: The largest session number (int32): larger numbers (``1e20``, ``inf``) are no sessions.
MAX_SESSION = 2**31 - 1


def _ids(codebook: Codebook, frame: pd.DataFrame, rows: pd.Series, acc: _Columns) -> pd.DataFrame:
    """Patient, therapist, rater (and long-layout session) columns, quarantining bad IDs."""
    ids = pd.DataFrame(index=frame.index)
    roles = [("patient", "patient_id")]
    if "therapist" in codebook.ids:
        roles.append(("therapist", "therapist_id"))
    else:
        ids["therapist_id"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    for role, name in roles:
        col = codebook.ids[role]
        ids[name] = _as_id(frame[col])
        acc.problems.add(
            ids[name].isna(), rows, col, frame[col], "missing_id", f"{role} ID is empty"
        )
        acc.problems.add(
            _inexact_id(frame[col]),
            rows,
            col,
            frame[col],
            "inexact_id",
            f"{role} ID is a number in scientific notation, which has lost digits (a "
            "spreadsheet writes long numbers so; a float beyond 2**53 cannot hold an exact "
            "integer), so different IDs may read the same: store IDs as text",
        )
        acc.problems.add(
            _infinite_id(frame[col]),
            rows,
            col,
            frame[col],
            "inexact_id",
            f"{role} ID is an infinite number (an overflow or a division by zero in the "
            "export), which identifies no one",
        )
    ids = ids[["patient_id", "therapist_id"]]
    if "rater" in codebook.ids:
        col = codebook.ids["rater"]
        text = _as_id(frame[col])
        mapped = text.map(lambda v: codebook.rater_values.get(v, v) if pd.notna(v) else v)
        bad = ~mapped.isin(RATERS).fillna(False).astype(bool)
        allowed = sorted(codebook.rater_values) or list(RATERS)
        acc.problems.add(
            bad, rows, col, frame[col], "invalid_rater", f"rater must be one of {allowed}"
        )
        ids["rater"] = mapped.where(~bad).astype("string")
    else:
        ids["rater"] = pd.Series(codebook.rater, index=frame.index, dtype="string")
    if codebook.layout == "long":
        col = codebook.ids["session"]
        number = pd.to_numeric(_as_id(frame[col]), errors="coerce").astype(float)
        bad = (
            number.isna()
            | ~np.isfinite(number)
            | (number < 1)
            | (number > MAX_SESSION)
            | (number != np.round(number))
        )
        acc.problems.add(
            bad,
            rows,
            col,
            frame[col],
            "invalid_session",
            f"session must be a positive whole number up to {MAX_SESSION}",
        )
        ids["session"] = number.where(~bad).astype("Int64")
    for name, col in codebook.group_columns.items():
        ids[name] = _as_id(frame[col])
    return ids


def _covariates(
    codebook: Codebook, frame: pd.DataFrame, rows: pd.Series, acc: _Columns
) -> pd.DataFrame:
    """Patient-level covariates; a bad value is a quarantined cell (set missing)."""
    out = pd.DataFrame(index=frame.index)
    for cov in codebook.covariates:
        cells = _classify(codebook, frame[cov.column], cov.column, acc)
        if cov.type == "categorical":
            codes = _as_id(frame[cov.column]).mask(cells.code.notna(), pd.NA)
            if cov.values is not None:
                unknown = codes.notna() & ~codes.isin(list(cov.values)).fillna(False)
                acc.problems.add(
                    unknown,
                    rows,
                    cov.column,
                    frame[cov.column],
                    "covariate_invalid",
                    f"covariate {cov.name} code not among {sorted(cov.values)}",
                    scope="cell",
                )
                codes = codes.map(cov.values, na_action="ignore").where(~unknown).astype("string")
            out[cov.name] = codes
            continue
        acc.problems.add(
            cells.non_numeric,
            rows,
            cov.column,
            frame[cov.column],
            "covariate_invalid",
            f"covariate {cov.name} is not a number",
            scope="cell",
        )
        lo = -np.inf if cov.min is None else cov.min
        hi = np.inf if cov.max is None else cov.max
        value = cells.value
        bad = value.notna() & (~np.isfinite(value) | (value < lo) | (value > hi))
        acc.problems.add(
            bad,
            rows,
            cov.column,
            frame[cov.column],
            "covariate_invalid",
            f"covariate {cov.name} outside {lo:g}-{hi:g} (or not finite)",
            scope="cell",
        )
        out[cov.name] = value.where(~bad)
    return out


def _records_long(codebook: Codebook, frame: pd.DataFrame, rows: pd.Series, acc: _Columns):
    ids = _ids(codebook, frame, rows, acc)
    items = pd.DataFrame(index=frame.index)
    for item in codebook.instrument.items:
        col = codebook.item_column(item)
        items[item], _ = _item_cells(codebook, frame[col], col, rows, acc)
    outcome_rows = []
    for outcome in codebook.outcomes:
        col = outcome.column
        value, _ = _outcome_cells(codebook, frame[col], col, outcome, rows, acc)
        outcome_rows.append(
            pd.DataFrame(
                {
                    "frame_index": frame.index,
                    "session": ids["session"] if outcome.timepoint is None else pd.NA,
                    "timepoint": outcome.timepoint or "session",
                    "measure": outcome.measure,
                    "value": value,
                }
            )
        )
    records = pd.concat([ids, pd.DataFrame({"source_row": rows}), items], axis=1)
    records["frame_index"] = frame.index
    # attended: every record of a session (its ID and session checked in _attendance)
    visits = records[["patient_id", "session", "rater", "source_row"]]
    return records, outcome_rows, visits


def _records_wide(codebook: Codebook, frame: pd.DataFrame, rows: pd.Series, acc: _Columns):
    ids = _ids(codebook, frame, rows, acc)
    per_session, outcome_rows, visits = [], [], []
    for session in codebook.sessions:
        items = pd.DataFrame(index=frame.index)
        # attended: an item cell holds an answer, valid or quarantined (a bad cell must not
        # turn an attended session into a missed one), or a session outcome cell a score
        answered = pd.Series(False, index=frame.index)
        for item in codebook.instrument.items:
            col = codebook.item_column(item, session)
            items[item], held = _item_cells(codebook, frame[col], col, rows, acc)
            answered |= held
        scored = pd.Series(False, index=frame.index)
        for outcome in codebook.outcomes:
            if outcome.timepoint is not None:
                continue
            col = codebook.outcome_column(outcome, session)
            value, held = _outcome_cells(codebook, frame[col], col, outcome, rows, acc)
            scored |= held
            outcome_rows.append(
                pd.DataFrame(
                    {
                        "frame_index": frame.index,
                        "session": session,
                        "timepoint": "session",
                        "measure": outcome.measure,
                        "value": value,
                    }
                )
            )
        block = pd.concat([ids, pd.DataFrame({"source_row": rows}), items], axis=1)
        block["session"] = session
        block["frame_index"] = frame.index
        per_session.append(block[answered])
        visits.append(
            block.loc[answered | scored, ["patient_id", "session", "rater", "source_row"]]
        )
    for outcome in codebook.outcomes:
        if outcome.timepoint is None:
            continue
        value, _ = _outcome_cells(
            codebook, frame[outcome.column], outcome.column, outcome, rows, acc
        )
        outcome_rows.append(
            pd.DataFrame(
                {
                    "frame_index": frame.index,
                    "session": pd.NA,
                    "timepoint": outcome.timepoint,
                    "measure": outcome.measure,
                    "value": value,
                }
            )
        )
    records = pd.concat(per_session, ignore_index=True)
    records["session"] = records["session"].astype("Int64")
    return records, outcome_rows, pd.concat(visits, ignore_index=True)


def _duplicates(
    records: pd.DataFrame, key: list[str], compare: list[str], rows: pd.Series, acc: _Columns
) -> None:
    """Quarantine repeated keys: exact repeats after the first; every row of a conflicting key."""
    dup_any = records.duplicated(key, keep=False)
    if not dup_any.any():
        return
    dups = records[dup_any]
    n_distinct = dups.groupby(key, dropna=False)[compare].apply(
        lambda g: len(g.astype("string").fillna("<NA>").drop_duplicates())
    )
    conflict_keys = n_distinct[n_distinct > 1].index
    conflict = dups.set_index(key).index.isin(conflict_keys)
    label = " x ".join(key)
    conflicting = dups[conflict]
    repeated = dups[~conflict]
    repeated = repeated[repeated.duplicated(key, keep="first")]
    for part, reason, detail in (
        (
            conflicting,
            "duplicate_key_conflict",
            f"several rows share this {label} with different values; all are quarantined",
        ),
        (repeated, "duplicate_row", f"an exact repeat of an earlier row with this {label}"),
    ):
        if len(part):
            mask = pd.Series(True, index=part.index)
            values = part[key].astype("string").fillna("<NA>").agg(" / ".join, axis=1)
            acc.problems.add(mask, part["source_row"], label, values, reason, detail)


#: Columns of ``attendance.parquet``: one row per patient x session x rater with a source record.
ATTENDANCE_COLUMNS = ["patient_id", "session", "rater", "records", "kept"]


def _attendance(
    codebook: Codebook, visits: pd.DataFrame, acc: _Columns, flagged: set[int]
) -> pd.DataFrame:
    """Sessions attended, from every source record whose patient ID and session are valid.

    A record counts whether it is kept or quarantined (a conflicting duplicate, a bad rater
    code or therapist ID does not undo the session): one row per patient x session x rater
    (``rater`` missing when its code was invalid) with the number of source ``records`` and
    whether one of them was ``kept``. A record whose patient ID or session is missing or
    unusable (``missing_id``, ``inexact_id``, ``invalid_session``, a formula without a value)
    and a malformed record (not read into fields) tell no attendance.
    """
    problems = acc.problems.table()
    id_columns = [codebook.ids["patient"]]
    if codebook.layout == "long":
        id_columns.append(codebook.ids["session"])
    bad_ids = problems.loc[
        (problems["scope"] == "row") & problems["column"].isin(id_columns), "row"
    ].astype(int)
    valid = (
        visits["patient_id"].notna()
        & visits["session"].notna()
        & ~visits["source_row"].isin(set(bad_ids))
    )
    seen = visits[valid].assign(kept=~visits.loc[valid, "source_row"].isin(flagged))
    table = (
        seen.groupby(["patient_id", "session", "rater"], dropna=False, sort=False)
        .agg(records=("source_row", "size"), kept=("kept", "any"))
        .reset_index()
        .sort_values(["patient_id", "session", "rater"], kind="stable", ignore_index=True)
    )
    return table.astype(
        {
            "patient_id": "string",
            "session": "Int64",
            "rater": "string",
            "records": "int64",
            "kept": "bool",
        }
    )[ATTENDANCE_COLUMNS]


def _patients(codebook: Codebook, kept: pd.DataFrame, covs: pd.DataFrame, warnings: list[str]):
    """One row per patient; conflicting patient-level values are reported by source row."""
    columns = ["therapist_id", *codebook.groups, *[c.name for c in codebook.covariates]]
    table = pd.concat(
        [
            kept[["patient_id", "source_row", "therapist_id", *codebook.groups]],
            covs.loc[kept["frame_index"]].set_axis(kept.index),
        ],
        axis=1,
    )
    for col in columns:
        n = table.groupby("patient_id")[col].nunique(dropna=True)
        for _patient, _ in n[n > 1].items():
            rows = table.loc[table["patient_id"] == _patient, "source_row"].unique()[:5]
            warnings.append(
                f"patient-level column {col!r} differs between rows {list(map(int, rows))} "
                "of the same patient; the first non-empty value is used"
            )
    first = table.groupby("patient_id", sort=True)[columns].first()
    return first.reset_index()


def _formula_problems(codebook: Codebook, raw: RawTable, rows: pd.Series, acc: _Columns) -> None:
    """Quarantine spreadsheet formulas without a cached value: a cell, or the row for an ID."""
    id_columns = set(codebook.ids.values())
    for column, cells in raw.formulas.items():
        mask = pd.Series(raw.frame.index.isin(list(cells)), index=raw.frame.index)
        values = pd.Series(cells, dtype="object").reindex(raw.frame.index).fillna("")
        acc.problems.add(
            mask,
            rows,
            column,
            values,
            "formula_without_value",
            "a formula without a cached value (the file was saved by a program that does not "
            "compute formulas): its answer is unknown, not missing; open and save the file in "
            "a spreadsheet program, or export values",
            scope="row" if column in id_columns else "cell",
        )


def _ingest_items(codebook: Codebook, raw: RawTable, acc: _Columns, warnings: list[str]):
    frame = raw.frame
    rows = pd.Series(raw.rows, index=frame.index, dtype="int64")
    _formula_problems(codebook, raw, rows, acc)
    build = _records_long if codebook.layout == "long" else _records_wide
    records, outcome_parts, visits = build(codebook, frame, rows, acc)
    covs = _covariates(codebook, frame, rows, acc)
    flagged = acc.problems.rows("row")
    clean = records[~records["source_row"].isin(flagged)]
    items = list(codebook.instrument.items)
    compare = ["therapist_id", *codebook.groups, *items]
    if codebook.layout == "long":
        outcome_cols = {}
        for outcome, part in zip(codebook.outcomes, outcome_parts, strict=True):
            if outcome.timepoint is None:
                outcome_cols[f"__{outcome.measure}"] = part["value"]
        extra = pd.DataFrame(outcome_cols, index=frame.index)
        cmp_frame = pd.concat(
            [clean, extra.loc[clean["frame_index"]].set_axis(clean.index)], axis=1
        )
        _duplicates(
            cmp_frame, ["patient_id", "session", "rater"], compare + list(extra.columns), rows, acc
        )
    else:
        first_rows = clean.drop_duplicates("source_row")
        wide_cmp = frame.loc[first_rows["frame_index"]].astype("string").set_axis(first_rows.index)
        cmp_frame = pd.concat([first_rows[["patient_id", "rater", "source_row"]], wide_cmp], axis=1)
        _duplicates(cmp_frame, ["patient_id", "rater"], list(wide_cmp.columns), rows, acc)
    flagged = acc.problems.rows("row")
    attendance = _attendance(codebook, visits, acc, flagged)
    kept = records[~records["source_row"].isin(flagged)].copy()
    kept = kept.sort_values(["patient_id", "session", "rater"], kind="stable")

    outcomes = pd.concat(outcome_parts, ignore_index=True) if outcome_parts else None
    if outcomes is not None:
        outcomes["source_row"] = rows.loc[outcomes["frame_index"]].to_numpy()
        outcomes = outcomes[~outcomes["source_row"].isin(flagged) & outcomes["value"].notna()]
        outcomes["patient_id"] = (
            kept.drop_duplicates("frame_index")
            .set_index("frame_index")["patient_id"]
            .reindex(outcomes["frame_index"])
            .to_numpy()
        )
        outcomes = outcomes[outcomes["patient_id"].notna()]
        key = ["patient_id", "session", "timepoint", "measure"]
        n_values = outcomes.groupby(key, dropna=False)["value"].nunique()
        for k in n_values[n_values > 1].index:
            sel = (
                outcomes[key].astype("string").fillna("<NA>")
                == pd.Series(k, index=key).astype("string").fillna("<NA>")
            ).all(axis=1)
            srows = sorted(map(int, outcomes.loc[sel, "source_row"]))[:5]
            warnings.append(
                f"outcome {k[3]!r} ({k[2]} {k[1]}) differs between rows {srows} of the same "
                "patient; the value of the first row is used"
            )
        outcomes = outcomes.sort_values(["source_row"], kind="stable").drop_duplicates(key)
        outcomes = outcomes.sort_values(["patient_id", "measure", "timepoint", "session"])
        outcomes = outcomes[
            ["patient_id", "session", "timepoint", "measure", "value", "source_row"]
        ]
        outcomes = outcomes.astype(
            {
                "session": "Int64",
                "value": "Float64",
                "source_row": "Int64",
                "patient_id": "string",
                "timepoint": "string",
                "measure": "string",
            }
        )
    else:
        outcomes = pd.DataFrame(
            {
                c: pd.Series(dtype=t)
                for c, t in [
                    ("patient_id", "string"),
                    ("session", "Int64"),
                    ("timepoint", "string"),
                    ("measure", "string"),
                    ("value", "Float64"),
                    ("source_row", "Int64"),
                ]
            }
        )
    patients = _patients(codebook, kept, covs, warnings)
    tidy = kept[[*ID_COLUMNS, *codebook.groups, "source_row", *items]].reset_index(drop=True)
    tidy = tidy.astype({"source_row": "Int64", "session": "Int64", **{i: "Float64" for i in items}})
    return tidy, outcomes.reset_index(drop=True), patients, attendance


# --------------------------------------------------------------------------- effects datasets


#: The largest sample size an effects table may give (exact as an integer in a double).
MAX_N = EXACT_FLOAT_INT


def _ingest_effects(codebook: Codebook, raw: RawTable, acc: _Columns):
    frame = raw.frame
    rows = pd.Series(raw.rows, index=frame.index, dtype="int64")
    spec = codebook.effects
    study = _as_id(frame[spec["study"]])
    acc.problems.add(
        study.isna(),
        rows,
        spec["study"],
        frame[spec["study"]],
        "missing_study",
        "study label is empty",
    )
    if "r" in spec:
        r = _classify(codebook, frame[spec["r"]], spec["r"], acc)
        bad_r = r.value.isna() | (r.value <= -1) | (r.value >= 1)
        acc.problems.add(
            bad_r,
            rows,
            spec["r"],
            frame[spec["r"]],
            "invalid_r",
            "a correlation strictly between -1 and 1 is needed",
        )
        n = _classify(codebook, frame[spec["n"]], spec["n"], acc)
        bad_n = (
            n.value.isna()
            | ~np.isfinite(n.value)
            | (n.value < 4)
            | (n.value > MAX_N)
            | (n.value != np.round(n.value))
        )
        acc.problems.add(
            bad_n,
            rows,
            spec["n"],
            frame[spec["n"]],
            "invalid_n",
            f"sample size must be a whole number from 4 (Fisher z needs n > 3) to {MAX_N}",
        )
        table = pd.DataFrame({"study": study, "r": r.value, "n": n.value.where(~bad_n)})
        keys = ["study", "r", "n"]
    else:
        yi = _classify(codebook, frame[spec["yi"]], spec["yi"], acc)
        acc.problems.add(
            yi.value.isna() | ~np.isfinite(yi.value.astype(float)),
            rows,
            spec["yi"],
            frame[spec["yi"]],
            "invalid_yi",
            "an effect size (a finite number) is needed",
        )
        vi = _classify(codebook, frame[spec["vi"]], spec["vi"], acc)
        acc.problems.add(
            vi.value.isna() | ~(vi.value.astype(float) > 0) | ~np.isfinite(vi.value.astype(float)),
            rows,
            spec["vi"],
            frame[spec["vi"]],
            "invalid_vi",
            "a finite sampling variance above 0 is needed",
        )
        table = pd.DataFrame({"study": study, "yi": yi.value, "vi": vi.value})
        keys = ["study", "yi", "vi"]
    if "cluster" in spec:
        cluster = _as_id(frame[spec["cluster"]])
        acc.problems.add(
            cluster.isna(),
            rows,
            spec["cluster"],
            frame[spec["cluster"]],
            "missing_cluster",
            "cluster label is empty",
        )
        table[spec["cluster"]] = cluster
        keys.append(spec["cluster"])
    for col in spec.get("moderators", []):
        table[col] = frame[col]
    table["source_row"] = rows
    flagged = acc.problems.rows("row")
    clean = table[~table["source_row"].isin(flagged)]
    id_cols = ["study", spec["cluster"]] if "cluster" in spec else ["study"]
    _duplicates(clean, keys, id_cols, rows, acc)
    flagged = acc.problems.rows("row")
    kept = table[~table["source_row"].isin(flagged)].reset_index(drop=True)
    if "n" in kept:
        kept["n"] = kept["n"].astype("int64")
    else:
        kept[["yi", "vi"]] = kept[["yi", "vi"]].astype(float)
    return kept


# --------------------------------------------------------------------------- entry point


def ingest(codebook: Codebook | str | Path, strict: bool | None = None) -> IngestResult:
    """Apply a codebook to its raw export.

    Parameters
    ----------
    codebook
        A :class:`~alliance.data.codebook.Codebook` or the path of a codebook YAML.
    strict
        Stop at the first quarantined row (default: the codebook's ``strict``).

    Returns
    -------
    IngestResult
        Tidy tables, the quarantine (one line per problem, ``scope`` ``row`` or ``cell``) and
        the report, whose counts reconcile: ``rows_in`` (the file's data records) ``==
        rows_kept + rows_quarantined``; quarantined cells of kept rows are counted in
        ``cells_quarantined``. A bad answer, outcome score or covariate value quarantines its
        cell (set missing, the record kept: the session took place); an ID, session, rater,
        duplicate or malformed-record problem quarantines the record. ``attendance`` (items
        datasets) lists every patient x session x rater that a source record with a valid
        patient ID and session attests, kept or quarantined, so a quarantined record never
        turns an attended session into a missed one.

    Raises
    ------
    IngestError
        If the file cannot be read as its format (or has no data rows, or names a column the
        codebook reads twice), a named column is absent, or (strict) anything would be
        quarantined; the message names the codebook, the key, the row and the column.
    """
    if not isinstance(codebook, Codebook):
        codebook = load_codebook(codebook)
    strict = codebook.strict if strict is None else strict
    raw = read_raw(codebook)
    unused = check_columns(codebook, raw.frame)
    declared = raw.declared_missing if codebook.declared_missing else {}
    acc = _Columns(problems=ProblemLog(), declared=declared, formulas=raw.formulas)
    if len(raw.rejected):
        acc.problems.frames.append(raw.rejected)
    warnings: list[str] = list(raw.notes)
    if declared:
        warnings.append(_declared_warning(codebook, declared))
    elif raw.declared_missing:
        warnings.append(
            f"missing values declared in {codebook.file.name} are not applied "
            "(declared_missing: false): " + _declared_listing(raw.declared_missing)
        )
    if unused:
        warnings.append(f"columns not named in the codebook are ignored: {unused}")
    rows_in = raw.n_records
    attendance = None
    if codebook.kind == "effects":
        effects = _ingest_effects(codebook, raw, acc)
        items = outcomes = patients = pd.DataFrame()
    else:
        items, outcomes, patients, attendance = _ingest_items(codebook, raw, acc, warnings)
        effects = None
    quarantine = acc.problems.table()
    if codebook.kind == "items":
        quarantine = _scale_hint(codebook, acc, quarantine, warnings)
    if strict and len(quarantine):
        first = quarantine.iloc[0]
        raise IngestError(
            f"{codebook.path}: strict ingest of {codebook.file.name} stopped at "
            f"row {first['row']}, "
            f"column {first['column']!r}, value {first['value']!r}: {first['reason']} "
            f"({first['detail']}; {_where(codebook, int(first['row']))}); "
            f"{quarantine['row'].nunique()} rows have problems"
        )
    row_scope = quarantine["scope"] == "row"
    quarantined_rows = set(quarantine.loc[row_scope, "row"].astype(int))
    cells = quarantine[~row_scope & ~quarantine["row"].isin(quarantined_rows)]
    reasons = quarantine.drop_duplicates(["row", "reason"])["reason"].value_counts()
    row_reasons = quarantine[row_scope].drop_duplicates(["row", "reason"])["reason"].value_counts()
    report: dict[str, Any] = {
        "dataset": codebook.dataset,
        "kind": codebook.kind,
        "codebook": str(codebook.path),
        "file": str(codebook.file),
        "file_sha256": sha256_file(codebook.file),
        "format": codebook.format,
        "layout": codebook.layout,
        "instrument": codebook.instrument.name if codebook.instrument else None,
        "instrument_file": codebook.instrument.path if codebook.instrument else None,
        "rows_in": int(rows_in),
        "rows_kept": int(rows_in - len(quarantined_rows)),
        "rows_quarantined": len(quarantined_rows),
        "cells_quarantined": int(len(cells)),
        "rows_with_quarantined_cells": int(cells["row"].nunique()),
        "problems": int(len(quarantine)),
        "reasons": {str(k): int(v) for k, v in sorted(reasons.items())},
        "row_reasons": {str(k): int(v) for k, v in sorted(row_reasons.items())},
        "cell_reasons": {str(k): int(v) for k, v in sorted(cells["reason"].value_counts().items())},
        "missing_codes_seen": dict(sorted(acc.codes.items())),
        "values_recoded": int(acc.recoded),
        "warnings": warnings,
    }
    if effects is None:
        report["tidy"] = {
            "item_rows": int(len(items)),
            "patients": int(len(patients)),
            "therapists": int(patients["therapist_id"].nunique()),
            "outcome_rows": int(len(outcomes)),
            "sessions": sorted(int(s) for s in items["session"].dropna().unique()),
            "raters": sorted(items["rater"].dropna().unique().tolist()),
            # patient x session pairs with a source record, and those only quarantined
            # records attest (attendance.parquet)
            "attended_sessions": int(len(attendance.drop_duplicates(["patient_id", "session"]))),
            "attended_sessions_not_kept": int(
                (~attendance.groupby(["patient_id", "session"])["kept"].any()).sum()
            ),
        }
        item_cells = items[list(codebook.instrument.items)]
        report["item_cells"] = int(item_cells.size)
        report["item_nonresponse"] = int(item_cells.isna().sum().sum())
        if not len(items):
            warnings.append(f"no row of {codebook.file.name} was kept: see quarantine.csv")
    else:
        report["tidy"] = {"studies": int(len(effects))}
    if report["rows_in"] != report["rows_kept"] + report["rows_quarantined"]:  # pragma: no cover
        raise RuntimeError(f"ingest accounting does not reconcile: {report}")
    return IngestResult(items, outcomes, patients, effects, quarantine, report, attendance)


def _where(codebook: Codebook, row: int) -> str:
    """Where row ``row`` is in the source file (see :mod:`alliance.data.readers`)."""
    if codebook.format in ("csv", "redcap", "qualtrics"):
        return f"line {row + 1} of the file"
    if codebook.format == "xlsx":
        return f"sheet row {row + 1}"
    return f"case {row}"


def _declared_listing(declared: dict[str, DeclaredMissing]) -> str:
    """``-99 in WAI1, WAI2; 9 in PHQ9``: the declared values grouped by the columns."""
    by_values: dict[str, list[str]] = {}
    for column, spec in declared.items():
        by_values.setdefault(spec.describe(), []).append(column)
    return "; ".join(f"{values} in {', '.join(cols)}" for values, cols in by_values.items())


def _declared_warning(codebook: Codebook, declared: dict[str, DeclaredMissing]) -> str:
    return (
        f"missing values declared in {codebook.file.name} are treated as missing only in the "
        f"columns that declare them: {_declared_listing(declared)}"
    )


#: Share of the numeric item answers one step outside the scale above which the ingest says
#: that the export looks shifted (a forgotten or wrong ``recode``).
SHIFT_SHARE = 0.02


def _scale_hint(
    codebook: Codebook, acc: _Columns, quarantine: pd.DataFrame, warnings: list[str]
) -> pd.DataFrame:
    """Say so when many answers lie one step below (or above) the instrument's scale.

    A 0-4 export read as 1-5 keeps raw 1-4 as if they were 1-4 on the 1-5 scale and
    quarantines every 0; a 1-5 export with ``recode: {shift: 1}`` loses every 5. When at least
    :data:`SHIFT_SHARE` of the numeric item answers are one step outside the scale (or any
    are, while no answer reaches the scale's other end), a warning names the file, the columns
    and the ``recode`` that would fit, and the detail of those out-of-range cells repeats it.
    """
    inst = codebook.instrument
    total = Counter()
    for counts in acc.scale_counts.values():
        total.update(counts)
    answers = total["answers"]
    if not answers:
        return quarantine
    shift = codebook.recode_shift
    for side, other_end, step, looks in (
        ("below", "highest", 1, f"{inst.scale_min - 1}-{inst.scale_max - 1}"),
        ("above", "lowest", -1, f"{inst.scale_min + 1}-{inst.scale_max + 1}"),
    ):
        n = total[side]
        if n < 3 or not (n / answers >= SHIFT_SHARE or total[other_end] == 0):
            continue
        value = inst.scale_min - 1 if side == "below" else inst.scale_max + 1
        columns = sorted(
            (c for c, k in acc.scale_counts.items() if k[side]),
            key=lambda c: -acc.scale_counts[c][side],
        )
        listing = ", ".join(f"{c} ({acc.scale_counts[c][side]})" for c in columns[:6])
        if len(columns) > 6:
            listing += f" and {len(columns) - 6} more columns"
        end = inst.scale_max if side == "below" else inst.scale_min
        none_at_end = f", and no answer is {end}" if total[other_end] == 0 else ""
        fix = f"set `recode: {{shift: {shift + step}}}`" if shift + step else "remove `recode`"
        raw_value = value - shift
        hint = (
            f"{n} of {answers} numeric item answers ({n / answers:.1%}) in "
            f"{codebook.file.name} are {value:g}{' after recoding' if shift else ''}, one step "
            f"{side} the {inst.name} scale {inst.scale_min}-{inst.scale_max}{none_at_end}: "
            f"the export looks like {looks}; if so, {fix} in {codebook.path.name} "
            f"(raw {raw_value:g} is quarantined as out_of_range now); columns: {listing}"
        )
        warnings.append(hint)
        hit = (quarantine["reason"] == "out_of_range") & quarantine["column"].isin(columns)
        if hit.any():
            quarantine = quarantine.copy()
            quarantine.loc[hit, "detail"] = (
                quarantine.loc[hit, "detail"] + f"; a shifted export? {fix}"
            )
    return quarantine


def ingest_to(codebook_path: str | Path, out_dir: str | Path, strict: bool | None = None) -> dict:
    """Ingest a codebook's export and write the results into ``out_dir``; return the report."""
    result = ingest(codebook_path, strict=strict)
    result.write(out_dir)
    return result.report
