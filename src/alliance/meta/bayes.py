"""Bayesian random-effects meta-analysis of correlations on Fisher's z (PyMC)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from alliance.bayes.diagnostics import (
    THRESHOLDS,
    check,
    mcse_mean,
    mcse_quantile,
    mcse_sd,
    summarize,
)
from alliance.bayes.sampling import sample
from alliance.jsonio import jsonable
from alliance.meta.pooling import fisher_z, fisher_z_variance, validate_effects

#: Priors for the between-study standard deviation tau.
TAU_PRIORS = ("halfnormal", "halfcauchy")
#: Samplers: nutpie (default; faster here, compiled with numba) or PyMC's own NUTS.
SAMPLERS = ("nutpie", "pymc")

# Benign warnings raised while importing or compiling (the daily ArviZ refactor notice, and
# PyTensor's note that it found no BLAS, which only slows its C backend).
_BENIGN = (
    (FutureWarning, r"(?s).*ArviZ is undergoing a major refactor"),
    (UserWarning, r"(?s).*PyTensor could not link to a BLAS"),
)


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        for category, message in _BENIGN:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def _interval(draws: np.ndarray, prob: float) -> dict[str, float]:
    """Mean, median, SD and equal-tailed interval, each with its Monte Carlo standard error.

    ``draws`` has shape (chain, draw); a flat array counts as one chain of independent draws
    (the prior draws). The MCSEs follow Vehtari et al. (2021), as in
    :func:`alliance.bayes.diagnostics.posterior_statistics`; they let a rerun on another
    machine be compared within its Monte Carlo error (``alliance verify``).
    """
    x = np.asarray(draws, dtype=float)
    x = (x.reshape(1, -1) if x.ndim == 1 else x.reshape(x.shape[0], -1))[:, :, None]
    flat = x.ravel()
    tails = ((1 - prob) / 2, 1 - (1 - prob) / 2)
    lo, hi = np.quantile(flat, tails)
    return {
        "mean": float(flat.mean()),
        "median": float(np.median(flat)),
        "sd": float(flat.std(ddof=1)),
        "eti.lb": float(lo),
        "eti.ub": float(hi),
        "mcse_mean": float(mcse_mean(x)[0]),
        "mcse_median": float(mcse_quantile(x, 0.5)[0]),
        "mcse_sd": float(mcse_sd(x)[0]),
        "mcse_eti.lb": float(mcse_quantile(x, tails[0])[0]),
        "mcse_eti.ub": float(mcse_quantile(x, tails[1])[0]),
    }


def _check_settings(
    tau_prior: str, sampler: str, prior_mu_sd: float, prior_tau_scale: float, interval_prob: float
) -> None:
    if tau_prior not in TAU_PRIORS:
        raise ValueError(f"tau_prior must be one of {TAU_PRIORS}, got {tau_prior!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if not prior_mu_sd > 0:
        raise ValueError(f"prior_mu_sd must be positive, got {prior_mu_sd}")
    if not prior_tau_scale > 0:
        raise ValueError(f"prior_tau_scale must be positive, got {prior_tau_scale}")
    if not 0 < interval_prob < 1:
        raise ValueError(f"interval_prob must lie in (0, 1), got {interval_prob}")


def build_model(
    yi: Any,
    vi: Any,
    prior_mu_sd: float = 1.0,
    tau_prior: str = "halfnormal",
    prior_tau_scale: float = 0.5,
) -> Any:
    """Build the PyMC model ``y_k ~ N(mu, tau^2 + v_k)``, the marginal random-effects model.

    ``mu ~ Normal(0, prior_mu_sd)`` and ``tau ~ HalfNormal(prior_tau_scale)`` or
    ``HalfCauchy(prior_tau_scale)``, both on the Fisher-z scale (a z of 0.5 is r = .46).

    Returns
    -------
    pymc.Model

    """
    _check_settings(tau_prior, "pymc", prior_mu_sd, prior_tau_scale, 0.5)
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    with _quiet():
        import pymc as pm

        with pm.Model(coords={"study": np.arange(y.size)}) as model:
            mu = pm.Normal("mu", mu=0.0, sigma=prior_mu_sd)
            if tau_prior == "halfnormal":
                tau = pm.HalfNormal("tau", sigma=prior_tau_scale)
            else:
                tau = pm.HalfCauchy("tau", beta=prior_tau_scale)
            pm.Normal("y", mu=mu, sigma=pm.math.sqrt(tau**2 + v), observed=y, dims="study")
    return model


def fit_bayes_meta(
    yi: Any,
    vi: Any,
    prior_mu_sd: float = 1.0,
    tau_prior: str = "halfnormal",
    prior_tau_scale: float = 0.5,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    target_accept: float = 0.9,
    cores: int = 2,
    seed: int = 20261125,
    sampler: str = "nutpie",
    interval_prob: float = 0.95,
) -> tuple[dict[str, Any], Any]:
    """Fit the Bayesian random-effects model and summarise it on the correlation scale.

    The model is the marginal normal-normal model ``y_k ~ N(mu, tau^2 + v_k)`` on Fisher's z
    (Sutton & Abrams 2001; Higgins, Thompson & Spiegelhalter 2009) with weakly informative
    priors on ``mu`` and ``tau`` (Williams, Rast & Bürkner 2018 discuss half-normal and
    half-Cauchy priors for tau). The pooled correlation is ``tanh(mu)``; the predictive
    distribution of a new study's true correlation is ``tanh(theta_new)`` with
    ``theta_new ~ N(mu, tau^2)`` drawn once per posterior draw (seeded), the Bayesian
    counterpart of the prediction interval. It is sampled and judged as every PyMC model of
    the package: :func:`alliance.bayes.sampling.sample` and
    :func:`alliance.bayes.diagnostics.check`.

    Parameters
    ----------
    yi, vi
        Fisher z values and their sampling variances.
    prior_mu_sd
        SD of the normal prior on mu (z scale).
    tau_prior
        ``"halfnormal"`` or ``"halfcauchy"``.
    prior_tau_scale
        Scale of the prior on tau (z scale).
    chains, draws, tune, target_accept
        NUTS settings (draws and tune per chain).
    cores
        Chains run in parallel with nutpie; PyMC's NUTS runs this small model's chains in
        turn in one process (:func:`alliance.bayes.sampling.sample`), with the same draws.
    seed
        Random seed of the sampler and of the predictive draws: the same seed gives the
        same numbers.
    sampler
        ``"nutpie"`` (default; on the Molloy data it is about 1.5x faster than PyMC's NUTS
        once compiled, with higher ESS) or ``"pymc"``.
    interval_prob
        Probability mass of the reported equal-tailed intervals.

    Returns
    -------
    summary : dict
        JSON-serialisable: ``settings``, ``k``, ``mu`` (z), ``pooled_r``, ``tau``, ``tau2``,
        ``prediction_r`` (a new study's r), ``prior`` (prior 95% intervals of r and tau,
        for a prior check), ``summary`` (the rows of ``mu`` and ``tau`` with the columns of
        :data:`alliance.bayes.diagnostics.SUMMARY_COLUMNS`, as every Bayesian model's
        ``summary.csv``) and ``diagnostics`` (``rhat_max``, ``ess_bulk_min``,
        ``ess_tail_min``, ``divergences``, ``bfmi``, the ``criteria``, ``status`` "pass" or
        "fail" and the ``problems``: :func:`alliance.bayes.diagnostics.check` with its BARG
        thresholds). Each summary holds ``mean``, ``median``, ``sd`` and the equal-tailed interval
        ``eti.lb``/``eti.ub``, each with its Monte Carlo standard error (``mcse_mean``, ...,
        ``mcse_eti.ub``).
    idata : arviz.InferenceData
        The posterior and sample statistics (save with ``idata.to_netcdf``).

    Raises
    ------
    ValueError
        For unknown priors or samplers, non-positive settings, or fewer than 2 studies.

    References
    ----------
    Higgins, J. P. T., Thompson, S. G., & Spiegelhalter, D. J. (2009). A re-evaluation of
    random-effects meta-analysis. *JRSS A*, 172(1), 137-159.
    Sutton, A. J., & Abrams, K. R. (2001). Bayesian methods in meta-analysis and evidence
    synthesis. *Statistical Methods in Medical Research*, 10(4), 277-303.
    Vehtari, A., Gelman, A., Simpson, D., Carpenter, B., & Bürkner, P.-C. (2021).
    Rank-normalization, folding, and localization: An improved R-hat. *Bayesian Analysis*,
    16(2), 667-718.
    Williams, D. R., Rast, P., & Bürkner, P.-C. (2018). Bayesian meta-analysis with weakly
    informative prior distributions. *PsyArXiv*. https://doi.org/10.31234/osf.io/7tbrm

    """
    _check_settings(tau_prior, sampler, prior_mu_sd, prior_tau_scale, interval_prob)
    for name, value in (("chains", chains), ("draws", draws), ("tune", tune), ("cores", cores)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must lie in (0, 1), got {target_accept}")
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    if y.size < 2 or y.size != v.size:
        raise ValueError(f"need at least 2 studies with yi and vi, got {y.size} and {v.size}")

    model = build_model(y, v, prior_mu_sd, tau_prior, prior_tau_scale)
    settings = {
        "backend": sampler,
        "chains": int(chains),
        "draws": int(draws),
        "tune": int(tune),
        "target_accept": float(target_accept),
        "seed": int(seed),
        "cores": int(cores),
    }
    with _quiet():
        idata, _ = sample(model, settings)
        table = summarize(idata, ["mu", "tau"])
        diagnostics = check(idata, ["mu", "tau"], table=table)
    post = idata.posterior
    mu = post["mu"].to_numpy()
    tau = post["tau"].to_numpy()

    rng = np.random.default_rng(seed)
    theta_new = rng.normal(mu, tau)
    prior_mu = rng.normal(0.0, prior_mu_sd, 20_000)
    prior_tau = np.abs(
        rng.normal(0.0, prior_tau_scale, 20_000)
        if tau_prior == "halfnormal"
        else prior_tau_scale * rng.standard_cauchy(20_000)
    )

    summary = {
        "settings": {
            "model": "y_k ~ N(mu, tau^2 + v_k), y = Fisher z",
            "prior_mu": f"Normal(0, {prior_mu_sd})",
            "prior_tau": (
                f"HalfNormal({prior_tau_scale})"
                if tau_prior == "halfnormal"
                else f"HalfCauchy({prior_tau_scale})"
            ),
            "prior_mu_sd": prior_mu_sd,
            "tau_prior": tau_prior,
            "prior_tau_scale": prior_tau_scale,
            "sampler": sampler,
            "chains": chains,
            "draws": draws,
            "tune": tune,
            "target_accept": target_accept,
            "cores": cores,
            "seed": seed,
            "interval_prob": interval_prob,
        },
        "k": int(y.size),
        "mu": _interval(mu, interval_prob),
        "pooled_r": _interval(np.tanh(mu), interval_prob),
        "tau": _interval(tau, interval_prob),
        "tau2": _interval(tau**2, interval_prob),
        "prediction_r": _interval(np.tanh(theta_new), interval_prob),
        "prior": {
            "pooled_r": _interval(np.tanh(prior_mu), 0.95),
            "tau": _interval(prior_tau, 0.95),
        },
        "summary": table.to_dict(orient="records"),
        "diagnostics": {
            "rhat_max": diagnostics["max_r_hat"],
            "ess_bulk_min": diagnostics["min_ess_bulk"],
            "ess_tail_min": diagnostics["min_ess_tail"],
            "divergences": diagnostics["divergences"],
            "bfmi": diagnostics["bfmi"],
            "criteria": {
                "rhat_max": THRESHOLDS["r_hat"],
                "ess_min": THRESHOLDS["ess_bulk"],
                "ess_tail_min": THRESHOLDS["ess_tail"],
                "divergences": THRESHOLDS["divergences"],
                "bfmi_min": THRESHOLDS["bfmi"],
            },
            "status": diagnostics["status"],
            "problems": diagnostics["failures"],
        },
    }
    return jsonable(summary), idata


def pool_effects_bayes(effects: pd.DataFrame, **settings: Any) -> dict[str, Any]:
    """Bayesian pooling of a study table (``study``, ``r``, ``n``): the summary only.

    ``settings`` are passed to :func:`fit_bayes_meta` (priors and sampler settings from the
    config). Correlations become Fisher z with variance ``1 / (n - 3)`` as in
    :func:`alliance.meta.analysis.pool_effects`.
    """
    data = validate_effects(effects)
    summary, _ = fit_bayes_meta(
        fisher_z(data["r"].to_numpy()), fisher_z_variance(data["n"].to_numpy()), **settings
    )
    return summary
