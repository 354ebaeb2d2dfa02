"""Bayesian dynamic panel model of alliance and symptoms (DSEM-like, latent-mean centering).

The Bayesian counterpart of the RI-CLPM (:mod:`alliance.sem.panel`) for many sessions and
unequal spacing. For patient ``i`` at session ``s`` (both measures observed)::

    x_is = mu_x_i + g_x (s - s0) + w_x_is            alliance, z-scored over patient-sessions
    y_is = mu_y_i + (g_y + b_i) (s - s0) + w_y_is    symptoms in baseline-SD units

The patient's means ``mu_x_i``, ``mu_y_i`` (and, with ``trend="random"``, the patient's own
symptom slope ``b_i``) are latent (latent-mean centering: the within-patient deviations
``w_is`` are taken from the latent mean, not the observed one; Hamaker, Asparouhov et al.
2018's DSEM), multivariate normal over patients. The deviations follow a first-order vector
autoregression on the session grid, ``w_s = Phi w_{s-1} + e_s``, ``e_s ~ N(0, Sigma_e)``:
between two observed sessions ``k`` sessions apart the missed sessions are integrated out
exactly, ``w_s | w_{s-k} ~ N(Phi^k w_{s-k}, sum_{j<k} Phi^j Sigma_e Phi^j')`` (Mplus's
TINTERVAL idea without imputation), so unequal spacing and many sessions cost nothing extra.
The first observed session of each patient has its own covariance ``Sigma_1`` (as the
RI-CLPM's wave 1). ``Phi[1, 0]`` (``phi_yx``) is the cross-lagged effect of alliance on the
next symptoms, ``phi_xy`` the reverse, ``phi_xx`` and ``phi_yy`` the autoregressions;
``b_cross_points`` is ``phi_yx`` in symptom points per SD of the session alliance (the unit
of the session model).

The patient effects enter the likelihood linearly, so they are integrated out exactly per
patient (a Gaussian integral: with each observation's two conditional residuals ``r + a'd``,
``d = u_i - gamma ~ N(0, L L')``, the patient's term is
``-1/2 [sum r^2/v + sum log 2 pi v + log|I + L'ML| - c'L (I + L'ML)^-1 L'c]``, ``M = sum aa'/v``,
``c = sum a r/v``). Sampling the effects instead made a funnel on the demo: its first
sessions lie on each patient's line (the generator adds session noise from session 2 on), so
``sigma1_y`` sat near 0 with the patient effects pinned to it (E-BFMI 0.03, R-hat 1.06 on the
mean symptom level); integrated out, the same data pass every diagnostic with the same
estimates.

It is sampled by :func:`alliance.bayes.sampling.sample` and checked by
:func:`alliance.bayes.diagnostics.check`, as every Bayesian model of the pipeline;
:func:`run_panel_sbc` is its simulation-based calibration on small panels.

References
----------
Hamaker, E. L., Asparouhov, T., Brose, A., Schmiedek, F., & Muthen, B. (2018). At the
frontiers of modeling intensive longitudinal data: Dynamic structural equation models for the
affective measurements from the COGITO study. Multivariate Behavioral Research, 53(6),
820-841.
Asparouhov, T., Hamaker, E. L., & Muthen, B. (2018). Dynamic structural equation models.
Structural Equation Modeling, 25(3), 359-388.
Falkenstrom, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic
models of individual change in psychotherapy process research. Journal of Consulting and
Clinical Psychology, 85(6), 537-549.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alliance.bayes.data import InsufficientData, ModelData
from alliance.bayes.priors import prior_scale

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

__all__ = [
    "PANEL_PARAMETERS",
    "TRENDS",
    "draw_panel_prior",
    "dynamic_panel_model",
    "fit_dynamic_panel",
    "panel_frame",
    "run_panel_sbc",
    "simulate_panel",
]

#: The parameters reported (and ranked by the SBC).
PANEL_PARAMETERS = ("phi_xx", "phi_xy", "phi_yx", "phi_yy", "sigma_x", "sigma_y", "rho_e")
#: Symptom trends: none, one slope for everybody, or each patient's own (random) slope.
TRENDS = ("none", "fixed", "random")
#: Sessions are scaled by this in the trend terms (slopes per 10 sessions).
TIME_SCALE = 10.0


def panel_frame(
    long: pd.DataFrame,
    baseline_sd: float | None = None,
    min_patients: int = 10,
    standardize: bool = True,
) -> ModelData:
    """Model inputs from a long panel (``id``, ``wave``, ``x``, ``y``; e.g. session_panel).

    Only sessions with both measures enter (the state of the autoregression is both
    deviations). ``x`` is z-scored over those patient-sessions; ``y`` is centred at its mean
    and divided by ``baseline_sd`` (default: the SD at the first session), so effects times
    ``scales["outcome_unit_sd"]`` are raw points per SD of alliance. Each row carries the
    index of the patient's previous row (``prev``, -1 for the first) and the gap in sessions
    (``gap``, 0 for the first). ``standardize=False`` keeps ``x`` and ``y`` as they are
    (simulated data on the model's scale).

    Raises
    ------
    InsufficientData
        With fewer than ``min_patients`` patients with two sessions with both measures.
    """
    both = long.dropna(subset=["x", "y"]).sort_values(["id", "wave"]).reset_index(drop=True)
    counts = both.groupby("id")["wave"].transform("size")
    both = both[counts >= 2].reset_index(drop=True)
    n_patients = both["id"].nunique()
    if n_patients < min_patients:
        raise InsufficientData(
            f"fewer than {min_patients} patients with two sessions with both measures, "
            f"got {n_patients}"
        )
    x, y = both["x"].to_numpy(float), both["y"].to_numpy(float)
    if baseline_sd is None:
        first = both["wave"] == both["wave"].min()
        baseline_sd = float(np.std(y[first], ddof=1)) if first.sum() > 1 else float(np.std(y))
    x_mean, x_sd = float(x.mean()), float(x.std(ddof=1))
    y_mean = float(y.mean())
    if not standardize:
        x_mean, x_sd, y_mean, baseline_sd = 0.0, 1.0, 0.0, 1.0
    if not (x_sd > 0 and baseline_sd > 0):
        raise InsufficientData(f"no variation: SD of x {x_sd}, baseline SD of y {baseline_sd}")
    patients = sorted(both["id"].unique())
    idx = pd.Categorical(both["id"], categories=patients).codes.astype(np.int64)
    first_row = np.r_[True, idx[1:] != idx[:-1]]
    prev = np.where(first_row, -1, np.arange(len(both)) - 1)
    gap = np.where(first_row, 0, both["wave"].to_numpy() - np.r_[0, both["wave"].to_numpy()[:-1]])
    frame = pd.DataFrame(
        {
            "patient_idx": idx,
            "wave": both["wave"].to_numpy(int),
            "time": (both["wave"].to_numpy(float) - float(both["wave"].min())) / TIME_SCALE,
            "x": (x - x_mean) / x_sd,
            "y": (y - y_mean) / baseline_sd,
            "prev": prev.astype(np.int64),
            "gap": gap.astype(np.int64),
        }
    )
    return ModelData(
        frame=frame,
        coords={"obs": [str(i) for i in range(len(frame))], "patient": patients},
        scales={
            "x_mean": x_mean,
            "x_sd": x_sd,
            "y_mean": y_mean,
            "outcome_unit_sd": float(baseline_sd),
        },
        info={
            "n_rows": len(frame),
            "n_patients": n_patients,
            "max_gap": int(frame["gap"].max()),
            "rows_with_gap_over_1": int((frame["gap"] > 1).sum()),
        },
    )


def _marginal_loglik(
    r_x: Any, a_x: Any, v_x: Any, r_y: Any, a_y: Any, v_y: Any, chol: Any, patient: np.ndarray
) -> Any:
    """Sum over patients of the normal log density with the patient effects integrated out.

    Per observation the two conditional residuals are ``r + a' d`` (``d = u_i - gamma``) with
    variances ``v``; with ``d ~ N(0, S)``, ``S = L L'``, the integral is
    ``-1/2 [sum r^2/v + sum log(2 pi v) + log|I + L' M L| - c' L (I + L' M L)^-1 L' c]``
    with ``M = sum a a'/v`` and ``c = sum a r / v`` over the patient's observations
    (Gaussian integral, determinant lemma). Rows are sorted by patient.
    """
    import pytensor.tensor as pt

    ends = np.flatnonzero(np.r_[patient[1:] != patient[:-1], True])

    def per_patient(values: Any) -> Any:
        csum = pt.cumsum(values, axis=0)[ends]
        return pt.concatenate([csum[:1], csum[1:] - csum[:-1]], axis=0)

    dims = int(chol.type.shape[0])  # static: n of the LKJ Cholesky factor
    quad = r_x**2 / v_x + r_y**2 / v_y + pt.log(2 * np.pi * v_x) + pt.log(2 * np.pi * v_y)
    outer = (a_x[:, :, None] * a_x[:, None, :]) / v_x[:, None, None] + (
        a_y[:, :, None] * a_y[:, None, :]
    ) / v_y[:, None, None]
    lin = a_x * (r_x / v_x)[:, None] + a_y * (r_y / v_y)[:, None]
    m = per_patient(outer.reshape((outer.shape[0], -1))).reshape((-1, dims, dims))
    c = per_patient(lin)
    # H = I + L' M L (symmetric, eigenvalues >= 1), g = L' c
    m_l = pt.tensordot(m, chol, axes=[[2], [0]])  # (p, j, l): sum_k M_pjk L_kl
    h = pt.eye(dims)[None] + pt.tensordot(chol, m_l, axes=[[0], [1]]).dimshuffle(1, 0, 2)
    g = pt.dot(c, chol)
    logdet, quad_g = _small_spd(h, g, dims)
    return -0.5 * (quad.sum() + logdet.sum() - quad_g.sum())


def _small_spd(h: Any, g: Any, dims: int) -> tuple[Any, Any]:
    """Batched ``log|h|`` and ``g' h^-1 g`` of SPD ``h`` (p, d, d), ``g`` (p, d), d <= 3.

    By an unrolled Cholesky factorization (elementwise operations only).
    """
    import pytensor.tensor as pt

    el = [[None] * dims for _ in range(dims)]
    for i in range(dims):
        for j in range(i + 1):
            total = h[:, i, j]
            for k in range(j):
                total = total - el[i][k] * el[j][k]
            el[i][j] = pt.sqrt(total) if i == j else total / el[j][j]
    logdet = 2.0 * sum(pt.log(el[i][i]) for i in range(dims))
    # forward substitution: L z = g, then g' h^-1 g = z' z
    z = []
    for i in range(dims):
        total = g[:, i]
        for k in range(i):
            total = total - el[i][k] * z[k]
        z.append(total / el[i][i])
    return logdet, sum(zi**2 for zi in z)


def dynamic_panel_model(
    data: ModelData, priors: Mapping[str, float] | None = None, trend: str = "random"
) -> pm.Model:
    """The PyMC model (see the module docstring) on :func:`panel_frame`'s inputs.

    Priors (standardized scales, :data:`alliance.bayes.models.DEFAULT_PRIORS`): the lagged
    effects ``Normal(0, slope)``; the mean levels and trends ``Normal(0, intercept)``; the
    SDs of the patient means and slopes, of the innovations and of the first session
    ``HalfNormal(sigma)``; correlations LKJ(2) among the patient effects and uniform on
    (-1, 1) for the two residual correlations.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if trend not in TRENDS:
        raise ValueError(f"trend must be one of {TRENDS}, got {trend!r}")
    f = data.frame
    k_max = max(int(f["gap"].max()), 1)
    dims = 3 if trend == "random" else 2
    coords = {"obs": data.coords["obs"], "patient": data.coords["patient"]}
    coords["effect"] = ["mu_x", "mu_y", "slope_y"][:dims]
    slope, sigma_s = prior_scale(priors, "phi", "slope"), prior_scale(priors, "sd", "sigma")
    with pm.Model(coords=coords) as model:
        xo = pm.Data("x_obs", f["x"].to_numpy(float), dims="obs")
        yo = pm.Data("y_obs", f["y"].to_numpy(float), dims="obs")
        t = pm.Data("time", f["time"].to_numpy(float), dims="obs")
        prev = pm.Data("prev", np.maximum(f["prev"].to_numpy(np.int64), 0), dims="obs")
        gap = pm.Data("gap", f["gap"].to_numpy(np.int64), dims="obs")
        gamma = pm.Normal(
            "gamma", 0.0, prior_scale(priors, "intercept", "intercept"), dims="effect"
        )
        chol, _, _ = pm.LKJCholeskyCov(
            "chol_u", n=dims, eta=2.0, sd_dist=pm.HalfNormal.dist(sigma_s), compute_corr=True
        )
        # the patient effects u_i ~ N(gamma, S) enter the likelihood linearly: each patient's
        # residuals are r + A (u_i - gamma), so u_i is integrated out exactly per patient
        # (Gaussian integral; determinant lemma), which leaves no per-patient parameter and no
        # funnel between them and the variance of the first session's deviations
        t_np = f["time"].to_numpy(float)
        n_obs = len(f)
        design_x = np.zeros((n_obs, dims))
        design_x[:, 0] = 1.0
        design_y = np.zeros((n_obs, dims))
        design_y[:, 1] = 1.0
        if trend == "random":
            design_y[:, 2] = t_np
        trend_x = trend_y = 0.0
        if trend != "none":
            trend_scale = prior_scale(priors, "trend", "intercept")
            trend_x = pm.Normal("trend_x", 0.0, trend_scale)
            if trend == "fixed":
                trend_y = pm.Normal("trend_y", 0.0, trend_scale)
        mean_x = gamma[0] + trend_x * t
        mean_y = gamma[1] + trend_y * t
        if trend == "random":
            mean_y = mean_y + gamma[2] * t
        # deviations at u_i = gamma, and their derivative by u_i (d w / d u = -design)
        wx, wy = xo - mean_x, yo - mean_y
        phi_xx = pm.Normal("phi_xx", 0.0, slope)
        phi_xy = pm.Normal("phi_xy", 0.0, slope)  # y_{t-1} -> x_t
        phi_yx = pm.Normal("phi_yx", 0.0, slope)  # x_{t-1} -> y_t (alliance -> symptoms)
        phi_yy = pm.Normal("phi_yy", 0.0, slope)
        sx = pm.HalfNormal("sigma_x", sigma_s)
        sy = pm.HalfNormal("sigma_y", sigma_s)
        rho = pm.Uniform("rho_e", -1.0, 1.0)
        s1x = pm.HalfNormal("sigma1_x", sigma_s)
        s1y = pm.HalfNormal("sigma1_y", sigma_s)
        rho1 = pm.Uniform("rho1", -1.0, 1.0)
        phi = pt.stack([pt.stack([phi_xx, phi_xy]), pt.stack([phi_yx, phi_yy])])
        sig_e = pt.stack([pt.stack([sx**2, rho * sx * sy]), pt.stack([rho * sx * sy, sy**2])])
        # Phi^k and the covariance of k steps, k = 0..k_max (index 0: the first session)
        powers, covs = (
            [pt.eye(2)],
            [
                pt.stack(
                    [pt.stack([s1x**2, rho1 * s1x * s1y]), pt.stack([rho1 * s1x * s1y, s1y**2])]
                )
            ],
        )
        acc = pt.zeros((2, 2))
        for _ in range(k_max):
            acc = acc + powers[-1] @ sig_e @ powers[-1].T
            covs.append(acc)
            powers.append(powers[-1] @ phi)
        pw, cv = pt.stack(powers)[gap], pt.stack(covs)[gap]
        first = pt.eq(gap, 0)
        prev_np = np.maximum(f["prev"].to_numpy(np.int64), 0)
        not_first = (f["gap"].to_numpy() > 0).astype(float)
        px = pt.switch(first, 0.0, wx[prev])
        py = pt.switch(first, 0.0, wy[prev])
        dpx = -design_x[prev_np] * not_first[:, None]
        dpy = -design_y[prev_np] * not_first[:, None]
        m_x = pw[:, 0, 0] * px + pw[:, 0, 1] * py
        m_y = pw[:, 1, 0] * px + pw[:, 1, 1] * py
        dm_x = pw[:, 0, 0][:, None] * dpx + pw[:, 0, 1][:, None] * dpy
        dm_y = pw[:, 1, 0][:, None] * dpx + pw[:, 1, 1][:, None] * dpy
        v_x = cv[:, 0, 0]
        c_xy = cv[:, 0, 1]
        v_y = cv[:, 1, 1] - c_xy**2 / v_x
        k = c_xy / v_x
        # residuals r (at u_i = gamma) and their coefficients a on u_i - gamma
        r_x = wx - m_x
        a_x = -design_x - dm_x
        r_y = wy - m_y - k * r_x
        a_y = -design_y - dm_y - k[:, None] * a_x
        pm.Potential(
            "panel_loglik",
            _marginal_loglik(r_x, a_x, v_x, r_y, a_y, v_y, chol, f["patient_idx"].to_numpy()),
        )
        pm.Deterministic("b_cross_points", phi_yx * float(data.scales["outcome_unit_sd"]))
    return model


def fit_dynamic_panel(
    long: pd.DataFrame,
    sampler: Mapping[str, Any] | None = None,
    *,
    trend: str = "random",
    priors: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Fit the dynamic panel model and summarize it (sampling, diagnostics, key effects).

    Parameters
    ----------
    long
        The long panel: ``id``, ``wave``, ``x`` (alliance), ``y`` (symptoms); e.g.
        :func:`alliance.panel.data.session_panel` of a dataset's tables.
    sampler
        Settings of :func:`alliance.bayes.sampling.sample`.
    trend, priors
        See :func:`dynamic_panel_model`.

    Returns
    -------
    dict
        ``status`` (``pass``/``fail`` of :func:`alliance.bayes.diagnostics.check`, or
        ``skipped`` with a ``reason``), ``diagnostics``, ``effects`` (mean, sd, 90% ETI of
        :data:`PANEL_PARAMETERS` and ``b_cross_points``), ``info``, ``scales``, ``timing``;
        ``idata`` holds the draws (not JSON).
    """
    from alliance.bayes.diagnostics import check
    from alliance.bayes.sampling import sample

    try:
        data = panel_frame(long)
    except InsufficientData as err:
        return {"status": "skipped", "reason": str(err)}
    model = dynamic_panel_model(data, priors, trend)
    idata, timing = sample(model, sampler)
    names = [*PANEL_PARAMETERS, "b_cross_points"]
    diag = check(idata, var_names=names + ["gamma", "chol_u_stds"])
    effects = {}
    for name in names:
        draws = np.asarray(idata.posterior[name]).ravel()
        low, high = np.quantile(draws, [0.05, 0.95])
        effects[name] = {
            "mean": float(draws.mean()),
            "sd": float(draws.std(ddof=1)),
            "eti90_low": float(low),
            "eti90_high": float(high),
        }
    return {
        "status": diag["status"],
        "diagnostics": diag,
        "effects": effects,
        "info": {**data.info, "trend": trend},
        "scales": data.scales,
        "timing": {k: v for k, v in timing.items() if k != "settings"},
        "idata": idata,
    }


# --------------------------------------------------------------------------- calibration


def draw_panel_prior(rng: np.random.Generator, phi_scale: float = 0.5) -> dict[str, float]:
    """One draw of the parameters of :func:`dynamic_panel_model` (trend ``none``) from its prior.

    With ``priors={"phi": phi_scale}``: lagged effects Normal(0, ``phi_scale``), mean levels
    Normal(0, 1), SDs HalfNormal(1), the residual correlations uniform on (-1, 1) and the
    correlation of the patient means LKJ(2) (for two dimensions ``2 Beta(2, 2) - 1``).
    """
    hn = lambda: float(abs(rng.normal()))  # noqa: E731 - HalfNormal(1)
    phi = rng.normal(0.0, phi_scale, size=4)
    return {
        "phi_xx": float(phi[0]),
        "phi_xy": float(phi[1]),
        "phi_yx": float(phi[2]),
        "phi_yy": float(phi[3]),
        "sigma_x": hn(),
        "sigma_y": hn(),
        "rho_e": float(rng.uniform(-1, 1)),
        "sigma1_x": hn(),
        "sigma1_y": hn(),
        "rho1": float(rng.uniform(-1, 1)),
        "sd_mu_x": hn(),
        "sd_mu_y": hn(),
        "rho_mu": float(2 * rng.beta(2.0, 2.0) - 1),
        "gamma_x": float(rng.normal()),
        "gamma_y": float(rng.normal()),
    }


def _cov(sd_a: float, sd_b: float, rho: float) -> np.ndarray:
    return np.array([[sd_a**2, rho * sd_a * sd_b], [rho * sd_a * sd_b, sd_b**2]])


def simulate_panel(
    rng: np.random.Generator,
    params: Mapping[str, float],
    n_patients: int,
    n_sessions: int,
    skip_share: float = 0.2,
) -> pd.DataFrame:
    """A long panel from the model (trend ``none``): ``id``, ``wave``, ``x``, ``y``.

    The first session's deviations have covariance ``Sigma_1``; later ones follow the
    autoregression on every session; a share ``skip_share`` of the sessions after the first is
    missed at random (unequal spacing), so the fit must integrate over the gaps.
    """
    phi = np.array([[params["phi_xx"], params["phi_xy"]], [params["phi_yx"], params["phi_yy"]]])
    sig = _cov(params["sigma_x"], params["sigma_y"], params["rho_e"])
    sig1 = _cov(params["sigma1_x"], params["sigma1_y"], params["rho1"])
    cov_mu = _cov(params["sd_mu_x"], params["sd_mu_y"], params["rho_mu"])
    mu = rng.multivariate_normal([params["gamma_x"], params["gamma_y"]], cov_mu, n_patients)
    rows = []
    for i in range(n_patients):
        w = rng.multivariate_normal([0.0, 0.0], sig1)
        for s in range(1, n_sessions + 1):
            if s > 1:
                w = phi @ w + rng.multivariate_normal([0.0, 0.0], sig)
            if s == 1 or rng.random() >= skip_share:
                rows.append((f"S{i:03d}", s, mu[i, 0] + w[0], mu[i, 1] + w[1]))
    return pd.DataFrame(rows, columns=["id", "wave", "x", "y"])


def run_panel_sbc(
    n_reps: int,
    n_patients: int = 30,
    n_sessions: int = 6,
    seed: int = 20261125,
    *,
    draws: int = 400,
    tune: int = 400,
    thin: int = 4,
    bins: int = 5,
    alpha: float = 0.01,
    phi_scale: float = 0.5,
    parameters: Sequence[str] = ("phi_xx", "phi_xy", "phi_yx", "phi_yy"),
) -> dict[str, Any]:
    """Simulation-based calibration of :func:`dynamic_panel_model` (trend ``none``).

    For each replication: parameters from the model's prior (:func:`draw_panel_prior`, the
    lagged effects Normal(0, ``phi_scale``) in both), a small panel from
    :func:`simulate_panel` (with missed sessions), a fit by
    :func:`alliance.bayes.sampling.sample` (PyMC's NUTS, 2 chains) on the data's own scale,
    and the rank of each true value among the thinned draws; each parameter's ranks are
    tested for uniformity by :func:`alliance.bayes.calibration.rank_uniformity` (Talts et al.
    2018).

    Returns
    -------
    dict
        ``ranks`` (DataFrame), ``tests`` (per parameter, with ``uniform``), ``n_draws``,
        ``calibrated``, ``divergences`` (total), ``seconds``.
    """
    from alliance.bayes.calibration import rank_tests
    from alliance.bayes.sampling import sample

    start = time.perf_counter()
    seeds = np.random.SeedSequence(seed).generate_state(n_reps)
    rows = []
    for s in seeds:
        rng = np.random.default_rng(int(s))
        truth = draw_panel_prior(rng, phi_scale)
        long = simulate_panel(rng, truth, n_patients, n_sessions)
        data = panel_frame(long, min_patients=2, standardize=False)
        model = dynamic_panel_model(data, {"phi": phi_scale}, trend="none")
        settings = {"backend": "pymc", "chains": 2, "draws": draws, "tune": tune}
        idata, _ = sample(model, {**settings, "seed": int(s) % 2**31, "cores": 1})
        row: dict[str, Any] = {"seed": int(s)}
        row["divergences"] = int(np.asarray(idata.sample_stats["diverging"]).sum())
        for name in parameters:
            x = np.asarray(idata.posterior[name])[:, ::thin].ravel()
            row[f"rank_{name}"] = int((x < truth[name]).sum())
            row[f"true_{name}"] = truth[name]
        row["n_draws"] = int(np.asarray(idata.posterior[parameters[0]])[:, ::thin].size)
        rows.append(row)
    ranks = pd.DataFrame(rows)
    tests, n_draws = rank_tests(ranks, parameters, bins, alpha)
    return {
        "ranks": ranks,
        "tests": tests,
        "n_draws": n_draws,
        "calibrated": all(t["uniform"] for t in tests.values()),
        "divergences": int(ranks["divergences"].sum()),
        "seconds": round(time.perf_counter() - start, 2),
    }
