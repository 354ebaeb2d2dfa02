"""Factor rotation: geomin, oblimin and (partially specified) target criteria.

Rotates a loading matrix ``A`` (items x factors) to ``L = A T^-T`` with factor correlations
``Phi = T'T`` (oblique; ``T`` has unit-length columns) or to ``L = A T`` (orthogonal; ``T'T =
I``). lavaan finds ``T`` by the gradient projection algorithm (GPA) of Jennrich (2001, 2002);
here the criterion is minimized from the same kind of random starts by L-BFGS on free
coordinates of ``T`` (the same stationary points, in tens instead of thousands of
iterations), and the best solution is polished by Newton steps on its stationarity
conditions (those also give the derivatives that the standard errors of the
rotated solution need, :mod:`alliance.sem.esem`). The criteria follow lavaan 0.6-14
(``lav_matrix_rotate_methods``); the rotation is applied to the standardized loadings
(lavaan's ``std.ov = TRUE``), the columns are reflected to positive sums and, unless a target
fixes their order, ordered by Asparouhov & Muthen's (2009) index.

This module uses numpy only; it knows nothing of models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

__all__ = [
    "METHODS",
    "Rotation",
    "RotationResult",
    "criterion",
    "minimize_start",
    "newton_polish",
    "random_orthogonal",
    "rotate",
    "stationarity",
]

#: Rotation criteria understood by :func:`criterion`.
METHODS = ("geomin", "oblimin", "target")

#: Two criterion values closer than this (relative to the smaller) count as the same optimum.
CRITERION_TIE = 1e-6


@dataclass(frozen=True)
class Rotation:
    """Options of a rotation (lavaan's ``rotation`` and ``rotation.args``).

    Attributes
    ----------
    method
        ``"geomin"`` (lavaan's default), ``"oblimin"`` or ``"target"``.
    orthogonal
        Orthogonal instead of oblique (lavaan's default) rotation.
    epsilon
        Geomin's epsilon (lavaan 0.6-14: 0.001).
    gamma
        Oblimin's gamma (0: quartimin, lavaan's default).
    target
        For ``"target"``: ``{factor: {item: value}}`` with ``nan`` (or a missing item) where
        the loading is left free (a partially specified target, Browne 2001); the factors of
        an exploratory block missing from it are free on every item.
    starts
        Random orthogonal starting rotations besides the identity (lavaan: 30 random starts).
    seed
        Seed of the random starts.
    tol
        Each start's minimization stops when the largest gradient entry is below this;
        the best start is then polished to machine precision by Newton steps (lavaan stops
        its GPA at a projected-gradient norm of 1e-5, which leaves its rotated loadings
        about 1e-5 from the optimum).
    max_iter
        Iteration limit per start.
    se
        Standard errors of the rotated solution: ``"delta"`` (the delta method through the
        rotation, exact) or ``"bordered"`` (lavaan 0.6-14's default ``rotation.se``, whose
        constraints standardize the loadings without the factor correlations; the same as
        ``"delta"`` for orthogonal rotations and without ``std_ov``; see
        :mod:`alliance.sem.esem`).
    std_ov
        Rotate the standardized loadings (lavaan's default ``std.ov = TRUE``: each item's
        loadings divided by its model-implied standard deviation) rather than the raw ones.
    """

    method: str = "geomin"
    orthogonal: bool = False
    epsilon: float = 0.001
    gamma: float = 0.0
    target: dict[str, dict[str, float]] | None = None
    starts: int = 30
    seed: int = 20240517
    tol: float = 1e-8
    max_iter: int = 1000
    std_ov: bool = True
    se: str = "delta"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"rotation must be one of {METHODS}, got {self.method!r}")
        if not self.epsilon > 0:
            raise ValueError(f"geomin epsilon must be positive, got {self.epsilon!r}")
        if int(self.starts) != self.starts or self.starts < 0:
            raise ValueError(f"starts must be a whole number >= 0, got {self.starts!r}")
        if self.se not in ("delta", "bordered"):
            raise ValueError(f"se must be 'delta' or 'bordered', got {self.se!r}")
        if self.method == "target" and not self.target:
            raise ValueError("target rotation needs a target ({factor: {item: value}}), got None")

    def describe(self) -> dict[str, object]:
        """The options as lavaan names them (for the output's ``meta.rotation``)."""
        out: dict[str, object] = {
            "method": self.method,
            "orthogonal": self.orthogonal,
            "std.ov": self.std_ov,
            "rstarts": self.starts,
            "seed": self.seed,
            "tol": self.tol,
            "rotation.se": self.se,
        }
        if self.method == "geomin":
            out["geomin.epsilon"] = self.epsilon
        if self.method == "oblimin":
            out["oblimin.gamma"] = self.gamma
        return out


@dataclass
class RotationResult:
    """A rotated loading matrix.

    ``loadings = A T^-T`` (oblique) or ``A T`` (orthogonal) on the scale of ``A``, ``phi``
    the factor correlations, ``rot`` the final ``T`` (columns reflected and ordered as the
    loadings), ``order`` the input column of each output column, ``value`` the criterion,
    ``start`` the start that reached it first (0: the identity), ``same_optimum`` how many
    starts reached it, ``converged`` whether the polished stationarity conditions hold.
    """

    loadings: np.ndarray
    phi: np.ndarray
    rot: np.ndarray
    order: np.ndarray
    value: float
    start: int
    same_optimum: int
    converged: bool
    iterations: int
    values: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- criteria


def criterion(
    loadings: np.ndarray, rotation: Rotation, target: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Value and gradient (by the loadings) of a rotation criterion.

    Geomin (Yates 1987; ``sum_i (prod_j (l_ij^2 + eps))^(1/m)``), oblimin (Jennrich 2002;
    ``sum(L2 * (I - gamma J/p) L2 N) / 4`` with ``L2`` the squared loadings and ``N`` ones
    off the diagonal) and the partially specified target (Browne 2001; ``sum (l_ij -
    t_ij)^2`` over the specified cells, ``target`` with ``nan`` elsewhere).
    """
    lam = np.asarray(loadings, dtype=float)
    m = lam.shape[1]
    if rotation.method == "geomin":
        l2 = lam * lam + rotation.epsilon
        row = np.exp(np.log(l2).sum(axis=1) / m)
        return float(row.sum()), (2.0 / m) * lam / l2 * row[:, None]
    if rotation.method == "oblimin":
        l2 = lam * lam
        lr = l2 @ (np.ones((m, m)) - np.eye(m))
        if rotation.gamma:
            lr = lr - rotation.gamma * lr.mean(axis=0, keepdims=True)
        return float(np.sum(l2 * lr) / 4.0), lam * lr
    if target is None:
        raise ValueError("target rotation needs the target matrix")
    mask = ~np.isnan(target)
    diff = np.where(mask, lam - np.where(mask, target, 0.0), 0.0)
    return float(np.sum(diff * diff)), 2.0 * diff


# --------------------------------------------------------------------------- minimization


def _rotated(a: np.ndarray, t: np.ndarray, orthogonal: bool) -> np.ndarray:
    """``A T`` (orthogonal) or ``A T^-T`` (oblique)."""
    return a @ t if orthogonal else np.linalg.solve(t, a.T).T


def _gradient_t(a: np.ndarray, t: np.ndarray, lam: np.ndarray, gq: np.ndarray, orthogonal: bool):
    """``dQ/dT`` from ``dQ/dL`` (Jennrich 2002: ``A' G`` or ``-T^-T G' L``)."""
    if orthogonal:
        return a.T @ gq
    return -np.linalg.solve(t.T, gq.T @ lam)


def minimize_start(
    a: np.ndarray,
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    orthogonal: bool,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, float, bool, int]:
    """Minimize a rotation criterion from one start by L-BFGS on free coordinates.

    Oblique: ``T = U diag(U'U)^-1/2`` (columns of unit length) with ``U`` free; orthogonal:
    the Cayley transform ``T = T0 (I + S)(I - S)^-1`` of a skew-symmetric ``S``, so that every
    ``S`` gives an orthogonal ``T``. The stationary points are those of the gradient
    projection algorithm (Jennrich 2001, 2002; Bernaards & Jennrich 2005), reached in far
    fewer iterations; :func:`newton_polish` then solves the stationarity conditions.

    Returns
    -------
    rotation, value, converged, iterations
    """
    m = start.shape[0]
    t0 = np.array(start, dtype=float)
    iu = np.triu_indices(m, 1)

    def unpack(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if orthogonal:
            s = np.zeros((m, m))
            s[iu] = v
            s = s - s.T
            w = np.linalg.inv(np.eye(m) - s)
            return t0 @ (np.eye(m) + s) @ w, w
        u = v.reshape((m, m))
        return u / np.sqrt(np.sum(u * u, axis=0))[None, :], u

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        t, aux = unpack(v)
        lam = _rotated(a, t, orthogonal)
        q, gq = fun(lam)
        gt = _gradient_t(a, t, lam, gq, orthogonal)
        if orthogonal:
            gs = 2.0 * aux.T @ t0.T @ gt @ aux.T
            return float(q), (gs - gs.T)[iu]
        norms = np.sqrt(np.sum(aux * aux, axis=0))
        gu = (gt - t * np.sum(t * gt, axis=0)[None, :]) / norms[None, :]
        return float(q), gu.ravel()

    v0 = np.zeros(len(iu[0])) if orthogonal else t0.ravel()
    res = optimize.minimize(
        objective,
        v0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 20},
    )
    t, _ = unpack(np.asarray(res.x, dtype=float))
    ok = bool(res.success) or "REL_REDUCTION_OF_F" in str(res.message)
    return t, float(res.fun), ok, int(res.nit)


def random_orthogonal(rng: np.random.Generator, m: int) -> np.ndarray:
    """A random orthogonal matrix (QR of a standard normal matrix, signs fixed by ``R``)."""
    q, r = np.linalg.qr(rng.standard_normal((m, m)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]


# --------------------------------------------------------------------------- stationarity


def stationarity(
    a_std: np.ndarray, rot: np.ndarray, rotation: Rotation, target: np.ndarray | None = None
) -> np.ndarray:
    """The ``m^2`` equations that hold at a rotation's optimum (as lavaan's bordered SEs).

    With ``L`` the rotated standardized loadings, ``G`` the criterion's gradient and ``Z =
    L'G``: oblique, the off-diagonal entries of ``Z - diag(Z) Phi`` (``Phi = T'T``) and the
    unit column lengths ``diag(T'T) - 1``; orthogonal, the upper off-diagonal of ``Z - Z'``
    and ``vech(T'T - I)`` (Jennrich 1973; lavaan's ``lav_model_efa_rotate_border_x``).
    """
    m = rot.shape[0]
    lam = _rotated(a_std, rot, rotation.orthogonal)
    _, g = criterion(lam, rotation, target)
    z = lam.T @ g
    tt = rot.T @ rot
    if rotation.orthogonal:
        iu = np.triu_indices(m, 1)
        il = np.tril_indices(m)
        return np.concatenate([(z - z.T)[iu], (tt - np.eye(m))[il]])
    res = z - np.diag(z)[:, None] * tt
    off = ~np.eye(m, dtype=bool)
    return np.concatenate([res[off], np.diag(tt) - 1.0])


def _jacobian_rot(
    a_std: np.ndarray, rot: np.ndarray, rotation: Rotation, target: np.ndarray | None
) -> np.ndarray:
    """Central-difference Jacobian of :func:`stationarity` by ``vec(T)`` (column-major)."""
    m = rot.shape[0]
    cols = []
    for k in range(m * m):
        e = np.zeros(m * m)
        h = 1e-6
        e[k] = h
        up = stationarity(a_std, rot + e.reshape((m, m), order="F"), rotation, target)
        dn = stationarity(a_std, rot - e.reshape((m, m), order="F"), rotation, target)
        cols.append((up - dn) / (2 * h))
    return np.column_stack(cols)


def newton_polish(
    a_std: np.ndarray,
    rot: np.ndarray,
    rotation: Rotation,
    target: np.ndarray | None = None,
    steps: int = 20,
) -> tuple[np.ndarray, bool]:
    """Newton steps on :func:`stationarity` from a minimum found; (rotation, converged)."""
    m = rot.shape[0]
    t = rot.copy()
    for _ in range(steps):
        f = stationarity(a_std, t, rotation, target)
        if np.max(np.abs(f)) < 1e-13:
            return t, True
        try:
            step = np.linalg.solve(_jacobian_rot(a_std, t, rotation, target), f)
        except np.linalg.LinAlgError:
            return t, False
        t = t - step.reshape((m, m), order="F")
    f = stationarity(a_std, t, rotation, target)
    return t, bool(np.max(np.abs(f)) < 1e-10)


# --------------------------------------------------------------------------- rotate


def _order_index(lam: np.ndarray) -> np.ndarray:
    """Asparouhov & Muthen's (2009, appendix D) order of the factors.

    By the mean row number of the loadings at least 0.8 of the factor's largest (absolute)
    loading; ties keep the input order.
    """
    big = np.abs(lam) >= 0.8 * np.max(np.abs(lam), axis=0, keepdims=True)
    rows = np.arange(1, lam.shape[0] + 1)[:, None]
    index = np.sum(big * rows, axis=0) / np.sum(big, axis=0)
    return np.argsort(index, kind="stable")


def rotate(
    a: np.ndarray,
    rotation: Rotation,
    ov_var: np.ndarray | None = None,
    target: np.ndarray | None = None,
    order: bool = True,
) -> RotationResult:
    """Rotate loadings ``a`` (items x factors) as lavaan 0.6-14's ``lav_matrix_rotate``.

    The criterion is applied to ``a / sqrt(ov_var)`` (the standardized loadings; ``None``:
    ``a`` itself). :func:`minimize_start` runs from the identity and ``rotation.starts``
    random orthogonal rotations (seeded by ``rotation.seed``); the start with the lowest
    criterion wins, where values within :data:`CRITERION_TIE` (relative) of the lowest count
    as equal and the earliest such start is taken (never a bare float comparison that could
    differ across machines in the last bits). That rotation is polished by Newton steps on its
    stationarity conditions, the columns are reflected so that each sums to a positive
    value and, with ``order``, sorted by :func:`_order_index` (lavaan's ``order.lv.by =
    "index"``; a target rotation keeps the target's order).

    Returns
    -------
    RotationResult

    References
    ----------
    Asparouhov, T., & Muthen, B. (2009). Exploratory structural equation modeling.
    Structural Equation Modeling, 16(3), 397-438.
    Browne, M. W. (2001). An overview of analytic rotation in exploratory factor analysis.
    Multivariate Behavioral Research, 36(1), 111-150.
    Yates, A. (1987). Multivariate exploratory data analysis. SUNY Press.
    """
    a = np.asarray(a, dtype=float)
    p, m = a.shape
    scale = np.ones(p) if ov_var is None else np.sqrt(np.asarray(ov_var, dtype=float))
    a_std = a / scale[:, None]

    def fun(lam: np.ndarray) -> tuple[float, np.ndarray]:
        return criterion(lam, rotation, target)

    rng = np.random.default_rng(rotation.seed)
    starts = [np.eye(m)] + [random_orthogonal(rng, m) for _ in range(rotation.starts)]
    runs = [
        minimize_start(a_std, fun, s, rotation.orthogonal, rotation.tol, rotation.max_iter)
        for s in starts
    ]
    rots = [r[0] for r in runs]
    ok = [r[2] for r in runs]
    iters = [r[3] for r in runs]
    values = [r[1] for r in runs]
    low = min(values)
    tie = CRITERION_TIE * max(abs(low), 1e-12)
    best = next(k for k, v in enumerate(values) if v <= low + tie)
    same = sum(1 for v in values if v <= low + tie)
    rot, converged = newton_polish(a_std, rots[best], rotation, target)
    lam = _rotated(a_std, rot, rotation.orthogonal)
    value = fun(lam)[0]
    lam = lam * scale[:, None]
    signs = np.where(lam.sum(axis=0) < 0, -1.0, 1.0)
    lam = lam * signs[None, :]
    rot = rot * signs[None, :]
    idx = _order_index(lam) if order else np.arange(m)
    lam, rot = lam[:, idx], rot[:, idx]
    phi = np.eye(m) if rotation.orthogonal else rot.T @ rot
    return RotationResult(
        loadings=lam,
        phi=phi,
        rot=rot,
        order=idx,
        value=float(value),
        start=int(best),
        same_optimum=int(same),
        converged=bool(converged and ok[best]),
        iterations=int(iters[best]),
        values=values,
    )
