"""Sampler choice and settings: nutpie or PyMC's NUTS, chains, draws, tuning, seed and cores."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    import pymc as pm

__all__ = [
    "BACKENDS",
    "DEFAULT_SAMPLER",
    "SMALL_MODEL_PARAMETERS",
    "add_predictive",
    "choose_backend",
    "prior_predictive",
    "sample",
    "sampler_settings",
]

#: Default sampler settings (config key ``bayes.sampler``). Two chains on the project's
#: 2-core machines, 1,000 tuning and 2,000 kept draws each (with 1,000 draws the bulk ESS of
#: the therapist SD ``tau_u``, whose posterior piles up near zero, was about 370-530: too close
#: to the 400 threshold), target acceptance 0.95 (at 0.9 the therapist model on 10,000
#: patients in 500 therapists missed the tail ESS threshold for ``tau_u``, 326; at 0.95 it
#: reached 798, sampling 9 s instead of 3 s; bench/bayes_speed.py), the project's master seed.
DEFAULT_SAMPLER: dict[str, Any] = {
    "backend": "auto",
    "chains": 2,
    "draws": 2000,
    "tune": 1000,
    "target_accept": 0.95,
    "seed": 20261125,
    "cores": 2,
}

BACKENDS = ("auto", "nutpie", "pymc")

#: ``backend: auto`` uses nutpie for every model (PyMC's NUTS only when nutpie cannot be
#: imported). Until December 2026 it chose PyMC's NUTS, compiled in C, for models under 10
#: parameters (the outcome model and the process models' second stages), when a nutpie
#: compilation took 8-20 s per model. With the compiled operations cached and loaded by every
#: later model (:mod:`alliance.bayes.nutpie_callbacks`), nutpie fits the demo's outcome model
#: in 1.1-1.2 s (0.8-1.0 s compiling, 0.15 s sampling) against 2.0-3.1 s for PyMC's NUTS
#: (1.5-1.7 s of it sampling in Python), same machine, warm caches; the cold demo (2 cores,
#: fresh clones back to back) took 293 s (577 s of CPU) with nutpie for all against 325 s (627
#: s) before, and ``make verify`` passed on it (its Monte Carlo numbers within their MCSE).
#: A PyMC model below this many free parameter elements samples its chains in-process
#: (:func:`_pymc_cores`).
SMALL_MODEL_PARAMETERS = 10


def sampler_settings(sampler: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return validated sampler settings: :data:`DEFAULT_SAMPLER` updated with ``sampler``.

    Raises
    ------
    ValueError
        For an unknown key or backend, non-positive counts, or target_accept outside (0, 1).

    """
    settings = dict(DEFAULT_SAMPLER)
    for key, value in (sampler or {}).items():
        if key not in DEFAULT_SAMPLER:
            raise ValueError(f"unknown sampler setting, got {key!r}")
        settings[key] = value
    if settings["backend"] not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {settings['backend']!r}")
    for key in ("chains", "draws", "tune", "cores"):
        value = settings[key]
        low = 0 if key == "tune" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key} must be a whole number >= {low}, got {value!r}")
    seed = settings["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    ta = settings["target_accept"]
    if not isinstance(ta, int | float) or not 0 < ta < 1:
        raise ValueError(f"target_accept must lie in (0, 1), got {ta!r}")
    return settings


def _n_parameters(model: pm.Model) -> int:
    point = model.initial_point()
    return sum(int(math.prod(point[v.name].shape)) for v in model.value_vars)


def choose_backend(model: pm.Model, settings: Mapping[str, Any]) -> str:
    """Return ``"nutpie"`` or ``"pymc"``: the configured backend; ``auto`` is nutpie if installed.

    ``model`` is not consulted: every model of the package, the 4-parameter outcome model
    included, fits faster with nutpie (measurements at :data:`SMALL_MODEL_PARAMETERS`).
    """
    backend = settings.get("backend", "auto")
    if backend != "auto":
        return backend
    try:
        import nutpie  # noqa: F401
    except ImportError:  # pragma: no cover - nutpie is a dependency
        return "pymc"
    return "nutpie"


class _KnownFusionFailure(logging.Filter):
    """Drop the three ERROR records of PyTensor's FusionOptimizer failing with a KeyError.

    Compiling the latent model for nutpie, PyTensor's elementwise fusion rewrite raises
    ``KeyError: _unconstrained_point`` inside ``elemwise_to_scalar`` (a PyTensor bug in
    finding fusable subgraphs, pytensor#2145). PyTensor catches it, skips fusion for that
    graph and logs the rewriter, "Traceback:" and the traceback. Fusion is an optimization:
    PyTensor keeps the unfused graph, which computes the same log density. This failure is
    counted and reported in one line; any other rewrite error passes through. Since
    :func:`fusion_past_planning_error` runs the pass again after this error, it is only
    logged if ten passes in a row fail.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._pending = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("SequentialGraphRewriter apply") and "FusionOptimizer" in message:
            self._pending = 2
            return False
        if self._pending == 2 and message == "Traceback:":
            self._pending = 1
            return False
        if self._pending == 1:
            self._pending = 0
            if "KeyError: _unconstrained_point" in message:
                self.count += 1
                return False
        return True


@contextmanager
def _quiet_known_rewrite_failures() -> Iterator[_KnownFusionFailure]:
    logger = logging.getLogger("pytensor.graph.rewriting.basic")
    known = _KnownFusionFailure()
    logger.addFilter(known)
    try:
        yield known
    finally:
        logger.removeFilter(known)
        if known.count:
            logging.getLogger("alliance").info(
                "PyTensor skipped its elementwise fusion for %d graph(s) of this model "
                "(pytensor#2145: FusionOptimizer KeyError); the compiled code is correct",
                known.count,
            )


def _raised_in_elemwise_to_scalar(error: KeyError) -> bool:
    """Whether ``error`` is pytensor#2145's: raised in ``FusionOptimizer.elemwise_to_scalar``."""
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_name == "elemwise_to_scalar":
            return True
        trace = trace.tb_next
    return False


@contextmanager
def fusion_past_planning_error(max_passes: int = 10) -> Iterator[list[int]]:
    """Finish PyTensor's elementwise fusion of a graph when its planner fails (pytensor#2145).

    PyTensor's ``FusionOptimizer`` plans all fusable subgraphs of a graph first, then replaces
    them one at a time. Its planner (PyTensor 2.38) may order a subgraph before one that
    consumes its outputs; the later replacement then meets a node it did not plan and raises
    ``KeyError`` in ``elemwise_to_scalar``, and PyTensor drops the rest of the pass and logs
    the traceback. The demo's latent model hits this in every compilation: its log density
    stayed unfused (333 nodes rather than 282), and numba compiled each elementwise operation
    on its own. Every replacement made before the error was validated and the failing one had
    changed nothing yet, so this runs the pass again on the partly fused graph, which plans
    afresh, up to ``max_passes`` times; any other error, or the same error ``max_passes``
    times, reaches PyTensor as before. Fusion changes which loops compute the values, not the
    arithmetic: the latent model's draws are bit-identical with and without it (measured on the
    demo's site_a, nutpie, same seed), and its first numba compilation took 81 s instead of
    91 s (2 cores). PyTensor fixed the planner upstream (pytensor#2150).

    Yields the list of retried passes (one entry per retry), for the caller's log.
    """
    from pytensor.tensor.rewriting.elemwise import FusionOptimizer

    original = FusionOptimizer.apply
    retried: list[int] = []

    def apply(self: Any, fgraph: Any) -> Any:
        for attempt in range(1, max_passes + 1):
            try:
                return original(self, fgraph)
            except KeyError as error:
                if attempt == max_passes or not _raised_in_elemwise_to_scalar(error):
                    raise
                retried.append(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    FusionOptimizer.apply = apply
    try:
        yield retried
    finally:
        FusionOptimizer.apply = original
        if retried:
            logging.getLogger("alliance").info(
                "PyTensor's elementwise fusion planned in the wrong order (pytensor#2145) "
                "%d time(s); fused the rest on another pass",
                len(retried),
            )


@contextmanager
def reproducible_numba_compilation() -> Iterator[None]:
    """Compile PyTensor's numba code with IEEE floating-point semantics (no fast-math).

    Same machine, same seed: the draws must not depend on what an earlier run left in
    PyTensor's on-disk numba cache. With numba's fast-math (PyTensor's default) they did: an
    operation loaded from the cache is a separately compiled function, while a fresh one is
    compiled together with its neighbours, where LLVM's fast-math rewrites (reassociated sums,
    fused multiply-adds, no NaN or infinity checks) may round differently, and NUTS turns one
    different last bit into another chain (the demo's site_b therapist model: posterior mean of
    ``b_within`` -0.25537862 with a warm cache, -0.25575288 compiled afresh). Without fast-math
    LLVM must keep every operation's IEEE result, so inlined and cached code compute the same
    bits, and the cache can stay on: the operations one model compiled are loaded, not compiled
    again, by the next model and dataset. Measured on 2 cores (the demo's latent model, cold
    cache): site_a compiled in 76 s, then site_b in 31 s, and site_b again in 10 s, with draws
    bit-identical to a compilation with the cache off (58 s). Fast-math's ``nnan``/``ninf``
    assumptions are also unsafe for log densities that are ``-inf`` outside their support.

    The graphs built inside are also the same in every process
    (:func:`alliance.bayes.nutpie_callbacks.deterministic_broadcast_shapes`), so PyTensor's cache
    key of a model's compiled log density is too, and the next job, run or dataset with the
    same model loads it instead of compiling it again; and their elementwise operations are
    fused even where PyTensor's fusion planner fails (:func:`fusion_past_planning_error`).
    """
    import pytensor

    from alliance.bayes.nutpie_callbacks import deterministic_broadcast_shapes

    with (
        pytensor.config.change_flags(numba__fastmath=False),
        deterministic_broadcast_shapes(),
        fusion_past_planning_error(),
    ):
        yield


def _pymc_cores(model: pm.Model, settings: Mapping[str, Any]) -> int:
    """Chain processes for PyMC's NUTS: one (chains in turn, in-process) for a small model.

    PyMC samples parallel chains in child processes that each import PyMC and load the
    compiled model; for a model under :data:`SMALL_MODEL_PARAMETERS` parameters (the outcome
    model, the process models' second stages) that costs more than the chains themselves.
    Measured on the demo's outcome model (2 cores): 9.7 s wall plus two children's CPU with
    two processes, 5.9 s wall and CPU in-process; the draws are identical (each chain has its
    own seed either way).
    """
    if _n_parameters(model) < SMALL_MODEL_PARAMETERS:
        return 1
    return int(settings["cores"])


def _drop_unconstrained(idata: az.InferenceData) -> None:
    """Remove nutpie's unconstrained copies (``sigma_log__``) from the posterior."""
    extra = [v for v in idata.posterior.data_vars if str(v).endswith("__")]
    if extra:
        idata.posterior = idata.posterior.drop_vars(extra)


def _add_observed(idata: az.InferenceData, model: pm.Model) -> None:
    """Add the ``observed_data`` group (nutpie's output lacks it), with the model's dims."""
    import xarray as xr
    from pymc.backends.arviz import find_observations

    variables = {}
    for name, values in find_observations(model).items():
        dims = model.named_vars_to_dims.get(name) or [
            f"{name}_dim_{i}" for i in range(np.ndim(values))
        ]
        coords = {d: list(model.coords[d]) for d in dims if d in model.coords}
        variables[name] = xr.DataArray(np.asarray(values), dims=dims, coords=coords)
    idata.add_groups(observed_data=xr.Dataset(variables))


def sample(
    model: pm.Model, sampler: Mapping[str, Any] | None = None, *, log_likelihood: bool = True
) -> tuple[az.InferenceData, dict[str, Any]]:
    """Draw from the posterior of ``model`` with NUTS (nutpie or PyMC) and add the log likelihood.

    Parameters
    ----------
    model
        A PyMC model.
    sampler
        Settings (:data:`DEFAULT_SAMPLER` keys); ``cores`` is always passed explicitly (PyMC's
        default, ``cpu_count() // 2``, is 1 on a 2-core machine).
    log_likelihood
        Add the pointwise log likelihood of every draw (for PSIS-LOO). False for a model whose
        caller never compares fits by LOO: the group costs a compiled function and one
        evaluation per draw (1.2 s of the dropout model's 15 s on 2,980 person-periods).

    Returns
    -------
    idata : arviz.InferenceData
        Groups ``posterior``, ``sample_stats`` (``diverging``, ``energy``, ...),
        ``log_likelihood`` (unless ``log_likelihood`` is False) and ``observed_data``.
    timing : dict
        ``backend``, ``compile_s`` (nutpie; for PyMC included in ``total_s``), ``sampling_s``
        and ``total_s`` wall-clock seconds, and the settings used.

    References
    ----------
    Hoffman, M. D., & Gelman, A. (2014). The No-U-Turn sampler. Journal of Machine Learning
    Research, 15, 1593-1623.

    """
    from threadpoolctl import threadpool_limits

    settings = sampler_settings(sampler)
    backend = choose_backend(model, settings)
    # One BLAS thread per chain: the chains already run in parallel, and OpenBLAS's default
    # pool (one thread per core in every chain) oversubscribes the cores. Measured on 2 cores
    # (bench/latent_speed.py): the latent model's sampling took 181 s without the limit and
    # 3.5 s with it, same draws.
    with threadpool_limits(limits=1, user_api="blas"):
        return _sample(model, settings, backend, log_likelihood)


def _sample(
    model: pm.Model, settings: dict[str, Any], backend: str, log_likelihood: bool
) -> tuple[az.InferenceData, dict[str, Any]]:
    import pymc as pm

    start = time.perf_counter()
    compile_s = float("nan")
    if backend == "nutpie":
        import nutpie

        from alliance.bayes.nutpie_callbacks import compile_for_nutpie

        with _quiet_known_rewrite_failures(), reproducible_numba_compilation():
            compiled = compile_for_nutpie(model)
        compile_s = time.perf_counter() - start
        t0 = time.perf_counter()
        idata = nutpie.sample(
            compiled,
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            cores=settings["cores"],
            seed=settings["seed"],
            target_accept=settings["target_accept"],
            save_warmup=False,
            progress_bar=False,
        )
        sampling_s = time.perf_counter() - t0
        _drop_unconstrained(idata)
    else:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # PyMC's jittered initialization can start far out in the tails, where the kinetic
            # energy of the first trial step overflows; the step is rejected as divergent during
            # tuning (discarded), so the warning is expected and harmless there.
            # The same in a trajectory's far tail (the dynamic panel's lag-matrix powers
            # overflow to inf, then inf - inf): the log density or its gradient is NaN there and
            # NUTS counts the step as divergent, as it should; NumPy's notice adds nothing.
            warnings.filterwarnings(
                "ignore",
                message="(overflow|invalid value) encountered in (dot|accumulate)",
                category=RuntimeWarning,
            )
            idata = pm.sample(
                draws=settings["draws"],
                tune=settings["tune"],
                chains=settings["chains"],
                cores=_pymc_cores(model, settings),
                random_seed=settings["seed"],
                target_accept=settings["target_accept"],
                model=model,
                progressbar=False,
                compute_convergence_checks=False,
            )
        sampling_s = float(idata.sample_stats.attrs.get("sampling_time", time.perf_counter() - t0))
    if log_likelihood:
        pm.compute_log_likelihood(idata, model=model, extend_inferencedata=True, progressbar=False)
    if "observed_data" not in idata.groups():
        _add_observed(idata, model)
    total = time.perf_counter() - start
    timing = {
        "backend": backend,
        "compile_s": round(compile_s, 3) if backend == "nutpie" else None,
        "sampling_s": round(sampling_s, 3),
        "total_s": round(total, 3),
        "settings": settings,
    }
    return idata, timing


def add_predictive(idata: az.InferenceData, model: pm.Model, seed: int) -> az.InferenceData:
    """Add posterior predictive draws of the observed variables to ``idata`` (in place)."""
    import pymc as pm

    pm.sample_posterior_predictive(
        idata, model=model, random_seed=seed, extend_inferencedata=True, progressbar=False
    )
    return idata


def prior_predictive(model: pm.Model, draws: int = 500, seed: int = 0) -> az.InferenceData:
    """Draw from the prior and the prior predictive distribution (a prior predictive check).

    The draws show whether the priors imply plausible data on the standardized scale (for
    example, outcome z-scores mostly within +-3) before the data are seen (Gabry et al. 2019).

    References
    ----------
    Gabry, J., Simpson, D., Vehtari, A., Betancourt, M., & Gelman, A. (2019). Visualization in
    Bayesian workflow. Journal of the Royal Statistical Society A, 182(2), 389-402.

    """
    import pymc as pm

    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive whole number, got {draws!r}")
    with warnings.catch_warnings():
        # the latent model's item likelihood is a Potential: its outcome replicates are drawn
        # given the observed items (conditional prior predictive), which is what is checked
        warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
        return pm.sample_prior_predictive(draws=draws, model=model, random_seed=seed)
