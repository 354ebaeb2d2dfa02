"""Structural equation models: CFA with ML, MLR, FIML and invariance, matching lavaan 0.6-14."""

from alliance.sem.api import fit_cfa, fit_model, invariance_ladder
from alliance.sem.model import ModelSpec, builtin_models, parse_syntax

__all__ = [
    "ModelSpec",
    "builtin_models",
    "fit_cfa",
    "fit_model",
    "invariance_ladder",
    "parse_syntax",
]
