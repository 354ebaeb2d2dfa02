"""lavaan model syntax: formulas, modifiers, defined parameters and constraints (lav_syntax).

The first layer of :mod:`alliance.sem`: text in, :class:`Statement` objects out. The parameter
table (:mod:`alliance.sem.partable`) is built from the statements.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

__all__ = [
    "Expression",
    "Modifier",
    "Statement",
    "SyntaxError_",
    "builtin_models",
    "efa_sets",
    "parse_syntax",
    "split_levels",
]

NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"

#: Operators, longest first: the leftmost match in a formula is its operator.
_OPERATOR_RE = re.compile(r":=|==|=~|~~|~\*~|<~|~|\||<|>")
#: Operators of constraint statements (not parameters).
CONSTRAINT_OPS = (":=", "==", "<", ">")
#: Functions allowed in defined parameters and constraints (lavaan evaluates R expressions).
FUNCTIONS: dict[str, Callable[[float], float]] = {
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "abs": abs,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}


class SyntaxError_(ValueError):  # noqa: N801 - avoid shadowing the builtin SyntaxError
    """A lavaan model string that cannot be parsed (a :class:`ValueError`)."""


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
class Expression:
    """An arithmetic expression of parameter labels (the right of ``:=``, a side of ``<``).

    ``text`` is the expression as lavaan prints it (no spaces); ``names`` the labels it uses, in
    order of first appearance. Numbers, ``+ - * / ^`` (or ``**``), parentheses and the functions
    in :data:`FUNCTIONS` are allowed.
    """

    text: str
    names: tuple[str, ...]
    tree: Any = field(repr=False, compare=False)

    def __call__(self, values: Mapping[str, float]) -> float:
        """The value with the labels set to ``values``."""
        return float(_evaluate(self.tree, values))

    def constant(self) -> float | None:
        """The value when the expression holds no label, else ``None``."""
        return None if self.names else self({})


@dataclass(frozen=True)
class Statement:
    """One parsed formula: ``lhs op rhs`` with the modifier of that term.

    Constraint statements (``op`` in :data:`CONSTRAINT_OPS`) keep the right-hand side as text in
    ``rhs`` and compiled in ``expression`` (for ``<``/``>`` also ``lhs_expression``). ``efa``
    names the exploratory block of a loading written ``efa("set")*factor =~ item``.
    """

    lhs: str
    op: str
    rhs: str
    modifier: Modifier = Modifier()
    line: int = 0
    expression: Expression | None = None
    lhs_expression: Expression | None = None
    efa: str = ""


# --------------------------------------------------------------------------- expressions


def _evaluate(node: ast.AST, values: Mapping[str, float]) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values)
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(values[node.id])
    if isinstance(node, ast.UnaryOp):
        v = _evaluate(node.operand, values)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _evaluate(node.left, values), _evaluate(node.right, values)
        op = node.op
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            return a * b
        if isinstance(op, ast.Div):
            return a / b if b != 0 else float("nan")
        return float(np.power(a, b))
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)  # checked at compile
    arg = _evaluate(node.args[0], values)
    try:
        return float(FUNCTIONS[node.func.id](arg))
    except (ValueError, OverflowError):
        return float("nan")


_ALLOWED_NODES = (
    ast.Expression,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.UnaryOp,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.Call,
)


def compile_expression(text: str, line: int = 0) -> Expression:
    """Compile an arithmetic expression of labels (see :class:`Expression`).

    Raises
    ------
    SyntaxError_
        Naming the line and the expression, for anything but numbers, labels, ``+ - * / ^``,
        parentheses and the functions of :data:`FUNCTIONS` with one argument.
    """
    raw = text.strip()
    if not raw:
        raise SyntaxError_(f"line {line}: empty expression")
    # labels may hold dots (lavaan names): map every name to a Python identifier first
    names: list[str] = []
    alias: dict[str, str] = {}

    source = raw.replace("^", "**")

    def rename(m: re.Match[str]) -> str:
        token = m.group(0)
        if source[m.end() :].lstrip().startswith("(") and token in FUNCTIONS:
            return token
        if token not in alias:
            alias[token] = f"_v{len(alias)}"
            names.append(token)
        return alias[token]

    # numbers such as 1e-3 or 0.5 are not names: skip tokens that start with a digit
    pattern = re.compile(r"(?<![0-9.])" + NAME)
    py = pattern.sub(rename, source)
    try:
        tree = ast.parse(py, mode="eval")
    except SyntaxError as err:
        raise SyntaxError_(f"line {line}: cannot read the expression {raw!r}") from err
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise SyntaxError_(f"line {line}: {type(node).__name__} not allowed in {raw!r}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
            raise SyntaxError_(f"line {line}: only numbers and labels in {raw!r}")
        if isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name)
            or node.func.id not in FUNCTIONS
            or len(node.args) != 1
            or node.keywords
        ):
            raise SyntaxError_(
                f"line {line}: only {', '.join(FUNCTIONS)} with one argument are allowed in {raw!r}"
            )
    back = {v: k for k, v in alias.items()}

    class _Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:  # noqa: N802 - ast API
            return ast.Name(id=back.get(node.id, node.id), ctx=node.ctx)

    tree = _Rename().visit(tree)
    return Expression(re.sub(r"\s+", "", raw), tuple(names), tree)


# --------------------------------------------------------------------------- formulas


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
            ends_open = prev.endswith(("+", "*", "=~", "~~", "~", ",", "(", ":=", "==", "<", ">"))
            starts_cont = part.startswith(("+", "*"))
            no_operator = _OPERATOR_RE.search(part) is None
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
    if re.fullmatch(r"[\"']?" + NAME + r"[\"']?", token):
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


def _constraint(lhs: str, op: str, rhs: str, line: int, text: str) -> Statement:
    """A ``:=``, ``==``, ``<`` or ``>`` statement with its expressions compiled."""
    if op == ":=":
        if not re.fullmatch(NAME, lhs):
            raise SyntaxError_(
                f"line {line}: a defined parameter needs a name on the left of ':=', got "
                f"{lhs!r} in {text!r}"
            )
        expr = compile_expression(rhs, line)
        return Statement(lhs, op, expr.text, Modifier(), line, expression=expr)
    left = compile_expression(lhs, line)
    right = compile_expression(rhs, line)
    if op == "==":
        if not (re.fullmatch(NAME, lhs) and re.fullmatch(NAME, rhs)):
            raise SyntaxError_(
                f"line {line}: operator '==' is supported between two labels only (a == b), "
                f"got {text!r}"
            )
        return Statement(lhs, op, rhs, Modifier(), line, expression=right, lhs_expression=left)
    return Statement(left.text, op, right.text, Modifier(), line, right, left)


def parse_syntax(model: str) -> list[Statement]:
    """Parse lavaan model syntax into statements.

    Supported: ``=~`` (loadings; a latent variable on the right makes a higher-order factor),
    ``~~`` (variances and covariances, including correlated residuals), ``~`` (latent
    regressions) and ``~ 1`` (intercepts/means), ``|`` (thresholds ``x | t1 + t2``), ``==``
    (equality of two labels), ``:=`` (defined parameters: an expression of labels, e.g.
    ``ratio := l2 / l3``), ``<`` and ``>`` (inequality constraints), modifiers ``1*x`` (fixed),
    ``NA*x`` (free), ``a*x`` (label), ``start(.5)*x``, ``c(a, b)*x`` (one per group), several
    modifiers ``NA*a*x``; ``#``/``!`` comments; ``;`` separators; formulas continued over lines.

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
        (:class:`SyntaxError_`) on anything it cannot read, naming the line, the formula and,
        for an unsupported operator, the operator.

    References
    ----------
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02
    """
    if not isinstance(model, str):
        raise SyntaxError_(f"model syntax must be a string, got {type(model).__name__}")
    for number, line in enumerate(_strip_comments(model).splitlines(), start=1):
        if _LEVEL_RE.fullmatch(line.strip()):
            raise SyntaxError_(
                f"line {number}: {line.strip()!r} starts a level of a two-level model; fit it "
                "with a cluster variable (alliance.sem.twolevel, alliance cfa --cluster)"
            )
    statements: list[Statement] = []
    for line, text in _logical_lines(model):
        match = _OPERATOR_RE.search(text)
        if match is None:
            raise SyntaxError_(f"line {line}: no operator (=~, ~~, ~, |, ==, :=) in {text!r}")
        op = match.group(0)
        lhs, rhs_text = text[: match.start()].strip(), text[match.end() :].strip()
        if op == "<~":
            raise SyntaxError_(
                f"line {line}: operator '<~' (formative composites) is not supported, got {text!r}"
            )
        if op in CONSTRAINT_OPS:
            if not lhs or not rhs_text:
                raise SyntaxError_(f"line {line}: {op!r} needs two sides, got {text!r}")
            statements.append(_constraint(lhs, op, rhs_text, line, text))
            continue
        if not rhs_text:
            raise SyntaxError_(f"line {line}: nothing on the right of {op!r} in {text!r}")
        for factor, efa in _left_terms(lhs, op, line, text):
            statements += _right_terms(factor, op, rhs_text, line, text, efa)
    if not statements:
        raise SyntaxError_("the model syntax holds no formulas")
    return statements


_LEVEL_RE = re.compile(r"level\s*:\s*([A-Za-z0-9_.]+)")
#: lavaan's names of the two levels: ``level: 1`` / ``level: within``, ``level: 2`` / ``between``.
LEVEL_NAMES = {"1": 1, "within": 1, "2": 2, "between": 2}


def split_levels(model: str) -> dict[int, str]:
    """The ``level: 1`` and ``level: 2`` blocks of a two-level model (lavaan syntax).

    A line ``level: 1`` (or ``level: within``) starts the within-cluster block, ``level: 2``
    (or ``level: between``) the between-cluster block; each block is ordinary model syntax.
    Lines of the other block are blanked, so line numbers in later errors are the user's.

    Parameters
    ----------
    model
        The model text.

    Returns
    -------
    dict
        ``{1: within text, 2: between text}``.

    Raises
    ------
    ValueError
        (:class:`SyntaxError_`) for formulas before the first ``level:`` line, an unknown or
        repeated level, a level without formulas, or a model without both levels.
    """
    if not isinstance(model, str):
        raise SyntaxError_(f"model syntax must be a string, got {type(model).__name__}")
    lines = _strip_comments(model).splitlines()
    owner: list[int] = []
    current = 0
    seen: list[int] = []
    for number, line in enumerate(lines, start=1):
        m = _LEVEL_RE.fullmatch(line.strip())
        if m:
            name = m.group(1).lower()
            if name not in LEVEL_NAMES:
                raise SyntaxError_(
                    f"line {number}: unknown level {m.group(1)!r}; use level: 1 (within) or "
                    "level: 2 (between)"
                )
            current = LEVEL_NAMES[name]
            if current in seen:
                raise SyntaxError_(f"line {number}: level {current} is given twice")
            seen.append(current)
            owner.append(0)
            continue
        if line.strip() and current == 0:
            raise SyntaxError_(
                f"line {number}: formula {line.strip()!r} before the first 'level:' line of a "
                "two-level model"
            )
        owner.append(current)
    if sorted(seen) != [1, 2]:
        raise SyntaxError_(
            f"a two-level model needs a 'level: 1' and a 'level: 2' block, got levels {seen}"
        )
    out: dict[int, str] = {}
    for level in (1, 2):
        text = "\n".join(line if o == level else "" for line, o in zip(lines, owner, strict=True))
        if not text.strip():
            raise SyntaxError_(f"level {level} of the two-level model holds no formulas")
        out[level] = text
    return out


_EFA_RE = re.compile(r"""efa\(\s*["']([^"']+)["']\s*\)""")


def _left_terms(lhs: str, op: str, line: int, text: str) -> list[tuple[str, str]]:
    """The factors on the left of a formula with their ``efa("set")`` block (or ``""``).

    lavaan writes an exploratory block as ``efa("b")*f1 + efa("b")*f2 =~ x1 + ...``: several
    factors on the left, each with the ``efa`` modifier, and the same indicators for each.
    """
    if re.fullmatch(NAME, lhs):
        return [(lhs, "")]
    if op != "=~" or ("+" not in lhs and "efa" not in lhs):
        raise SyntaxError_(f"line {line}: invalid left-hand side {lhs!r} in {text!r}")
    out: list[tuple[str, str]] = []
    for term in _split_top(lhs, "+"):
        chunks = [c.strip() for c in _split_top(term.strip(), "*")]
        name, mods = chunks[-1], chunks[:-1]
        if not re.fullmatch(NAME, name) or len(mods) != 1:
            raise SyntaxError_(
                f"line {line}: several factors on the left of '=~' form an exploratory "
                f'block, each written efa("set")*name; got {term.strip()!r} in {text!r}'
            )
        m = _EFA_RE.fullmatch(mods[0])
        if m is None:
            raise SyntaxError_(
                f"line {line}: only efa(\"set\") may modify a factor on the left of '=~', "
                f"got {mods[0]!r} in {text!r}"
            )
        out.append((name, m.group(1)))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise SyntaxError_(f"line {line}: a factor is named twice on the left of {text!r}")
    return out


def _right_terms(
    lhs: str, op: str, rhs_text: str, line: int, text: str, efa: str = ""
) -> list[Statement]:
    """The statements of one left-hand side and the terms on the right of its operator."""
    statements: list[Statement] = []
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
        if not re.fullmatch(NAME, name):
            raise SyntaxError_(f"line {line}: invalid variable name {name!r} in {text!r}")
        if op == "|" and not re.fullmatch(r"t[0-9]+", name):
            raise SyntaxError_(f"line {line}: thresholds are named t1, t2, ..., got {name!r}")
        statements.append(Statement(lhs, op, name, modifier, line, efa=efa))
    return statements


def efa_sets(statements: list[Statement]) -> dict[str, list[str]]:
    """The exploratory (``efa("set")``) blocks of a model: set name -> its factors, in order.

    Raises
    ------
    SyntaxError_
        If a factor is in two sets, has loadings both inside and outside its set, or a set
        holds one factor only (nothing to rotate).
    """
    sets: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for s in statements:
        if s.op != "=~":
            continue
        known = owner.get(s.lhs)
        if known is not None and known != s.efa:
            where = f"efa({known!r})" if known else "a plain '=~' formula"
            raise SyntaxError_(
                f"line {s.line}: factor {s.lhs!r} is in {where} and in "
                + (f"efa({s.efa!r})" if s.efa else "a plain '=~' formula")
            )
        owner[s.lhs] = s.efa
        if s.efa and s.lhs not in sets.setdefault(s.efa, []):
            sets[s.efa].append(s.lhs)
    for name, factors in sets.items():
        if len(factors) < 2:
            raise SyntaxError_(
                f"efa({name!r}) holds one factor ({factors[0]}): an exploratory block needs two "
                "or more factors to rotate (write a plain '=~' formula for one factor)"
            )
    return sets


def model_variables(statements: list[Statement]) -> tuple[list[str], list[str]]:
    """Observed and latent variable names in lavaan's order (first appearance).

    Latent: every left-hand side of ``=~``; observed: the other names of ``=~``, ``~~``, ``~``,
    ``~1``, ``|`` and ``~*~`` statements.

    Raises
    ------
    SyntaxError_
        If no factor is defined.
    """
    lv: list[str] = []
    for s in statements:
        if s.op == "=~" and s.lhs not in lv:
            lv.append(s.lhs)
    if not lv:
        raise SyntaxError_("a CFA model needs at least one factor defined with '=~'")
    ov: list[str] = []

    def add(name: str) -> None:
        if name not in lv and name not in ov:
            ov.append(name)

    for s in statements:
        if s.op == "=~":
            add(s.rhs)
    for s in statements:
        if s.op in ("~~", "~"):
            add(s.lhs)
            add(s.rhs)
        elif s.op in ("~1", "|", "~*~"):
            add(s.lhs)
    return ov, lv


# --------------------------------------------------------------------------- built-in models


#: Every built-in model name and what it needs of the instrument's key (builtin_models).
BUILTIN_MODEL_NEEDS: dict[str, str] = {
    "one_factor": "items",
    "correlated": "two or more factors",
    "two_factor": "the WAI's bond, goal and task factors",
    "bifactor": "two or more factors",
    "second_order": "three or more factors",
    "esem": "two or more factors",
    "bifactor_esem": "two or more factors",
}


def builtin_models(instrument: Any) -> dict[str, str]:
    """Lavaan syntax of the competing models for an instrument with factors.

    Parameters
    ----------
    instrument
        An object with ``items`` and ``factors`` (``{factor: items}``; e.g. an
        ``alliance.data.instruments.Instrument``). The names ``bond``, ``goal`` and ``task`` select
        the alliance-specific models.

    Returns
    -------
    dict
        ``one_factor`` (all items on one factor); ``correlated`` (the instrument's factors,
        correlated: Bordin's three factors for the WAI); for the WAI also
        ``two_factor`` (Bond vs Goal+Task; Falkenstrom, Hatcher & Holmqvist 2015);
        ``bifactor`` (a general factor plus the specific factors, all orthogonal; fit with
        ``orthogonal=True`` semantics written out as ``0*`` covariances);
        ``second_order`` (a general factor measured by the first-order factors) when there
        are at least three first-order factors; and the exploratory SEM models ``esem``
        (the instrument's factors as one ``efa("esem")`` block on all items, rotated) and
        ``bifactor_esem`` (the same block with a general factor, rotated orthogonally to the
        key as target; Morin, Arens & Marsh 2016). With exactly three first-order factors the
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
    Morin, A. J. S., Arens, A. K., & Marsh, H. W. (2016). A bifactor exploratory structural
    equation modeling framework for the identification of distinct sources of
    construct-relevant psychometric multidimensionality. Structural Equation Modeling,
    23(1), 116-139.
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
    if len(factors) >= 2:
        block = " + ".join(f'efa("esem")*{f}' for f in factors)
        models["esem"] = f"{block} =~ " + " + ".join(items)
        models["bifactor_esem"] = f'efa("esem")*general + {block} =~ ' + " + ".join(items)
    return models
