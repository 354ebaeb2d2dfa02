"""Longitudinal measurement invariance: from a long table or an ingested dataset to the ladder.

``alliance invariance-long`` (:func:`run_invariance_long`) reads a long table (a row per
patient x wave) and a model file; rule ``cfa_invariance_long`` (:func:`run_dataset`) reads a
dataset's ingested items (one rater's rows per session) and the configured model. Both reshape
to one row per patient with the items suffixed by wave (:func:`wide_items`) and fit
:func:`alliance.sem.longitudinal.longitudinal_ladder`. Patient identifiers shape the table
only: nothing written holds one.

May import: the library (this is a stage entry: the CLI and the workflow's script call it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.jsonio import write_json
from alliance.panel.data import _numbers, read_long_table
from alliance.sem.longitudinal import longitudinal_ladder, wave_name, wave_structure

__all__ = ["LongSkipped", "run_dataset", "run_invariance_long", "wide_items", "write_table"]


class LongSkipped(ValueError):
    """The data cannot support the ladder (a wave absent): skipped with its reason."""


def _row_where(i: int) -> str:
    return f"row {i + 1}"


def wide_items(
    frame: pd.DataFrame,
    *,
    id_col: str,
    time_col: str,
    items: Sequence[str],
    waves: Sequence[int],
    source: str = "data",
    where: Callable[[int], str] = _row_where,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per patient with ``item_wave`` columns (NaN where a wave or answer is missing).

    Parameters
    ----------
    frame
        A row per patient x wave (other waves' rows are left out).
    id_col, time_col
        The patient and wave (session) columns.
    items
        The model's items.
    waves
        The waves to use (at least two).
    source, where
        The file name and how to name a row in messages (see
        :func:`alliance.panel.data.read_long_table`).

    Returns
    -------
    (DataFrame, dict)
        The wide table (a plain row index: no identifiers) and its counts: ``waves``,
        ``patients``, ``rows``, ``rows_outside_waves`` and ``patients_per_wave``.

    Raises
    ------
    ValueError
        Naming the file, line, column and value: a column not in the table, a missing patient
        id, a wave that is not a whole number, an item answer that is not a number, two rows
        for one patient and wave. :class:`LongSkipped` (a ``ValueError``) when a wave has no
        rows.
    """
    ws = [int(w) for w in waves]
    if len(ws) < 2 or len(set(ws)) != len(ws):
        raise ValueError(f"--waves: two or more distinct waves, got {ws}")
    for option, col in (("--id", id_col), ("--time", time_col)):
        if col not in frame.columns:
            raise ValueError(
                f"{source}: no column {col!r} ({option}); columns: {list(map(str, frame.columns))}"
            )
    absent = [i for i in items if i not in frame.columns]
    if absent:
        raise ValueError(f"{source}: the model's items {absent} are not columns of the table")
    ids = frame[id_col]
    blank = ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy()
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        raise ValueError(f"{source}: {where(i)}, column {id_col!r}: missing patient id")
    time = pd.to_numeric(frame[time_col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(time) | (np.floor(np.nan_to_num(time)) != time)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{source}: {where(i)}, column {time_col!r}: a wave must be a whole number, "
            f"got {frame[time_col].iloc[i]!r}"
        )
    inside = np.isin(time, ws)
    out = pd.DataFrame({"id": ids.astype(str).str.strip().to_numpy()[inside],
                        "wave": time[inside].astype(int)})  # fmt: skip
    positions = np.flatnonzero(inside)
    for item in items:  # every row's answers are checked, also outside the waves
        out[item] = _numbers(frame, item, source, where, "an answer")[inside]
    dup = out.duplicated(["id", "wave"], keep="first").to_numpy()
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise ValueError(
            f"{source}: {where(int(positions[k]))} repeats a patient's wave (column "
            f"{time_col!r} = {out['wave'].iloc[k]}): one row per patient and wave"
        )
    per_wave = {str(w): int((out["wave"] == w).sum()) for w in ws}
    empty = [w for w in ws if per_wave[str(w)] == 0]
    if empty:
        present = sorted(int(w) for w in np.unique(time[np.isfinite(time)]))
        raise LongSkipped(f"{source}: no rows at waves {empty} (column {time_col!r} has {present})")
    wide = pd.DataFrame(index=pd.Index(sorted(out["id"].unique()), name="id"))
    for w in ws:
        at = out[out["wave"] == w].set_index("id")
        for item in items:
            wide[wave_name(item, w)] = at[item]
    wide = wide.reset_index(drop=True)
    info = {
        "waves": ws,
        "patients": int(len(wide)),
        "rows": int(inside.sum()),
        "rows_outside_waves": int((~inside).sum()),
        "patients_per_wave": per_wave,
    }
    return wide, info


def run_invariance_long(
    data: str | Path,
    model: str | Path,
    *,
    id_col: str,
    time_col: str,
    waves: Sequence[int],
    estimator: str = "ML",
    ordered: bool = False,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """``alliance invariance-long``: read the long table and the model, fit, write the JSON.

    Returns
    -------
    dict
        :func:`~alliance.sem.longitudinal.longitudinal_ladder`'s result with ``data`` (the file
        name, columns and counts of :func:`wide_items`).

    Raises
    ------
    ValueError, OSError
        For bad input (naming file, line, column and value).
    """
    model_path = Path(model)
    if not model_path.is_file():
        raise FileNotFoundError(2, "No such file (--model)", str(model_path))
    syntax = model_path.read_text()
    est = str(estimator).upper()
    if ordered and est != "WLSMV":
        raise ValueError(f"--ordered needs --estimator WLSMV, got {estimator!r}")
    try:
        items = wave_structure(syntax)["items"]
    except ValueError as exc:
        raise ValueError(f"{model_path.name}: {exc}") from None
    frame, where = read_long_table(data)
    source = Path(data).name
    wide, info = wide_items(frame, id_col=id_col, time_col=time_col, items=items, waves=waves,
                            source=source, where=where)  # fmt: skip
    result = longitudinal_ladder(wide, syntax, info["waves"], est, ordered=ordered)
    result["data"] = {"source": source, "id": id_col, "time": time_col, **info}
    if out is not None:
        write_json(out, result)
    return result


def run_dataset(
    ingest_dir: str | Path,
    model: str,
    waves: Sequence[int],
    estimator: str,
    rater: str = "client",
    dataset_name: str | None = None,
) -> dict[str, Any]:
    """Rule ``cfa_invariance_long``: one dataset's ladder over sessions, or why it was skipped.

    The rater's item rows at the configured sessions (waves) of the ingested items table;
    ``model`` is a built-in model name or a .lav file (:func:`alliance.cfa.stage.model_syntax`).
    WLSMV treats the items as ordered (delta parameterization, pairwise), ML/MLR as continuous
    (FIML). A dataset without rows at one of the waves, or whose ladder cannot be fitted, is
    skipped with its reason (``state: skipped``, ``reason``); it never stops the run.
    """
    from alliance.cfa.stage import model_syntax
    from alliance.data.tidy import read_ingested

    name = dataset_name or Path(ingest_dir).parent.name
    head: dict[str, Any] = {"dataset": name, "model_name": model, "estimator": estimator,
                            "rater": rater, "waves": [int(w) for w in waves]}  # fmt: skip
    try:
        items, instrument, _ = read_ingested(ingest_dir)
        syntax, model_name = model_syntax(model, instrument)
        head["model_name"] = model_name
        rows = items[items["rater"].astype(str) == rater] if "rater" in items else items
        wanted = wave_structure(syntax)["items"]
        wide, info = wide_items(rows.reset_index(drop=True), id_col="patient_id",
                                time_col="session", items=wanted, waves=waves,
                                source=f"{name} items ({rater})")  # fmt: skip
        ordered = estimator.upper() == "WLSMV"
        result = longitudinal_ladder(wide, syntax, info["waves"], estimator, ordered=ordered)
    except ValueError as exc:  # LongSkipped and any ladder that cannot be fitted
        return {**head, "state": "skipped", "reason": str(exc)}
    return {**head, "state": "fitted", **result, "data": info}


def write_table(result: dict[str, Any], path_stem: str | Path) -> None:
    """The ladder's table (CSV + Markdown; :func:`alliance.cfa.tables.longitudinal_table`)."""
    from alliance.cfa.tables import longitudinal_table
    from alliance.tables import write_csv
    from alliance.tables import write_table as write

    if result.get("state") == "skipped":
        Path(path_stem).parent.mkdir(parents=True, exist_ok=True)
        write_csv(pd.DataFrame([{"Step": "all", "Skipped": result.get("reason")}]),
                  Path(f"{path_stem}.csv"), index=False)  # fmt: skip
        Path(f"{path_stem}.md").write_text(f"Skipped: {result.get('reason')}\n")
        return
    write(longitudinal_table(result), path_stem)
