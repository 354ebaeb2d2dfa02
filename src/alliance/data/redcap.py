"""REDCap exports: the records CSV with its data dictionary, sessions from repeats or events.

A REDCap "raw" records export (CSV) has one row per record and event, and per instance of a
repeating instrument: ``record_id`` (the project's first field), ``redcap_event_name``
(longitudinal projects), ``redcap_repeat_instrument`` and ``redcap_repeat_instance``
(repeating instruments), then the fields. The data dictionary (CSV) names each field's form
(instrument), type, choices and whether it is an identifier.

:func:`read_redcap` returns the rows that are sessions of the form holding the codebook's item
columns (``read.form``, by default the form of the item fields):

- **Repeating instrument**: every row whose ``redcap_repeat_instrument`` is the form is a
  session record; ``redcap_repeat_instance`` is its session number (``ids.session:
  redcap_repeat_instance``).
- **Events** (a longitudinal project without repeats of the form): every event row holding a
  value in one of the form's fields is a session record; ``read.events`` maps each event name
  to its session number (``ids.session: redcap_event_name``). An event missing from the map
  keeps its name, so the ingest quarantines its rows as ``invalid_session`` with the name.

The record's other rows (its record-level data: demographics, therapist) are no session
records: their fields are copied into the blank cells of the record's sessions when the
record has exactly one value for the field, and their count is in a warning. Row numbers stay
those of the CSV file (row N is the record on line N + 1).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.data.readers import RawTable, ReadError, read_csv

#: Dictionary header cells (lower case, letters and digits only) and the key each gives.
DICTIONARY_COLUMNS = {
    "variablefieldname": "name",
    "formname": "form",
    "fieldtype": "type",
    "choicescalculationsorsliderlabels": "choices",
    "identifier": "identifier",
}
REQUIRED = ("name", "form", "type")

#: Field types whose choices are answer codes.
CHOICE_TYPES = ("radio", "dropdown", "checkbox")

REPEAT_INSTRUMENT = "redcap_repeat_instrument"
REPEAT_INSTANCE = "redcap_repeat_instance"
EVENT = "redcap_event_name"


@dataclass(frozen=True)
class Field:
    """One field of a REDCap data dictionary (never its label: the item text)."""

    name: str
    form: str
    type: str
    choices: dict[str, str]
    identifier: bool
    line: int


@dataclass
class Dictionary:
    """A REDCap data dictionary: field name -> :class:`Field`, in dictionary order."""

    path: Path
    fields: dict[str, Field] = field(default_factory=dict)

    @property
    def record_id(self) -> str:
        """The project's record ID field (the first field)."""
        return next(iter(self.fields))

    def form_fields(self, form: str) -> list[str]:
        """The fields of ``form`` (a checkbox field stands for its ``name___code`` columns)."""
        return [f.name for f in self.fields.values() if f.form == form]


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def parse_choices(text: str, field_type: str) -> dict[str, str]:
    """``"1, Seldom | 2, Sometimes"`` as ``{"1": "Seldom", "2": "Sometimes"}``.

    ``yesno`` and ``truefalse`` fields have REDCap's fixed codes (1 Yes/True, 0 No/False).
    """
    if field_type == "yesno":
        return {"1": "Yes", "0": "No"}
    if field_type == "truefalse":
        return {"1": "True", "0": "False"}
    if field_type not in CHOICE_TYPES or not text.strip():
        return {}
    out = {}
    for part in text.split("|"):
        code, sep, label = part.partition(",")
        if sep:
            out[code.strip()] = label.strip()
    return out


def read_dictionary(path: Path) -> Dictionary:
    """Read a REDCap data dictionary CSV.

    Raises
    ------
    ReadError
        If the file cannot be read, lacks a required column (Variable / Field Name, Form Name,
        Field Type), has no fields, or names a field twice (with both lines).
    """
    name = path.name
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ReadError(f"key 'read.dictionary': {path} does not exist") from None
    except IsADirectoryError:
        raise ReadError(f"key 'read.dictionary': {path} is a directory") from None
    except UnicodeDecodeError as exc:
        raise ReadError(f"{name} is not UTF-8 text (byte {exc.start}): export it again") from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise ReadError(f"{name} is empty: not a REDCap data dictionary")
    header = {_norm(c): k for k, c in enumerate(rows[0])}
    index = {key: header[col] for col, key in DICTIONARY_COLUMNS.items() if col in header}
    missing = [k for k in REQUIRED if k not in index]
    if missing:
        raise ReadError(
            f"{name} line 1: not a REDCap data dictionary, its header lacks "
            f"{', '.join(missing)} (the columns 'Variable / Field Name', 'Form Name', "
            f"'Field Type'); got {rows[0][:6]}"
        )
    out = Dictionary(path=path)
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue

        def cell(key: str, row: list[str] = row) -> str:
            k = index.get(key)
            return row[k].strip() if k is not None and k < len(row) else ""

        fname = cell("name")
        if not fname:
            raise ReadError(f"{name} line {line}: the field name is empty")
        if fname in out.fields:
            raise ReadError(
                f"{name} line {line}: field {fname!r} is defined twice (also on line "
                f"{out.fields[fname].line})"
            )
        ftype = cell("type").lower()
        out.fields[fname] = Field(
            name=fname,
            form=cell("form"),
            type=ftype,
            choices=parse_choices(cell("choices"), ftype),
            identifier=cell("identifier").lower() in ("y", "yes", "1"),
            line=line,
        )
    if not out.fields:
        raise ReadError(f"{name} has a header but no fields")
    return out


def _field_of(column: str, dictionary: Dictionary) -> Field | None:
    """The dictionary field of an export column (``q___2`` -> checkbox ``q``)."""
    if column in dictionary.fields:
        return dictionary.fields[column]
    base = column.split("___")[0]
    return dictionary.fields.get(base)


def read_redcap(path: Path, used: dict[str, str], opts: dict[str, Any]) -> RawTable:
    """Read a REDCap records export as session records (see the module docstring).

    Parameters
    ----------
    path
        The records export (CSV, raw values).
    used
        Raw column -> the codebook key that names it; the item columns (keys ``items.*``) give
        the session form when ``read.form`` does not.
    opts
        The codebook's ``read``: ``dictionary`` (required, resolved), ``form``, ``events``,
        ``sep``, ``encoding``.

    Raises
    ------
    ReadError
        If the dictionary is missing or malformed, the export lacks the record ID field, the
        form is not in the dictionary, or the form's rows cannot be told apart (no repeat or
        event columns while the export has several rows per record).
    """
    if "dictionary" not in opts:
        raise ReadError("format 'redcap' needs key 'read.dictionary': the data dictionary CSV")
    dictionary = read_dictionary(Path(opts["dictionary"]))
    keep = {c: k for c, k in used.items()}
    for col in (REPEAT_INSTRUMENT, REPEAT_INSTANCE, EVENT, dictionary.record_id):
        keep.setdefault(col, "format redcap")
    raw = read_csv(path, keep, sep=opts.get("sep", ","), encoding=opts.get("encoding", "utf-8"))
    frame = raw.frame
    name = path.name
    record = dictionary.record_id
    if record not in frame.columns:
        raise ReadError(
            f"{name} lacks the record ID field {record!r}, the first field of "
            f"{dictionary.path.name}: is the dictionary of this project?"
        )
    unknown = [
        c
        for c in frame.columns
        if not c.startswith("redcap_")
        and _field_of(c, dictionary) is None
        and not c.endswith("_complete")
    ]
    if unknown:
        raw.notes.append(
            f"{name}: {len(unknown)} columns are not in {dictionary.path.name}: "
            f"{', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}"
        )
    form = opts.get("form") or _session_form(used, dictionary)
    if form is None:
        return raw  # nothing to reshape (no item columns named): every row as it is
    if form not in {f.form for f in dictionary.fields.values()}:
        forms = sorted({f.form for f in dictionary.fields.values()})
        raise ReadError(
            f"key 'read.form': {form!r} is not a form of {dictionary.path.name} ({forms})"
        )
    form_cols = [c for c in frame.columns if (f := _field_of(c, dictionary)) and f.form == form]
    form_cols += [c for c in frame.columns if c == f"{form}_complete"]
    text = {c: frame[c].astype("string").str.strip().fillna("") for c in frame.columns}
    if REPEAT_INSTRUMENT in frame.columns and text[REPEAT_INSTRUMENT].eq(form).any():
        is_session = text[REPEAT_INSTRUMENT].eq(form)
        how = f"rows of the repeating instrument {form!r} (session = {REPEAT_INSTANCE})"
    else:
        filled = np.zeros(len(frame), dtype=bool)
        for c in form_cols:
            if c != f"{form}_complete":
                filled |= text[c].ne("").to_numpy()
        if REPEAT_INSTRUMENT in frame.columns:
            filled &= text[REPEAT_INSTRUMENT].eq("").to_numpy()
        is_session = pd.Series(filled, index=frame.index)
        if EVENT not in frame.columns and text[record].duplicated().any():
            raise ReadError(
                f"{name}: several rows per record but neither repeat instances of form "
                f"{form!r} nor a {EVENT} column: the sessions cannot be told apart"
            )
        how = f"event rows holding a value of form {form!r} (session = {EVENT})"
    sessions = frame[is_session.to_numpy()]
    base = frame[~is_session.to_numpy()]
    out = sessions.copy()
    other_cols = [
        c
        for c in frame.columns
        if c not in form_cols and not c.startswith("redcap_") and c != record
    ]
    if len(base) and other_cols:
        # a record's value of each record-level field, when it has exactly one
        values = {c: text[c].replace("", pd.NA) for c in other_cols}
        for col in other_cols:
            distinct = values[col].groupby(text[record]).agg(lambda s: tuple(s.dropna().unique()))
            single = distinct[distinct.map(len) == 1].map(lambda v: v[0])
            filler = out[record].astype("string").str.strip().map(single)
            blank = text[col][is_session.to_numpy()].eq("").reindex(out.index)
            mask = (blank & filler.notna()).to_numpy()
            if mask.any():
                out.loc[mask, col] = filler[mask].astype(str).to_numpy()
    events = opts.get("events")
    if events and EVENT in out.columns:
        mapping = {str(k): str(v) for k, v in events.items()}
        out[EVENT] = out[EVENT].map(lambda e: mapping.get(e.strip(), e))
        raw.notes.append(f"{name}: event names read as sessions by read.events")
    with_sessions = set(out[record])
    orphans = base[~base[record].isin(with_sessions)][record].nunique()
    raw.notes.append(
        f"{name}: {len(out)} session records are the {how}; {len(base)} other rows hold "
        f"record-level fields, copied into their record's sessions"
        + (f"; {orphans} records have no session of form {form!r}" if orphans else "")
    )
    rows = raw.rows[is_session.to_numpy()]
    return RawTable(
        frame=out.reset_index(drop=True).astype("str"),
        rows=rows,
        rejected=raw.rejected,
        n_records=len(out) + len(raw.rejected),
        notes=raw.notes,
    )


def _session_form(used: dict[str, str], dictionary: Dictionary) -> str | None:
    """The form of the item columns the codebook names (None when it names none)."""
    forms = {
        f.form
        for col, key in used.items()
        if key.startswith("items.") and (f := _field_of(col, dictionary)) is not None
    }
    if len(forms) > 1:
        raise ReadError(
            f"the item columns belong to several forms {sorted(forms)}: set key 'read.form'"
        )
    return next(iter(forms), None)
