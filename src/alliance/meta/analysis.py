"""The meta-analysis of one effects table: the two-level model and every block beside it.

:func:`pool_effects` fits the two-level model (:mod:`alliance.meta.pooling`); :func:`extend_pooling`
adds what a meta-analysis of dependent effects reports today (Flückiger et al. 2018; Pustejovsky &
Tipton 2022): the three-level model when effects are clustered, cluster-robust (CR2) tests,
every small-study and selection method, and a meta-regression on several moderators.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance.jsonio import jsonable
from alliance.meta.pooling import (
    METHODS,
    _summary,
    _zcrit,
    effect_measure,
    egger_test,
    fisher_z,
    fisher_z_variance,
    leave_one_out,
    meta_regression,
    rma,
    tau2_confint,
    validate_effects,
)

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


def pool_effects(
    effects: pd.DataFrame,
    moderator: str | None = None,
    method: str = "REML",
    level: float = 0.95,
    cluster: str | None = None,
    robust: bool = False,
    selection: str | None = None,
    steps: tuple[float, ...] = (0.025,),
    moderators: list[str] | None = None,
) -> dict[str, Any]:
    """Pool study correlations by a random-effects model on Fisher's z.

    Each correlation becomes ``y_i = atanh(r_i)`` with ``v_i = 1 / (n_i - 3)`` (metafor's
    ``escalc(measure="ZCOR")``), the model is fitted by ``method`` (REML by default) with
    Wald-type z tests, and the pooled estimate, its confidence interval and the prediction
    interval for a new study (normal quantile, as metafor) are back-transformed with
    ``tanh``. The layout of ``pooled_z``, ``pooled_r``, ``heterogeneity``,
    ``heterogeneity_ci`` and ``fit`` is that of the metafor reference
    (``tests/data/metafor/metafor_reml.json``).

    Parameters
    ----------
    effects
        One row per study: ``study``, ``r``, ``n`` and optionally moderator columns.
    moderator
        A column to regress the effects on (numeric, or categorical with dummy coding).
    method
        ``"REML"`` or ``"DL"`` for the main model; the other estimator is reported under
        ``comparison``.
    level
        Confidence level for every interval.
    cluster, robust, selection, steps, moderators
        The three-level model, cluster-robust tests, selection model and multi-moderator
        meta-regression of :func:`extend_pooling` (which documents
        the blocks they add: ``three_level`` layout of ``heterogeneity``, ``robust``,
        ``bias``, ``moderators``). ``bias`` is always there.

    Returns
    -------
    dict
        JSON-serialisable: ``meta``, ``k``, ``pooled_z``, ``pooled_r``, ``heterogeneity``,
        ``heterogeneity_ci`` (Q-profile), ``fit``, ``comparison`` (the other estimator's
        pooled values), ``studies`` (``study``, ``r``, ``n``, ``yi``, ``vi``, ``ci.lb``,
        ``ci.ub`` on the r scale, ``weight_pct``), ``leave_one_out``, ``egger`` (``rma``
        and classic ``lm`` versions; None with fewer than 3 studies) and
        ``meta_regression`` (None without a moderator).

    Raises
    ------
    ValueError
        For invalid effects, an unknown method or moderator column.

    References
    ----------
    Riley, R. D., Higgins, J. P. T., & Deeks, J. J. (2011). Interpretation of random effects
    meta-analyses. *BMJ*, 342, d549.

    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if moderator is not None and moderator not in effects.columns:
        raise ValueError(
            f"moderator column {moderator!r} not in effects, got columns {list(effects.columns)}"
        )
    data = validate_effects(effects, cluster)
    measure = effect_measure(data)
    if measure == "ZCOR":
        yi = fisher_z(data["r"].to_numpy())
        vi = fisher_z_variance(data["n"].to_numpy())
    else:
        yi, vi = data["yi"].to_numpy(), data["vi"].to_numpy()
    fit = rma(yi, vi, method=method, level=level)
    other_method = "DL" if method == "REML" else "REML"
    other = rma(yi, vi, method=other_method, level=level)
    crit = _zcrit(level)

    back = np.tanh if measure == "ZCOR" else (lambda t: t)
    studies = pd.DataFrame(
        {
            "study": data["study"],
            **(
                {
                    "r": data["r"],
                    "n": data["n"].astype(int) if (data["n"] % 1 == 0).all() else data["n"],
                }
                if measure == "ZCOR"
                else {}
            ),
            "yi": yi,
            "vi": vi,
            "ci.lb": back(yi - crit * np.sqrt(vi)),
            "ci.ub": back(yi + crit * np.sqrt(vi)),
            "weight_pct": fit.weight_pct,
        }
    )
    k = int(yi.size)
    out: dict[str, Any] = {
        "meta": {
            "software": "alliance.meta",
            "measure": measure,
            "method": method,
            "test": "z",
            "level": round(1 - level, 10),
            "pi": "normal",
        },
        "k": k,
        **_summary(fit),
        "heterogeneity_ci": tau2_confint(fit) if k >= 2 else None,
        "fit": fit.fitstats(),
        "comparison": {"method": other_method, **_summary(other)},
        "studies": studies.to_dict(orient="records"),
        "leave_one_out": (
            leave_one_out(yi, vi, data["study"].tolist(), method, level).to_dict(orient="records")
            if k >= 3
            else None
        ),
        "egger": (
            {
                "rma": egger_test(yi, vi, "rma", method, level),
                "lm": egger_test(yi, vi, "lm", method, level),
            }
            if k >= 3
            else None
        ),
        "meta_regression": (
            meta_regression(yi, vi, data[moderator], method, level) if moderator else None
        ),
    }
    if measure != "ZCOR":
        _to_own_scale(out)
    extend_pooling(
        out,
        data,
        yi,
        vi,
        method=method,
        level=level,
        cluster=cluster,
        robust=robust,
        selection=selection,
        steps=steps,
        moderators=moderators,
    )
    return jsonable(out)


def _to_own_scale(out: dict[str, Any]) -> None:
    """Effects given as ``yi``, ``vi``: pooled on their own scale, no correlation summaries."""
    for block in (out, out["comparison"]):
        block["pooled"] = block.pop("pooled_z")
        block.pop("pooled_r")
    for row in out["leave_one_out"] or []:
        for key in ("r", "r.ci.lb", "r.ci.ub"):
            row.pop(key)
