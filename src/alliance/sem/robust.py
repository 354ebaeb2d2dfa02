"""MLR: Yuan-Bentler (Mplus variant) scaled test and the scaled and robust CFI/TLI/RMSEA."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from alliance.sem.estimate import (
    FitResult,
    GroupData,
    casewise_scores,
    expected_information,
    normal_observed_information,
    saturated_jacobian,
)

__all__ = [
    "h1_information",
    "h1_observed_information_missing",
    "robust_measures",
    "yuan_bentler_mplus",
]


def h1_observed_information_missing(
    g: GroupData, mu: np.ndarray, sigma: np.ndarray, dsig: np.ndarray, dmu: np.ndarray | None
) -> np.ndarray:
    """Observed h1 information under missing data; see :func:`normal_observed_information`."""
    return normal_observed_information(g, mu, sigma, dsig, dmu)


def h1_information(result: FitResult, group: int) -> tuple[np.ndarray, np.ndarray]:
    """Unstructured h1 information ``A1`` and first-order information ``B1`` of one group.

    Both per observation, for the saturated model (means if the model has a mean
    structure, and the non-duplicated covariances) at the saturated estimates: the sample
    moments (complete data; ``A1`` is then the expected information) or the EM estimates
    (FIML; ``A1`` the observed information), as lavaan's ``h1.information =
    "unstructured"`` for the ``yuan.bentler.mplus`` test. Cached on the sample (shared by
    the steps of a ladder and their baselines): do not modify the returned arrays.
    """
    sample = result.sample
    g = sample.groups[group - 1]
    ms = result.spec.meanstructure
    # a property of the data alone: computed once per sample (the fits of a ladder, their
    # baselines and the FIML correction share it); fill_h1 clears it
    cache = sample.__dict__.setdefault("_h1_information", {})
    if (group, ms) in cache:
        return cache[(group, ms)]
    p = g.cov.shape[0]
    dsig, dmu = saturated_jacobian(p, ms)
    if g.complete:
        a1 = expected_information(g.cov, dsig, dmu if ms else None)
    else:
        a1 = h1_observed_information_missing(g, g.mean, g.cov, dsig, dmu if ms else None)
    sc = casewise_scores(g.X, g.mean, g.cov, dsig, dmu if ms else None, g.patterns)
    b1 = sc.T @ sc / g.n
    cache[(group, ms)] = (a1, b1)
    return a1, b1


def yuan_bentler_mplus(result: FitResult) -> dict[str, Any]:
    """Yuan-Bentler scaling factor, Mplus variant (lavaan ``test = "yuan.bentler.mplus"``).

    ``c = sum_g [tr(B1_g A1_g^-1) - (n_g/N) tr(B0_g E^-1)] / df``, with ``A1``/``B1`` the
    unstructured h1 (observed and first-order) information of the saturated model, ``B0_g``
    the first-order information of the model (casewise scores) and ``E`` the observed
    information of the model (both per observation). ``B0_g`` is nonzero only on group
    ``g``'s parameters, so ``tr(B0_g E^-1)`` needs only that block of ``E^-1``.

    Returns
    -------
    dict
        ``scaling_factor``, ``trace_ugamma`` (= ``c df``), ``chisq_scaled``, ``pvalue_scaled``,
        ``df``.

    References
    ----------
    Yuan, K.-H., & Bentler, P. M. (2000). Three likelihood-based methods for mean and
    covariance structure analysis with nonnormal missing data. Sociological Methodology,
    30, 165-200.
    Asparouhov, T., & Muthen, B. (2005). Multivariate statistical modeling with survey
    data. Proceedings of the Federal Committee on Statistical Methodology.
    """
    df = result.df
    e_inv = result.extra.get("E_inv")
    b0 = result.extra.get("B0_group")
    nan = float("nan")
    if e_inv is None or b0 is None or df <= 0:
        return {"scaling_factor": nan, "trace_ugamma": nan, "chisq_scaled": nan,
                "pvalue_scaled": nan, "df": df}  # fmt: skip
    n = result.ntotal
    trace = 0.0
    for gi, g in enumerate(result.sample.groups):
        a1, b1 = h1_information(result, gi + 1)
        try:
            a1_inv = np.linalg.inv(a1)
        except np.linalg.LinAlgError:
            return {"scaling_factor": nan, "trace_ugamma": nan, "chisq_scaled": nan,
                    "pvalue_scaled": nan, "df": df}  # fmt: skip
        # B0_g lives on the group's own parameters: only that block of E^-1 enters
        e_loc = e_inv.local(gi)
        trace += float(np.sum(b1 * a1_inv.T)) - (g.n / n) * float(np.sum(b0[gi] * e_loc.T))
    c = trace / df
    if not c > 0:
        c = nan
    chisq_s = result.chisq / c
    return {
        "scaling_factor": c,
        "trace_ugamma": trace,
        "chisq_scaled": chisq_s,
        "pvalue_scaled": float(special.chdtrc(df, chisq_s)) if np.isfinite(chisq_s) else nan,
        "df": df,
    }


def robust_measures(result: FitResult, baseline: FitResult) -> dict[str, float]:
    """The ``.scaled`` and ``.robust`` fit measures of an MLR fit, as lavaan 0.6-14.

    Scaled (naive) versions plug the scaled statistics into the usual formulas; robust
    versions follow Brosseau-Liard, Savalei & Li (2012; RMSEA) and Brosseau-Liard & Savalei
    (2014; CFI, TLI): ``rmsea.robust = sqrt(max(X2/(N df) - c/N, 0))``, ``cfi.robust`` with
    ``X2 - c df`` and ``X2_0 - c_0 df_0``. ``rmsea.scaled`` uses ``X2`` with
    ``df = tr(U Gamma)``. With FIML the robust versions use the FIML-corrected statistics
    of Zhang & Savalei (2023) from :func:`alliance.sem.fiml.fiml_corrected`.

    References
    ----------
    Brosseau-Liard, P. E., Savalei, V., & Li, L. (2012). An investigation of the sample
    performance of two nonnormality corrections for RMSEA. Multivariate Behavioral Research,
    47(6), 904-930.
    Brosseau-Liard, P. E., & Savalei, V. (2014). Adjusting incremental fit indices for
    nonnormality. Multivariate Behavioral Research, 49(5), 460-470.
    Zhang, X., & Savalei, V. (2023). New computations for RMSEA and CFI following FIML and
    TS estimation with missing data. Psychological Methods, 28(2), 263-283.
    """
    from alliance.sem.fit import cfi, rmsea, rmsea_ci, rmsea_pvalue, tli

    out: dict[str, float] = {}
    if result.estimator != "MLR":
        return out
    n = result.ntotal
    grp = result.spec.ngroups
    yb = yuan_bentler_mplus(result)
    yb0 = yuan_bentler_mplus(baseline)
    x2, df = result.chisq, result.df
    x2b, dfb = baseline.chisq, baseline.df
    c, c0 = yb["scaling_factor"], yb0["scaling_factor"]
    x2s, x2bs = yb["chisq_scaled"], yb0["chisq_scaled"]
    out["chisq.scaled"] = x2s
    out["df.scaled"] = df
    out["pvalue.scaled"] = yb["pvalue_scaled"]
    out["chisq.scaling.factor"] = c
    out["baseline.chisq.scaled"] = x2bs
    out["baseline.df.scaled"] = dfb
    out["baseline.pvalue.scaled"] = yb0["pvalue_scaled"]
    out["baseline.chisq.scaling.factor"] = c0
    out["cfi.scaled"] = cfi(x2s, df, x2bs, dfb)
    out["tli.scaled"] = tli(x2s, df, x2bs, dfb)
    out["nnfi.scaled"] = out["tli.scaled"]
    df2 = yb["trace_ugamma"]
    out["rmsea.scaled"] = rmsea(x2, df2, n, grp)
    lo, up = rmsea_ci(x2, df2, n, grp)
    out["rmsea.ci.lower.scaled"], out["rmsea.ci.upper.scaled"] = lo, up
    out["rmsea.pvalue.scaled"] = rmsea_pvalue(x2, df2, n, grp, h0=0.05)
    out["rmsea.notclose.pvalue.scaled"] = rmsea_pvalue(x2, df2, n, grp, h0=0.08, close=False)
    # robust versions
    if result.missing == "fiml":
        from alliance.sem.fiml import fiml_corrected

        fc = fiml_corrected(result, baseline)
        xx3, df3, c3, xx3s = fc["XX3"], fc["df3"], fc["c_hat3"], fc["XX3_scaled"]
        xx3b, c3b = fc["XX3_null"], fc["c_hat3_null"]
    else:
        xx3, df3, c3, xx3s = x2, df, c, x2s
        xx3b, c3b = x2b, c0
    out["cfi.robust"] = cfi(xx3, df, xx3b, dfb, c3, c3b)
    out["tli.robust"] = tli(xx3, df, xx3b, dfb, c3, c3b)
    out["nnfi.robust"] = out["tli.robust"]
    out["rmsea.robust"] = rmsea(xx3, df3, n, grp, c3)
    lo, up = rmsea_ci(xx3s, df3, n, grp, c3)
    out["rmsea.ci.lower.robust"], out["rmsea.ci.upper.robust"] = lo, up
    out["rmsea.pvalue.robust"] = rmsea_pvalue(xx3s, df3, n, grp, c3, h0=0.05)
    out["rmsea.notclose.pvalue.robust"] = rmsea_pvalue(xx3s, df3, n, grp, c3, 0.08, False)
    out["srmr_bentler"] = float("nan")  # filled by fit_measures (same as srmr)
    out.pop("srmr_bentler")
    return out
