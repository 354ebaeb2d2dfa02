"""Bayesian process models: dropout hazard, alliance growth, rater perspectives and ruptures."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alliance.bayes.diagnostics import check
from alliance.bayes.sampling import sample, sampler_settings

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    import pymc as pm

__all__ = [
    "PROCESS_MODELS",
    "REFERENCES",
    "InsufficientData",
    "ProcessFit",
    "dropout_data",
    "dropout_hazard",
    "growth",
    "growth_data",
    "rater_outcome",
    "rater_outcome_data",
    "rupture_outcome",
    "rupture_outcome_data",
    "survival_curves",
]

#: The models of this module, in the order the API runs them.
PROCESS_MODELS = ("dropout", "growth", "rater_outcome", "rupture_outcome")

#: Prior scales (all predictors are z-scores or counts, outcomes z-scores or log-odds):
#: Normal(0, ``slope``) for slopes, HalfNormal(``tau``) for random-effect SDs, HalfNormal
#: (``sigma``) for residual SDs, Normal(logit(observed rate), ``baseline``) for the
#: session-specific log-odds of dropout. A log-odds ratio of 1 per SD (odds ratio 2.7) is a
#: very large dropout effect, so Normal(0, 1) is weakly informative.
PRIORS: dict[str, float] = {
    "slope": 1.0,
    "tau": 0.5,
    "sigma": 1.0,
    "baseline": 1.5,
    "sd": 1.0,
    "sd_slope_mode": 0.1,
}


#: The sources of each model's operational definition (APA style), also written into
#: ``effects.json`` and the results summary. Checked against the publishers' or indexing
#: services' records (see the README, "Process analyses"), except where noted.
REFERENCES: dict[str, list[str]] = {
    "dropout": [
        "Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis: Modeling "
        "change and event occurrence. Oxford University Press. (Chapters 10-12: the "
        "discrete-time hazard model on a person-period data set.)",
        "Sharf, J., Primavera, L. H., & Diener, M. J. (2010). Dropout and therapeutic alliance: "
        "A meta-analysis of adult individual psychotherapy. Psychotherapy: Theory, Research, "
        "Practice, Training, 47(4), 637-645. https://doi.org/10.1037/a0021175",
    ],
    "growth": [
        "Zilcha-Mano, S. (2017). Is the alliance really therapeutic? Revisiting this question "
        "in light of recent methodological advances. American Psychologist, 72(4), 311-325.",
        "Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis: Modeling "
        "change and event occurrence. Oxford University Press. (Chapters 3-7: the multilevel "
        "model for change.)",
        "Chung, Y., Rabe-Hesketh, S., Dorie, V., Gelman, A., & Liu, J. (2013). A nondegenerate "
        "penalized likelihood estimator for variance parameters in multilevel models. "
        "Psychometrika, 78(4), 685-709.",
    ],
    "rater_outcome": [
        "Zilcha-Mano, S., Solomonov, N., Chui, H., McCarthy, K. S., Barrett, M. S., & Barber, "
        "J. P. (2015). Therapist-reported alliance: Is it really a predictor of outcome? "
        "Journal of Counseling Psychology, 62(4), 568-578.",
        "Horvath, A. O., Del Re, A. C., Flückiger, C., & Symonds, D. (2011). Alliance in "
        "individual psychotherapy. Psychotherapy, 48(1), 9-16.",
        "Bachelor, A. (2013). Clients' and therapists' views of the therapeutic alliance: "
        "Similarities, differences and relationship to therapy outcome. Clinical Psychology & "
        "Psychotherapy, 20(2), 118-135.",
        "Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance "
        "in adult psychotherapy: A meta-analytic synthesis. Psychotherapy, 55(4), 316-340.",
    ],
    "rupture_outcome": [
        "Stiles, W. B., Glick, M. J., Osatuke, K., Hardy, G. E., Shapiro, D. A., "
        "Agnew-Davies, R., Rees, A., & Barkham, M. (2004). Patterns of alliance development "
        "and the rupture-repair hypothesis: Are productive relationships U-shaped or "
        "V-shaped? Journal of Counseling Psychology, 51(1), 81-92.",
        "Safran, J. D., & Muran, J. C. (2000). Negotiating the therapeutic alliance: A "
        "relational treatment guide. Guilford Press.",
        "Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A "
        "meta-analysis. Psychotherapy, 55(4), 508-519.",
    ],
}


class InsufficientData(ValueError):  # noqa: N818 - a reason to skip, not a program error
    """The data do not support a model (its message is the skip reason)."""


@dataclass
class ProcessFit:
    """Result of one process model on one dataset.

    Attributes
    ----------
    model
        Model name (:data:`PROCESS_MODELS`).
    status
        ``"pass"`` / ``"fail"`` (the diagnostics of :func:`alliance.bayes.diagnostics.check`)
        or ``"skipped"`` (the data do not support the model; see ``reason``).
    reason
        Why the model was skipped, else None.
    effects
        Key effects: mean, median, SD, 90% and 95% equal-tailed intervals, direction
        probabilities, and derived quantities (odds ratios, variance shares).
    diagnostics
        :func:`alliance.bayes.diagnostics.check` of every fitted stage (``status`` combined).
    data
        Rules applied and counts.
    tables
        Derived tables (for example ``survival`` curves), as data frames.
    idata
        The posterior (``arviz.InferenceData``; for two-stage models a dict of them).
    timing
        Wall-clock seconds per stage and the backend.
    definition
        One-paragraph definition of the model, for reports.
    input_mcse
        Stage -> parameter -> the Monte Carlo standard error its inputs carry: a stage fitted
        to posterior means of an earlier stage inherits their Monte Carlo error, which its own
        chains cannot see (:func:`plug_in_mcse`); the summary adds it to the stage's MCSEs.

    """

    model: str
    status: str
    reason: str | None = None
    effects: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    idata: Any = None
    timing: dict[str, Any] = field(default_factory=dict)
    definition: str = ""
    input_mcse: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready content (tables as records, no idata)."""
        return {
            "model": self.model,
            "status": self.status,
            "reason": self.reason,
            "definition": self.definition,
            "references": list(REFERENCES.get(self.model, [])),
            "effects": self.effects,
            "diagnostics": self.diagnostics,
            "data": self.data,
            "tables": {k: v.to_dict(orient="records") for k, v in self.tables.items()},
            "timing": self.timing,
        }


def _prior(priors: Mapping[str, float] | None, key: str) -> float:
    value = (priors or {}).get(key, PRIORS[key])
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"prior scale {key} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"prior scale {key} must be finite, got {value!r}")
    return float(value)


def _z(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    x = np.asarray(x, dtype=float)
    mu, sd = float(np.nanmean(x)), float(np.nanstd(x, ddof=1))
    if not sd > 0:
        raise InsufficientData(f"a predictor has no variance (SD {sd})")
    return (x - mu) / sd, mu, sd


def _summary(x: np.ndarray, expected: str | None = None) -> dict[str, float]:
    """Posterior summary of one scalar quantity from its draws."""
    x = np.asarray(x, dtype=float).ravel()
    q = np.quantile(x, [0.025, 0.05, 0.5, 0.95, 0.975])
    row = {
        "mean": float(x.mean()),
        "median": float(q[2]),
        "sd": float(x.std(ddof=1)),
        "eti90_low": float(q[1]),
        "eti90_high": float(q[3]),
        "eti95_low": float(q[0]),
        "eti95_high": float(q[4]),
        "p_negative": float(np.mean(x < 0)),
        "p_positive": float(np.mean(x > 0)),
    }
    if expected == "negative":
        row["p_expected"] = row["p_negative"]
    elif expected == "positive":
        row["p_expected"] = row["p_positive"]
    return row


def _draws(idata: az.InferenceData, name: str) -> np.ndarray:
    """Draws of a posterior variable, chains stacked first: shape (n_draws, ...)."""
    x = np.asarray(idata.posterior[name])
    return x.reshape((-1, *x.shape[2:]))


def _fit(
    model: pm.Model,
    sampler: Mapping[str, Any] | None,
    thresholds: Mapping[str, float] | None,
    var_names: Sequence[str] | None = None,
) -> tuple[az.InferenceData, dict[str, Any], dict[str, Any]]:
    # no log likelihood: the process models are not compared by LOO
    idata, timing = sample(model, sampler_settings(sampler), log_likelihood=False)
    return idata, check(idata, var_names=var_names, thresholds=thresholds), timing


def _skipped(model: str, reason: str, definition: str, data: dict | None = None) -> ProcessFit:
    return ProcessFit(
        model=model, status="skipped", reason=reason, definition=definition, data=data or {}
    )


# --------------------------------------------------------------------------- dropout hazard

DROPOUT_DEFINITION = (
    "Discrete-time hazard model of premature termination (Singer & Willett 2003, ch. 10-12): "
    "one row per patient x attended session t while still at risk (t < planned sessions); "
    "the event is 'no further session after session t'. logit h_ti = alpha_t + b_alliance * "
    "alliance_z_ti + b_symptoms * symptoms_z_ti + u_therapist, with a separate baseline "
    "log-odds alpha_t for every session (the general baseline hazard) and Normal therapist "
    "intercepts. The alliance is the client's rating of session t itself (current, not "
    "lagged): it is given at the end of the session just attended, before the decision not "
    "to return, which is how the demo generator links dropout to alliance. exp(b_alliance) "
    "is the odds ratio (the discrete-time hazard ratio) per SD of session alliance. A weaker "
    "alliance going with more dropout is the meta-analytic finding of Sharf et al. (2010)."
)


def dropout_data(
    person_period: pd.DataFrame, alliance: str = "current", symptoms: bool = True
) -> dict[str, Any]:
    """Inputs of :func:`dropout_hazard` from the person-period table.

    Parameters
    ----------
    person_period
        :func:`alliance.process.trajectories.person_period` (``PERSON_PERIOD_COLUMNS``).
    alliance
        ``"current"`` (``alliance_z``, the rating of session t) or ``"lag1"``
        (``alliance_lag1_z``, session t - 1; the first session of every patient drops out
        of the analysis).
    symptoms
        Include the symptom score of session t (z-scored over the analysed rows) when the
        table has any.

    Returns
    -------
    dict
        ``frame`` (analysed rows: ``session_idx``, ``therapist_idx``, ``a``, ``s``,
        ``event``), ``sessions``, ``therapists``, ``symptoms`` (bool) and ``info``.

    Raises
    ------
    InsufficientData
        Without at-risk rows, without events, or with fewer than 2 sessions at risk.
    ValueError
        For an unknown ``alliance`` choice or missing columns.

    """
    if alliance not in ("current", "lag1"):
        raise ValueError(f"alliance must be 'current' or 'lag1', got {alliance!r}")
    column = "alliance_z" if alliance == "current" else "alliance_lag1_z"
    needed = {"patient_id", "therapist_id", "session", "at_risk", "event", column, "symptoms"}
    missing = sorted(needed - set(person_period.columns))
    if missing:
        raise ValueError(f"person-period table lacks columns, got missing {missing}")
    rows = person_period[person_period["at_risk"].astype(bool)].copy()
    n_risk = len(rows)
    if rows.empty:
        raise InsufficientData(
            "no person-period rows at risk (one session per patient or planned sessions = 1)"
        )
    use_symptoms = bool(symptoms and rows["symptoms"].notna().any())
    keep = rows[column].notna()
    if use_symptoms:
        keep &= rows["symptoms"].notna()
    rows = rows[keep]
    if rows.empty or rows["event"].sum() == 0:
        raise InsufficientData("no dropout event among the analysed person-period rows")
    sessions = sorted(int(s) for s in rows["session"].unique())
    if len(sessions) < 2:
        raise InsufficientData(f"only {len(sessions)} session at risk: no session-by-session risk")
    therapists = sorted(rows["therapist_id"].fillna("unknown").astype(str).unique())
    frame = pd.DataFrame(
        {
            "patient_id": rows["patient_id"].astype(str).to_numpy(),
            "session": rows["session"].astype(int).to_numpy(),
            "session_idx": pd.Categorical(rows["session"].astype(int), categories=sessions).codes,
            "therapist_idx": pd.Categorical(
                rows["therapist_id"].fillna("unknown").astype(str), categories=therapists
            ).codes,
            "a": rows[column].to_numpy(dtype=float),
            "event": rows["event"].to_numpy(dtype=int),
        }
    )
    scales: dict[str, float] = {}
    if use_symptoms:
        frame["s"], scales["symptoms_mean"], scales["symptoms_sd"] = _z(
            rows["symptoms"].to_numpy(dtype=float)
        )
    else:
        frame["s"] = 0.0
    info = {
        "alliance": f"{column} (client rating of session {'t' if alliance == 'current' else 't-1'},"
        " z over all observed client ratings)",
        "symptoms": "symptoms at session t, z over analysed rows" if use_symptoms else None,
        "rows_at_risk": int(n_risk),
        "rows_analysed": len(frame),
        "rows_excluded_missing": int(n_risk - len(frame)),
        "patients": int(frame["patient_id"].nunique()),
        "events": int(frame["event"].sum()),
        "sessions": sessions,
        "n_therapists": len(therapists),
        "scales": scales,
    }
    return {
        "frame": frame,
        "sessions": sessions,
        "therapists": therapists,
        "symptoms": use_symptoms,
        "info": info,
    }


def _dropout_model(inputs: Mapping[str, Any], priors: Mapping[str, float] | None) -> pm.Model:
    import pymc as pm

    f = inputs["frame"]
    rate = float(np.clip(f["event"].mean(), 1e-3, 1 - 1e-3))
    coords = {"session": [str(s) for s in inputs["sessions"]], "therapist": inputs["therapists"]}
    with pm.Model(coords=coords) as model:
        alpha = pm.Normal(
            "alpha", math.log(rate / (1 - rate)), _prior(priors, "baseline"), dims="session"
        )
        b_a = pm.Normal("b_alliance", 0.0, _prior(priors, "slope"))
        eta = alpha[f["session_idx"].to_numpy()] + b_a * f["a"].to_numpy()
        if inputs["symptoms"]:
            b_s = pm.Normal("b_symptoms", 0.0, _prior(priors, "slope"))
            eta = eta + b_s * f["s"].to_numpy()
        if len(inputs["therapists"]) >= 2:
            tau = pm.HalfNormal("tau_therapist", _prior(priors, "tau"))
            u_raw = pm.Normal("u_raw", 0.0, 1.0, dims="therapist")
            eta = eta + (tau * u_raw)[f["therapist_idx"].to_numpy()]
        pm.Deterministic("or_alliance", pm.math.exp(b_a))
        pm.CustomDist("event", eta, logp=_bernoulli_logit_logp, observed=f["event"].to_numpy())
    return model


def _bernoulli_logit_logp(value: Any, eta: Any) -> Any:
    """Log probability of a 0/1 ``value`` with log-odds ``eta``: ``value * eta - log(1 + e^eta)``.

    The same density as ``pm.Bernoulli(logit_p=eta)``, which computes it as a switch between
    ``-log1pexp(-eta)`` and ``-log1pexp(eta)`` inside a bounds check; this form has one
    softplus and no switch, and its gradient is ``value - sigmoid(eta)``. Measured on the
    demo's 2,980 person-periods (numba, 2 cores): log density with gradient 63 us per
    evaluation against 110 us, and the dropout model samples in about 60% of the time. The
    values are the event indicators of :func:`dropout_data` (0 or 1 by construction).
    """
    import pytensor.tensor as pt

    return value * eta - pt.softplus(eta)


def survival_curves(
    idata: az.InferenceData, sessions: Sequence[int], levels: Sequence[float] = (-1.0, 0.0, 1.0)
) -> pd.DataFrame:
    """Predicted survival (still in treatment) by session at fixed alliance levels.

    For each posterior draw, ``S(t) = prod_{k <= t} (1 - h_k)`` with ``logit h_k = alpha_k +
    b_alliance * level`` for a typical therapist (intercept 0) and mean symptoms, the
    alliance held at ``level`` SDs at every session. ``S(0) = 1`` before the first session.

    Returns
    -------
    pandas.DataFrame
        ``alliance_sd``, ``session`` (0 = start, then each session at risk: survival after
        it), ``hazard_mean``, ``survival_mean``, ``survival_eti95_low``,
        ``survival_eti95_high``.

    """
    alpha = _draws(idata, "alpha")  # draws x sessions
    b = _draws(idata, "b_alliance")[:, None]
    rows = []
    for level in levels:
        h = 1 / (1 + np.exp(-(alpha + b * level)))
        surv = np.cumprod(1 - h, axis=1)
        rows.append(
            {
                "alliance_sd": float(level),
                "session": 0,
                "hazard_mean": math.nan,
                "survival_mean": 1.0,
                "survival_eti95_low": 1.0,
                "survival_eti95_high": 1.0,
            }
        )
        for k, session in enumerate(sessions):
            lo, hi = np.quantile(surv[:, k], [0.025, 0.975])
            rows.append(
                {
                    "alliance_sd": float(level),
                    "session": int(session),
                    "hazard_mean": float(h[:, k].mean()),
                    "survival_mean": float(surv[:, k].mean()),
                    "survival_eti95_low": float(lo),
                    "survival_eti95_high": float(hi),
                }
            )
    return pd.DataFrame(rows)


def dropout_hazard(
    person_period: pd.DataFrame,
    sampler: Mapping[str, Any] | None = None,
    *,
    alliance: str = "current",
    symptoms: bool = True,
    priors: Mapping[str, float] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> ProcessFit:
    """Discrete-time hazard of premature termination on session alliance and symptoms.

    Model (logit link; Singer & Willett 2003, ch. 10-12)::

        event_ti ~ Bernoulli(h_ti)
        logit h_ti = alpha_t + b_alliance * a_ti + b_symptoms * s_ti + tau * u_j[i]
        alpha_t ~ Normal(logit(overall event rate), 1.5)   one per session at risk
        b ~ Normal(0, 1), tau ~ HalfNormal(0.5), u_j ~ Normal(0, 1)  (non-centred)

    ``a_ti`` is the client's alliance at session t in SDs of all observed session ratings
    (``alliance="current"``, the default: the rating at the end of the session just attended,
    before the decision not to return, as in the demo generator, where the patient leaves
    after session t with ``logit h = logit(.04) - 0.7 A_t``); ``"lag1"`` uses session t - 1.
    ``s_ti`` are the symptoms at session t (z-scored), omitted when the data have none.
    Rows with a missing alliance or symptom score are dropped (counted in ``data``).

    Measurement error. The observed score correlates about .92 with the latent composite
    (ordinal items, finite items), which attenuates the log-odds towards zero: about
    ``b * rho / sqrt(1 + 0.346 b^2 (1 - rho^2))``, i.e. about -0.63 for the demo's -0.7.

    Parameters
    ----------
    person_period
        :func:`alliance.process.trajectories.person_period`.
    sampler
        Settings of :func:`alliance.bayes.sampling.sample`.
    alliance, symptoms
        Predictor choices (:func:`dropout_data`).
    priors
        Overrides of :data:`PRIORS`.
    thresholds
        Overrides of :data:`alliance.bayes.diagnostics.THRESHOLDS`.

    Returns
    -------
    ProcessFit
        ``effects``: ``b_alliance`` (log-odds per SD), ``or_alliance`` (odds ratio per SD,
        the discrete-time hazard ratio), ``b_symptoms``, ``tau_therapist``; ``tables``:
        ``survival`` (:func:`survival_curves` at -1, 0, +1 SD).

    References
    ----------
    Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis: Modeling
    change and event occurrence. Oxford University Press. (Chapters 10-12: the discrete-time
    hazard model on a person-period data set.)
    Sharf, J., Primavera, L. H., & Diener, M. J. (2010). Dropout and therapeutic alliance: A
    meta-analysis of adult individual psychotherapy. Psychotherapy: Theory, Research,
    Practice, Training, 47(4), 637-645.

    """
    try:
        inputs = dropout_data(person_period, alliance=alliance, symptoms=symptoms)
    except InsufficientData as exc:
        return _skipped("dropout", str(exc), DROPOUT_DEFINITION)
    start = time.perf_counter()
    model = _dropout_model(inputs, priors)
    idata, diag, timing = _fit(model, sampler, thresholds)
    effects = {
        "b_alliance": _summary(_draws(idata, "b_alliance"), "negative"),
        "or_alliance": _summary(_draws(idata, "or_alliance")),
    }
    effects["or_alliance"]["p_below_1"] = effects["b_alliance"]["p_negative"]
    if inputs["symptoms"]:
        effects["b_symptoms"] = _summary(_draws(idata, "b_symptoms"))
    if "tau_therapist" in idata.posterior:
        effects["tau_therapist"] = _summary(_draws(idata, "tau_therapist"))
    timing["total_s"] = round(time.perf_counter() - start, 3)
    return ProcessFit(
        model="dropout",
        status=diag["status"],
        effects=effects,
        diagnostics=diag,
        data=inputs["info"],
        tables={"survival": survival_curves(idata, inputs["sessions"])},
        idata=idata,
        timing=timing,
        definition=DROPOUT_DEFINITION,
    )


# --------------------------------------------------------------------------- growth

GROWTH_DEFINITION = (
    "Linear growth model of the client's session alliance (z over all ratings) with "
    "correlated random intercepts and slopes by patient (LKJ prior) and random therapist "
    "intercepts; time = (session - 1) / (planned - 1), so the intercept is the level at "
    "session 1 (early level) and the slope the change over the planned course, in SDs. "
    "Trait-like (between-patient: therapist + patient) versus state-like (within-patient: "
    "residual session-to-session) shares of variance follow Zilcha-Mano (2017); the patient "
    "variance averages the intercept-slope variance over the observed sessions. Early level "
    "versus growth as predictors of outcome: a second-stage Bayesian regression of the "
    "post-treatment outcome (z) on the patients' posterior-mean level and slope (each "
    "z-scored over patients) and the baseline."
)


def growth_data(
    scores: pd.DataFrame,
    rater: str = "client",
    score: str = "total_mean",
    planned: int | None = None,
) -> dict[str, Any]:
    """Inputs of :func:`growth`: one row per rated patient-session.

    Raises
    ------
    InsufficientData
        When fewer than 10 patients have two or more rated sessions.

    """
    rows = scores if "rater" not in scores else scores[scores["rater"].astype(str) == rater]
    if score not in rows:
        raise ValueError(f"score column not in the scores table, got {score!r}")
    frame = pd.DataFrame(
        {
            "patient_id": rows["patient_id"].astype(str).to_numpy(),
            "therapist_id": (
                rows["therapist_id"].fillna("unknown").astype(str).to_numpy()
                if "therapist_id" in rows
                else "unknown"
            ),
            "session": pd.to_numeric(rows["session"]).to_numpy(dtype=float),
            "y_raw": pd.to_numeric(rows[score]).to_numpy(dtype=float, na_value=np.nan),
        }
    ).dropna(subset=["session", "y_raw"])
    per_patient = frame.groupby("patient_id").size()
    multi = int((per_patient >= 2).sum())
    if multi < 10:
        raise InsufficientData(
            f"{multi} patients have two or more rated sessions (one session per patient?): "
            "growth and within-patient variance need at least 10"
        )
    frame["y"], mu, sd = _z(frame["y_raw"].to_numpy())
    last = int(planned) if planned else int(frame["session"].max())
    if last < 2:
        raise InsufficientData(f"planned sessions {last}: no growth to model")
    frame["time"] = (frame["session"] - 1) / (last - 1)
    patients = sorted(frame["patient_id"].unique())
    therapists = sorted(frame["therapist_id"].unique())
    frame["patient_idx"] = pd.Categorical(frame["patient_id"], categories=patients).codes
    frame["therapist_idx"] = pd.Categorical(frame["therapist_id"], categories=therapists).codes
    ther_of_patient = frame.groupby("patient_id")["therapist_id"].first().reindex(patients)
    info = {
        "alliance": f"{rater} {score}, z over all rated sessions",
        "time": f"(session - 1) / {last - 1}: 0 at session 1, 1 at session {last}",
        "rows": len(frame),
        "patients": len(patients),
        "patients_multi_session": multi,
        "n_therapists": len(therapists),
        "scales": {"alliance_mean": mu, "alliance_sd": sd},
    }
    return {
        "frame": frame,
        "patients": patients,
        "therapists": therapists,
        "therapist_of_patient": pd.Categorical(
            ther_of_patient.to_numpy(), categories=therapists
        ).codes,
        "info": info,
    }


def growth_statistics(inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-patient sufficient statistics of the growth model's marginal likelihood.

    For patient ``i`` with ratings ``y_ij`` at times ``t_ij``: ``n`` (ratings), ``s_t``
    (sum of ``t``), ``s_tt`` (sum of ``t^2``), ``s_y``, ``s_ty`` and ``s_yy``, in the order
    of ``inputs["patients"]``.
    """
    f = inputs["frame"]
    n_pat = len(inputs["patients"])
    idx = f["patient_idx"].to_numpy()
    t = f["time"].to_numpy(float)
    y = f["y"].to_numpy(float)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(idx, weights=values, minlength=n_pat)

    return {
        "n": total(np.ones_like(t)),
        "s_t": total(t),
        "s_tt": total(t * t),
        "s_y": total(y),
        "s_ty": total(t * y),
        "s_yy": total(y * y),
    }


def growth_marginal(
    stats: Mapping[str, Any],
    centre: Any,
    b_time: Any,
    cov: tuple[Any, Any, Any],
    sigma: Any,
    xp: Any = np,
) -> tuple[Any, Any, Any]:
    """Marginal log likelihood of each patient's ratings and their random effects' means.

    The growth model ``y_ij = c_i + b_time t_ij + b0_i + b1_i t_ij + e_ij`` with ``(b0_i,
    b1_i) ~ Normal(0, S)`` and ``e_ij ~ Normal(0, sigma^2)`` gives each patient's residuals
    ``r_i = y_i - c_i - b_time t_i`` the distribution ``Normal(0, V_i)``, ``V_i = Z_i S Z_i'
    + sigma^2 I`` with ``Z_i = [1, t_i]``. With ``A_i = Z_i' Z_i``, ``g_i = Z_i' r_i`` and
    ``B_i = S A_i + sigma^2 I`` (2 x 2), the determinant lemma and Woodbury's identity give

        log |V_i| = 2 (n_i - 2) log sigma + log |B_i|
        r_i' V_i^-1 r_i = (r_i' r_i - g_i' B_i^-1 S g_i) / sigma^2

    and ``E[(b0_i, b1_i) | y_i] = S Z_i' V_i^-1 r_i = B_i^-1 S g_i`` (the best linear
    unbiased predictors; Henderson 1975), so the random effects are integrated out exactly
    and the sampler sees no per-patient parameters (no funnel when the slope SD is near zero).
    No inverse of ``S`` is needed, so a slope SD near zero stays stable.

    Parameters
    ----------
    stats
        :func:`growth_statistics`.
    centre
        ``c_i`` per patient (the mean level of the patient's therapist).
    b_time, sigma
        Fixed slope and residual SD.
    cov
        ``(S_00, S_01, S_11)``.
    xp
        The array module (``numpy`` or ``pytensor.tensor``).

    Returns
    -------
    tuple
        Per-patient log likelihood, and the conditional means of ``b0_i`` and ``b1_i``.

    References
    ----------
    Henderson, C. R. (1975). Best linear unbiased estimation and prediction under a selection
    model. Biometrics, 31(2), 423-447.
    Searle, S. R., Casella, G., & McCulloch, C. E. (1992). Variance components. Wiley
    (the determinant lemma and Woodbury's identity for the marginal likelihood, ch. 6).
    """
    n, s_t, s_tt = stats["n"], stats["s_t"], stats["s_tt"]
    s00, s01, s11 = cov
    var_e = sigma**2
    g0 = stats["s_y"] - n * centre - b_time * s_t
    g1 = stats["s_ty"] - centre * s_t - b_time * s_tt
    rr = (
        stats["s_yy"]
        + n * centre**2
        + b_time**2 * s_tt
        - 2 * centre * stats["s_y"]
        - 2 * b_time * stats["s_ty"]
        + 2 * centre * b_time * s_t
    )
    b00 = s00 * n + s01 * s_t + var_e
    b01 = s00 * s_t + s01 * s_tt
    b10 = s01 * n + s11 * s_t
    b11 = s01 * s_t + s11 * s_tt + var_e
    det = b00 * b11 - b01 * b10
    h0 = s00 * g0 + s01 * g1
    h1 = s01 * g0 + s11 * g1
    k0 = (b11 * h0 - b01 * h1) / det
    k1 = (b00 * h1 - b10 * h0) / det
    quad = (rr - g0 * k0 - g1 * k1) / var_e
    loglik = -0.5 * (n * math.log(2 * math.pi) + (n - 2) * xp.log(var_e) + xp.log(det) + quad)
    return loglik, k0, k1


def _growth_model(inputs: Mapping[str, Any], priors: Mapping[str, float] | None) -> pm.Model:
    import pymc as pm
    import pytensor.tensor as pt

    stats = growth_statistics(inputs)
    coords = {"patient": inputs["patients"]}
    with pm.Model(coords=coords) as model:
        mu = pm.Normal("mu", 0.0, _prior(priors, "slope"))
        beta = pm.Normal("b_time", 0.0, _prior(priors, "slope"))
        # SDs and the correlation as separate parameters. The LKJ(2) prior on a 2 x 2
        # correlation matrix is (rho + 1) / 2 ~ Beta(2, 2), written out (pm.LKJCorr's
        # positive-definiteness check has no numba kernel for nutpie)
        sd0 = pm.HalfNormal("sd_intercept", _prior(priors, "sd"))
        # a boundary-avoiding Gamma(2, 1 / mode) prior for the slope SD (Chung et al. 2013)
        sd1 = pm.Gamma("sd_slope", alpha=2.0, beta=1.0 / _prior(priors, "sd_slope_mode"))
        rho = pm.Deterministic(
            "rho_intercept_slope", 2.0 * pm.Beta("corr_lkj", alpha=2.0, beta=2.0) - 1.0
        )
        centre = mu * pt.ones(len(inputs["patients"]))
        if len(inputs["therapists"]) >= 2:
            model.add_coord("therapist", inputs["therapists"])
            tau = pm.HalfNormal("tau_therapist", _prior(priors, "tau"))
            u_raw = pm.Normal("u_raw", 0.0, 1.0, dims="therapist")
            centre = mu + (tau * u_raw)[inputs["therapist_of_patient"]]
        sigma = pm.HalfNormal("sigma", _prior(priors, "sigma"))
        # the patients' random intercepts and slopes integrated out (growth_marginal)
        loglik, k0, k1 = growth_marginal(
            stats, centre, beta, (sd0**2, rho * sd0 * sd1, sd1**2), sigma, xp=pt
        )
        pm.Potential("y_marginal", loglik.sum())
        # each draw's conditional means of the patient's session-1 level and slope deviation
        # (Rao-Blackwellized: their posterior means are the random effects' posterior means)
        pm.Deterministic("level_patient", centre + k0, dims="patient")
        pm.Deterministic("b1_patient", k1, dims="patient")
    return model


def _variance_shares(
    idata: az.InferenceData, time: np.ndarray, reliability: float | None
) -> dict[str, np.ndarray]:
    """Draws of the therapist, patient and session variances and shares (+ error-corrected)."""
    s0, s1 = _draws(idata, "sd_intercept"), _draws(idata, "sd_slope")
    rho = _draws(idata, "rho_intercept_slope")
    m1, m2 = float(np.mean(time)), float(np.mean(time**2))
    v_pat = s0**2 + 2 * rho * s0 * s1 * m1 + s1**2 * m2
    v_ther = _draws(idata, "tau_therapist") ** 2 if "tau_therapist" in idata.posterior else 0 * s0
    v_ses = _draws(idata, "sigma") ** 2
    total = v_ther + v_pat + v_ses
    out = {
        "var_therapist": v_ther,
        "var_patient": v_pat,
        "var_session": v_ses,
        "share_therapist": v_ther / total,
        "share_patient": v_pat / total,
        "share_session": v_ses / total,
        "share_trait": (v_ther + v_pat) / total,
    }
    if reliability is not None:
        # y is z-scored, so Var(y) = 1 and the error variance is 1 - reliability
        true_ses = np.maximum(v_ses - (1 - reliability), 0.0)
        true_total = v_ther + v_pat + true_ses
        out["corrected_share_therapist"] = v_ther / true_total
        out["corrected_share_patient"] = v_pat / true_total
        out["corrected_share_session"] = true_ses / true_total
        out["corrected_share_trait"] = (v_ther + v_pat) / true_total
    return out


#: Batches of a stage's draws in :func:`plug_in_mcse` (contiguous, so within chains when the
#: draws per chain are a multiple of batches / chains).
PLUG_IN_BATCHES = 20


def plug_in_mcse(
    draws: Mapping[str, np.ndarray],
    design: Callable[[Mapping[str, np.ndarray]], tuple[dict[str, np.ndarray], np.ndarray]],
    batches: int = PLUG_IN_BATCHES,
) -> dict[str, float]:
    """Monte Carlo SE that a second stage inherits from the posterior means it is fitted to.

    A two-stage model regresses an outcome on per-patient posterior means of the first stage.
    Those means carry Monte Carlo error, so a rerun with other draws moves the second stage's
    estimates by more than the second stage's own MCSE says. The second stage's posterior
    mean under its weak priors is close to the least-squares fit ``f(m)`` of the means ``m``;
    its Monte Carlo variance is that of the linearization ``f(m) + J (m' - m)``. The
    covariance of the means' error comes from batch means (Flegal, Haran & Jones 2008): the
    draws are cut into ``batches`` contiguous batches, each batch's deviation ``d_b`` of its
    means from ``m`` is pushed through ``J`` as a central directional difference of ``f``,
    and the SE is ``sqrt(sum_b (J d_b)^2 / (B (B - 1)))``. Linearizing at ``m``, not refitting
    at each batch's noisier means, keeps the z-scoring of the predictors where the full
    sample has it.

    Parameters
    ----------
    draws
        Name -> first-stage draws, shape (n_draws, n_patients), chains stacked first.
    design
        Per-patient means (name -> vector) -> (the predictor columns ``{name: column}``
        without the intercept, and the outcome vector).
    batches
        Number of batches.

    Returns
    -------
    dict
        ``intercept``, each predictor's name and ``sigma`` -> Monte Carlo SE.

    References
    ----------
    Flegal, J. M., Haran, M., & Jones, G. L. (2008). Markov chain Monte Carlo: can we trust
    the third significant figure? Statistical Science, 23(2), 250-260.
    """
    n = min(len(v) for v in draws.values())
    if batches < 2 or n < batches:
        raise ValueError(f"need at least 2 batches of draws, got {batches} for {n} draws")
    names: list[str] = []

    def fit(means: Mapping[str, np.ndarray]) -> np.ndarray:
        columns, y = design(means)
        names[:] = list(columns)
        x = np.column_stack([np.ones(len(y)), *columns.values()])
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        resid = y - x @ beta
        return np.array([*beta, np.sqrt(resid @ resid / (len(y) - x.shape[1]))])

    full = {k: v[:n].mean(axis=0) for k, v in draws.items()}
    fit(full)
    step = 1e-3
    changes = []
    for idx in np.array_split(np.arange(n), batches):
        dev = {k: v[idx].mean(axis=0) - full[k] for k, v in draws.items()}
        up = fit({k: full[k] + step * dev[k] for k in full})
        down = fit({k: full[k] - step * dev[k] for k in full})
        changes.append((up - down) / (2 * step))
    se = np.sqrt(np.sum(np.square(changes), axis=0) / (batches * (batches - 1)))
    return dict(zip(["intercept", *names, "sigma"], (float(v) for v in se), strict=True))


def _regression_model(
    y: np.ndarray, x: Mapping[str, np.ndarray], priors: Mapping[str, float] | None
) -> pm.Model:
    """Normal linear regression of a z-scored outcome on named z-scored predictors."""
    import pymc as pm

    with pm.Model() as model:
        a = pm.Normal("intercept", 0.0, _prior(priors, "slope"))
        eta = a
        for name, values in x.items():
            eta = eta + pm.Normal(name, 0.0, _prior(priors, "slope")) * np.asarray(values, float)
        sigma = pm.HalfNormal("sigma", _prior(priors, "sigma"))
        pm.Normal("y", eta, sigma, observed=np.asarray(y, float))
    return model


def _combine(diags: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    status = "pass" if all(d["status"] == "pass" for d in diags.values()) else "fail"
    failures = [f"{stage}: {f}" for stage, d in diags.items() for f in d["failures"]]
    return {"status": status, "failures": failures, "stages": dict(diags)}


def growth(
    scores: pd.DataFrame,
    outcome: pd.DataFrame | None = None,
    sampler: Mapping[str, Any] | None = None,
    *,
    rater: str = "client",
    score: str = "total_mean",
    planned: int | None = None,
    reliability: float | None = None,
    priors: Mapping[str, float] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> ProcessFit:
    """Alliance growth: trait-like vs state-like variance and early level vs growth.

    Stage 1 (growth; session ratings ``y_ti`` z-scored over all ratings)::

        y_ti = mu + b_time t + b0_i + b1_i t + tau u_j[i] + e_ti,  e_ti ~ Normal(0, sigma)
        (b0_i, b1_i) ~ MvNormal(0, Sigma), Sigma = diag(sd) R diag(sd),
        R ~ LKJ(2), sd_intercept ~ HalfNormal(1), sd_slope ~ Gamma(2, 10) (mode 0.1,
        boundary-avoiding), tau ~ HalfNormal(0.5), sigma ~ HalfNormal(1)

    with ``t = (session - 1) / (planned - 1)``; the random effects ``(b0_i, b1_i)`` are
    integrated out of the likelihood (:func:`growth_marginal`), and the patients' levels and
    slopes are their conditional means given each draw. Variance
    shares (Zilcha-Mano 2017): therapist ``tau^2``, patient (trait-like) ``E_t[Var(b0 + b1
    t)]`` averaged over the observed sessions, session (state-like) ``sigma^2``, each over
    their sum, per posterior draw. The session variance of an observed score also holds its
    measurement error; with ``reliability`` (for example Cronbach's alpha) the error variance
    ``1 - reliability`` (z scale) is subtracted for ``corrected_share_*``, as in
    :func:`alliance.process.trajectories.variance_components` (the same approximation:
    independent errors from session to session). Recovery on the demo data: the corrected
    shares estimate the latent 6% / 70% / 24%; the uncorrected session share is larger.

    Stage 2 (outcome, when ``outcome`` is given; a two-stage design, chosen over a joint
    model because the demo's true slope variance is zero, which leaves a joint outcome-on-
    slope coefficient unidentified and its geometry hard for NUTS)::

        z_post_i = a + b_level level_i + b_growth growth_i + b_baseline z_baseline_i + e_i

    ``level_i`` and ``growth_i`` are the posterior means of the patient's session-1 level
    (``mu + tau u_j + b0_i``) and slope (``b_time + b1_i``), z-scored over patients. Using
    shrunken (empirical-Bayes) predictors is regression calibration: it corrects the
    attenuation a raw early score suffers, but the stage-2 intervals ignore the stage-1
    uncertainty of the predictors (slightly too narrow).

    Parameters
    ----------
    scores
        Scores table (docs/data-model.md).
    outcome
        Patient outcomes with ``patient_id``, ``z_post`` and ``z_baseline`` (for example the
        frame of :func:`alliance.bayes.data.patient_data`), or None to skip stage 2.
    sampler, priors, thresholds
        As in :func:`dropout_hazard`.
    rater, score
        Rater rows and score column.
    planned
        Planned number of sessions (time scale); default the largest observed session.
    reliability
        Reliability of the score for the corrected shares, or None.

    Returns
    -------
    ProcessFit
        ``effects``: ``b_time``, ``sd_intercept``, ``sd_slope``, ``rho_intercept_slope``,
        ``tau_therapist``, ``sigma``, ``share_*`` and ``corrected_share_*``, and with stage 2
        ``b_level``, ``b_growth``, ``b_baseline``, ``level_minus_growth`` (``|b_level| -
        |b_growth|``, with ``p_positive`` = P(early level predicts more)).

    References
    ----------
    Zilcha-Mano, S. (2017). Is the alliance really therapeutic? Revisiting this question in
    light of recent methodological advances. American Psychologist, 72(4), 311-325.
    Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis: Modeling
    change and event occurrence. Oxford University Press. (Chapters 3-7: multilevel model
    for change.)
    Chung, Y., Rabe-Hesketh, S., Dorie, V., Gelman, A., & Liu, J. (2013). A nondegenerate
    penalized likelihood estimator for variance parameters in multilevel models.
    Psychometrika, 78(4), 685-709.
    Lewandowski, D., Kurowicka, D., & Joe, H. (2009). Generating random correlation matrices
    based on vines and extended onion method. Journal of Multivariate Analysis, 100(9),
    1989-2001.

    """
    if reliability is not None and not 0 <= reliability < 1:
        raise ValueError(f"reliability must be in [0, 1), got {reliability}")
    try:
        inputs = growth_data(scores, rater=rater, score=score, planned=planned)
    except InsufficientData as exc:
        return _skipped("growth", str(exc), GROWTH_DEFINITION)
    start = time.perf_counter()
    model = _growth_model(inputs, priors)
    # the correlation matrix's constant diagonal has no R-hat: check the free parameters
    idata, diag, timing = _fit(model, sampler, thresholds, var_names=_growth_check_names(model))
    t = inputs["frame"]["time"].to_numpy()
    effects = {
        name: _summary(_draws(idata, name))
        for name in ("b_time", "sd_intercept", "sd_slope", "rho_intercept_slope", "sigma")
    }
    if "tau_therapist" in idata.posterior:
        effects["tau_therapist"] = _summary(_draws(idata, "tau_therapist"))
    for name, draws in _variance_shares(idata, t, reliability).items():
        effects[name] = _summary(draws)
    data = dict(inputs["info"], reliability=reliability)
    diags = {"growth": diag}
    timings = {"growth": timing}
    idatas: dict[str, Any] = {"growth": idata}
    stage2_reason = None
    input_mcse: dict[str, dict[str, float]] = {}
    if outcome is not None:
        level = _draws(idata, "level_patient")
        slope = _draws(idata, "b_time")[:, None] + _draws(idata, "b1_patient")
        per_patient = pd.DataFrame(
            {"level": level.mean(axis=0), "growth": slope.mean(axis=0)},
            index=pd.Index(inputs["patients"], name="patient_id"),
        )
        merged = per_patient.join(
            outcome.set_index(outcome["patient_id"].astype(str))[["z_post", "z_baseline"]],
            how="inner",
        ).dropna()
        if len(merged) < 10:
            stage2_reason = f"{len(merged)} patients with growth estimates and an outcome (< 10)"
        else:
            x = {
                "b_level": _z(merged["level"].to_numpy())[0],
                "b_growth": _z(merged["growth"].to_numpy())[0],
                "b_baseline": merged["z_baseline"].to_numpy(float),
            }
            idata2, diag2, timing2 = _fit(
                _regression_model(merged["z_post"].to_numpy(), x, priors), sampler, thresholds
            )
            patients = pd.Index(inputs["patients"]).get_indexer(merged.index)

            def design(means: Mapping[str, np.ndarray]) -> tuple[dict, np.ndarray]:
                return {
                    "b_level": _z(means["level"][patients])[0],
                    "b_growth": _z(means["growth"][patients])[0],
                    "b_baseline": merged["z_baseline"].to_numpy(float),
                }, merged["z_post"].to_numpy(float)

            input_mcse = {"outcome": plug_in_mcse({"level": level, "growth": slope}, design)}
            for name in ("b_level", "b_growth", "b_baseline"):
                effects[name] = _summary(_draws(idata2, name), None)
            bl, bg = _draws(idata2, "b_level"), _draws(idata2, "b_growth")
            effects["level_minus_growth"] = _summary(np.abs(bl) - np.abs(bg))
            diags["outcome"], timings["outcome"], idatas["outcome"] = diag2, timing2, idata2
            data["outcome_patients"] = len(merged)
    else:
        stage2_reason = "no outcome table given"
    data["outcome_stage"] = "skipped: " + stage2_reason if stage2_reason else "fitted"
    timings["total_s"] = round(time.perf_counter() - start, 3)
    combined = _combine(diags)
    return ProcessFit(
        model="growth",
        status=combined["status"],
        effects=effects,
        diagnostics=combined,
        data=data,
        idata=idatas,
        timing=timings,
        definition=GROWTH_DEFINITION,
        input_mcse=input_mcse,
    )


def _growth_check_names(model: pm.Model) -> list[str]:
    # the per-patient conditional means are functions of the population parameters
    skip = {"b1_patient", "level_patient"}
    names = [v.name for v in model.free_RVs] + [v.name for v in model.deterministics]
    return [n for n in names if n not in skip]


# --------------------------------------------------------------------------- rater perspectives

RATER_DEFINITION = (
    "Which perspective predicts outcome: one Bayesian regression of the post-treatment "
    "outcome (z) on the client's and the therapist's alliance ratings of the same session "
    "(each z-scored over patients) and the baseline outcome, so each slope is that rater's "
    "unique contribution given the other (as in Zilcha-Mano et al. 2015); reported: both "
    "slopes and P(|client slope| > |therapist slope|). Clients' and therapists' views of the "
    "alliance overlap only modestly and both can predict outcome (Bachelor 2013); "
    "meta-analyses compare the alliance-outcome association across assessment perspectives "
    "(Horvath et al. 2011; Flückiger et al. 2018)."
)


def rater_outcome_data(
    tables: Mapping[str, pd.DataFrame],
    alliance_session: int = 3,
    rater: str = "client",
    second_rater: str = "therapist",
    score: str = "total_mean",
    measure: str = "phq9",
) -> dict[str, Any]:
    """Patients with both raters' alliance at ``alliance_session``, baseline and outcome.

    Baseline and post-treatment outcome follow :func:`alliance.bayes.data.patient_data`.

    Raises
    ------
    InsufficientData
        Without ratings by ``second_rater`` or with fewer than 10 complete patients.

    """
    from alliance.bayes.data import patient_data

    scores = tables["scores"]
    raters = set(scores["rater"].astype(str)) if "rater" in scores else set()
    if second_rater not in raters:
        raise InsufficientData(
            f"no second rater: the scores have rater(s) {sorted(raters)}, no {second_rater!r}"
        )
    try:
        first = patient_data(tables, alliance_session, rater=rater, score=score, measure=measure)
        second = patient_data(
            tables, alliance_session, rater=second_rater, score=score, measure=measure
        )
    except ValueError as exc:
        raise InsufficientData(str(exc)) from exc
    a = first.frame.set_index("patient_id")
    b = second.frame.set_index("patient_id")["alliance"].rename("alliance_2")
    frame = a.join(b, how="inner").dropna(subset=["alliance", "alliance_2"])
    if len(frame) < 10:
        raise InsufficientData(
            f"{len(frame)} patients have both {rater} and {second_rater} ratings at session "
            f"{alliance_session} and an outcome (< 10)"
        )
    out = pd.DataFrame(index=frame.index)
    out["z_first"] = _z(frame["alliance"].to_numpy())[0]
    out["z_second"] = _z(frame["alliance_2"].to_numpy())[0]
    out["z_baseline"], _, _ = _z(frame["baseline"].to_numpy())
    out["z_post"], post_mean, post_sd = _z(frame["post"].to_numpy())
    info = {
        "alliance": f"{score} of {rater} and {second_rater} at session {alliance_session}",
        "baseline": first.info["baseline"],
        "post": first.info["post"],
        "patients": len(out),
        "r_raters": float(np.corrcoef(out["z_first"], out["z_second"])[0, 1]),
        "scales": {"post_mean": post_mean, "post_sd": post_sd},
    }
    return {"frame": out.reset_index(), "info": info, "raters": (rater, second_rater)}


def rater_outcome(
    tables: Mapping[str, pd.DataFrame],
    sampler: Mapping[str, Any] | None = None,
    *,
    alliance_session: int = 3,
    rater: str = "client",
    second_rater: str = "therapist",
    score: str = "total_mean",
    measure: str = "phq9",
    lower_is_better: bool = True,
    priors: Mapping[str, float] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> ProcessFit:
    """Client vs therapist alliance as predictors of outcome, in one model.

    Model (all variables z-scored over the analysed patients)::

        z_post_i = a + b_client zc_i + b_therapist zt_i + b_baseline z_baseline_i + e_i
        b ~ Normal(0, 1), e_i ~ Normal(0, sigma), sigma ~ HalfNormal(1)

    Both ratings are of the same session (``alliance_session``); the outcome and baseline
    follow :func:`alliance.bayes.data.patient_data` (last observed score after that session
    when there is no fixed post time point). ``client_minus_therapist`` is ``|b_client| -
    |b_therapist|``; its ``p_positive`` is P(|client slope| > |therapist slope|). Skipped
    (``status="skipped"``) when the data have no second rater.

    In the demo data the therapist's latent rating is ``0.4`` times the client's latent
    alliance plus rater-specific variance unrelated to outcome, so the client slope should
    be clearly in the expected direction and the therapist's close to zero.

    Parameters
    ----------
    tables
        :func:`alliance.bayes.data.load_tables` output (``scores``, ``outcomes``,
        ``patients``).
    sampler, priors, thresholds
        As in :func:`dropout_hazard`.
    alliance_session, rater, second_rater, score, measure
        Data rules.
    lower_is_better
        Sets the expected sign (negative slopes for PHQ-9).

    Returns
    -------
    ProcessFit
        ``effects``: ``b_client``, ``b_therapist`` (named after the raters: ``b_{rater}``),
        ``b_baseline``, ``sigma``, ``client_minus_therapist`` and
        ``p_first_rater_stronger``.

    References
    ----------
    Horvath, A. O., Del Re, A. C., Flückiger, C., & Symonds, D. (2011). Alliance in
    individual psychotherapy. Psychotherapy, 48(1), 9-16.
    Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in
    adult psychotherapy: A meta-analytic synthesis. Psychotherapy, 55(4), 316-340.
    Zilcha-Mano, S., Solomonov, N., Chui, H., McCarthy, K. S., Barrett, M. S., & Barber,
    J. P. (2015). Therapist-reported alliance: Is it really a predictor of outcome? Journal
    of Counseling Psychology, 62(4), 568-578.
    Bachelor, A. (2013). Clients' and therapists' views of the therapeutic alliance:
    Similarities, differences and relationship to therapy outcome. Clinical Psychology &
    Psychotherapy, 20(2), 118-135.

    """
    try:
        inputs = rater_outcome_data(
            tables, alliance_session, rater, second_rater, score=score, measure=measure
        )
    except InsufficientData as exc:
        return _skipped("rater_outcome", str(exc), RATER_DEFINITION)
    start = time.perf_counter()
    f = inputs["frame"]
    n1, n2 = f"b_{rater}", f"b_{second_rater}"
    x = {n1: f["z_first"], n2: f["z_second"], "b_baseline": f["z_baseline"]}
    idata, diag, timing = _fit(
        _regression_model(f["z_post"].to_numpy(), x, priors), sampler, thresholds
    )
    sign = "negative" if lower_is_better else "positive"
    effects = {
        n1: _summary(_draws(idata, n1), sign),
        n2: _summary(_draws(idata, n2), sign),
        "b_baseline": _summary(_draws(idata, "b_baseline")),
        "sigma": _summary(_draws(idata, "sigma")),
    }
    diff = np.abs(_draws(idata, n1)) - np.abs(_draws(idata, n2))
    effects[f"{rater}_minus_{second_rater}"] = _summary(diff)
    effects["p_first_rater_stronger"] = float(np.mean(diff > 0))
    timing["total_s"] = round(time.perf_counter() - start, 3)
    return ProcessFit(
        model="rater_outcome",
        status=diag["status"],
        effects=effects,
        diagnostics=diag,
        data=inputs["info"],
        idata=idata,
        timing=timing,
        definition=RATER_DEFINITION,
    )


# --------------------------------------------------------------------------- ruptures

RUPTURE_DEFINITION = (
    "Association of the numbers of repaired and unrepaired rupture-repair episodes (V-shaped "
    "high-low-high drops and returns, Stiles et al. 2004; a rupture is a deterioration of "
    "the collaboration between patient and therapist, Safran & Muran 2000; detected by "
    "alliance.process.ruptures) with the post-treatment outcome (linear regression on the "
    "counts, controlling the baseline; outcome in baseline SDs, reported in raw points) and "
    "with dropout (logistic regression on the counts). Reported: both slopes and the "
    "difference repaired - unrepaired; the meta-analysis of Eubanks et al. (2018) found "
    "repair episodes related to better outcome."
)


def rupture_outcome_data(
    patients: pd.DataFrame,
    outcome: pd.DataFrame,
    dropout: pd.DataFrame | None = None,
    min_patients: int = 3,
) -> dict[str, Any]:
    """Per-patient rupture counts joined with the outcome (and dropout).

    Parameters
    ----------
    patients
        ``ruptures_patients.csv`` (:data:`alliance.process.ruptures.PATIENT_COLUMNS`);
        only ``eligible`` patients are analysed.
    outcome
        ``patient_id``, ``baseline``, ``post`` (for example the frame of
        :func:`alliance.bayes.data.patient_data`).
    dropout
        ``patient_id``, ``dropped_out`` (for example from
        :func:`alliance.process.trajectories.dropout_status`), or None.
    min_patients
        Minimum number of patients with a repaired and with an unrepaired rupture.

    Raises
    ------
    InsufficientData
        When no rupture was detected, or too few patients have repaired or unrepaired ones.

    """
    rows = patients
    if "eligible" in rows:
        rows = rows[rows["eligible"].astype(bool)]
    if rows.empty or int(rows["n_ruptures"].sum()) == 0:
        raise InsufficientData("no rupture-repair episode was detected")
    n_rep = int((rows["n_repaired"] > 0).sum())
    n_unrep = int((rows["n_unrepaired"] > 0).sum())
    if n_rep < min_patients or n_unrep < min_patients:
        raise InsufficientData(
            f"{n_rep} patients with a repaired and {n_unrep} with an unrepaired rupture: "
            f"the comparison needs at least {min_patients} of each"
        )
    counts = rows.assign(patient_id=rows["patient_id"].astype(str)).set_index("patient_id")[
        ["n_repaired", "n_unrepaired", "n_censored"]
    ]
    out = outcome.assign(patient_id=outcome["patient_id"].astype(str)).set_index("patient_id")
    frame = counts.join(out[["baseline", "post"]], how="inner").dropna()
    if len(frame) < 10:
        raise InsufficientData(f"{len(frame)} eligible patients with an outcome (< 10)")
    base_sd = float(frame["baseline"].std(ddof=1))
    if not base_sd > 0:
        raise InsufficientData(f"baseline has no variance (SD {base_sd})")
    frame["y"] = (frame["post"] - frame["post"].mean()) / base_sd
    frame["z_baseline"] = _z(frame["baseline"].to_numpy())[0]
    drop = None
    if dropout is not None and len(dropout):
        d = dropout.assign(patient_id=dropout["patient_id"].astype(str)).set_index("patient_id")
        drop = counts.join(d[["dropped_out"]], how="inner").dropna()
        if drop["dropped_out"].nunique() < 2:
            drop = None
    info = {
        "patients": len(frame),
        "patients_repaired": n_rep,
        "patients_unrepaired": n_unrep,
        "episodes": {k: int(rows[f"n_{k}"].sum()) for k in ("repaired", "unrepaired", "censored")},
        "outcome_unit": "baseline SD",
        "scales": {"baseline_sd": base_sd},
        "dropout_patients": None if drop is None else len(drop),
    }
    return {"frame": frame.reset_index(), "dropout": drop, "info": info}


def rupture_outcome(
    patients: pd.DataFrame,
    outcome: pd.DataFrame,
    dropout: pd.DataFrame | None = None,
    sampler: Mapping[str, Any] | None = None,
    *,
    lower_is_better: bool = True,
    min_patients: int = 3,
    priors: Mapping[str, float] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> ProcessFit:
    """Repaired vs unrepaired ruptures as predictors of outcome and of dropout.

    Outcome model (``y`` = post-treatment outcome centred and divided by the baseline SD)::

        y_i = a + b_repaired R_i + b_unrepaired U_i + b_censored C_i + b_baseline zb_i + e_i

    with ``R``, ``U``, ``C`` the patient's numbers of repaired, unrepaired and censored
    episodes (censored: the repair window was not observed). ``repaired_minus_unrepaired``
    is ``b_repaired - b_unrepaired`` (negative = repaired ruptures go with fewer symptoms
    than unrepaired ones, for PHQ-9); ``*_points`` multiply by the baseline SD.

    Dropout model (patients, logistic)::

        logit P(dropout_i) = c + d_repaired R_i + d_unrepaired U_i

    Censored episodes are left out of the dropout model: a censored episode *is* an
    unobserved follow-up, mostly dropout. The dropout association is descriptive and biased
    towards repaired = staying: a repair can only be observed in a patient who returns.

    Demo truth: a repaired rupture lowers the PHQ-9 change by 1.5 points (truth.json
    ``ruptures.repair_effect_phq9_points``), an unrepaired one has no direct effect (its
    persisting dip acts through the lagged alliance effect, about +0.4 points). Detection
    misclassifies some episodes and the outcome is the last observed score, so the
    estimate of the difference is attenuated towards 0 but should stay negative.

    Parameters
    ----------
    patients, outcome, dropout, min_patients
        See :func:`rupture_outcome_data`.
    sampler, priors, thresholds
        As in :func:`dropout_hazard`.
    lower_is_better
        Sets the expected sign of the difference.

    Returns
    -------
    ProcessFit
        ``effects``: ``b_repaired``, ``b_unrepaired``, ``b_censored``, ``b_baseline``,
        ``repaired_minus_unrepaired`` (and ``*_points``), and with dropout ``d_repaired``,
        ``d_unrepaired``, ``d_repaired_minus_unrepaired`` (log-odds).

    References
    ----------
    Stiles, W. B., Glick, M. J., Osatuke, K., Hardy, G. E., Shapiro, D. A., Agnew-Davies,
    R., Rees, A., & Barkham, M. (2004). Patterns of alliance development and the
    rupture-repair hypothesis: Are productive relationships U-shaped or V-shaped? Journal
    of Counseling Psychology, 51(1), 81-92.
    Safran, J. D., & Muran, J. C. (2000). Negotiating the therapeutic alliance: A relational
    treatment guide. Guilford Press.
    Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A
    meta-analysis. Psychotherapy, 55(4), 508-519.

    """
    try:
        inputs = rupture_outcome_data(patients, outcome, dropout, min_patients=min_patients)
    except InsufficientData as exc:
        return _skipped("rupture_outcome", str(exc), RUPTURE_DEFINITION)
    start = time.perf_counter()
    f = inputs["frame"]
    unit = inputs["info"]["scales"]["baseline_sd"]
    x = {
        "b_repaired": f["n_repaired"].to_numpy(float),
        "b_unrepaired": f["n_unrepaired"].to_numpy(float),
        "b_censored": f["n_censored"].to_numpy(float),
        "b_baseline": f["z_baseline"].to_numpy(float),
    }
    idata, diag, timing = _fit(_regression_model(f["y"].to_numpy(), x, priors), sampler, thresholds)
    sign = "negative" if lower_is_better else "positive"
    effects: dict[str, Any] = {}
    for name in ("b_repaired", "b_unrepaired", "b_censored", "b_baseline", "sigma"):
        effects[name] = _summary(_draws(idata, name))
    diff = _draws(idata, "b_repaired") - _draws(idata, "b_unrepaired")
    effects["repaired_minus_unrepaired"] = _summary(diff, sign)
    effects["repaired_minus_unrepaired_points"] = _summary(diff * unit, sign)
    effects["b_repaired_points"] = _summary(_draws(idata, "b_repaired") * unit, sign)
    effects["b_unrepaired_points"] = _summary(_draws(idata, "b_unrepaired") * unit)
    diags = {"outcome": diag}
    timings: dict[str, Any] = {"outcome": timing}
    idatas: dict[str, Any] = {"outcome": idata}
    drop = inputs["dropout"]
    if drop is not None:
        import pymc as pm

        with pm.Model() as dmodel:
            c = pm.Normal("intercept", 0.0, _prior(priors, "baseline"))
            d_r = pm.Normal("d_repaired", 0.0, _prior(priors, "slope"))
            d_u = pm.Normal("d_unrepaired", 0.0, _prior(priors, "slope"))
            eta = (
                c
                + d_r * drop["n_repaired"].to_numpy(float)
                + d_u * drop["n_unrepaired"].to_numpy(float)
            )
            pm.Bernoulli("dropout", logit_p=eta, observed=drop["dropped_out"].to_numpy(int))
        idata2, diag2, timing2 = _fit(dmodel, sampler, thresholds)
        effects["d_repaired"] = _summary(_draws(idata2, "d_repaired"))
        effects["d_unrepaired"] = _summary(_draws(idata2, "d_unrepaired"))
        effects["d_repaired_minus_unrepaired"] = _summary(
            _draws(idata2, "d_repaired") - _draws(idata2, "d_unrepaired")
        )
        diags["dropout"], timings["dropout"], idatas["dropout"] = diag2, timing2, idata2
    timings["total_s"] = round(time.perf_counter() - start, 3)
    combined = _combine(diags)
    return ProcessFit(
        model="rupture_outcome",
        status=combined["status"],
        effects=effects,
        diagnostics=combined,
        data=inputs["info"],
        idata=idatas,
        timing=timings,
        definition=RUPTURE_DEFINITION,
    )
