"""Simulation-based calibration (SBC) of the therapist model on small simulated datasets."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.bayes.data import ModelData
from alliance.bayes.priors import prior_scale

__all__ = [
    "SBC_PARAMETERS",
    "draw_prior",
    "rank_tests",
    "rank_uniformity",
    "run_sbc",
    "simulate_therapist_data",
]

#: Parameters whose ranks are recorded.
SBC_PARAMETERS = ("b_within", "b_between", "tau_u")


def _check_count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def draw_prior(
    rng: np.random.Generator, priors: Mapping[str, float] | None = None
) -> dict[str, float]:
    """One draw of the therapist model's parameters from its prior (:func:`therapist_model`)."""
    return {
        "intercept": float(rng.normal(0.0, prior_scale(priors, "intercept", "intercept"))),
        "b_within": float(rng.normal(0.0, prior_scale(priors, "b_within", "slope"))),
        "b_between": float(rng.normal(0.0, prior_scale(priors, "b_between", "slope"))),
        "b_baseline": float(rng.normal(0.0, prior_scale(priors, "b_baseline", "slope"))),
        "tau_u": float(abs(rng.normal(0.0, prior_scale(priors, "tau_u", "tau")))),
        "sigma": float(abs(rng.normal(0.0, prior_scale(priors, "sigma", "sigma")))),
    }


def simulate_therapist_data(
    rng: np.random.Generator, params: Mapping[str, float], n_patients: int, n_therapists: int
) -> ModelData:
    """Simulate inputs of the therapist model from ``params`` (its generative model).

    Patients are spread over therapists as evenly as possible; alliance z-scores have a
    therapist component (share .2) so that ``a_between`` varies; ``a_within`` and
    ``a_between`` are formed as in :func:`alliance.bayes.data.patient_data`; ``y`` follows
    the model's likelihood given the predictors and the therapist intercepts
    ``tau_u u_raw_j``.
    """
    n_p = _check_count("n_patients", n_patients, 4)
    n_t = _check_count("n_therapists", n_therapists, 2)
    if n_t > n_p // 2:
        raise ValueError(f"need at least 2 patients per therapist, got {n_p} and {n_t}")
    therapist = np.arange(n_p) % n_t
    alliance = np.sqrt(0.2) * rng.standard_normal(n_t)[therapist] + np.sqrt(0.8) * (
        rng.standard_normal(n_p)
    )
    alliance = (alliance - alliance.mean()) / alliance.std(ddof=1)
    between = pd.Series(alliance).groupby(therapist).transform("mean").to_numpy()
    within = alliance - between
    baseline = rng.standard_normal(n_p)
    u_raw = rng.standard_normal(n_t)
    mu = (
        params["intercept"]
        + params["b_within"] * within
        + params["b_between"] * between
        + params["b_baseline"] * baseline
        + params["tau_u"] * u_raw[therapist]
    )
    y = mu + params["sigma"] * rng.standard_normal(n_p)
    frame = pd.DataFrame(
        {
            "patient_id": [f"P{i:04d}" for i in range(n_p)],
            "therapist_id": [f"T{j:03d}" for j in therapist],
            "therapist_idx": therapist.astype(np.int64),
            "a_within": within,
            "a_between": between,
            "z_baseline": baseline,
            "y": y,
        }
    )
    coords = {
        "patient": frame["patient_id"].tolist(),
        "therapist": [f"T{j:03d}" for j in range(n_t)],
    }
    return ModelData(frame=frame, coords=coords, scales={"outcome_unit_sd": 1.0}, info={})


def _rank_one(
    compiled: Any,
    seed: int,
    n_patients: int,
    n_therapists: int,
    settings: Mapping[str, Any],
    sim_priors: Mapping[str, float] | None,
) -> dict[str, Any]:
    """Draw, simulate, fit (the compiled model with this replication's data) and rank."""
    import nutpie

    rng = np.random.default_rng(seed)
    truth = draw_prior(rng, sim_priors)
    f = simulate_therapist_data(rng, truth, n_patients, n_therapists).frame
    t0 = time.perf_counter()
    idata = nutpie.sample(
        compiled.with_data(
            a_within=f["a_within"].to_numpy(float),
            a_between=f["a_between"].to_numpy(float),
            z_baseline=f["z_baseline"].to_numpy(float),
            y_obs=f["y"].to_numpy(float),
        ),
        draws=settings["draws"],
        tune=settings["tune"],
        chains=2,
        cores=settings["cores"],
        seed=seed,
        target_accept=0.95,
        save_warmup=False,
        progress_bar=False,
    )
    out: dict[str, Any] = {"seed": seed, "seconds": time.perf_counter() - t0}
    out["divergences"] = int(np.asarray(idata.sample_stats["diverging"]).sum())
    thin = settings["thin"]
    for name in SBC_PARAMETERS:
        x = np.asarray(idata.posterior[name])[:, ::thin].ravel()
        out[f"rank_{name}"] = int((x < truth[name]).sum())
        out[f"true_{name}"] = truth[name]
    out["n_draws"] = int(np.asarray(idata.posterior["b_within"])[:, ::thin].size)
    return out


def rank_uniformity(ranks: Sequence[int], n_draws: int, bins: int) -> dict[str, float]:
    """Chi-square test that SBC ranks (0..n_draws) are uniform, in ``bins`` equal bins.

    References
    ----------
    Talts, S., Betancourt, M., Simpson, D., Vehtari, A., & Gelman, A. (2018). Validating
    Bayesian inference algorithms with simulation-based calibration. arXiv:1804.06788.

    """
    from scipy.stats import chisquare

    r = np.asarray(ranks, dtype=float)
    if r.size == 0 or r.min() < 0 or r.max() > n_draws:
        raise ValueError(f"ranks must lie in [0, {n_draws}], got {r.min()}..{r.max()}")
    _check_count("bins", bins, 2)
    edges = np.linspace(0, n_draws + 1, bins + 1)
    counts, _ = np.histogram(r, bins=edges)
    stat, p = chisquare(counts)
    return {"chi2": float(stat), "df": bins - 1, "p_value": float(p), "counts": counts.tolist()}


def rank_tests(
    ranks: pd.DataFrame, parameters: Sequence[str], bins: int, alpha: float
) -> tuple[dict[str, dict[str, Any]], int]:
    """:func:`rank_uniformity` of each parameter's ``rank_{name}`` column, flagged at ``alpha``.

    Returns the tests (each with ``uniform``: ``p_value >= alpha``) and the number of draws
    the ranks count (the ``n_draws`` column).
    """
    n_draws = int(ranks["n_draws"].iloc[0])
    tests = {}
    for name in parameters:
        test = rank_uniformity(ranks[f"rank_{name}"], n_draws, bins)
        test["uniform"] = test["p_value"] >= alpha
        tests[name] = test
    return tests, n_draws


def run_sbc(
    n_reps: int,
    n_patients: int,
    n_therapists: int,
    seed: int,
    *,
    draws: int = 500,
    tune: int = 500,
    thin: int = 10,
    bins: int = 10,
    alpha: float = 0.01,
    priors: Mapping[str, float] | None = None,
    fit_priors: Mapping[str, float] | None = None,
    cores: int = 2,
) -> dict[str, Any]:
    """Simulation-based calibration of :func:`alliance.bayes.models.therapist_model`.

    For each replication: draw the parameters from the prior (``priors``), simulate a
    dataset of ``n_patients`` in ``n_therapists`` (:func:`simulate_therapist_data`), fit the
    model with ``fit_priors`` (default ``priors``; a different value gives a deliberately
    miscalibrated check) by nutpie's NUTS (2 chains on ``cores``, ``draws`` each after
    ``tune``, target acceptance .95), thin by
    ``thin`` (about 100 nearly independent draws with the defaults) and record the rank of
    the true ``b_within``, ``b_between`` and ``tau_u`` among the draws. With a correct
    sampler and model the ranks are uniform (Talts et al. 2018); each parameter's ranks are
    tested by :func:`rank_uniformity` and flagged when ``p < alpha``.

    The model is compiled once (its predictors and outcome are data of fixed shape) and each
    replication swaps in its simulated data (``with_data``), so a replication costs only its
    sampling (``seconds`` per replication; ``compile_s`` once).

    Returns
    -------
    dict
        ``ranks`` (DataFrame, one row per replication), ``tests`` (per parameter: chi2, df,
        p_value, counts, ``uniform``), ``n_draws``, ``calibrated`` (all uniform), settings.

    References
    ----------
    Talts, S., Betancourt, M., Simpson, D., Vehtari, A., & Gelman, A. (2018). Validating
    Bayesian inference algorithms with simulation-based calibration. arXiv:1804.06788.
    Modrák, M., et al. (2023). Simulation-based calibration checking for Bayesian
    computation: The choice of test quantities shapes sensitivity. Bayesian Analysis.

    """
    n_reps = _check_count("n_reps", n_reps, 2)
    _check_count("seed", seed, 0)
    _check_count("thin", thin, 1)
    _check_count("cores", cores, 1)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    fit_priors = priors if fit_priors is None else fit_priors
    seeds = np.random.SeedSequence(seed).generate_state(n_reps)
    # validate the design and build the model's structure from a first simulated dataset
    first = simulate_therapist_data(
        np.random.default_rng(0), draw_prior(np.random.default_rng(0)), n_patients, n_therapists
    )
    from threadpoolctl import threadpool_limits

    from alliance.bayes.models import therapist_model
    from alliance.bayes.nutpie_callbacks import compile_for_nutpie
    from alliance.bayes.sampling import reproducible_numba_compilation

    start = time.perf_counter()
    settings = {"draws": draws, "tune": tune, "thin": thin, "cores": cores}
    with threadpool_limits(limits=1, user_api="blas"), reproducible_numba_compilation():
        compiled = compile_for_nutpie(therapist_model(first, fit_priors))
        compile_s = time.perf_counter() - start
        rows = [
            _rank_one(compiled, int(s), n_patients, n_therapists, settings, priors) for s in seeds
        ]
    ranks = pd.DataFrame(rows)
    tests, n_draws = rank_tests(ranks, SBC_PARAMETERS, bins, alpha)
    return {
        "ranks": ranks,
        "tests": tests,
        "n_draws": n_draws,
        "calibrated": all(t["uniform"] for t in tests.values()),
        "seconds": round(time.perf_counter() - start, 2),
        "compile_s": round(compile_s, 2),
        "settings": {
            "n_reps": n_reps,
            "n_patients": n_patients,
            "n_therapists": n_therapists,
            "draws": draws,
            "tune": tune,
            "thin": thin,
            "bins": bins,
            "alpha": alpha,
            "priors": dict(priors or {}),
            "fit_priors": dict(fit_priors or {}),
        },
    }
