"""The unstandardized solution: lavaan's parameterEstimates() rows, with defined parameters.

Rows of the parameter table with Wald tests and normal-theory confidence intervals, then one
row per defined parameter (``name := expression``) with its delta-method standard error
(lavaan's ``lav_object_inspect_vcov_def``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special

from alliance.sem.estimate import FitResult

__all__ = ["defined_rows", "delta_method", "inference", "numeric_jacobian", "parameter_rows"]

#: The inference columns of a row (None without standard errors).
INFERENCE_KEYS = ("se", "z", "pvalue", "ci.lower", "ci.upper")
#: Standard errors below this are zero: a fixed value, a parameter held at a bound, or a
#: standardized value that is constant (its delta-method SE is rounding noise, ~1e-9).
SE_ZERO = 1e-8


def _num(value: float | None) -> float | None:
    """A JSON-safe float: None for missing or non-finite values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def inference(est: float, se: float | None, level: float = 0.95) -> dict[str, float | None]:
    """``se, z, pvalue, ci.lower, ci.upper`` of an estimate (Wald z test, normal CI).

    ``se`` None: no standard error (all None); zero (below :data:`SE_ZERO`): a fixed value
    (``se = 0``, no test, the interval is the estimate); not finite: no test.
    """
    if se is None:
        return dict.fromkeys(INFERENCE_KEYS)
    if not math.isfinite(se):
        return {"se": None, "z": None, "pvalue": None, "ci.lower": None, "ci.upper": None}
    if se < SE_ZERO:
        return {"se": 0.0, "z": None, "pvalue": None, "ci.lower": _num(est), "ci.upper": _num(est)}
    crit = float(special.ndtri(0.5 + level / 2))
    z = est / se
    return {
        "se": se,
        "z": _num(z),
        "pvalue": _num(2 * special.ndtr(-abs(z))),
        "ci.lower": _num(est - crit * se),
        "ci.upper": _num(est + crit * se),
    }


def numeric_jacobian(
    fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray, idx: np.ndarray | None = None
) -> np.ndarray:
    """Central-difference Jacobian of ``fun`` by the entries ``idx`` of ``x`` (default all).

    Steps ``1e-6 max(1, |x_k|)``, as the standardized solution's delta method.
    """
    x = np.asarray(x, dtype=float)
    idx = np.arange(len(x)) if idx is None else np.asarray(idx, dtype=int)
    xe = x.copy()  # perturbed in place, one entry at a time
    cols = []
    for k in idx:
        h = 1e-6 * max(1.0, abs(x[k]))
        xe[k] = x[k] + h
        up = np.asarray(fun(xe), dtype=float)
        xe[k] = x[k] - h
        cols.append((up - np.asarray(fun(xe), dtype=float)) / (2 * h))
        xe[k] = x[k]
    return np.column_stack(cols) if cols else np.zeros((len(np.atleast_1d(fun(x))), 0))


def delta_method(
    fun: Callable[[np.ndarray], np.ndarray], result: FitResult
) -> tuple[np.ndarray, np.ndarray | None]:
    """Values of ``fun(x)`` at the estimates and their delta-method standard errors.

    ``se = sqrt(diag(J V J'))`` with ``J`` the Jacobian of ``fun`` by ``x`` and ``V`` the
    covariance matrix of the estimates; ``None`` without one.
    """
    values = np.atleast_1d(np.asarray(fun(result.x), dtype=float))
    if result.cov is None:
        return values, None
    jac = numeric_jacobian(fun, result.x)
    var = np.einsum("ik,kl,il->i", jac, result.cov.dense(), jac)
    return values, np.sqrt(np.maximum(var, 0.0))


def _row_head(r: Any, multi: bool, block: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"lhs": r.lhs, "op": r.op, "rhs": r.rhs}
    if getattr(r, "efa", ""):
        row["efa"] = r.efa  # lavaan's efa column: the exploratory block of a loading
    if multi:
        if block:
            row["block"] = r.group
        row.update({"group": r.group, "label": r.label})
    elif r.label:
        row["label"] = r.label
    return row


def defined_rows(
    result: FitResult,
    values: np.ndarray,
    se: np.ndarray | None,
    column: str,
    level: float = 0.95,
    block: bool = True,
) -> list[dict[str, Any]]:
    """Rows of the defined parameters (``op ":="``, ``label`` = the name, group 0)."""
    spec = result.spec
    multi = spec.ngroups > 1
    rows = []
    for k, d in enumerate(spec.defined):
        row: dict[str, Any] = {"lhs": d.name, "op": ":=", "rhs": d.expression.text}
        if multi:
            if block:
                row["block"] = 0
            row["group"] = 0
        row["label"] = d.name
        row[column] = _num(values[k])
        row.update(inference(float(values[k]), None if se is None else float(se[k]), level))
        rows.append(row)
    return rows


def parameter_rows(result: FitResult, level: float = 0.95) -> list[dict[str, Any]]:
    """Lavaan ``parameterEstimates()`` rows, then the defined parameters.

    Columns lhs, op, rhs, (block, group, label), est, se, z, pvalue, ci.lower, ci.upper, free.

    Fixed rows (and parameters held at an inequality bound) have ``se = 0`` and no test; free
    rows get Wald z tests and intervals ``est +- z_{(1+level)/2} se``; without a covariance
    matrix of the estimates (a model that is not identified) their inference columns are None.
    Defined parameters (``:=``) follow with delta-method SEs.
    """
    spec = result.spec
    est = spec.row_values(result.x)
    se = None if result.cov is None else result.se
    multi = spec.ngroups > 1
    rows = []
    for k, r in enumerate(spec.table):
        row = _row_head(r, multi, block=True)
        row["est"] = float(est[k])
        if r.free:
            s = None if se is None else float(se[r.free - 1])
            row.update(inference(float(est[k]), s, level))
        else:
            row.update(inference(float(est[k]), 0.0, level))
        row["free"] = bool(r.free)
        rows.append(row)
    if spec.defined:
        values, dse = delta_method(spec.defined_values, result)
        rows += defined_rows(result, values, dse, "est", level)
    return rows
