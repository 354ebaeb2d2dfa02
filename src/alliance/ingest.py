"""Apply a codebook to a raw export: tidy tables, a quarantine of rejected rows and an account."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.codebook import RATERS, Codebook, load_codebook

QUARANTINE_COLUMNS = ["row", "column", "value", "reason", "detail"]
ID_COLUMNS = ["patient_id", "therapist_id", "session", "rater"]


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
    problems: list[pd.DataFrame] = field(default_factory=list, repr=False)

    def write(self, out_dir: str | Path) -> None:
        """Write the tables, ``quarantine.csv`` and ``ingest_report.json`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if self.effects is not None:
            self.effects.to_parquet(out / "effects.parquet", index=False)
        else:
            self.items.to_parquet(out / "items.parquet", index=False)
            self.outcomes.to_parquet(out / "outcomes.parquet", index=False)
            self.patients.to_parquet(out / "patients.parquet", index=False)
        self.quarantine.to_csv(out / "quarantine.csv", index=False)
        (out / "ingest_report.json").write_text(json.dumps(self.report, indent=2, sort_keys=True))


# --------------------------------------------------------------------------- reading


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_raw(codebook: Codebook) -> tuple[pd.DataFrame, list[Any]]:
    """Read the export named by ``codebook`` without interpreting any value.

    Returns
    -------
    frame
        The raw table, index reset to 0..n-1 (data row ``i`` is source row ``i + 1``).
    declared_missing
        Missing values declared inside the file (SPSS user-missing values), if any.

    Raises
    ------
    IngestError
        If the file cannot be read as the codebook's ``format``.
    """
    fmt, path, opts = codebook.format, codebook.file, codebook.read
    declared: list[Any] = []
    try:
        if fmt == "csv":
            frame = pd.read_csv(
                path,
                sep=opts.get("sep", ","),
                encoding=opts.get("encoding", "utf-8"),
                dtype=str,
                keep_default_na=False,
                na_values=[],
            )
        elif fmt == "sav":
            import pyreadstat

            frame, meta = pyreadstat.read_sav(str(path), user_missing=True)
            for spec in (meta.missing_user_values or {}).values():
                declared.extend(spec)
            for ranges in (meta.missing_ranges or {}).values():
                for bounds in ranges:
                    if bounds["lo"] == bounds["hi"]:
                        declared.append(bounds["lo"])
        elif fmt == "xlsx":
            frame = pd.read_excel(
                path,
                sheet_name=opts.get("sheet", 0),
                dtype=object,
                keep_default_na=False,
                na_values=[],
            )
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        else:  # pragma: no cover - the schema allows only the formats above
            raise IngestError(f"{codebook.path}: key 'format': unsupported format {fmt!r}")
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means the same thing here
        raise IngestError(
            f"{codebook.path}: key 'format' says {fmt!r}, but {path} cannot be read as {fmt}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True), sorted(set(declared), key=str)


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


def classify(raw: pd.Series, missing_codes: tuple[Any, ...], decimal: str = ".") -> Cells:
    """Split a raw column into numbers, blanks, missing codes and non-numeric text.

    A missing code matches numerically when it is a number (so ``-99`` matches ``"-99"``,
    ``"-99.0"`` and ``-99.0``) and by its stripped text otherwise (``"n/a"``).
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
    if text_codes:
        hit = text.isin(text_codes).fillna(False).astype(bool) & ~blank
        code = code.mask(hit, text.where(hit))
    is_code = code.notna()
    value = number.where(~is_code)
    non_numeric = ~blank & ~is_code & number.isna()
    return Cells(value=value, blank=blank, code=code, non_numeric=non_numeric)


def _as_id(raw: pd.Series) -> pd.Series:
    """IDs as text: integer-valued numbers lose their ``.0``; blanks become NA."""
    blank = _blank(raw)
    if pd.api.types.is_numeric_dtype(raw):
        as_float = raw.astype(float)
        integral = np.isfinite(as_float) & (as_float == np.round(as_float))
        text = as_float.astype("string")
        text = text.mask(integral, as_float.where(integral).astype("Int64").astype("string"))
    else:
        text = raw.astype("string").str.strip()
        as_float = pd.to_numeric(text, errors="coerce")
        integral = as_float.notna() & (as_float == np.round(as_float)) & text.str.contains(r"\.0+$")
        text = text.mask(integral, as_float.where(integral).astype("Int64").astype("string"))
    return text.mask(blank, pd.NA).astype("string")


class ProblemLog:
    """Collects problems (row, column, value, reason, detail) column by column."""

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
                }
            )
        )

    def table(self) -> pd.DataFrame:
        """All problems, ordered by row then column."""
        if not self.frames:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in QUARANTINE_COLUMNS})
        out = pd.concat(self.frames, ignore_index=True)
        return out.sort_values(["row", "column", "reason"], kind="stable").reset_index(drop=True)


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


def _item_cells(
    codebook: Codebook, raw: pd.Series, column: str, rows: pd.Series, acc: _Columns
) -> pd.Series:
    """Clean one item column: missing codes to NaN, recode, quarantine what is not an answer."""
    inst = codebook.instrument
    cells = classify(raw, codebook.missing_codes, codebook.read.get("decimal", "."))
    _count_codes(acc.codes, cells)
    acc.problems.add(
        cells.non_numeric,
        rows,
        column,
        raw,
        "non_numeric",
        f"not a number; the scale is {inst.scale_min}-{inst.scale_max}",
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
        )
        value = mapped.astype(float)
        acc.recoded += int((present & ~unmapped & (value != cells.value)).sum())
        present = present & ~unmapped
    elif codebook.recode_shift:
        value = value + codebook.recode_shift
        acc.recoded += int(present.sum())
    out_range = present & ((value < inst.scale_min) | (value > inst.scale_max))
    off_scale = present & ~out_range & (value != np.round(value))
    shown = f" after recoding (shift {codebook.recode_shift})" if codebook.recode_shift else ""
    acc.problems.add(
        out_range,
        rows,
        column,
        raw,
        "out_of_range",
        f"outside the scale {inst.scale_min}-{inst.scale_max}{shown}",
    )
    acc.problems.add(
        off_scale,
        rows,
        column,
        raw,
        "not_on_scale",
        f"between the categories of the scale {inst.scale_min}-{inst.scale_max}",
    )
    return value.where(present & ~out_range & ~off_scale)


def _outcome_cells(
    codebook: Codebook, raw: pd.Series, column: str, outcome: Any, rows: pd.Series, acc: _Columns
) -> pd.Series:
    """Clean one outcome column; out-of-range or non-numeric scores are quarantined."""
    cells = classify(raw, codebook.missing_codes, codebook.read.get("decimal", "."))
    _count_codes(acc.codes, cells)
    span = f"{outcome.measure} range {outcome.min:g}-{outcome.max:g}"
    acc.problems.add(
        cells.non_numeric, rows, column, raw, "outcome_non_numeric", f"not a number; {span}"
    )
    value = cells.value
    bad = value.notna() & ((value < outcome.min) | (value > outcome.max))
    acc.problems.add(bad, rows, column, raw, "outcome_out_of_range", f"outside the {span}")
    if outcome.integer:
        frac = value.notna() & ~bad & (value != np.round(value))
        acc.problems.add(
            frac,
            rows,
            column,
            raw,
            "outcome_out_of_range",
            f"not a whole number; {span} in whole points",
        )
        bad = bad | frac
    return value.where(~bad)


def _ids(codebook: Codebook, frame: pd.DataFrame, rows: pd.Series, acc: _Columns) -> pd.DataFrame:
    """Patient, therapist, rater (and long-layout session) columns, quarantining bad IDs."""
    ids = pd.DataFrame(index=frame.index)
    patient_col = codebook.ids["patient"]
    ids["patient_id"] = _as_id(frame[patient_col])
    acc.problems.add(
        ids["patient_id"].isna(),
        rows,
        patient_col,
        frame[patient_col],
        "missing_id",
        "patient ID is empty",
    )
    if "therapist" in codebook.ids:
        col = codebook.ids["therapist"]
        ids["therapist_id"] = _as_id(frame[col])
        acc.problems.add(
            ids["therapist_id"].isna(), rows, col, frame[col], "missing_id", "therapist ID is empty"
        )
    else:
        ids["therapist_id"] = pd.Series(pd.NA, index=frame.index, dtype="string")
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
        number = pd.to_numeric(_as_id(frame[col]), errors="coerce")
        bad = number.isna() | (number < 1) | (number != np.round(number))
        acc.problems.add(
            bad, rows, col, frame[col], "invalid_session", "session must be a positive whole number"
        )
        ids["session"] = number.where(~bad).astype("Int64")
    for name, col in codebook.group_columns.items():
        ids[name] = _as_id(frame[col])
    return ids


def _covariates(
    codebook: Codebook, frame: pd.DataFrame, rows: pd.Series, acc: _Columns
) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for cov in codebook.covariates:
        if cov.type == "categorical":
            cells = classify(frame[cov.column], codebook.missing_codes)
            _count_codes(acc.codes, cells)
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
                )
                codes = codes.map(cov.values, na_action="ignore").where(~unknown).astype("string")
            out[cov.name] = codes
            continue
        cells = classify(
            frame[cov.column], codebook.missing_codes, codebook.read.get("decimal", ".")
        )
        _count_codes(acc.codes, cells)
        acc.problems.add(
            cells.non_numeric,
            rows,
            cov.column,
            frame[cov.column],
            "covariate_invalid",
            f"covariate {cov.name} is not a number",
        )
        lo = -np.inf if cov.min is None else cov.min
        hi = np.inf if cov.max is None else cov.max
        bad = cells.value.notna() & ((cells.value < lo) | (cells.value > hi))
        acc.problems.add(
            bad,
            rows,
            cov.column,
            frame[cov.column],
            "covariate_invalid",
            f"covariate {cov.name} outside {lo:g}-{hi:g}",
        )
        out[cov.name] = cells.value.where(~bad)
    return out


def _records_long(codebook: Codebook, frame: pd.DataFrame, rows: pd.Series, acc: _Columns):
    ids = _ids(codebook, frame, rows, acc)
    items = pd.DataFrame(index=frame.index)
    for item in codebook.instrument.items:
        col = codebook.item_column(item)
        items[item] = _item_cells(codebook, frame[col], col, rows, acc)
    outcome_rows = []
    for outcome in codebook.outcomes:
        col = outcome.column
        value = _outcome_cells(codebook, frame[col], col, outcome, rows, acc)
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
    return records, outcome_rows


def _records_wide(codebook: Codebook, frame: pd.DataFrame, rows: pd.Series, acc: _Columns):
    ids = _ids(codebook, frame, rows, acc)
    per_session, outcome_rows = [], []
    for session in codebook.sessions:
        items = pd.DataFrame(index=frame.index)
        for item in codebook.instrument.items:
            col = codebook.item_column(item, session)
            items[item] = _item_cells(codebook, frame[col], col, rows, acc)
        answered = items.notna().any(axis=1)
        for outcome in codebook.outcomes:
            if outcome.timepoint is not None:
                continue
            col = codebook.outcome_column(outcome, session)
            value = _outcome_cells(codebook, frame[col], col, outcome, rows, acc)
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
    for outcome in codebook.outcomes:
        if outcome.timepoint is None:
            continue
        value = _outcome_cells(codebook, frame[outcome.column], outcome.column, outcome, rows, acc)
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
    return records, outcome_rows


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


def _ingest_items(codebook: Codebook, frame: pd.DataFrame, acc: _Columns, warnings: list[str]):
    rows = pd.Series(np.arange(1, len(frame) + 1), index=frame.index, dtype="int64")
    build = _records_long if codebook.layout == "long" else _records_wide
    records, outcome_parts = build(codebook, frame, rows, acc)
    covs = _covariates(codebook, frame, rows, acc)
    flagged = set(acc.problems.table()["row"].astype(int))
    clean = records[~records["source_row"].isin(flagged)]
    items = list(codebook.instrument.items)
    compare = ["therapist_id", *codebook.groups, *items]
    if codebook.layout == "long":
        outcome_cols = {}
        for part in outcome_parts:
            if (part["timepoint"] == "session").all():
                outcome_cols[f"__{part['measure'].iloc[0]}"] = part["value"]
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
    flagged = set(acc.problems.table()["row"].astype(int))
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
    return tidy, outcomes.reset_index(drop=True), patients, len(frame)


# --------------------------------------------------------------------------- effects datasets


def _ingest_effects(codebook: Codebook, frame: pd.DataFrame, acc: _Columns):
    rows = pd.Series(np.arange(1, len(frame) + 1), index=frame.index, dtype="int64")
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
    decimal = codebook.read.get("decimal", ".")
    if "r" in spec:
        r = classify(frame[spec["r"]], codebook.missing_codes, decimal)
        bad_r = r.value.isna() | (r.value <= -1) | (r.value >= 1)
        acc.problems.add(
            bad_r,
            rows,
            spec["r"],
            frame[spec["r"]],
            "invalid_r",
            "a correlation strictly between -1 and 1 is needed",
        )
        n = classify(frame[spec["n"]], codebook.missing_codes, decimal)
        bad_n = n.value.isna() | (n.value < 4) | (n.value != np.round(n.value))
        acc.problems.add(
            bad_n,
            rows,
            spec["n"],
            frame[spec["n"]],
            "invalid_n",
            "sample size must be a whole number of at least 4 (Fisher z needs n > 3)",
        )
        table = pd.DataFrame({"study": study, "r": r.value, "n": n.value.where(~bad_n)})
        keys = ["study", "r", "n"]
    else:
        yi = classify(frame[spec["yi"]], codebook.missing_codes, decimal)
        acc.problems.add(
            yi.value.isna() | ~np.isfinite(yi.value.astype(float)),
            rows,
            spec["yi"],
            frame[spec["yi"]],
            "invalid_yi",
            "an effect size (a finite number) is needed",
        )
        vi = classify(frame[spec["vi"]], codebook.missing_codes, decimal)
        acc.problems.add(
            vi.value.isna() | ~(vi.value.astype(float) > 0),
            rows,
            spec["vi"],
            frame[spec["vi"]],
            "invalid_vi",
            "a sampling variance above 0 is needed",
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
    flagged = set(acc.problems.table()["row"].astype(int))
    clean = table[~table["source_row"].isin(flagged)]
    id_cols = ["study", spec["cluster"]] if "cluster" in spec else ["study"]
    _duplicates(clean, keys, id_cols, rows, acc)
    flagged = set(acc.problems.table()["row"].astype(int))
    kept = table[~table["source_row"].isin(flagged)].reset_index(drop=True)
    if "n" in kept:
        kept["n"] = kept["n"].astype("int64")
    else:
        kept[["yi", "vi"]] = kept[["yi", "vi"]].astype(float)
    return kept, len(frame)


# --------------------------------------------------------------------------- entry point


def ingest(codebook: Codebook | str | Path, strict: bool | None = None) -> IngestResult:
    """Apply a codebook to its raw export.

    Parameters
    ----------
    codebook
        A :class:`~alliance.codebook.Codebook` or the path of a codebook YAML.
    strict
        Stop at the first quarantined row (default: the codebook's ``strict``).

    Returns
    -------
    IngestResult
        Tidy tables, the quarantine (one line per problem) and the report, whose counts
        reconcile: ``rows_in == rows_kept + rows_quarantined``.

    Raises
    ------
    IngestError
        If the file cannot be read as its format, a named column is absent, or (strict) a row
        would be quarantined; the message names the codebook, the key, the row and the column.
    """
    if not isinstance(codebook, Codebook):
        codebook = load_codebook(codebook)
    strict = codebook.strict if strict is None else strict
    frame, declared = read_raw(codebook)
    unused = check_columns(codebook, frame)
    codes = tuple(codebook.missing_codes) + tuple(
        c for c in declared if c not in codebook.missing_codes
    )
    if codes != codebook.missing_codes:
        codebook = _with_codes(codebook, codes)
    acc = _Columns(problems=ProblemLog())
    warnings: list[str] = []
    if declared:
        warnings.append(f"missing values declared in the file are treated as missing: {declared}")
    if unused:
        warnings.append(f"columns not named in the codebook are ignored: {unused}")
    if codebook.kind == "effects":
        effects, rows_in = _ingest_effects(codebook, frame, acc)
        items = outcomes = patients = pd.DataFrame()
    else:
        items, outcomes, patients, rows_in = _ingest_items(codebook, frame, acc, warnings)
        effects = None
    quarantine = acc.problems.table()
    if strict and len(quarantine):
        first = quarantine.iloc[0]
        raise IngestError(
            f"{codebook.path}: strict ingest of {codebook.file.name} stopped at "
            f"row {first['row']}, "
            f"column {first['column']!r}, value {first['value']!r}: {first['reason']} "
            f"({first['detail']}); {quarantine['row'].nunique()} rows would be quarantined"
        )
    n_quarantined = int(quarantine["row"].nunique())
    reasons = quarantine.drop_duplicates(["row", "reason"])["reason"].value_counts()
    kept_rows = rows_in - n_quarantined
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
        "rows_kept": int(kept_rows),
        "rows_quarantined": n_quarantined,
        "problems": int(len(quarantine)),
        "reasons": {str(k): int(v) for k, v in sorted(reasons.items())},
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
        }
        item_cells = items[list(codebook.instrument.items)]
        report["item_cells"] = int(item_cells.size)
        report["item_nonresponse"] = int(item_cells.isna().sum().sum())
    else:
        report["tidy"] = {"studies": int(len(effects))}
    if report["rows_in"] != report["rows_kept"] + report["rows_quarantined"]:  # pragma: no cover
        raise RuntimeError(f"ingest accounting does not reconcile: {report}")
    return IngestResult(items, outcomes, patients, effects, quarantine, report)


def _with_codes(codebook: Codebook, codes: tuple[Any, ...]) -> Codebook:
    from dataclasses import replace

    return replace(codebook, missing_codes=codes)


def ingest_to(codebook_path: str | Path, out_dir: str | Path, strict: bool | None = None) -> dict:
    """Ingest a codebook's export and write the results into ``out_dir``; return the report."""
    result = ingest(codebook_path, strict=strict)
    result.write(out_dir)
    return result.report
