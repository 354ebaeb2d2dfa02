"""The standardized solution, once for every estimator (lavaan's lav_standardize, std.all).

``std.all`` scales by the model-implied standard deviations: of the observed variables (for
ordered items, of the latent responses y*) and of the latent variables. Covariances between
residuals of observed variables, and between disturbances of endogenous latent variables, are
divided by the residual standard deviations (residual correlations), as lavaan does for every
estimator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alliance.sem.estimate import FitResult
from alliance.sem.model import ModelSpec
from alliance.sem.solution import defined_rows, inference, numeric_jacobian

__all__ = ["standardize", "standardize_group", "standardized_rows", "table_positions"]


def table_positions(spec: ModelSpec) -> dict[int, np.ndarray]:
    """Positions in ``spec.table`` of each group's rows."""
    pos: dict[int, list[int]] = {}
    for k, r in enumerate(spec.table):
        pos.setdefault(r.group, []).append(k)
    return {g: np.array(v, dtype=int) for g, v in pos.items()}


def standardize(spec: ModelSpec, x: np.ndarray) -> np.ndarray:
    """``std.all`` value of every table row (lavaan ``standardizedSolution``)."""
    out = np.zeros(len(spec.table))
    for g, ks in table_positions(spec).items():
        out[ks] = standardize_group(spec, x, g, ks)
    return out


@np.errstate(divide="ignore", invalid="ignore")  # a variance fixed to 0: nan/inf, as lavaan
def standardize_group(spec: ModelSpec, x: np.ndarray, g: int, ks: np.ndarray) -> np.ndarray:
    """``std.all`` values of the table rows ``ks``, all of group ``g``.

    Loadings ``lambda_ij sd(eta_j) / sd(y_i)``; higher-order loadings likewise with latent
    total variances; regressions ``b sd(x) / sd(y)``; (residual) variances divided by the total
    variance; covariances between residuals (observed variables) or disturbances (endogenous
    latent variables) divided by the residual standard deviations, other latent covariances by
    the total ones; intercepts, means and thresholds divided by the total standard deviation
    (``sd(y*)`` for ordered items); scale factors ``~*~`` are 1.
    """
    out = np.zeros(len(ks))
    oi = {v: i for i, v in enumerate(spec.ov)}
    li = {v: i for i, v in enumerate(spec.lv)}
    mt = spec.matrices(x, g)
    ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
    a = ib @ mt.psi @ ib.T
    c = mt.lambda_ @ ib
    sig = c @ mt.psi @ c.T + mt.theta
    sd_lv, sd_ov = np.sqrt(np.abs(np.diag(a))), np.sqrt(np.abs(np.diag(sig)))
    for j, k in enumerate(ks):
        r = spec.table[k]
        val = mt.value(r)
        if r.op == "=~":
            if r.rhs in oi:
                out[j] = val * sd_lv[li[r.lhs]] / sd_ov[oi[r.rhs]]
            else:
                out[j] = val * sd_lv[li[r.lhs]] / sd_lv[li[r.rhs]]
        elif r.op == "~":
            out[j] = val * sd_lv[li[r.rhs]] / sd_lv[li[r.lhs]]
        elif r.op == "~~":
            if r.lhs == r.rhs:
                tot = sd_ov[oi[r.lhs]] ** 2 if r.lhs in oi else sd_lv[li[r.lhs]] ** 2
                out[j] = val / tot
            elif r.mat == "theta":
                d1, d2 = mt.theta[oi[r.lhs], oi[r.lhs]], mt.theta[oi[r.rhs], oi[r.rhs]]
                out[j] = val / np.sqrt(d1 * d2) if d1 > 0 and d2 > 0 else np.nan
            else:
                i, i2 = li[r.lhs], li[r.rhs]
                endo = np.any(mt.beta[i] != 0) or np.any(mt.beta[i2] != 0)
                if endo:
                    d1, d2 = mt.psi[i, i], mt.psi[i2, i2]
                else:
                    d1, d2 = sd_lv[i] ** 2, sd_lv[i2] ** 2
                out[j] = val / np.sqrt(d1 * d2) if d1 > 0 and d2 > 0 else np.nan
        elif r.op == "~1":
            out[j] = val / (sd_ov[oi[r.lhs]] if r.lhs in oi else sd_lv[li[r.lhs]])
        elif r.op == "|":
            out[j] = val / sd_ov[oi[r.lhs]]
        elif r.op == "~*~":
            out[j] = 1.0
        else:
            out[j] = val
    return out


def _defined_std(spec: ModelSpec, x: np.ndarray) -> np.ndarray:
    """Defined parameters evaluated at the standardized values of their labels (lavaan)."""
    std = standardize(spec, x)
    values: dict[str, float] = {}
    for r, v in zip(spec.table, std, strict=True):
        if r.label and r.label not in values:
            values[r.label] = float(v)
    out = np.zeros(len(spec.defined))
    for k, d in enumerate(spec.defined):
        out[k] = values[d.name] = d.expression(values)
    return out


@np.errstate(invalid="ignore")  # inf - inf in the Jacobian of a variance-0 latent's mean
def standardized_rows(result: FitResult, level: float = 0.95) -> list[dict[str, Any]]:
    """Lavaan ``standardizedSolution(type = "std.all")`` rows with delta-method SEs.

    The Jacobian of the standardized values by ``x`` is taken by central differences; the
    SE of each row is ``sqrt(J V J')``. The rows of group ``g`` depend only on that group's
    parameters (``spec.group_free(g)``), so the Jacobian and ``V`` are taken group by group.
    Defined parameters (``:=``) are evaluated at the standardized values of their labels.
    Without a covariance matrix of the estimates (a model that is not identified) the
    inference columns are None.
    """
    spec, x, cov = result.spec, result.x, result.cov
    est = standardize(spec, x)
    se = np.full(len(est), np.nan)
    if cov is not None:
        for g, ks in table_positions(spec).items():
            idx = spec.group_free(g)
            jac = numeric_jacobian(
                lambda xe, g=g, ks=ks: standardize_group(spec, xe, g, ks), x, idx
            )
            var = np.einsum("ik,kl,il->i", jac, cov.sub(idx), jac)
            se[ks] = np.sqrt(np.maximum(var, 0.0))
    multi = spec.ngroups > 1
    rows = []
    for k, r in enumerate(spec.table):
        row: dict[str, Any] = {"lhs": r.lhs, "op": r.op, "rhs": r.rhs}
        if multi:
            row.update({"group": r.group, "label": r.label})
        elif r.label:
            row["label"] = r.label
        v = float(est[k])
        row["est.std"] = v if np.isfinite(v) else None
        row.update(inference(v, None if cov is None else float(se[k]), level))
        rows.append(row)
    if spec.defined:
        values = _defined_std(spec, x)
        dse = None
        if cov is not None:
            jac = numeric_jacobian(lambda xe: _defined_std(spec, xe), x)
            dse = np.sqrt(np.maximum(np.einsum("ik,kl,il->i", jac, cov.dense(), jac), 0.0))
        rows += defined_rows(result, values, dse, "est.std", level, block=False)
    return rows
