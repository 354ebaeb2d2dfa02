"""Exploratory SEM: the rotated solution of ``efa("set")`` blocks and its standard errors.

lavaan 0.6-14 fits a model with exploratory blocks in two steps, and so does this module: the
estimator (:mod:`alliance.sem.estimate`) fits the unrotated solution, identified as lavaan
identifies it (each block's factors with unit variances, uncorrelated, and an echelon pattern
of zero loadings; :func:`alliance.sem.partable.build_rows`); then each block's loadings are
rotated (:mod:`alliance.sem.rotation`) and every parameter of the model is carried along:
``Lambda H^-T``, ``H' Psi H``, ``H' B H^-T``, ``H' alpha`` with ``H`` the rotation of the
blocks' factors (Asparouhov & Muthen 2009, eq. 22). The fit (chi-square, every fit measure) is
the unrotated solution's: a rotation does not change the implied moments.

Standard errors of the rotated parameters by the delta method through the rotation
(Jennrich 1973; Asparouhov & Muthen 2009, section 4): the rotation ``T(x)`` is the solution of
its stationarity conditions ``F(x, T) = 0`` (:func:`alliance.sem.rotation.stationarity`), so
``dT/dx = -F_T^-1 F_x`` (implicit function theorem) and the Jacobian of the rotated parameters
is their total derivative along it; ``V_rot = J V J'``. lavaan's default (``rotation.se =
"bordered"``) inverts the information matrix bordered by the Jacobian of the same conditions,
which is the same covariance matrix, except that lavaan 0.6-14 standardizes the loadings in
its constraints by ``diag(A A' + Theta)`` with the rotated ``A`` (leaving out the factor
correlations): under an oblique rotation with ``std.ov`` its constraints are not the ones its
rotation solved, and its SEs differ (``Rotation(se="bordered")`` reproduces them; they agree
with the delta method for orthogonal rotations and without ``std.ov``). lavaan's
``rotation.se = "delta"`` takes ``J`` by forward differences with step 0.005 from a rotation
stopped at gpa.tol 1e-5, which is too coarse to agree with either.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from alliance.sem.estimate import FitResult
from alliance.sem.model import Matrices, ModelSpec
from alliance.sem.partable import number_free
from alliance.sem.rotation import Rotation, RotationResult, criterion, rotate, stationarity

__all__ = [
    "ESEM_NOTE",
    "BlockRotation",
    "model_rotation",
    "rotate_fit",
    "rotated_spec",
    "target_from_key",
    "target_matrix",
]

ESEM_NOTE = (
    "Exploratory SEM (efa blocks): the fit and its measures are those of the unrotated "
    "solution (a rotation leaves the implied moments unchanged); loadings and factor "
    "correlations are the rotated ones, with delta-method standard errors through the "
    "rotation (equal to lavaan's bordered SEs). Reliability (omega) of an efa factor uses "
    "every item of its block; HTMT needs each item on one factor and is not given."
)


@dataclass
class BlockRotation:
    """The rotation of one exploratory block: its items, factors and the rotation found."""

    name: str
    items: list[str]
    factors: list[str]
    result: RotationResult
    target: np.ndarray | None


def rotated_spec(spec: ModelSpec, orthogonal: bool) -> ModelSpec:
    """The model whose free parameters are the rotated solution's.

    The rows fixed to identify the unrotated solution (``user == 7``: the echelon zeros and,
    for an oblique rotation, the blocks' factor covariances) are free in the rotated solution;
    its parameter count is not the model's (use the unrotated fit for ``npar`` and ``df``).
    """
    out = spec.copy()
    for r in out.table:
        if r.user == 7 and (r.op == "=~" or not orthogonal):
            r.free, r.value = 1, float("nan")
    number_free(out.table)
    out.invalidate()
    return out


def target_matrix(
    target: dict[str, dict[str, float]], items: list[str], factors: list[str]
) -> np.ndarray:
    """The target of one block (items x factors): the given values, ``nan`` where free.

    Raises
    ------
    ValueError
        If the target names a factor or an item that is not in the block, or specifies no cell.
    """
    unknown = sorted(set(target) - set(factors))
    if unknown:
        raise ValueError(f"the rotation target names factors not in the efa block: {unknown}")
    out = np.full((len(items), len(factors)), np.nan)
    for j, f in enumerate(factors):
        cells = target.get(f, {})
        bad = sorted(set(cells) - set(items))
        if bad:
            raise ValueError(f"the rotation target of {f!r} names items not in the block: {bad}")
        for i, item in enumerate(items):
            value = cells.get(item)
            out[i, j] = np.nan if value is None else float(value)
    if np.all(np.isnan(out)):
        raise ValueError(f"the rotation target specifies no loading of the block {factors}")
    return out


def target_from_key(key: dict[str, list[str]], factors: list[str]) -> dict[str, dict[str, float]]:
    """A partially specified target from an instrument's key (Asparouhov & Muthen 2009).

    A factor named in ``key`` is free (``nan``) on its own items and targeted at 0 on the
    other items of the key; a factor not in the key (a general factor of a bifactor model) is
    free on every item.
    """
    items = [i for v in key.values() for i in v]
    out: dict[str, dict[str, float]] = {}
    for f in factors:
        if f in key:
            own = set(key[f])
            out[f] = {i: float("nan") if i in own else 0.0 for i in items}
    return out


def model_rotation(
    name: str,
    key: dict[str, list[str]],
    method: str = "geomin",
    *,
    seed: int = Rotation.seed,
    starts: int = Rotation.starts,
    se: str = Rotation.se,
) -> Rotation:
    """The rotation of a model's exploratory blocks, given the instrument's key.

    ``bifactor_esem`` (the built-in bifactor-ESEM) is always rotated orthogonally to the
    key's partially specified target (:func:`target_from_key`: each specific factor free on
    its own items and 0 elsewhere, the general factor free; Morin, Arens & Marsh 2016); any
    other model by ``method``, with the key as target for ``"target"``.

    Raises
    ------
    ValueError
        For a target rotation without a key.
    """
    if name == "bifactor_esem" or method == "target":
        if not key:
            raise ValueError(
                f"the target rotation of {name!r} needs the instrument's key (an ingested "
                "dataset), got none"
            )
        factors = ["general", *key]
        return Rotation(
            method="target",
            orthogonal=name == "bifactor_esem",
            target=target_from_key(key, factors),
            seed=seed,
            starts=starts,
            se=se,
        )
    return Rotation(method=method, seed=seed, starts=starts, se=se)


def _blocks(spec: ModelSpec) -> list[tuple[str, list[int], list[int], list[str], list[str]]]:
    out = []
    for name, factors in spec.efa.items():
        items = list(
            dict.fromkeys(
                r.rhs for r in spec.rows(1, "=~") if r.lhs in factors and r.rhs in spec.ov
            )
        )
        ov_idx = [spec.ov.index(v) for v in items]
        lv_idx = [spec.lv.index(f) for f in factors]
        out.append((name, ov_idx, lv_idx, items, factors))
    return out


def _standardized_block(
    mt: Matrices, ov_idx: list[int], lv_idx: list[int], std_ov: bool = True
) -> np.ndarray:
    """A block's unrotated loadings divided by the items' implied SDs (lavaan's std.ov)."""
    a = mt.lambda_[np.ix_(ov_idx, lv_idx)]
    if not std_ov:
        return a
    ov_var = np.sum(a * a, axis=1) + np.diag(mt.theta)[ov_idx]
    return a / np.sqrt(ov_var)[:, None]


def _rotate_matrices(spec: ModelSpec, x: np.ndarray, h: np.ndarray) -> Matrices:
    """The matrices of the model at ``x`` rotated by ``H`` (all factors; identity outside)."""
    mt = spec.matrices(x, 1)
    h_inv_t = np.linalg.inv(h).T
    return replace(
        mt,
        lambda_=mt.lambda_ @ h_inv_t,
        psi=h.T @ mt.psi @ h,
        beta=h.T @ mt.beta @ h_inv_t,
        alpha=h.T @ mt.alpha,
    )


def _full_rotation(spec: ModelSpec, blocks: list, rots: list[np.ndarray]) -> np.ndarray:
    h = np.eye(spec.m)
    for (_, _, lv_idx, _, _), t in zip(blocks, rots, strict=True):
        h[np.ix_(lv_idx, lv_idx)] = t
    return h


def _rotated_x(
    spec: ModelSpec, rot_spec: ModelSpec, x: np.ndarray, blocks: list, rots: list[np.ndarray]
) -> np.ndarray:
    mt = _rotate_matrices(spec, x, _full_rotation(spec, blocks, rots))
    return np.array([mt.value(r) for r in rot_spec.free_rows()])


def rotate_fit(result: FitResult, rotation: Rotation) -> FitResult:
    """The rotated solution of a fitted model with ``efa`` blocks.

    Parameters
    ----------
    result
        The unrotated fit (one group).
    rotation
        The rotation (:class:`alliance.sem.rotation.Rotation`).

    Returns
    -------
    FitResult
        On :func:`rotated_spec` with the rotated estimates and their covariance matrix; the
        fit statistics are the unrotated fit's, which is kept in ``extra["unrotated"]``, and
        ``extra["rotation"]`` describes each block's rotation. Without a covariance matrix of
        the unrotated estimates the rotated one is ``None`` too.

    Raises
    ------
    ValueError
        For a model with several groups, labelled or fixed loadings in a block, or a target
        that does not fit the blocks.

    References
    ----------
    Asparouhov, T., & Muthen, B. (2009). Exploratory structural equation modeling.
    Structural Equation Modeling, 16(3), 397-438.
    Jennrich, R. I. (1973). Standard errors for obliquely rotated factor loadings.
    Psychometrika, 38(4), 593-604.
    """
    # small matrices: one BLAS thread is much faster than several competing ones
    with threadpool_limits(limits=1, user_api="blas"):
        return _rotate_fit(result, rotation)


def _rotate_fit(result: FitResult, rotation: Rotation) -> FitResult:
    spec = result.spec
    if not spec.efa:
        raise ValueError("the model has no efa() block to rotate")
    if spec.ngroups > 1:
        raise ValueError(f"exploratory SEM is fitted in one group here, got {spec.ngroups} groups")
    bound = [
        r.name()
        for r in spec.table
        if r.op == "=~" and r.efa and r.user != 7 and (r.label or not r.free)
    ]
    if bound:
        raise ValueError(
            "loadings of an efa() block are rotated and cannot carry labels or fixed values, "
            f"got {bound}"
        )
    blocks = _blocks(spec)
    mt = spec.matrices(result.x, 1)
    rotations: list[BlockRotation] = []
    for name, ov_idx, lv_idx, items, factors in blocks:
        target = None
        if rotation.method == "target":
            assert rotation.target is not None
            target = target_matrix(rotation.target, items, factors)
        a = mt.lambda_[np.ix_(ov_idx, lv_idx)]
        ov_var = np.sum(a * a, axis=1) + np.diag(mt.theta)[ov_idx] if rotation.std_ov else None
        res = rotate(a, rotation, ov_var, target, order=rotation.method != "target")
        rotations.append(BlockRotation(name, items, factors, res, target))
    rot_spec = rotated_spec(spec, rotation.orthogonal)
    # the factors keep their names; a reordering moves their columns
    rots = [b.result.rot for b in rotations]
    x_rot = _rotated_x(spec, rot_spec, result.x, blocks, rots)
    out = replace(
        result,
        spec=rot_spec,
        x=x_rot,
        cov=None,
        information=None,
        warnings=list(result.warnings),
        notes=list(result.notes),
        active_bounds=np.zeros(0, dtype=int),
        extra={"unrotated": result, "rotation": _describe(rotation, rotations)},
    )
    if not all(b.result.converged for b in rotations):
        out.warnings.append("the rotation did not converge (its stationarity conditions fail)")
    if result.cov is not None:
        jac = _jacobian(spec, rot_spec, result.x, blocks, rotations, rotation)
        if rotation.se == "bordered":
            jac = _bordered(rot_spec, x_rot, blocks, rotation, rotations) @ jac
        out.vcov = jac @ result.cov.dense() @ jac.T
    return out


def _lavaan_border(
    rot_spec: ModelSpec, x_rot: np.ndarray, blocks: list, rotation: Rotation, targets: list
) -> np.ndarray:
    """Lavaan 0.6-14's rotation constraints at a rotated solution (lav_model_efa_rotate_border_x).

    As lavaan: with ``std.ov`` each item's loadings are divided by ``sqrt(diag(A A' +
    Theta))`` with ``A`` the *rotated* loadings, which leaves out the factor correlations
    (the implied variance is ``A Phi A' + Theta``) under an oblique rotation.
    """
    mt = rot_spec.matrices(x_rot, 1)
    parts = []
    for (_, ov_idx, lv_idx, _, _), target in zip(blocks, targets, strict=True):
        a = mt.lambda_[np.ix_(ov_idx, lv_idx)]
        if rotation.std_ov:
            a = a / np.sqrt(np.sum(a * a, axis=1) + np.diag(mt.theta)[ov_idx])[:, None]
        _, g = criterion(a, rotation, target)
        z = a.T @ g
        m = len(lv_idx)
        if rotation.orthogonal:
            parts.append((z - z.T)[np.tril_indices(m, -1)])
        else:
            psi = mt.psi[np.ix_(lv_idx, lv_idx)]
            tmp = z - psi * np.diag(z)[:, None]
            parts.append(
                np.concatenate([tmp[np.tril_indices(m, -1)], tmp.T[np.tril_indices(m, -1)]])
            )
    return np.concatenate(parts)


def _bordered(
    rot_spec: ModelSpec,
    x_rot: np.ndarray,
    blocks: list,
    rotation: Rotation,
    rotations: list[BlockRotation],
) -> np.ndarray:
    """The map from the delta-method Jacobian to lavaan's bordered one: ``I - O (C O)^-1 C``.

    lavaan's bordered covariance ``N (N' I N)^-1 N'`` (``N`` spanning the null space of the
    constraints' Jacobian ``C``, ``I`` the information of the rotated parameters, singular
    along the rotation's orbit ``O``) equals ``M V M'`` with ``M = (I - O (C O)^-1 C) J``: the
    delta-method Jacobian ``J`` moved along the orbit into the null space of ``C``. With
    lavaan's ``C`` (:func:`_lavaan_border`) this reproduces its SEs; with the conditions the
    rotation solves, ``C J = 0`` and ``M = J``.
    """
    targets = [b.target for b in rotations]
    q = len(x_rot)
    # the orbit: a further rotation S = I + E of each block's factors at the solution
    mats = rot_spec.matrices(x_rot, 1)
    orbit = []
    for _, _, lv_idx, _, _ in blocks:
        phi = mats.psi[np.ix_(lv_idx, lv_idx)]
        m = len(lv_idx)
        pairs = [(i, j) for i in range(m) for j in range(m) if i != j]
        if rotation.orthogonal:
            pairs = [(i, j) for i, j in pairs if i < j]
        for i, j in pairs:
            e = np.zeros((m, m))
            e[i, j] = 1.0
            if rotation.orthogonal:
                e[j, i] = -1.0
            else:
                e[j, j] = -phi[j, i]
            cols = []
            for sign in (1.0, -1.0):
                h = np.eye(rot_spec.m)
                h[np.ix_(lv_idx, lv_idx)] += sign * 1e-6 * e
                turned = _rotate_matrices(rot_spec, x_rot, h)
                cols.append(np.array([turned.value(r) for r in rot_spec.free_rows()]))
            orbit.append((cols[0] - cols[1]) / 2e-6)
    o = np.column_stack(orbit)
    c = np.zeros((o.shape[1], q))
    steps = 1e-6 * np.maximum(1.0, np.abs(x_rot))
    for k in range(q):
        e = np.zeros(q)
        e[k] = steps[k]
        up = _lavaan_border(rot_spec, x_rot + e, blocks, rotation, targets)
        dn = _lavaan_border(rot_spec, x_rot - e, blocks, rotation, targets)
        c[:, k] = (up - dn) / (2 * steps[k])
    return np.eye(q) - o @ np.linalg.solve(c @ o, c)


def _describe(rotation: Rotation, rotations: list[BlockRotation]) -> dict[str, Any]:
    out: dict[str, Any] = dict(rotation.describe())
    out["blocks"] = [
        {
            "efa": b.name,
            "factors": b.factors,
            "items": b.items,
            "criterion": b.result.value,
            "best_start": b.result.start,
            "starts_at_optimum": b.result.same_optimum,
            "starts": len(b.result.values),
            "converged": b.result.converged,
            **({"target_free": _target_free(b)} if b.target is not None else {}),
        }
        for b in rotations
    ]
    return out


def _target_free(block: BlockRotation) -> dict[str, list[str]]:
    """Per factor with a target, the items its target leaves free (its own items)."""
    assert block.target is not None
    out = {}
    for j, f in enumerate(block.factors):
        free = np.isnan(block.target[:, j])
        if not free.all():
            out[f] = [item for item, k in zip(block.items, free, strict=True) if k]
    return out


def _jacobian(
    spec: ModelSpec,
    rot_spec: ModelSpec,
    x: np.ndarray,
    blocks: list,
    rotations: list[BlockRotation],
    rotation: Rotation,
) -> np.ndarray:
    """``d x_rot / d x`` along the rotation's stationarity conditions (implicit function)."""
    rots = [b.result.rot for b in rotations]

    def conditions(xx: np.ndarray, ts: list[np.ndarray]) -> np.ndarray:
        mt = spec.matrices(xx, 1)
        parts = [
            stationarity(
                _standardized_block(mt, ov_idx, lv_idx, rotation.std_ov), t, rotation, b.target
            )
            for (_, ov_idx, lv_idx, _, _), t, b in zip(blocks, ts, rotations, strict=True)
        ]
        return np.concatenate(parts)

    sizes = [t.size for t in rots]
    offsets = np.concatenate([[0], np.cumsum(sizes)])

    def unpack(v: np.ndarray) -> list[np.ndarray]:
        return [
            v[offsets[k] : offsets[k + 1]].reshape(rots[k].shape, order="F")
            for k in range(len(rots))
        ]

    tvec = np.concatenate([t.ravel(order="F") for t in rots])
    n_t = len(tvec)
    f_t = np.zeros((n_t, n_t))
    for k in range(n_t):
        e = np.zeros(n_t)
        e[k] = 1e-6
        f_t[:, k] = (conditions(x, unpack(tvec + e)) - conditions(x, unpack(tvec - e))) / 2e-6
    q = len(x)
    f_x = np.zeros((n_t, q))
    steps = 1e-6 * np.maximum(1.0, np.abs(x))
    for k in range(q):
        e = np.zeros(q)
        e[k] = steps[k]
        f_x[:, k] = (conditions(x + e, rots) - conditions(x - e, rots)) / (2 * steps[k])
    dt = -np.linalg.solve(f_t, f_x)
    jac = np.zeros((rot_spec.npar, q))
    for k in range(q):
        e = np.zeros(q)
        e[k] = steps[k]
        up = _rotated_x(spec, rot_spec, x + e, blocks, unpack(tvec + steps[k] * dt[:, k]))
        dn = _rotated_x(spec, rot_spec, x - e, blocks, unpack(tvec - steps[k] * dt[:, k]))
        jac[:, k] = (up - dn) / (2 * steps[k])
    return jac
