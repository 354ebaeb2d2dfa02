"""Measurement-invariance ladder (configural to strict), Chen (2007) decisions, partial release."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from threadpoolctl import threadpool_limits

from alliance.sem.blocks import GroupSum, Layout
from alliance.sem.compare import DELTA_NAMES, ROBUST_DELTA_NAMES, delta_fit, lrt_table
from alliance.sem.estimate import (
    FitResult,
    expected_information_blocks,
    parameter_rows,
    standardized_rows,
)
from alliance.sem.fit import fit_measures
from alliance.sem.model import ModelSpec
from alliance.sem.validity import _fmin_gradient, reliability

__all__ = ["STEPS", "chen_decision", "ladder", "release_tests"]

#: group.equal of each step (lavaan names).
STEPS: dict[str, tuple[str, ...]] = {
    "configural": (),
    "metric": ("loadings",),
    "scalar": ("loadings", "intercepts"),
    "strict": ("loadings", "intercepts", "residuals"),
}

CHEN_2007 = (
    "Chen (2007): non-invariance if delta CFI <= -0.010 together with delta RMSEA >= 0.015 "
    "or delta SRMR >= 0.030 (metric) / >= 0.010 (scalar, strict); deltas are the more "
    "constrained model minus the previous step"
)


def chen_decision(step: str, deltas: dict[str, float | None], robust: bool = False) -> dict:
    """Chen's (2007) decision for one step of the ladder.

    Parameters
    ----------
    step
        ``"metric"``, ``"scalar"`` or ``"strict"``.
    deltas
        Changes in fit (constrained minus previous): ``cfi``, ``rmsea``, ``srmr`` (and, with
        ``robust``, ``cfi.robust``/``rmsea.robust`` are used instead of CFI/RMSEA).
    robust
        Use the robust CFI and RMSEA (MLR).

    Returns
    -------
    dict
        ``invariant`` (bool or None when a delta is missing), the values used and the
        criterion text.

    References
    ----------
    Chen, F. F. (2007). Sensitivity of goodness of fit indexes to lack of measurement
    invariance. Structural Equation Modeling, 14(3), 464-504.
    """
    cfi_key = "cfi.robust" if robust and deltas.get("cfi.robust") is not None else "cfi"
    rmsea_key = "rmsea.robust" if robust and deltas.get("rmsea.robust") is not None else "rmsea"
    d_cfi, d_rmsea, d_srmr = deltas.get(cfi_key), deltas.get(rmsea_key), deltas.get("srmr")
    srmr_cut = 0.030 if step == "metric" else 0.010
    if d_cfi is None or d_rmsea is None or d_srmr is None:
        invariant = None
    else:
        worse = d_cfi <= -0.010 and (d_rmsea >= 0.015 or d_srmr >= srmr_cut)
        invariant = not worse
    return {
        "criterion": CHEN_2007,
        "indices": {"cfi": cfi_key, "rmsea": rmsea_key, "srmr": "srmr"},
        "delta_cfi": d_cfi,
        "delta_rmsea": d_rmsea,
        "delta_srmr": d_srmr,
        "cutoffs": {"delta_cfi": -0.010, "delta_rmsea": 0.015, "delta_srmr": srmr_cut},
        "invariant": invariant,
    }


def release_tests(result: FitResult, top: int | None = 10) -> list[dict[str, Any]]:
    """Score tests for releasing each across-group equality constraint (partial invariance).

    lavaan's ``lavTestScore()`` univariate tests: in the unconstrained parameter space
    (every group's parameter its own) with score ``s`` (gradient of ``logl / N``) and
    expected information ``I`` (weighted by ``n_g / N``) at the constrained estimates,
    releasing constraint ``r`` gives ``X2_r = N s' P_r s`` with ``P_r`` the upper-left block
    of the (generalized) inverse of the bordered matrix ``[[I, R_-r'], [R_-r, 0]]`` (all
    other constraints kept); computed group by group by :func:`univariate_score_tests`.
    Largest first.

    References
    ----------
    Byrne, B. M., Shavelson, R. J., & Muthen, B. (1989). Testing for the equivalence of
    factor covariance and mean structures: The issue of partial measurement invariance.
    Psychological Bulletin, 105(3), 456-466.
    Bentler, P. M., & Chou, C.-P. (1992). Some new covariance structure model improvement
    statistics. Sociological Methods & Research, 21(2), 259-282.
    """
    spec = result.spec
    if result.cov is None:
        return []
    free_rows = [r for r in spec.table if r.free]
    if len({r.free for r in free_rows}) == len(free_rows):
        return []
    ext, x_un, constraints = unconstrained_copy(spec, result.x)
    score = -_fmin_gradient(ext, x_un, result)
    info = expected_information_blocks(ext, x_un, result.sample)
    return univariate_score_tests(score, info, constraints, free_rows, spec, result.ntotal, top)


def unconstrained_copy(
    spec: ModelSpec, x: np.ndarray
) -> tuple[ModelSpec, np.ndarray, list[tuple[int, int]]]:
    """The model with every free row its own parameter, its values, and the constraints.

    Returns ``(ext, x_un, constraints)``: parameter ``k`` of ``ext`` is the ``k``-th free row
    of ``spec.table``; ``constraints`` lists ``(a, b)`` for rows ``a`` and ``b`` that share a
    free index in ``spec`` (``a`` the first row of the set).
    """
    free_rows = [r for r in spec.table if r.free]
    ext = spec.copy()
    ext_free = [r for r in ext.table if r.free]
    x_un = np.array([x[r.free - 1] for r in free_rows])
    by_index: dict[int, list[int]] = {}
    for k, (orig, new) in enumerate(zip(free_rows, ext_free, strict=True)):
        by_index.setdefault(orig.free, []).append(k)
        new.free = k + 1
        new.label = ""
    ext.invalidate()
    constraints = [(idx[0], other) for idx in by_index.values() for other in idx[1:]]
    return ext, x_un, constraints


def univariate_score_tests(
    score: np.ndarray,
    info: GroupSum,
    constraints: list[tuple[int, int]],
    free_rows: list[Any],
    spec: ModelSpec,
    n: int,
    top: int | None,
) -> list[dict[str, Any]]:
    """Score test for releasing each cross-group equality constraint on its own.

    Parameters
    ----------
    score, info
        Gradient and information (:class:`alliance.sem.blocks.GroupSum`, one block per
        group) of any estimator in the unconstrained space, whose parameter ``k`` is the
        ``k``-th free row of ``spec`` (``free_rows[k]``).
    constraints
        ``(a, b)`` pairs of unconstrained parameters held equal (see
        :func:`unconstrained_copy`); only those whose ``b`` is a ``group.equal`` (``.pN.``)
        row of groups 2+ are tested.
    free_rows, spec
        The constrained model's free rows (table order) and the model.
    n
        Total sample size.
    top
        How many of the largest tests to return (``None``: all).

    Notes
    -----
    lavaan's ``lavTestScore()`` univariate test is ``X2_r = n s' P_r s`` with ``P_r`` the
    upper-left block of the inverse of the bordered matrix ``[[I, R_-r'], [R_-r, 0]]``. That
    block is ``N (N' I N)^-1 N'`` for any basis ``N`` of the null space of ``R_-r``; with
    ``K`` the map from the constrained parameters to the unconstrained ones (``x_un = K x``)
    and ``e_b`` the released parameter, ``N = [K, e_b]``. By the block inverse, with
    ``J = K' I K`` (the constrained model's information), ``u = K' s``, ``c = K' I e_b`` and
    ``d = I_bb``: ``X2_r = n [u' J^-1 u + (s_b - c' J^-1 u)^2 / (d - c' J^-1 c)]``. ``J`` is a
    sum of group blocks and ``c`` lives on one group's parameters, so every test costs one
    group's block of ``J^-1`` (:mod:`alliance.sem.blocks`) instead of a solve of the whole
    bordered system: linear rather than quartic in the number of groups. A release that
    leaves the model unidentified (``d - c' J^-1 c`` not positive) gets ``X2 = None``.
    """
    layout_c = Layout.of(spec)
    q = spec.npar
    spec_index = np.array([r.free - 1 for r in free_rows], dtype=int)
    blocks = []
    maps = []
    for g, ext_idx in enumerate(info.layout.local):
        pos = np.searchsorted(layout_c.local[g], spec_index[ext_idx])
        size = len(layout_c.local[g])
        jb = np.zeros((size, size))
        np.add.at(jb, (pos[:, None], pos[None, :]), info.blocks[g])
        blocks.append(jb)
        maps.append(pos)
    j_mat = GroupSum(layout_c, blocks)
    f_inv = j_mat.inverse()
    u = np.zeros(q)
    np.add.at(u, spec_index, score)
    ju = f_inv.matvec(u)
    uju = float(u @ ju)
    owner_ext = np.full(len(score), -1, dtype=int)
    loc_ext = np.zeros(len(score), dtype=int)
    for g, ext_idx in enumerate(info.layout.local):
        owner_ext[ext_idx] = g
        loc_ext[ext_idx] = np.arange(len(ext_idx))
    f_local: dict[int, np.ndarray] = {}
    rows = []
    for _, b in constraints:
        row_b = free_rows[b]
        if row_b.group == 1 or not row_b.label.startswith(".p"):
            continue
        g = int(owner_ext[b])
        if g not in f_local:
            f_local[g] = f_inv.local(g)
        col = info.blocks[g][:, loc_ext[b]]
        c_loc = np.zeros(len(layout_c.local[g]))
        np.add.at(c_loc, maps[g], col)
        d = float(col[loc_ext[b]])
        schur = d - float(c_loc @ f_local[g] @ c_loc)
        if schur > 1e-12 * max(abs(d), 1e-300):
            resid = float(score[b] - c_loc @ ju[layout_c.local[g]])
            x2 = float(n * (uju + resid**2 / schur))
        else:
            x2 = float("nan")
        rows.append(
            {
                "lhs": row_b.lhs,
                "op": row_b.op,
                "rhs": row_b.rhs,
                "group": row_b.group,
                "group_label": spec.group_labels[row_b.group - 1],
                "parameter": row_b.name(),
                "label": row_b.label,
                "X2": x2,
                "df": 1,
                "pvalue": float(special.chdtrc(1, x2)) if np.isfinite(x2) else float("nan"),
            }
        )
    rows.sort(key=lambda r: (not np.isfinite(r["X2"]), -r["X2"] if np.isfinite(r["X2"]) else 0))
    return rows[:top] if top else rows


def _step_block(name: str, result: FitResult, fm: dict, with_rel: bool) -> dict[str, Any]:
    from alliance.sem.api import FIT_NAMES, ROBUST_NAMES

    names = FIT_NAMES + (ROBUST_NAMES if result.estimator != "ML" else ())
    block: dict[str, Any] = {
        "group.equal": list(STEPS[name]),
        "warnings": list(result.warnings),
        "converged": result.converged,
        "nobs": [g.n for g in result.sample.groups],
        "ntotal": result.ntotal,
        "fit": {k: fm.get(k) for k in names},
        "fit_all": fm,
        "parameters": parameter_rows(result),
        "standardized": standardized_rows(result),
        "group_labels": list(result.spec.group_labels),
    }
    if with_rel:
        block["reliability"] = reliability(result)
    return block


def ladder(
    data: pd.DataFrame,
    model: str,
    group: str,
    estimator: str = "ML",
    missing: str = "listwise",
    steps: Sequence[str] = ("configural", "metric", "scalar", "strict"),
    std_lv: bool = False,
    n_release: int = 10,
) -> dict[str, Any]:
    """Fit the invariance ladder across ``group`` and judge each step.

    Steps (lavaan ``group.equal``): configural (same pattern), metric (loadings), scalar
    (loadings and intercepts; latent means free in groups 2+), strict (plus residual
    variances). Each step reports its fit and parameters; then the chi-square difference
    tests (Satorra-Bentler 2001 scaled for MLR, as ``lavTestLRT``), the deltas of CFI, TLI,
    RMSEA and SRMR (plus scaled/robust for MLR), a decision per step by Chen (2007), and,
    for every constrained step, the constraints whose release improves fit most (score
    tests; partial invariance).

    Returns
    -------
    dict
        ``configural, metric, scalar, strict, lrt, deltas, decisions, partial``; a step that
        fails to fit holds ``{"error": message}`` and the others go on.
    """
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown invariance steps {unknown}; use {list(STEPS)}")
    if group not in data.columns:
        raise ValueError(f"group column {group!r} not in the data")
    with threadpool_limits(limits=1, user_api="blas"):
        return _ladder(data, model, group, estimator, missing, steps, std_lv, n_release)


def _ladder(
    data: pd.DataFrame,
    model: str,
    group: str,
    estimator: str,
    missing: str,
    steps: Sequence[str],
    std_lv: bool,
    n_release: int,
) -> dict[str, Any]:
    from alliance.sem.api import fit_model

    out: dict[str, Any] = {}
    fits: dict[str, FitResult] = {}
    measures: dict[str, dict] = {}
    sample = None  # prepared once: every step fits the same data
    for name in steps:
        try:
            res = fit_model(
                data, model, estimator, missing, group=group, std_lv=std_lv,
                group_equal=STEPS[name], sample=sample,
            )  # fmt: skip
            sample = res.sample
        except (ValueError, np.linalg.LinAlgError) as err:
            if name == steps[0]:
                raise
            out[name] = {"group.equal": list(STEPS[name]), "error": str(err)}
            continue
        fits[name] = res
        measures[name] = fit_measures(res)
        out[name] = _step_block(name, res, measures[name], with_rel=name == "configural")
    done = [s for s in steps if s in fits]
    if len(done) >= 2:
        out["lrt"] = lrt_table([fits[s] for s in done], done, [measures[s] for s in done])
        robust = all(f.estimator == "MLR" for f in fits.values())
        names = DELTA_NAMES + (ROBUST_DELTA_NAMES if robust else ())
        out["deltas"] = {}
        out["decisions"] = {}
        for prev, cur in zip(done, done[1:], strict=False):
            key = f"{cur}_vs_{prev}"
            d = delta_fit(measures[prev], measures[cur], names)
            out["deltas"][key] = d
            dec = chen_decision(cur, d, robust=robust)
            lrt_row = next(r for r in out["lrt"]["table"] if r["model"] == cur)
            dec["chisq_diff_pvalue"] = lrt_row["Pr_gt_Chisq"]
            out["decisions"][cur] = dec
    out["partial"] = {s: release_tests(fits[s], top=n_release) for s in done if s != "configural"}
    out["criteria"] = CHEN_2007
    return out
