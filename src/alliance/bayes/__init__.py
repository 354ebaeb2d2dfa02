"""Bayesian models that link the alliance to outcome (PyMC), with sampling and diagnostics."""

from alliance.bayes.api import FIT_MODELS, build_data, effects, fit_model
from alliance.bayes.diagnostics import THRESHOLDS, check, compare_loo, loo, summarize
from alliance.bayes.models import DEFAULT_PRIORS, KEY_PARAMETERS, build_model, scale_priors
from alliance.bayes.sampling import DEFAULT_SAMPLER, prior_predictive, sample

__all__ = [
    "DEFAULT_PRIORS",
    "DEFAULT_SAMPLER",
    "FIT_MODELS",
    "KEY_PARAMETERS",
    "THRESHOLDS",
    "build_data",
    "build_model",
    "check",
    "compare_loo",
    "effects",
    "fit_model",
    "loo",
    "prior_predictive",
    "sample",
    "scale_priors",
    "summarize",
]
