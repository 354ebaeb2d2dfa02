"""Structural equation models: CFA and ESEM (ML, MLR, FIML, WLSMV), invariance, as lavaan.

The engine is layered as lavaan is; each module imports only those above it, and the package
imports nothing outside ``alliance.sem`` (a test checks both):

1. :mod:`~alliance.sem.syntax` (lav_syntax) - model text to statements, built-in models;
2. :mod:`~alliance.sem.partable` (lav_partable) - the parameter table, constraints;
3. :mod:`~alliance.sem.model` (lav_model) - matrices, implied moments, their Jacobian;
4. :mod:`~alliance.sem.mvnorm`, :mod:`~alliance.sem.polychoric`, :mod:`~alliance.sem.categories`,
   :mod:`~alliance.sem.samplestats` (lav_samplestats) - moments, polychorics, thresholds and
   their asymptotic covariances, the saturated (h1) model; :mod:`~alliance.sem.mvnorm_cluster`
   (lav_mvnorm_cluster) - the two-level normal: cluster statistics, log-likelihood, cluster
   scores, the saturated two-level model;
5. :mod:`~alliance.sem.blocks`, :mod:`~alliance.sem.information` - information matrices by
   group blocks;
6. :mod:`~alliance.sem.estimate` (lav_model_estimate, lav_model_vcov) - ML, FIML and DWLS
   behind one :class:`~alliance.sem.estimate.FitResult`;
7. :mod:`~alliance.sem.teststats` (lav_test_*) - standard, Yuan-Bentler, scaled-shifted and
   difference tests; :mod:`~alliance.sem.fitmeasures` (lav_fit_*) - every fit measure;
8. :mod:`~alliance.sem.solution`, :mod:`~alliance.sem.standardize` (lav_standardize) - the
   unstandardized and standardized solutions with defined parameters;
9. :mod:`~alliance.sem.validity`, :mod:`~alliance.sem.bifactor`,
   :mod:`~alliance.sem.modindices`, :mod:`~alliance.sem.compare` - reliability, bifactor
   indices, HTMT, admissibility, score tests, comparisons; :mod:`~alliance.sem.rotation`
   (numpy only) and :mod:`~alliance.sem.esem` - the rotated solution of exploratory
   (``efa()``) blocks with its standard errors;
10. :mod:`~alliance.sem.twolevel` - two-level CFA (``level: 1`` / ``level: 2``) by ML and
    MLR: the two levels' models, estimation, standard errors and tests;
    :mod:`~alliance.sem.twolevel_fitmeasures` - its fit measures (SRMR by level);
    :mod:`~alliance.sem.twolevel_output` - its lavaan-layout JSON with ``level`` on the rows;
    :mod:`~alliance.sem.fitting`, :mod:`~alliance.sem.output`,
    :mod:`~alliance.sem.invariance`, :mod:`~alliance.sem.longitudinal`,
    :mod:`~alliance.sem.api` - one fit from data and syntax, its lavaan-layout JSON, the
    invariance ladder across groups and over waves, the public entry points.
"""

from alliance.sem.api import fit_cfa, fit_model, invariance_ladder
from alliance.sem.model import ModelSpec
from alliance.sem.syntax import builtin_models, parse_syntax
from alliance.sem.twolevel_output import fit_twolevel

__all__ = [
    "ModelSpec",
    "builtin_models",
    "fit_cfa",
    "fit_model",
    "fit_twolevel",
    "invariance_ladder",
    "parse_syntax",
]
