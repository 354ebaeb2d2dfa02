"""Fit measures, once for every estimator, named as lavaan's fitMeasures() (lav_fit_*).

:func:`fit_measures` returns every measure lavaan 0.6-14 reports with ``fit.measures = "all"``
for ML, MLR (with its ``.scaled`` and ``.robust`` versions) and WLSMV (ordered or continuous
items); the index formulas (:func:`cfi`, :func:`tli`, :func:`rmsea`, ...) are lavaan's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from alliance.sem.estimate import FitResult, evaluate, ndat
from alliance.sem.information import wls_implied
from alliance.sem.model import ModelSpec
from alliance.sem.mvnorm import expected_information, saturated_jacobian
from alliance.sem.teststats import (
    catml_dwls,
    catml_undefined,
    chisq_pvalue,
    fiml_corrected,
    model_test,
    scaled_shifted,
)

__all__ = [
    "FIT_NAMES",
    "ROBUST_NAMES",
    "WLSMV_NAMES",
    "baseline_fit",
    "cfi",
    "fit_block",
    "fit_measures",
    "gfi",
    "ifi",
    "nfi",
    "rfi",
    "rmsea",
    "rmsea_ci",
    "rmsea_pvalue",
    "rni",
    "srmr",
    "tli",
]

#: The ``fit`` block of the reference files (lavaan ``fitMeasures`` names).
FIT_NAMES = (
    "npar", "ntotal", "chisq", "df", "pvalue", "cfi", "tli", "rmsea", "rmsea.ci.lower",
    "rmsea.ci.upper", "rmsea.pvalue", "srmr", "logl", "unrestricted.logl", "aic", "bic", "bic2",
    "baseline.chisq", "baseline.df", "baseline.pvalue",
)  # fmt: skip
#: Added to ``fit`` for MLR (and WLSMV).
ROBUST_NAMES = (
    "chisq.scaled", "df.scaled", "pvalue.scaled", "chisq.scaling.factor",
    "baseline.chisq.scaled", "baseline.df.scaled", "cfi.scaled", "tli.scaled", "rmsea.scaled",
    "rmsea.ci.lower.scaled", "rmsea.ci.upper.scaled", "cfi.robust", "tli.robust",
    "rmsea.robust", "rmsea.ci.lower.robust", "rmsea.ci.upper.robust", "srmr_bentler",
)  # fmt: skip
#: Added to ``fit`` for WLSMV.
WLSMV_NAMES = ("chisq.shift.parameter", "baseline.chisq.scaling.factor")


def fit_block(result: FitResult, measures: dict[str, Any]) -> dict[str, Any]:
    """The ``fit`` block of the output: the reference files' names for the estimator."""
    names = FIT_NAMES
    if result.estimator != "ML":
        names += ROBUST_NAMES
    if result.estimator == "WLSMV":
        names += WLSMV_NAMES
    return {k: measures.get(k) for k in names}


# --------------------------------------------------------------------------- index formulas


def _finite(*values: float) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def cfi(
    x2: float, df: float, x2_null: float, df_null: float, c: float = 1.0, c_null: float = 1.0
) -> float:
    """Comparative fit index (Bentler 1990); with ``c``/``c_null`` the robust version.

    ``1 - max(X2 - c df, 0) / max(X2 - c df, X2_0 - c_0 df_0, 0)``; the robust CFI of
    Brosseau-Liard & Savalei (2014) uses the scaling factors ``c`` and ``c_null``.
    """
    if not _finite(x2, df, x2_null, df_null, c, c_null):
        return float("nan")
    t1 = max(x2 - c * df, 0.0)
    t2 = max(x2 - c * df, x2_null - c_null * df_null, 0.0)
    if math.isclose(t1, 0.0, abs_tol=1.5e-8) and math.isclose(t2, 0.0, abs_tol=1.5e-8):
        return 1.0
    return float(1.0 - t1 / t2)


def tli(
    x2: float, df: float, x2_null: float, df_null: float, c: float = 1.0, c_null: float = 1.0
) -> float:
    """Tucker-Lewis index (non-normed fit index, ``nnfi``); robust with scaling factors."""
    if not _finite(x2, df, x2_null, df_null, c, c_null):
        return float("nan")
    t1 = (x2 - c * df) * df_null
    t2 = (x2_null - c_null * df_null) * df
    if df > 0 and abs(t2) > 0:
        return float(1.0 - t1 / t2)
    return 1.0


def rni(
    x2: float, df: float, x2_null: float, df_null: float, c: float = 1.0, c_null: float = 1.0
) -> float:
    """Relative noncentrality index ``1 - (X2 - c df) / (X2_0 - c_0 df_0)``, not truncated.

    McDonald & Marsh (1990), as lavaan.
    """
    if not _finite(x2, df, x2_null, df_null, c, c_null):
        return float("nan")
    t1, t2 = x2 - c * df, x2_null - c_null * df_null
    if math.isclose(t2, 0.0, abs_tol=1.5e-8):
        return float("nan")
    return float(1.0 - t1 / t2)


def nfi(x2: float, df: float, x2_null: float, df_null: float) -> float:
    """Normed fit index ``(X2_0 - X2) / X2_0`` (Bentler & Bonett 1980; lavaan's cases)."""
    if not _finite(x2, df, x2_null, df_null):
        return float("nan")
    if df > df_null or math.isclose(x2_null, 0.0, abs_tol=1.5e-8):
        return float("nan")
    return float((x2_null - x2) / x2_null) if df > 0 else 1.0


def pnfi(x2: float, df: float, x2_null: float, df_null: float) -> float:
    """Parsimony normed fit index ``(df / df_0) NFI`` (James, Mulaik & Brett 1982)."""
    if not _finite(x2, df, x2_null, df_null) or not (df_null > 0 and x2_null > 0):
        return float("nan")
    return float(df / df_null * (x2_null - x2) / x2_null)


def rfi(x2: float, df: float, x2_null: float, df_null: float) -> float:
    """Relative fit index ``(X2_0/df_0 - X2/df) / (X2_0/df_0)`` (Bollen 1986; lavaan's cases)."""
    if not _finite(x2, df, x2_null, df_null):
        return float("nan")
    if df > df_null:
        return float("nan")
    if df > 0 and df_null > 0:
        t1, t2 = x2_null / df_null - x2 / df, x2_null / df_null
        return 1.0 if t1 < 0 or t2 < 0 else float(t1 / t2)
    return 1.0


def ifi(x2: float, df: float, x2_null: float, df_null: float) -> float:
    """Incremental fit index ``(X2_0 - X2) / (X2_0 - df)`` (Bollen 1989; lavaan's cases)."""
    if not _finite(x2, df, x2_null, df_null):
        return float("nan")
    t1, t2 = x2_null - x2, x2_null - df
    if t2 < 0:
        return 1.0
    if math.isclose(t2, 0.0, abs_tol=1.5e-8):
        return float("nan")
    return float(t1 / t2)


def rmsea(x2: float, df: float, n: int, g: int = 1, c: float = 1.0) -> float:
    """RMSEA ``sqrt(max(X2/(N df) - c/N, 0)) sqrt(G)`` (Steiger 1990; lavaan's group factor)."""
    if not _finite(x2, df, c):
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
    if not _finite(x2, df, c) or df < 1:
        return (0.0, 0.0) if _finite(x2) else (float("nan"), float("nan"))
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
    if not _finite(x2, df, c) or df <= 0:
        return float("nan")
    ncp = n * df / c * h0**2 / g
    cdf = _ncx2_cdf(x2, df, ncp)
    return float(1 - cdf) if close else float(cdf)


# --------------------------------------------------------------------------- residual-based


def _wls_vectors(result: FitResult, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample statistics, implied statistics and weights of group ``g``.

    lavaan's WLS.obs, WLS.est and the diagonal or full WLS.V behind ``gfi``; with missing data
    (FIML) the available-case moments and the pattern-weighted expected information.
    """
    spec, group = result.spec, result.sample.groups[g - 1]
    if group.wls is not None:
        return group.wls.obs, wls_implied(spec, result.x, g, group.wls), group.wls.v_diag
    imp = spec.implied(result.x, g)[0]
    p = spec.p
    rows, cols = np.tril_indices(p)
    mean, cov = (group.mean, group.cov) if group.complete else _available_moments(group.X)
    obs, est = cov[rows, cols], imp.sigma[rows, cols]
    if spec.meanstructure:
        obs, est = np.concatenate([mean, obs]), np.concatenate([imp.mu, est])
    dsig, dmu = saturated_jacobian(p, spec.meanstructure)
    dmu_used = dmu if spec.meanstructure else None
    # normal-theory weight: the expected h1 information at the implied moments (structured);
    # with missing data summed over the patterns, each on its observed variables (lavaan)
    if group.complete:
        return obs, est, expected_information(imp.sigma, dsig, dmu_used)
    weight = np.zeros((len(obs), len(obs)))
    for seen, idx in group.patterns:
        o = np.flatnonzero(seen)
        if len(o):
            part = expected_information(
                imp.sigma[np.ix_(o, o)],
                dsig[:, o][:, :, o],
                None if dmu_used is None else dmu[:, o],
            )
            weight += len(idx) / group.n * part
    return obs, est, weight


def _available_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Available-case means and pairwise covariances of incomplete data (lavaan's ``WLS.obs``).

    The covariances are R's ``cov(use = "pairwise")`` times ``(N - 1) / N``.
    """
    n, p = x.shape
    seen = ~np.isnan(x)
    cov = np.zeros((p, p))
    for i in range(p):
        for j in range(i + 1):
            both = seen[:, i] & seen[:, j]
            a, b = x[both, i], x[both, j]
            cov[i, j] = cov[j, i] = np.sum((a - a.mean()) * (b - b.mean())) / (both.sum() - 1)
    return np.nanmean(x, axis=0), cov * (n - 1) / n


def gfi(result: FitResult) -> float:
    """Goodness-of-fit index ``1 - r' W r / s' W s`` (Joreskog & Sorbom 1986).

    Weighted over groups by ``n_g / N``; ``W`` the weight of the estimator (lavaan's
    ``WLS.V``): the normal-theory h1 information (ML, MLR) or the DWLS weights (WLSMV).
    """
    values = []
    for g in range(1, result.spec.ngroups + 1):
        obs, est, w = _wls_vectors(result, g)
        diff = obs - est
        if w.ndim == 1:
            values.append(1.0 - float(np.sum(w * diff**2)) / float(np.sum(w * obs**2)))
        else:
            values.append(1.0 - float(diff @ w @ diff) / float(obs @ w @ obs))
    return float(np.dot(result.sample.fg, values))


def srmr(result: FitResult) -> dict[str, float]:
    """Root mean square residuals, as lavaan's ``fitMeasures``.

    Bentler's SRMR standardizes observed and implied moments by the observed standard
    deviations: residuals ``(s_ij - sigma_ij) / sqrt(s_ii s_jj)`` over the ``p(p+1)/2``
    non-duplicated elements (and ``(m_i - mu_i) / sqrt(s_ii)`` for means with a mean
    structure, or the threshold residuals of ordered items); ``srmr`` (lavaan default,
    ``mimic = "lavaan"``) is ``srmr_bentler``, without the thresholds for ordered items;
    ``rmr`` uses the raw residuals, ``crmr`` correlations without the diagonal, and
    ``srmr_mplus`` (continuous items) the correlation residuals plus the relative variance
    residuals (Muthen's SRMR). Groups are weighted by ``n_g / N``. Under FIML the observed
    moments are the saturated (EM) estimates; for ordered items the polychoric correlations.

    References
    ----------
    Bentler, P. M. (1995). EQS structural equations program manual. Multivariate Software.
    Asparouhov, T., & Muthen, B. (2018). SRMR in Mplus. Technical report.
    """
    spec, ordered = result.spec, result.categorical
    names = ("srmr", "srmr_nomean", "rmr", "rmr_nomean", "crmr", "crmr_nomean", "mplus",
             "mplus_nomean")  # fmt: skip
    vals = dict.fromkeys(names, 0.0)
    for gi, (g, imp) in enumerate(zip(result.sample.groups, spec.implied(result.x), strict=True)):
        w = result.sample.fg[gi]
        s = g.cov
        p = s.shape[0]
        sd = np.sqrt(np.diag(s))
        il, lo = np.tril_indices(p), np.tril_indices(p, -1)
        if ordered:
            assert g.ordinal is not None
            mraw = g.ordinal.th_vector - imp.tau
            mstd = mraw
        elif spec.meanstructure:
            mraw = g.mean - imp.mu
            mstd = mraw / sd
        else:
            mraw = mstd = np.zeros(0)
        std_sq = float(np.sum(((s - imp.sigma) / np.outer(sd, sd))[il] ** 2))
        raw_sq = float(np.sum((s - imp.sigma)[il] ** 2))
        sdi = np.sqrt(np.diag(imp.sigma))
        cres = s / np.outer(sd, sd) - imp.sigma / np.outer(sdi, sdi)
        c_sq = float(np.sum(cres[lo] ** 2))
        npst, nlo, nm = len(il[0]), len(lo[0]), len(mraw)
        vals["srmr_nomean"] += w * math.sqrt(std_sq / npst)
        vals["srmr"] += w * math.sqrt((std_sq + np.sum(mstd**2)) / (npst + nm))
        vals["rmr_nomean"] += w * math.sqrt(raw_sq / npst)
        vals["rmr"] += w * math.sqrt((raw_sq + np.sum(mraw**2)) / (npst + nm))
        vals["crmr_nomean"] += w * math.sqrt(c_sq / max(nlo, 1))
        vals["crmr"] += w * math.sqrt((c_sq + np.sum(mstd**2)) / max(nlo + nm, 1))
        if not ordered:
            var_sq = float(np.sum(((np.diag(s) - np.diag(imp.sigma)) / np.diag(s)) ** 2))
            m_sq = float(np.sum((g.mean / sd - imp.mu / sdi) ** 2)) if spec.meanstructure else 0.0
            e_nomean = p * (p + 1) / 2
            vals["mplus_nomean"] += w * math.sqrt((c_sq + var_sq) / e_nomean)
            vals["mplus"] += w * math.sqrt((c_sq + var_sq + m_sq) / (e_nomean + nm))
    mean_structure = spec.meanstructure or ordered
    out = {
        "srmr": vals["srmr_nomean"] if ordered else vals["srmr"],
        "srmr_bentler": vals["srmr"] if mean_structure else vals["srmr_nomean"],
        "srmr_bentler_nomean": vals["srmr_nomean"],
        "crmr": vals["crmr"] if mean_structure else vals["crmr_nomean"],
        "crmr_nomean": vals["crmr_nomean"],
        "srmr_mplus": float("nan") if ordered else vals["mplus"],
        "srmr_mplus_nomean": float("nan") if ordered else vals["mplus_nomean"],
        "rmr": vals["rmr"] if mean_structure else vals["rmr_nomean"],
        "rmr_nomean": vals["rmr_nomean"],
    }
    return {k: float(v) for k, v in out.items()}


# --------------------------------------------------------------------------- baseline


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


def _dwls_baseline(result: FitResult) -> dict[str, float]:
    """The independence model of a WLSMV fit and its scaled-shifted test, in closed form.

    Means, thresholds and variances are free and fit exactly; the covariances (correlations)
    are zero, so the DWLS statistic is ``sum_g (N_g - 1) sum_k w_k s_k^2`` over the
    off-diagonal statistics ``k``, and ``U Gamma`` is ``W Gamma`` restricted to them.
    """
    x2b = tr1 = tr2 = 0.0
    dfb = 0
    for g in result.sample.groups:
        wls = g.wls
        assert wls is not None
        start = wls.n_means + wls.n_th
        off = start + np.flatnonzero(wls.pair_index[:, 0] != wls.pair_index[:, 1])
        w = wls.v_diag[off]
        r = wls.obs[off]
        x2b += (g.n - 1.0) * float(np.sum(w * r * r))
        dfb += len(off)
        wg = w[:, None] * wls.gamma[np.ix_(off, off)]
        tr1 += float(np.trace(wg))
        tr2 += float(np.sum(wg * wg.T))
    out = scaled_shifted(x2b, dfb, tr1, tr2)
    out["chisq"] = x2b
    out["df"] = dfb
    out["pvalue.scaled"] = chisq_pvalue(out["chisq.scaled"], dfb)
    return out


# --------------------------------------------------------------------------- all measures


def fit_measures(result: FitResult) -> dict[str, Any]:
    """Lavaan ``fitMeasures(fit, "all")`` of a fitted model (names as lavaan's).

    Always ``npar, fmin, chisq, df, pvalue``, the baseline test, ``cfi, tli, nnfi, rfi, nfi,
    pnfi, ifi, rni``, the RMSEA with its 90% interval and close-fit tests, the residual
    measures of :func:`srmr`, ``gfi, agfi, pgfi, cn_05, cn_01, mfi`` and ``ecvi`` (continuous
    items) or ``wrmr`` (ordered items); ML and MLR also ``logl, unrestricted.logl, aic, bic,
    ntotal, bic2``; MLR and WLSMV the ``.scaled`` versions of the tests and indices and the
    ``.robust`` CFI/TLI/NNFI/RNI/RMSEA (MLR: Brosseau-Liard, Savalei & Li 2012, Brosseau-Liard &
    Savalei 2014, with FIML Zhang & Savalei 2023; WLSMV with ordered items: Savalei 2021; WLSMV
    with continuous items: the scaled-shifted correction); MLR ``scaling.factor.h1/h0``. WLSMV
    uses ``N - G`` where lavaan does (RMSEA, ECVI, CN, MFI). A measure lavaan gives as NA is
    ``nan``; a model that is not identified gets only ``npar``, ``df`` and ``ntotal``.

    References
    ----------
    Bentler, P. M. (1990). Comparative fit indexes in structural models. Psychological
    Bulletin, 107(2), 238-246.
    Tucker, L. R., & Lewis, C. (1973). A reliability coefficient for maximum likelihood
    factor analysis. Psychometrika, 38(1), 1-10.
    Steiger, J. H. (1990). Structural model evaluation and modification: An interval
    estimation approach. Multivariate Behavioral Research, 25(2), 173-180.
    Hoelter, J. W. (1983). The analysis of covariance structures: Goodness-of-fit indices.
    Sociological Methods & Research, 11(3), 325-344.
    McDonald, R. P. (1989). An index of goodness-of-fit based on noncentrality. Journal of
    Classification, 6, 97-103.
    Browne, M. W., & Cudeck, R. (1989). Single sample cross-validation indices for covariance
    structures. Multivariate Behavioral Research, 24(4), 445-455.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_measures(result)


def _fit_measures(result: FitResult) -> dict[str, Any]:
    est = result.estimator
    dwls = est == "WLSMV"
    npar, df = result.npar, result.df
    if result.not_identified or df < 0:
        out = {"npar": npar, "df": df, "ntotal": None if dwls else result.ntotal}
        return out
    g = result.spec.ngroups
    n = result.ntotal - g if dwls else result.ntotal
    x2 = result.chisq
    test = model_test(result)
    out: dict[str, Any] = {"npar": npar, "fmin": result.fmin, "chisq": x2, "df": df}
    out["pvalue"] = chisq_pvalue(x2, df)
    if dwls:
        base = _dwls_baseline(result)
        x2b, dfb = base["chisq"], base["df"]
    else:
        base_fit = baseline_fit(result)
        x2b, dfb = base_fit.chisq, base_fit.df
        base = model_test(base_fit)
    out.update({"baseline.chisq": x2b, "baseline.df": dfb})
    out["baseline.pvalue"] = chisq_pvalue(x2b, dfb)
    # ---- incremental indices
    for name, fn in (("cfi", cfi), ("tli", tli), ("nnfi", tli), ("rfi", rfi), ("nfi", nfi),
                     ("pnfi", pnfi), ("ifi", ifi), ("rni", rni)):  # fmt: skip
        out[name] = fn(x2, df, x2b, dfb)
    if test is not None and base is not None:
        x2s, x2bs = test["chisq.scaled"], base["chisq.scaled"]
        out.update({"chisq.scaled": x2s, "df.scaled": df, "pvalue.scaled": test["pvalue.scaled"]})
        out["chisq.scaling.factor"] = test["chisq.scaling.factor"]
        if dwls:
            out["chisq.shift.parameter"] = test["shift"]
        out["baseline.chisq.scaled"] = x2bs
        out["baseline.df.scaled"] = dfb
        out["baseline.pvalue.scaled"] = base["pvalue.scaled"]
        out["baseline.chisq.scaling.factor"] = base["chisq.scaling.factor"]
        for name, fn in (("cfi", cfi), ("tli", tli), ("nnfi", tli), ("rfi", rfi), ("nfi", nfi),
                         ("pnfi", pnfi), ("ifi", ifi), ("rni", rni)):  # fmt: skip
            out[f"{name}.scaled"] = fn(x2s, df, x2bs, dfb)
    # ---- log-likelihood
    if not dwls:
        out["logl"] = result.logl
        out["unrestricted.logl"] = result.unrestricted_logl
        out["aic"] = -2 * result.logl + 2 * npar
        out["bic"] = -2 * result.logl + npar * np.log(n)
        out["bic2"] = -2 * result.logl + npar * np.log((n + 2) / 24)
        if test is not None:
            out["scaling.factor.h1"] = test["scaling.factor.h1"]
            out["scaling.factor.h0"] = test["scaling.factor.h0"]
    out["ntotal"] = None if dwls else result.ntotal
    # ---- RMSEA
    out["rmsea"] = rmsea(x2, df, n, g)
    out["rmsea.ci.lower"], out["rmsea.ci.upper"] = rmsea_ci(x2, df, n, g)
    out["rmsea.ci.level"] = 0.90
    out["rmsea.pvalue"] = rmsea_pvalue(x2, df, n, g, h0=0.05)
    out["rmsea.close.h0"] = 0.05
    out["rmsea.notclose.pvalue"] = rmsea_pvalue(x2, df, n, g, h0=0.08, close=False)
    out["rmsea.notclose.h0"] = 0.08
    if test is not None:
        # scaled-shifted: the scaled statistic on df; Yuan-Bentler: X2 on df2 = tr(U Gamma)
        xx2, df2 = (test["chisq.scaled"], df) if dwls else (x2, test["trace.UGamma"])
        out["rmsea.scaled"] = rmsea(xx2, df2, n, g)
        out["rmsea.ci.lower.scaled"], out["rmsea.ci.upper.scaled"] = rmsea_ci(xx2, df2, n, g)
        out["rmsea.pvalue.scaled"] = rmsea_pvalue(xx2, df2, n, g, h0=0.05)
        out["rmsea.notclose.pvalue.scaled"] = rmsea_pvalue(xx2, df2, n, g, h0=0.08, close=False)
    if test is not None or result.missing == "fiml":
        out.update(_robust_measures(result, test, base, x2b, dfb, n))
    out.update(srmr(result))
    # ---- other
    out["gfi"] = gfi(result)
    nel = ndat(result.spec, result.sample if dwls else None)
    out["agfi"] = 1 - nel / df * (1 - out["gfi"]) if df > 0 else 1.0
    out["pgfi"] = df / nel * out["gfi"] if nel else float("nan")
    out["cn_05"] = _cn(x2, df, n, 0.05)
    out["cn_01"] = _cn(x2, df, n, 0.01)
    out["mfi"] = float(np.exp(-0.5 * (x2 - df) / n))
    if result.categorical:
        nel1 = len(result.sample.groups[0].wls.obs)  # type: ignore[union-attr]
        out["wrmr"] = float(np.sqrt(x2 / nel1)) if nel1 else float("nan")
    else:
        out["ecvi"] = x2 / n + 2 * npar / n
    return {k: (float(v) if isinstance(v, float | np.floating) else v) for k, v in out.items()}


def _cn(x2: float, df: float, n: int, alpha: float) -> float:
    """Hoelter's critical N ``chi2_{1-alpha}(df) / (X2 / N) + 1`` (lavaan's ``cn_05/cn_01``)."""
    if df == 0 and x2 < np.finfo(float).eps:
        return float("nan")
    if x2 <= 0:  # a perfect fit: lavaan divides by zero and reports Inf
        return float("inf")
    return float(special.chdtri(df, alpha) / (x2 / n) + 1)


def _robust_measures(
    result: FitResult,
    test: dict[str, float] | None,
    base: dict[str, float] | None,
    x2b: float,
    dfb: float,
    n: int,
) -> dict[str, float]:
    """The ``.robust`` CFI/TLI/NNFI/RNI and RMSEA (lavaan's ``robust.flag`` measures).

    MLR complete data: ``X2`` with the Yuan-Bentler scaling factors (Brosseau-Liard, Savalei
    & Li 2012; Brosseau-Liard & Savalei 2014); FIML: the corrected statistics of
    :func:`alliance.sem.teststats.fiml_corrected` (Zhang & Savalei 2023; ``V3`` for MLR,
    ``V6`` for ML); WLSMV with ordered
    items: the catML statistics of :func:`alliance.sem.teststats.catml_dwls` (Savalei 2021;
    ``nan`` where lavaan gives NA, the reason in the fit's notes); WLSMV with continuous items:
    ``X2`` with ``c = (1/a) (df - b) / df`` from the scaled-shifted test.
    """
    x2, df, g = result.chisq, result.df, result.spec.ngroups
    if result.missing == "fiml":
        version = "V3" if test is not None else "V6"
        fc = fiml_corrected(result, baseline_fit(result), version)
        xx3, df3, c3, xx3s = fc["XX3"], fc["df3"], fc["c_hat3"], fc["XX3_scaled"]
        xx3b, c3b = fc["XX3_null"], fc["c_hat3_null"]
        df_cfi, dfb_cfi, c_ci = df, dfb, c3
        return _robust_block(xx3, df3, c3, xx3s, xx3b, c3b, df_cfi, dfb_cfi, c_ci, n, g)
    assert test is not None and base is not None
    c_scale = test["chisq.scaling.factor"]
    if result.categorical:
        cat = catml_dwls(result)
        why = catml_undefined(result)
        if why is not None:
            note = f"robust CFI, TLI and RMSEA not defined: {why}"
            if note not in result.notes:
                result.notes.append(note)
        if cat is None:
            nan = float("nan")
            cat = dict.fromkeys(
                ("XX3", "df3", "c_hat3", "XX3_scaled", "XX3_null", "df3_null", "c_hat3_null"),
                nan,
            )
        xx3, df3, c3, xx3s = cat["XX3"], cat["df3"], cat["c_hat3"], cat["XX3_scaled"]
        xx3b, c3b = cat["XX3_null"], cat["c_hat3_null"]
        df_cfi, dfb_cfi, c_ci = df3, cat["df3_null"], c3
    elif result.estimator == "WLSMV":
        shift, shift_b = test["shift"], base["shift"]
        xx3, df3, xx3s, xx3b = x2, df, test["chisq.scaled"], x2b
        c3 = c_scale * (df - shift) / df
        c3b = base["chisq.scaling.factor"] * (dfb - shift_b) / dfb
        df_cfi, dfb_cfi, c_ci = df, dfb, c_scale
    else:
        xx3, df3, c3, xx3s = x2, df, c_scale, test["chisq.scaled"]
        xx3b, c3b = x2b, base["chisq.scaling.factor"]
        df_cfi, dfb_cfi, c_ci = df, dfb, c3
    return _robust_block(xx3, df3, c3, xx3s, xx3b, c3b, df_cfi, dfb_cfi, c_ci, n, g)


def _robust_block(
    xx3: float,
    df3: float,
    c3: float,
    xx3s: float,
    xx3b: float,
    c3b: float,
    df_cfi: float,
    dfb_cfi: float,
    c_ci: float,
    n: int,
    g: int,
) -> dict[str, float]:
    """The robust indices from a corrected statistic ``XX3`` and its scaling factors."""
    out = {
        "cfi.robust": cfi(xx3, df_cfi, xx3b, dfb_cfi, c3, c3b),
        "tli.robust": tli(xx3, df_cfi, xx3b, dfb_cfi, c3, c3b),
        "nnfi.robust": tli(xx3, df_cfi, xx3b, dfb_cfi, c3, c3b),
        "rni.robust": rni(xx3, df_cfi, xx3b, dfb_cfi, c3, c3b),
        "rmsea.robust": rmsea(xx3, df3, n, g, c3),
    }
    out["rmsea.ci.lower.robust"], out["rmsea.ci.upper.robust"] = rmsea_ci(xx3s, df3, n, g, c_ci)
    out["rmsea.pvalue.robust"] = rmsea_pvalue(xx3s, df3, n, g, c_ci, h0=0.05)
    out["rmsea.notclose.pvalue.robust"] = rmsea_pvalue(xx3s, df3, n, g, c_ci, 0.08, False)
    return out
