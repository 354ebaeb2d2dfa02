"""Bayesian models that link the alliance to outcome (PyMC), with sampling and diagnostics.

The workflow's ``bayes_fit`` and ``bayes_sensitivity`` rules:

- :mod:`~alliance.bayes.data`, :mod:`~alliance.bayes.priors`, :mod:`~alliance.bayes.models`,
  :mod:`~alliance.bayes.latent` - the model data and the PyMC models;
- :mod:`~alliance.bayes.sampling`, :mod:`~alliance.bayes.diagnostics` - the one sampler and
  the one diagnostics path of every PyMC model of the package (BARG thresholds);
  :mod:`~alliance.bayes.nutpie_callbacks` - the model compiled for nutpie (its C callbacks,
  graphs with the same compile-cache key in every process);
- :mod:`~alliance.bayes.calibration` - simulation-based calibration;
- :mod:`~alliance.bayes.plots` - the figures of a fit;
- :mod:`~alliance.bayes.bsem` - Bayesian SEM of a CFA with small-variance priors;
  :mod:`~alliance.bayes.twolevel_cfa` - the two-level (sessions within patients) Bayesian CFA,
  continuous or ordinal; :mod:`~alliance.bayes.bsem_summary` - their rows of the results
  summary;
- :mod:`~alliance.bayes.api`, :mod:`~alliance.bayes.sensitivity`,
  :mod:`~alliance.bayes.bsem_stage` - the stage entries (``bsem_stage`` also reads the
  data and model as the CFA stage does and parses lavaan syntax with :mod:`alliance.sem`).

May import: :mod:`alliance.data` and the shared :mod:`alliance.tables`, :mod:`alliance.jsonio`;
only ``plots`` and the stage entries draw; this ``__init__`` re-exports library names only, so
that the process and meta models can import the sampler without running a stage.
"""

from alliance.bayes.diagnostics import THRESHOLDS, check, compare_loo, loo, summarize
from alliance.bayes.models import KEY_PARAMETERS, build_model
from alliance.bayes.priors import DEFAULT_PRIORS, scale_priors
from alliance.bayes.sampling import DEFAULT_SAMPLER, prior_predictive, sample

__all__ = [
    "DEFAULT_PRIORS",
    "DEFAULT_SAMPLER",
    "KEY_PARAMETERS",
    "THRESHOLDS",
    "build_model",
    "check",
    "compare_loo",
    "loo",
    "prior_predictive",
    "sample",
    "scale_priors",
    "summarize",
]
