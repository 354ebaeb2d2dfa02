"""Draft a codebook from an export: every guess with its evidence, a TODO where it cannot decide.

``alliance codebook draft EXPORT`` reads a CSV, SPSS ``.sav``, Excel, Parquet, REDCap or
Qualtrics export as text (the ingest's own readers), and guesses what a researcher would
otherwise write by hand from the README: the layout (long or wide), the ID, session and rater
columns, the item columns of the instrument (a pattern with ``{number}`` and, wide,
``{session}``), the raw scale and the ``recode`` it needs, the missing codes (sentinels such as
-99 or 999 beyond the scale, ``n/a``), the SPSS value labels and user-missing values per
column, the outcome totals (built-in measures, :mod:`alliance.data.measures`), grouping columns and
covariates. The result is YAML with a comment above each key giving the evidence, and a
``TODO`` comment wherever the draft could not decide; it loads with
:func:`alliance.data.codebook.load_codebook`, so ``alliance ingest`` runs on it.

Privacy: the draft never writes a value of an ID column, of a column the REDCap dictionary marks
as an identifier or of a free-text column; it shows values only of the columns it maps as
raters, groups, categorical covariates and missing codes.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from alliance.data.exports import read_export
from alliance.data.instruments import Instrument, builtin_instruments, load_instrument
from alliance.data.measures import load_measure
from alliance.data.readers import DeclaredMissing, RawTable, ReadError

#: File suffix -> codebook format.
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".sav": "sav",
    ".zsav": "sav",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".parquet": "parquet",
    ".pq": "parquet",
}

#: Numbers exports use for "not answered" (checked against the scale and the other columns).
SENTINELS = frozenset(
    {-9999, -999, -99, -98, -97, -96, -9, -8, -7, -1, 9, 77, 88, 97, 98, 99, 777, 888, 999, 9999}
)

#: Texts exports use for "not answered" (compared lower-case and stripped).
TEXT_CODES = frozenset(
    {
        "n/a",
        "na",
        "n.a.",
        "nan",
        "missing",
        "not answered",
        "no answer",
        "refused",
        "unknown",
        "don't know",
        "dk",
        "-",
        "--",
        ".",
        "?",
        "#n/a",
        "#null!",
        "k.a.",
        "keine angabe",
        "unk",
        "asku",
        "nask",
    }
)

#: Words in an SPSS value label or REDCap choice that mark a missing-value code.
MISSING_WORDS = (
    "missing",
    "not answered",
    "no answer",
    "refused",
    "don't know",
    "dont know",
    "not applicable",
    "n/a",
    "skipped",
    "unknown",
)

#: Column names (lower case, letters and digits only) of each ID role, best first.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "patient": (
        "patientid",
        "patient",
        "clientid",
        "client",
        "clientcode",
        "patientcode",
        "pid",
        "participantid",
        "participant",
        "subjectid",
        "subject",
        "caseid",
        "case",
        "recordid",
        "personid",
        "respondentid",
        "id",
        "code",
        "externalreference",
        "externaldatareference",
    ),
    "therapist": (
        "therapistid",
        "therapist",
        "clinicianid",
        "clinician",
        "therapistcode",
        "counselorid",
        "counselor",
        "counsellorid",
        "counsellor",
        "providerid",
        "provider",
        "ther",
        "tid",
    ),
    "session": (
        "session",
        "sessionnumber",
        "sessionno",
        "sessionnr",
        "sess",
        "visit",
        "visitnumber",
        "week",
        "appointment",
        "occasion",
        "wave",
        "redcaprepeatinstance",
    ),
    "rater": ("rater", "ratertype", "informant", "respondent", "perspective", "raterrole"),
}

#: Grouping columns worth keeping (site, language, ...): names, lower case.
GROUP_NAMES = ("site", "clinic", "center", "centre", "setting", "language", "country", "arm")

#: Covariates recognised by name: normalized name -> (tidy name, type).
COVARIATE_NAMES = {
    "age": ("age", "numeric"),
    "ageyears": ("age", "numeric"),
    "ageatintake": ("age", "numeric"),
    "sex": ("sex", "categorical"),
    "gender": ("gender", "categorical"),
}

#: Rater codes -> the pipeline's raters.
RATER_WORDS = {
    "client": "client",
    "patient": "client",
    "c": "client",
    "p": "client",
    "pt": "client",
    "self": "client",
    "therapist": "therapist",
    "t": "therapist",
    "th": "therapist",
    "clinician": "therapist",
    "counselor": "therapist",
    "counsellor": "therapist",
    "observer": "observer",
    "o": "observer",
    "obs": "observer",
    "rater": "observer",
}

#: Column names of a measure (normalized, prefixes): measure -> hints.
MEASURE_HINTS = {
    "phq9": ("phq9", "phq"),
    "gad7": ("gad7", "gad"),
    "core10": ("core10", "core"),
    "oq45": ("oq45", "oq"),
    "ors": ("ors",),
}

#: What may follow a measure's name in a total's column (normalized).
TOTAL_WORDS = ("total", "sum", "score", "tot", "ts")

#: Session markers in a wide column's name (``PHQ_S{session}``, ``PHQ_week{session}``).
SESSION_WORDS = ("", "s", "session", "sess", "t", "w", "week", "v", "visit")

#: Time-point words -> the codebook's timepoint.
TIMEPOINT_WORDS = {
    "pre": "intake",
    "intake": "intake",
    "baseline": "intake",
    "base": "intake",
    "bl": "intake",
    "t0": "intake",
    "post": "post",
    "end": "post",
    "final": "post",
    "discharge": "post",
    "fu": "follow_up",
    "followup": "follow_up",
}

#: Instruments tried first when none is named: the alliance instruments.
ALLIANCE_PREFIXES = ("wai", "srs")

#: Identifying columns a Qualtrics export carries: never read, never shown.
IDENTIFYING = frozenset(
    {
        "ipaddress",
        "recipientlastname",
        "recipientfirstname",
        "recipientemail",
        "locationlatitude",
        "locationlongitude",
    }
)


def normalize(name: str) -> str:
    """A column name in lower case, letters and digits only (``Client Code``: ``clientcode``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


# --------------------------------------------------------------------------- column profiles


@dataclass
class Profile:
    """What one column holds: counts only, never a patient's value."""

    name: str
    n: int
    blank: int
    numbers: Counter  # float -> count (numeric cells)
    texts: Counter  # stripped text -> count (non-numeric cells)
    distinct: int
    max_repeat: int
    labels: dict[float, str] = field(default_factory=dict)
    declared: DeclaredMissing | None = None
    label: str = ""
    form: str = ""
    identifier: bool = False

    @property
    def filled(self) -> int:
        """Cells that are not blank."""
        return self.n - self.blank

    @property
    def numeric_share(self) -> float:
        """Share of the filled cells that are numbers."""
        return sum(self.numbers.values()) / self.filled if self.filled else 0.0

    def whole(self) -> bool:
        """Whether every number is a whole number."""
        return all(float(v).is_integer() for v in self.numbers)

    def declared_values(self) -> set[float]:
        """The user-missing values this column declares (``.sav``)."""
        if self.declared is None:
            return set()
        return {float(v) for v in self.declared.values if isinstance(v, int | float)}


def _profile(name: str, raw: pd.Series, decimal: str = ".") -> Profile:
    text = raw.astype("string").str.strip().fillna("")
    blank = text.eq("")
    filled = text[~blank]
    cleaned = filled if decimal == "." else filled.str.replace(decimal, ".", regex=False)
    number = pd.to_numeric(cleaned, errors="coerce")
    counts = filled.value_counts(sort=False)
    numbers: Counter = Counter()
    texts: Counter = Counter()
    is_num = number.notna()
    for value, k in number[is_num].value_counts(sort=False).items():
        if math.isfinite(float(value)):
            numbers[float(value)] += int(k)
    for value, k in filled[~is_num].value_counts(sort=False).items():
        texts[str(value)] += int(k)
    return Profile(
        name=name,
        n=len(raw),
        blank=int(blank.sum()),
        numbers=numbers,
        texts=texts,
        distinct=int(len(counts)),
        max_repeat=int(counts.max()) if len(counts) else 0,
    )


# --------------------------------------------------------------------------- the draft


@dataclass
class Draft:
    """A drafted codebook: the document, a comment per key and the open questions.

    Attributes
    ----------
    doc
        The codebook as :func:`yaml.safe_load` reads it back.
    notes
        Key (``ids.patient``, ``items``, ...) -> evidence lines, written as comments above it.
    todos
        What the draft could not decide, each a sentence; also written as ``# TODO:`` comments.
    header
        Comment lines at the top (source file, checksum, what to do next).
    """

    doc: dict[str, Any]
    notes: dict[str, list[str]] = field(default_factory=dict)
    todos: dict[str, list[str]] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)
    trailer: list[str] = field(default_factory=list)

    def note(self, key: str, text: str) -> None:
        """Add evidence for ``key``."""
        self.notes.setdefault(key, []).append(text)

    def todo(self, key: str, text: str) -> None:
        """Add an open question at ``key``."""
        self.todos.setdefault(key, []).append(text)

    @property
    def open_questions(self) -> list[str]:
        """Every TODO as ``key: sentence``."""
        return [f"{key}: {t}" for key, texts in self.todos.items() for t in texts]

    def to_yaml(self) -> str:
        """The commented codebook (see :func:`render`)."""
        return render(self)


def _scalar(value: Any) -> str:
    """A YAML scalar on one line (quoted where YAML needs it)."""
    text = yaml.safe_dump([value], default_flow_style=True, width=10_000, allow_unicode=True)
    return text.strip()[1:-1]


def _flow(value: Any) -> str:
    """A value in YAML flow style on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True)
    return text.strip().removesuffix("...").strip()


#: Control characters (a line break in a column name must not end a comment line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


def _comment(lines: list[str], indent: str = "", prefix: str = "") -> list[str]:
    """Comment lines, wrapped; control characters in ``lines`` are written escaped."""
    out = []
    for line in lines:
        line = _CONTROL.sub(lambda m: repr(m.group())[1:-1], line)
        wrapped = textwrap.wrap(
            prefix + line, width=98 - len(indent), break_long_words=False, break_on_hyphens=False
        )
        for k, part in enumerate(wrapped or [""]):
            lead = "" if k == 0 else ("      " if prefix else "  ")
            out.append(f"{indent}# {lead}{part}")
    return out


#: Keys in the order a codebook is written.
KEY_ORDER = (
    "dataset",
    "description",
    "kind",
    "file",
    "format",
    "read",
    "layout",
    "sessions",
    "ids",
    "rater",
    "rater_values",
    "groups",
    "instrument",
    "items",
    "recode",
    "missing_codes",
    "declared_missing",
    "outcomes",
    "covariates",
    "effects",
    "strict",
)


def render(draft: Draft) -> str:
    """The codebook as YAML: evidence comments above each key, ``# TODO:`` where undecided."""
    lines = _comment(draft.header)
    for key in KEY_ORDER:
        if key not in draft.doc and key not in draft.todos and key not in draft.notes:
            continue
        lines.append("")
        lines += _comment(draft.notes.get(key, []))
        lines += _comment(draft.todos.get(key, []), prefix="TODO: ")
        if key not in draft.doc:
            continue
        value = draft.doc[key]
        if isinstance(value, dict) and key in ("ids", "effects", "read", "items", "recode"):
            lines.append(f"{key}:")
            for sub, v in value.items():
                lines += _comment(draft.notes.get(f"{key}.{sub}", []), indent="  ")
                lines += _comment(draft.todos.get(f"{key}.{sub}", []), indent="  ", prefix="TODO: ")
                lines.append(f"  {_scalar(sub)}: {_flow(v)}")
        elif isinstance(value, list) and value and key in ("outcomes", "covariates"):
            lines.append(f"{key}:")
            for k, entry in enumerate(value):
                lines += _comment(draft.notes.get(f"{key}[{k}]", []), indent="  ")
                lines += _comment(draft.todos.get(f"{key}[{k}]", []), indent="  ", prefix="TODO: ")
                lines.append(f"  - {_flow(entry)}")
        else:
            lines.append(f"{_scalar(key)}: {_flow(value)}")
    if draft.trailer:
        lines.append("")
        lines += _comment(draft.trailer)
    return "\n".join(lines).lstrip("\n") + "\n"


# --------------------------------------------------------------------------- reading


def detect_format(path: Path) -> tuple[str, list[str]]:
    """The codebook format of ``path`` from its suffix and, for CSV, its first lines.

    A CSV whose header has ``record_id`` and ``redcap_`` columns is a REDCap export; one whose
    third line holds ``{"ImportId": ...}`` cells is a Qualtrics export.

    Raises
    ------
    ValueError
        For a suffix none of the readers takes.
    """
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: cannot tell the export's format from its suffix {path.suffix!r}; "
            f"give --format ({', '.join(sorted(set(SUFFIX_FORMATS.values())))}, redcap, qualtrics)"
        )
    evidence = [f"the file's suffix {path.suffix!r}"]
    if fmt == "csv":
        head = path.read_bytes()[:65536].decode("utf-8-sig", errors="replace").splitlines()
        if len(head) >= 3 and '"ImportId"' in head[2].replace('""', '"'):
            return "qualtrics", ['line 3 holds {"ImportId": ...} cells (a Qualtrics export)']
        first = normalize_header(head[0] if head else "")
        if "redcap_event_name" in first or "redcap_repeat_instrument" in first:
            return "redcap", ["the header has redcap_ columns (a REDCap records export)"]
    return fmt, evidence


def normalize_header(line: str) -> list[str]:
    """The names of a CSV header line, lower case (for format detection only)."""
    sep = max(",;\t|", key=line.count) if line else ","
    return [c.strip().strip('"').lower() for c in line.split(sep)]


def sniff_csv(path: Path) -> tuple[dict[str, str], list[str]]:
    """The ``read`` options of a CSV file: separator, encoding, decimal mark, with evidence."""
    data = path.read_bytes()
    evidence = []
    try:
        text = data[:65536].decode("utf-8-sig")
        encoding = "utf-8"
        evidence.append("the file decodes as UTF-8")
    except UnicodeDecodeError:
        encoding = "cp1252"
        text = data[:65536].decode("cp1252", errors="replace")
        evidence.append("the file is not UTF-8; cp1252 (Windows Western) is a guess")
    lines = [ln for ln in text.splitlines() if ln.strip()][:20]
    header = lines[0] if lines else ""
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    sep = max(counts, key=lambda s: counts[s])
    if not counts[sep]:
        sep = ","
    shown = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "bar"}[sep]
    evidence.append(f"the header line has {counts[sep]} {shown}s")
    read = {"sep": sep, "encoding": encoding}
    if sep == ";":
        body = "\n".join(lines[1:])
        if re.search(r"(?:^|;)-?\d+,\d+(?:;|$)", body, flags=re.M):
            read["decimal"] = ","
            evidence.append("numbers such as 3,5 between semicolons: decimal comma")
    return read, evidence


def _sav_metadata(path: Path) -> Any:
    import pyreadstat

    _, meta = pyreadstat.read_sav(str(path), metadataonly=True, user_missing=True)
    return meta


def read_for_draft(
    path: Path, fmt: str, read: dict[str, Any]
) -> tuple[RawTable, dict[str, dict[float, str]], dict[str, str], dict[str, Any]]:
    """The export as text with the value labels and variable labels of each column.

    Returns the :class:`~alliance.data.readers.RawTable`, column -> {code: label} (``.sav`` value
    labels, REDCap choices), column -> variable label, and reader facts (REDCap forms and
    identifiers).

    Raises
    ------
    ValueError
        If the file cannot be read as ``fmt`` (the reader's message, naming the file).
    """
    try:
        raw = read_export(fmt, path, read, {})
    except ReadError as exc:
        raise ValueError(f"{path}: {exc}") from None
    labels: dict[str, dict[float, str]] = {}
    names: dict[str, str] = {}
    facts: dict[str, Any] = {}
    if fmt == "sav":
        meta = _sav_metadata(path)
        for col, mapping in (meta.variable_value_labels or {}).items():
            labels[col] = {
                float(k): str(v) for k, v in mapping.items() if isinstance(k, int | float)
            }
        names = {c: str(v) for c, v in (meta.column_names_to_labels or {}).items() if v}
    if fmt == "redcap":
        from alliance.data.redcap import read_dictionary

        dictionary = read_dictionary(Path(read["dictionary"]))
        facts["forms"] = {f.name: f.form for f in dictionary.fields.values()}
        facts["identifiers"] = {f.name for f in dictionary.fields.values() if f.identifier}
        facts["record_id"] = dictionary.record_id
        for f in dictionary.fields.values():
            if f.choices:
                numeric = {}
                for code, label in f.choices.items():
                    try:
                        numeric[float(code)] = label
                    except ValueError:
                        continue
                labels[f.name] = numeric
    return raw, labels, names, facts


# --------------------------------------------------------------------------- numbered columns


@dataclass
class Family:
    """Columns named alike but for their numbers (``S1_Q1`` ... ``S12_Q12``)."""

    texts: tuple[str, ...]  # the literal text around the varying numbers
    slots: list[dict[str, tuple[int, ...]]]  # column -> its varying numbers
    widths: tuple[set[int], ...]  # digit counts seen in each varying slot
    padded: tuple[bool, ...]  # whether the slot is zero-padded (``01``)

    @property
    def columns(self) -> list[str]:
        """The family's columns, in file order."""
        return list(self.slots[0])

    def values(self, slot: int) -> list[int]:
        """The distinct numbers of ``slot``."""
        return sorted({nums[slot] for nums in self.slots[0].values()})

    def template(self, names: tuple[str, ...], formats: tuple[str, ...] = ()) -> str:
        """The column pattern with ``{name}`` in each slot (literal braces doubled)."""
        parts = [t.replace("{", "{{").replace("}", "}}") for t in self.texts]
        out = parts[0]
        for k, name in enumerate(names):
            spec = formats[k] if k < len(formats) and formats[k] else ""
            out += "{" + name + spec + "}" + parts[k + 1]
        return out


def numbered_families(columns: list[str]) -> list[Family]:
    """Group columns by their name with the varying numbers taken out.

    A number that is the same in every column of a group is literal text (``PHQ9_S1`` ...
    ``PHQ9_S12`` is ``PHQ9_S{}``), so a family has one or two varying numbers.
    """
    groups: dict[tuple[str, ...], dict[str, list[str]]] = {}
    for col in columns:
        parts = re.split(r"(\d+)", col)
        if len(parts) == 1:
            continue
        groups.setdefault(tuple(parts[0::2]), {})[col] = parts[1::2]
    families = []
    for texts, members in groups.items():
        if len(members) < 2:
            continue
        n_slots = len(texts) - 1
        varying = [k for k in range(n_slots) if len({m[k] for m in members.values()}) > 1]
        if not 1 <= len(varying) <= 2:
            continue
        merged = [texts[0]]
        first = next(iter(members.values()))
        for k in range(n_slots):
            if k in varying:
                merged.append(texts[k + 1])
            else:
                merged[-1] += first[k] + texts[k + 1]
        slots = {col: tuple(int(nums[k]) for k in varying) for col, nums in members.items()}
        widths = tuple({len(nums[k]) for nums in members.values()} for k in varying)
        padded = tuple(
            any(nums[k].startswith("0") and len(nums[k]) > 1 for nums in members.values())
            for k in varying
        )
        families.append(Family(tuple(merged), [slots], widths, padded))
    return families


def _number_format(family: Family, slot: int) -> str | None:
    """``:02d`` for a zero-padded slot of one width; ``""`` unpadded; None if mixed."""
    if not family.padded[slot]:
        return ""
    widths = family.widths[slot]
    return f":0{next(iter(widths))}d" if len(widths) == 1 else None


@dataclass
class ItemMatch:
    """Where an instrument's items are: a pattern, the layout and (wide) the sessions."""

    instrument: Instrument
    family: Family
    pattern: str
    layout: str
    sessions: list[int]
    columns: list[str]
    extra: list[str]
    evidence: list[str]
    todos: list[str]


def match_items(families: list[Family], instrument: Instrument) -> list[ItemMatch]:
    """Every family whose numbers run through the instrument's items 1..k."""
    k = len(instrument.items)
    need = set(range(1, k + 1))
    out = []
    for fam in families:
        n_slots = len(fam.texts) - 1
        if n_slots == 1:
            values = set(fam.values(0))
            if not need <= values:
                continue
            fmt = _number_format(fam, 0)
            todos = []
            if fmt is None:
                fmt = ""
                todos.append("item numbers are zero-padded in some columns only: use items.map")
            pattern = fam.template(("number",), (fmt,))
            columns = [c for c, (num,) in fam.slots[0].items() if num in need]
            extra = [c for c, (num,) in fam.slots[0].items() if num not in need]
            out.append(
                ItemMatch(
                    instrument,
                    fam,
                    pattern,
                    "long",
                    [],
                    columns,
                    extra,
                    [f"{len(columns)} columns {columns[0]} ... {columns[-1]} number items 1-{k}"],
                    todos,
                )
            )
            continue
        for item_slot, session_slot in ((1, 0), (0, 1)):
            by_session: dict[int, set[int]] = {}
            for nums in fam.slots[0].values():
                by_session.setdefault(nums[session_slot], set()).add(nums[item_slot])
            complete = sorted(s for s, items in by_session.items() if need <= items)
            if not complete:
                continue
            item_fmt = _number_format(fam, item_slot)
            session_fmt = _number_format(fam, session_slot)
            todos = []
            if item_fmt is None or session_fmt is None or session_fmt:
                todos.append(
                    "session numbers are zero-padded in the column names, which a pattern "
                    "cannot express ({session} is written unpadded): rename the columns"
                )
            names = ("session", "number") if session_slot == 0 else ("number", "session")
            fmts = (
                (session_fmt or "", item_fmt or "")
                if session_slot == 0
                else (item_fmt or "", session_fmt or "")
            )
            # the session placeholder keeps no format: the codebook substitutes it as text
            fmts = tuple(f if n == "number" else "" for f, n in zip(fmts, names, strict=True))
            pattern = fam.template(names, fmts)
            incomplete = sorted(set(by_session) - set(complete))
            if incomplete:
                todos.append(
                    f"sessions {incomplete} lack some of the {k} item columns and are left out"
                )
            columns = [
                c
                for c, nums in fam.slots[0].items()
                if nums[session_slot] in complete and nums[item_slot] in need
            ]
            extra = [c for c in fam.columns if c not in set(columns)]
            out.append(
                ItemMatch(
                    instrument,
                    fam,
                    pattern,
                    "wide",
                    complete,
                    columns,
                    extra,
                    [
                        f"{len(columns)} columns named like {columns[0]}: items 1-{k} for each "
                        f"of {len(complete)} sessions ({_ranges(complete)}), one row per patient"
                    ],
                    todos,
                )
            )
            break
    return out


def _ranges(values: list[int]) -> str:
    """``1-12`` or ``1-3, 5``."""
    if not values:
        return ""
    parts, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}-{prev}" if prev > start else f"{start}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


# --------------------------------------------------------------------------- scale and codes


def _label_scale(labels: dict[float, str]) -> list[float]:
    """The codes of value labels that are answers (not labelled as missing)."""
    return sorted(
        code for code, text in labels.items() if not any(w in text.lower() for w in MISSING_WORDS)
    )


def _missing_labelled(labels: dict[float, str]) -> dict[float, str]:
    """The codes whose label says missing (``-99: Not answered``)."""
    return {c: t for c, t in labels.items() if any(w in t.lower() for w in MISSING_WORDS)}


def _is_sentinel(value: float) -> bool:
    return float(value).is_integer() and int(value) in SENTINELS


@dataclass
class ScaleGuess:
    """The raw scale of the item columns and the recode onto the instrument's scale."""

    shift: int
    low: float
    high: float
    evidence: list[str]
    todos: list[str]


def guess_scale(numbers: Counter, instrument: Instrument, label_codes: list[float]) -> ScaleGuess:
    """The recode shift that puts the observed answers on the instrument's scale.

    Candidates are the whole numbers among the answers that are not sentinels and that occur
    at least twice (a single 55 is a typo to quarantine, not a category); value labels, where
    the file has them, give the raw scale directly.
    """
    lo_i, hi_i = instrument.scale_min, instrument.scale_max
    width = hi_i - lo_i
    total = sum(numbers.values())
    evidence, todos = [], []
    if instrument.continuous:  # a measured line is read as it is, never shifted
        values = [float(v) for v in numbers if not _is_sentinel(v)]
        if not values:
            todos.append("no numeric answers were found: check the items")
            return ScaleGuess(0, float(lo_i), float(hi_i), evidence, todos)
        low, high = min(values), max(values)
        evidence.append(
            f"the answers run {low:g}-{high:g} ({total} numeric answers), on the continuous "
            f"{instrument.name} scale {lo_i}-{hi_i} read to {instrument.scale_step:g}: no recode"
        )
        if low < lo_i or high > hi_i:
            todos.append(
                f"answers {low:g}-{high:g} reach beyond the {lo_i}-{hi_i} line (read in "
                "another unit, such as millimetres?): check the export; those answers are "
                "quarantined as out_of_range"
            )
        return ScaleGuess(0, low, high, evidence, todos)
    if len(label_codes) >= 2 and all(float(c).is_integer() for c in label_codes):
        low, high = min(label_codes), max(label_codes)
        if high - low == width:
            shift = int(lo_i - low)
            evidence.append(
                f"the value labels number the answers {low:g}-{high:g} "
                f"({len(label_codes)} labelled categories)"
            )
            return ScaleGuess(shift, low, high, evidence, todos)
        todos.append(
            f"the value labels number the answers {low:g}-{high:g}, but {instrument.name} "
            f"has {width + 1} categories ({lo_i}-{hi_i}): check the instrument"
        )
    common = sorted(
        v
        for v, k in numbers.items()
        if float(v).is_integer() and k >= max(2, total * 0.001) and not _is_sentinel(v)
    )
    inside = [v for v in common if lo_i - 2 <= v <= hi_i + 1]
    if not inside:
        todos.append(f"no answers on or near the {lo_i}-{hi_i} scale were found: check the items")
        return ScaleGuess(0, float(lo_i), float(hi_i), evidence, todos)
    low, high = min(inside), max(inside)
    share_top = numbers.get(high, 0) / total if total else 0
    evidence.append(
        f"the answers run {low:g}-{high:g} ({total} numeric answers; {share_top:.0%} at {high:g})"
    )
    if low >= lo_i and high <= hi_i:
        if high - low < width:
            evidence.append(
                f"within the {instrument.name} scale {lo_i}-{hi_i}, no recode "
                f"(not every category is used)"
            )
        else:
            evidence.append(f"the {instrument.name} scale {lo_i}-{hi_i}: no recode")
        return ScaleGuess(0, low, high, evidence, todos)
    if high - low > width:
        todos.append(
            f"the answers span {low:g}-{high:g}, more than the {width + 1} categories of "
            f"{instrument.name} ({lo_i}-{hi_i}): check the instrument or write recode.map"
        )
        return ScaleGuess(0, low, high, evidence, todos)
    shift = int(lo_i - low) if low < lo_i else int(hi_i - high)
    evidence.append(
        f"{low:g}-{high:g} lies {abs(shift)} step{'s' * (abs(shift) > 1)} "
        f"{'below' if shift > 0 else 'above'} the {instrument.name} scale {lo_i}-{hi_i}: "
        f"recode shift {shift}"
    )
    if high - low < width:
        todos.append(
            f"not every category is used ({low:g}-{high:g} of {width + 1} categories): check "
            f"that the raw scale is {lo_i - shift}-{hi_i - shift}"
        )
    return ScaleGuess(shift, low, high, evidence, todos)


# --------------------------------------------------------------------------- roles by name


def _role_rank(name: str, role: str) -> int | None:
    """The rank of a column name among a role's names (exact first, then contained)."""
    norm = normalize(name)
    names = ROLE_NAMES[role]
    if norm in names:
        return names.index(norm)
    for k, candidate in enumerate(names):
        if len(candidate) >= 4 and candidate in norm:
            return 100 + k
    return None


def _best(columns: list[str], role: str) -> list[str]:
    ranked = sorted(
        ((r, i, c) for i, c in enumerate(columns) if (r := _role_rank(c, role)) is not None),
    )
    return [c for _, _, c in ranked]


def _measure_of(name: str) -> tuple[str, str | None, bool] | None:
    """``(measure, timepoint, per_session_marker)`` of a total's column name, or None.

    ``name`` may hold a ``{}`` where a wide family's session number goes.
    """
    marker = "{}" in name
    before, _, after = name.partition("{}")
    norm = normalize(before)
    for measure, hints in MEASURE_HINTS.items():
        for hint in hints:
            if not norm.startswith(hint):
                continue
            rest = norm[len(hint) :] + normalize(after)
            for word in TOTAL_WORDS:
                rest = rest.removeprefix(word).removesuffix(word)
            if marker and rest in SESSION_WORDS:
                return measure, None, True
            if not marker and rest in ("", "total"):
                return measure, None, False
            if not marker and rest in TIMEPOINT_WORDS:
                return measure, TIMEPOINT_WORDS[rest], False
    return None


# --------------------------------------------------------------------------- the drafting


def draft_codebook(
    export: str | Path,
    *,
    instrument: str | None = None,
    fmt: str | None = None,
    dataset: str | None = None,
    out: str | Path | None = None,
    read: dict[str, Any] | None = None,
) -> Draft:
    """Draft a codebook for ``export``.

    Parameters
    ----------
    export
        The export file (CSV, ``.sav``, ``.xlsx``, Parquet, REDCap records CSV, Qualtrics CSV).
    instrument
        The instrument of its items (a built-in name or an instrument YAML); by default the
        built-in instrument whose items the column names and answers fit best.
    fmt
        The format (``csv``, ``sav``, ``xlsx``, ``parquet``, ``redcap``, ``qualtrics``); by
        default from the suffix and the first lines (:func:`detect_format`).
    dataset
        The dataset name (default: the file's stem, made a valid name).
    out
        Where the codebook will be written: ``file`` is written relative to its folder.
    read
        ``read`` options to start from (``sheet``; REDCap: ``dictionary``).

    Returns
    -------
    Draft
        The codebook with its evidence and TODOs; :meth:`Draft.to_yaml` writes it.

    Raises
    ------
    ValueError
        If the file does not exist or cannot be read as its format.
    """
    path = Path(export)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (the export to draft a codebook for)")
    evidence_fmt: list[str]
    if fmt is None:
        fmt, evidence_fmt = detect_format(path)
    else:
        evidence_fmt = ["given with --format"]
    read = dict(read or {})
    read_evidence: list[str] = []
    if fmt in ("csv", "redcap", "qualtrics"):
        sniffed, read_evidence = sniff_csv(path)
        for key, value in sniffed.items():
            read.setdefault(key, value)
    if fmt == "redcap":
        if "dictionary" not in read:
            read["dictionary"] = str(_find_dictionary(path))
            read_evidence.append(f"the data dictionary beside the export: {read['dictionary']}")
    raw, labels, var_labels, facts = read_for_draft(path, fmt, read)
    frame = raw.frame
    out_dir = Path(out).resolve().parent if out is not None else Path.cwd()
    name = dataset or re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)
    if not re.match(r"^[A-Za-z]", name):
        name = f"d_{name}"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    draft = Draft(doc={})
    draft.header = [
        f"Codebook DRAFTED by `alliance codebook draft` from {path.name} "
        f"(sha256 {digest[:16]}...).",
        "Above each key: the evidence for the guess. TODO: what the draft could not decide.",
        "Check every key against the export, resolve the TODOs, then run:",
        f"  alliance ingest {Path(out).name if out else 'codebook.yaml'} "
        f"--out results/{name}/ingest",
        "The schema: src/alliance/data/schemas/codebook.schema.yaml; README, 'Add a dataset'.",
    ]
    draft.doc["dataset"] = name
    draft.note("dataset", "the file's name (results go to results/<dataset>/)")
    draft.doc["description"] = f"{path.name}, drafted codebook"
    rel = os.path.relpath(path.resolve(), out_dir)
    draft.doc["file"] = Path(rel).as_posix()
    draft.doc["format"] = fmt
    draft.note("format", "; ".join(evidence_fmt))
    if fmt == "redcap" and "dictionary" in read:
        read["dictionary"] = Path(
            os.path.relpath(Path(read["dictionary"]).resolve(), out_dir)
        ).as_posix()
    read_doc = {k: v for k, v in read.items() if not (k == "encoding" and v == "utf-8")}
    if read_doc.get("sep") == ",":
        read_doc.pop("sep")
    if read_doc:
        draft.doc["read"] = read_doc
    if read_evidence:
        draft.note("read", "; ".join(read_evidence))
    if raw.notes:
        for text in raw.notes:
            draft.note("read", f"reader: {text}")
    if len(raw.rejected):
        reasons = Counter(raw.rejected["reason"])
        draft.todo(
            "read",
            f"{len(raw.rejected)} records cannot be read as the header's fields "
            f"({dict(reasons)}); ingest quarantines them: check the separator and quoting",
        )

    profiles: dict[str, Profile] = {}
    for col in frame.columns:
        prof = _profile(col, frame[col], read.get("decimal", "."))
        prof.labels = labels.get(col, {})
        prof.label = var_labels.get(col, "")
        prof.declared = raw.declared_missing.get(col)
        prof.form = facts.get("forms", {}).get(col, "")
        prof.identifier = col in facts.get("identifiers", set()) or normalize(col) in IDENTIFYING
        profiles[col] = prof

    columns = list(frame.columns)
    if _looks_like_effects(columns):
        _draft_effects(draft, columns, profiles)
        return draft
    draft.doc["kind"] = "items"
    draft.notes.setdefault("kind", []).append(
        "items: patient-level questionnaire data (no study/r/n or study/yi/vi columns)"
    )
    _draft_items(draft, frame, columns, profiles, instrument, fmt, facts, out_dir)
    return draft


def _find_dictionary(path: Path) -> Path:
    """The REDCap data dictionary beside an export (a CSV whose name has 'dictionary')."""
    candidates = sorted(
        p for p in path.parent.glob("*.csv") if "dictionary" in p.name.lower() and p != path
    )
    if len(candidates) != 1:
        raise ValueError(
            f"{path}: a REDCap export needs its data dictionary; found "
            f"{[p.name for p in candidates] or 'none'} beside it: give --dictionary"
        )
    return candidates[0]


def _looks_like_effects(columns: list[str]) -> bool:
    norm = {normalize(c) for c in columns}
    return "study" in norm and ({"r", "n"} <= norm or {"yi", "vi"} <= norm)


def _draft_effects(draft: Draft, columns: list[str], profiles: dict[str, Profile]) -> None:
    by_norm = {normalize(c): c for c in columns}
    draft.doc["kind"] = "effects"
    draft.note(
        "kind",
        "effects: the file has study and r/n (or yi/vi) columns, a table of published effects",
    )
    keys = ("study", "r", "n") if {"r", "n"} <= set(by_norm) else ("study", "yi", "vi")
    spec: dict[str, Any] = {k: by_norm[k] for k in keys}
    for k in keys:
        prof = profiles[by_norm[k]]
        if k == "study":
            draft.note("effects.study", f"column {by_norm[k]!r}: {prof.distinct} distinct labels")
        else:
            nums = [v for v in prof.numbers]
            span = f"{min(nums):g} to {max(nums):g}" if nums else "no numbers"
            draft.note(f"effects.{k}", f"column {by_norm[k]!r}: numbers from {span}")
    for cluster in ("cluster", "paper", "lab", "sample"):
        if cluster in by_norm:
            spec["cluster"] = by_norm[cluster]
            draft.note(
                "effects.cluster", f"column {by_norm[cluster]!r}: dependent effects grouped by it"
            )
            break
    used = set(spec.values())
    moderators = [c for c in columns if c not in used]
    if moderators:
        spec["moderators"] = moderators
        draft.note("effects.moderators", "the table's other columns, kept under their own names")
    draft.doc["effects"] = spec


def _draft_items(
    draft: Draft,
    frame: pd.DataFrame,
    columns: list[str],
    profiles: dict[str, Profile],
    instrument_name: str | None,
    fmt: str,
    facts: dict[str, Any],
    out_dir: Path,
) -> None:
    families = numbered_families(columns)
    # ---- instrument and items
    if instrument_name is not None:
        path = Path(instrument_name)
        if instrument_name.endswith((".yaml", ".yml")) and path.is_file():
            candidates = [load_instrument(str(path.resolve()))]
            shown = Path(os.path.relpath(path.resolve(), out_dir)).as_posix()
        else:
            candidates = [load_instrument(instrument_name)]
            shown = instrument_name
    else:
        names = builtin_instruments()
        names.sort(key=lambda n: (not n.startswith(ALLIANCE_PREFIXES), n))
        candidates = [load_instrument(n) for n in names]
        shown = None
    matches = []
    for inst in candidates:
        for m in match_items(families, inst):
            numbers = Counter()
            for col in m.columns:
                numbers.update(profiles[col].numbers)
            lab = _label_scale(profiles[m.columns[0]].labels)
            guess = guess_scale(numbers, inst, lab)
            hint = normalize(m.pattern.split("{")[0])
            score = (
                not m.extra,  # every numbered column is an item
                len(guess.todos) == 0,  # the answers fit the scale
                guess.high - guess.low == inst.scale_max - inst.scale_min,  # every category
                bool(hint) and inst.name.split("_")[0] in hint,  # named like the instrument
                inst.name.startswith(ALLIANCE_PREFIXES),
            )
            matches.append((score, m, guess))
    if not matches:
        draft.doc["instrument"] = instrument_name or "wai_sr"
        draft.todo(
            "instrument",
            "no columns are numbered like the items of "
            + (instrument_name or f"a built-in instrument ({', '.join(builtin_instruments())})")
            + ": name the instrument (--instrument) or write an instrument YAML",
        )
        listing = [f.template(tuple("#" * (len(f.texts) - 1))) for f in families][:8]
        draft.doc["items"] = {"pattern": "TODO"}
        draft.todo(
            "items",
            "write the item columns' pattern (or items.map); numbered columns seen: "
            + (", ".join(listing) or "none"),
        )
        draft.doc["layout"] = "long"
        item_columns: list[str] = []
        item_match = None
        scale = None
    else:
        matches.sort(key=lambda t: t[0], reverse=True)
        _, item_match, scale = matches[0]
        inst = item_match.instrument
        draft.doc["instrument"] = shown or inst.name
        draft.note(
            "instrument",
            f"{inst.title}: {len(inst.items)} items on {inst.scale_min}-{inst.scale_max}",
        )
        if instrument_name is None:
            others = sorted(
                {
                    m.instrument.name
                    for s, m, _ in matches[1:]
                    if m.instrument is not inst and not m.extra and s[1]
                }
            )
            if others:
                draft.todo(
                    "instrument",
                    f"guessed from the column numbers and the answers; {', '.join(others)} "
                    "fit too: confirm the form and version your clinic used",
                )
        draft.doc["layout"] = item_match.layout
        if item_match.layout == "wide":
            draft.doc["sessions"] = item_match.sessions
            draft.note("sessions", "the session numbers in the item columns' names")
        draft.note("layout", item_match.evidence[0])
        draft.doc["items"] = {"pattern": item_match.pattern}
        draft.note("items.pattern", item_match.evidence[0])
        for text in item_match.todos:
            draft.todo("items", text)
        if item_match.extra:
            draft.todo(
                "items",
                f"{len(item_match.extra)} more columns are numbered alike ({item_match.extra[0]}"
                f" ...) beyond the instrument's items; they are not read",
            )
        item_columns = item_match.columns
    used: set[str] = set(item_columns)

    # ---- IDs
    ids: dict[str, str] = {}
    rest = [c for c in columns if c not in used]
    layout = draft.doc["layout"]
    for role in ("patient", "therapist", "session", "rater"):
        if role == "session" and layout == "wide":
            continue
        pool = [
            c
            for c in rest
            if c not in ids.values() and not (role != "patient" and profiles[c].identifier)
        ]
        if fmt == "redcap" and role == "patient" and facts.get("record_id") in pool:
            found = [facts["record_id"]]
        else:
            found = _best(pool, role)
        if role == "session":
            found = [c for c in found if _session_like(profiles[c])] or found
        if role == "rater":
            found = [c for c in found if profiles[c].distinct <= 6]
        if not found:
            continue
        col = found[0]
        ids[role] = col
        prof = profiles[col]
        key = f"ids.{role}"
        if role == "patient":
            draft.note(
                key,
                f"column {col!r} by its name; {prof.distinct} distinct IDs, up to "
                f"{prof.max_repeat} rows each",
            )
            if prof.blank:
                draft.note(
                    key,
                    f"{_count(prof.blank, 'row')} without an ID (ingest quarantines them as "
                    "missing_id)",
                )
        elif role == "therapist":
            draft.note(key, f"column {col!r} by its name; {prof.distinct} distinct therapists")
        elif role == "session":
            nums = sorted(v for v in prof.numbers if v >= 1 and float(v).is_integer())
            draft.note(
                key,
                f"column {col!r} by its name; whole numbers {nums[0]:g}-{nums[-1]:g}"
                if nums
                else f"column {col!r} by its name",
            )
            if not _session_like(prof):
                draft.todo(key, f"{col!r} does not hold only positive whole numbers: check")
        else:
            draft.note(key, f"column {col!r} by its name; {prof.distinct} codes")
        if len(found) > 1:
            draft.note(key, f"other candidates: {', '.join(found[1:4])}")
    if "patient" not in ids:
        ids["patient"] = "TODO"
        draft.todo("ids.patient", "no patient ID column found by its name: name it")
    if layout == "long" and "session" not in ids:
        ids["session"] = "TODO"
        draft.todo(
            "ids.session",
            "no session column found by its name; a long export needs one (one row per "
            "patient x session): name it",
        )
    if "therapist" not in ids:
        draft.todo(
            "ids",
            "no therapist column found by its name: the therapist-level models need one; add "
            "ids.therapist if the export has it",
        )
    draft.doc["ids"] = {k: ids[k] for k in ("patient", "therapist", "session", "rater") if k in ids}
    used |= set(ids.values())

    # ---- rater
    inst = item_match.instrument if item_match else None
    if "rater" in ids:
        prof = profiles[ids["rater"]]
        codes = [t for t in prof.texts] + [_num_text(v) for v in prof.numbers]
        mapping = {}
        for code in codes:
            word = RATER_WORDS.get(code.strip().lower())
            label = prof.labels.get(_to_float(code), "") if _to_float(code) is not None else ""
            word = word or RATER_WORDS.get(label.strip().lower())
            mapping[code] = word
        if all(c in ("client", "therapist", "observer") for c in codes):
            draft.note("ids.rater", f"its codes are the pipeline's raters: {sorted(codes)}")
        else:
            known = {c: w for c, w in mapping.items() if w}
            unknown = sorted(c for c, w in mapping.items() if not w)
            if known:
                draft.doc["rater_values"] = {_yaml_key(c): w for c, w in sorted(known.items())}
                draft.note("rater_values", "the codes' words or value labels")
            if unknown:
                draft.todo(
                    "rater_values",
                    f"rater codes {unknown} are not recognised: map each to client, therapist "
                    "or observer (unmapped codes are quarantined as invalid_rater)",
                )
    elif inst is not None:
        draft.doc["rater"] = inst.rater
        draft.note("rater", f"no rater column: every row is the {inst.rater} form of {inst.name}")

    # ---- outcomes (before the missing codes: a code must not be a valid score)
    outcomes, outcome_columns = _draft_outcomes(
        draft, columns, used, profiles, layout, draft.doc.get("sessions", [])
    )
    used |= outcome_columns

    # ---- groups and covariates
    groups = []
    for col in columns:
        if col in used or profiles[col].identifier:
            continue
        if normalize(col) in GROUP_NAMES and 1 <= profiles[col].distinct <= 50:
            groups.append(col)
            draft.note(
                "groups", f"column {col!r} by its name: {_count(profiles[col].distinct, 'group')}"
            )
    if groups:
        draft.doc["groups"] = groups
        used |= set(groups)
    covariates = []
    for col in columns:
        if col in used or profiles[col].identifier:
            continue
        spec = COVARIATE_NAMES.get(normalize(col))
        if spec is None:
            continue
        cov_name, kind = spec
        prof = profiles[col]
        entry: dict[str, Any] = {"column": col, "name": cov_name, "type": kind}
        k = len(covariates)
        if kind == "numeric":
            nums = sorted(v for v in prof.numbers if not _is_sentinel(v))
            entry.update({"min": 0, "max": 120})
            span = f"{nums[0]:g}-{nums[-1]:g}" if nums else "none"
            draft.note(f"covariates[{k}]", f"{col!r} by its name: numbers {span}")
            draft.todo(
                f"covariates[{k}]",
                "set min/max to your inclusion range (values outside are quarantined)",
            )
        else:
            codes = sorted(prof.texts) + [_num_text(v) for v in sorted(prof.numbers)]
            if prof.labels:
                entry["values"] = {
                    _yaml_key(_num_text(c)): t
                    for c, t in sorted(prof.labels.items())
                    if not any(w in t.lower() for w in MISSING_WORDS)
                }
                draft.note(f"covariates[{k}]", f"{col!r} by its name; its value labels")
            elif all(_to_float(c) is not None for c in codes) and codes:
                draft.note(f"covariates[{k}]", f"{col!r} by its name; codes {codes[:8]}")
                draft.todo(
                    f"covariates[{k}]",
                    f"the codes {codes[:8]} have no labels: add values: {{code: label}}",
                )
            else:
                draft.note(
                    f"covariates[{k}]", f"{col!r} by its name; {len(codes)} categories kept as text"
                )
        covariates.append(entry)
        used.add(col)

    # ---- recode and missing codes
    if item_match is not None and scale is not None:
        inst = item_match.instrument
        for text in scale.evidence:
            draft.note("recode", text)
        for text in scale.todos:
            draft.todo("recode", text)
        if scale.shift:
            draft.doc["recode"] = {"shift": scale.shift}
        declared_note = _declared_notes(item_columns, profiles)
        codes = _missing_codes(
            draft, item_columns, outcomes, covariates, profiles, inst, scale, declared_note
        )
        if codes:
            draft.doc["missing_codes"] = codes
        if any(profiles[c].declared for c in columns):
            draft.doc["declared_missing"] = True
            for text in _declared_listing(columns, profiles):
                draft.note("declared_missing", text)
        _label_notes(draft, item_columns, profiles, inst, scale)
    if outcomes:
        draft.doc["outcomes"] = outcomes
    if covariates:
        draft.doc["covariates"] = covariates
    draft.doc["strict"] = False
    draft.note("strict", "false: problems are quarantined and counted, not fatal")

    # ---- what is left
    left = [c for c in columns if c not in used]
    identifying = [c for c in left if profiles[c].identifier]
    if identifying:
        draft.trailer.append(
            f"Identifying columns, never read: {', '.join(identifying)} (remove them from "
            "the export you keep beside the project if you can)."
        )
    others = [c for c in left if not profiles[c].identifier]
    if others:
        shown = [f"{c} ({_kind(profiles[c])})" for c in others[:20]]
        more = f" and {len(others) - 20} more" if len(others) > 20 else ""
        draft.trailer.append(
            "Columns not read (outcome or covariate candidates? add them above): "
            + ", ".join(shown)
            + more
        )


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _kind(prof: Profile) -> str:
    if prof.filled == 0:
        return "empty"
    if prof.numeric_share >= 0.95:
        nums = sorted(prof.numbers)
        return f"numbers {nums[0]:g}-{nums[-1]:g}" if nums else "numbers"
    return f"text, {_count(prof.distinct, 'distinct value')}"


def _num_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _yaml_key(code: str) -> int | float | str:
    """A code as the YAML key the codebook reads back (``1`` for ``"1"``)."""
    number = _to_float(code)
    if number is not None and number.is_integer() and str(int(number)) == code:
        return int(number)
    return code


def _session_like(prof: Profile) -> bool:
    if prof.filled == 0 or prof.texts:
        return sum(prof.texts.values()) <= max(1, prof.filled * 0.001) and bool(prof.numbers)
    nums = list(prof.numbers)
    bad = sum(k for v, k in prof.numbers.items() if v < 1 or not float(v).is_integer())
    return bool(nums) and bad <= max(1, prof.filled * 0.001) and max(nums) <= 1000


def _draft_outcomes(
    draft: Draft,
    columns: list[str],
    used: set[str],
    profiles: dict[str, Profile],
    layout: str,
    sessions: list[int],
) -> tuple[list[dict[str, Any]], set[str]]:
    outcomes: list[dict[str, Any]] = []
    taken: set[str] = set()
    free = [c for c in columns if c not in used and not profiles[c].identifier]
    if layout == "wide":
        for fam in numbered_families(free):
            if len(fam.texts) != 2:
                continue
            found = _measure_of(fam.texts[0] + "{}" + fam.texts[1])
            if found is None or not found[2]:
                continue
            measure = load_measure(found[0])
            values = fam.values(0)
            k = len(outcomes)
            if not set(sessions) <= set(values) or fam.padded[0]:
                draft.todo(
                    "outcomes",
                    f"{measure.name} columns {fam.columns[0]} ... cover sessions "
                    f"{_ranges(values)}, not every item session ({_ranges(sessions)}): not read",
                )
                continue
            entry = _outcome_entry(measure, fam.template(("session",)))
            cols = [c for c, (s,) in fam.slots[0].items() if s in sessions]
            _outcome_evidence(draft, k, measure, cols, profiles, "one column per session")
            outcomes.append(entry)
            taken |= set(cols)
    for col in free:
        if col in taken:
            continue
        found = _measure_of(col)
        if found is None or found[2]:
            continue
        measure_name, timepoint, _ = found
        if layout == "wide" and timepoint is None:
            draft.todo(
                "outcomes",
                f"{col!r} looks like a {measure_name} total but the layout is wide and its time "
                "is unknown: add it with a timepoint (intake, post, follow_up)",
            )
            continue
        prof = profiles[col]
        if prof.numeric_share < 0.9:
            continue
        measure = load_measure(measure_name)
        entry = _outcome_entry(measure, col, timepoint)
        k = len(outcomes)
        where = f"at {timepoint}" if timepoint else "at each row's session"
        _outcome_evidence(draft, k, measure, [col], profiles, where)
        outcomes.append(entry)
        taken.add(col)
    return outcomes, taken


def _outcome_entry(measure: Any, column: str, timepoint: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"measure": measure.name, "column": column}
    if timepoint:
        entry["timepoint"] = timepoint
    entry.update({"min": _num(measure.min), "max": _num(measure.max)})
    if not measure.integer:
        entry["integer"] = False
    return entry


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _outcome_evidence(
    draft: Draft, k: int, measure: Any, cols: list[str], profiles: dict[str, Profile], where: str
) -> None:
    numbers: Counter = Counter()
    for col in cols:
        numbers.update(profiles[col].numbers)
    valid = [v for v in numbers if measure.min <= v <= measure.max]
    outside = sum(k for v, k in numbers.items() if not measure.min <= v <= measure.max)
    span = f"{min(valid):g}-{max(valid):g}" if valid else "none in range"
    text = (
        f"{measure.title} ({measure.min:g}-{measure.max:g}, {measure.better} is better), "
        f"{where}: the name {cols[0]!r}; values {span}"
    )
    if outside:
        text += f"; {outside} values outside the range (missing codes or errors)"
    draft.note(f"outcomes[{k}]", text)


def _declared_notes(item_columns: list[str], profiles: dict[str, Profile]) -> dict[str, set[float]]:
    return {c: profiles[c].declared_values() for c in item_columns if profiles[c].declared}


def _declared_listing(columns: list[str], profiles: dict[str, Profile]) -> list[str]:
    """``-99 in WAI1, ..., PHQ9``: the user-missing values the file declares, by value."""
    by_values: dict[str, list[str]] = {}
    for col in columns:
        if profiles[col].declared:
            by_values.setdefault(profiles[col].declared.describe(), []).append(col)
    lines = [
        f"the file declares user-missing {values} in {_column_list(cols)}: applied there "
        "(declared_missing: true)"
        for values, cols in by_values.items()
    ]
    return lines


def _column_list(cols: list[str]) -> str:
    return (
        ", ".join(cols)
        if len(cols) <= 4
        else f"{cols[0]}, {cols[1]}, ... {cols[-1]} ({len(cols)} columns)"
    )


def _label_notes(
    draft: Draft,
    item_columns: list[str],
    profiles: dict[str, Profile],
    inst: Instrument,
    scale: ScaleGuess,
) -> None:
    labelled = [c for c in item_columns if profiles[c].labels]
    if not labelled:
        return
    labels = profiles[labelled[0]].labels
    shown = ", ".join(f"{_num_text(c)} {t}" for c, t in sorted(labels.items()))
    draft.note("recode", f"value labels of {_column_list(labelled)}: {shown}")
    mismatched = [
        (c, t)
        for c, t in labels.items()
        if c + scale.shift in inst.labels
        and inst.labels[int(c + scale.shift)].lower() != t.strip().lower()
    ]
    if mismatched:
        draft.todo(
            "recode",
            f"labels differ from {inst.name}'s anchors ("
            + "; ".join(
                f"{_num_text(c)} {t!r} vs {inst.labels[int(c + scale.shift)]!r}"
                for c, t in mismatched[:3]
            )
            + "): check the scale's direction and the recode",
        )


def _missing_codes(
    draft: Draft,
    item_columns: list[str],
    outcomes: list[dict[str, Any]],
    covariates: list[dict[str, Any]],
    profiles: dict[str, Profile],
    inst: Instrument,
    scale: ScaleGuess,
    declared: dict[str, set[float]],
) -> list[Any]:
    """Sentinel numbers and texts that mean "not answered", safe for every column read.

    A candidate code applies to every column (``missing_codes``), so it is kept only when it
    is no valid value of another column the codebook reads (a 9 beyond a 1-5 scale is a valid
    PHQ-9 total).
    """
    lo, hi = inst.scale_min - scale.shift, inst.scale_max - scale.shift
    numbers: Counter = Counter()
    texts: Counter = Counter()
    where: dict[Any, set[str]] = {}
    label_missing: dict[float, str] = {}
    read_cols = list(item_columns) + [
        c
        for o in outcomes
        for c in _outcome_columns(o, draft.doc.get("sessions", []))
        if c in profiles
    ]
    ranges = {}
    for o in outcomes:
        for c in _outcome_columns(o, draft.doc.get("sessions", [])):
            ranges[c] = (o["min"], o["max"])
    for c in item_columns:
        ranges[c] = (lo, hi)
    for col in read_cols:
        prof = profiles[col]
        skip = prof.declared_values()
        for v, k in prof.numbers.items():
            if v in skip:
                continue
            rlo, rhi = ranges[col]
            if rlo <= v <= rhi:
                continue
            numbers[v] += k
            where.setdefault(v, set()).add(col)
        for t, k in prof.texts.items():
            texts[t] += k
            where.setdefault(t, set()).add(col)
        label_missing.update(
            {c: t for c, t in _missing_labelled(prof.labels).items() if c not in skip}
        )
    codes: list[Any] = []
    for value, count in sorted(numbers.items()):
        cols = sorted(where[value])
        labelled = label_missing.get(value)
        if not (_is_sentinel(value) or labelled):
            draft.note(
                "missing_codes",
                f"{_num_text(value)} occurs {_times(count)} beyond the valid range in "
                f"{_column_list(cols)}: no missing code; ingest quarantines it as out of range",
            )
            continue
        if count < 2 and not labelled:
            draft.note(
                "missing_codes",
                f"{_num_text(value)} occurs once beyond the valid range (in {cols[0]}): a typo "
                "rather than a code; ingest quarantines it",
            )
            continue
        clash = _valid_elsewhere(value, outcomes, covariates, profiles, draft)
        if clash:
            draft.todo(
                "missing_codes",
                f"{_num_text(value)} occurs {count} times beyond the valid range in "
                f"{_column_list(cols)}, but it is a valid value of {clash}, and a missing code "
                "applies to every column: not listed (ingest quarantines those cells)",
            )
            continue
        codes.append(_num(value))
        why = f"labelled {labelled!r}" if labelled else "a usual sentinel"
        draft.note(
            "missing_codes",
            f"{_num_text(value)}: {count} cells beyond the valid range in "
            f"{_column_list(cols)}, {why}",
        )
    for text, count in sorted(texts.items()):
        cols = sorted(where[text])
        if text.strip().lower() in TEXT_CODES:
            codes.append(text)
            draft.note("missing_codes", f"{text!r}: {count} cells in {_column_list(cols)}")
        elif count >= 2:
            draft.todo(
                "missing_codes",
                f"a text occurs {count} times in {_column_list(cols)} (not shown: it may be "
                "private): a missing code? ingest quarantines it as not a number",
            )
        else:
            draft.note(
                "missing_codes",
                f"one text cell in {cols[0]} (not shown): ingest quarantines it as not a number",
            )
    return codes


def _outcome_columns(outcome: dict[str, Any], sessions: list[int]) -> list[str]:
    col = outcome["column"]
    if "{session}" in col:
        return [col.format(session=s) for s in sessions]
    return [col]


def _valid_elsewhere(
    value: float,
    outcomes: list[dict[str, Any]],
    covariates: list[dict[str, Any]],
    profiles: dict[str, Profile],
    draft: Draft,
) -> str | None:
    """The first column read where ``value`` is a valid value (so it cannot be a code)."""
    for o in outcomes:
        if o["min"] <= value <= o["max"]:
            return f"{o['measure']} ({o['min']}-{o['max']})"
    for c in covariates:
        if c["type"] == "numeric" and c.get("min", -np.inf) <= value <= c.get("max", np.inf):
            if value in profiles[c["column"]].numbers:
                return f"covariate {c['name']}"
        if c["type"] == "categorical" and value in profiles[c["column"]].numbers:
            return f"covariate {c['name']}"
    return None


def write_draft(draft: Draft, out: str | Path, *, force: bool = False) -> Path:
    """Write the drafted codebook to ``out`` (never over an existing file unless ``force``).

    Raises
    ------
    ValueError
        If ``out`` exists and ``force`` is false, or names a folder.
    """
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; give the codebook's file name")
    if path.exists() and not force:
        raise ValueError(f"--out {str(out)!r} exists; give another name or --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(draft.to_yaml())
    return path
