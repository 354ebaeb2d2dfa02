"""Meta-regression on several moderators at once, with Knapp-Hartung tests and pseudo-R2."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def moderator_analysis(
    yi: Any,
    vi: Any,
    data: pd.DataFrame,
    moderators: list[str],
    method: str = "REML",
    cluster: Any = None,
    study: Any = None,
    robust: bool = False,
    robust_cluster: Any = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Mixed-effects meta-regression on every moderator in ``moderators`` together.

    Two-level (no ``cluster``): metafor's ``rma(yi, vi, mods = ~ a + b, test = "knha")``: the
    Knapp & Hartung (2003) adjustment multiplies the coefficients' covariance by
    ``s2w = sum(w_i e_i^2) / (k - p)`` and tests with t(k - p) and the omnibus F(m, k - p).
    Three-level: ``rma.mv(..., test = "t")``, t(k - p) and F(m, k - p) without the rescaling
    (rma.mv has none). Categorical moderators are treatment-coded against their first level
    in sorted order (R's default). ``R2`` is metafor's pseudo-R2: the share of the
    between-study variance (the sum of both sigma2 in the three-level model) that the
    moderators account for, ``max(0, 100 (total_0 - total_1) / total_0)`` (Raudenbush 2009).

    Parameters
    ----------
    yi, vi
        Effects and sampling variances (rows of ``data``).
    data
        The moderator columns.
    moderators
        Column names.
    method
        tau2 estimator of the two-level model (``"REML"`` or ``"DL"``).
    cluster, study
        For the three-level model.
    robust, robust_cluster
        Add CR2 tests per coefficient (clubSandwich ``coef_test(fit, vcov = "CR2")``),
        clustered by ``robust_cluster`` (two-level) or the outer level (three-level).
    level
        Confidence level.

    Returns
    -------
    dict
        ``moderators``, ``model``, ``test``, ``k``, ``coefficients`` (``term``, ``estimate``,
        ``se``, ``statistic``, ``df``, ``pval``, ``ci.lb``, ``ci.ub``), ``QM`` (F), ``QM_df``,
        ``QM_pval``, ``QE``, ``QE_df``, ``QE_pval``, the residual heterogeneity (``tau2`` and
        ``s2w``, or ``sigma2``), ``R2``, and ``robust`` (with ``robust``).

    Raises
    ------
    ValueError
        For a missing column, a constant or incomplete moderator, or a rank-deficient design.

    References
    ----------
    Knapp, G., & Hartung, J. (2003). Improved tests for a random effects meta-regression
    with a single covariate. *Statistics in Medicine*, 22(17), 2693-2710.
    Raudenbush, S. W. (2009). Analyzing effect sizes: Random-effects models. In H. Cooper,
    L. V. Hedges, & J. C. Valentine (Eds.), *The handbook of research synthesis and
    meta-analysis* (2nd ed., pp. 295-315). Russell Sage Foundation.

    """
    from alliance.meta.pooling import moderator_design, rma

    missing = [m for m in moderators if m not in data.columns]
    if missing:
        raise ValueError(f"moderator columns {missing} not in effects, got {list(data.columns)}")
    if not moderators:
        raise ValueError(f"moderators must name at least one column, got {moderators!r}")
    cols, names = [], []
    for m in moderators:
        c, n = moderator_design(data[m].reset_index(drop=True))
        cols.append(c)
        names += n
    x_mods = np.column_stack(cols)
    coef_names = ["intrcpt", *names]
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    k = y.size
    p = x_mods.shape[1] + 1
    m_df = p - 1
    out: dict[str, Any] = {"moderators": list(moderators)}
    if cluster is None:
        f = rma(y, v, mods=x_mods, method=method, level=level, coef_names=coef_names)
        f0 = rma(y, v, method=method, level=level)
        resid = y - f.x @ f.beta
        s2w = float(np.sum(f.weights * resid**2)) / (k - p)
        vb = s2w * f.vb
        het: dict[str, Any] = {"tau2": f.tau2, "s2w": s2w}
        total0, total1 = f0.tau2, f.tau2
        out.update(model=f"rma.uni ({method})", test="knha")
    else:
        from alliance.meta.multilevel import rma_mv

        f = rma_mv(y, v, cluster, study, mods=x_mods, coef_names=coef_names, test="t", level=level)
        f0 = rma_mv(y, v, cluster, study, test="t", level=level)
        vb = f.vb
        het = {"sigma2": [float(s) for s in f.sigma2]}
        total0, total1 = float(f0.sigma2.sum()), float(f.sigma2.sum())
        out.update(model="rma.mv (three-level, REML)", test="t")
    beta = f.beta
    se = np.sqrt(np.diag(vb))
    df = k - p
    tstat = beta / se
    crit = float(stats.t.ppf(1 - (1 - level) / 2, df))
    pval = 2 * stats.t.sf(np.abs(tstat), df)
    wald = float(beta[1:] @ np.linalg.solve(vb[1:, 1:], beta[1:]))
    qm = wald / m_df
    coefs = [
        {
            "term": name,
            "estimate": float(beta[j]),
            "se": float(se[j]),
            "statistic": float(tstat[j]),
            "df": int(df),
            "pval": float(pval[j]),
            "ci.lb": float(beta[j] - crit * se[j]),
            "ci.ub": float(beta[j] + crit * se[j]),
        }
        for j, name in enumerate(coef_names)
    ]
    out.update(
        k=int(k),
        coefficients=coefs,
        QM=qm,
        QM_df=[int(m_df), int(df)],
        QM_pval=float(stats.f.sf(qm, m_df, df)),
        QE=f.QE,
        QE_df=f.QE_df,
        QE_pval=f.QE_p,
        **het,
        R2=0.0 if total0 <= 0 else max(0.0, 100 * (total0 - total1) / total0),
    )
    if robust:
        from alliance.meta.robust import robust_rma, robust_rma_mv

        out["robust"] = robust_rma_mv(f) if cluster is not None else robust_rma(f, robust_cluster)
    return out
