"""Fit measures of a two-level CFA, as lavaan's ``fitMeasures()`` names them (lav_fit_*).

The chi-square against the saturated two-level model and its p-value; the baseline model's
test and the incremental indices (CFI, TLI/NNFI, RFI, NFI, PNFI, IFI, RNI); the
log-likelihoods, AIC, BIC and the sample-size adjusted BIC (``N`` = level-1 rows); RMSEA with
its interval and p-values; the SRMR of each level (lavaan's ``srmr_within`` and
``srmr_between``: the correlation residuals of the saturated and the implied covariance matrix
of that level; ``srmr`` is their sum) and, for MLR, the Yuan-Bentler scaled and the robust
versions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alliance.sem.fitmeasures import (
    cfi,
    ifi,
    nfi,
    pnfi,
    rfi,
    rmsea,
    rmsea_ci,
    rmsea_pvalue,
    rni,
    tli,
)
from alliance.sem.teststats import chisq_pvalue
from alliance.sem.twolevel import TwoLevelFit

__all__ = ["srmr_level", "twolevel_fit_measures"]


def _cor(s: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.diag(s))
    return s / np.outer(d, d)


def srmr_level(observed: np.ndarray, implied: np.ndarray) -> float:
    """Root mean square of the correlation residuals over the ``p(p+1)/2`` unique entries."""
    if np.any(np.diag(implied) <= 0) or np.any(np.diag(observed) <= 0):
        return float("nan")
    r = _cor(observed) - _cor(implied)
    rows, cols = np.tril_indices(len(r))
    return float(np.sqrt(np.mean(r[rows, cols] ** 2)))


def _force_pd(s: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """``s`` with its eigenvalues raised to ``tol`` (lavaan's ``lav_matrix_symmetric_force_pd``)."""
    vals, vecs = np.linalg.eigh(0.5 * (s + s.T))
    if vals.min() >= tol:
        return s
    return (vecs * np.maximum(vals, tol)) @ vecs.T


def twolevel_fit_measures(fit: TwoLevelFit, baseline: TwoLevelFit | None = None) -> dict[str, Any]:
    """The ``fitMeasures()`` of a two-level fit, as lavaan names them.

    ``npar, ntotal, nclusters, chisq, df, pvalue``; with the baseline ``baseline.chisq,
    baseline.df, baseline.pvalue, cfi, tli, nnfi, rfi, nfi, pnfi, ifi, rni``; ``logl,
    unrestricted.logl, aic, bic, bic2`` (``N`` = the level-1 rows; ``bic2`` with
    ``(N + 2) / 24``); ``rmsea`` with its 90% interval and the close / not-close p-values;
    ``srmr_within, srmr_between`` and ``srmr`` (their sum, as lavaan). MLR adds the
    Yuan-Bentler scaled test and its ``.scaled`` indices, and the ``.robust`` CFI/TLI/RNI and
    RMSEA (with interval and p-values) of Brosseau-Liard, Savalei & Li (2012) and
    Brosseau-Liard & Savalei (2014): the unscaled statistic less ``c df`` (``c`` the scaling
    factor), as lavaan 0.6-14.

    References
    ----------
    Brosseau-Liard, P. E., Savalei, V., & Li, L. (2012). An investigation of the sample
    performance of two nonnormality corrections for RMSEA. Multivariate Behavioral Research,
    47(6), 904-930.
    Brosseau-Liard, P. E., & Savalei, V. (2014). Adjusting incremental fit indices for
    nonnormality. Multivariate Behavioral Research, 49(5), 460-470.
    """
    n = fit.stats.nobs
    k = fit.model.npar
    x2, df = fit.chisq, fit.df
    out: dict[str, Any] = {
        "npar": k,
        "ntotal": n,
        "nclusters": fit.stats.nclusters,
        "chisq": x2,
        "df": df,
        "pvalue": chisq_pvalue(x2, df),
    }
    x2b = dfb = float("nan")
    if baseline is not None:
        x2b, dfb = baseline.chisq, baseline.df
        out["baseline.chisq"] = x2b
        out["baseline.df"] = dfb
        out["baseline.pvalue"] = chisq_pvalue(x2b, dfb)
        out["cfi"] = cfi(x2, df, x2b, dfb)
        out["tli"] = out["nnfi"] = tli(x2, df, x2b, dfb)
        out["rfi"] = rfi(x2, df, x2b, dfb)
        out["nfi"] = nfi(x2, df, x2b, dfb)
        out["pnfi"] = pnfi(x2, df, x2b, dfb)
        out["ifi"] = ifi(x2, df, x2b, dfb)
        out["rni"] = rni(x2, df, x2b, dfb)
    out["logl"] = fit.logl
    out["unrestricted.logl"] = fit.h1_logl
    out["aic"] = -2 * fit.logl + 2 * k
    out["bic"] = -2 * fit.logl + k * np.log(n)
    out["bic2"] = -2 * fit.logl + k * np.log((n + 2) / 24)
    out["rmsea"] = rmsea(x2, df, n)
    out["rmsea.ci.lower"], out["rmsea.ci.upper"] = rmsea_ci(x2, df, n)
    out["rmsea.pvalue"] = rmsea_pvalue(x2, df, n, h0=0.05)
    out["rmsea.notclose.pvalue"] = rmsea_pvalue(x2, df, n, h0=0.08, close=False)
    m = fit.model.moments(fit.x)
    out["srmr_within"] = srmr_level(fit.h1.sigma_w, m.sigma_w)
    b = fit.stats.between_index
    between = _force_pd(m.sigma_b[np.ix_(b, b)])
    out["srmr_between"] = srmr_level(fit.h1.sigma_b[np.ix_(b, b)], between)
    out["srmr"] = out["srmr_within"] + out["srmr_between"]
    if fit.estimator == "MLR" and "chisq.scaling.factor" in fit.scaled:
        out.update(_scaled_measures(fit, baseline, x2b, dfb))
    return out


def _scaled_measures(
    fit: TwoLevelFit, baseline: TwoLevelFit | None, x2b: float, dfb: float
) -> dict[str, float]:
    """MLR: the scaled test, the ``.scaled`` and the ``.robust`` indices (lavaan 0.6-14)."""
    n, x2, df = fit.stats.nobs, fit.chisq, fit.df
    c = fit.scaled["chisq.scaling.factor"]
    xs = fit.scaled["chisq.scaled"]
    out = {
        "chisq.scaled": xs,
        "df.scaled": df,
        "pvalue.scaled": chisq_pvalue(xs, df),
        "chisq.scaling.factor": c,
        # Yuan-Bentler: X2 on df2 = tr(U Gamma) = c df (lavaan)
        "rmsea.scaled": rmsea(x2, c * df, n),
        "rmsea.pvalue.scaled": rmsea_pvalue(x2, c * df, n, h0=0.05),
        "rmsea.notclose.pvalue.scaled": rmsea_pvalue(x2, c * df, n, h0=0.08, close=False),
        "rmsea.robust": rmsea(x2, df, n, 1, c),
        "rmsea.pvalue.robust": rmsea_pvalue(xs, df, n, 1, c, h0=0.05),
        "rmsea.notclose.pvalue.robust": rmsea_pvalue(xs, df, n, 1, c, 0.08, False),
    }
    out["rmsea.ci.lower.scaled"], out["rmsea.ci.upper.scaled"] = rmsea_ci(x2, c * df, n)
    out["rmsea.ci.lower.robust"], out["rmsea.ci.upper.robust"] = rmsea_ci(xs, df, n, 1, c)
    if baseline is not None and "chisq.scaling.factor" in baseline.scaled:
        cb = baseline.scaled["chisq.scaling.factor"]
        bs = baseline.scaled["chisq.scaled"]
        out["baseline.chisq.scaled"] = bs
        out["baseline.df.scaled"] = dfb
        out["baseline.pvalue.scaled"] = chisq_pvalue(bs, dfb)
        out["baseline.chisq.scaling.factor"] = cb
        out["cfi.scaled"] = cfi(xs, df, bs, dfb)
        out["tli.scaled"] = out["nnfi.scaled"] = tli(xs, df, bs, dfb)
        out["rni.scaled"] = rni(xs, df, bs, dfb)
        out["cfi.robust"] = cfi(x2, df, x2b, dfb, c, cb)
        out["tli.robust"] = out["nnfi.robust"] = tli(x2, df, x2b, dfb, c, cb)
        out["rni.robust"] = rni(x2, df, x2b, dfb, c, cb)
    return out
