"""The patient x wave panel: a long table or a dataset's tidy tables, checked and shaped.

:func:`read_long_table` and :func:`long_panel` read and check a long table (one row per
patient x wave, ``alliance riclpm``); :func:`session_panel` takes the alliance score and the
outcome per session from a dataset's tidy tables (rule ``panel``); :func:`wide_panel` makes one
row per patient with ``x{wave}`` and ``y{wave}`` (missing waves NaN, for FIML) and
:func:`auto_waves` chooses the sessions. Patient identifiers shape the panel only: the wide
panel and the counts hold none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.sem.panel import MIN_WAVES

__all__ = [
    "PANEL_DEFAULTS",
    "PanelSkipped",
    "auto_waves",
    "long_panel",
    "read_long_table",
    "session_panel",
    "wide_panel",
]

#: Settings of rule ``panel`` (config ``panel.settings``), with their defaults.
PANEL_DEFAULTS: dict[str, Any] = {
    "estimator": "MLR",
    "constrain_lags": True,
    "detrend": False,
    "rater": "client",
    "score": "total_mean",
    "measure": "phq9",
    "waves": None,
    "min_patients": 30,
    "max_waves": None,
}


class PanelSkipped(ValueError):
    """The data cannot support the RI-CLPM (too few waves or patients): skipped with a reason."""


# --------------------------------------------------------------------------- reading


def read_long_table(path: str | Path) -> tuple[pd.DataFrame, Callable[[int], str]]:
    """A long table (CSV or Parquet) and how to name its rows in messages.

    CSV cells are read as text (the messages quote them as written); data row ``i`` of a CSV
    is ``line i + 2`` (line 1 is the header), of a Parquet file ``row i + 1``.

    Raises
    ------
    OSError
        If the file does not exist.
    ValueError
        For another format than ``.csv``/``.parquet``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(2, "No such file", str(p))
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(p, dtype=str), lambda i: f"line {i + 2}"
    if suffix == ".parquet":
        return pd.read_parquet(p), lambda i: f"row {i + 1}"
    raise ValueError(f"{p}: the panel data must be a .csv or .parquet file, got {suffix!r}")


def _numbers(
    frame: pd.DataFrame, column: str, source: str, where: Callable[[int], str], what: str
) -> np.ndarray:
    """A column as floats; the first cell that is not a (finite) number stops with its place."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = (raw.notna().to_numpy() & ~np.isfinite(values)) | np.isinf(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{source}: {where(i)}, column {column!r}: {what} must be a number, got {raw.iloc[i]!r}"
        )
    return values


def long_panel(
    frame: pd.DataFrame,
    *,
    id_col: str,
    time_col: str,
    x_col: str,
    y_col: str,
    source: str = "data",
    where: Callable[[int], str] = lambda i: f"row {i + 1}",
) -> pd.DataFrame:
    """The checked long panel: ``id``, ``wave`` (whole numbers), ``x``, ``y`` (NaN = missing).

    Parameters
    ----------
    frame
        One row per patient x wave.
    id_col, time_col, x_col, y_col
        The patient, wave (session), x (e.g. alliance) and y (e.g. symptoms) columns.
    source, where
        The file name and how to name a row (see :func:`read_long_table`), for messages.

    Raises
    ------
    ValueError
        Naming the file, line, column and value: a column not in the table, the same column
        given twice, a missing patient id, a wave that is not a whole number >= 0, a score
        that is not a finite number, or a patient with two rows for one wave.
    """
    names = {"--id": id_col, "--time": time_col, "--x": x_col, "--y": y_col}
    for option, col in names.items():
        if col not in frame.columns:
            raise ValueError(
                f"{source}: no column {col!r} ({option}); columns: {list(map(str, frame.columns))}"
            )
    if len(set(names.values())) < len(names):
        raise ValueError(f"{source}: the columns must differ, got {names}")
    ids = frame[id_col]
    blank = ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy()
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        raise ValueError(f"{source}: {where(i)}, column {id_col!r}: missing patient id")
    time = _numbers(frame, time_col, source, where, "a wave")
    bad = ~np.isfinite(time) | (time < 0) | (np.floor(np.nan_to_num(time)) != time)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{source}: {where(i)}, column {time_col!r}: a wave must be a whole number >= 0, "
            f"got {frame[time_col].iloc[i]!r}"
        )
    out = pd.DataFrame(
        {
            "id": ids.astype(str).str.strip().to_numpy(),
            "wave": time.astype(int),
            "x": _numbers(frame, x_col, source, where, "a score"),
            "y": _numbers(frame, y_col, source, where, "a score"),
        }
    )
    dup = out.duplicated(["id", "wave"], keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        first = rows[0]
        same = rows[
            (out["id"].to_numpy()[rows] == out["id"].iloc[first])
            & (out["wave"].to_numpy()[rows] == out["wave"].iloc[first])
        ]
        raise ValueError(
            f"{source}: {where(int(same[1]))} repeats the patient and wave of "
            f"{where(int(same[0]))} (column {time_col!r} = {out['wave'].iloc[first]}): one row "
            "per patient and wave"
        )
    return out


def wide_panel(
    long: pd.DataFrame, waves: Sequence[int] | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per patient with ``x{wave}``, ``y{wave}`` (NaN where missing), and the counts.

    Parameters
    ----------
    long
        From :func:`long_panel` (or with columns ``id``, ``wave``, ``x``, ``y``).
    waves
        The waves to use (default: every wave in the data, in order).

    Returns
    -------
    (DataFrame, dict)
        The panel (a plain row index: no identifiers) and ``info``: ``waves``, ``patients``
        (with at least one score in the waves), ``patients_without_scores`` (in the table but
        without a score in the waves: left out), ``rows`` used, ``rows_outside_waves`` and
        ``observed`` (patients with x and with y, per wave).

    Raises
    ------
    ValueError
        For fewer than three waves, or a wave without any x or any y score.
    """
    ws = sorted(int(w) for w in long["wave"].unique()) if waves is None else [int(w) for w in waves]
    if len(ws) < MIN_WAVES:
        raise ValueError(f"an RI-CLPM needs at least {MIN_WAVES} waves, got {ws}")
    inside = long["wave"].isin(ws)
    rows = long[inside]
    observed = {}
    for w in ws:
        at = rows[rows["wave"] == w]
        observed[w] = {"x": int(at["x"].notna().sum()), "y": int(at["y"].notna().sum())}
        empty = [v for v in ("x", "y") if observed[w][v] == 0]
        if empty:
            missing = " and no ".join(empty)
            raise ValueError(f"wave {w} has no {missing} scores: leave it out of the waves")
    wide = pd.DataFrame(index=pd.Index(sorted(long["id"].unique()), name="id"))
    for v in ("x", "y"):
        for w in ws:  # one row per patient and wave (long_panel, session_panel)
            wide[f"{v}{w}"] = rows.loc[rows["wave"] == w].set_index("id")[v]
    any_score = wide.notna().any(axis=1)
    info = {
        "waves": ws,
        "patients": int(any_score.sum()),
        "patients_without_scores": int((~any_score).sum()),
        "rows": int(inside.sum()),
        "rows_outside_waves": int((~inside).sum()),
        "observed": {str(w): observed[w] for w in ws},
    }
    return wide[any_score].reset_index(drop=True), info


def session_panel(
    tables: Mapping[str, pd.DataFrame],
    rater: str = "client",
    score: str = "total_mean",
    measure: str = "phq9",
) -> pd.DataFrame:
    """The long panel of a dataset: the rater's alliance score and the measure per session.

    ``x`` is the ``score`` column of the rater's rows of ``scores`` (docs/data-model.md), ``y``
    the value of ``measure`` at ``timepoint == "session"`` in ``outcomes``; repeated rows of a
    patient and session are averaged; the two are joined on patient and session (outer join:
    a session with one measure keeps it, the other is missing).

    Raises
    ------
    PanelSkipped
        When the tables hold no rows of the rater or of the measure per session.
    ValueError
        When ``score`` is not a column of ``scores``.
    """
    scores, outcomes = tables["scores"], tables["outcomes"]
    if score not in scores.columns:
        raise ValueError(f"score column not in the scores table, got {score!r}")
    a = scores[scores["rater"].astype(str) == rater]
    o = outcomes[
        (outcomes["measure"].astype(str) == measure)
        & (outcomes["timepoint"].astype(str).str.lower() == "session")
    ]
    if a.empty:
        raise PanelSkipped(f"no {rater} alliance scores")
    if o.empty:
        raise PanelSkipped(f"no {measure} scores per session")

    def per_session(frame: pd.DataFrame, column: str, name: str) -> pd.DataFrame:
        out = pd.DataFrame(
            {
                "id": frame["patient_id"].astype(str).to_numpy(),
                "wave": pd.to_numeric(frame["session"]).to_numpy(dtype=float, na_value=np.nan),
                name: pd.to_numeric(frame[column]).to_numpy(dtype=float, na_value=np.nan),
            }
        ).dropna()
        out["wave"] = out["wave"].astype(int)
        return out.groupby(["id", "wave"], as_index=False)[name].mean()

    x = per_session(a, score, "x")
    y = per_session(o, "value", "y")
    return x.merge(y, on=["id", "wave"], how="outer").sort_values(["id", "wave"])


def auto_waves(
    long: pd.DataFrame, min_patients: int = 30, max_waves: int | None = None
) -> tuple[list[int], dict[str, int]]:
    """The consecutive sessions from the first on where enough patients have both measures.

    Returns
    -------
    (list, dict)
        The waves (the longest run of consecutive sessions starting at the first session
        with at least ``min_patients`` patients with both measures, at most ``max_waves``),
        and the number of such patients per session.
    """
    both = long.dropna(subset=["x", "y"]).groupby("wave")["id"].nunique()
    counts = {str(int(w)): int(n) for w, n in both.items()}
    ok = sorted(int(w) for w, n in both.items() if n >= min_patients)
    waves: list[int] = []
    for w in ok:
        if waves and w != waves[-1] + 1:
            break
        waves.append(w)
    if max_waves is not None:
        waves = waves[: int(max_waves)]
    return waves, counts
