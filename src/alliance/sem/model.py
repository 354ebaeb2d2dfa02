"""lavaan model syntax, parameter tables, LISREL matrices, implied moments and their Jacobian."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np

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

#: Values accepted in ``group_equal`` (lavaan's ``group.equal``).
#: How the latent responses of ordered indicators are scaled (lavaan's ``parameterization``).
PARAMETERIZATIONS = ("delta", "theta")

GROUP_EQUAL_OPTIONS = (
    "loadings",
    "intercepts",
    "thresholds",
    "residuals",
    "residual.covariances",
    "lv.variances",
    "lv.covariances",
    "means",
    "regressions",
)

_OPERATORS = ("=~", "~~", "~*~", "==", "|", "~")
_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


class SyntaxError_(ValueError):  # noqa: N801 - avoid shadowing the builtin SyntaxError
    """A lavaan model string that cannot be parsed (a :class:`ValueError`)."""


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Modifier:
    """What ``value*name`` put in front of a right-hand-side term.

    ``fixed`` holds a number (fixed value), ``None`` (no fixed value) or ``nan`` (``NA``: free),
    one entry per group when given with ``c(...)`` (else a 1-tuple broadcast to all groups);
    ``label`` likewise; ``start`` holds ``start(v)`` values.
    """

    fixed: tuple[float | None, ...] = (None,)
    label: tuple[str, ...] = ("",)
    start: tuple[float | None, ...] = (None,)


@dataclass(frozen=True)
class Statement:
    """One parsed formula: ``lhs op rhs`` with the modifier of that term."""

    lhs: str
    op: str
    rhs: str
    modifier: Modifier = Modifier()
    line: int = 0


def _strip_comments(text: str) -> str:
    out = []
    for line in text.splitlines():
        cut = len(line)
        for ch in ("#", "!"):
            pos = line.find(ch)
            if pos >= 0:
                cut = min(cut, pos)
        out.append(line[:cut])
    return "\n".join(out)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join physical lines into formulas (a line ending in an operator or ``+`` continues)."""
    pieces: list[tuple[int, str]] = []
    for number, raw in enumerate(_strip_comments(text).splitlines(), start=1):
        for part in raw.split(";"):
            part = part.strip()
            if part:
                pieces.append((number, part))
    joined: list[tuple[int, str]] = []
    for number, part in pieces:
        if joined:
            prev_no, prev = joined[-1]
            ends_open = prev.endswith(("+", "*", "=~", "~~", "~", ",", "("))
            starts_cont = part.startswith(("+", "*"))
            no_operator = not any(op in part for op in ("=~", "~", "==", "|", ":="))
            if ends_open or starts_cont or no_operator:
                joined[-1] = (prev_no, f"{prev} {part}")
                continue
        joined.append((number, part))
    return joined


def _parse_value(token: str, line: int) -> tuple[str, Any]:
    """Classify a single modifier token: ('fixed', float|nan) or ('label', str)."""
    token = token.strip()
    if token.upper() == "NA":
        return "fixed", float("nan")
    try:
        return "fixed", float(token)
    except ValueError:
        pass
    if re.fullmatch(r"[\"']?" + _NAME + r"[\"']?", token):
        return "label", token.strip("\"'")
    raise SyntaxError_(f"line {line}: cannot read modifier {token!r}")


def _split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _parse_modifier(chunks: list[str], line: int) -> Modifier:
    fixed: tuple[float | None, ...] = (None,)
    label: tuple[str, ...] = ("",)
    start: tuple[float | None, ...] = (None,)
    for chunk in chunks:
        chunk = chunk.strip()
        m = re.fullmatch(r"(start|label|equal)\((.*)\)", chunk)
        kind = m.group(1) if m else None
        inner = m.group(2) if m else chunk
        cm = re.fullmatch(r"c\((.*)\)", inner.strip())
        tokens = [t for t in (cm.group(1) if cm else inner).split(",")]
        if not tokens or any(not t.strip() for t in tokens):
            raise SyntaxError_(f"line {line}: empty modifier in {chunk!r}")
        parsed = [_parse_value(t, line) for t in tokens]
        if kind == "start":
            if any(k != "fixed" for k, _ in parsed):
                raise SyntaxError_(f"line {line}: start() needs numbers, got {chunk!r}")
            start = tuple(None if np.isnan(v) else float(v) for _, v in parsed)
        elif kind in ("label", "equal"):
            label = tuple(str(v) for _, v in parsed)
        elif all(k == "fixed" for k, _ in parsed):
            fixed = tuple(float(v) for _, v in parsed)
        elif all(k == "label" for k, _ in parsed):
            label = tuple(str(v) for _, v in parsed)
        else:
            raise SyntaxError_(f"line {line}: mixed numbers and labels in {chunk!r}")
    return Modifier(fixed=fixed, label=label, start=start)


def parse_syntax(model: str) -> list[Statement]:
    """Parse lavaan model syntax into statements.

    Supported: ``=~`` (loadings; a latent variable on the right makes a higher-order factor),
    ``~~`` (variances and covariances, including correlated residuals), ``~`` (latent
    regressions) and ``~ 1`` (intercepts/means), ``|`` (thresholds ``x | t1 + t2``), ``==``
    (equality of two labels), modifiers ``1*x`` (fixed), ``NA*x`` (free), ``a*x`` (label),
    ``start(.5)*x``, ``c(a, b)*x`` (one per group), several modifiers ``NA*a*x``; ``#``/``!``
    comments; ``;`` separators; formulas continued over lines.

    Parameters
    ----------
    model
        The model text.

    Returns
    -------
    list of Statement
        One per term, in the order written.

    Raises
    ------
    ValueError
        (:class:`SyntaxError_`) on anything it cannot read, naming the line.

    References
    ----------
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02
    """
    if not isinstance(model, str):
        raise SyntaxError_(f"model syntax must be a string, got {type(model).__name__}")
    statements: list[Statement] = []
    for line, text in _logical_lines(model):
        if ":=" in text or "<" in text or ">" in text:
            raise SyntaxError_(f"line {line}: operator not supported in CFA models: {text!r}")
        op = next((o for o in _OPERATORS if o in text), None)
        if op is None:
            raise SyntaxError_(f"line {line}: no operator (=~, ~~, ~, |, ==) in {text!r}")
        lhs, rhs_text = (s.strip() for s in text.split(op, 1))
        if not re.fullmatch(_NAME, lhs):
            raise SyntaxError_(f"line {line}: invalid left-hand side {lhs!r} in {text!r}")
        if op == "==":
            if not re.fullmatch(_NAME, rhs_text):
                raise SyntaxError_(f"line {line}: '==' needs two labels, got {text!r}")
            statements.append(Statement(lhs, "==", rhs_text, Modifier(), line))
            continue
        if not rhs_text:
            raise SyntaxError_(f"line {line}: nothing on the right of {op!r} in {text!r}")
        for term in _split_top(rhs_text, "+"):
            term = term.strip()
            if not term:
                raise SyntaxError_(f"line {line}: empty term in {text!r}")
            chunks = _split_top(term, "*")
            name = chunks[-1].strip()
            modifier = _parse_modifier(chunks[:-1], line) if len(chunks) > 1 else Modifier()
            if op == "~" and name == "1":
                statements.append(Statement(lhs, "~1", "", modifier, line))
                continue
            if not re.fullmatch(_NAME, name):
                raise SyntaxError_(f"line {line}: invalid variable name {name!r} in {text!r}")
            if op == "|" and not re.fullmatch(r"t[0-9]+", name):
                raise SyntaxError_(f"line {line}: thresholds are named t1, t2, ..., got {name!r}")
            statements.append(Statement(lhs, op, name, modifier, line))
    if not statements:
        raise SyntaxError_("the model syntax holds no formulas")
    return statements


# --------------------------------------------------------------------------- parameter table


@dataclass
class Par:
    """One row of the parameter table (lavaan's ``parTable``).

    Attributes
    ----------
    id
        Row number (1-based, lavaan's ``id``).
    lhs, op, rhs
        The parameter, e.g. ``("visual", "=~", "x2")``; intercepts are ``(x1, "~1", "")``,
        thresholds ``(x1, "|", "t1")``, ordinal scale factors ``(x1, "~*~", x1)``.
    group
        1-based group number (lavaan's ``group``/``block``).
    free
        0 if fixed (or computed), else the 1-based index of the parameter in the free vector
        ``x``; rows constrained equal (same label) share one index.
    value
        The fixed value (for fixed rows) or the starting value (free rows; ``nan`` = not set).
    label
        User label, or lavaan's ``.pN.`` label made for ``group_equal`` constraints.
    user
        1 if written in the syntax, 0 if added by the defaults.
    mat, row, col
        Location in the LISREL matrices: ``lambda`` (p x m), ``theta`` (p x p), ``psi``
        (m x m), ``beta`` (m x m), ``nu`` (p), ``alpha`` (m), ``tau`` (thresholds, in
        ``ModelSpec.threshold_index`` order), ``delta`` (p, ordinal scale factors).
    computed
        True for rows whose value follows from others (residual variances of ordered
        indicators in the delta parameterization).
    """

    id: int
    lhs: str
    op: str
    rhs: str
    group: int
    free: int
    value: float
    label: str = ""
    user: int = 0
    mat: str = ""
    row: int = 0
    col: int = 0
    computed: bool = False
    start: float = float("nan")

    def key(self) -> tuple[str, str, str, int]:
        """``(lhs, op, rhs, group)``: the identity of the row."""
        return (self.lhs, self.op, self.rhs, self.group)

    def name(self) -> str:
        """Lavaan's way of writing the row, e.g. ``"visual=~x2"``."""
        return f"{self.lhs}{self.op}{self.rhs}"


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
        if ordered or ngroups > 1:
            meanstructure = True
        if any(s.op == "~1" for s in statements):
            meanstructure = True

        # ---- variables
        lv: list[str] = []
        for s in statements:
            if s.op == "=~" and s.lhs not in lv:
                lv.append(s.lhs)
        if not lv:
            raise SyntaxError_("a CFA model needs at least one factor defined with '=~'")
        ov: list[str] = []

        def add_ov(name: str) -> None:
            if name not in lv and name not in ov:
                ov.append(name)

        for s in statements:
            if s.op == "=~":
                add_ov(s.rhs)
        for s in statements:
            if s.op in ("~~", "~"):
                add_ov(s.lhs)
                add_ov(s.rhs)
            elif s.op in ("~1", "|", "~*~"):
                add_ov(s.lhs)
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
        for name in ordered:
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
            group_partial=tuple(_normalise_partial(p) for p in group_partial),
            parameterization=parameterization,
        )
        rows: list[Par] = []
        for g in range(1, ngroups + 1):
            rows.extend(
                _group_rows(spec, statements, g, ngroups, lv_exo, lv_endo, orthogonal, std_lv)
            )
        for i, r in enumerate(rows, start=1):
            r.id = i
        _apply_group_equal(rows, spec)
        _apply_equality_statements(rows, statements)
        _number_free(rows)
        spec.table = rows
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
        spec = cls(
            syntax="",
            ov=list(ov),
            lv=[],
            ordered=[],
            group_labels=groups,
            table=[],
            meanstructure=meanstructure,
            std_lv=False,
        )
        rows: list[Par] = []
        for g in range(1, len(groups) + 1):
            for i, v in enumerate(ov):
                rows.append(Par(0, v, "~~", v, g, 1, float("nan"), "", 0, "theta", i, i))
            if meanstructure:
                for i, v in enumerate(ov):
                    rows.append(Par(0, v, "~1", "", g, 1, float("nan"), "", 0, "nu", i, 0))
        for i, r in enumerate(rows, start=1):
            r.id = i
        _number_free(rows)
        spec.table = rows
        return spec

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
        return replace(self, table=[replace(r) for r in self.table], notes=list(self.notes))

    def with_values(self, x: np.ndarray) -> ModelSpec:
        """A copy whose free rows hold ``x`` (and computed rows their implied values)."""
        out = self.copy()
        x = np.asarray(x, dtype=float)
        for r in out.table:
            if r.free:
                r.value = float(x[r.free - 1])
        for g in range(1, self.ngroups + 1):
            mats = self.matrices(x, g)
            for r in out.rows(g):
                if r.computed:
                    r.value = float(getattr(mats, _ATTR[r.mat])[r.row, r.col])
        return out

    def x_from_table(self) -> np.ndarray:
        """The free vector from the rows' values (starting values where set, else nan)."""
        x = np.full(self.npar, np.nan)
        for r in self.table:
            if r.free and np.isnan(x[r.free - 1]):
                x[r.free - 1] = r.value
        return x

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


def _normalise_partial(text: str) -> str:
    t = re.sub(r"\s+", "", str(text))
    if t.endswith("~1"):
        return t
    if not any(op in t for op in ("=~", "~~", "~", "|")):
        raise ValueError(f"group_partial entries look like 'f=~x2' or 'x1~1', got {text!r}")
    return t


def _pick(values: tuple[Any, ...], g: int, ngroups: int, what: str, line: int) -> Any:
    if len(values) == 1:
        return values[0]
    if len(values) != ngroups:
        raise SyntaxError_(
            f"line {line}: c(...) {what} has {len(values)} values for {ngroups} groups"
        )
    return values[g - 1]


def _group_rows(
    spec: ModelSpec,
    statements: list[Statement],
    g: int,
    ngroups: int,
    lv_exo: list[str],
    lv_endo: list[str],
    orthogonal: bool,
    std_lv: bool,
) -> list[Par]:
    """The rows of one group, in lavaan's order."""
    ov, lv = spec.ov, spec.lv
    oi = {v: i for i, v in enumerate(ov)}
    li = {v: i for i, v in enumerate(lv)}
    rows: list[Par] = []
    seen: dict[tuple[str, str, str], Par] = {}

    def add(lhs: str, op: str, rhs: str, *, free: bool, value: float, user: int = 0) -> Par:
        key = (lhs, op, rhs)
        if op == "~~" and (rhs, op, lhs) in seen:
            key = (rhs, op, lhs)
        if key in seen:
            return seen[key]
        if op == "=~":
            mat, i, j = ("lambda", oi[rhs], li[lhs]) if rhs in oi else ("beta", li[rhs], li[lhs])
        elif op == "~":
            mat, i, j = "beta", li[lhs], li[rhs]
        elif op == "~~":
            if lhs in oi and rhs in oi:
                mat, i, j = "theta", oi[lhs], oi[rhs]
            elif lhs in li and rhs in li:
                mat, i, j = "psi", li[lhs], li[rhs]
            else:
                raise SyntaxError_(f"covariance between observed and latent {lhs} ~~ {rhs}")
            if i < j:
                i, j = j, i
        elif op == "~1":
            mat, i, j = ("nu", oi[lhs], 0) if lhs in oi else ("alpha", li[lhs], 0)
        elif op == "|":
            mat, i, j = "tau", spec.threshold_index.index((lhs, int(rhs[1:]))), 0
        elif op == "~*~":
            mat, i, j = "delta", oi[lhs], 0
        else:  # pragma: no cover - parse_syntax limits the operators
            raise SyntaxError_(f"unsupported operator {op!r}")
        r = Par(0, lhs, op, rhs, g, 1 if free else 0, value, "", user, mat, i, j)
        seen[key] = r
        rows.append(r)
        return r

    def apply_modifier(r: Par, s: Statement) -> None:
        fixed = _pick(s.modifier.fixed, g, ngroups, "value", s.line)
        label = _pick(s.modifier.label, g, ngroups, "label", s.line)
        start = _pick(s.modifier.start, g, ngroups, "start", s.line)
        r.user = 1
        if fixed is not None:
            if np.isnan(fixed):
                r.free, r.value = 1, float("nan")
            else:
                r.free, r.value = 0, float(fixed)
        if label:
            r.label = label
        if start is not None:
            r.start = float(start)
            if r.free:
                r.value = float(start)

    # 1. loadings and latent regressions in the order written (marker: first loading = 1)
    first_done: set[str] = set()
    for s in statements:
        if s.op == "=~":
            is_first = s.lhs not in first_done
            first_done.add(s.lhs)
            fix_marker = is_first and not std_lv
            r = add(s.lhs, "=~", s.rhs, free=not fix_marker, value=1.0 if fix_marker else np.nan)
            apply_modifier(r, s)
        elif s.op == "~":
            apply_modifier(add(s.lhs, "~", s.rhs, free=True, value=np.nan), s)
    # 2. thresholds
    for v in spec.ordered:
        for k in range(1, sum(1 for t in spec.threshold_index if t[0] == v) + 1):
            add(v, "|", f"t{k}", free=True, value=np.nan)
    for s in statements:
        if s.op == "|":
            key = (s.lhs, "|", s.rhs)
            if key not in seen:
                raise SyntaxError_(f"line {s.line}: {s.lhs} has fewer thresholds than {s.rhs}")
            apply_modifier(seen[key], s)
    # 3. user (co)variances
    for s in statements:
        if s.op == "~~":
            apply_modifier(add(s.lhs, "~~", s.rhs, free=True, value=np.nan), s)
    # 4. residual variances of observed variables
    theta = spec.parameterization == "theta"
    free_scale = g > 1 and "thresholds" in spec.group_equal
    for v in ov:
        if v in spec.ordered and theta:
            add(v, "~~", v, free=free_scale, value=np.nan if free_scale else 1.0)
        elif v in spec.ordered:
            r = add(v, "~~", v, free=False, value=np.nan)
            if r.user == 0:
                r.computed = True
        else:
            add(v, "~~", v, free=True, value=np.nan)
    # 5. latent variances, then covariances among exogenous factors
    for f in lv:
        add(f, "~~", f, free=not std_lv, value=1.0 if std_lv else np.nan)
    for f1, f2 in combinations(lv_exo, 2):
        add(f1, "~~", f2, free=not orthogonal, value=0.0 if orthogonal else np.nan)
    # 6. ordinal scale factors (computed from var(y*) in the theta parameterization)
    for v in spec.ordered:
        if theta:
            r = add(v, "~*~", v, free=False, value=1.0)
            if r.user == 0:
                r.computed = True
        else:
            add(v, "~*~", v, free=free_scale, value=np.nan if free_scale else 1.0)
    # 7. intercepts and latent means
    if spec.meanstructure:
        for v in ov:
            if v in spec.ordered:
                add(v, "~1", "", free=False, value=0.0)
            else:
                add(v, "~1", "", free=True, value=np.nan)
        free_means = g > 1 and (
            ("intercepts" in spec.group_equal or "thresholds" in spec.group_equal)
            and "means" not in spec.group_equal
        )
        for f in lv:
            add(f, "~1", "", free=free_means, value=np.nan if free_means else 0.0)
        for s in statements:
            if s.op == "~1":
                apply_modifier(add(s.lhs, "~1", "", free=True, value=np.nan), s)
    # ordinal: residual variances of ordered indicators and ov intercepts follow lavaan
    for r in rows:
        if r.user and r.op == "~~" and r.lhs == r.rhs and r.lhs in spec.ordered:
            r.computed = False
    return rows


def _equal_type(r: Par, spec: ModelSpec) -> str | None:
    if r.op == "=~":
        return "loadings"
    if r.op == "|":
        return "thresholds"
    if r.op == "~1":
        return "intercepts" if r.lhs in spec.ov else "means"
    if r.op == "~":
        return "regressions"
    if r.op == "~~":
        if r.lhs in spec.ov:
            return "residuals" if r.lhs == r.rhs else "residual.covariances"
        return "lv.variances" if r.lhs == r.rhs else "lv.covariances"
    return None


def _apply_group_equal(rows: list[Par], spec: ModelSpec) -> None:
    """Label rows held equal across groups with lavaan's ``.pN.`` (N = the group-1 row id)."""
    if spec.ngroups < 2 or not spec.group_equal:
        return
    partial = set(spec.group_partial)
    user_labelled = {id(r) for r in rows if r.label}
    g1 = {(r.lhs, r.op, r.rhs): r for r in rows if r.group == 1}
    for r in rows:
        if r.group == 1 or id(r) in user_labelled:
            continue
        kind = _equal_type(r, spec)
        if kind not in spec.group_equal or not r.free or r.computed:
            continue
        if r.name() in partial or (r.op == "~~" and f"{r.rhs}{r.op}{r.lhs}" in partial):
            continue
        base = g1.get((r.lhs, r.op, r.rhs))
        if base is None or base.computed or id(base) in user_labelled:
            continue
        if not base.free:
            # lavaan: an equality set holding a fixed parameter fixes them all to its value
            # (theta parameterization, strict: residual variances 1 in every group)
            r.free, r.value = 0, base.value
            continue
        label = f".p{base.id}."
        r.label = label
        base.label = label


def _apply_equality_statements(rows: list[Par], statements: list[Statement]) -> None:
    """``a == b``: give every row labelled ``b`` the label ``a``."""
    for s in statements:
        if s.op != "==":
            continue
        labels = {r.label for r in rows}
        for name in (s.lhs, s.rhs):
            if name not in labels:
                raise SyntaxError_(f"line {s.line}: '==' names an unknown label {name!r}")
        for r in rows:
            if r.label == s.rhs:
                r.label = s.lhs


def _number_free(rows: list[Par]) -> None:
    """Assign free indices; rows sharing a non-empty label share one index."""
    by_label: dict[str, int] = {}
    k = 0
    for r in rows:
        if not r.free:
            r.free = 0
            continue
        if r.label and r.label in by_label:
            r.free = by_label[r.label]
            continue
        k += 1
        r.free = k
        if r.label:
            by_label[r.label] = k
    # fixed rows that share a label with free rows stay fixed (lavaan warns); nothing to do


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
            psi_start[f] = float(max(cm / max(loads.get((f, inds[1]), 1.0), 1e-3), 0.05))
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
    return np.nan_to_num(x, nan=0.0)


# --------------------------------------------------------------------------- built-in models


def builtin_models(instrument: Any) -> dict[str, str]:
    """Lavaan syntax of the competing models for an instrument with factors.

    Parameters
    ----------
    instrument
        An :class:`alliance.instruments.Instrument` (uses ``items`` and ``factors``). The
        names ``bond``, ``goal`` and ``task`` select the alliance-specific models.

    Returns
    -------
    dict
        ``one_factor`` (all items on one factor); ``correlated`` (the instrument's factors,
        correlated: Bordin's three factors for the WAI); for the WAI also
        ``two_factor`` (Bond vs Goal+Task; Falkenstrom, Hatcher & Holmqvist 2015);
        ``bifactor`` (a general factor plus the specific factors, all orthogonal; fit with
        ``orthogonal=True`` semantics written out as ``0*`` covariances); and
        ``second_order`` (a general factor measured by the first-order factors) when there
        are at least three first-order factors. With exactly three first-order factors the
        second-order model is just-identified at the structural level (3 factor variances and
        3 covariances against 2 free second-order loadings, 1 second-order variance and 3
        disturbance variances), so its fit equals that of the correlated-factors model.

    References
    ----------
    Bordin, E. S. (1979). The generalizability of the psychoanalytic concept of the working
    alliance. Psychotherapy: Theory, Research & Practice, 16(3), 252-260.
    Falkenstrom, F., Hatcher, R. L., & Holmqvist, R. (2015). Confirmatory factor analysis of
    the patient version of the Working Alliance Inventory-Short Form Revised. Assessment,
    22(5), 581-593.
    """
    factors: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in instrument.factors.items()}
    items = [i for f in factors.values() for i in f]
    models: dict[str, str] = {"one_factor": "general =~ " + " + ".join(items)}
    if len(factors) >= 2:
        models["correlated"] = "\n".join(f"{f} =~ " + " + ".join(v) for f, v in factors.items())
    names = set(factors)
    if {"bond", "goal", "task"} <= names:
        gt = list(factors["goal"]) + list(factors["task"])
        models["two_factor"] = "\n".join(
            ["bond =~ " + " + ".join(factors["bond"]), "goal_task =~ " + " + ".join(gt)]
        )
    if len(factors) >= 2:
        lines = ["general =~ " + " + ".join(items)]
        lines += [f"{f} =~ " + " + ".join(v) for f, v in factors.items()]
        allf = ["general", *factors]
        lines += [f"{a} ~~ 0*{b}" for a, b in combinations(allf, 2)]
        models["bifactor"] = "\n".join(lines)
    if len(factors) >= 3:
        lines = [f"{f} =~ " + " + ".join(v) for f, v in factors.items()]
        lines.append("general =~ " + " + ".join(factors))
        models["second_order"] = "\n".join(lines)
    return models
