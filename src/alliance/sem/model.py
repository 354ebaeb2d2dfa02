"""The matrix representation of a model: LISREL matrices, implied moments, Jacobian (lav_model).

The third layer of :mod:`alliance.sem`: :class:`ModelSpec` holds the parameter table
(:mod:`alliance.sem.partable`, built from the syntax of :mod:`alliance.sem.syntax`) and maps the
free-parameter vector to the all-y LISREL matrices, the model-implied moments and their
derivatives; it also evaluates the defined parameters (``:=``) and knows the bounds of the
inequality constraints. :func:`start_values` gives lavaan-like starting values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from alliance.sem.partable import (
    GROUP_EQUAL_OPTIONS,
    PARAMETERIZATIONS,
    Bound,
    Definition,
    Par,
    build_rows,
    constraints,
    independence_rows,
    normalise_partial,
)
from alliance.sem.syntax import (
    SyntaxError_,
    builtin_models,
    efa_sets,
    model_variables,
    parse_syntax,
)

__all__ = [
    "GROUP_EQUAL_OPTIONS",
    "Implied",
    "Matrices",
    "ModelSpec",
    "Par",
    "SyntaxError_",
    "builtin_models",
    "parse_syntax",
    "start_values",
]


@dataclass
class Matrices:
    """LISREL (all-y) matrices of one group.

    ``eta = alpha + B eta + zeta`` with ``cov(zeta) = psi``; ``y* = nu + lambda eta + eps``
    with ``cov(eps) = theta``; ordered indicators are cut at thresholds ``tau`` and scaled by
    ``delta`` (lavaan's delta parameterization: ``Sigma* = D (lambda A lambda' + theta) D``
    with unit diagonal for ordered indicators).
    """

    lambda_: np.ndarray
    theta: np.ndarray
    psi: np.ndarray
    beta: np.ndarray
    nu: np.ndarray
    alpha: np.ndarray
    tau: np.ndarray
    delta: np.ndarray

    def value(self, row: Par) -> float:
        """The entry of a table row of this group (free, fixed or computed)."""
        m = getattr(self, _ATTR[row.mat])
        return float(m[row.row, row.col] if m.ndim == 2 else m[row.row])


@dataclass
class Implied:
    """Model-implied moments of one group: covariance ``sigma``, mean ``mu``, thresholds ``tau``.

    For ordered indicators ``sigma`` is the implied polychoric correlation matrix (unit
    diagonal) and ``tau`` the implied standardized thresholds ``delta_i (tau_ik - mu_i)``.
    """

    sigma: np.ndarray
    mu: np.ndarray
    tau: np.ndarray


@dataclass
class ModelSpec:
    """A CFA model: variables, parameter table and the map from the free vector to matrices.

    Build one with :meth:`ModelSpec.from_syntax`. The free-parameter vector ``x`` has
    ``npar`` entries; ``x[k - 1]`` is the value of every row with ``free == k``.

    Attributes
    ----------
    syntax
        The model text.
    ov, lv
        Observed and latent variable names, in lavaan's order (first appearance).
    ordered
        Observed variables treated as ordered-categorical (thresholds, delta scaling).
    group_labels
        One label per group (``["1"]`` for one group).
    table
        The parameter table (list of :class:`Par`), group 1 rows first.
    meanstructure, std_lv
        Options used to build the table.
    threshold_index
        ``(variable, k)`` for every threshold slot, ordered by variable then ``k``.
    group_equal, group_partial
        Invariance constraints applied.
    parameterization
        Scaling of the ordered indicators' latent responses y*: ``"delta"`` (var(y*) = 1 via
        the scale factors ``~*~``; residual variances computed) or ``"theta"`` (residual
        variances are parameters, fixed to 1 unless freed; scale factors computed).
    defined
        Defined parameters (``name := expression``; lavaan's ``:=`` rows), evaluated by
        :meth:`defined_values`.
    bounds
        Simple inequality constraints (``label > value``); :meth:`bound_arrays`.
    efa
        Exploratory blocks (``efa("set")*f1 + efa("set")*f2 =~ ...``): set -> its factors.
        The table holds their unrotated solution (see :func:`alliance.sem.partable.build_rows`);
        :mod:`alliance.sem.esem` rotates it.
    correlation
        A correlation structure (lavaan's ``correlation = TRUE``): every observed variable is
        scaled as an ordered indicator without thresholds in the delta parameterization, so
        the implied variances are 1 and the residual variances are computed, not estimated.
    """

    syntax: str
    ov: list[str]
    lv: list[str]
    ordered: list[str]
    group_labels: list[str]
    table: list[Par]
    meanstructure: bool
    std_lv: bool
    threshold_index: list[tuple[str, int]] = field(default_factory=list)
    group_equal: tuple[str, ...] = ()
    group_partial: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    parameterization: str = "delta"
    defined: list[Definition] = field(default_factory=list)
    bounds: list[Bound] = field(default_factory=list)
    efa: dict[str, list[str]] = field(default_factory=dict)
    correlation: bool = False

    # ------------------------------------------------------------------ building

    @classmethod
    def from_syntax(
        cls,
        model: str,
        *,
        std_lv: bool = False,
        meanstructure: bool = False,
        ordered: Sequence[str] = (),
        n_thresholds: Mapping[str, int] | None = None,
        group_labels: Sequence[str] | None = None,
        group_equal: Sequence[str] = (),
        group_partial: Sequence[str] = (),
        orthogonal: bool = False,
        parameterization: str = "delta",
        correlation: bool = False,
    ) -> ModelSpec:
        """Build the parameter table with lavaan ``cfa()`` defaults.

        Defaults as lavaan's ``cfa()``: the first loading of each factor fixed to 1 (marker
        variable) unless ``std_lv`` (then latent variances fixed to 1 and all loadings free);
        residual variances of observed variables free; variances of latent variables free;
        covariances among exogenous latent variables free (not among first-order factors
        of a higher-order factor, nor when ``orthogonal``); with a mean structure, intercepts
        free and latent means fixed to 0 (free in groups 2+ when intercepts or thresholds
        are held equal). Ordered indicators get free thresholds, intercepts fixed to 0,
        residual variances computed (delta parameterization) and scale factors ``~*~``
        fixed to 1 (free in groups 2+ when thresholds are held equal); in the theta
        parameterization the residual variances of ordered indicators are fixed to 1 (free
        in groups 2+ when thresholds are held equal, and equal to group 1's 1 again when
        ``residuals`` are held equal too) and the scale factors are computed,
        ``1 / sqrt(var(y*))`` (lavaan 0.6-14's ``lav_partable_flat`` and
        ``setDeltaElements``).

        Parameters
        ----------
        model
            lavaan model syntax (see :func:`parse_syntax`).
        std_lv
            Identify factors by unit variance instead of a marker indicator.
        meanstructure
            Add intercepts and latent means (automatic with several groups or ordered items).
        ordered
            Ordered-categorical indicators.
        n_thresholds
            Number of thresholds (categories - 1) per ordered indicator; required for each.
        group_labels
            Labels of the groups for a multi-group model (``None``: one group).
        group_equal
            Parameter types held equal across groups (see :data:`GROUP_EQUAL_OPTIONS`).
        group_partial
            Parameters exempt from ``group_equal``, written ``"visual=~x2"`` or ``"x1~1"``.
        orthogonal
            Fix all covariances among latent variables to 0 (for bifactor models).
        parameterization
            ``"delta"`` (lavaan's default) or ``"theta"``: how the latent responses of
            ordered indicators are scaled (see :class:`ModelSpec`).
        correlation
            Fit a correlation structure (one group, no ``ordered``, delta parameterization):
            implied variances fixed at 1 by computed residual variances, no intercepts or
            thresholds (a pooled correlation matrix in MASEM stage 2: Cheung & Chan 2005).

        Returns
        -------
        ModelSpec

        Raises
        ------
        ValueError
            For syntax errors, a factor without indicators, unknown ``group_equal`` entries,
            missing threshold counts, or a name used as both observed and latent in a way
            a CFA cannot represent.
        """
        statements = parse_syntax(model)
        groups = [str(g) for g in (group_labels if group_labels is not None else ["1"])]
        if not groups:
            raise ValueError(f"group_labels must hold at least one label, got {groups}")
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
            )
        if len(set(groups)) != len(groups):
            raise ValueError(f"group labels must be unique, got {groups}")
        bad = sorted(set(group_equal) - set(GROUP_EQUAL_OPTIONS))
        if bad:
            raise ValueError(f"unknown group_equal entries {bad}; use {GROUP_EQUAL_OPTIONS}")
        ngroups = len(groups)
        ordered = list(dict.fromkeys(ordered))
        if correlation and (ordered or ngroups > 1 or parameterization != "delta"):
            raise ValueError(
                "a correlation structure has one group, no ordered items and the delta "
                f"parameterization, got ordered={ordered}, {ngroups} groups, "
                f"parameterization={parameterization!r}"
            )
        if ordered or ngroups > 1:
            meanstructure = True
        if any(s.op == "~1" for s in statements):
            meanstructure = True

        # ---- variables
        ov, lv = model_variables(statements)
        for s in statements:
            if s.op == "~" and not (s.lhs in lv and s.rhs in lv):
                raise SyntaxError_(
                    f"line {s.line}: only latent-on-latent regressions are supported in a CFA, "
                    f"got {s.lhs} ~ {s.rhs}"
                )
            if s.op == "=~" and s.rhs == s.lhs:
                raise SyntaxError_(f"line {s.line}: factor {s.lhs!r} cannot measure itself")
        unknown_ordered = sorted(set(ordered) - set(ov))
        if unknown_ordered:
            raise ValueError(f"ordered variables not in the model: {unknown_ordered}")
        n_thresholds = dict(n_thresholds or {})
        if correlation:  # scaled as ordered indicators without thresholds: unit variances
            for s in statements:
                if s.op in ("~1", "|"):
                    raise SyntaxError_(
                        f"line {s.line}: a correlation structure has no means or thresholds, "
                        f"got {s.lhs} {s.op} {s.rhs}".rstrip()
                    )
            ordered, n_thresholds, meanstructure = list(ov), dict.fromkeys(ov, 0), True
        for name in [] if correlation else ordered:
            k = n_thresholds.get(name)
            if k is None or int(k) < 1:
                raise ValueError(
                    f"ordered variable {name!r} needs n_thresholds >= 1 (categories - 1), got {k}"
                )
        for s in statements:
            if s.op == "|" and s.lhs not in ordered:
                raise ValueError(
                    f"line {s.line}: thresholds given for {s.lhs!r}, which is not in ordered"
                )
        threshold_index = [(v, k) for v in ordered for k in range(1, int(n_thresholds[v]) + 1)]

        # endogenous latent variables: indicators of another factor or regressed on others
        lv_endo = [
            name
            for name in lv
            if any(s.op == "=~" and s.rhs == name for s in statements)
            or any(s.op == "~" and s.lhs == name for s in statements)
        ]
        lv_exo = [name for name in lv if name not in lv_endo]

        spec = cls(
            syntax=model,
            ov=ov,
            lv=lv,
            ordered=ordered,
            group_labels=groups,
            table=[],
            meanstructure=meanstructure,
            std_lv=std_lv,
            threshold_index=threshold_index,
            group_equal=tuple(group_equal),
            group_partial=tuple(normalise_partial(p) for p in group_partial),
            parameterization=parameterization,
            efa=efa_sets(statements),
            correlation=correlation,
        )
        spec.table = build_rows(spec, statements, lv_exo, orthogonal, std_lv)
        spec.defined, spec.bounds = constraints(statements, spec.table)
        spec._check()
        return spec

    @classmethod
    def independence(
        cls,
        ov: Sequence[str],
        group_labels: Sequence[str] | None = None,
        meanstructure: bool = False,
    ) -> ModelSpec:
        """The baseline (independence) model: free variances (and means), no covariances.

        Used for the baseline chi-square behind CFI/TLI (lavaan's ``lav_object_independence``).
        """
        groups = [str(g) for g in (group_labels if group_labels is not None else ["1"])]
        return cls(
            syntax="",
            ov=list(ov),
            lv=[],
            ordered=[],
            group_labels=groups,
            table=independence_rows(ov, len(groups), meanstructure),
            meanstructure=meanstructure,
            std_lv=False,
        )

    def _check(self) -> None:
        for name in self.lv:
            if not any(r.op == "=~" and r.lhs == name for r in self.table):
                raise ValueError(f"factor {name!r} has no indicators")

    # ------------------------------------------------------------------ basic properties

    @property
    def ngroups(self) -> int:
        """Number of groups."""
        return len(self.group_labels)

    def _cache(self) -> dict[str, Any]:
        """Cached derived structures; rebuilt when ``table`` is replaced or grows.

        Edits of rows in place (``free`` indices) need :meth:`invalidate`.
        """
        key = (id(self.table), len(self.table))
        cache = self.__dict__.get("_derived")
        if cache is None or cache["key"] != key:
            cache = {"key": key}
            object.__setattr__(self, "_derived", cache)
        return cache

    @property
    def npar(self) -> int:
        """Number of free parameters (after equality constraints)."""
        cache = self._cache()
        if "npar" not in cache:
            cache["npar"] = max((r.free for r in self.table), default=0)
        return cache["npar"]

    @property
    def p(self) -> int:
        """Number of observed variables."""
        return len(self.ov)

    @property
    def m(self) -> int:
        """Number of latent variables."""
        return len(self.lv)

    def rows(self, group: int | None = None, op: str | None = None) -> list[Par]:
        """Rows of the table, optionally of one (1-based) group and/or one operator."""
        if group is None:
            return [r for r in self.table if op is None or r.op == op]
        cache = self._cache()
        by_group = cache.get("rows")
        if by_group is None:
            by_group = {}
            for r in self.table:
                by_group.setdefault(r.group, []).append(r)
            cache["rows"] = by_group
        rows = by_group.get(group, [])
        return list(rows) if op is None else [r for r in rows if r.op == op]

    def find(self, lhs: str, op: str, rhs: str = "", group: int = 1) -> Par:
        """The row ``lhs op rhs`` of ``group``; ``KeyError`` if absent (``~~`` is symmetric)."""
        for r in self.table:
            if r.group == group and r.op == op:
                if (r.lhs, r.rhs) == (lhs, rhs) or (op == "~~" and (r.rhs, r.lhs) == (lhs, rhs)):
                    return r
        raise KeyError(f"no parameter {lhs}{op}{rhs} in group {group}")

    def indicators(self, factor: str) -> list[str]:
        """Observed indicators of a factor (group 1), in model order."""
        return [r.rhs for r in self.rows(1, "=~") if r.lhs == factor and r.rhs in self.ov]

    def first_order(self) -> list[str]:
        """Latent variables measured by observed indicators."""
        return [f for f in self.lv if self.indicators(f)]

    def free_rows(self) -> list[Par]:
        """The first row of each free parameter, in order of the free index."""
        seen: dict[int, Par] = {}
        for r in self.table:
            if r.free and r.free not in seen:
                seen[r.free] = r
        return [seen[k] for k in sorted(seen)]

    def copy(self) -> ModelSpec:
        """A deep copy (rows are mutable)."""
        return replace(
            self,
            table=[replace(r) for r in self.table],
            notes=list(self.notes),
            defined=list(self.defined),
            bounds=list(self.bounds),
        )

    def row_values(self, x: np.ndarray) -> np.ndarray:
        """The value of every table row at ``x``: free, fixed and computed rows (``est``)."""
        x = np.asarray(x, dtype=float)
        out = np.zeros(len(self.table))
        mats = {g: self.matrices(x, g) for g in range(1, self.ngroups + 1)}
        for k, r in enumerate(self.table):
            out[k] = x[r.free - 1] if r.free else mats[r.group].value(r)
        return out

    def with_values(self, x: np.ndarray) -> ModelSpec:
        """A copy whose rows hold their values at ``x`` (free, fixed and computed rows)."""
        out = self.copy()
        for r, v in zip(out.table, self.row_values(x), strict=True):
            r.value = float(v)
        return out

    def x_from_table(self) -> np.ndarray:
        """The free vector from the rows' values (starting values where set, else nan)."""
        x = np.full(self.npar, np.nan)
        for r in self.table:
            if r.free and np.isnan(x[r.free - 1]):
                x[r.free - 1] = r.value
        return x

    # ------------------------------------------------------------------ constraints

    def label_values(self, x: np.ndarray) -> dict[str, float]:
        """The value of every labelled parameter at ``x`` (lavaan's labels, ``.pN.`` too)."""
        x = np.asarray(x, dtype=float)
        out: dict[str, float] = {}
        for r in self.table:
            if r.label and r.label not in out:
                out[r.label] = float(x[r.free - 1]) if r.free else float(r.value)
        return out

    def defined_values(self, x: np.ndarray) -> np.ndarray:
        """The defined parameters (``:=``) at ``x``, in the order written."""
        values = self.label_values(x)
        out = np.zeros(len(self.defined))
        for k, d in enumerate(self.defined):
            out[k] = values[d.name] = d.expression(values)
        return out

    def bound_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the free vector from the inequality constraints."""
        lower = np.full(self.npar, -np.inf)
        upper = np.full(self.npar, np.inf)
        index = {r.label: r.free - 1 for r in self.table if r.label and r.free}
        for b in self.bounds:
            k = index[b.label]
            if b.op == ">":
                lower[k] = max(lower[k], b.value)
            else:
                upper[k] = min(upper[k], b.value)
        return lower, upper

    # ------------------------------------------------------------------ matrices

    def _mapping(self) -> dict[int, dict[str, tuple[np.ndarray, ...]]]:
        """Per group and matrix: arrays (rows, cols, free index - 1 or -1, fixed value)."""
        cache = getattr(self, "_map_cache", None)
        if cache is not None:
            return cache
        out: dict[int, dict[str, tuple[np.ndarray, ...]]] = {}
        for g in range(1, self.ngroups + 1):
            per: dict[str, list[list[float]]] = {}
            for r in self.rows(g):
                if r.computed:
                    continue
                entries = [(r.row, r.col)]
                if r.mat in ("theta", "psi") and r.row != r.col:
                    entries.append((r.col, r.row))
                for i, j in entries:
                    per.setdefault(r.mat, []).append([i, j, r.free - 1, r.value])
            out[g] = {
                k: (
                    np.array([e[0] for e in v], dtype=int),
                    np.array([e[1] for e in v], dtype=int),
                    np.array([e[2] for e in v], dtype=int),
                    np.array([e[3] for e in v], dtype=float),
                )
                for k, v in per.items()
            }
        object.__setattr__(self, "_map_cache", out)
        return out

    def invalidate(self) -> None:
        """Forget cached index maps; call after editing ``table`` in place."""
        for name in ("_map_cache", "_derived"):
            if name in self.__dict__:
                object.__delattr__(self, name)

    def group_free(self, group: int) -> np.ndarray:
        """0-based indices of the free parameters that enter the matrices of ``group``.

        Sorted. In a multi-group model the implied moments of group ``g`` depend only on
        these, so its Jacobian, information and score blocks are ``len(group_free(g))``
        square (see :mod:`alliance.sem.blocks`).
        """
        return self._local_mapping()[group][0]

    def _local_mapping(self) -> dict[int, tuple[np.ndarray, dict[str, tuple[np.ndarray, ...]]]]:
        """Per group: its free indices and the :meth:`_mapping` with local (0-based) indices."""
        cache = self._cache()
        if "local" not in cache:
            out = {}
            for g, per in self._mapping().items():
                used = [fi[fi >= 0] for (_ri, _ci, fi, _val) in per.values()]
                idx = np.unique(np.concatenate(used)) if used else np.zeros(0, dtype=int)
                local = {}
                for name, (ri, ci, fi, val) in per.items():
                    pos = np.searchsorted(idx, np.maximum(fi, 0))
                    local[name] = (ri, ci, np.where(fi >= 0, pos, -1), val)
                out[g] = (idx.astype(int), local)
            cache["local"] = out
        return cache["local"]

    def matrices(self, x: np.ndarray, group: int = 1) -> Matrices:
        """LISREL matrices of ``group`` (1-based) at the free vector ``x``.

        Residual variances of ordered indicators are filled in as
        ``1 / delta_i**2 - (lambda A lambda')_ii`` (delta parameterization), or their scale
        factors as ``delta_i = 1 / sqrt((lambda A lambda')_ii + theta_ii)`` (theta
        parameterization).
        """
        x = np.asarray(x, dtype=float)
        p, m, nt = self.p, self.m, len(self.threshold_index)
        shapes = {
            "lambda": (p, m),
            "theta": (p, p),
            "psi": (m, m),
            "beta": (m, m),
            "nu": (p, 1),
            "alpha": (m, 1),
            "tau": (nt, 1),
            "delta": (p, 1),
        }
        mats = {k: np.zeros(s) for k, s in shapes.items()}
        mats["delta"][:, 0] = 1.0
        for name, (ri, ci, fi, val) in self._mapping()[group].items():
            vals = np.where(fi >= 0, x[np.maximum(fi, 0)] if len(x) else 0.0, val)
            mats[name][ri, ci] = vals
        out = Matrices(
            lambda_=mats["lambda"],
            theta=mats["theta"],
            psi=mats["psi"],
            beta=mats["beta"],
            nu=mats["nu"][:, 0],
            alpha=mats["alpha"][:, 0],
            tau=mats["tau"][:, 0],
            delta=mats["delta"][:, 0],
        )
        if self.ordered:
            ib = np.linalg.inv(np.eye(m) - out.beta)
            c = out.lambda_ @ ib
            common = np.einsum("ij,jk,ik->i", c, out.psi, c)
            for name in self.ordered:
                i = self.ov.index(name)
                if self.parameterization == "theta":
                    total = common[i] + out.theta[i, i]
                    out.delta[i] = 1.0 / np.sqrt(total) if total > 0 else np.nan
                else:
                    out.theta[i, i] = 1.0 / out.delta[i] ** 2 - common[i]
        return out

    def implied(self, x: np.ndarray, group: int | None = None) -> list[Implied]:
        """Model-implied moments per group (or a 1-list for one ``group``).

        ``Sigma = D (Lambda (I-B)^-1 Psi (I-B)^-T Lambda' + Theta) D`` (``D`` = diag(delta),
        the identity without ordered indicators), ``mu = nu + Lambda (I-B)^-1 alpha``,
        implied thresholds ``delta_i (tau_ik - mu_i)``.
        """
        groups = range(1, self.ngroups + 1) if group is None else [group]
        out = []
        for g in groups:
            mt = self.matrices(x, g)
            ib = np.linalg.inv(np.eye(self.m) - mt.beta)
            c = mt.lambda_ @ ib
            sigma = c @ mt.psi @ c.T + mt.theta
            mu = mt.nu + c @ mt.alpha
            if self.ordered:
                d = mt.delta
                sigma = sigma * np.outer(d, d)
                tau = np.array(
                    [
                        d[self.ov.index(v)] * (mt.tau[t] - mu[self.ov.index(v)])
                        for t, (v, _) in enumerate(self.threshold_index)
                    ]
                )
            else:
                tau = np.zeros(0)
            sigma = 0.5 * (sigma + sigma.T)
            out.append(Implied(sigma=sigma, mu=mu, tau=tau))
        return out

    def jacobian(
        self, x: np.ndarray, group: int = 1, local: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Analytic derivatives of the implied moments of ``group`` by the free parameters.

        Parameters
        ----------
        x
            The free vector.
        group
            1-based group.
        local
            Return only the rows of the parameters that enter ``group``
            (:meth:`group_free` order) instead of all ``npar``; the other rows are zero.

        Returns
        -------
        dsigma : ndarray, shape (npar, p, p)
            ``d Sigma / d x_k`` (symmetric slices).
        dmu : ndarray, shape (npar, p)
            ``d mu / d x_k``.
        dtau : ndarray, shape (npar, n_thresholds)
            ``d tau* / d x_k`` of the implied standardized thresholds (ordered models).

        Notes
        -----
        With ``A = (I-B)^-1 Psi (I-B)^-T`` and ``C = Lambda (I-B)^-1``:
        ``dSigma/dLambda_ij = e_i (A Lambda')_j. + transpose``,
        ``dSigma/dPsi_ij = C_.i C_.j'`` (+ the mirrored entry), ``dSigma/dTheta_ij = E_ij``,
        ``dSigma/dB_ij = C_.i ((I-B)^-1 Psi C')_j. + transpose``,
        ``dmu/dnu_i = e_i``, ``dmu/dalpha_i = C_.i``, ``dmu/dLambda_ij = e_i ((I-B)^-1 alpha)_j``,
        ``dmu/dB_ij = C_.i ((I-B)^-1 alpha)_j`` (e.g. Bollen 1989, ch. 8; Neudecker & Satorra
        1991). Ordered indicators: the unscaled matrix is scaled by ``D`` and its diagonal fixed
        at 1 (the residual variance absorbs it); in the theta parameterization ``D`` depends on
        the parameters, ``d delta_i = -delta_i**3 dSigma_ii / 2``.
        """
        x = np.asarray(x, dtype=float)
        p, m = self.p, self.m
        if local:
            idx, mapping = self._local_mapping()[group]
            q = len(idx)
        else:
            q, mapping = self.npar, self._mapping()[group]
        mt = self.matrices(x, group)
        ib = np.linalg.inv(np.eye(m) - mt.beta)
        c = mt.lambda_ @ ib
        a = ib @ mt.psi @ ib.T
        al = a @ mt.lambda_.T  # m x p
        ipc = ib @ mt.psi @ c.T  # m x p
        iba = ib @ mt.alpha  # m
        dsig = np.zeros((q, p, p))
        dmu = np.zeros((q, p))
        ddelta = np.zeros((q, p))
        dtau_raw = np.zeros((q, len(self.threshold_index)))
        for name, (ri, ci, fi, _) in mapping.items():
            for i, j, k in zip(ri, ci, fi, strict=True):
                if k < 0:
                    continue
                if name == "lambda":
                    dsig[k, i, :] += al[j]
                    dsig[k, :, i] += al[j]
                    dmu[k, i] += iba[j]
                elif name == "psi":
                    dsig[k] += np.outer(c[:, i], c[:, j])
                elif name == "theta":
                    dsig[k, i, j] += 1.0
                elif name == "beta":
                    o = np.outer(c[:, i], ipc[j])
                    dsig[k] += o + o.T
                    dmu[k] += c[:, i] * iba[j]
                elif name == "nu":
                    dmu[k, i] += 1.0
                elif name == "alpha":
                    dmu[k] += c[:, i]
                elif name == "delta":
                    ddelta[k, i] += 1.0
                elif name == "tau":
                    dtau_raw[k, i] += 1.0
        if not self.ordered:
            return dsig, dmu, np.zeros((q, 0))
        d = mt.delta
        sigma0 = c @ mt.psi @ c.T + mt.theta
        ordered_idx = [self.ov.index(v) for v in self.ordered]
        if self.parameterization == "theta":
            for i in ordered_idx:
                ddelta[:, i] = -0.5 * d[i] ** 3 * dsig[:, i, i]
        dd = np.outer(d, d)
        out = dsig * dd[None]
        # delta derivatives: d(d_i d_j s_ij)/dd_i = d_j s_ij (off-diagonal)
        out += ddelta[:, :, None] * (sigma0 * d[None, :])[None]
        out += ddelta[:, None, :] * (sigma0 * d[:, None])[None]
        for i in ordered_idx:
            out[:, i, i] = 0.0
        mu = mt.nu + c @ mt.alpha
        dtau = np.zeros((q, len(self.threshold_index)))
        for t, (v, _) in enumerate(self.threshold_index):
            i = self.ov.index(v)
            dtau[:, t] = d[i] * (dtau_raw[:, t] - dmu[:, i]) + ddelta[:, i] * (mt.tau[t] - mu[i])
        return out, dmu, dtau

    def chain(
        self,
        x: np.ndarray,
        group: int,
        g_sigma: np.ndarray,
        g_mu: np.ndarray | None = None,
        local: bool = False,
    ) -> np.ndarray:
        """Gradient by ``x`` of a function of the implied moments of ``group``, by the chain rule.

        Parameters
        ----------
        x
            The free vector.
        group
            1-based group.
        g_sigma
            ``dF / dSigma_ij`` treating the p x p entries as independent (e.g.
            ``Sigma^-1 - Sigma^-1 S Sigma^-1`` for the ML discrepancy).
        g_mu
            ``dF / dmu`` (or None).
        local
            Return only the entries of the parameters of ``group`` (:meth:`group_free`
            order); the others are zero.

        Returns
        -------
        ndarray, shape (npar,) or (len(group_free(group)),)

        Notes
        -----
        Matrix derivatives (continuous indicators): ``dF/dLambda = 2 G Lambda A +
        g_mu ((I-B)^-1 alpha)'``, ``dF/dPsi = C' G C``, ``dF/dTheta = G``,
        ``dF/dB = 2 C' G C Psi (I-B)^-T + C' g_mu ((I-B)^-1 alpha)'``, ``dF/dnu = g_mu``,
        ``dF/dalpha = C' g_mu``. Models with ordered indicators use :meth:`jacobian`.
        """
        x = np.asarray(x, dtype=float)
        if local:
            idx, mapping = self._local_mapping()[group]
            q = len(idx)
        else:
            q, mapping = self.npar, self._mapping()[group]
        if self.ordered:
            dsig, dmu, _ = self.jacobian(x, group, local=local)
            out = np.einsum("kij,ij->k", dsig, g_sigma)
            if g_mu is not None:
                out += dmu @ g_mu
            return out
        mt = self.matrices(x, group)
        ib = np.linalg.inv(np.eye(self.m) - mt.beta)
        c = mt.lambda_ @ ib
        gcg = c.T @ g_sigma @ c
        grads = {
            "lambda": 2.0 * g_sigma @ c @ mt.psi @ ib.T,
            "psi": gcg,
            "theta": g_sigma,
            "beta": 2.0 * gcg @ mt.psi @ ib.T,
        }
        if g_mu is not None:
            iba = ib @ mt.alpha
            ctg = c.T @ g_mu
            grads["lambda"] = grads["lambda"] + np.outer(g_mu, iba)
            grads["beta"] = grads["beta"] + np.outer(ctg, iba)
            grads["nu"] = g_mu[:, None]
            grads["alpha"] = ctg[:, None]
        out = np.zeros(q)
        for name, (ri, ci, fi, _) in mapping.items():
            if name not in grads:
                continue
            keep = fi >= 0
            if keep.any():
                np.add.at(out, fi[keep], grads[name][ri[keep], ci[keep]])
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """The table as a list of dicts (lavaan ``parTable`` columns)."""
        return [
            {
                "id": r.id,
                "lhs": r.lhs,
                "op": r.op,
                "rhs": r.rhs,
                "group": r.group,
                "free": r.free,
                "value": r.value,
                "label": r.label,
                "user": r.user,
            }
            for r in self.table
        ]


_ATTR = {
    "lambda": "lambda_",
    "theta": "theta",
    "psi": "psi",
    "beta": "beta",
    "nu": "nu",
    "alpha": "alpha",
    "tau": "tau",
    "delta": "delta",
}


# --------------------------------------------------------------------------- starting values


# --------------------------------------------------------------------------- starting values


def start_values(
    spec: ModelSpec,
    cov: Sequence[np.ndarray],
    mean: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Starting values in the spirit of lavaan's ``start = "simple"``/default.

    Residual variances: half the observed variance; loadings: 1 for markers, otherwise the
    ratio of an indicator's covariance with the factor's marker to the marker's
    covariance with the other indicators (a Fabin-like instrumental estimate, falling back
    to 1 when undefined); factor variances: 0.05 plus the mean covariance of the marker with
    the other indicators; covariances, regressions and means 0; intercepts the observed
    means; thresholds are not set here (the ordinal estimator sets them).

    Parameters
    ----------
    spec
        The model.
    cov, mean
        Sample covariance matrix (and mean vector) per group, in ``spec.ov`` order.

    Returns
    -------
    ndarray
        The free vector ``x0`` (rows with a user ``start()`` or a start already in ``value``
        keep it).
    """
    x = np.full(spec.npar, np.nan)
    for g in range(1, spec.ngroups + 1):
        s = np.asarray(cov[g - 1], dtype=float)
        mu = None if mean is None else np.asarray(mean[g - 1], dtype=float)
        oi = {v: i for i, v in enumerate(spec.ov)}
        loads: dict[tuple[str, str], float] = {}
        psi_start: dict[str, float] = {}
        for f in spec.lv:
            inds = [r.rhs for r in spec.rows(g, "=~") if r.lhs == f and r.rhs in oi]
            if not inds:
                psi_start[f] = 0.05
                continue
            marker = inds[0]
            mi = oi[marker]
            others = [oi[v] for v in inds[1:]]
            for v in inds[1:]:
                vi = oi[v]
                rest = [o for o in others if o != vi]
                if rest:
                    num = np.mean([s[vi, o] for o in rest])
                    den = np.mean([s[mi, o] for o in rest])
                    lam = num / den if abs(den) > 1e-8 else 1.0
                else:
                    lam = s[vi, mi] / s[mi, mi] if s[mi, mi] > 0 else 1.0
                loads[(f, v)] = float(np.clip(lam, -5.0, 5.0)) if np.isfinite(lam) else 1.0
            cm = np.mean([s[mi, o] for o in others]) if others else 0.5 * s[mi, mi]
            lam2 = loads.get((f, inds[1]), 1.0) if others else 1.0  # one indicator: no 2nd
            psi_start[f] = float(max(cm / max(lam2, 1e-3), 0.05))
            psi_start[f] = min(psi_start[f], max(s[mi, mi], 0.05))
        for r in spec.rows(g):
            if not r.free or not np.isnan(x[r.free - 1]):
                continue
            if not np.isnan(r.start):
                x[r.free - 1] = r.start
                continue
            v = 0.0
            if r.op == "=~":
                if spec.std_lv and r.rhs in oi:
                    v = float(np.sqrt(max(0.5 * s[oi[r.rhs], oi[r.rhs]], 1e-4)))
                else:
                    v = loads.get((r.lhs, r.rhs), 1.0)
            elif r.op == "~~" and r.lhs == r.rhs:
                if r.lhs in oi:
                    if r.lhs not in spec.ordered:
                        v = 0.5 * s[oi[r.lhs], oi[r.lhs]]
                    else:
                        v = 1.0 if spec.parameterization == "theta" else 0.5
                else:
                    v = psi_start.get(r.lhs, 0.05)
            elif r.op == "~1" and r.lhs in oi and mu is not None:
                v = float(mu[oi[r.lhs]])
            elif r.op == "~*~":
                v = 1.0
            x[r.free - 1] = v
        for factors in spec.efa.values():
            _efa_start(spec, x, g, factors, s)
    return np.nan_to_num(x, nan=0.0)


def _efa_start(spec: ModelSpec, x: np.ndarray, g: int, factors: list[str], s: np.ndarray) -> None:
    """Starting values of an exploratory block: principal axes turned into the echelon pattern.

    The loadings of the block's ``m`` factors start at the first ``m`` principal axes of the
    sample covariance of its items (eigenvalues less the mean of the others), rotated so that
    the first ``m`` items' rows are lower triangular (factor ``k`` loads 0 on the first ``k``
    items, the fixed zeros of the unrotated solution); residual variances of continuous items
    at the variance left, at least a tenth of the item's variance.
    """
    loadings = [r for r in spec.rows(g, "=~") if r.lhs in factors]
    items = list(dict.fromkeys(r.rhs for r in loadings if r.rhs in spec.ov))
    m = len(factors)
    if len(items) < m:
        return
    idx = [spec.ov.index(v) for v in items]
    sub = s[np.ix_(idx, idx)]
    values, vectors = np.linalg.eigh(0.5 * (sub + sub.T))
    values, vectors = values[::-1], vectors[:, ::-1]
    rest = float(np.mean(values[m:])) if len(items) > m else 0.0
    floor = 1e-3 * max(float(np.trace(sub)) / len(items), 1e-8)
    a = vectors[:, :m] * np.sqrt(np.maximum(values[:m] - rest, floor))
    q, r = np.linalg.qr(a[:m].T)
    a = a @ q
    a = a * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]
    pos = {v: i for i, v in enumerate(items)}
    for row in loadings:
        if row.free and row.rhs in pos and np.isnan(row.start):
            x[row.free - 1] = a[pos[row.rhs], factors.index(row.lhs)]
    for row in spec.rows(g, "~~"):
        if row.free and row.lhs == row.rhs and row.lhs in pos and row.lhs not in spec.ordered:
            i = pos[row.lhs]
            x[row.free - 1] = max(sub[i, i] - float(a[i] @ a[i]), 0.1 * sub[i, i])
