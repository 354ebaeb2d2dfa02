"""Score tests on a fitted model, whatever the estimator: modindices() and lavTestScore().

Modification indices and the release of equality constraints (partial invariance).

The gradient is that of the estimator's discrepancy (ML, FIML or DWLS;
:func:`alliance.sem.estimate.fmin_gradient`) and the information its expected information
(normal theory or ``Delta' W Delta``; :func:`alliance.sem.information.information_blocks`). As
lavaan, these are the ordinary (non-robust) score tests for every estimator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from alliance.sem.blocks import GroupSum, Layout
from alliance.sem.estimate import FitResult, fmin_gradient
from alliance.sem.information import information_blocks
from alliance.sem.model import ModelSpec
from alliance.sem.partable import Par

__all__ = [
    "MODINDICES_NOTE",
    "modification_indices",
    "release_tests",
    "residual_release_tests",
    "score_rows",
    "unconstrained_copy",
    "univariate_score_tests",
]

MODINDICES_NOTE = (
    "modification indices under WLSMV are lavaan's modindices(): score tests with the DWLS "
    "expected information Delta' W Delta (not robust to non-normality of the polychoric "
    "estimates); treat them as a guide, not as chi-square tests"
)


def _candidates(spec: ModelSpec) -> list[Par]:
    """Parameters lavaan's ``modindices`` considers: fixed rows and absent loadings/covariances."""
    cands: list[Par] = []
    for g in range(1, spec.ngroups + 1):
        have = {(r.lhs, r.op, r.rhs) for r in spec.rows(g)}
        have |= {(r.rhs, r.op, r.lhs) for r in spec.rows(g) if r.op == "~~"}
        first_order = spec.first_order()
        for f in spec.lv:
            for v in spec.ov:
                if (f, "=~", v) not in have and f in first_order:
                    cands.append(Par(0, f, "=~", v, g, 0, 0.0, mat="lambda",
                                     row=spec.ov.index(v), col=spec.lv.index(f)))  # fmt: skip
        for i, v in enumerate(spec.ov):
            for w in spec.ov[i + 1 :]:
                if (v, "~~", w) not in have:
                    r, c = sorted((spec.ov.index(v), spec.ov.index(w)), reverse=True)
                    cands.append(Par(0, v, "~~", w, g, 0, 0.0, mat="theta", row=r, col=c))
        for r in spec.rows(g):
            # fixed, non-identifying rows: zero covariances between factors (e.g. bifactor)
            if (
                not r.free
                and r.op == "~~"
                and r.lhs != r.rhs
                and r.lhs in spec.lv
                and not r.computed
            ):
                cands.append(Par(0, r.lhs, "~~", r.rhs, g, 0, r.value, mat="psi",
                                 row=r.row, col=r.col))  # fmt: skip
    return cands


def _extended(spec: ModelSpec, x: np.ndarray, cands: list[Par]) -> tuple[ModelSpec, np.ndarray]:
    """The model with the candidates appended as free parameters ``q+1, ..., q+k``."""
    ext = spec.copy()
    q = spec.npar
    for k, c in enumerate(cands):
        c.free = q + k + 1
        c.id = len(ext.table) + 1
        ext.table.append(c)
    ext.invalidate()
    return ext, np.concatenate([x, np.array([c.value for c in cands])])


def modification_indices(result: FitResult, top: int | None = 10) -> list[dict[str, Any]]:
    """Score tests (modification indices) for fixed parameters, largest first.

    For each candidate parameter ``j`` added to the model at value 0 (or its fixed value):
    ``mi = N g_j^2 / V_j`` with ``g_j`` the derivative of lavaan's ``fmin`` by the parameter
    and ``V_j = I_jj - I_jF I_FF^-1 I_Fj`` from the expected information of the extended
    model; ``epc = -g_j / V_j`` (the expected parameter change) and ``sepc.all`` its
    standardized value. Candidates: cross-loadings, residual covariances and fixed
    factor covariances (as lavaan's ``modindices``, without equality constraints). For
    models with equality constraints, see :func:`release_tests`.

    References
    ----------
    Sorbom, D. (1989). Model modification. Psychometrika, 54(3), 371-384.
    Saris, W. E., Satorra, A., & Sorbom, D. (1987). The detection and correction of
    specification errors in structural equation models. Sociological Methodology, 17,
    105-129.
    """
    spec = result.spec
    cands = _candidates(spec)
    if not cands or result.cov is None:
        return []
    ext, x_ext = _extended(spec, result.x, cands)
    grad = fmin_gradient(ext, x_ext, result)
    info = information_blocks(ext, x_ext, result.sample, result.estimator).dense()
    rows = score_rows(spec, result.x, cands, grad, info, result.ntotal)
    rows = [r for r in rows if np.isfinite(r["mi"])]
    rows.sort(key=lambda r: -r["mi"])
    return rows[:top] if top else rows


def score_rows(
    spec: ModelSpec,
    x: np.ndarray,
    cands: list[Par],
    grad: np.ndarray,
    info: np.ndarray,
    n: int,
) -> list[dict[str, Any]]:
    """Univariate score tests from a gradient and an information matrix (any estimator).

    ``grad`` and ``info`` belong to the extended model whose last ``len(cands)`` free
    parameters are the candidates (the first ``spec.npar`` are the fitted model's, at ``x``).
    ``mi = n g_j^2 / V_j`` with ``V_j = I_jj - I_jF I_FF^-1 I_Fj`` (lavaan: ``V`` below
    ``.Machine$double.eps^(1/3)`` gives NA); ``epc = -g_j / V_j``; ``sepc.all`` scales the EPC by
    the model-implied standard deviations (latent-response ones for ordered items).
    """
    q = spec.npar
    i_ff = info[:q, :q]
    i_fe = info[:q, q:]
    try:
        v = np.diag(info[q:, q:]) - np.einsum("ij,ij->j", i_fe, np.linalg.solve(i_ff, i_fe))
    except np.linalg.LinAlgError:
        return []
    g = grad[q:]
    ok = v > np.finfo(float).eps ** (1 / 3)
    safe_v = np.where(ok, v, 1.0)
    mi = np.where(ok, n * g**2 / safe_v, np.nan)
    epc = np.where(ok, -g / safe_v, np.nan)
    sds = {}
    for gi in range(1, spec.ngroups + 1):
        mt = spec.matrices(x, gi)
        ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
        a = ib @ mt.psi @ ib.T
        c = mt.lambda_ @ ib
        sig = c @ mt.psi @ c.T + mt.theta
        sds[gi] = (np.sqrt(np.abs(np.diag(a))), np.sqrt(np.abs(np.diag(sig))), mt)
    rows = []
    for k, c in enumerate(cands):
        sd_lv, sd_ov, mt = sds[c.group]
        if c.mat == "lambda":
            scale = sd_lv[c.col] / sd_ov[c.row]
        elif c.mat == "theta" and c.row != c.col:
            t1, t2 = mt.theta[c.row, c.row], mt.theta[c.col, c.col]
            scale = 1 / np.sqrt(t1 * t2) if t1 > 0 and t2 > 0 else np.nan
        elif c.mat == "theta":
            scale = 1 / sd_ov[c.row] ** 2
        elif c.mat == "psi":
            scale = 1 / (sd_lv[c.row] * sd_lv[c.col])
        else:
            scale = np.nan
        row = {
            "lhs": c.lhs,
            "op": c.op,
            "rhs": c.rhs,
            "mi": float(mi[k]),
            "epc": float(epc[k]),
            "sepc.all": float(epc[k] * scale),
            "pvalue": float(special.chdtrc(1, mi[k])) if np.isfinite(mi[k]) else None,
        }
        if spec.ngroups > 1:
            row["group"] = c.group
        rows.append(row)
    return rows


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
    ext.defined, ext.bounds = [], []
    ext.invalidate()
    constraints = [(idx[0], other) for idx in by_index.values() for other in idx[1:]]
    return ext, x_un, constraints


def release_tests(result: FitResult, top: int | None = 10) -> list[dict[str, Any]]:
    """Score tests for releasing each across-group equality constraint (partial invariance).

    lavaan's ``lavTestScore()`` univariate tests: in the unconstrained parameter space
    (every group's parameter its own) with score ``s`` (gradient of ``-fmin``) and the
    estimator's expected information ``I`` (weighted by ``n_g / N``) at the constrained
    estimates, releasing constraint ``r`` gives ``X2_r = N s' P_r s`` with ``P_r`` the
    upper-left block of the (generalized) inverse of the bordered matrix ``[[I, R_-r'], [R_-r,
    0]]`` (all other constraints kept); computed group by group by
    :func:`univariate_score_tests`. Like lavaan with WLSMV (``se = "robust.sem"``), this is the
    ordinary score test. Largest first.

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
    score = -fmin_gradient(ext, x_un, result)
    info = information_blocks(ext, x_un, result.sample, result.estimator)
    return univariate_score_tests(score, info, constraints, free_rows, spec, result.ntotal, top)


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


def residual_release_tests(result: FitResult, top: int | None = 10) -> list[dict[str, Any]]:
    """Score tests for freeing each fixed residual variance of groups 2+ (partial strict).

    In the theta parameterization the strict step holds the latent responses' residual
    variances equal by fixing them to group 1's value 1 in every group, so they are not
    equality constraints that :func:`release_tests` could release. Freeing one of them in
    one group is a 1-df score test of the same kind: the modification index ``N g^2 / V`` with
    the estimator's gradient ``g`` and ``V = I_jj - I_jF I_FF^-1 I_Fj`` from its information
    (lavaan's ``modindices()`` rows ``y ~~ y`` of groups 2+). Rows as :func:`release_tests`
    (``X2`` = the modification index, ``epc`` the expected change), largest first; empty
    unless the fit is a theta-parameterization model with equal residuals.

    References
    ----------
    Sorbom, D. (1989). Model modification. Psychometrika, 54(3), 371-384.
    Millsap, R. E., & Yun-Tein, J. (2004). Assessing factorial invariance in ordered-categorical
    measures. Multivariate Behavioral Research, 39(3), 479-515.
    """
    spec = result.spec
    if spec.parameterization != "theta" or "residuals" not in spec.group_equal:
        return []
    ext = spec.copy()
    cands = [
        r
        for r in ext.table
        if r.group > 1 and r.op == "~~" and r.lhs == r.rhs and r.lhs in spec.ordered
        and not r.free and not r.computed
    ]  # fmt: skip
    if not cands:
        return []
    q = spec.npar
    for k, r in enumerate(cands):
        r.free = q + k + 1
    ext.invalidate()
    x_ext = np.concatenate([result.x, np.array([r.value for r in cands])])
    grad = fmin_gradient(ext, x_ext, result)
    info = information_blocks(ext, x_ext, result.sample, result.estimator).dense()
    rows = []
    scores = score_rows(spec, result.x, cands, grad, info, result.ntotal)
    for c, sr in zip(cands, scores, strict=True):
        if not np.isfinite(sr["mi"]):
            continue
        rows.append(
            {
                "lhs": c.lhs,
                "op": c.op,
                "rhs": c.rhs,
                "group": c.group,
                "group_label": spec.group_labels[c.group - 1],
                "parameter": c.name(),
                "label": "",
                "X2": sr["mi"],
                "df": 1,
                "pvalue": sr["pvalue"],
                "epc": sr["epc"],
                "test": "modification index (fixed residual variance freed)",
            }
        )
    rows.sort(key=lambda r: -r["X2"])
    return rows[:top] if top else rows
