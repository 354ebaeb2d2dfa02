"""Run the Bayesian process models of one dataset and write their outputs, skipping safely."""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.process.bayes_models import (
    PROCESS_MODELS,
    ProcessFit,
    dropout_hazard,
    growth,
    rater_outcome,
    rupture_outcome,
)

__all__ = ["OUTPUT_FILES", "run_process_bayes"]

#: Files written per model under ``{out_dir}/{model}/``.
OUTPUT_FILES = {
    "summary": "summary.csv",
    "diagnostics": "diagnostics.json",
    "effects": "effects.json",
}


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(_clean(data), indent=2, sort_keys=True, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def _summary_table(fit: ProcessFit) -> pd.DataFrame:
    from alliance.bayes.diagnostics import SUMMARY_COLUMNS, summarize

    if fit.idata is None:
        return pd.DataFrame(columns=["stage", *SUMMARY_COLUMNS])
    stages = fit.idata if isinstance(fit.idata, dict) else {fit.model: fit.idata}
    frames = [summarize(idata).assign(stage=stage) for stage, idata in stages.items()]
    table = pd.concat(frames, ignore_index=True)
    return table[["stage", *SUMMARY_COLUMNS]]


def _survival_figure(curves: pd.DataFrame, path_stem: Path) -> list[Path]:
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from alliance.plots import SINGLE_COLUMN, save, style

    with mpl.rc_context(style()):
        fig = Figure(figsize=(SINGLE_COLUMN, 2.6), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for (level, group), colour in zip(
            curves.groupby("alliance_sd"), ("#D55E00", "#000000", "#0072B2"), strict=False
        ):
            ax.step(
                group["session"],
                group["survival_mean"],
                where="post",
                color=colour,
                label=f"{level:+.0f} SD" if level else "mean",
            )
            ax.fill_between(
                group["session"],
                group["survival_eti95_low"],
                group["survival_eti95_high"],
                step="post",
                color=colour,
                alpha=0.15,
                lw=0,
            )
        ax.set_xlabel("Session")
        ax.set_ylabel("Still in treatment")
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False, title="Alliance")
    return save(fig, path_stem)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _inputs(dataset_dir: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Tables, person-period rows, rupture counts and the patient-level outcome."""
    from alliance.bayes.data import load_tables, patient_data
    from alliance.process.trajectories import person_period, planned_sessions

    tables = load_tables(dataset_dir)
    process = dataset_dir / "process"
    planned = settings.get("planned_sessions")
    planned, _ = planned_sessions(planned, tables["scores"])
    pp_path = process / "person_period.parquet"
    if pp_path.is_file():
        pp = pd.read_parquet(pp_path)
    else:
        pp = person_period(
            tables["scores"], planned, tables["outcomes"], measure=settings["measure"]
        )
    rupt_path = process / "ruptures_patients.csv"
    ruptures = pd.read_csv(rupt_path) if rupt_path.is_file() else None
    try:
        outcome = patient_data(
            tables, settings["alliance_session"], measure=settings["measure"]
        ).frame
    except ValueError as exc:
        outcome, outcome_reason = None, str(exc)
    else:
        outcome_reason = None
    vc = _read_json(process / "variance_components.json")
    return {
        "tables": tables,
        "person_period": pp,
        "ruptures": ruptures,
        "outcome": outcome,
        "outcome_reason": outcome_reason,
        "planned": planned,
        "reliability": vc.get("reliability"),
    }


SETTINGS: dict[str, Any] = {
    "alliance_session": 3,
    "measure": "phq9",
    "second_rater": "therapist",
    "planned_sessions": None,
    "dropout_alliance": "current",
    "rupture_min_patients": 3,
    "thresholds": None,
    # measured on the demo (2 cores): the growth model's slope SD, near zero, needs about
    # 8,000 draws for bulk ESS >= 400 (about 15 s with nutpie); the dropout model's therapist
    # SD, near zero with 15 therapists, gave 1 divergence at target_accept 0.9 (site_b)
    "model_samplers": {
        "growth": {"draws": 4000, "tune": 1500},
        "dropout": {"target_accept": 0.95},
    },
    "figures": True,
}


def _run_one(
    name: str, data: Mapping[str, Any], sampler: Mapping[str, Any], cfg: Mapping[str, Any]
) -> ProcessFit:
    sampler = {**sampler, **cfg["model_samplers"].get(name, {})}
    thresholds = cfg["thresholds"]
    if name == "dropout":
        return dropout_hazard(
            data["person_period"],
            sampler,
            alliance=cfg["dropout_alliance"],
            thresholds=thresholds,
        )
    if name == "growth":
        return growth(
            data["tables"]["scores"],
            data["outcome"],
            sampler,
            planned=data["planned"],
            reliability=data["reliability"],
            thresholds=thresholds,
        )
    if name == "rater_outcome":
        return rater_outcome(
            data["tables"],
            sampler,
            alliance_session=cfg["alliance_session"],
            second_rater=cfg["second_rater"],
            measure=cfg["measure"],
            thresholds=thresholds,
        )
    if data["ruptures"] is None:
        return ProcessFit(name, "skipped", reason="no ruptures_patients.csv (run process first)")
    if data["outcome"] is None:
        return ProcessFit(name, "skipped", reason=f"no outcome: {data['outcome_reason']}")
    pp = data["person_period"]
    drop = pp.groupby("patient_id", as_index=False)["dropped_out"].first() if len(pp) else None
    return rupture_outcome(
        data["ruptures"],
        data["outcome"],
        drop,
        sampler,
        min_patients=cfg["rupture_min_patients"],
        thresholds=thresholds,
    )


def run_process_bayes(
    dataset_dir: str | Path,
    out_dir: str | Path,
    sampler: Mapping[str, Any] | None = None,
    models: Sequence[str] = PROCESS_MODELS,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit the Bayesian process models of one dataset and write one folder per model.

    Writes ``{out_dir}/{model}/summary.csv`` (posterior summary of every parameter, one
    ``stage`` per fitted stage), ``diagnostics.json`` (``status``: ``pass``, ``fail``,
    ``skipped`` or ``error``, with failures or the reason) and ``effects.json`` (key effects,
    derived tables such as the survival curves, data rules and counts, definition, timing);
    for ``dropout`` also ``survival.csv`` and ``figures/survival.{png,pdf}``; and
    ``{out_dir}/summary.json`` (status and reason of every model). A model the data do not
    support (one session per patient, no second rater, no ruptures detected) is skipped
    with a reason, and an unexpected error in one model is recorded as ``status: error``
    without stopping the others.

    Parameters
    ----------
    dataset_dir
        ``results/{dataset}`` with ``ingest/``, ``scores/`` and ``process/`` (the outputs of
        :func:`alliance.process.run_process_analyses`; the person-period table is rebuilt
        from the scores when missing).
    out_dir
        Output folder, normally ``results/{dataset}/process/bayes``.
    sampler
        Settings of :func:`alliance.bayes.sampling.sample` (config ``bayes.sampler``).
    models
        Models to run, a subset of :data:`alliance.process.bayes_models.PROCESS_MODELS`.
    settings
        Overrides of :data:`SETTINGS`: ``alliance_session``, ``measure``,
        ``second_rater``, ``planned_sessions``, ``dropout_alliance`` (``current`` or
        ``lag1``), ``rupture_min_patients``, ``thresholds`` (diagnostic thresholds),
        ``model_samplers`` (per-model sampler overrides merged over ``sampler``; default
        4,000 draws and 1,500 tuning steps per chain for ``growth`` and target_accept 0.95
        for ``dropout``) and ``figures``.

    Returns
    -------
    dict
        ``dataset``, ``models`` (per model: ``status``, ``reason``, ``failures``, ``files``)
        and ``timing``; also written to ``summary.json``.

    Raises
    ------
    ValueError
        For an unknown model or setting.

    """
    unknown = sorted(set(models) - set(PROCESS_MODELS))
    if unknown:
        raise ValueError(f"models must be among {PROCESS_MODELS}, got {unknown}")
    bad = sorted(set(settings or {}) - set(SETTINGS))
    if bad:
        raise ValueError(f"unknown process bayes settings, got {bad}")
    cfg = {**SETTINGS, **(settings or {})}
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result: dict[str, Any] = {"dataset": dataset_dir.name, "models": {}, "settings": cfg}
    try:
        data = _inputs(dataset_dir, cfg)
        input_error = None
    except Exception as exc:  # noqa: BLE001 - recorded, other datasets go on
        data, input_error = None, f"{type(exc).__name__}: {exc}"
    for name in models:
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        if data is None:
            fit = ProcessFit(name, "error", reason=f"inputs could not be read: {input_error}")
        else:
            try:
                fit = _run_one(name, data, dict(sampler or {}), cfg)
            except Exception as exc:  # noqa: BLE001 - recorded, other models go on
                fit = ProcessFit(name, "error", reason=f"{type(exc).__name__}: {exc}")
                fit.data["traceback"] = traceback.format_exc(limit=5)
        files = [OUTPUT_FILES[k] for k in ("summary", "diagnostics", "effects")]
        try:
            table = _summary_table(fit)
        except Exception as exc:  # noqa: BLE001 - recorded, other models go on
            fit.status, fit.reason = "error", f"summary failed: {type(exc).__name__}: {exc}"
            table = _summary_table(ProcessFit(name, "error"))
        table.to_csv(folder / OUTPUT_FILES["summary"], index=False)
        diagnostics = {"status": fit.status, "reason": fit.reason, **fit.diagnostics}
        diagnostics["status"] = fit.status
        _write_json(folder / OUTPUT_FILES["diagnostics"], diagnostics)
        _write_json(folder / OUTPUT_FILES["effects"], fit.as_dict())
        if "survival" in fit.tables:
            fit.tables["survival"].to_csv(folder / "survival.csv", index=False)
            files.append("survival.csv")
            if cfg["figures"]:
                paths = _survival_figure(fit.tables["survival"], folder / "figures" / "survival")
                files += [str(p.relative_to(folder)) for p in paths]
        result["models"][name] = {
            "status": fit.status,
            "reason": fit.reason,
            "failures": fit.diagnostics.get("failures", []),
            "files": files,
        }
    result["timing"] = {"total_s": round(time.perf_counter() - start, 3)}
    _write_json(out_dir / "summary.json", result)
    return _clean(result)
