"""Fit measures named as lavaan fitMeasures(): chi-square, baseline, CFI/TLI, RMSEA, SRMR, ICs."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from alliance.sem.estimate import FitResult, evaluate, ndat
from alliance.sem.model import ModelSpec

__all__ = [
    "baseline_fit",
    "cfi",
    "fit_measures",
    "rmsea",
    "rmsea_ci",
    "rmsea_pvalue",
    "srmr",
    "tli",
]


def cfi(
    x2: float, df: float, x2_null: float, df_null: float, c: float = 1.0, c_null: float = 1.0
) -> float:
    """Comparative fit index (Bentler 1990); with ``c``/``c_null`` the robust version.

    ``1 - max(X2 - c df, 0) / max(X2 - c df, X2_0 - c_0 df_0, 0)``; the robust CFI of
    Brosseau-Liard & Savalei (2014) uses the scaling factors ``c`` and ``c_null``.
    """
    if not all(np.isfinite([x2, df, x2_null, df_null, c, c_null])):
        return float("nan")
    t1 = max(x2 - c * df, 0.0)
    t2 = max(x2 - c * df, x2_null - c_null * df_null, 0.0)
    if np.isclose(t1, 0.0, atol=1.5e-8) and np.isclose(t2, 0.0, atol=1.5e-8):
        return 1.0
    return float(1.0 - t1 / t2)


def tli(
    x2: float, df: float, x2_null: float, df_null: float, c: float = 1.0, c_null: float = 1.0
) -> float:
    """Tucker-Lewis index (non-normed fit index); robust with scaling factors (lavaan)."""
    if not all(np.isfinite([x2, df, x2_null, df_null, c, c_null])):
        return float("nan")
    t1 = (x2 - c * df) * df_null
    t2 = (x2_null - c_null * df_null) * df
    if df > 0 and abs(t2) > 0:
        return float(1.0 - t1 / t2)
    return 1.0


def rmsea(x2: float, df: float, n: int, g: int = 1, c: float = 1.0) -> float:
    """RMSEA ``sqrt(max(X2/(N df) - c/N, 0)) sqrt(G)`` (Steiger 1990; lavaan's group factor)."""
    if not np.isfinite(x2) or not np.isfinite(df) or not np.isfinite(c):
        return float("nan")
    if df <= 0:
        return 0.0
    return float(np.sqrt(max(x2 / n / df - c / n, 0.0)) * np.sqrt(g))


def _ncx2_cdf(x: float, df: float, ncp: float) -> float:
    if ncp <= 0:
        return float(special.chdtr(df, x))
    return float(special.chndtr(x, df, ncp))


def rmsea_ci(
    x2: float, df: float, n: int, g: int = 1, c: float = 1.0, level: float = 0.90
) -> tuple[float, float]:
    """Confidence interval of the RMSEA from the noncentral chi-square (lavaan's method).

    The noncentrality bounds solve ``P(chi2_df(lambda) <= X2) = 1 - (1-level)/2`` (lower)
    and ``(1-level)/2`` (upper); ``rmsea = sqrt(c lambda / (N df)) sqrt(G)``.

    References
    ----------
    Browne, M. W., & Cudeck, R. (1993). Alternative ways of assessing model fit. In K. A.
    Bollen & J. S. Long (Eds.), Testing structural equation models (pp. 136-162). Sage.
    """
    if not all(np.isfinite([x2, df, c])) or df < 1:
        return (0.0, 0.0) if np.isfinite(x2) else (float("nan"), float("nan"))
    up_p = 1 - (1 - level) / 2
    lo_p = (1 - level) / 2

    def f_low(lam: float) -> float:
        return _ncx2_cdf(x2, df, lam) - up_p

    def f_up(lam: float) -> float:
        return _ncx2_cdf(x2, df, lam) - lo_p

    if f_low(0.0) < 0:
        lower = 0.0
    else:
        lam = optimize.brentq(f_low, 0.0, max(x2, 1e-8), xtol=1e-10)
        lower = float(np.sqrt(c * lam / (n * df)) * np.sqrt(g))
    n_rmsea = max(n, x2 * 4)
    if f_up(n_rmsea) > 0 or f_up(0.0) < 0:
        upper = 0.0
    else:
        lam = optimize.brentq(f_up, 0.0, n_rmsea, xtol=1e-10)
        upper = float(np.sqrt(c * lam / (n * df)) * np.sqrt(g))
    return lower, upper


def rmsea_pvalue(
    x2: float, df: float, n: int, g: int = 1, c: float = 1.0, h0: float = 0.05, close: bool = True
) -> float:
    """p-value of close fit ``H0: RMSEA <= h0`` (or of not-close fit with ``close=False``)."""
    if not np.isfinite(x2) or df <= 0:
        return float("nan")
    ncp = n * df / c * h0**2 / g
    cdf = _ncx2_cdf(x2, df, ncp)
    return float(1 - cdf) if close else float(cdf)


def srmr(result: FitResult) -> dict[str, float]:
    """Standardized root mean square residuals, as lavaan's ``fitMeasures``.

    Bentler's SRMR standardizes observed and implied moments by the observed standard
    deviations: residuals ``(s_ij - sigma_ij) / sqrt(s_ii s_jj)`` over the ``p(p+1)/2``
    non-duplicated elements (and ``(m_i - mu_i) / sqrt(s_ii)`` for means with a mean
    structure); ``srmr`` (lavaan default, ``mimic = "lavaan"``) is ``srmr_bentler`` and
    includes the means when the model has a mean structure; groups are weighted by
    ``n_g / N``. ``crmr`` uses correlations and leaves out the diagonal. Under FIML the
    observed moments are the saturated (EM) estimates.

    References
    ----------
    Bentler, P. M. (1995). EQS structural equations program manual. Multivariate Software.
    """
    n = result.ntotal
    vals = {"srmr": 0.0, "srmr_bentler_nomean": 0.0, "crmr": 0.0, "crmr_nomean": 0.0}
    vals["rmr"] = 0.0
    vals["rmr_nomean"] = 0.0
    implied = result.spec.implied(result.x)
    ms = result.spec.meanstructure
    for g, imp in zip(result.sample.groups, implied, strict=True):
        w = g.n / n
        s, m = g.cov, g.mean
        p = s.shape[0]
        sd = np.sqrt(np.diag(s))
        il = np.tril_indices(p)
        res = (s - imp.sigma) / np.outer(sd, sd)
        cov_sq = np.sum(res[il] ** 2)
        raw_sq = np.sum((s - imp.sigma)[il] ** 2)
        mres = (m - imp.mu) / sd if ms else np.zeros(0)
        mraw = (m - imp.mu) if ms else np.zeros(0)
        npst = len(il[0])
        vals["srmr_bentler_nomean"] += w * np.sqrt(cov_sq / npst)
        vals["srmr"] += w * np.sqrt((cov_sq + np.sum(mres**2)) / (npst + len(mres)))
        vals["rmr_nomean"] += w * np.sqrt(raw_sq / npst)
        vals["rmr"] += w * np.sqrt((raw_sq + np.sum(mraw**2)) / (npst + len(mraw)))
        sdi = np.sqrt(np.diag(imp.sigma))
        cres = s / np.outer(sd, sd) - imp.sigma / np.outer(sdi, sdi)
        lo = np.tril_indices(p, -1)
        c_sq = np.sum(cres[lo] ** 2)
        cm = (m - imp.mu) / sd if ms else np.zeros(0)
        vals["crmr_nomean"] += w * np.sqrt(c_sq / max(len(lo[0]), 1))
        vals["crmr"] += w * np.sqrt((c_sq + np.sum(cm**2)) / max(len(lo[0]) + len(cm), 1))
    vals["srmr_bentler"] = vals["srmr"]
    return {k: float(v) for k, v in vals.items()}


def baseline_fit(result: FitResult) -> FitResult:
    """The independence model (variances and means free, covariances 0) on the same data.

    Complete data: the estimates are the sample variances and means; FIML: each variable's
    own ML mean and variance over its observed values (the likelihood factorizes).
    """
    cache = result.extra.get("baseline")
    if cache is not None:
        return cache
    spec = result.spec
    base = ModelSpec.independence(spec.ov, spec.group_labels, spec.meanstructure)
    x = np.zeros(base.npar)
    for r in base.table:
        g = result.sample.groups[r.group - 1]
        col = g.X[:, spec.ov.index(r.lhs)]
        col = col[~np.isnan(col)]
        if r.op == "~~":
            x[r.free - 1] = float(np.mean((col - col.mean()) ** 2))
        else:
            x[r.free - 1] = float(col.mean())
    fit = evaluate(base, result.sample, result.estimator, x)
    result.extra["baseline"] = fit
    return fit


def fit_measures(result: FitResult) -> dict[str, Any]:
    """Lavaan ``fitMeasures()`` of a fitted model (names as lavaan's).

    Always: ``npar, fmin, chisq, df, pvalue, baseline.chisq, baseline.df, baseline.pvalue,
    cfi, tli, nnfi, rfi, nfi, pnfi, ifi, rni, logl, unrestricted.logl, aic, bic, ntotal,
    bic2, rmsea, rmsea.ci.lower, rmsea.ci.upper, rmsea.ci.level, rmsea.pvalue,
    rmsea.close.h0, rmsea.notclose.pvalue, rmsea.notclose.h0, rmr, rmr_nomean, srmr,
    srmr_bentler, srmr_bentler_nomean, crmr, crmr_nomean``. With MLR (or FIML) also the
    ``.scaled`` and ``.robust`` versions from :func:`alliance.sem.robust.robust_measures`.

    References
    ----------
    Bentler, P. M. (1990). Comparative fit indexes in structural models. Psychological
    Bulletin, 107(2), 238-246.
    Tucker, L. R., & Lewis, C. (1973). A reliability coefficient for maximum likelihood
    factor analysis. Psychometrika, 38(1), 1-10.
    Steiger, J. H. (1990). Structural model evaluation and modification: An interval
    estimation approach. Multivariate Behavioral Research, 25(2), 173-180.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_measures(result)


def _fit_measures(result: FitResult) -> dict[str, Any]:
    n = result.ntotal
    g = result.spec.ngroups
    x2, df = result.chisq, result.df
    base = baseline_fit(result)
    x2b, dfb = base.chisq, base.df
    npar = result.npar
    out: dict[str, Any] = {
        "npar": npar,
        "fmin": result.fmin,
        "chisq": x2,
        "df": df,
        "pvalue": float(special.chdtrc(df, x2)) if df > 0 else float("nan"),
        "baseline.chisq": x2b,
        "baseline.df": dfb,
        "baseline.pvalue": float(special.chdtrc(dfb, x2b)) if dfb > 0 else float("nan"),
    }
    out["cfi"] = cfi(x2, df, x2b, dfb)
    out["tli"] = tli(x2, df, x2b, dfb)
    out["nnfi"] = out["tli"]
    out["rfi"] = float(max(0.0, min(1.0, 1 - (x2 / df) / (x2b / dfb)))) if df > 0 else float("nan")
    out["nfi"] = float(1 - x2 / x2b) if x2b > 0 else float("nan")
    out["pnfi"] = float(df / dfb * out["nfi"]) if dfb > 0 else float("nan")
    out["ifi"] = float((x2b - x2) / (x2b - df)) if x2b != df else float("nan")
    out["rni"] = float(1 - max(x2 - df, 0) / max(x2b - dfb, x2 - df, 0)) if x2b > dfb else 1.0
    out["logl"] = result.logl
    out["unrestricted.logl"] = result.unrestricted_logl
    out["aic"] = -2 * result.logl + 2 * npar
    out["bic"] = -2 * result.logl + npar * np.log(n)
    out["ntotal"] = n
    out["bic2"] = -2 * result.logl + npar * np.log((n + 2) / 24)
    out["rmsea"] = rmsea(x2, df, n, g)
    lo, up = rmsea_ci(x2, df, n, g)
    out["rmsea.ci.lower"], out["rmsea.ci.upper"] = lo, up
    out["rmsea.ci.level"] = 0.90
    out["rmsea.pvalue"] = rmsea_pvalue(x2, df, n, g, h0=0.05)
    out["rmsea.close.h0"] = 0.05
    out["rmsea.notclose.pvalue"] = rmsea_pvalue(x2, df, n, g, h0=0.08, close=False)
    out["rmsea.notclose.h0"] = 0.08
    out.update(srmr(result))
    if result.estimator == "MLR" or result.missing == "fiml":
        from alliance.sem.robust import robust_measures

        out.update(robust_measures(result, base))
    return {k: (float(v) if isinstance(v, float | np.floating) else v) for k, v in out.items()}


def n_moments(spec: ModelSpec) -> int:
    """Number of sample moments (``ndat``)."""
    return ndat(spec)
