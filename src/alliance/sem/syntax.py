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
    "parse_syntax",
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
    ``rhs`` and compiled in ``expression`` (for ``<``/``>`` also ``lhs_expression``).
    """

    lhs: str
    op: str
    rhs: str
    modifier: Modifier = Modifier()
    line: int = 0
    expression: Expression | None = None
    lhs_expression: Expression | None = None


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
        if not re.fullmatch(NAME, lhs):
            raise SyntaxError_(f"line {line}: invalid left-hand side {lhs!r} in {text!r}")
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
            if not re.fullmatch(NAME, name):
                raise SyntaxError_(f"line {line}: invalid variable name {name!r} in {text!r}")
            if op == "|" and not re.fullmatch(r"t[0-9]+", name):
                raise SyntaxError_(f"line {line}: thresholds are named t1, t2, ..., got {name!r}")
            statements.append(Statement(lhs, op, name, modifier, line))
    if not statements:
        raise SyntaxError_("the model syntax holds no formulas")
    return statements


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
