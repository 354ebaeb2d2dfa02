"""Multi-group information matrices kept as per-group blocks (linear in the number of groups).

In a multi-group model the implied moments of group ``g`` depend only on the free parameters
that enter its matrices (``ModelSpec.group_free(g)``): the parameters of that group and those
held equal across groups. Every per-observation matrix built from group contributions (the
expected or observed information, the cross-product of casewise scores, ``Delta' W Delta`` of
WLS) is therefore a sum of small dense blocks, one per group, scattered into the ``q x q``
matrix: an *arrow* pattern with the shared (equality-constrained) parameters as the border and
one diagonal block per group for the group's own parameters. Its inverse is a block-diagonal
matrix plus a correction of rank ``s`` (the number of shared parameters), by the Schur
complement of the border. Products, traces and sub-blocks of these matrices then cost
``O(G (s + o)^3)`` for ``G`` groups with ``o`` own parameters each, instead of the
``O((G o)^3)`` of dense ``q x q`` algebra, and no ``q x q`` matrix is stored.

:class:`Layout` records which parameters enter which group; :class:`GroupSum` is a sum of
group blocks (information, score cross-products); :class:`BlockLowRank` is a block-diagonal
plus low-rank matrix (the inverse of a :class:`GroupSum`, the sandwich covariance of the
estimates). Everything is exact algebra: the numbers equal those of the dense matrices up to
rounding.

References
----------
Golub, G. H., & Van Loan, C. F. (2013). Matrix computations (4th ed.), sections 3.2 and 4.2
(block elimination, Schur complements). Johns Hopkins University Press.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

__all__ = ["BlockLowRank", "GroupSum", "Layout", "condition_number", "condition_number_op"]

#: Up to this many parameters, condition numbers are computed from the dense matrix.
DENSE_COND_MAX = 600


@dataclass
class Layout:
    """Which of ``q`` free parameters enter which group.

    Attributes
    ----------
    q
        Number of free parameters.
    local
        Per group, the sorted 0-based indices of its parameters.
    shared
        Sorted indices of the parameters that enter two or more groups (the border).
    own
        Per group, the sorted indices of the parameters that enter that group only.
    owner, pos
        For each parameter: ``-1`` if shared, else its group (0-based); its position in
        ``shared`` or in ``own[owner]``.
    loc_sh, loc_own
        Per group, the positions within ``local[g]`` of its shared and of its own parameters.
    """

    q: int
    local: list[np.ndarray]
    shared: np.ndarray
    own: list[np.ndarray]
    owner: np.ndarray
    pos: np.ndarray
    loc_sh: list[np.ndarray] = field(default_factory=list)
    loc_own: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def from_local(cls, q: int, local: Sequence[np.ndarray]) -> Layout:
        """Build the layout from each group's parameter indices.

        Raises
        ------
        ValueError
            If an index is outside ``0..q-1`` or a parameter enters no group.
        """
        local = [np.unique(np.asarray(ix, dtype=int)) for ix in local]
        count = np.zeros(q, dtype=int)
        for ix in local:
            if ix.size and (ix[0] < 0 or ix[-1] >= q):
                raise ValueError(f"parameter indices must lie in 0..{q - 1}, got {ix.tolist()}")
            count[ix] += 1
        if np.any(count == 0):
            raise ValueError(
                f"every parameter must enter a group, got none for {np.flatnonzero(count == 0)}"
            )
        shared = np.flatnonzero(count > 1)
        owner = np.full(q, -1, dtype=int)
        pos = np.zeros(q, dtype=int)
        pos[shared] = np.arange(len(shared))
        own, loc_sh, loc_own = [], [], []
        for g, ix in enumerate(local):
            is_own = count[ix] == 1
            mine = ix[is_own]
            owner[mine] = g
            pos[mine] = np.arange(len(mine))
            own.append(mine)
            loc_own.append(np.flatnonzero(is_own))
            loc_sh.append(np.flatnonzero(~is_own))
        return cls(q, local, shared, own, owner, pos, loc_sh, loc_own)

    @classmethod
    def of(cls, spec: object) -> Layout:
        """The layout of a :class:`alliance.sem.model.ModelSpec`."""
        ngroups = spec.ngroups  # type: ignore[attr-defined]
        local = [spec.group_free(g) for g in range(1, ngroups + 1)]  # type: ignore[attr-defined]
        return cls.from_local(spec.npar, local)  # type: ignore[attr-defined]

    @property
    def ngroups(self) -> int:
        """Number of groups."""
        return len(self.local)

    @property
    def s(self) -> int:
        """Number of shared parameters."""
        return len(self.shared)


@dataclass
class GroupSum:
    """A symmetric ``q x q`` matrix ``sum_g P_g' M_g P_g + diag(extra)`` from group blocks.

    ``blocks[g]`` is the (already weighted) contribution of group ``g`` on the parameters
    ``layout.local[g]``; ``extra`` an optional diagonal added once.
    """

    layout: Layout
    blocks: list[np.ndarray]
    extra: np.ndarray | None = None

    def __post_init__(self) -> None:
        for g, (b, ix) in enumerate(zip(self.blocks, self.layout.local, strict=True)):
            if b.shape != (len(ix), len(ix)):
                raise ValueError(f"block {g} must be {len(ix)} square, got shape {b.shape}")

    @property
    def q(self) -> int:
        """Size of the matrix."""
        return self.layout.q

    def dense(self) -> np.ndarray:
        """The full ``q x q`` matrix."""
        out = np.zeros((self.q, self.q))
        for b, ix in zip(self.blocks, self.layout.local, strict=True):
            out[np.ix_(ix, ix)] += b
        if self.extra is not None:
            out[np.diag_indices(self.q)] += self.extra
        return out

    def diag(self) -> np.ndarray:
        """The diagonal."""
        out = np.zeros(self.q) if self.extra is None else np.array(self.extra, dtype=float)
        for b, ix in zip(self.blocks, self.layout.local, strict=True):
            out[ix] += np.diag(b)
        return out

    def scaled(self, c: float) -> GroupSum:
        """``c`` times the matrix."""
        extra = None if self.extra is None else c * self.extra
        return GroupSum(self.layout, [c * b for b in self.blocks], extra)

    def plus_diag(self, d: np.ndarray) -> GroupSum:
        """The matrix plus ``diag(d)``."""
        d = np.asarray(d, dtype=float)
        if d.shape != (self.q,):
            raise ValueError(f"the diagonal must have {self.q} entries, got shape {d.shape}")
        extra = d if self.extra is None else self.extra + d
        return GroupSum(self.layout, self.blocks, extra)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """The product with a vector."""
        out = np.zeros(self.q) if self.extra is None else self.extra * v
        for b, ix in zip(self.blocks, self.layout.local, strict=True):
            out[ix] += b @ v[ix]
        return out

    def matmat(self, right: np.ndarray) -> np.ndarray:
        """The product with a ``q x k`` matrix."""
        out = np.zeros_like(right, dtype=float)
        if self.extra is not None:
            out += self.extra[:, None] * right
        for b, ix in zip(self.blocks, self.layout.local, strict=True):
            out[ix] += b @ right[ix]
        return out

    def quad(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """``left' M right`` for ``q x k`` matrices (``k x k`` result)."""
        out = np.zeros((left.shape[1], right.shape[1]))
        for b, ix in zip(self.blocks, self.layout.local, strict=True):
            out += left[ix].T @ b @ right[ix]
        if self.extra is not None:
            out += left.T @ (self.extra[:, None] * right)
        return out

    def own_rows(self, g: int, right: np.ndarray) -> np.ndarray:
        """Rows ``own[g]`` of ``M right`` for a ``q x k`` matrix ``right``."""
        lay = self.layout
        b = self.blocks[g]
        out = b[lay.loc_own[g]] @ right[lay.local[g]]
        if self.extra is not None:
            own = lay.own[g]
            out = out + self.extra[own][:, None] * right[own]
        return out

    def own_block(self, g: int) -> np.ndarray:
        """The diagonal block of group ``g``'s own parameters."""
        lay = self.layout
        lo = lay.loc_own[g]
        out = self.blocks[g][np.ix_(lo, lo)]
        if self.extra is not None:
            out = out + np.diag(self.extra[lay.own[g]])
        return out

    def inverse(self) -> BlockLowRank:
        """The inverse as block-diagonal plus rank ``s`` (Schur complement of the border).

        With ``A`` the shared block, ``B_g`` the shared x own blocks and ``D_g`` the own
        blocks: ``S = A - sum_g B_g D_g^-1 B_g'``; the inverse is ``diag(0, D_g^-1) + L S^-1
        L'`` with ``L = [I; -D_g^-1 B_g']``.

        Raises
        ------
        numpy.linalg.LinAlgError
            If a block or the Schur complement is singular.
        """
        lay = self.layout
        s = lay.s
        a = np.zeros((s, s))
        if self.extra is not None:
            a[np.diag_indices(s)] += self.extra[lay.shared]
        lr = np.zeros((lay.q, s))
        lr[lay.shared, np.arange(s)] = 1.0
        dinv = []
        for g, b in enumerate(self.blocks):
            sh, lo = lay.loc_sh[g], lay.loc_own[g]
            sp = lay.pos[lay.local[g][sh]]
            a[np.ix_(sp, sp)] += b[np.ix_(sh, sh)]
            d_inv = np.linalg.inv(self.own_block(g))
            bg = np.zeros((s, len(lo)))
            bg[sp] = b[np.ix_(sh, lo)]
            w = -d_inv @ bg.T  # o_g x s
            a += bg @ w
            lr[lay.own[g]] = w
            dinv.append(d_inv)
        core = np.linalg.inv(a) if s else np.zeros((0, 0))
        return BlockLowRank(lay, dinv, lr, core)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``M^-1 b`` (raises ``LinAlgError`` if singular)."""
        return self.inverse().matvec(b)


@dataclass
class BlockLowRank:
    """A symmetric ``q x q`` matrix ``Lambda + L K L'``.

    ``Lambda`` is block diagonal with block ``own_blocks[g]`` on group ``g``'s own parameters
    (zero on the shared ones); ``L`` is ``q x r`` and ``K`` ``r x r`` symmetric.
    """

    layout: Layout
    own_blocks: list[np.ndarray]
    lr: np.ndarray
    core: np.ndarray

    @classmethod
    def from_dense(cls, layout: Layout, matrix: np.ndarray) -> BlockLowRank:
        """A dense symmetric ``q x q`` matrix in this form (``L = I``, ``K`` the matrix)."""
        q = layout.q
        matrix = np.asarray(matrix, dtype=float)
        if matrix.shape != (q, q):
            raise ValueError(f"matrix must be {q} x {q}, got shape {matrix.shape}")
        own = [np.zeros((len(ix), len(ix))) for ix in layout.own]
        return cls(layout, own, np.eye(q), matrix)

    @property
    def q(self) -> int:
        """Size of the matrix."""
        return self.layout.q

    def dense(self) -> np.ndarray:
        """The full ``q x q`` matrix."""
        out = self.lr @ self.core @ self.lr.T
        for g, blk in enumerate(self.own_blocks):
            own = self.layout.own[g]
            out[np.ix_(own, own)] += blk
        return out

    def diag(self) -> np.ndarray:
        """The diagonal."""
        out = np.einsum("ij,jk,ik->i", self.lr, self.core, self.lr)
        for g, blk in enumerate(self.own_blocks):
            out[self.layout.own[g]] += np.diag(blk)
        return out

    def scaled(self, c: float) -> BlockLowRank:
        """``c`` times the matrix."""
        return BlockLowRank(self.layout, [c * b for b in self.own_blocks], self.lr, c * self.core)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """The product with a vector."""
        out = self.lr @ (self.core @ (self.lr.T @ v))
        for g, blk in enumerate(self.own_blocks):
            own = self.layout.own[g]
            out[own] += blk @ v[own]
        return out

    def matmat(self, right: np.ndarray) -> np.ndarray:
        """The product with a ``q x k`` matrix."""
        out = self.lr @ (self.core @ (self.lr.T @ right))
        for g, blk in enumerate(self.own_blocks):
            own = self.layout.own[g]
            out[own] += blk @ right[own]
        return out

    def sub(self, idx: np.ndarray) -> np.ndarray:
        """The dense sub-matrix on the parameters ``idx``."""
        idx = np.asarray(idx, dtype=int)
        lr = self.lr[idx]
        out = lr @ self.core @ lr.T
        owners = self.layout.owner[idx]
        for g in np.unique(owners[owners >= 0]):
            sel = np.flatnonzero(owners == g)
            p = self.layout.pos[idx[sel]]
            out[np.ix_(sel, sel)] += self.own_blocks[g][np.ix_(p, p)]
        return out

    def local(self, g: int) -> np.ndarray:
        """The dense sub-matrix on group ``g``'s parameters (``layout.local[g]``)."""
        return self.sub(self.layout.local[g])

    def trace_with(self, other: GroupSum) -> float:
        """``tr(F M)`` for a :class:`GroupSum` ``M`` on the same layout."""
        total = 0.0
        for g, b in enumerate(other.blocks):
            total += float(np.sum(self.local(g) * b.T))
        if other.extra is not None:
            total += float(np.dot(self.diag(), other.extra))
        return total

    def sandwich(self, meat: GroupSum) -> BlockLowRank:
        """``F B F`` for a :class:`GroupSum` ``B`` (e.g. the robust covariance ``E^-1 B E^-1``).

        With ``F = Lambda + L K L'``: ``Lambda B Lambda`` is block diagonal, and the rest is
        ``[L T] [[K M K, K], [K, 0]] [L T]'`` with ``T = Lambda B L`` and ``M = L' B L``.
        """
        lay = self.layout
        lr, k = self.lr, self.core
        r = lr.shape[1]
        t = np.zeros_like(lr)
        blocks = []
        for g, lam in enumerate(self.own_blocks):
            t[lay.own[g]] = lam @ meat.own_rows(g, lr)
            blocks.append(lam @ meat.own_block(g) @ lam)
        m = meat.quad(lr, lr)
        kmk = k @ m @ k
        core = np.block([[kmk, k], [k, np.zeros((r, r))]])
        return BlockLowRank(lay, blocks, np.hstack([lr, t]), core)

    def trace_pair(self, y1: GroupSum, y2: GroupSum, other: BlockLowRank | None = None) -> float:
        """``tr(F Y1 G Y2)`` for :class:`GroupSum` matrices without ``extra``.

        ``G`` is ``other`` (a :class:`BlockLowRank` on the same layout), by default ``F``.
        With ``F = Lambda_F + L K L'`` and ``G = Lambda_G + M J M'``, the four terms are
        ``sum_g tr(Lambda_F,g Y1_gg Lambda_G,g Y2_gg)`` over the own blocks and traces of
        ``r x r`` products.
        """
        if y1.extra is not None or y2.extra is not None:
            raise ValueError("trace_pair needs GroupSum matrices without a diagonal extra")
        other = self if other is None else other
        lay = self.layout
        lf, kf = self.lr, self.core
        lg, kg = other.lr, other.core
        total = 0.0
        cross_fg = np.zeros((lg.shape[1], lg.shape[1]))  # M' Y2 Lambda_F Y1 M
        cross_gf = np.zeros((lf.shape[1], lf.shape[1]))  # L' Y1 Lambda_G Y2 L
        for g, (lam_f, lam_g) in enumerate(zip(self.own_blocks, other.own_blocks, strict=True)):
            lo, ix = lay.loc_own[g], lay.local[g]
            y1o, y2o = y1.blocks[g][lo], y2.blocks[g][lo]  # own rows, local columns
            total += float(np.sum((lam_f @ y1o[:, lo]) * (lam_g @ y2o[:, lo]).T))
            if lg.shape[1]:
                cross_fg += (y2o @ lg[ix]).T @ lam_f @ (y1o @ lg[ix])
            if lf.shape[1]:
                cross_gf += (y1o @ lf[ix]).T @ lam_g @ (y2o @ lf[ix])
        if lg.shape[1]:
            total += float(np.sum(kg * cross_fg.T))
        if lf.shape[1]:
            total += float(np.sum(kf * cross_gf.T))
        if lf.shape[1] and lg.shape[1]:
            a = kf @ y1.quad(lf, lg)
            b = kg @ y2.quad(lg, lf)
            total += float(np.sum(a * b.T))
        return total


def condition_number(matrix: GroupSum, inverse: BlockLowRank | None = None) -> float:
    """2-norm condition number of a symmetric :class:`GroupSum` (as ``numpy.linalg.cond``).

    Computed from the dense matrix up to :data:`DENSE_COND_MAX` parameters; above, the
    largest absolute eigenvalues of the matrix and of its inverse by Lanczos iterations
    (``scipy.sparse.linalg.eigsh``) on the block products.

    Raises
    ------
    numpy.linalg.LinAlgError
        If the inverse cannot be formed (singular).
    """
    q = matrix.q
    if q <= DENSE_COND_MAX:
        return float(np.linalg.cond(matrix.dense()))
    if inverse is None:
        inverse = matrix.inverse()
    try:
        big = _largest(matrix.matvec, q)
        small = _largest(inverse.matvec, q)
    except (ArpackNoConvergence, ArpackError):
        return float(np.linalg.cond(matrix.dense()))
    return float(big * small)


def condition_number_op(matvec: object, inverse_matvec: object, q: int) -> float:
    """2-norm condition number of a symmetric matrix given by its products and its inverse's.

    Dense (from ``q`` products with unit vectors) up to :data:`DENSE_COND_MAX`, else Lanczos
    as :func:`condition_number`.
    """
    if q <= DENSE_COND_MAX:
        dense = np.column_stack([matvec(e) for e in np.eye(q)])  # type: ignore[operator]
        return float(np.linalg.cond(dense)) if q else 1.0
    try:
        return float(_largest(matvec, q) * _largest(inverse_matvec, q))
    except (ArpackNoConvergence, ArpackError):
        dense = np.column_stack([matvec(e) for e in np.eye(q)])  # type: ignore[operator]
        return float(np.linalg.cond(dense))


def _largest(matvec: object, q: int) -> float:
    op = LinearOperator((q, q), matvec=matvec, dtype=float)  # type: ignore[arg-type]
    v0 = np.full(q, 1.0 / np.sqrt(q))
    vals = eigsh(op, k=1, which="LM", v0=v0, return_eigenvectors=False, tol=1e-8, maxiter=5000)
    return float(np.max(np.abs(vals)))
