"""The panel stage: from a long table or a dataset's tidy tables to the fitted RI-CLPM on disk.

``alliance riclpm`` (:func:`run_riclpm`) reads a long table, rule ``panel`` (:func:`run_panel`)
a dataset's tidy tables; both shape the panel (:mod:`alliance.panel.data`), fit it with
:func:`alliance.sem.panel.fit_riclpm` and write the JSON (rule ``panel`` also the table of
effects and the figure). Rule ``panel_bayes`` (:func:`run_panel_bayes`) fits the Bayesian
dynamic panel model (:mod:`alliance.bayes.panel`) to the same session panel. Nothing written
holds a patient identifier.

May import: the library (a stage entry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.jsonio import write_json
from alliance.panel.data import (
    PANEL_DEFAULTS,
    PanelSkipped,
    auto_waves,
    long_panel,
    read_long_table,
    session_panel,
    wide_panel,
)
from alliance.sem.panel import MIN_WAVES, fit_riclpm

__all__ = ["PANEL_BAYES_MEANINGS", "run_panel", "run_panel_bayes", "run_riclpm"]


def run_riclpm(
    data: str | Path,
    *,
    x: str,
    y: str,
    id_col: str,
    time_col: str,
    waves: Sequence[int] | None = None,
    estimator: str = "ML",
    missing: str = "fiml",
    constrain_lags: bool = False,
    detrend: bool = False,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """``alliance riclpm``: read a long table, fit the RI-CLPM, write the JSON.

    Returns
    -------
    dict
        :func:`alliance.sem.panel.fit_riclpm`'s result plus ``data`` (the file name, the
        columns, the counts of :func:`wide_panel`).

    Raises
    ------
    ValueError, OSError
        For bad input (naming file, line, column and value).
    """
    frame, where = read_long_table(data)
    source = Path(data).name
    long = long_panel(
        frame, id_col=id_col, time_col=time_col, x_col=x, y_col=y, source=source, where=where
    )
    wide, info = wide_panel(long, waves)
    result = fit_riclpm(
        wide,
        info["waves"],
        estimator,
        missing,
        constrain_lags=constrain_lags,
        detrend=detrend,
    )
    result["data"] = {"source": source, "x": x, "y": y, "id": id_col, "time": time_col, **info}
    if out is not None:
        write_json(out, result)
    return result


def _settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = {**PANEL_DEFAULTS, **dict(settings or {})}
    unknown = sorted(set(merged) - set(PANEL_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown panel settings {unknown}; known: {sorted(PANEL_DEFAULTS)}")
    return merged


def run_panel(
    dataset: str | Path | Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    settings: Mapping[str, Any] | None = None,
    dataset_name: str | None = None,
) -> dict[str, Any]:
    """Rule ``panel``: the RI-CLPM of one dataset, or the reason it was skipped.

    Writes ``riclpm.json`` (the fit with ``state: fitted``, or ``state: not_usable`` or
    ``skipped`` with the ``reason``),
    ``effects.csv`` and ``effects.md`` (:func:`alliance.panel.tables.effects_table`) and
    ``lagged_paths.png``/``.pdf`` (:func:`alliance.panel.plots.lagged_paths_figure`, or a
    figure stating why nothing was estimated) into ``out_dir``. A dataset without at least
    three consecutive sessions in which ``min_patients`` patients have both measures, or
    whose model cannot be estimated, is skipped with its reason; it never stops the run.

    Parameters
    ----------
    dataset
        A dataset's results folder (``ingest/`` and ``scores/``), or its tables (see
        :func:`alliance.bayes.data.load_tables`).
    out_dir
        ``results/{dataset}/panel``.
    settings
        :data:`PANEL_DEFAULTS` keys: ``estimator`` (ML/MLR), ``constrain_lags`` (the
        reported model), ``detrend``, ``rater``, ``score``, ``measure``, ``waves`` (a list,
        or None: :func:`auto_waves` with ``min_patients`` and ``max_waves``).
    dataset_name
        For the JSON (default: the folder's name).

    Returns
    -------
    dict
        What ``riclpm.json`` holds.
    """
    from alliance.bayes.data import load_tables
    from alliance.panel.plots import lagged_paths_figure, not_estimated_figure
    from alliance.panel.tables import write_effects

    s = _settings(settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = dataset_name or (Path(dataset).name if isinstance(dataset, str | Path) else "data")
    head: dict[str, Any] = {"dataset": name, "settings": s}
    try:
        tables = load_tables(dataset)
        long = session_panel(tables, s["rater"], s["score"], s["measure"])
        if s["waves"] is None:
            waves, counts = auto_waves(long, int(s["min_patients"]), s["max_waves"])
            head["patients_with_both_per_session"] = counts
            if len(waves) < MIN_WAVES:
                raise PanelSkipped(
                    f"fewer than {MIN_WAVES} consecutive sessions with at least "
                    f"{s['min_patients']} patients with both {s['rater']} {s['score']} and "
                    f"{s['measure']} (patients per session: {counts or 'none'})"
                )
        else:
            waves = [int(w) for w in s["waves"]]
        wide, info = wide_panel(long, waves)
        result = fit_riclpm(
            wide,
            waves,
            s["estimator"],
            "fiml",
            constrain_lags=bool(s["constrain_lags"]),
            detrend=bool(s["detrend"]),
        )
    except ValueError as err:  # PanelSkipped, or data the model cannot be fitted to
        result = {**head, "state": "skipped", "reason": str(err)}
        write_json(out / "riclpm.json", result)
        write_effects(result, out / "effects")
        not_estimated_figure(name, str(err), out / "lagged_paths")
        return result
    result = {**head, **result}
    result["data"] = {"x": f"alliance ({s['rater']} {s['score']})", "y": s["measure"], **info}
    # SDs over all patient-sessions: an effect times x_sd is per SD of the session alliance,
    # the unit of the session model (alliance.bayes.data.session_data)
    result["scales"] = {v: float(long[v[0]].std(ddof=1)) for v in ("x_sd", "y_sd")}
    result["state"] = "fitted" if result["usable"] else "not_usable"
    if not result["usable"]:
        result["reason"] = "; ".join(result["status"]["issues"])
    write_json(out / "riclpm.json", result)
    write_effects(result, out / "effects")
    lagged_paths_figure(result, out / "lagged_paths", title=name)
    return result


#: What each reported parameter of the Bayesian dynamic panel model is.
PANEL_BAYES_MEANINGS = {
    "phi_xx": "alliance -> next alliance (autoregression, within patient)",
    "phi_xy": "symptoms -> next alliance (cross-lagged, per SD)",
    "phi_yx": "alliance -> next symptoms (cross-lagged, per SD of alliance, outcome SD units)",
    "phi_yy": "symptoms -> next symptoms (autoregression, within patient)",
    "sigma_x": "SD of the alliance innovations",
    "sigma_y": "SD of the symptom innovations",
    "rho_e": "correlation of the innovations (same session)",
    "b_cross_points": "alliance -> next symptoms in outcome points per SD of the session alliance",
}


def run_panel_bayes(
    dataset: str | Path | Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    settings: Mapping[str, Any] | None = None,
    sampler: Mapping[str, Any] | None = None,
    trend: str = "random",
    dataset_name: str | None = None,
) -> dict[str, Any]:
    """Rule ``panel_bayes``: the Bayesian dynamic panel model of one dataset, or why not.

    The session panel is the RI-CLPM's (:func:`run_panel`'s ``rater``, ``score`` and
    ``measure``), but every session of every patient enters: missed sessions are integrated
    out (:func:`alliance.bayes.panel.fit_dynamic_panel`), so no wave selection is needed.
    Writes ``summary.json`` (status and BARG diagnostics, effects with 90% intervals, counts,
    scales, timing; ``skipped`` with the reason when the data cannot support the model) and
    ``effects.csv``/``.md`` into ``out_dir``; it never stops the run.

    Parameters
    ----------
    dataset
        A dataset's results folder (``ingest/`` and ``scores/``), or its tables.
    out_dir
        ``results/{dataset}/panel/bayes``.
    settings
        :data:`alliance.panel.data.PANEL_DEFAULTS` keys (only ``rater``, ``score`` and
        ``measure`` are used).
    sampler
        :func:`alliance.bayes.sampling.sample` settings.
    trend
        ``"none"``, ``"fixed"`` or ``"random"`` (each patient's own symptom slope).
    dataset_name
        For the JSON (default: the folder's name).

    Returns
    -------
    dict
        What ``summary.json`` holds.

    References
    ----------
    Asparouhov, T., Hamaker, E. L., & Muthen, B. (2018). Dynamic structural equation models.
    Structural Equation Modeling, 25(3), 359-388.
    """
    from alliance.bayes.data import load_tables
    from alliance.bayes.panel import TRENDS, fit_dynamic_panel
    from alliance.tables import write_csv_and_markdown

    if trend not in TRENDS:
        raise ValueError(f"panel.bayes.trend must be one of {TRENDS}, got {trend!r}")
    s = _settings(settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = dataset_name or (Path(dataset).name if isinstance(dataset, str | Path) else "data")
    head: dict[str, Any] = {
        "dataset": name,
        "model": "Bayesian dynamic panel (latent-mean centering, VAR(1) on the session grid)",
        "data": {"x": f"alliance ({s['rater']} {s['score']})", "y": s["measure"]},
        "trend": trend,
    }
    try:
        long = session_panel(load_tables(dataset), s["rater"], s["score"], s["measure"])
        fit = fit_dynamic_panel(long, sampler, trend=trend)
    except PanelSkipped as err:
        fit = {"status": "skipped", "reason": str(err)}
    fit.pop("idata", None)
    result = {**head, **fit}
    rows = [
        {"parameter": key, "meaning": PANEL_BAYES_MEANINGS[key], **values}
        for key, values in (fit.get("effects") or {}).items()
    ]
    columns = ["parameter", "meaning", "mean", "sd", "eti90_low", "eti90_high"]
    write_csv_and_markdown(
        pd.DataFrame(rows, columns=columns),
        out / "effects.csv",
        title=f"Bayesian dynamic panel model: {name}",
        note=(
            f"status {result['status']}"
            + (f" ({result['reason']})" if result.get("reason") else "")
            + "; posterior mean, SD and 90% equal-tailed interval; within-patient effects of "
            "one session on the next (latent-mean centering)."
        ),
    )
    write_json(out / "summary.json", result)
    return result
