"""Person-period tables for dropout and growth, and the alliance's three-level variance shares."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PERSON_PERIOD_COLUMNS",
    "attended_sessions",
    "dropout_status",
    "person_period",
    "planned_sessions",
    "variance_components",
]

PERSON_PERIOD_COLUMNS = [
    "patient_id",
    "therapist_id",
    "session",
    "attended",
    "alliance_observed",
    "at_risk",
    "event",
    "last_session",
    "dropped_out",
    "alliance",
    "alliance_z",
    "alliance_lag1",
    "alliance_lag1_z",
    "alliance_patient_mean",
    "alliance_within",
    "symptoms",
    "symptoms_lag1",
]

DROPOUT_RULE = (
    "dropout = the patient's last attended session (the last session with a source record of "
    "any rater, kept or quarantined, in attendance.parquet, or with an alliance or "
    "session-outcome row) lies before the planned number of sessions; the event is "
    "'no further session after session t' and is placed on the row of that last session; "
    "rows run from session 1 to the last attended session, at risk while session < planned"
)


def planned_sessions(
    value: int | None, scores: pd.DataFrame, codebook_sessions: Sequence[int] | None = None
) -> tuple[int, str]:
    """Return the planned number of sessions and where it came from.

    Order of precedence: ``value`` (``process.planned_sessions`` in the config), the largest
    of the codebook's ``sessions`` (wide layouts list them), else the largest session
    number observed in the dataset (treatment is taken to be planned as long as the longest
    observed course).

    Raises
    ------
    ValueError
        If ``value`` is given and is not a positive integer, or no session is observed.

    """
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"planned_sessions must be a positive integer, got {value!r}")
        return int(value), "config (process.planned_sessions)"
    if codebook_sessions:
        return int(max(codebook_sessions)), "codebook sessions"
    sessions = pd.to_numeric(scores["session"], errors="coerce").dropna()
    if sessions.empty:
        raise ValueError("no session numbers observed, got an empty session column")
    return int(sessions.max()), "largest observed session"


def _client(scores: pd.DataFrame, rater: str | None, score: str) -> pd.DataFrame:
    frame = scores if rater is None or "rater" not in scores else scores[scores["rater"] == rater]
    cols = ["patient_id", "session", score] + (["therapist_id"] if "therapist_id" in frame else [])
    frame = frame[cols].copy()
    frame["patient_id"] = frame["patient_id"].astype(str)
    frame = frame[frame["session"].notna()]
    frame["session"] = frame["session"].astype(int)
    frame[score] = frame[score].astype(float)
    if frame.duplicated(["patient_id", "session"]).any():
        raise ValueError("scores have more than one row per patient x session for this rater")
    return frame


def attended_sessions(
    scores: pd.DataFrame,
    outcomes: pd.DataFrame | None = None,
    rater: str | None = "client",
    attendance: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The attended sessions (``patient_id``, ``session``) of the patients of the tidy tables.

    The patients are those with a score row of ``rater`` or a session-level outcome row; a
    session of theirs is attended when it has such a row or, with ``attendance`` (the
    ingest's ``attendance.parquet``), a source record of any rater, kept or quarantined: a
    conflicting duplicate or a bad rater code removes the record's answers, not the session.
    """
    frame = scores if rater is None or "rater" not in scores else scores[scores["rater"] == rater]
    parts = [frame[["patient_id", "session"]]]
    if outcomes is not None and len(outcomes):
        sess = outcomes
        if "timepoint" in outcomes:
            sess = outcomes[outcomes["timepoint"] == "session"]
        parts.append(sess[["patient_id", "session"]])
    seen = pd.concat(parts, ignore_index=True).dropna()
    seen = seen.astype({"patient_id": str})
    if attendance is not None and len(attendance):
        source = attendance[["patient_id", "session"]].dropna().astype({"patient_id": str})
        parts = [seen, source[source["patient_id"].isin(set(seen["patient_id"]))]]
        seen = pd.concat(parts, ignore_index=True)
    seen["session"] = seen["session"].astype(int)
    seen = seen.drop_duplicates().sort_values(["patient_id", "session"], ignore_index=True)
    return seen


def dropout_status(
    scores: pd.DataFrame,
    planned: int,
    outcomes: pd.DataFrame | None = None,
    rater: str | None = "client",
    attendance: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per patient: ``last_session`` attended and ``dropped_out`` (see DROPOUT_RULE).

    Attended sessions as in :func:`attended_sessions`: a score row of ``rater``, a
    session-level outcome row or, with ``attendance``, any source record of the session.
    """
    seen = attended_sessions(scores, outcomes, rater, attendance)
    last = seen.groupby("patient_id")["session"].max()
    out = pd.DataFrame({"patient_id": last.index, "last_session": last.to_numpy()})
    out["dropped_out"] = out["last_session"] < planned
    return out.reset_index(drop=True)


def person_period(
    scores: pd.DataFrame,
    planned: int,
    outcomes: pd.DataFrame | None = None,
    rater: str | None = "client",
    score: str = "total_mean",
    measure: str = "phq9",
    attendance: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Person-period table for a discrete-time dropout hazard (one row per patient x session).

    Rows run from session 1 to each patient's last attended session (:func:`attended_sessions`:
    with ``attendance`` every source record counts, so a quarantined record of the last
    session does not make a dropout). ``event`` is 1 on the
    row of the last attended session when the patient dropped out (no further session
    before the planned end, DROPOUT_RULE); ``at_risk`` is True for sessions before
    ``planned`` (after the planned last session nobody can drop out). Predictors are the
    alliance at the session just attended (``alliance``, the rating given at the end of
    session t, before the decision not to return), the alliance one session earlier
    (``alliance_lag1``), both also z-standardized over all observed client ratings
    (``*_z``: a coefficient is per SD of session alliance), the patient-mean centred
    alliance (``alliance_within``) and the patient mean (Singer & Willett 2003, ch. 10-11;
    the within/between split of Falkenström et al. 2017), and the symptom score (``measure``)
    at session t and t - 1. Sessions without a rating inside the course keep a row with NaN
    predictors (``alliance_observed`` False); ``attended`` is True when the session was
    attended (a quarantined record with NaN predictors, say) and False when no record of it
    exists.

    Parameters
    ----------
    scores
        Scores table (docs/data-model.md).
    planned
        Planned number of sessions (:func:`planned_sessions`).
    outcomes
        Tidy outcomes table (``patient_id``, ``session``, ``timepoint``, ``measure``,
        ``value``), or None.
    rater, score, measure
        The alliance rater and score column, and the symptom measure.
    attendance
        The ingest's ``attendance.parquet`` (``patient_id``, ``session``, ...), or None
        (attendance from the score and session-outcome rows only).

    Returns
    -------
    pandas.DataFrame
        :data:`PERSON_PERIOD_COLUMNS`.

    References
    ----------
    Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis: Modeling
    change and event occurrence. Oxford University Press.
    Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic
    models of individual change in psychotherapy process research. Journal of Consulting and
    Clinical Psychology, 85(6), 537-549.

    """
    if not (isinstance(planned, int | np.integer) and planned >= 1):
        raise ValueError(f"planned must be a positive integer, got {planned!r}")
    client = _client(scores, rater, score)
    seen = attended_sessions(scores, outcomes, rater, attendance)
    status = dropout_status(scores, int(planned), outcomes, rater, attendance)
    therapist = (
        client.dropna(subset=["therapist_id"]).groupby("patient_id")["therapist_id"].first()
        if "therapist_id" in client
        else pd.Series(dtype=object)
    )
    rows = status.loc[status.index.repeat(status["last_session"])].reset_index(drop=True)
    rows["session"] = rows.groupby("patient_id").cumcount() + 1
    rows = rows.merge(
        client[["patient_id", "session", score]], on=["patient_id", "session"], how="left"
    )
    rows = rows.rename(columns={score: "alliance"})
    rows["therapist_id"] = rows["patient_id"].map(therapist).astype(object)
    if outcomes is not None and len(outcomes):
        sym = outcomes[outcomes["measure"] == measure]
        if "timepoint" in sym:
            sym = sym[sym["timepoint"] == "session"]
        sym = sym[["patient_id", "session", "value"]].dropna(subset=["session"]).copy()
        sym["patient_id"] = sym["patient_id"].astype(str)
        sym["session"] = sym["session"].astype(int)
        sym = sym.drop_duplicates(["patient_id", "session"]).rename(columns={"value": "symptoms"})
        sym["symptoms"] = sym["symptoms"].astype(float)
        rows = rows.merge(sym, on=["patient_id", "session"], how="left")
    else:
        rows["symptoms"] = np.nan
    rows = rows.sort_values(["patient_id", "session"], ignore_index=True)
    rows["alliance_observed"] = rows["alliance"].notna()
    rows["attended"] = pd.MultiIndex.from_frame(rows[["patient_id", "session"]]).isin(
        pd.MultiIndex.from_frame(seen)
    )
    rows["at_risk"] = rows["session"] < planned
    rows["event"] = (rows["dropped_out"] & (rows["session"] == rows["last_session"])).astype(int)
    grouped = rows.groupby("patient_id", sort=False)
    rows["alliance_lag1"] = grouped["alliance"].shift(1)
    rows["symptoms_lag1"] = grouped["symptoms"].shift(1)
    observed = client[score].dropna()
    mu, sd = float(observed.mean()), float(observed.std(ddof=1))
    if not sd > 0:
        raise ValueError(f"alliance scores need variance to be standardized, got SD {sd}")
    rows["alliance_z"] = (rows["alliance"] - mu) / sd
    rows["alliance_lag1_z"] = (rows["alliance_lag1"] - mu) / sd
    rows["alliance_patient_mean"] = grouped["alliance"].transform("mean")
    rows["alliance_within"] = rows["alliance"] - rows["alliance_patient_mean"]
    rows["session"] = rows["session"].astype("Int64")
    rows["last_session"] = rows["last_session"].astype("Int64")
    rows["dropped_out"] = rows["dropped_out"].astype(bool)
    for col in ("alliance", "alliance_lag1", "symptoms", "symptoms_lag1"):
        rows[col] = rows[col].astype(float)
    return rows[PERSON_PERIOD_COLUMNS]


def variance_components(
    scores: pd.DataFrame,
    score: str = "total_mean",
    rater: str | None = "client",
    reliability: float | None = None,
    maxiter: int = 200,
) -> dict[str, Any]:
    """Therapist, patient (trait-like) and session (state-like) shares of alliance variance.

    Method: restricted maximum likelihood (REML) for the three-level random-intercept model
    ``y_tij = mu + u_j + p_ij + e_tij`` (sessions t in patients i in therapists j), with
    ``u_j ~ N(0, s2_therapist)``, ``p_ij ~ N(0, s2_patient)``, ``e_tij ~ N(0, s2_session)``,
    fitted with statsmodels ``MixedLM`` (therapists as groups, a patient variance component
    within therapist). Shares are each variance over their sum. Without therapist IDs (or
    with fewer than 2 therapists) a two-level model (patients as groups) is fitted and the
    therapist share is None. ``between_patient_share`` (therapist + patient) is the
    trait-like part, ``session_share`` the state-like part (Zilcha-Mano 2017).

    The session-level variance of an observed score also holds its measurement error. With
    ``reliability`` (for example Cronbach's alpha of the items over all rated sessions) the
    error variance is estimated as ``(1 - reliability) * Var(y)`` and subtracted from the
    session variance (``corrected`` shares: therapist, patient, session *true* variance);
    this is an approximation that treats the error as independent from session to session.

    Convergence is checked, not assumed: every warning statsmodels raises during the fit is
    caught and returned in ``warnings``, and ``status`` is ``"ok"`` (converged, no warning),
    ``"warning"`` (converged with warnings, such as an estimate on the boundary) or
    ``"not_converged"``; ``"skipped"`` with a ``reason`` when the data cannot separate the
    levels (one session per patient).

    Parameters
    ----------
    scores
        Scores table (docs/data-model.md).
    score, rater
        Score column and rater.
    reliability
        Optional reliability of the score for the error-corrected shares.
    maxiter
        Iterations of the optimizer.

    Returns
    -------
    dict
        ``status``, ``reason``, ``method``, ``model`` (``"three-level"`` or
        ``"two-level"``), ``converged``, ``warnings``, ``n_obs``, ``n_patients``,
        ``n_therapists``, ``mean``, ``variances`` and ``shares`` (``therapist``,
        ``patient``, ``session``), ``between_patient_share``, ``session_share``, ``loglik``
        (REML), and with ``reliability``: ``error_variance`` and ``corrected_shares``.

    References
    ----------
    Patterson, H. D., & Thompson, R. (1971). Recovery of inter-block information when block
    sizes are unequal. Biometrika, 58(3), 545-554.
    Zilcha-Mano, S. (2017). Is the alliance really therapeutic? Revisiting this question in
    light of recent methodological advances. American Psychologist, 72(4), 311-325.
    Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
    correlation. Journal of Consulting and Clinical Psychology, 75(6), 842-852.

    """
    import statsmodels.formula.api as smf

    result: dict[str, Any] = {
        "status": "skipped",
        "reason": None,
        "method": (
            "REML, three-level random-intercept model (sessions in patients in therapists), "
            "statsmodels MixedLM with a patient variance component within therapist groups"
        ),
        "model": None,
        "converged": None,
        "warnings": [],
        "score": score,
        "rater": rater,
    }
    if reliability is not None and not 0 <= reliability < 1:
        raise ValueError(f"reliability must be in [0, 1), got {reliability}")
    frame = _client(scores, rater, score).dropna(subset=[score])
    n_obs, n_pat = len(frame), frame["patient_id"].nunique()
    result.update(n_obs=int(n_obs), n_patients=int(n_pat))
    per_patient = frame.groupby("patient_id").size()
    if n_obs == 0 or (per_patient > 1).sum() < 2:
        result["reason"] = (
            "fewer than 2 patients with more than one rated session: patient (trait) and "
            "session (state) variance cannot be separated"
        )
        result["n_therapists"] = 0
        return result
    has_ther = "therapist_id" in frame and frame["therapist_id"].notna().all()
    n_ther = int(frame["therapist_id"].nunique()) if has_ther else 0
    result["n_therapists"] = n_ther
    data = pd.DataFrame(
        {
            "y": frame[score].to_numpy(dtype=float),
            "patient": frame["patient_id"].astype(str).to_numpy(),
            "therapist": frame["therapist_id"].astype(str).to_numpy() if has_ther else "none",
        }
    )
    three = has_ther and n_ther >= 2
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        if three:
            model = smf.mixedlm(
                "y ~ 1",
                data,
                groups="therapist",
                re_formula="1",
                vc_formula={"patient": "0 + C(patient)"},
            )
        else:
            model = smf.mixedlm("y ~ 1", data, groups="patient")
        fit = model.fit(reml=True, maxiter=maxiter)
    caught = sorted({f"{w.category.__name__}: {w.message}" for w in record})
    if three:
        v_ther = float(fit.cov_re.iloc[0, 0])
        v_pat = float(np.asarray(fit.vcomp)[0])
    else:
        v_ther, v_pat = None, float(fit.cov_re.iloc[0, 0])
    v_ses = float(fit.scale)
    total = (v_ther or 0.0) + v_pat + v_ses
    shares = {
        "therapist": v_ther / total if v_ther is not None else None,
        "patient": v_pat / total,
        "session": v_ses / total,
    }
    converged = bool(getattr(fit, "converged", False))
    result.update(
        model="three-level" if three else "two-level",
        converged=converged,
        warnings=caught,
        status="not_converged" if not converged else ("warning" if caught else "ok"),
        mean=float(np.asarray(fit.fe_params)[0]),
        variances={"therapist": v_ther, "patient": v_pat, "session": v_ses},
        shares=shares,
        between_patient_share=((v_ther or 0.0) + v_pat) / total,
        session_share=v_ses / total,
        loglik=float(fit.llf),
    )
    if not three:
        result["reason"] = (
            "no therapist IDs" if not has_ther else f"only {n_ther} therapist"
        ) + ": two-level model, therapist variance not estimated"
    if reliability is not None:
        error = (1 - reliability) * float(np.var(data["y"], ddof=1))
        true_session = max(v_ses - error, 0.0)
        true_total = (v_ther or 0.0) + v_pat + true_session
        result["reliability"] = float(reliability)
        result["error_variance"] = error
        result["corrected_shares"] = {
            "therapist": v_ther / true_total if v_ther is not None else None,
            "patient": v_pat / true_total,
            "session": true_session / true_total,
        }
    if not math.isfinite(total) or total <= 0:
        result["status"] = "not_converged"
    return result
