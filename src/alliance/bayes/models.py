"""PyMC builders of the outcome, therapist and session models on the standardized scale."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from alliance.bayes.data import ModelData
from alliance.bayes.priors import DEFAULT_PRIORS, prior_scale, scale_priors

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

__all__ = [
    "DEFAULT_PRIORS",
    "KEY_PARAMETERS",
    "MODELS",
    "build_model",
    "outcome_model",
    "prior_scale",
    "scale_priors",
    "session_model",
    "therapist_model",
]

#: The parameters each model reports (their names in ``summary.csv``).
KEY_PARAMETERS: dict[str, list[str]] = {
    "outcome": ["b_alliance", "b_baseline", "r_partial", "r_partial_improvement", "sigma"],
    "outcome_null": ["b_baseline", "sigma"],
    "therapist": [
        "b_within",
        "b_between",
        "contextual",
        "b_within_points",
        "b_between_points",
        "contextual_points",
        "b_baseline",
        "tau_u",
        "sigma",
    ],
    "session": ["b_within", "b_within_points", "b_mean", "b_symptoms", "tau_v", "sigma"],
    # alliance.bayes.latent.latent_model (WAI-SR items; factors in instrument order)
    "latent": [
        "b_latent",
        "r_partial_latent",
        "r_partial_latent_improvement",
        "b_baseline",
        "sigma",
        "r_alliance_baseline",
        "reliability_score",
        *[f"lambda_wai_{k:02d}" for k in range(1, 13)],
        "phi_goal_task",
        "phi_bond_task",
        "phi_bond_goal",
    ],
}


def _residual_variance(x: np.ndarray, z: np.ndarray) -> float:
    """Variance of the residual of ``x`` regressed on ``z`` (with an intercept)."""
    design = np.column_stack([np.ones_like(z), z])
    resid = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    return float(np.var(resid, ddof=1))


def outcome_model(
    data: ModelData, priors: Mapping[str, float] | None = None, alliance: bool = True
) -> pm.Model:
    """Outcome model: standardized outcome on early alliance and baseline.

    ``z_post_i ~ Normal(b0 + b_alliance z_alliance_i + b_baseline z_baseline_i, sigma)``,
    ``b0 ~ Normal(0, intercept)``, slopes ``~ Normal(0, slope)``, ``sigma ~ HalfNormal(sigma)``.
    ``b_alliance`` is the standardized coefficient. ``r_partial`` is the partial correlation of
    alliance and outcome given baseline implied by each draw, computed from the residual
    variance ``v`` of alliance given baseline in the sample:
    ``b_alliance sqrt(v) / sqrt(b_alliance^2 v + sigma^2)``. Its sign is that of the outcome
    scale (PHQ-9: negative = better alliance, fewer symptoms); ``r_partial_improvement`` has
    the sign of the alliance-outcome literature (positive = better alliance, better outcome;
    comparable with r = .278, Flückiger et al. 2018). ``alliance=False`` drops the alliance
    term (the comparison model for LOO).

    References
    ----------
    Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in
    adult psychotherapy: A meta-analytic synthesis. Psychotherapy, 55(4), 316-340.

    """
    import pymc as pm

    f = data.frame
    za, zb = f["z_alliance"].to_numpy(float), f["z_baseline"].to_numpy(float)
    sign = -1.0 if data.info.get("lower_is_better", True) else 1.0
    with pm.Model(coords={"patient": data.coords["patient"]}) as model:
        x_b = pm.Data("z_baseline", zb, dims="patient")
        b0 = pm.Normal("intercept", 0.0, prior_scale(priors, "intercept", "intercept"))
        b_b = pm.Normal("b_baseline", 0.0, prior_scale(priors, "b_baseline", "slope"))
        sigma = pm.HalfNormal("sigma", prior_scale(priors, "sigma", "sigma"))
        mu = b0 + b_b * x_b
        if alliance:
            x_a = pm.Data("z_alliance", za, dims="patient")
            b_a = pm.Normal("b_alliance", 0.0, prior_scale(priors, "b_alliance", "slope"))
            mu = mu + b_a * x_a
            # data, not a constant: a constant would be compiled into the C code, so every
            # dataset would compile its own model instead of reusing PyTensor's cache
            v = pm.Data("alliance_residual_variance", _residual_variance(za, zb))
            r = pm.Deterministic(
                "r_partial", b_a * pm.math.sqrt(v) / pm.math.sqrt(b_a**2 * v + sigma**2)
            )
            pm.Deterministic("r_partial_improvement", sign * r)
        y = pm.Data("z_post", f["z_post"].to_numpy(float), dims="patient")
        pm.Normal("y", mu=mu, sigma=sigma, observed=y, dims="patient")
    return model


def therapist_model(data: ModelData, priors: Mapping[str, float] | None = None) -> pm.Model:
    """Therapist model: within- and between-therapist alliance slopes, therapist intercepts.

    ``y_ij = b0 + b_within (A_ij - mean_j A) + b_between mean_j A + b_baseline z_ij + u_j +
    e_ij`` with ``u_j = tau_u u_raw_j``, ``u_raw_j ~ Normal(0, 1)`` (non-centred),
    ``e_ij ~ Normal(0, sigma)``; A is the z-scored early alliance, ``y`` the outcome in baseline
    SD units (:func:`alliance.bayes.data.patient_data`). Priors: slopes ``Normal(0, slope)``,
    ``tau_u ~ HalfNormal(tau)``, ``sigma ~ HalfNormal(sigma)``. Derived: ``contextual =
    b_between - b_within`` (Baldwin et al. 2007: the therapist-level slope carries the
    association) and ``*_points`` in raw outcome points per SD of alliance.

    References
    ----------
    Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
    correlation. Journal of Consulting and Clinical Psychology, 75(6), 842-852.

    """
    import pymc as pm

    f = data.frame
    unit = float(data.scales["outcome_unit_sd"])
    with pm.Model(
        coords={"patient": data.coords["patient"], "therapist": data.coords["therapist"]}
    ) as model:
        aw = pm.Data("a_within", f["a_within"].to_numpy(float), dims="patient")
        ab = pm.Data("a_between", f["a_between"].to_numpy(float), dims="patient")
        zb = pm.Data("z_baseline", f["z_baseline"].to_numpy(float), dims="patient")
        idx = pm.Data("therapist_idx", f["therapist_idx"].to_numpy(np.int64), dims="patient")
        b0 = pm.Normal("intercept", 0.0, prior_scale(priors, "intercept", "intercept"))
        b_w = pm.Normal("b_within", 0.0, prior_scale(priors, "b_within", "slope"))
        b_b = pm.Normal("b_between", 0.0, prior_scale(priors, "b_between", "slope"))
        b_1 = pm.Normal("b_baseline", 0.0, prior_scale(priors, "b_baseline", "slope"))
        tau = pm.HalfNormal("tau_u", prior_scale(priors, "tau_u", "tau"))
        u_raw = pm.Normal("u_raw", 0.0, 1.0, dims="therapist")
        sigma = pm.HalfNormal("sigma", prior_scale(priors, "sigma", "sigma"))
        # the outcome is data too, so one compiled model serves many datasets of this shape
        # (simulation-based calibration swaps it with nutpie's ``with_data``)
        y_obs = pm.Data("y_obs", f["y"].to_numpy(float), dims="patient")
        mu = b0 + b_w * aw + b_b * ab + b_1 * zb + tau * u_raw[idx]
        pm.Normal("y", mu=mu, sigma=sigma, observed=y_obs, dims="patient")
        pm.Deterministic("contextual", b_b - b_w)
        pm.Deterministic("b_within_points", b_w * unit)
        pm.Deterministic("b_between_points", b_b * unit)
        pm.Deterministic("contextual_points", (b_b - b_w) * unit)
    return model


def session_model(data: ModelData, priors: Mapping[str, float] | None = None) -> pm.Model:
    """Session model: next-session symptoms on within-patient alliance (random intercepts).

    ``y_i,t+1 = b0 + b_within (A_it - mean_i A) + b_mean mean_i A + b_symptoms s_it + v_i +
    e_it`` with ``v_i = tau_v v_raw_i`` (non-centred), ``e_it ~ Normal(0, sigma)``; symptoms
    in baseline SD units, A z-scored over patient-sessions
    (:func:`alliance.bayes.data.session_data`). ``b_within_points`` is the lagged
    within-patient effect in raw points per SD of alliance. Priors as in
    :func:`therapist_model` (``tau_v ~ HalfNormal(tau)``).

    References
    ----------
    Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic
    models of individual change in psychotherapy process research. Journal of Consulting and
    Clinical Psychology, 85(6), 537-549.
    Zilcha-Mano, S. (2017). Is the alliance really therapeutic? American Psychologist, 72(4),
    311-325.

    """
    import pymc as pm

    f = data.frame
    unit = float(data.scales["outcome_unit_sd"])
    with pm.Model(coords={"obs": data.coords["obs"], "patient": data.coords["patient"]}) as model:
        aw = pm.Data("a_within", f["a_within"].to_numpy(float), dims="obs")
        am = pm.Data("a_mean", f["a_mean"].to_numpy(float), dims="obs")
        sn = pm.Data("s_now", f["s_now"].to_numpy(float), dims="obs")
        idx = pm.Data("patient_idx", f["patient_idx"].to_numpy(np.int64), dims="obs")
        b0 = pm.Normal("intercept", 0.0, prior_scale(priors, "intercept", "intercept"))
        b_w = pm.Normal("b_within", 0.0, prior_scale(priors, "b_within", "slope"))
        b_m = pm.Normal("b_mean", 0.0, prior_scale(priors, "b_mean", "slope"))
        b_s = pm.Normal("b_symptoms", 0.0, prior_scale(priors, "b_symptoms", "slope"))
        tau = pm.HalfNormal("tau_v", prior_scale(priors, "tau_v", "tau"))
        v_raw = pm.Normal("v_raw", 0.0, 1.0, dims="patient")
        sigma = pm.HalfNormal("sigma", prior_scale(priors, "sigma", "sigma"))
        mu = b0 + b_w * aw + b_m * am + b_s * sn + tau * v_raw[idx]
        # the outcome as data (not a constant): the compiled operations are then the same for
        # every dataset, and PyTensor's numba cache serves the next dataset's compilation
        y_obs = pm.Data("y_next", f["y_next"].to_numpy(float), dims="obs")
        pm.Normal("y", mu=mu, sigma=sigma, observed=y_obs, dims="obs")
        pm.Deterministic("b_within_points", b_w * unit)
    return model


def _latent(data: ModelData, priors: Mapping[str, float] | None = None) -> pm.Model:
    from alliance.bayes.latent import latent_model

    return latent_model(data, priors)


#: Model name -> (builder, kind of input data: "patient", "session" or "latent").
MODELS: dict[str, tuple[Callable[..., Any], str]] = {
    "outcome": (outcome_model, "patient"),
    "outcome_null": (lambda d, p=None: outcome_model(d, p, alliance=False), "patient"),
    "therapist": (therapist_model, "patient"),
    "session": (session_model, "session"),
    "latent": (_latent, "latent"),
}


def build_model(name: str, data: ModelData, priors: Mapping[str, float] | None = None) -> pm.Model:
    """Build model ``name`` (a key of :data:`MODELS`) on ``data`` with ``priors``."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name][0](data, priors)
