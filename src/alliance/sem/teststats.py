"""Test statistics in one place: standard, Yuan-Bentler, scaled-shifted and difference tests.

lavaan's lav_test_*, lav_test_LRT and the statistics behind the robust fit indices
(lav_fit_catml_dwls and lav_fit_fiml_corrected).

Every function takes :class:`alliance.sem.estimate.FitResult` objects, whatever the estimator:

- :func:`model_test` - the scaled test of a fit: Yuan-Bentler (Mplus variant) for MLR, the
  mean-and-variance adjusted (scaled-shifted) test for WLSMV; ``None`` for ML;
- :func:`fiml_corrected` (Zhang & Savalei 2023) and :func:`catml_dwls` (Savalei 2021): the
  statistics behind the robust CFI/TLI/RMSEA with missing data and with ordered items;
- :func:`lrt_table` - chi-square difference tests of nested fits: plain (ML), Satorra-Bentler
  (2001) scaled (MLR) or Satorra (2000) scaled-shifted (WLSMV).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from alliance.sem.blocks import (
    BlockLowRank,
    GroupSum,
    Layout,
    condition_number,
    condition_number_op,
)
from alliance.sem.estimate import FitResult
from alliance.sem.mvnorm import expected_information, saturated_jacobian
from alliance.sem.samplestats import h1_information
from alliance.sem.solution import numeric_jacobian
from alliance.sem.syntax import SyntaxError_, compile_expression

__all__ = [
    "catml_dwls",
    "catml_undefined",
    "chisq_pvalue",
    "fiml_corrected",
    "lrt_table",
    "model_test",
    "satorra2000_difference",
    "sb2001_difference",
    "scaled_shifted",
    "ugamma_traces",
    "wald_test",
    "yuan_bentler_mplus",
]


def chisq_pvalue(x2: float, df: float) -> float:
    """Upper-tail chi-square probability; ``nan`` without degrees of freedom."""
    if not np.isfinite(x2) or not df > 0:
        return float("nan")
    return float(special.chdtrc(df, x2))


def _full_deltas(fit: FitResult) -> list[np.ndarray]:
    """Per group, the (D)WLS Jacobian by all ``npar`` parameters."""
    out = []
    for g, d in enumerate(fit.extra["deltas"]):
        full = np.zeros((d.shape[0], fit.spec.npar))
        full[:, fit.spec.group_free(g + 1)] = d
        out.append(full)
    return out


def _weights(fit: FitResult) -> list[np.ndarray]:
    """Diagonal DWLS weights per group (inverse diagonal of Gamma)."""
    return [g.wls.v_diag for g in fit.sample.groups]  # type: ignore[union-attr]


def _bdiag(blocks: list[np.ndarray]) -> np.ndarray:
    size = sum(b.shape[0] for b in blocks)
    out = np.zeros((size, size))
    pos = 0
    for b in blocks:
        k = b.shape[0]
        out[pos : pos + k, pos : pos + k] = b
        pos += k
    return out


# --------------------------------------------------------------------------- scaled tests


def model_test(result: FitResult) -> dict[str, float] | None:
    """The scaled test of a fit (cached): Yuan-Bentler for MLR, scaled-shifted for WLSMV.

    Returns
    -------
    dict or None
        ``chisq.scaled``, ``chisq.scaling.factor``, ``pvalue.scaled`` and the traces
        (``trace.UGamma``; WLSMV also ``shift`` and ``trace.UGamma2``; MLR also
        ``scaling.factor.h0``/``h1``); ``None`` for ML or a model that is not identified.
    """
    if result.estimator == "ML" or result.not_identified:
        return None
    cached = result.extra.get("test")
    if cached is None:
        mlr = result.estimator == "MLR"
        cached = yuan_bentler_mplus(result) if mlr else _dwls_test(result)
        result.extra["test"] = cached
    return cached


def yuan_bentler_mplus(result: FitResult) -> dict[str, float]:
    """Yuan-Bentler scaling factor, Mplus variant (lavaan ``test = "yuan.bentler.mplus"``).

    ``c = sum_g [tr(B1_g A1_g^-1) - (n_g/N) tr(B0_g E^-1)] / df``, with ``A1``/``B1`` the
    unstructured h1 (observed and first-order) information of the saturated model, ``B0_g``
    the first-order information of the model (casewise scores) and ``E`` the observed
    information of the model (both per observation). ``B0_g`` is nonzero only on group
    ``g``'s parameters, so ``tr(B0_g E^-1)`` needs only that block of ``E^-1``. lavaan's
    ``scaling.factor.h1`` is the first sum over the number of sample statistics and
    ``scaling.factor.h0`` the second over the number of free parameters before equality
    constraints (each constrained row counted, as lavaan's ``nx.free``).

    Returns
    -------
    dict
        ``chisq.scaling.factor``, ``trace.UGamma`` (= ``c df``), ``chisq.scaled``,
        ``pvalue.scaled``, ``scaling.factor.h1``, ``scaling.factor.h0``.

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
    empty = {
        "chisq.scaling.factor": nan, "trace.UGamma": nan, "chisq.scaled": nan,
        "pvalue.scaled": nan, "scaling.factor.h1": nan, "scaling.factor.h0": nan,
    }  # fmt: skip
    if e_inv is None or b0 is None or df <= 0:
        return empty
    n = result.ntotal
    trace_h1 = trace_h0 = 0.0
    ndat = 0
    for gi, g in enumerate(result.sample.groups):
        a1, b1 = h1_information(result.sample, gi + 1, result.spec.meanstructure)
        try:
            a1_inv = np.linalg.inv(a1)
        except np.linalg.LinAlgError:
            return empty
        # B0_g lives on the group's own parameters: only that block of E^-1 enters
        e_loc = e_inv.local(gi)
        trace_h1 += float(np.sum(b1 * a1_inv.T))
        trace_h0 += (g.n / n) * float(np.sum(b0[gi] * e_loc.T))
        ndat += a1.shape[0]
    trace = trace_h1 - trace_h0
    c = trace / df
    if not c > 0:
        c = nan
    chisq_s = result.chisq / c
    return {
        "chisq.scaling.factor": c,
        "trace.UGamma": trace,
        "chisq.scaled": chisq_s,
        "pvalue.scaled": chisq_pvalue(chisq_s, df),
        "scaling.factor.h1": trace_h1 / ndat,
        # lavaan divides by its free parameters before equality constraints (nx.free)
        "scaling.factor.h0": trace_h0 / sum(1 for r in result.spec.table if r.free),
    }


def _dwls_test(result: FitResult) -> dict[str, float]:
    """The scaled-shifted test of a WLSMV fit from its traces (:func:`ugamma_traces`)."""
    sample = result.sample
    tr1, tr2 = ugamma_traces(
        sample.fg,
        result.extra["deltas"],
        _weights(result),
        [g.wls.gamma for g in sample.groups],  # type: ignore[union-attr]
        result.extra["E_inv"],
    )
    out = scaled_shifted(result.chisq, result.df, tr1, tr2)
    out["pvalue.scaled"] = chisq_pvalue(out["chisq.scaled"], result.df)
    return out


def ugamma_traces(
    fg: np.ndarray,
    deltas: list[np.ndarray],
    weights: list[np.ndarray],
    gammas: list[np.ndarray],
    e_inv: BlockLowRank,
) -> tuple[float, float]:
    """tr(U Gamma) and tr((U Gamma)^2) with U = V - V Delta E^-1 Delta' V (all groups stacked).

    ``V`` (the weights ``f_g W_g``) and ``Gamma`` (``Gamma_g / f_g``) are block diagonal by
    group and ``deltas`` are the groups' local Jacobians, so with ``P = sum_g Delta_g' V_g
    Gamma_g V_g Delta_g``: ``tr(U Gamma) = sum_g tr(V_g Gamma_g) - tr(E^-1 P)`` and
    ``tr((U Gamma)^2) = sum_g tr((V_g Gamma_g)^2) - 2 tr(E^-1 sum_g Delta_g' V_g Gamma_g V_g
    Gamma_g V_g Delta_g) + tr(E^-1 P E^-1 P)``: linear in the number of groups.
    """
    layout = e_inv.layout
    tr1 = tr2 = 0.0
    p_blocks, q_blocks = [], []
    for f, d, w, gm in zip(fg, deltas, weights, gammas, strict=True):
        v = f * w
        vg = v[:, None] * (gm / f)  # V_g Gamma_g
        tr1 += float(np.trace(vg))
        tr2 += float(np.sum(vg * vg.T))
        vd = v[:, None] * d
        gvd = (gm / f) @ vd  # Gamma_g V_g Delta_g
        p_blocks.append(vd.T @ gvd)
        q_blocks.append(gvd.T @ (v[:, None] * gvd))
    p_mat = GroupSum(layout, p_blocks)
    tr1 -= e_inv.trace_with(p_mat)
    tr2 += -2.0 * e_inv.trace_with(GroupSum(layout, q_blocks)) + e_inv.trace_pair(p_mat, p_mat)
    return tr1, tr2


def scaled_shifted(chisq: float, df: int, tr1: float, tr2: float) -> dict[str, float]:
    """Asparouhov & Muthén (2010) mean-and-variance adjusted statistic ``a T + b``.

    ``a = sqrt(df / tr((U Gamma)^2))`` and ``b = df - a tr(U Gamma)``; lavaan reports
    ``chisq.scaling.factor = 1 / a`` and the shift ``b``.

    References
    ----------
    Asparouhov, T., & Muthén, B. (2010). Simple second order chi-square correction. Mplus
    technical appendix.
    """
    if df <= 0 or tr2 <= 0:
        return {
            "chisq.scaled": chisq,
            "chisq.scaling.factor": float("nan"),
            "shift": float("nan"),
            "trace.UGamma": tr1,
            "trace.UGamma2": tr2,
        }
    a = math.sqrt(df / tr2)
    shift = df - a * tr1
    return {
        "chisq.scaled": a * chisq + shift,
        "chisq.scaling.factor": 1.0 / a,
        "shift": shift,
        "trace.UGamma": tr1,
        "trace.UGamma2": tr2,
    }


# ------------------------------------------------------------------- robust-index statistics


def fiml_corrected(result: FitResult, baseline: FitResult, version: str = "V3") -> dict[str, float]:
    """FIML-corrected chi-square and scaling factor for robust RMSEA/CFI (lavaan ``V3``/``V6``).

    ``XX3`` is the complete-data ML statistic of the model at the FIML estimates against the
    saturated (EM) moments; ``c_hat3 = tr(U W_m^-1 W_c W_m^-1 U Gamma) / df`` (``V3``, with a
    scaled test: MLR) or ``tr(W_c W_m^-1 U W_m^-1) / df`` (``V6``, the standard test: ML) with
    ``W_m`` the observed (incomplete-data) and ``W_c`` the complete-data h1 information at the
    EM moments, ``Gamma = W_m^-1 J_m W_m^-1`` (``J_m`` first-order h1 information), and
    ``U = W_m - W_m Delta E^-1 Delta' W_m`` with ``E = Delta' W_m Delta``; likewise for the
    baseline model.

    ``W_m``, ``W_c`` and ``Gamma`` are block diagonal by group and ``E`` is a sum of group
    blocks, so the trace is expanded into per-group terms and traces with ``E^-1``
    (:mod:`alliance.sem.blocks`): ``tr(U C U Gamma) = tr(W C W Gamma) - 2 tr(E^-1 Delta' W C
    W Gamma W Delta) + tr(E^-1 Y_1 E^-1 Y_2)`` with ``C = W_m^-1 W_c W_m^-1``, ``Y_1 =
    Delta' W C W Delta`` and ``Y_2 = Delta' W Gamma W Delta``; the cost grows linearly with
    the number of groups.

    References
    ----------
    Zhang, X., & Savalei, V. (2023). New computations for RMSEA and CFI following FIML and
    TS estimation with missing data. Psychological Methods, 28(2), 263-283.
    """
    sample = result.sample
    n = sample.ntotal
    spec = result.spec
    fg = [g.n / n for g in sample.groups]
    w_blk, core_blk, gamma_blk = [], [], []
    for gi, g in enumerate(sample.groups):
        a1, b1 = h1_information(sample, gi + 1, spec.meanstructure)
        dsig, dmu = saturated_jacobian(g.cov.shape[0], spec.meanstructure)
        wc = expected_information(g.cov, dsig, dmu if spec.meanstructure else None)
        wmi = np.linalg.inv(a1)
        f = fg[gi]
        w_blk.append(f * a1)
        core_blk.append((wmi / f) @ (f * wc) @ (wmi / f))
        gamma_blk.append(wmi @ b1 @ wmi / f)
    if version == "V3":
        parts = zip(w_blk, core_blk, gamma_blk, strict=True)
        base_trace = float(sum(np.trace(w @ c @ w @ gm) for w, c, gm in parts))
    else:
        base_trace = float(sum(np.sum(c * w.T) for w, c in zip(w_blk, core_blk, strict=True)))

    def k_and_x2(fit: FitResult) -> tuple[float, float, int]:
        layout = Layout.of(fit.spec)
        deltas = [_moment_delta(fit, gi + 1) for gi in range(len(fg))]
        wd = [w @ d for w, d in zip(w_blk, deltas, strict=True)]
        e = GroupSum(layout, [d.T @ v for d, v in zip(deltas, wd, strict=True)])
        parts = zip(wd, w_blk, core_blk, gamma_blk, strict=True)
        x1 = GroupSum(layout, [v.T @ c @ w @ gm @ v for v, w, c, gm in parts])
        y1 = GroupSum(layout, [v.T @ c @ v for v, c in zip(wd, core_blk, strict=True)])
        y2 = GroupSum(layout, [v.T @ gm @ v for v, gm in zip(wd, gamma_blk, strict=True)])
        f_inv = e.inverse()
        if version == "V3":
            k = base_trace - 2.0 * f_inv.trace_with(x1) + f_inv.trace_pair(y1, y2)
        else:  # tr(C U) = tr(C W) - tr(E^-1 Delta' W C W Delta)
            k = base_trace - f_inv.trace_with(y1)
        return k, complete_chisq(fit), fit.df

    k, xx3, df3 = k_and_x2(result)
    kb, xx3b, dfb = k_and_x2(baseline)
    c3 = k / df3 if df3 > 0 else float("nan")
    c3b = kb / dfb if dfb > 0 else float("nan")
    return _corrected(xx3, df3, c3, xx3b, dfb, c3b)


def _corrected(
    xx3: float, df3: float, c3: float, xx3b: float, df3b: float, c3b: float
) -> dict[str, float]:
    """A corrected statistic and its baseline's, with lavaan's names."""
    return {
        "XX3": xx3,
        "df3": float(df3),
        "c_hat3": c3,
        "XX3_scaled": xx3 / c3,
        "XX3_null": xx3b,
        "df3_null": float(df3b),
        "c_hat3_null": c3b,
    }


def _moment_delta(fit: FitResult, group: int) -> np.ndarray:
    """Jacobian of (mu, vech Sigma) of ``group`` by its parameters.

    In the saturated order: means first, then ``np.tril_indices``.
    """
    spec = fit.spec
    dsig, dmu, _ = spec.jacobian(fit.x, group, local=True)
    rows, cols = np.tril_indices(spec.p)
    parts = [dsig[:, rows, cols].T]
    if spec.meanstructure:
        parts.insert(0, dmu.T)
    return np.vstack(parts)


def complete_chisq(fit: FitResult) -> float:
    """``N F_ML`` of the model at its estimates against the saturated (EM) moments."""
    total = 0.0
    for g, imp in zip(fit.sample.groups, fit.spec.implied(fit.x), strict=True):
        si = np.linalg.inv(imp.sigma)
        p = g.cov.shape[0]
        d = g.mean - imp.mu
        val = (
            np.linalg.slogdet(imp.sigma)[1]
            + np.trace(g.cov @ si)
            - np.linalg.slogdet(g.cov)[1]
            - p
            + (d @ si @ d if fit.spec.meanstructure else 0.0)
        )
        total += g.n * val
    return float(total)


def catml_undefined(result: FitResult) -> str | None:
    """Why the Savalei (2021) robust indices are not defined for ``result`` (None when they are).

    As lavaan 0.6-14, which returns NA: a free scale factor (thresholds held equal across
    groups, delta parameterization), thresholds held equal across groups, or a sample
    polychoric correlation matrix that is not positive definite (the catML discrepancy
    needs its log-determinant; with pairwise missing data or sparse categories in a small
    sample the pairwise polychorics need not form a positive-definite matrix).
    """
    spec = result.spec
    if any(r.free and r.op == "~*~" for r in spec.table):
        return "scale factors are free (thresholds held equal across groups), as in lavaan"
    if spec.ngroups > 1 and "thresholds" in spec.group_equal:
        return "thresholds are held equal across groups, as in lavaan"
    for gi, g in enumerate(result.sample.groups):
        smallest = float(np.linalg.eigvalsh(g.cov).min())
        if smallest < np.sqrt(np.finfo(float).eps):
            where = f" of group {spec.group_labels[gi]}" if spec.ngroups > 1 else ""
            return (
                f"the sample polychoric correlation matrix{where} is not positive definite "
                f"(smallest eigenvalue {smallest:.3g}), so the catML statistic behind them "
                "cannot be computed (lavaan 0.6-14 also returns NA)"
            )
    return None


def _ml_cor_weight(sigma: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Normal-theory ML weight for the off-diagonal correlations: 0.5 D' (S^-1 x S^-1) D."""
    sinv = np.linalg.inv(sigma)
    i, j = pairs[:, 0], pairs[:, 1]
    # d vec(Sigma) / d sigma_ij for i != j is e_i e_j' + e_j e_i'
    return sinv[np.ix_(i, i)] * sinv[np.ix_(j, j)] + sinv[np.ix_(i, j)] * sinv[np.ix_(j, i)]


def catml_dwls(result: FitResult) -> dict[str, float] | None:
    """Savalei (2021) robust statistic for CFI/TLI/RMSEA with ordered items.

    The model is evaluated with the normal-theory ML discrepancy on the polychoric
    correlations at the DWLS estimates ("catML"), and that statistic is corrected by
    ``c = tr(U' V U Gamma) / df`` with the DWLS residual projection ``U`` (lavaan's
    ``lav_fit_catml_dwls``); the baseline's by ``tr(Gamma) / df_0``. Returns ``None`` when
    lavaan 0.6-14 returns NA: when thresholds are held equal across groups (delta: a scale
    factor ``~*~`` is free; theta: also in the strict step, where no residual variance is
    free) or a correlation matrix is not positive definite (:func:`catml_undefined` says
    which).

    Returns
    -------
    dict or None
        ``XX3``, ``df3``, ``c_hat3``, ``XX3_scaled``, ``XX3_null``, ``df3_null``,
        ``c_hat3_null`` (the names of :func:`fiml_corrected`).

    References
    ----------
    Savalei, V. (2021). Improving fit indices in structural equation modeling with categorical
    data. Multivariate Behavioral Research, 56(3), 390-407.
    """
    if not result.categorical or catml_undefined(result) is not None:
        return None
    spec, sample = result.spec, result.sample
    fg = sample.fg
    imp = spec.implied(result.x)
    xx3 = xx3b = ks = tr_gamma = 0.0
    x_blocks, y1_blocks, y2_blocks = [], [], []
    for gi, g in enumerate(sample.groups):
        wls = g.wls
        assert wls is not None
        r = g.cov
        sigma = imp[gi].sigma
        p = r.shape[0]
        sinv = np.linalg.inv(sigma)
        _sgn, logdet_s = np.linalg.slogdet(sigma)
        _sgn, logdet_r = np.linalg.slogdet(r)
        xx3 += g.n * (logdet_s - logdet_r + np.trace(r @ sinv) - p)
        xx3b += g.n * (-logdet_r)
        nth = wls.n_th
        v = fg[gi] * _ml_cor_weight(sigma, wls.pair_index)
        w = fg[gi] * wls.v_diag[nth:]
        gam = wls.gamma[nth:, nth:] / fg[gi]
        d = result.extra["deltas"][gi][nth:]
        ks += float(np.sum(v * gam.T))  # tr(V Gamma)
        tr_gamma += float(np.trace(gam))
        vd, wd = v @ d, w[:, None] * d
        x_blocks.append(vd.T @ gam @ wd)
        y1_blocks.append(d.T @ vd)
        y2_blocks.append(wd.T @ gam @ wd)
    npairs = sum(g.wls.n_moments for g in sample.groups)  # type: ignore[union-attr]
    # free parameters other than thresholds, intercepts and scale factors
    npar3 = len({r.free for r in spec.table if r.free and r.op not in ("|", "~1", "~*~")})
    df3 = npairs - npar3
    # tr(M' V M Gamma) with M = I - D E^-1 D' W, expanded by group (see ugamma_traces)
    e_inv = result.extra["E_inv"]
    layout = e_inv.layout
    ks -= 2.0 * e_inv.trace_with(GroupSum(layout, x_blocks))
    ks += e_inv.trace_pair(GroupSum(layout, y1_blocks), GroupSum(layout, y2_blocks))
    return _corrected(xx3, df3, ks / df3, xx3b, npairs, tr_gamma / npairs)


# --------------------------------------------------------------------------- difference tests


def sb2001_difference(
    t0: float, df0: int, c0: float, t1: float, df1: int, c1: float
) -> tuple[float, float]:
    """Satorra-Bentler (2001) scaled difference of two nested scaled tests.

    ``cd = (df0 c0 - df1 c1) / (df0 - df1)``, ``T = (T0 - T1) / cd`` with the unscaled
    statistics ``T`` and scaling factors ``c`` (model 0 is the more restricted).

    Returns
    -------
    (statistic, cd)

    References
    ----------
    Satorra, A., & Bentler, P. M. (2001). A scaled difference chi-square test statistic for
    moment structure analysis. Psychometrika, 66(4), 507-514.
    """
    cd = (df0 * c0 - df1 * c1) / (df0 - df1)
    return (t0 - t1) / cd, cd


def lrt_table(
    results: Sequence[FitResult], names: Sequence[str], measures: Sequence[dict] | None = None
) -> dict[str, Any]:
    """Chi-square difference tests as lavaan ``lavTestLRT()``, models sorted by df.

    Each model is tested against the previous (less restricted) one. ML: ``Chisq_diff =
    chisq_1 - chisq_0``; MLR: the Satorra-Bentler (2001) scaled difference (lavaan's default
    ``method = "satorra.bentler.2001"``); WLSMV: the Satorra (2000) scaled-shifted difference
    (:func:`satorra2000_difference`). ``RMSEA`` (ML, MLR) is the RMSEA of the difference
    test, ``sqrt(max(0, (Chisq_diff - Df_diff) / (N Df_diff))) sqrt(G)``.

    Parameters
    ----------
    results, names
        The fits (one estimator) and their names.
    measures
        Their fit measures (only the scaling factors of MLR fits are read); computed when
        absent.

    Returns
    -------
    dict
        ``{"table": [rows with model, Df, AIC, BIC, Chisq, Chisq_diff, RMSEA, Df_diff,
        Pr_gt_Chisq], "method": ...}``; for MLR rows also carry ``scaling_factor_diff``, for
        WLSMV ``scale`` and ``shift`` (and no RMSEA).
    """
    if len(results) != len(names):
        raise ValueError(f"got {len(results)} results for {len(names)} names")
    estimators = {r.estimator for r in results}
    if len(estimators) != 1:
        raise ValueError(f"difference tests need fits of one estimator, got {sorted(estimators)}")
    estimator = estimators.pop()
    order = sorted(range(len(results)), key=lambda i: (results[i].df, i))
    rows = []
    prev = None
    for i in order:
        r = results[i]
        logl = estimator != "WLSMV"
        aic = -2 * r.logl + 2 * r.npar if logl else None
        row: dict[str, Any] = {
            "model": names[i],
            "Df": r.df,
            "AIC": aic,
            "BIC": -2 * r.logl + r.npar * np.log(r.ntotal) if logl else None,
            "Chisq": r.chisq,
            "Chisq_diff": None,
            "Df_diff": None,
            "Pr_gt_Chisq": None,
        }
        if logl:
            row["RMSEA"] = None
        if prev is not None:
            p = results[prev]
            ddf = r.df - p.df
            if ddf <= 0:
                row["note"] = "models have the same df: no test"
            elif estimator == "WLSMV":
                test = satorra2000_difference(p, r)
                row.update(Chisq_diff=test["chisq_diff"], Df_diff=test["df_diff"])
                row.update(Pr_gt_Chisq=test["pvalue"], scale=test["a"], shift=test["b"])
            else:
                if estimator == "MLR":
                    c = [
                        (measures[k] if measures is not None else {}).get("chisq.scaling.factor")
                        or model_test(results[k])["chisq.scaling.factor"]  # type: ignore[index]
                        for k in (i, prev)
                    ]
                    diff, cd = sb2001_difference(r.chisq, r.df, c[0], p.chisq, p.df, c[1])
                    row["scaling_factor_diff"] = cd
                    if cd < 0:
                        row["note"] = "negative scaling factor of the difference"
                else:
                    diff = r.chisq - p.chisq
                n, g = r.ntotal, r.spec.ngroups
                row["Chisq_diff"] = diff
                row["Df_diff"] = ddf
                row["RMSEA"] = float(np.sqrt(max(0.0, (diff - ddf) / (n * ddf))) * np.sqrt(g))
                row["Pr_gt_Chisq"] = chisq_pvalue(diff, ddf)
        rows.append(row)
        prev = i
    method = {
        "ML": "Chi-Squared Difference Test",
        "MLR": "Scaled Chi-Squared Difference Test (method = satorra.bentler.2001)",
        "WLSMV": "Scaled Chi-Squared Difference Test (method = satorra.2000, scaled.shifted)",
    }[estimator]
    return {"table": rows, "method": method}


def satorra2000_difference(m1: FitResult, m0: FitResult) -> dict[str, float]:
    """Scaled-shifted chi-square difference test of nested WLSMV fits (lavTestLRT default).

    Parameters
    ----------
    m1 : FitResult
        The less restricted model (fewer df).
    m0 : FitResult
        The more restricted model, nested in ``m1``.

    Returns
    -------
    dict
        ``chisq_diff`` (the adjusted difference), ``df_diff``, ``pvalue``, ``a`` and ``b``
        (scale and shift), the raw difference ``chisq_diff_raw`` and ``method`` (``"blocks"``
        or ``"dense"``, how the traces were computed).

    Notes
    -----
    Satorra (2000) with the mean-and-variance (scaled-shifted) adjustment, as lavaan 0.6-14's
    ``lavTestLRT(method = "satorra.2000", A.method = "delta", scaled.shifted = TRUE)``: the
    restrictions are the orthogonal complement of ``H = Delta_1^+ Delta_0`` in the parameter
    space of ``m1``; with ``P = E_1^-1``,
    ``U = V Delta_1 (P A' (A P A')^- A P) Delta_1' V``, ``a = sqrt(m / tr((U Gamma)^2))``,
    ``b = m - a tr(U Gamma)`` and ``T = a (T_0 - T_1) + b`` on ``m = df_0 - df_1`` df.
    The traces are computed group by group (:func:`_satorra2000_traces_blocks`, linear in
    the number of groups); when ``H`` is (nearly) rank-deficient they are computed from the
    dense matrices as lavaan does (:func:`_satorra2000_traces_dense`).
    """
    for fit in (m1, m0):
        if fit.not_identified:
            raise ValueError(f"no difference test: a model is {fit.not_identified}")
    m = m0.df - m1.df
    raw = m0.chisq - m1.chisq
    if m <= 0:
        raise ValueError(f"m0 must have more degrees of freedom than m1, got {m0.df} <= {m1.df}")
    try:
        tr1, tr2 = _satorra2000_traces_blocks(m1, m0)
        method = "blocks"
    except np.linalg.LinAlgError:
        tr1, tr2 = _satorra2000_traces_dense(m1, m0)
        method = "dense"
    a = math.sqrt(m / tr2)
    b = m - a * tr1
    t = raw * a + b
    return {
        "chisq_diff": t,
        "df_diff": m,
        "pvalue": float(special.chdtrc(m, t)),
        "a": a,
        "b": b,
        "chisq_diff_raw": raw,
        "method": method,
    }


def _satorra2000_traces_dense(m1: FitResult, m0: FitResult) -> tuple[float, float]:
    """``tr(U Gamma)`` and ``tr((U Gamma)^2)`` of :func:`satorra2000_difference`, dense (lavaan)."""
    d1 = np.vstack(_full_deltas(m1))
    d0 = np.vstack(_full_deltas(m0))
    h = np.linalg.pinv(d1) @ d0
    # orthogonal complement of the column space of H
    uu, sv, _vt = np.linalg.svd(h, full_matrices=True)
    rank = int(np.sum(sv > sv.max() * max(h.shape) * np.finfo(float).eps))
    a_mat = uu[:, rank:].T
    p_inv = np.linalg.inv(m1.information.dense())
    apa = a_mat @ p_inv @ a_mat.T
    paap = p_inv @ a_mat.T @ np.linalg.pinv(apa) @ a_mat @ p_inv
    fg = m1.sample.fg
    v = np.concatenate([f * w for f, w in zip(fg, _weights(m1), strict=True)])
    vd = v[:, None] * d1
    u = vd @ paap @ vd.T
    gamma = _bdiag([g.wls.gamma / f for f, g in zip(fg, m1.sample.groups, strict=True)])
    ug = u @ gamma
    return float(np.trace(ug)), float(np.sum(ug * ug.T))


@dataclass
class _ArrowLowRank:
    """``A + U W U'``: a :class:`GroupSum` plus a low-rank part (``U`` q x r, ``W`` r x r)."""

    a: GroupSum
    u: np.ndarray
    w: np.ndarray

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.a.matvec(v) + self.u @ (self.w @ (self.u.T @ v))

    def trace_with(self, f: BlockLowRank) -> float:
        """``tr(F (A + U W U'))`` for a symmetric ``F``."""
        return f.trace_with(self.a) + float(np.sum(self.w * (self.u.T @ f.matmat(self.u)).T))


def _satorra2000_traces_blocks(m1: FitResult, m0: FitResult) -> tuple[float, float]:
    """``tr(U Gamma)`` and ``tr((U Gamma)^2)`` of :func:`satorra2000_difference`, group by group.

    ``P A' (A P A')^- A P = P - H (H' E_1 H)^- H'`` for any ``A`` spanning the orthogonal
    complement of ``range(H)`` (``P = E_1^-1``), so with ``Z = Delta_1 H``, ``S = Z' V Z``,
    ``R = Z' V Gamma V Z``, ``N = Z' V Gamma V Delta_1`` and ``P_1 = Delta_1' V Gamma V
    Delta_1``: ``tr(U Gamma) = tr(P P_1) - tr(S^-1 R)`` and ``tr((U Gamma)^2) = tr(P P_1 P
    P_1) - 2 tr(S^-1 N P N') + tr(S^-1 R S^-1 R)``. ``H = (Delta_1' Delta_1)^-1 Delta_1'
    Delta_0`` is the pseudo-inverse product when ``Delta_1`` has full column rank; with the
    block inverse of ``Delta_1' Delta_1`` (:mod:`alliance.sem.blocks`) it is a group-local
    part plus a part of rank ``s_1`` (the parameters ``m1`` shares across groups), and so are
    ``Z``, ``S``, ``R`` and ``N``; ``S^-1`` follows by the Woodbury identity. Every step costs
    a few products of one group's blocks, or of ``s x s`` matrices.

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``Delta_1' Delta_1`` or ``S`` is (nearly) singular (``H`` rank-deficient): the
        caller then uses the dense computation, whose pseudo-inverses handle that case.
    """
    l1, l0 = Layout.of(m1.spec), Layout.of(m0.spec)
    if l1.ngroups != l0.ngroups:
        raise ValueError(f"the models have {l1.ngroups} and {l0.ngroups} groups")
    fg = m1.sample.fg
    d1, d0 = m1.extra["deltas"], m0.extra["deltas"]
    v = [f * w for f, w in zip(fg, _weights(m1), strict=True)]
    gam = [g.wls.gamma / f for f, g in zip(fg, m1.sample.groups, strict=True)]
    vgv = [vv[:, None] * gm * vv[None, :] for vv, gm in zip(v, gam, strict=True)]
    s1, q0 = l1.s, l0.q
    # H = (D1'D1)^-1 D1'D0 = Hloc + L_G M (Hloc on the own rows of m1's groups)
    gram = GroupSum(l1, [d.T @ d for d in d1])
    fgi = gram.inverse()
    if condition_number(gram, fgi) > 1e12:
        raise np.linalg.LinAlgError("Delta_1 is (nearly) rank-deficient")
    lg_c = np.zeros((s1, q0))
    zl, ys = [], []
    for g in range(l1.ngroups):
        c_g = d1[g].T @ d0[g]
        lg_c[:, l0.local[g]] += fgi.lr[l1.local[g]].T @ c_g
        hloc = fgi.own_blocks[g] @ c_g[l1.loc_own[g]]
        zl.append(d1[g][:, l1.loc_own[g]] @ hloc)
        ys.append(d1[g] @ fgi.lr[l1.local[g]])
    m_mat = fgi.core @ lg_c  # s1 x q0

    def z_quad(weights: list[np.ndarray]) -> _ArrowLowRank:
        """``Z' X Z`` for block-diagonal ``X`` (``weights[g]``, a vector for a diagonal)."""
        a_blocks, b_mat, c_mat = [], np.zeros((q0, s1)), np.zeros((s1, s1))
        for g, x in enumerate(weights):
            xz = x[:, None] * zl[g] if x.ndim == 1 else x @ zl[g]
            xy = x[:, None] * ys[g] if x.ndim == 1 else x @ ys[g]
            a_blocks.append(zl[g].T @ xz)
            b_mat[l0.local[g]] += zl[g].T @ xy
            c_mat += ys[g].T @ xy
        u = np.hstack([b_mat, m_mat.T])
        w = np.block([[np.zeros((s1, s1)), np.eye(s1)], [np.eye(s1), c_mat]])
        return _ArrowLowRank(GroupSum(l0, a_blocks), u, w)

    s_mat = z_quad(v)
    r_mat = z_quad(vgv)
    s_inv = _inverse_arrow_low_rank(s_mat, l0, s1)
    if condition_number_op(s_mat.matvec, s_inv.matvec, q0) > 1e12:
        raise np.linalg.LinAlgError("S is (nearly) singular")
    # tr(S^-1 R) and tr(S^-1 R S^-1 R)
    t_a = r_mat.trace_with(s_inv)
    su = s_inv.matmat(r_mat.u)
    kk = r_mat.w @ (r_mat.u.T @ su)
    t_c = (
        s_inv.trace_pair(r_mat.a, r_mat.a)
        + 2.0 * float(np.sum(r_mat.w * r_mat.a.quad(su, su).T))
        + float(np.sum(kk * kk.T))
    )
    # tr(S^-1 N F1 N') with N = Z' X D1 (X = V Gamma V) and F1 = E_1^-1
    f1 = m1.extra["E_inv"]
    r1 = f1.lr.shape[1]
    a_n, b_n = [], np.zeros((q0, s1))
    c_n, nl1 = np.zeros((s1, s1)), np.zeros((q0, r1))
    ny_l1 = np.zeros((s1, r1))
    for g in range(l1.ngroups):
        nc = zl[g].T @ vgv[g] @ d1[g]  # q0_g x q1_g
        ny = ys[g].T @ vgv[g] @ d1[g]  # s1 x q1_g
        lo = l1.loc_own[g]
        lam = f1.own_blocks[g]
        a_n.append(nc[:, lo] @ lam @ nc[:, lo].T)
        b_n[l0.local[g]] += nc[:, lo] @ lam @ ny[:, lo].T
        c_n += ny[:, lo] @ lam @ ny[:, lo].T
        nl1[l0.local[g]] += nc @ f1.lr[l1.local[g]]
        ny_l1 += ny @ f1.lr[l1.local[g]]
    nl1 += m_mat.T @ ny_l1
    w_n = _block_diag(np.block([[np.zeros((s1, s1)), np.eye(s1)], [np.eye(s1), c_n]]), f1.core)
    t_b = _ArrowLowRank(GroupSum(l0, a_n), np.hstack([b_n, m_mat.T, nl1]), w_n).trace_with(s_inv)
    p1 = GroupSum(l1, [d.T @ x @ d for d, x in zip(d1, vgv, strict=True)])
    tr1 = f1.trace_with(p1) - t_a
    tr2 = f1.trace_pair(p1, p1) - 2.0 * t_b + t_c
    return tr1, tr2


def _inverse_arrow_low_rank(mat: _ArrowLowRank, layout: Layout, s1: int) -> BlockLowRank:
    """``(A + U W U')^-1`` for the ``Z' X Z`` of :func:`_satorra2000_traces_blocks`.

    ``U = [B, M']`` and ``W = [[0, I], [I, C]]``: the inverse is the upper-left block of the
    inverse of the augmented matrix ``[[A, U], [U', -W^-1]]``, whose ``2 s1`` extra rows join
    the shared parameters, so it is again a sum of group blocks (rows of ``U`` belong to the
    group of their parameter; shared rows to the first group that has them) inverted by
    :meth:`alliance.sem.blocks.GroupSum.inverse`. Unlike the Woodbury identity this needs no
    inverse of ``A`` alone, which is singular when ``m1`` shares more parameters than the
    groups own.
    """
    q0 = layout.q
    r = mat.u.shape[1]
    if r == 0:
        return mat.a.inverse()
    extra = np.arange(q0, q0 + r)
    local = [np.concatenate([ix, extra]) for ix in layout.local]
    aug = Layout.from_local(q0 + r, local)
    home = np.full(q0, -1)
    for g, ix in enumerate(layout.local):
        free = ix[home[ix] < 0]
        home[free] = g
    w_inv = np.linalg.inv(mat.w)
    blocks = []
    for g, ix in enumerate(layout.local):
        k = len(ix)
        blk = np.zeros((k + r, k + r))
        blk[:k, :k] = mat.a.blocks[g]
        mine = home[ix] == g
        blk[:k, k:][mine] = mat.u[ix[mine]]
        blk[k:, :k] = blk[:k, k:].T
        if g == 0:
            blk[k:, k:] = -w_inv
        blocks.append(blk)
    inv = GroupSum(aug, blocks).inverse()
    return BlockLowRank(layout, inv.own_blocks, inv.lr[:q0], inv.core)


def _block_diag(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0] :, a.shape[1] :] = b
    return out


# --------------------------------------------------------------------------- Wald test


def wald_test(result: FitResult, constraints: str | Sequence[str]) -> dict[str, Any]:
    """Wald test of equality constraints on the labelled parameters, as lavaan ``lavTestWald``.

    ``W = g' (J V J')^-1 g`` with ``g`` the constraint functions ``lhs - rhs`` at the
    estimates, ``J`` their Jacobian by the free parameters (central differences, exact for
    linear constraints) and ``V`` the covariance matrix of the estimates (robust under MLR, as
    lavaan); ``df`` the number of constraints.

    Parameters
    ----------
    result
        A fit with standard errors.
    constraints
        lavaan text (``"a2 == a3; a3 == a4"``, one per line or separated by ``;``) or a list
        of such statements; each side an expression of labels and numbers.

    Returns
    -------
    dict
        ``stat``, ``df``, ``pvalue``, ``se`` (lavaan's name of the standard errors) and the
        ``constraints`` tested.

    Raises
    ------
    ValueError
        For a fit without standard errors, a statement that is not ``lhs == rhs``, an
        unknown label, or constraints whose covariance matrix is singular (redundant).

    References
    ----------
    Wald, A. (1943). Tests of statistical hypotheses concerning several parameters when the
    number of observations is large. Transactions of the American Mathematical Society,
    54(3), 426-482.
    """
    if result.cov is None:
        raise ValueError(
            "a Wald test needs the covariance matrix of the estimates; the fit has none"
        )
    text = [constraints] if isinstance(constraints, str) else list(constraints)
    statements = [
        part.strip() for chunk in text for line in chunk.splitlines() for part in line.split(";")
    ]
    statements = [s for s in statements if s]
    if not statements:
        raise ValueError(f"no constraints to test, got {constraints!r}")
    spec = result.spec
    known = set(spec.label_values(result.x))
    sides = []
    for k, stmt in enumerate(statements, start=1):
        parts = stmt.split("==")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise SyntaxError_(f"constraint {k}: expected 'lhs == rhs', got {stmt!r}")
        left, right = (compile_expression(p, k) for p in parts)
        unknown = sorted(set(left.names + right.names) - known)
        if unknown:
            raise SyntaxError_(f"constraint {k}: unknown labels {unknown} in {stmt!r}")
        sides.append((left, right))

    def ceq(x: np.ndarray) -> np.ndarray:
        values = spec.label_values(x)
        return np.array([a(values) - b(values) for a, b in sides])

    g = ceq(result.x)
    jac = numeric_jacobian(ceq, result.x)
    info = jac @ result.cov.dense() @ jac.T
    try:
        stat = float(g @ np.linalg.solve(info, g))
    except np.linalg.LinAlgError as err:
        raise ValueError(f"the constraints are redundant (singular J V J'): {statements}") from err
    df = len(statements)
    se = {"ML": "standard", "MLR": "robust.huber.white", "WLSMV": "robust.sem"}[result.estimator]
    return {
        "stat": stat,
        "df": df,
        "pvalue": chisq_pvalue(stat, df),
        "se": se,
        "constraints": statements,
    }
