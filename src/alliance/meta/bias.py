"""Small-study effects and publication bias: Egger's test, PET-PEESE, trim-and-fill, selection.

Every method answers the same question differently: would the pooled effect change if the
missing (unpublished, small, non-significant) studies were there? Egger's test asks whether
effects grow with their standard error; PET and PEESE extrapolate the effect to a study of
infinite size (standard error 0) along a line in the standard error or the sampling variance;
trim-and-fill mirrors the asymmetric part of the funnel; selection models (in
:mod:`alliance.meta.selection`) model the probability of publication given the p value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alliance.meta.pooling import egger_test, rma


def _intercept_model(
    y: np.ndarray,
    v: np.ndarray,
    mod: np.ndarray,
    name: str,
    method: str,
    cluster: Any = None,
    study: Any = None,
) -> dict[str, Any]:
    """Meta-regression of the effects on ``mod``; the intercept is the effect at ``mod = 0``."""
    if cluster is None:
        f = rma(y, v, mods=mod, method=method, coef_names=["intrcpt", name])
        tau = {"tau2": f.tau2}
    else:
        from alliance.meta.multilevel import rma_mv

        f = rma_mv(y, v, cluster, study, mods=mod, coef_names=["intrcpt", name])
        tau = {"sigma2": [float(s) for s in f.sigma2]}
    return {
        "estimate": float(f.beta[0]),
        "se": float(f.se[0]),
        "ci.lb": float(f.ci_lb[0]),
        "ci.ub": float(f.ci_ub[0]),
        "slope": float(f.beta[1]),
        "slope_se": float(f.se[1]),
        "slope_z": float(f.beta[1] / f.se[1]),
        "slope_pvalue": float(f.pval[1]),
        **tau,
    }


def pet_peese(
    yi: Any, vi: Any, method: str = "REML", cluster: Any = None, study: Any = None
) -> dict[str, Any]:
    """PET (regression on the standard error) and PEESE (on the sampling variance).

    PET is ``rma(yi, vi, mods = ~ sqrt(vi))``, PEESE ``rma(yi, vi, mods = ~ vi)`` (metafor;
    with ``cluster`` the three-level ``rma.mv`` with the same random effects); each reports
    its intercept, the effect expected at a standard error of 0. Stanley & Doucouliagos
    (2014) use PET's intercept when PET does not reject a zero effect and PEESE's otherwise
    (the conditional PET-PEESE estimator; ``conditional`` says which, by the two-sided z
    test of PET's intercept at .05).

    References
    ----------
    Stanley, T. D., & Doucouliagos, H. (2014). Meta-regression approximations to reduce
    publication selection bias. *Research Synthesis Methods*, 5(1), 60-78.

    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    pet = _intercept_model(y, v, np.sqrt(v), "sei", method, cluster, study)
    peese = _intercept_model(y, v, v, "vi", method, cluster, study)
    z = pet["estimate"] / pet["se"]
    from scipy import stats

    pet_p = float(2 * stats.norm.sf(abs(z)))
    return {"pet": pet, "peese": peese, "conditional": "PEESE" if pet_p < 0.05 else "PET"}


def trim_and_fill(yi: Any, vi: Any, method: str = "REML", maxiter: int = 100) -> dict[str, Any]:
    """Duval & Tweedie's trim-and-fill with the L0 estimator (metafor ``trimfill``).

    The side to fill is metafor's: the side opposite to the sign of Egger's slope (the slope
    of ``rma(yi, vi, mods = ~ sqrt(vi))``; negative: the missing studies are on the right).
    The most extreme effects on the other side are trimmed until the L0 estimate of their
    number, ``k0 = (4 S_r - k (k + 1)) / (2k - 1)`` rounded (``S_r`` the sum of the signed
    ranks of the centred effects that are positive), is stable; then the ``k0`` effects are
    mirrored around the trimmed estimate and the model is refitted on all ``k + k0``.

    Returns
    -------
    dict
        ``k0``, ``se.k0``, ``side``, ``estimate``, ``se``, ``ci.lb``, ``ci.ub``, ``tau2``
        of the filled model, and ``filled`` (``study`` "Filled 1", ... as metafor labels
        them, ``yi``, ``vi`` of the filled effects).

    Raises
    ------
    ValueError
        With fewer than 3 effects.
    RuntimeError
        If ``k0`` does not settle within ``maxiter`` iterations.

    References
    ----------
    Duval, S., & Tweedie, R. (2000). Trim and fill: A simple funnel-plot-based method of
    testing and adjusting for publication bias in meta-analysis. *Biometrics*, 56(2),
    455-463.

    """
    y0 = np.asarray(yi, dtype=float)
    v0 = np.asarray(vi, dtype=float)
    k = y0.size
    if k < 3:
        raise ValueError(f"trim-and-fill needs at least 3 effects, got {k}")
    slope = rma(y0, v0, mods=np.sqrt(v0), method=method).beta[1]
    side = "right" if slope < 0 else "left"
    y = -y0 if side == "right" else y0.copy()
    order = np.argsort(y, kind="stable")
    y, v = y[order], v0[order]
    k0, k0_prev, it = 0, -1, 0
    beta = 0.0
    se_k0 = 0.0
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise RuntimeError(
                f"trim-and-fill did not converge in {maxiter} iterations, got k0 = {k0}"
            )
        beta = float(rma(y[: k - k0], v[: k - k0], method=method).beta[0])
        centred = y - beta
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(centred), kind="stable")] = np.arange(1, k + 1)
        signed = np.sign(centred) * ranks
        s_r = float(signed[signed > 0].sum())
        est = (4 * s_r - k * (k + 1)) / (2 * k - 1)
        var_sr = (
            k * (k + 1) * (2 * k + 1)
            + 10 * est**3
            + 27 * est**2
            + 17 * est
            - 18 * k * est**2
            - 18 * k * est
            + 6 * k**2 * est
        ) / 24
        se_k0 = max(0.0, 4 * np.sqrt(var_sr) / (2 * k - 1)) if var_sr > 0 else 0.0
        k0 = max(0, int(round(est)))
    filled_y = np.empty(0)
    filled_v = np.empty(0)
    if k0 > 0:
        filled_y = 2 * beta - y[k - k0 :]  # mirrored around the trimmed estimate
        if side == "right":
            filled_y = -filled_y
        filled_v = v[k - k0 :]
        f = rma(np.concatenate([y0, filled_y]), np.concatenate([v0, filled_v]), method=method)
    else:
        f = rma(y0, v0, method=method)
    return {
        "k0": int(k0),
        "se.k0": float(se_k0),
        "side": side,
        "estimator": "L0",
        "estimate": float(f.beta[0]),
        "se": float(f.se[0]),
        "ci.lb": float(f.ci_lb[0]),
        "ci.ub": float(f.ci_ub[0]),
        "tau2": f.tau2,
        "filled": [
            {"study": f"Filled {i}", "yi": float(a), "vi": float(b)}
            for i, (a, b) in enumerate(zip(filled_y, filled_v, strict=True), start=1)
        ],
    }


def bias_block(
    yi: Any,
    vi: Any,
    method: str = "REML",
    cluster: Any = None,
    study: Any = None,
    selection: str | None = None,
    steps: Any = (0.025,),
) -> dict[str, Any]:
    """Every small-study and publication-bias method on one set of effects.

    Egger's test, PET and PEESE follow the pooling model: the two-level ``rma`` or, with
    ``cluster``, the three-level ``rma.mv`` (Egger's test is then the z test of the
    standard-error slope in the three-level model; Rodgers & Pustejovsky 2021). Trim-and-fill
    and the selection models exist for independent effects only (metafor's ``trimfill`` and
    ``selmodel`` take ``rma.uni`` fits), so they treat the effects as independent; the block
    says so in ``*.model``.

    Returns
    -------
    dict
        ``egger`` {``z``, ``pvalue``, ``model``}, ``pet`` and ``peese`` {``estimate``,
        ``se``, ...}, ``pet_peese`` (which of the two the conditional rule picks),
        ``trimfill`` {``k0``, ``side``, ``estimate``, ``se``, ...} and, with ``selection``,
        ``selection`` {``estimate``, ``se``, ``delta``, ``lrt_pvalue``, ...}. A method that
        cannot run on these effects (too few) holds ``status`` and ``reason`` instead.

    References
    ----------
    Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in meta-analysis
    detected by a simple, graphical test. *BMJ*, 315(7109), 629-634.
    Rodgers, M. A., & Pustejovsky, J. E. (2021). Evaluating meta-analytic methods to detect
    selective reporting in the presence of dependent effect sizes. *Psychological Methods*,
    26(2), 141-160.

    """
    from alliance.meta.selection import selection_model

    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    k = y.size
    model = "rma.mv (three-level)" if cluster is not None else "rma.uni"
    out: dict[str, Any] = {}
    if k < 3:
        reason = f"needs at least 3 effects, got {k}"
        skip = {"status": "skipped", "reason": reason}
        return {
            "egger": skip,
            "pet": skip,
            "peese": skip,
            "trimfill": skip,
            **({"selection": skip} if selection else {}),
        }
    pp = pet_peese(y, v, method, cluster, study)
    if cluster is None:
        e = egger_test(y, v, "rma", method)
        out["egger"] = {"z": e["statistic"], "pvalue": e["pval"], "model": model}
    else:
        out["egger"] = {
            "z": pp["pet"]["slope_z"],
            "pvalue": pp["pet"]["slope_pvalue"],
            "model": model,
        }
    out["pet"] = {**pp["pet"], "model": model}
    out["peese"] = {**pp["peese"], "model": model}
    out["pet_peese"] = pp["conditional"]
    independent = "rma.uni (effects treated as independent)" if cluster is not None else model
    out["trimfill"] = {**trim_and_fill(y, v, method), "model": independent}
    if selection:
        kind = "step" if selection == "step" else selection
        try:
            out["selection"] = {**selection_model(y, v, kind, steps), "model": independent}
        except ValueError as exc:
            out["selection"] = {"status": "skipped", "reason": str(exc)}
    return out
