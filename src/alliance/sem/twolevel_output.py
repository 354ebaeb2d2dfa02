"""A two-level fit as JSON in the layout of the single-level fits, and its admissibility.

:func:`fit_twolevel` is the public entry (data, syntax with ``level:`` blocks, cluster column,
estimator in; a JSON-serialisable dict out). Keys as :func:`alliance.sem.output.result_dict`:
``meta, converged, nobs, ntotal, nclusters, fit, fit_all, parameters, standardized, status``;
the ``parameters`` and ``standardized`` rows carry ``level`` (1 within, 2 between) and
``block``, and ``fit`` holds lavaan's ``srmr_within`` and ``srmr_between``. A fit that did
not converge, has a negative variance (Heywood case), a latent covariance matrix that is not
positive definite or a singular information matrix gets no fit indices (``fit`` empty, the
reason in ``status`` and ``meta.notes``).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from alliance.sem.output import LAVAAN_TEST, clean
from alliance.sem.solution import inference, numeric_jacobian
from alliance.sem.standardize import standardize
from alliance.sem.twolevel import (
    TwoLevelFit,
    TwoLevelModel,
    baseline_twolevel,
    estimate_twolevel,
)
from alliance.sem.twolevel_fitmeasures import twolevel_fit_measures

__all__ = [
    "TWOLEVEL_FIT_NAMES",
    "fit_twolevel",
    "twolevel_admissibility",
    "twolevel_result",
    "twolevel_standardized",
]

#: The ``fit`` block of a two-level fit (lavaan ``fitMeasures`` names).
TWOLEVEL_FIT_NAMES = (
    "npar", "ntotal", "nclusters", "chisq", "df", "pvalue", "cfi", "tli", "rmsea",
    "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.pvalue", "srmr", "srmr_within", "srmr_between",
    "logl", "unrestricted.logl", "aic", "bic", "bic2", "baseline.chisq", "baseline.df",
    "baseline.pvalue",
)  # fmt: skip
#: Added to ``fit`` for MLR.
TWOLEVEL_ROBUST_NAMES = (
    "chisq.scaled", "df.scaled", "pvalue.scaled", "chisq.scaling.factor",
    "baseline.chisq.scaled", "baseline.df.scaled", "cfi.scaled", "tli.scaled", "rmsea.scaled",
    "rmsea.ci.lower.scaled", "rmsea.ci.upper.scaled", "cfi.robust", "tli.robust",
    "rmsea.robust", "rmsea.ci.lower.robust", "rmsea.ci.upper.robust",
)  # fmt: skip
ORDINAL_NOTE = (
    "two-level models here are for continuous items by ML/MLR (as lavaan); ordinal two-level "
    "models, which lavaan cannot fit by ML: the Bayesian two-level CFA (bsem --twolevel)"
)


def twolevel_admissibility(fit: TwoLevelFit) -> dict[str, Any]:
    """Convergence, negative variances and non-PD latent covariances by level; never raises."""
    model = fit.model
    xw, xb = model.split(fit.x)
    issues: list[str] = []
    out: dict[str, Any] = {"converged": bool(fit.converged)}
    if not fit.converged:
        issues.append("not converged")
    negative: list[str] = []
    not_pd: list[str] = []
    for level, spec, x in ((1, model.within, xw), (2, model.between, xb)):
        values = spec.row_values(x)
        negative += [
            f"{r.lhs}~~{r.rhs} (level {level})"
            for r, v in zip(spec.table, values, strict=True)
            if r.op == "~~" and r.lhs == r.rhs and v < 0
        ]
        if spec.m:
            psi = spec.matrices(x, 1).psi
            if np.linalg.eigvalsh(0.5 * (psi + psi.T)).min() <= 0:
                not_pd.append(f"level {level}")
    out["negative_variances"] = negative
    out["latent_cov_not_pd"] = not_pd
    out["standard_errors"] = fit.vcov is not None
    if negative:
        issues.append("negative variances (Heywood case): " + ", ".join(negative))
    if not_pd:
        issues.append("latent covariance matrix not positive definite at " + ", ".join(not_pd))
    if fit.vcov is None:
        issues.append("information matrix not positive definite: no standard errors")
    out["issues"] = issues
    out["admissible"] = not issues
    return out


def _parameter_rows(fit: TwoLevelFit, level: float) -> list[dict[str, Any]]:
    values = fit.model.row_values(fit.x)
    se = fit.se
    rows = []
    for (lev, r, free), est in zip(fit.model.rows(), values, strict=True):
        row: dict[str, Any] = {
            "lhs": r.lhs,
            "op": r.op,
            "rhs": r.rhs,
            "level": lev,
            "block": lev,
            "label": r.label,
            "est": float(est),
        }
        if free:
            row.update(inference(float(est), None if se is None else float(se[free - 1]), level))
        else:
            row.update(inference(float(est), 0.0, level))
        row["free"] = bool(free)
        rows.append(row)
    return rows


def _standardized_values(fit: TwoLevelFit, x: np.ndarray) -> np.ndarray:
    """``std.all`` of every row, each level by its own implied moments (as lavaan's blocks)."""
    xw, xb = fit.model.split(x)
    return np.concatenate([standardize(fit.model.within, xw), standardize(fit.model.between, xb)])


def twolevel_standardized(fit: TwoLevelFit, level: float = 0.95) -> list[dict[str, Any]]:
    """Lavaan ``standardizedSolution()`` rows of a two-level fit, with delta-method SEs.

    Each level is standardized by its own model-implied standard deviations (within: of the
    within-cluster parts, ``Sigma_W``; between: of the cluster parts, ``Sigma_B``), as lavaan
    standardizes each level's block. SEs ``sqrt(J V J')`` with the Jacobian ``J`` of the
    standardized values by central differences (MLR: ``V`` the sandwich).
    """
    est = _standardized_values(fit, fit.x)
    se: np.ndarray | None = None
    if fit.vcov is not None:
        jac = numeric_jacobian(lambda xe: _standardized_values(fit, xe), fit.x)
        se = np.sqrt(np.maximum(np.einsum("ik,kl,il->i", jac, fit.vcov, jac), 0.0))
    rows = []
    for k, ((lev, r, _), v) in enumerate(zip(fit.model.rows(), est, strict=True)):
        row: dict[str, Any] = {"lhs": r.lhs, "op": r.op, "rhs": r.rhs, "level": lev,
                               "block": lev, "label": r.label}  # fmt: skip
        value = float(v)
        row["est.std"] = value if np.isfinite(value) else None
        row.update(inference(value, None if se is None else float(se[k]), level))
        rows.append(row)
    return rows


def twolevel_result(
    fit: TwoLevelFit, baseline: TwoLevelFit | None, *, meta: dict[str, Any], level: float = 0.95
) -> dict[str, Any]:
    """The JSON layout of a two-level fit (see the module docstring)."""
    status = twolevel_admissibility(fit)
    notes = list(meta.get("notes", [])) + list(fit.warnings)
    fm = twolevel_fit_measures(fit, baseline)
    names = TWOLEVEL_FIT_NAMES + (TWOLEVEL_ROBUST_NAMES if fit.estimator == "MLR" else ())
    if status["admissible"]:
        block = {k: fm.get(k) for k in names}
    else:
        block = {}
        notes.append("no fit indices: " + "; ".join(status["issues"]))
    out = {
        "meta": {**meta, "notes": notes, "warnings": list(fit.warnings)},
        "converged": fit.converged,
        "nobs": [fit.stats.nobs],
        "ntotal": fit.stats.nobs,
        "nclusters": fit.stats.nclusters,
        "fit": block,
        "fit_all": fm if status["admissible"] else {},
        "parameters": _parameter_rows(fit, level),
        "standardized": twolevel_standardized(fit, level),
        "status": status,
    }
    return clean(out)


def fit_twolevel(
    data: pd.DataFrame,
    model: str,
    cluster: str,
    estimator: str = "ML",
    std_lv: bool = False,
    level: float = 0.95,
) -> dict[str, Any]:
    """Fit a two-level CFA (lavaan's ``cfa(model, data, cluster = cluster)``) as a JSON dict.

    Parameters
    ----------
    data
        One row per level-1 unit (e.g. a session) with the items and the cluster column.
    model
        lavaan syntax with ``level: 1`` (within) and ``level: 2`` (between) blocks.
    cluster
        The column naming the level-2 units (e.g. patients).
    estimator
        ``"ML"`` or ``"MLR"``.
    std_lv
        Identify factors by unit variances.
    level
        Confidence level of the parameter intervals.

    Returns
    -------
    dict
        See :func:`twolevel_result`.

    Raises
    ------
    ValueError
        For bad syntax, data or estimator (see
        :func:`~alliance.sem.twolevel.estimate_twolevel`).
    """
    spec = TwoLevelModel.from_syntax(model, std_lv)
    fit = estimate_twolevel(data, spec, cluster, estimator)
    with threadpool_limits(limits=1, user_api="blas"):
        baseline = baseline_twolevel(fit)
    lav_est, test, se = LAVAAN_TEST[fit.estimator]
    try:
        version = metadata.version("alliance-pipeline")
    except metadata.PackageNotFoundError:  # a source checkout that is not installed
        version = "unknown"
    meta = {
        "software": f"alliance {version} (alliance.sem)",
        "model": model,
        "estimator": fit.estimator,
        "lavaan_estimator": lav_est,
        "test": test,
        "se": se,
        "information": "observed",
        "missing": "none (two-level fits need complete data)",
        "cluster": cluster,
        "levels": {"1": "within", "2": cluster},
        "std.lv": bool(std_lv),
        "notes": [ORDINAL_NOTE],
    }
    return twolevel_result(fit, baseline, meta=meta, level=level)
