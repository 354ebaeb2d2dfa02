"""The parameter table: lavaan's defaults, equality constraints and constraints (lav_partable).

The second layer of :mod:`alliance.sem`: statements (:mod:`alliance.sem.syntax`) in, the rows of
lavaan's ``parTable`` out (:class:`Par`), with the free-parameter numbering, the defined
parameters (``:=``) and the simple inequality constraints (``label > number``). The matrix
representation (:mod:`alliance.sem.model`) reads the table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Protocol

import numpy as np

from alliance.sem.syntax import NAME, Expression, Statement, SyntaxError_

__all__ = [
    "GROUP_EQUAL_OPTIONS",
    "PARAMETERIZATIONS",
    "Bound",
    "Definition",
    "Par",
    "build_rows",
    "constraints",
    "independence_rows",
    "normalise_partial",
]

#: How the latent responses of ordered indicators are scaled (lavaan's ``parameterization``).
PARAMETERIZATIONS = ("delta", "theta")

#: Values accepted in ``group_equal`` (lavaan's ``group.equal``).
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
    efa
        The exploratory block (``efa("set")``) of a loading; ``user`` is 7 for the rows fixed
        to identify the unrotated solution of such a block (lavaan's convention).
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
    efa: str = ""

    def key(self) -> tuple[str, str, str, int]:
        """``(lhs, op, rhs, group)``: the identity of the row."""
        return (self.lhs, self.op, self.rhs, self.group)

    def name(self) -> str:
        """Lavaan's way of writing the row, e.g. ``"visual=~x2"``."""
        return f"{self.lhs}{self.op}{self.rhs}"


@dataclass(frozen=True)
class Definition:
    """A defined parameter ``name := expression`` (lavaan's ``def`` rows)."""

    name: str
    expression: Expression
    line: int


@dataclass(frozen=True)
class Bound:
    """A simple inequality constraint on a labelled free parameter: ``label > value`` or ``<``."""

    label: str
    op: str
    value: float
    line: int


class _Model(Protocol):
    """What the table builder reads from a model (a :class:`alliance.sem.model.ModelSpec`)."""

    ov: list[str]
    lv: list[str]
    ordered: list[str]
    threshold_index: list[tuple[str, int]]
    parameterization: str
    group_equal: tuple[str, ...]
    group_partial: tuple[str, ...]
    meanstructure: bool
    group_labels: list[str]


def normalise_partial(text: str) -> str:
    """A ``group_partial`` entry without spaces (``"visual =~ x2"`` -> ``"visual=~x2"``)."""
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


def build_rows(
    model: _Model,
    statements: list[Statement],
    lv_exo: list[str],
    orthogonal: bool,
    std_lv: bool,
) -> list[Par]:
    """Every group's rows, numbered, with ``group_equal`` and ``==`` constraints applied."""
    ngroups = len(model.group_labels)
    rows: list[Par] = []
    for g in range(1, ngroups + 1):
        rows.extend(_group_rows(model, statements, g, ngroups, lv_exo, orthogonal, std_lv))
    for i, r in enumerate(rows, start=1):
        r.id = i
    _apply_group_equal(rows, model)
    _apply_equality_statements(rows, statements)
    number_free(rows)
    return rows


def _group_rows(
    spec: _Model,
    statements: list[Statement],
    g: int,
    ngroups: int,
    lv_exo: list[str],
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
            fix_marker = is_first and not std_lv and not s.efa
            r = add(s.lhs, "=~", s.rhs, free=not fix_marker, value=1.0 if fix_marker else np.nan)
            r.efa = s.efa
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
    # 5. latent variances (std.lv: fixed to 1, free in groups 2+ once loadings are held
    # equal, as lavaan), then covariances among exogenous factors
    free_var = not std_lv or (g > 1 and "loadings" in spec.group_equal)
    for f in lv:
        add(f, "~~", f, free=free_var, value=np.nan if free_var else 1.0)
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
    for s in statements:  # `y ~*~ NA*y` (semTools measEq.syntax: free after the first wave)
        if s.op != "~*~":
            continue
        if s.lhs != s.rhs or s.lhs not in spec.ordered:
            raise SyntaxError_(
                f"line {s.line}: a scale factor is written y ~*~ y for an ordered item y, got "
                f"{s.lhs} ~*~ {s.rhs}"
            )
        if theta:
            raise SyntaxError_(
                f"line {s.line}: scale factors ({s.lhs} ~*~ {s.rhs}) are parameters in the "
                "delta parameterization only (theta: residual variances)"
            )
        apply_modifier(seen[(s.lhs, "~*~", s.rhs)], s)
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
                r = add(s.lhs, "~1", "", free=True, value=np.nan)
                if not r.user:  # a default row (latent mean 0): `f ~ 1` frees it, as lavaan
                    r.free, r.value = 1, np.nan
                apply_modifier(r, s)
    # ordinal: residual variances of ordered indicators and ov intercepts follow lavaan
    for r in rows:
        if r.user and r.op == "~~" and r.lhs == r.rhs and r.lhs in spec.ordered:
            r.computed = False
    _efa_constraints(rows, statements)
    return rows


def _efa_constraints(rows: list[Par], statements: list[Statement]) -> None:
    """Identify the unrotated solution of each ``efa("set")`` block (lavaan 0.6-14).

    The set's factors get unit variances and zero covariances among themselves, and factor
    ``k`` (0-based, in the order written) its first ``k`` loadings fixed to 0 (the echelon
    pattern of lav_partable_efa_constraints); those fixed rows get ``user = 7``. A factor
    variance or covariance the user wrote keeps what the user wrote.
    """
    sets: dict[str, list[str]] = {}
    for s in statements:
        if s.op == "=~" and s.efa and s.lhs not in sets.setdefault(s.efa, []):
            sets[s.efa].append(s.lhs)
    for factors in sets.values():
        for k, f in enumerate(factors):
            var = next(r for r in rows if r.op == "~~" and r.lhs == f and r.rhs == f)
            if var.user == 0:
                var.free, var.value = 0, 1.0
            loadings = [r for r in rows if r.op == "=~" and r.lhs == f]
            if len(loadings) < k:
                raise SyntaxError_(
                    f"efa factor {f!r} has {len(loadings)} indicators, fewer than the {k} "
                    "its block's echelon pattern fixes to 0"
                )
            for r in loadings[:k]:
                r.free, r.value, r.user = 0, 0.0, 7
        members = set(factors)
        for r in rows:
            if r.op == "~~" and r.lhs != r.rhs and {r.lhs, r.rhs} <= members and r.user == 0:
                r.free, r.value, r.user = 0, 0.0, 7


def _equal_type(r: Par, spec: _Model) -> str | None:
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


def _apply_group_equal(rows: list[Par], spec: _Model) -> None:
    """Label rows held equal across groups with lavaan's ``.pN.`` (N = the group-1 row id)."""
    if len(spec.group_labels) < 2 or not spec.group_equal:
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


def number_free(rows: list[Par]) -> None:
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


def independence_rows(ov: Sequence[str], ngroups: int, meanstructure: bool) -> list[Par]:
    """The rows of the baseline (independence) model: free variances (and means) per group."""
    rows: list[Par] = []
    for g in range(1, ngroups + 1):
        for i, v in enumerate(ov):
            rows.append(Par(0, v, "~~", v, g, 1, float("nan"), "", 0, "theta", i, i))
        if meanstructure:
            for i, v in enumerate(ov):
                rows.append(Par(0, v, "~1", "", g, 1, float("nan"), "", 0, "nu", i, 0))
    for i, r in enumerate(rows, start=1):
        r.id = i
    number_free(rows)
    return rows


def constraints(
    statements: list[Statement], rows: list[Par]
) -> tuple[list[Definition], list[Bound]]:
    """The defined parameters (``:=``) and inequality constraints (``<``, ``>``) of a model.

    A defined parameter may use the labels of the table and the names defined before it. An
    inequality constraint holds one label of a free parameter on one side and a number on the
    other (``l3 > 0.9``, ``0 < a``); lavaan's general nonlinear inequalities are not supported.

    Raises
    ------
    SyntaxError_
        Naming the line, the statement and the operator, for an unknown label, a label of a
        fixed parameter in a bound, or an inequality that is not ``label op number``.
    """
    labels = {r.label: r for r in rows if r.label}
    defined: list[Definition] = []
    bounds: list[Bound] = []
    for s in statements:
        if s.op == ":=":
            assert s.expression is not None
            if s.lhs in labels or any(d.name == s.lhs for d in defined):
                raise SyntaxError_(
                    f"line {s.line}: the defined parameter {s.lhs!r} is already a label"
                )
            known = set(labels) | {d.name for d in defined}
            unknown = [n for n in s.expression.names if n not in known]
            if unknown:
                raise SyntaxError_(
                    f"line {s.line}: '{s.lhs} := {s.rhs}' uses unknown labels {unknown} "
                    "(label parameters with a*x first)"
                )
            defined.append(Definition(s.lhs, s.expression, s.line))
        elif s.op in ("<", ">"):
            left, right = s.lhs_expression, s.expression
            assert left is not None and right is not None
            text = f"{s.lhs} {s.op} {s.rhs}"
            single = re.compile(NAME)
            if single.fullmatch(left.text) and left.names and right.constant() is not None:
                label, op, value = left.text, s.op, right.constant()
            elif single.fullmatch(right.text) and right.names and left.constant() is not None:
                label, op, value = right.text, "<" if s.op == ">" else ">", left.constant()
            else:
                raise SyntaxError_(
                    f"line {s.line}: inequality constraint {text!r} (operator {s.op!r}) is "
                    "supported between one label and a number only (e.g. l3 > 0.9)"
                )
            row = labels.get(label)
            if row is None:
                raise SyntaxError_(f"line {s.line}: {text!r} names an unknown label {label!r}")
            if not row.free:
                raise SyntaxError_(
                    f"line {s.line}: {text!r} constrains {label!r}, a fixed parameter"
                )
            assert value is not None
            bounds.append(Bound(label, op, float(value), s.line))
    return defined, bounds
