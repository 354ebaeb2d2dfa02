"""Alliance as a process: rater agreement, rupture-repair episodes, dropout and variance.

This ``__init__`` is the stage entry of the workflow's ``process`` rule
(:func:`run_process_analyses`); :mod:`~alliance.process.bayes_api` is that of
``process_bayes``. The statistics are :mod:`~alliance.process.agreement`,
:mod:`~alliance.process.ruptures`, :mod:`~alliance.process.trajectories` and
:mod:`~alliance.process.bayes_models`; :mod:`~alliance.process.plots` draws.

May import: :mod:`alliance.data`, :mod:`alliance.describe`'s statistics, the sampler and
diagnostics of :mod:`alliance.bayes` and the shared modules; the statistics modules never
draw. Since importing any ``alliance.process`` module runs this stage entry, only stages import
from this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.jsonio import jsonable, write_json
from alliance.process.agreement import (
    AGREEMENT_COLUMNS,
    bland_altman,
    icc,
    match_raters,
    pearson,
    rater_agreement,
)
from alliance.process.ruptures import (
    EPISODE_COLUMNS,
    PATIENT_COLUMNS,
    RuptureRule,
    detect_ruptures,
    rci_criterion,
    recovery,
)
from alliance.process.trajectories import (
    DROPOUT_RULE,
    PERSON_PERIOD_COLUMNS,
    attended_sessions,
    dropout_status,
    person_period,
    planned_sessions,
    variance_components,
)
from alliance.tables import write_csv

__all__ = [
    "AGREEMENT_COLUMNS",
    "DEFAULTS",
    "EPISODE_COLUMNS",
    "PATIENT_COLUMNS",
    "PERSON_PERIOD_COLUMNS",
    "RuptureRule",
    "attended_sessions",
    "bland_altman",
    "detect_ruptures",
    "dropout_status",
    "icc",
    "match_raters",
    "pearson",
    "person_period",
    "planned_sessions",
    "rater_agreement",
    "rci_criterion",
    "recovery",
    "run_process_analyses",
    "variance_components",
]

#: Defaults of the ``process`` config section (each key documented in run_process_analyses).
DEFAULTS: dict[str, Any] = {
    "planned_sessions": None,
    "codebook_sessions": None,
    "instrument": None,
    "rater": "client",
    "second_rater": "therapist",
    "score": "total_mean",
    "measure": "phq9",
    "agreement": {"level": 0.95, "by_session": True, "min_pairs": 10},
    "ruptures": {**RuptureRule().as_dict(), "rci_reference_session": 1},
    "figures": {"n_patients": 12},
}

OUTPUT_FILES = {
    "agreement_csv": "agreement.csv",
    "agreement_json": "agreement.json",
    "episodes": "ruptures_episodes.csv",
    "patients": "ruptures_patients.csv",
    "variance": "variance_components.json",
    "person_period": "person_period.parquet",
    "summary": "summary.json",
    "bland_altman": "figures/bland_altman",
    "trajectories": "figures/rupture_trajectories",
}


def _merge(defaults: Mapping[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in defaults.items()}
    for key, value in (config or {}).items():
        if key not in defaults:
            raise ValueError(f"unknown process setting {key!r}; known: {sorted(defaults)}")
        if isinstance(defaults[key], Mapping):
            if not isinstance(value, Mapping):
                raise ValueError(f"process.{key} must be a mapping, got {value!r}")
            unknown = sorted(set(value) - set(defaults[key]))
            if unknown:
                raise ValueError(f"unknown process.{key} settings {unknown}")
            out[key].update(value)
        else:
            out[key] = value
    return out


def _alpha(items: pd.DataFrame | None, columns: list[str], session: int | None) -> dict[str, Any]:
    """Cronbach's alpha and the SD of the row means (client rows; one session or all)."""
    from alliance.describe.reliability import cronbach_alpha

    if items is None or not columns or not set(columns) <= set(items.columns):
        return {"alpha": None, "sd": None, "n": 0, "session": session}
    rows = items if session is None else items[items["session"] == session]
    data = rows[columns].astype(float)
    if len(data) < 3:
        return {"alpha": None, "sd": None, "n": len(data), "session": session}
    res = cronbach_alpha(data)
    return {
        "alpha": float(res["raw_alpha"]),
        "sd": float(res["sd"]),
        "n": len(data),
        "session": session,
    }


def run_process_analyses(
    ingest_dir: str | Path,
    scores_dir: str | Path,
    out_dir: str | Path,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the non-Bayesian process analyses of one dataset and write their outputs.

    Reads ``scores_dir/scores.parquet`` and, when present, ``ingest_dir/items.parquet``,
    ``ingest_dir/outcomes.parquet`` and ``ingest_dir/attendance.parquet`` (the sessions every
    source record attests, for the person-period table); writes into ``out_dir``
    (``results/{dataset}/process``):
    ``agreement.csv`` / ``agreement.json`` (client-therapist agreement,
    :func:`rater_agreement`), ``ruptures_episodes.csv`` and ``ruptures_patients.csv``
    (:func:`detect_ruptures`), ``variance_components.json`` (:func:`variance_components`,
    with the error correction from Cronbach's alpha of the items), ``person_period.parquet``
    (:func:`person_period`), ``figures/bland_altman.{png,pdf}`` and
    ``figures/rupture_trajectories.{png,pdf}`` and ``summary.json``. Every file is always
    written: an analysis the data do not support gets ``status: "skipped"`` with a
    ``reason`` (its tables keep their header, its figure states the reason).

    Parameters
    ----------
    ingest_dir, scores_dir, out_dir
        Folders of the tidy tables, of the scores and for the outputs.
    config
        The ``process`` section of config.yaml; defaults in :data:`DEFAULTS`:
        ``planned_sessions`` (None: from ``codebook_sessions``, else the largest observed
        session), ``codebook_sessions`` (the codebook's ``sessions`` list, if any),
        ``instrument`` (its items, reverse-keyed ones reversed, give alpha; its scale the
        trajectories' axis for a mean score; None: the instrument the dataset was ingested
        with, from ``ingest_dir``'s report), ``rater`` and ``second_rater``, ``score``,
        ``measure`` (symptom measure of the person-period table), ``agreement``
        (``level``, ``by_session``, ``min_pairs``), ``ruptures`` (the fields of
        :class:`RuptureRule` plus ``rci_reference_session``: with ``threshold_type: rci``
        and no ``scale_sd`` / ``reliability`` given, the SD and alpha of the client
        ratings at that session are used) and ``figures`` (``n_patients``).

    Returns
    -------
    dict
        The summary also written to ``summary.json``.

    Raises
    ------
    ValueError
        If a setting is unknown or invalid, or the scores table is missing.

    """
    from alliance.data.instruments import load_instrument
    from alliance.data.tidy import ingested_instrument
    from alliance.figures import placeholder_figure
    from alliance.process.plots import bland_altman_figure, rupture_trajectories_figure

    cfg = _merge(DEFAULTS, config)
    ingest_dir, scores_dir, out_dir = Path(ingest_dir), Path(scores_dir), Path(out_dir)
    scores_path = scores_dir / "scores.parquet"
    if not scores_path.exists():
        raise ValueError(f"scores table not found, got {scores_path}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "figures").mkdir(exist_ok=True)
    scores = pd.read_parquet(scores_path)
    items = (
        pd.read_parquet(ingest_dir / "items.parquet")
        if (ingest_dir / "items.parquet").exists()
        else None
    )
    outcomes = (
        pd.read_parquet(ingest_dir / "outcomes.parquet")
        if (ingest_dir / "outcomes.parquet").exists()
        else None
    )
    attendance = (
        pd.read_parquet(ingest_dir / "attendance.parquet")
        if (ingest_dir / "attendance.parquet").exists()
        else None
    )
    rater, score = cfg["rater"], cfg["score"]
    if items is not None and "rater" in items:
        items = items[items["rater"] == rater]
    try:
        instrument = (
            load_instrument(cfg["instrument"])
            if cfg["instrument"]
            else ingested_instrument(ingest_dir)
        )
        about_instrument: dict[str, Any] = {"name": instrument.name, "source": instrument.source}
    except (ValueError, OSError) as exc:  # no ingest report, or a path that does not resolve
        instrument = None
        about_instrument = {"name": None, "reason": f"no instrument, so no alpha: {exc}"}
    item_cols = list(instrument.items) if instrument is not None else []
    if instrument is not None and items is not None and instrument.reverse_keyed:
        reverse = [c for c in instrument.reverse_keyed if c in items.columns]
        items = items.assign(
            **{c: instrument.scale_min + instrument.scale_max - items[c] for c in reverse}
        )
    files = {k: str(out_dir / v) for k, v in OUTPUT_FILES.items()}
    summary: dict[str, Any] = {
        "dataset": out_dir.parent.name,
        "settings": cfg,
        "instrument": about_instrument,
        "files": {k: OUTPUT_FILES[k] for k in files},
    }

    # -- rater agreement
    ag_cfg = cfg["agreement"]
    ag = rater_agreement(
        scores,
        rater_a=rater,
        rater_b=cfg["second_rater"],
        level=ag_cfg["level"],
        by_session=ag_cfg["by_session"],
        min_pairs=ag_cfg["min_pairs"],
    )
    write_csv(ag["table"], out_dir / OUTPUT_FILES["agreement_csv"], index=False)
    ag_json = {k: ag[k] for k in ("status", "reason", "raters", "n_pairs", "n_patients", "method")}
    ag_json["table"] = ag["table"].to_dict("records")
    write_json(out_dir / OUTPUT_FILES["agreement_json"], ag_json)
    if ag["status"] == "ok":
        total = ag["table"][(ag["table"]["scope"] == "all sessions")].set_index("measure")
        bland_altman_figure(
            ag["pairs"],
            ag["table"],
            rater,
            cfg["second_rater"],
            path_stem=out_dir / OUTPUT_FILES["bland_altman"],
        )
        key = {
            m: total.loc[
                m, ["icc_a1", "icc_c1", "mean_diff", "loa_lower", "loa_upper", "pearson_r"]
            ].to_dict()
            for m in total.index
        }
    else:
        placeholder_figure(
            "Bland-Altman plot", ag["reason"], out_dir / OUTPUT_FILES["bland_altman"]
        )
        key = {}
    summary["agreement"] = {**{k: ag_json[k] for k in ag_json if k != "table"}, "all_sessions": key}

    # -- rupture-repair episodes
    rup_cfg = dict(cfg["ruptures"])
    ref_session = rup_cfg.pop("rci_reference_session")
    rci_inputs = None
    if rup_cfg["threshold_type"] == "rci" and (
        rup_cfg["scale_sd"] is None or rup_cfg["reliability"] is None
    ):
        rci_inputs = _alpha(items, item_cols, ref_session)
        if rup_cfg["scale_sd"] is None:
            ref = scores[(scores.get("rater") == rater) & (scores["session"] == ref_session)]
            sd = float(ref[score].astype(float).std(ddof=1)) if len(ref) > 2 else None
            rup_cfg["scale_sd"] = sd
            rci_inputs["sd"] = sd
        if rup_cfg["reliability"] is None:
            rup_cfg["reliability"] = rci_inputs["alpha"]
    rup_summary: dict[str, Any] = {"status": "skipped", "reason": None, "rci_inputs": rci_inputs}
    episodes = pd.DataFrame(columns=EPISODE_COLUMNS)
    patients = pd.DataFrame(columns=PATIENT_COLUMNS)
    if rup_cfg["threshold_type"] == "rci" and (
        rup_cfg["scale_sd"] is None or rup_cfg["reliability"] is None
    ):
        rup_summary["reason"] = (
            f"threshold_type rci needs the scale SD and reliability; the data gave "
            f"scale_sd={rup_cfg['scale_sd']}, reliability={rup_cfg['reliability']} at session "
            f"{ref_session}"
        )
    else:
        rule = RuptureRule.from_config(rup_cfg)
        det = detect_ruptures(scores, rule, score=score, rater=rater)
        episodes, patients = det["episodes"], det["patients"]
        rup_summary.update(settings=det["settings"], definition=det["definition"], **det["summary"])
        if det["summary"]["patients_eligible"] == 0:
            rup_summary["reason"] = (
                f"no patient has {rule.min_sessions} or more rated sessions (one session per "
                "patient?): session-to-session change cannot be assessed"
            )
        else:
            rup_summary["status"] = "ok"
    write_csv(episodes, out_dir / OUTPUT_FILES["episodes"], index=False)
    write_csv(patients, out_dir / OUTPUT_FILES["patients"], index=False)
    if rup_summary["status"] == "ok" and len(episodes):
        rupture_trajectories_figure(
            scores,
            episodes,
            n=cfg["figures"]["n_patients"],
            score=score,
            rater=rater,
            # a mean score lies on the items' scale; any other score gets the data's range
            scale=(
                (float(instrument.scale_min), float(instrument.scale_max))
                if instrument is not None and score.endswith("_mean")
                else None
            ),
            path_stem=out_dir / OUTPUT_FILES["trajectories"],
        )
    else:
        placeholder_figure(
            "Alliance trajectories with rupture-repair episodes",
            rup_summary["reason"] or "no rupture-repair episode was detected",
            out_dir / OUTPUT_FILES["trajectories"],
        )
    summary["ruptures"] = rup_summary

    # -- variance decomposition
    whole = _alpha(items, item_cols, None)
    alpha = whole["alpha"]
    usable = alpha is not None and 0 <= alpha < 1  # a negative alpha corrects nothing
    vc = variance_components(
        scores, score=score, rater=rater, reliability=alpha if usable else None
    )
    vc["alpha_source"] = f"Cronbach's alpha of the {rater} items over all rated sessions"
    if alpha is not None and not usable:
        vc["warnings"].append(
            f"Cronbach's alpha of the {rater} items is {alpha:.3f}, outside [0, 1): "
            "no error-corrected shares"
        )
    write_json(out_dir / OUTPUT_FILES["variance"], vc)
    summary["variance_components"] = {
        k: vc.get(k)
        for k in (
            "status",
            "reason",
            "model",
            "converged",
            "warnings",
            "shares",
            "corrected_shares",
            "between_patient_share",
            "session_share",
            "reliability",
        )
    }

    # -- person-period table (dropout hazard, growth)
    planned, source = planned_sessions(cfg["planned_sessions"], scores, cfg["codebook_sessions"])
    pp = person_period(
        scores,
        planned,
        outcomes,
        rater=rater,
        score=score,
        measure=cfg["measure"],
        attendance=attendance,
    )
    pp.to_parquet(out_dir / OUTPUT_FILES["person_period"], index=False)
    at_risk = pp[pp["at_risk"]]
    pp_summary: dict[str, Any] = {
        "status": "ok",
        "reason": None,
        "planned_sessions": planned,
        "planned_sessions_source": source,
        "dropout_rule": DROPOUT_RULE,
        "attendance_source": (
            "score and session-outcome rows (no attendance.parquet)"
            if attendance is None
            else "attendance.parquet (every source record, kept or quarantined)"
        ),
        "rows": int(len(pp)),
        "rows_at_risk": int(len(at_risk)),
        "patients": int(pp["patient_id"].nunique()),
        "dropouts": int(pp["event"].sum()),
        "dropout_share": float(pp.groupby("patient_id")["dropped_out"].first().mean())
        if len(pp)
        else None,
    }
    if planned < 2 or at_risk.empty:
        pp_summary.update(
            status="skipped",
            reason=(
                f"planned number of sessions is {planned}: no session-by-session risk of dropout"
            ),
        )
    elif pp_summary["dropouts"] == 0:
        pp_summary.update(status="skipped", reason="no patient dropped out before the planned end")
    summary["person_period"] = pp_summary
    write_json(out_dir / OUTPUT_FILES["summary"], summary)
    return jsonable(summary)
