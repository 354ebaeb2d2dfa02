"""The pooling result's dependent-effects, robust, bias and moderator blocks.

:func:`alliance.meta.pooling.pool_effects` fits the two-level model; :func:`extend_pooling` adds
what a meta-analysis of dependent effects reports today (Flückiger et al. 2018; Pustejovsky &
Tipton 2022): the three-level model when effects are clustered, cluster-robust (CR2) tests,
every small-study and selection method, and a meta-regression on several moderators.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

#: The three-level model in metafor's words.
THREE_LEVEL = 'rma.mv(yi, vi, random = ~ 1 | cluster/study, method = "REML")'
#: Which I2 formula the three-level heterogeneity uses.
I2_FORMULA = (
    "metafor (Viechtbauer): 100 sigma2_l / (sum(sigma2) + (k - p) / tr(P)), "
    "P = W - W X (X'WX)^-1 X'W, W = diag(1/vi); equal to Cheung's (2014) level-2/level-3 I2 "
    "for an intercept-only model"
)


def _three_level_blocks(
    fit: Any, level: float
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Pooled estimate, heterogeneity and profile CIs of a three-level fit."""
    from alliance.meta.multilevel import LEVELS, profile_ci

    crit = float(stats.norm.ppf(1 - (1 - level) / 2))
    b, se = float(fit.beta[0]), float(fit.se[0])
    half_pi = crit * math.sqrt(se**2 + float(fit.sigma2.sum()))
    pooled = {
        "estimate": b,
        "se": se,
        "zval": float(fit.statistic[0]),
        "pval": float(fit.pval[0]),
        "ci.lb": float(fit.ci_lb[0]),
        "ci.ub": float(fit.ci_ub[0]),
        "pi.lb": b - half_pi,
        "pi.ub": b + half_pi,
    }
    het = {
        "levels": list(LEVELS),
        "sigma2": [float(s) for s in fit.sigma2],
        "sigma": [math.sqrt(s) for s in fit.sigma2],
        "I2": [float(i) for i in fit.I2],
        "I2_total": fit.I2_total,
        "I2_formula": I2_FORMULA,
        "typical_vi": fit.typical_vi,
        "Q": fit.QE,
        "Q_df": fit.QE_df,
        "Q_pval": fit.QE_p,
        "n_clusters": fit.blocks.n_clusters,
        "n_studies": fit.blocks.n_studies,
    }
    ci = {"sigma2": [profile_ci(fit, j, level) for j in range(2)]}
    return pooled, het, ci


def extend_pooling(
    out: dict[str, Any],
    data: pd.DataFrame,
    yi: np.ndarray,
    vi: np.ndarray,
    method: str = "REML",
    level: float = 0.95,
    cluster: str | None = None,
    robust: bool = False,
    selection: str | None = None,
    steps: tuple[float, ...] = (0.025,),
    moderators: list[str] | None = None,
) -> dict[str, Any]:
    """Add the three-level, robust, bias and moderator blocks to a pooling result in place.

    With ``cluster`` the main model becomes the three-level one (metafor's ``rma.mv(yi, vi,
    random = ~ 1 | cluster/study)``): ``pooled_z`` (``pooled`` for ``yi``, ``vi`` input),
    ``pooled_r``, ``heterogeneity`` (``sigma2`` = [between clusters, within clusters],
    ``I2`` per level, ``I2_total``, ``Q``), ``heterogeneity_ci`` (``sigma2``: profile-
    likelihood CIs per level) and the studies' weights are the three-level model's, and the
    two-level results move to ``two_level``. The DL comparison, leave-one-out and the
    single-moderator ``meta_regression`` stay two-level.

    ``robust`` (with ``robust=True``): CR2 test of the pooled effect with Satterthwaite df
    (clubSandwich ``coef_test(fit, vcov = "CR2")``), clustered by ``cluster``, or by study
    label without one: {``estimate``, ``se``, ``statistic``, ``df``, ``pvalue``,
    ``clusters``, ``cluster_by``}. ``bias``: :func:`alliance.meta.bias.bias_block`.
    ``moderators``: :func:`alliance.meta.moderators.moderator_analysis` on all the named
    columns at once (with CR2 tests when ``robust``).

    Returns
    -------
    dict
        ``out``, extended.

    References
    ----------
    Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in
    adult psychotherapy: A meta-analytic synthesis. *Psychotherapy*, 55(4), 316-340.
    Pustejovsky, J. E., & Tipton, E. (2022). Meta-analysis with robust variance estimation:
    Expanding the range of working models. *Prevention Science*, 23(3), 425-438.

    """
    from alliance.meta.bias import bias_block
    from alliance.meta.pooling import rma
    from alliance.meta.robust import robust_rma, robust_rma_mv

    if selection not in (None, "step", "beta"):
        raise ValueError(f"selection must be 'step', 'beta' or None, got {selection!r}")
    bad_steps = [x for x in steps if not 0 < x <= 1]
    if selection == "step" and (bad_steps or not steps):
        raise ValueError(f"steps must lie in (0, 1], got {list(steps)}")
    measure = out["meta"]["measure"]
    pooled_key = "pooled_z" if measure == "ZCOR" else "pooled"
    cl = data[cluster].to_numpy() if cluster is not None else None
    st = data["study"].to_numpy()
    fit3 = None
    if cluster is not None:
        from alliance.meta.multilevel import rma_mv

        fit3 = rma_mv(yi, vi, cl, st, level=level)
        out["two_level"] = {
            key: out[key]
            for key in (pooled_key, "pooled_r", "heterogeneity", "heterogeneity_ci", "fit")
            if key in out
        }
        pooled, het, ci = _three_level_blocks(fit3, level)
        out[pooled_key] = pooled
        if measure == "ZCOR":
            out["pooled_r"] = {
                key: math.tanh(pooled[key])
                for key in ("estimate", "ci.lb", "ci.ub", "pi.lb", "pi.ub")
            }
        out["heterogeneity"] = het
        out["heterogeneity_ci"] = ci
        out["fit"] = {"logLik": fit3.loglik, "converged": fit3.converged}
        out["meta"].update(model="three-level", formula=THREE_LEVEL, cluster=cluster)
        weights = fit3.weight_pct()
        for row, w, c in zip(out["studies"], weights, cl, strict=True):
            row["weight_pct"] = float(w)
            row["cluster"] = str(c)
    else:
        out["meta"]["model"] = "two-level"
    if robust:
        if fit3 is not None:
            rob = robust_rma_mv(fit3)[0]
            by = cluster
        else:
            rob = robust_rma(rma(yi, vi, method=method, level=level), st)[0]
            by = "study"
        rob.pop("term")
        out["robust"] = {
            **rob,
            "cluster_by": by,
            "method": "CR2, Satterthwaite df (clubSandwich coef_test)",
        }
    out["bias"] = bias_block(
        yi,
        vi,
        method,
        cluster=cl,
        study=st if cl is not None else None,
        selection=selection,
        steps=steps,
    )
    if moderators:
        from alliance.meta.moderators import moderator_analysis

        out["moderators"] = moderator_analysis(
            yi,
            vi,
            data,
            list(moderators),
            method,
            cluster=cl,
            study=st if cl is not None else None,
            robust=robust,
            robust_cluster=st,
            level=level,
        )
    return out
