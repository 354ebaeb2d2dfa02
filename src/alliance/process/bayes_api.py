"""Run the Bayesian process models of one dataset and write their outputs, skipping safely."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.jsonio import jsonable, write_json
from alliance.process.bayes_models import (
    PROCESS_MODELS,
    REFERENCES,
    ProcessFit,
    dropout_hazard,
    growth,
    rater_outcome,
    rupture_outcome,
)
from alliance.tables import read_csv, write_csv, write_csv_and_markdown

__all__ = ["KEY_COLUMNS", "OUTPUT_FILES", "key_effects", "run_process_bayes"]

#: Files written per model under ``{out_dir}/{model}/``.
OUTPUT_FILES = {
    "summary": "summary.csv",
    "diagnostics": "diagnostics.json",
    "effects": "effects.json",
}

#: Columns of ``key_effects.csv``: one row per model and key estimate (one row with the
#: reason for a model that was skipped or failed), with the diagnostics of the model.
KEY_COLUMNS = [
    "model",
    "status",
    "effect",
    "label",
    "mean",
    "eti95_low",
    "eti95_high",
    "probability",
    "probability_of",
    "max_r_hat",
    "min_ess_bulk",
    "min_ess_tail",
    "divergences",
    "reason",
]

#: Key estimates per model: (effect, label, probability key, what the probability is of).
#: ``{a}`` and ``{b}`` stand for the first and the second rater.
KEY_EFFECTS: dict[str, list[tuple[str, str, str | None, str | None]]] = {
    "dropout": [
        (
            "or_alliance",
            "odds ratio of dropout (discrete-time hazard ratio) per SD of session alliance",
            "p_below_1",
            "OR < 1",
        ),
    ],
    "growth": [
        (
            "corrected_share_trait",
            "trait-like share of alliance variance (therapist + patient), error-corrected",
            None,
            None,
        ),
        (
            "corrected_share_session",
            "state-like share of alliance variance (session), error-corrected",
            None,
            None,
        ),
        ("share_trait", "trait-like share of alliance variance (observed scores)", None, None),
        ("share_session", "state-like share of alliance variance (observed scores)", None, None),
        ("b_level", "outcome (z) per SD of the early alliance level", "p_negative", "b < 0"),
        ("b_growth", "outcome (z) per SD of alliance growth", "p_negative", "b < 0"),
        (
            "level_minus_growth",
            "|b_level| - |b_growth|",
            "p_positive",
            "early level predicts more",
        ),
    ],
    "rater_outcome": [
        ("b_{a}", "outcome (z) per SD of the {a}'s alliance rating", "p_negative", "b < 0"),
        ("b_{b}", "outcome (z) per SD of the {b}'s alliance rating", "p_negative", "b < 0"),
        (
            "{a}_minus_{b}",
            "|b_{a}| - |b_{b}|",
            "p_positive",
            "{a} rating carries more",
        ),
    ],
    "rupture_outcome": [
        (
            "repaired_minus_unrepaired_points",
            "outcome points per repaired minus per unrepaired rupture",
            "p_negative",
            "difference < 0",
        ),
        ("b_repaired_points", "outcome points per repaired rupture", "p_negative", "b < 0"),
        ("b_unrepaired_points", "outcome points per unrepaired rupture", "p_negative", "b < 0"),
        (
            "d_repaired_minus_unrepaired",
            "dropout log-odds per repaired minus per unrepaired rupture",
            "p_negative",
            "difference < 0",
        ),
    ],
}


def _summary_table(fit: ProcessFit, per_patient: bool = False) -> pd.DataFrame:
    """Posterior summary of every stage: population-level parameters, or per-patient ones."""
    from alliance.bayes.diagnostics import SUMMARY_COLUMNS, per_patient_names, summarize

    columns = ["stage", *SUMMARY_COLUMNS]
    stages = fit.idata if isinstance(fit.idata, dict) else {fit.model: fit.idata}
    frames = []
    for stage, idata in stages.items():
        if idata is None:
            continue
        hidden = set(per_patient_names(idata))
        names = [str(n) for n in idata.posterior.data_vars if (str(n) in hidden) == per_patient]
        if names:
            table = summarize(idata, names).assign(stage=stage)
            added = pd.Series(fit.input_mcse.get(stage, {}), dtype=float)
            if not per_patient and len(added):
                # the Monte Carlo error of the earlier stage's means this stage is fitted to
                extra = table["parameter"].map(added).fillna(0.0).to_numpy()
                for col in ("mcse_mean", "mcse_median", "mcse_eti95_low", "mcse_eti95_high"):
                    table[col] = np.hypot(table[col].to_numpy(float), extra)
            frames.append(table)
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _survival_figure(curves: pd.DataFrame, path_stem: Path) -> list[Path]:
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from alliance.figures import SINGLE_COLUMN, save, style

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


def _diagnostic_summary(diagnostics: Mapping[str, Any]) -> dict[str, Any]:
    """Worst R-hat, smallest ESS and total divergences over a fit's stages."""
    stages = diagnostics.get("stages") or {"fit": diagnostics}
    stages = [d for d in stages.values() if isinstance(d, Mapping) and "max_r_hat" in d]
    if not stages:
        return {"max_r_hat": None, "min_ess_bulk": None, "min_ess_tail": None, "divergences": None}
    return {
        "max_r_hat": max(d["max_r_hat"] for d in stages),
        "min_ess_bulk": min(d["min_ess_bulk"] for d in stages),
        "min_ess_tail": min(d["min_ess_tail"] for d in stages),
        "divergences": int(sum(d.get("divergences") or 0 for d in stages)),
    }


def key_effects(
    fit: ProcessFit, rater: str = "client", second_rater: str = "therapist"
) -> pd.DataFrame:
    """The key estimates of one fit as rows of :data:`KEY_COLUMNS`.

    Each row has the posterior mean, the 95% equal-tailed interval and a direction
    probability of one key effect (:data:`KEY_EFFECTS`; for growth the error-corrected
    shares when the reliability was known, else the shares of the observed scores), with
    the fit's diagnostics (worst over its stages). A fit without effects (skipped or error)
    gives one row with its status and reason.
    """
    diag = _diagnostic_summary(fit.diagnostics)
    base = {"model": fit.model, "status": fit.status, **diag}
    rows = []
    names = {"a": rater, "b": second_rater}
    for effect, label, p_key, p_of in KEY_EFFECTS.get(fit.model, []):
        effect = effect.format(**names)
        summary = fit.effects.get(effect)
        if not isinstance(summary, Mapping):
            continue
        if effect.startswith("share_") and f"corrected_{effect}" in fit.effects:
            continue  # the error-corrected share is shown instead
        rows.append(
            {
                **base,
                "effect": effect,
                "label": label.format(**names),
                "mean": summary["mean"],
                "eti95_low": summary["eti95_low"],
                "eti95_high": summary["eti95_high"],
                "probability": summary.get(p_key) if p_key else None,
                "probability_of": p_of.format(**names) if p_of else None,
                "reason": None,
            }
        )
    if not rows:
        rows.append({**base, "effect": None, "label": None, "reason": fit.reason})
    table = pd.DataFrame(rows).reindex(columns=KEY_COLUMNS)
    for column in ("min_ess_bulk", "min_ess_tail", "divergences"):
        table[column] = pd.to_numeric(table[column]).round().astype("Int64")
    return table


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
    else:  # without the process stage's table (the workflow always has it)
        att_path = dataset_dir / "ingest" / "attendance.parquet"
        pp = person_period(
            tables["scores"],
            planned,
            tables["outcomes"],
            measure=settings["measure"],
            attendance=pd.read_parquet(att_path) if att_path.is_file() else None,
        )
    rupt_path = process / "ruptures_patients.csv"
    ruptures = read_csv(rupt_path) if rupt_path.is_file() else None
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
    # the dropout model's therapist SD, near zero with 15 therapists, gave 1 divergence at
    # target_accept 0.9 (site_b). The growth model needs no override since its random effects
    # are integrated out (growth_marginal): with the default 2 x 2,000 draws the slope SD's
    # bulk ESS was 2,876 on site_a, where the per-patient parameterization needed 2 x 6,000
    # draws for 677
    "model_samplers": {
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

    Writes ``{out_dir}/{model}/summary.csv`` (posterior summary of every population-level
    parameter, one ``stage`` per fitted stage; ``summary.md`` beside it),
    ``per_patient.csv`` (the same for the per-patient parameters, labelled by patient ID:
    a per-patient file that no summary or report shows), ``diagnostics.json``
    (``status``: ``pass``, ``fail``, ``skipped`` or ``error``, with failures or the reason)
    and ``effects.json`` (key effects, derived tables such as the survival curves, data rules
    and counts, definition, references, timing); for ``dropout`` also ``survival.csv``;
    ``{out_dir}/key_effects.csv`` and ``.md`` (:func:`key_effects` of every model: estimate,
    95% interval, direction probability, diagnostics or skip reason), the figures
    ``{out_dir}/figures/key_effects.{png,pdf}`` (every model's key estimates) and, when
    ``dropout`` is run, ``figures/survival.{png,pdf}`` (a placeholder stating the reason
    when it was not estimated); and ``{out_dir}/summary.json`` (per model: status, reason,
    failures, diagnostics summary, key estimates, definition and references). A model the
    data do not support (one session per patient, no second rater, no ruptures detected)
    is skipped with a reason, and an unexpected error in one model is recorded as
    ``status: error`` without stopping the others.

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
        target_accept 0.95 for ``dropout``) and ``figures``.

    Returns
    -------
    dict
        ``dataset``, ``models`` (per model: ``status``, ``reason``, ``failures``,
        ``diagnostics`` (worst R-hat, smallest ESS, divergences), ``key`` (the rows of
        :func:`key_effects`), ``definition``, ``references``, ``files`` and ``time_s``),
        ``settings`` and ``timing``; also written to ``summary.json``.

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
    (out_dir / "figures").mkdir(exist_ok=True)
    start = time.perf_counter()
    key_tables = []
    result: dict[str, Any] = {"dataset": dataset_dir.name, "models": {}, "settings": cfg}
    try:
        data = _inputs(dataset_dir, cfg)
        input_error = None
    except Exception as exc:  # noqa: BLE001 - recorded, other datasets go on
        data, input_error = None, f"{type(exc).__name__}: {exc}"
    for name in models:
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        model_start = time.perf_counter()
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
            per_patient = _summary_table(fit, per_patient=True)
        except Exception as exc:  # noqa: BLE001 - recorded, other models go on
            fit.status, fit.reason = "error", f"summary failed: {type(exc).__name__}: {exc}"
            table = per_patient = _summary_table(ProcessFit(name, "error"))
        write_csv_and_markdown(
            table,
            folder / OUTPUT_FILES["summary"],
            title=f"Posterior summary: {name} ({fit.status})",
            note=fit.reason
            or "mean, SD, 94% HDI, MCSE, ESS and R-hat of every population-level parameter "
            "(per-patient ones: per_patient.csv).",
        )
        files.append("summary.md")
        # random effects labelled by patient ID: a per-patient file, never in a summary
        write_csv(per_patient, folder / "per_patient.csv", index=False)
        files.append("per_patient.csv")
        diagnostics = {"status": fit.status, "reason": fit.reason, **fit.diagnostics}
        diagnostics["status"] = fit.status
        write_json(folder / OUTPUT_FILES["diagnostics"], diagnostics)
        write_json(folder / OUTPUT_FILES["effects"], fit.as_dict())
        if "survival" in fit.tables:
            write_csv(fit.tables["survival"], folder / "survival.csv", index=False)
            files.append("survival.csv")
        if name == "dropout" and cfg["figures"]:
            stem = out_dir / "figures" / "survival"
            if "survival" in fit.tables:
                _survival_figure(fit.tables["survival"], stem)
            else:
                import textwrap

                from alliance.figures import placeholder_figure

                reason = textwrap.shorten(f"{fit.status}: {fit.reason}", 160)
                placeholder_figure(
                    "Survival (still in treatment) by alliance", textwrap.fill(reason, 60), stem
                )
        keys = key_effects(fit, second_rater=cfg["second_rater"])
        key_tables.append(keys)
        result["models"][name] = {
            "status": fit.status,
            "reason": fit.reason,
            "failures": fit.diagnostics.get("failures", []),
            "diagnostics": _diagnostic_summary(fit.diagnostics),
            "key": keys.drop(columns=["model", "status", *_DIAG_COLUMNS]).to_dict("records"),
            "definition": fit.definition,
            "references": list(REFERENCES.get(name, [])),
            "files": files,
            "time_s": round(time.perf_counter() - model_start, 3),
        }
    keys = pd.concat(key_tables, ignore_index=True) if key_tables else pd.DataFrame()
    keys = keys.reindex(columns=KEY_COLUMNS)
    write_csv_and_markdown(
        keys,
        out_dir / "key_effects.csv",
        title=f"Bayesian process models: key estimates ({dataset_dir.name})",
        note=(
            "Posterior mean and 95% equal-tailed interval; probability: the posterior "
            "probability of the stated direction; diagnostics pass when R-hat <= 1.01, bulk "
            "and tail ESS >= 400 and no divergences (worst over a model's stages)."
        ),
    )
    if cfg["figures"] and len(keys):
        from alliance.process.plots import key_effects_figure

        key_effects_figure(keys, out_dir / "figures" / "key_effects")
    result["timing"] = {"total_s": round(time.perf_counter() - start, 3)}
    write_json(out_dir / "summary.json", result)
    return jsonable(result)


_DIAG_COLUMNS = ["max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences"]
