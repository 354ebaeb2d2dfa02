"""Per-dataset alliance-outcome effect: the partial correlation of early alliance with outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.jsonio import write_json


def partial_correlation(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Correlation of ``x`` and ``y`` with ``z`` (one or more columns) partialled out of both.

    Computed as the correlation of the least-squares residuals of ``x`` and ``y`` on ``z``
    (with an intercept), which for one covariate equals
    ``(r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))``.

    Raises
    ------
    ValueError
        If the arrays differ in length or have fewer than 4 rows.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    z = np.asarray(z, float).reshape(len(z), -1)
    if not len(x) == len(y) == len(z):
        raise ValueError(f"x, y and z need the same length, got {len(x)}, {len(y)}, {len(z)}")
    if len(x) < 4:
        raise ValueError(f"a partial correlation needs at least 4 rows, got {len(x)}")
    design = np.column_stack([np.ones(len(z)), z])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))


def outcome_table(
    scores: pd.DataFrame,
    outcomes: pd.DataFrame,
    alliance_session: int = 3,
    measure: str = "phq9",
    score: str = "total_mean",
    rater: str = "client",
) -> pd.DataFrame:
    """One row per patient: early alliance, baseline and post-treatment outcome.

    Baseline is the patient's first observed score of ``measure`` at or before session 1 (or
    the ``intake`` time point when one exists); post-treatment is the last observed session
    score after ``alliance_session`` (the ``post`` time point when one exists), so patients who
    dropped out contribute their last observation.
    """
    alliance = scores[(scores["rater"] == rater) & (scores["session"] == alliance_session)]
    alliance = alliance.dropna(subset=[score]).drop_duplicates("patient_id")
    alliance = alliance.set_index("patient_id")[score].rename("alliance")
    out = outcomes[outcomes["measure"] == measure].copy()
    out["value"] = out["value"].astype(float)
    sessions = out[out["timepoint"] == "session"].dropna(subset=["session"])
    fixed = out[out["timepoint"] != "session"]
    baseline = sessions[sessions["session"] <= 1].sort_values("session")
    baseline = baseline.groupby("patient_id")["value"].first()
    if "intake" in set(fixed["timepoint"]):
        intake = fixed[fixed["timepoint"] == "intake"].groupby("patient_id")["value"].first()
        baseline = intake.combine_first(baseline)
    later = sessions[sessions["session"] > alliance_session].sort_values("session")
    post = later.groupby("patient_id")["value"].last()
    if "post" in set(fixed["timepoint"]):
        post = (
            fixed[fixed["timepoint"] == "post"]
            .groupby("patient_id")["value"]
            .first()
            .combine_first(post)
        )
    table = pd.concat([alliance, baseline.rename("baseline"), post.rename("post")], axis=1)
    return table.dropna()


def dataset_effect(
    scores: pd.DataFrame,
    outcomes: pd.DataFrame,
    alliance_session: int = 3,
    measure: str = "phq9",
) -> dict[str, Any]:
    """The alliance-outcome partial correlation of a dataset, with its n, for pooling.

    The sign is set so that a positive ``r`` means better early alliance goes with a better
    outcome: for a symptom measure (lower is better: PHQ-9, GAD-7, CORE-10, OQ-45) ``r`` is the
    partial correlation of alliance with *lower* post-treatment scores, for a well-being
    measure (higher is better: ORS) with *higher* ones, controlling for baseline, comparable
    with the r = .278 of Fluckiger et al. (2018). The direction is the measure's ``better``
    (:mod:`alliance.data.measures`); a measure that is not built in is taken as a symptom measure,
    and the definition says so.

    References
    ----------
    Fluckiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in
    adult psychotherapy: A meta-analytic synthesis. *Psychotherapy, 55*(4), 316-340.
    """
    table = outcome_table(scores, outcomes, alliance_session=alliance_session, measure=measure)
    n = len(table)
    if n < 5:
        return {"r": None, "n": n, "status": f"too few patients with alliance and outcome ({n})"}
    from alliance.data.measures import lower_is_better

    lower = lower_is_better(measure)
    sign = -1.0 if lower in (True, None) else 1.0
    r = sign * partial_correlation(table["alliance"], table["post"], table["baseline"])
    assumed = (
        f" ({measure} is not a built-in measure: taken as lower is better)" if lower is None else ""
    )
    return {
        "r": r,
        "n": n,
        "status": "ok",
        "definition": (
            f"partial correlation of the client total alliance score at session "
            f"{alliance_session} with {'lower' if sign < 0 else 'higher'} last observed "
            f"{measure} after that session, controlling for baseline (session 1); positive = "
            f"better alliance, better outcome{assumed}"
        ),
    }


def write_dataset_effect(
    scores_path: str | Path, outcomes_path: str | Path, out_path: str | Path, **kwargs: Any
) -> dict[str, Any]:
    """Compute :func:`dataset_effect` from result files and write it as JSON."""
    effect = dataset_effect(pd.read_parquet(scores_path), pd.read_parquet(outcomes_path), **kwargs)
    write_json(out_path, effect)
    return effect
