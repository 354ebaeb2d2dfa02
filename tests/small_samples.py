"""Small simulated samples that reproduce what issue 15 found in two clinics' exports.

Plain functions (not fixtures) so that several test modules can build them from the ``rng``
fixture of ``tests/conftest.py``; each docstring says what the sample reproduces and why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance.data.instruments import load_instrument
from alliance.sem.model import builtin_models

WAI = load_instrument("wai_sr")
#: Factor correlations of the demo data (Task, Goal, Bond; DESIGN.md).
PHI = np.array([[1.0, 0.9, 0.7], [0.9, 1.0, 0.7], [0.7, 0.7, 1.0]])
#: Thresholds on the latent response scale: 5 categories with a ceiling.
CUTS = (-1.5, -0.8, 0.0, 0.6)


def syntax(model: str) -> str:
    """The lavaan syntax of a built-in WAI-SR model."""
    return builtin_models(WAI)[model]


def correlated_factors(
    rng: np.random.Generator, n: int, residual_sd: dict[str, float] | None = None
) -> pd.DataFrame:
    """Continuous item scores from Bordin's three correlated factors (loadings .9).

    The residual SD of every item is .6 unless ``residual_sd`` says otherwise.
    """
    residual_sd = residual_sd or {}
    eta = rng.multivariate_normal(np.zeros(3), PHI, size=n)
    cols = {}
    for k, items in enumerate(WAI.factors.values()):
        for item in items:
            cols[item] = 0.9 * eta[:, k] + rng.normal(0, residual_sd.get(item, 0.6), n)
    return pd.DataFrame(cols)[list(WAI.items)]


def ordinal_items(rng: np.random.Generator, n: int, missing: float = 0.0) -> pd.DataFrame:
    """5-point answers from Bordin's three correlated factors (standardized loadings ~.86).

    ``missing``: the share of answers deleted completely at random (pairwise WLSMV).
    """
    eta = rng.multivariate_normal(np.zeros(3), PHI, size=n)
    cols = {}
    for k, items in enumerate(WAI.factors.values()):
        for item in items:
            latent = 0.85 * eta[:, k] + rng.normal(0, 0.5, n)
            cols[item] = 1.0 + np.searchsorted(CUTS, latent)
    data = pd.DataFrame(cols)[list(WAI.items)]
    return data.mask(rng.random(data.shape) < missing) if missing else data


def not_converged_fit(
    data: pd.DataFrame,
    model: str = "bifactor",
    max_iter: int = 3,
    estimator: str = "MLR",
    missing: str = "fiml",
) -> dict:
    """A fit of ``model`` stopped after ``max_iter`` iterations: it did not converge.

    The optimizer gets too few iterations to reach the minimum (a full fit of the same data
    converges), so the result is a non-converged fit by construction, deterministically:
    its fit measures are computed at the last iterate, as they were for the clinic's
    bifactor fit that showed a robust TLI of 415089431232.889.
    """
    from alliance.sem.api import result_dict
    from alliance.sem.estimate import estimate
    from alliance.sem.model import ModelSpec
    from alliance.sem.samplestats import prepare_sample

    spec = ModelSpec.from_syntax(syntax(model), meanstructure=missing == "fiml")
    sample = prepare_sample(data, spec.ov, missing=missing)
    out = result_dict(estimate(spec, sample, estimator, max_iter=max_iter))
    out["estimator"] = estimator
    return out
