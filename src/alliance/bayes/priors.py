"""Prior scales of the Bayesian models: the defaults, one parameter's scale, a rescaled set.

Every model of :mod:`alliance.bayes.models` and :mod:`alliance.bayes.latent` takes its prior
scales from here, on the standardized scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["DEFAULT_PRIORS", "prior_scale", "scale_priors"]

#: Default prior scales on the standardized scale (every predictor is a z-score and the
#: outcome is in SD units). ``intercept`` and ``slope``: Normal(0, scale); ``sigma`` (residual
#: SD) and ``tau`` (SD of random intercepts): HalfNormal(scale). A slope of 1 SD per SD is far
#: beyond any alliance effect reported (r = .28, Flückiger et al. 2018), so Normal(0, 1) is
#: weakly informative: it rules out absurd values without pulling plausible ones; HalfNormal(1)
#: for the residual SD of a standardized outcome and HalfNormal(0.5) for therapist or patient
#: intercept SDs (therapist effects are small, Baldwin & Imel 2013) likewise.
DEFAULT_PRIORS: dict[str, float] = {"intercept": 1.0, "slope": 1.0, "sigma": 1.0, "tau": 0.5}


def prior_scale(priors: Mapping[str, float] | None, name: str, kind: str) -> float:
    """Return the prior scale of parameter ``name``: ``priors[name]``, else ``priors[kind]``.

    Parameters
    ----------
    priors
        Scales by parameter name (``"b_alliance"``) or by kind (``"slope"``, ``"intercept"``,
        ``"sigma"``, ``"tau"``); missing keys take :data:`DEFAULT_PRIORS`.
    name, kind
        Parameter name and its kind.

    Raises
    ------
    ValueError
        If the scale is not a positive finite number.

    """
    priors = priors or {}
    value = priors.get(name, priors.get(kind, DEFAULT_PRIORS[kind]))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"prior scale of {name} must be a positive number, got {value!r}")
    if value <= 0:
        raise ValueError(f"prior scale of {name} must be a positive number, got {value!r}")
    return float(value)


def scale_priors(priors: Mapping[str, float] | None, factor: float) -> dict[str, float]:
    """Multiply every prior scale by ``factor`` (prior sensitivity: 0.5 and 2, Kruschke 2021).

    References
    ----------
    Kruschke, J. K. (2021). Bayesian analysis reporting guidelines. Nature Human Behaviour, 5,
    1282-1291.

    """
    if not isinstance(factor, int | float) or not factor > 0:
        raise ValueError(f"factor must be a positive number, got {factor!r}")
    merged = {**DEFAULT_PRIORS, **(priors or {})}
    return {k: float(v) * factor for k, v in merged.items()}
