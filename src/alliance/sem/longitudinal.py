"""Longitudinal measurement invariance: one model per wave, equal over the waves step by step.

The model of the repeated measure (one wave, e.g. the instrument's factors) is written once
per wave, items and factors suffixed by the wave (``b1_3``, ``bond_3``), as semTools'
``measEq.syntax(longFacNames = ...)`` writes it with its defaults: factors identified by unit
variances and zero means at every wave (``ID.fac = "std.lv"``), the residuals of the same
item covaried across waves (``auto = "all"``), and the steps of ``long.equal``: configural,
metric (loadings equal; factor variances free after the first wave), scalar (intercepts, for
ordered items thresholds, equal; factor means free after the first wave, for ordered items in
the delta parameterization also the scale factors: ``ID.cat = "Wu.Estabrook.2016"``) and
strict (residual variances equal; continuous items only, as measEq.syntax, which stops for
ordered items in the delta parameterization). Equality over the waves is written with shared
labels, which the parameter table (:mod:`alliance.sem.partable`) turns into one free
parameter (the reduced parameter vector of lavaan's ``lav_partable``). The steps are compared
as the cross-group ladder compares them (:func:`alliance.sem.invariance.compare_steps`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from alliance.sem.estimate import FitResult
from alliance.sem.fitmeasures import fit_measures
from alliance.sem.fitting import check_args, fit_model
from alliance.sem.invariance import CHEN_2007, CRITERIA_WLSMV, STEPS, compare_steps
from alliance.sem.output import clean, step_block
from alliance.sem.syntax import NAME, parse_syntax
from alliance.sem.validity import admissibility

__all__ = [
    "LONG_STEPS",
    "long_equal",
    "longitudinal_ladder",
    "longitudinal_syntax",
    "wave_name",
    "wave_structure",
]

#: The steps, in order (the names of the cross-group ladder's :data:`STEPS`).
LONG_STEPS = tuple(STEPS)

ORDERED_STRICT_NOTE = (
    "strict invariance is not fitted for ordered items: in the delta parameterization "
    "(measEq.syntax's default, Wu & Estabrook 2016) residual variances are not parameters "
    "(semTools' measEq.syntax stops there too)"
)
PAIRWISE_NOTE = (
    "WLSMV: missing waves by pairwise deletion (lavaan missing = 'pairwise'): each threshold "
    "from every answer to its item at that wave, each polychoric correlation from the patients "
    "who answered both items; FIML is not available with WLSMV"
)
FIML_NOTE = (
    "ML/MLR: patients missing a wave are kept by full-information ML (lavaan missing = 'ml')"
)


def wave_name(name: str, wave: int) -> str:
    """The name of an item or factor at a wave: ``b1`` at wave 3 is ``b1_3``."""
    return f"{name}_{int(wave)}"


def wave_structure(model: str) -> dict[str, Any]:
    """The one-wave model: its factors with their items, and residual covariances.

    Parameters
    ----------
    model
        lavaan syntax of the measure at one wave: ``factor =~ item + ...`` formulas, and
        optionally ``item ~~ item`` residual covariances (repeated at every wave).

    Returns
    -------
    dict
        ``factors`` ({factor: [items]} in the order written), ``items`` (every item once, in
        order of first appearance) and ``covariances`` ([(item, item)]).

    Raises
    ------
    ValueError
        For anything else in the syntax (other operators, modifiers such as fixed values or
        labels, exploratory blocks, a factor as indicator): the longitudinal model writes the
        constraints itself.
    """
    factors: dict[str, list[str]] = {}
    covariances: list[tuple[str, str]] = []
    statements = parse_syntax(model)
    for s in statements:
        plain = s.modifier.fixed == (None,) and s.modifier.label == ("",) and not s.efa
        if s.op == "=~" and plain:
            factors.setdefault(s.lhs, []).append(s.rhs)
        elif s.op == "~~" and plain and s.lhs != s.rhs:
            covariances.append((s.lhs, s.rhs))
        else:
            raise ValueError(
                "the model of one wave takes plain 'factor =~ items' and 'item ~~ item' "
                f"formulas (the steps write the constraints), got line {s.line}: "
                f"{s.lhs} {s.op} {s.rhs}"
            )
    if not factors:
        raise ValueError(f"the model of one wave needs a factor ('f =~ items'), got {model!r}")
    items = list(dict.fromkeys(i for its in factors.values() for i in its))
    nested = [i for i in items if i in factors]
    if nested:
        raise ValueError(f"factors measured by factors are not supported here, got {nested}")
    unknown = [v for pair in covariances for v in pair if v not in items]
    if unknown:
        raise ValueError(f"'~~' between items of the model only, got {unknown}")
    for name in [*factors, *items]:
        if not re.fullmatch(NAME, name):  # pragma: no cover - parse_syntax checks names
            raise ValueError(f"invalid name {name!r}")
    return {"factors": factors, "items": items, "covariances": covariances}


def long_equal(step: str, ordered: bool) -> tuple[str, ...]:
    """measEq.syntax's ``long.equal`` of a step (ordered: thresholds with the intercepts)."""
    if step not in STEPS:
        raise ValueError(f"unknown invariance step {step!r}; use {list(STEPS)}")
    base = STEPS[step]
    if ordered and step in ("scalar", "strict"):
        return ("loadings", "thresholds", *base[1:])
    return base


def longitudinal_syntax(
    model: str,
    waves: Sequence[int],
    step: str,
    ordered: bool = False,
    n_thresholds: dict[str, int] | None = None,
) -> str:
    """The lavaan syntax of one step of the longitudinal invariance ladder.

    As semTools 0.5-6 ``measEq.syntax(model_per_wave, longFacNames = ..., long.equal =
    long_equal(step))`` with its defaults (see the module's docstring): every loading free
    (labelled ``lambda.{factor}.{item}`` and so equal over the waves from metric on), factor
    variances 1 (free after the first wave from metric on), factor means 0 (free after the
    first wave from scalar on), all factor covariances free; continuous items: intercepts
    free (``nu.{item}``, equal from scalar on), residual variances free (``theta.{item}``,
    equal in strict); ordered items (delta parameterization): intercepts 0, thresholds free
    (``{item}.thr{k}``, equal from scalar on, when the scale factors after the first wave are
    free); the residuals of each item covaried across all pairs of waves.

    Parameters
    ----------
    model
        The model of one wave (see :func:`wave_structure`).
    waves
        The waves (at least two, distinct).
    step
        ``"configural"``, ``"metric"``, ``"scalar"`` or ``"strict"``.
    ordered
        Ordered-categorical items (WLSMV).
    n_thresholds
        Ordered items: the number of thresholds of each item (categories - 1), the same at
        every wave; required from the scalar step on (thresholds are named there).

    Returns
    -------
    str
        The model text (wide data: items named by :func:`wave_name`).

    Raises
    ------
    ValueError
        For fewer than two waves, repeated waves, an unknown step, strict with ordered items,
        or missing threshold counts.

    References
    ----------
    Liu, Y., Millsap, R. E., West, S. G., Tein, J.-Y., Tanaka, R., & Grimm, K. J. (2017).
    Testing measurement invariance in longitudinal data with ordered-categorical measures.
    Psychological Methods, 22(3), 486-506.
    Wu, H., & Estabrook, R. (2016). Identification of confirmatory factor analysis models of
    different levels of invariance for ordered categorical outcomes. Psychometrika, 81(4),
    1014-1045.
    """
    ws = [int(w) for w in waves]
    if len(ws) < 2 or len(set(ws)) != len(ws):
        raise ValueError(f"longitudinal invariance needs two or more distinct waves, got {ws}")
    equal = set(long_equal(step, ordered))
    if ordered and "residuals" in equal:
        raise ValueError(ORDERED_STRICT_NOTE)
    st = wave_structure(model)
    factors, items = st["factors"], st["items"]
    if ordered and "thresholds" in equal:
        missing = [i for i in items if not (n_thresholds or {}).get(i)]
        if missing:
            raise ValueError(f"n_thresholds is needed for the ordered items {missing}")
    lines: list[str] = []
    for f, its in factors.items():
        for w in ws:
            terms = []
            for i in its:
                label = f"lambda.{f}.{i}*" if "loadings" in equal else ""
                terms.append(f"NA*{wave_name(i, w)} + {label}{wave_name(i, w)}")
            lines.append(f"{wave_name(f, w)} =~ " + " + ".join(terms))
    for k, w in enumerate(ws):
        later = k > 0
        for i in items:
            v = wave_name(i, w)
            if ordered:
                lines.append(f"{v} ~ 0*1")
                if "thresholds" in equal:
                    assert n_thresholds is not None
                    th = [f"{i}.thr{t}*t{t}" for t in range(1, int(n_thresholds[i]) + 1)]
                    lines.append(f"{v} | " + " + ".join(th))
                    if later:
                        lines.append(f"{v} ~*~ NA*{v}")
            else:
                lines.append(f"{v} ~ " + (f"nu.{i}*1" if "intercepts" in equal else "NA*1"))
                res = f"theta.{i}*" if "residuals" in equal else "NA*"
                lines.append(f"{v} ~~ {res}{v}")
        for a, b in st["covariances"]:
            lines.append(f"{wave_name(a, w)} ~~ {wave_name(b, w)}")
        for f in factors:
            fw = wave_name(f, w)
            free_var = later and "loadings" in equal
            free_mean = later and ("intercepts" in equal or "thresholds" in equal)
            lines.append(f"{fw} ~~ " + ("NA*" if free_var else "1*") + fw)
            lines.append(f"{fw} ~ " + ("NA*1" if free_mean else "0*1"))
    for i in items:
        for a, b in combinations(ws, 2):
            lines.append(f"{wave_name(i, a)} ~~ {wave_name(i, b)}")
    return "\n".join(lines)


def _thresholds(data: pd.DataFrame, items: list[str], waves: list[int]) -> dict[str, int]:
    """Thresholds per item (categories - 1), which must be the same at every wave."""
    out: dict[str, int] = {}
    for i in items:
        counts = {w: int(data[wave_name(i, w)].dropna().nunique()) - 1 for w in waves}
        if len(set(counts.values())) > 1:
            raise ValueError(
                f"item {i!r} has a different number of answered categories per wave "
                f"({ {w: c + 1 for w, c in counts.items()} }): thresholds cannot be held equal "
                "over the waves (merge the rare categories first)"
            )
        out[i] = next(iter(counts.values()))
    return out


def _test(row: dict[str, Any] | None, against: str | None) -> dict[str, Any] | None:
    """A step's difference test to the previous fitted step (lavTestLRT's row)."""
    if row is None or row.get("Chisq_diff") is None:
        return None
    return {"against": against, "chisq_diff": row["Chisq_diff"], "df_diff": row["Df_diff"],
            "pvalue": row["Pr_gt_Chisq"]}  # fmt: skip


def longitudinal_ladder(
    data: pd.DataFrame,
    model: str,
    waves: Sequence[int],
    estimator: str = "ML",
    missing: str | None = None,
    ordered: bool = False,
    steps: Sequence[str] = LONG_STEPS,
    level: float = 0.95,
) -> dict[str, Any]:
    """Fit the longitudinal invariance ladder to wide data and judge each step.

    Parameters
    ----------
    data
        One row per patient, the items of each wave as columns named by :func:`wave_name`
        (NaN where a wave or an answer is missing).
    model
        The model of one wave (see :func:`wave_structure`).
    waves
        The waves, in order.
    estimator
        ``"ML"``, ``"MLR"`` (continuous items) or ``"WLSMV"`` (ordered items with
        ``ordered``, else continuous).
    missing
        Default: ``"fiml"`` for ML/MLR (lavaan ``missing = "ml"``), ``"pairwise"`` for WLSMV
        with ordered items (lavaan ``missing = "pairwise"``), ``"listwise"`` for WLSMV with
        continuous items.
    ordered
        The items are ordered categories (WLSMV, delta parameterization; no strict step).
    steps
        Steps to fit, a subsequence of :data:`LONG_STEPS`.
    level
        Confidence level of the intervals.

    Returns
    -------
    dict
        ``waves``, ``model``, ``estimator``, ``missing``, ``ordered``, ``steps`` (in order:
        ``{name, long.equal, syntax, fit, test: {chisq_diff, df_diff, pvalue} or None,
        converged, status, parameters, ...}``: the cross-group ladder's step block; a step
        that failed holds ``error``, one that did not converge or is inadmissible its
        ``status`` and no fit, no test), ``lrt``, ``deltas``, ``decisions`` (Chen 2007, as
        :func:`alliance.sem.invariance.compare_steps`), ``criteria`` and ``notes``.

    Raises
    ------
    ValueError
        For bad arguments or a configural model that cannot be fitted.

    References
    ----------
    Chen, F. F. (2007). Sensitivity of goodness of fit indexes to lack of measurement
    invariance. Structural Equation Modeling, 14(3), 464-504.
    Widaman, K. F., Ferrer, E., & Conger, R. D. (2010). Factorial invariance within
    longitudinal structural equation models: Measuring the same construct across time.
    Child Development Perspectives, 4(1), 10-18.
    """
    if missing is None:
        missing = "fiml" if str(estimator).upper() != "WLSMV" else (
            "pairwise" if ordered else "listwise")  # fmt: skip
    est, miss = check_args(estimator, missing)
    if ordered and est != "WLSMV":
        raise ValueError(f"ordered items need estimator='WLSMV', got {est!r}")
    if est == "WLSMV" and miss == "fiml":
        raise ValueError("FIML is not available with WLSMV; use 'pairwise' or 'listwise'")
    unknown = [s for s in steps if s not in LONG_STEPS]
    if unknown or not steps:
        raise ValueError(f"unknown invariance steps {unknown or list(steps)}; use {LONG_STEPS}")
    ws = [int(w) for w in waves]
    st = wave_structure(model)
    columns = [wave_name(i, w) for w in ws for i in st["items"]]
    absent = [c for c in columns if c not in data.columns]
    if absent:
        raise ValueError(f"the wide data lack the columns {absent}")
    notes: list[str] = []
    kept = [s for s in LONG_STEPS if s in steps]
    if ordered and "strict" in kept:
        kept.remove("strict")
        notes.append(ORDERED_STRICT_NOTE)
    n_th = _thresholds(data, st["items"], ws) if ordered else None
    if est == "WLSMV" and ordered and miss == "pairwise":
        notes.append(PAIRWISE_NOTE)
    if miss == "fiml":
        notes.append(FIML_NOTE)
    with threadpool_limits(limits=1, user_api="blas"):
        out = _ladder(data[columns], model, ws, est, miss, ordered, kept, n_th, level)
    out["criteria"] = CHEN_2007 + (f". {CRITERIA_WLSMV}" if est == "WLSMV" else "")
    head = {"waves": ws, "model": model, "estimator": est, "missing": miss,
            "ordered": bool(ordered), "items": st["items"], "factors": st["factors"]}  # fmt: skip
    if ordered:
        head["parameterization"] = "delta"
    return clean({**head, **out, "notes": notes})


def _ladder(
    data: pd.DataFrame,
    model: str,
    waves: list[int],
    estimator: str,
    missing: str,
    ordered: bool,
    steps: list[str],
    n_th: dict[str, int] | None,
    level: float,
) -> dict[str, Any]:
    fits: dict[str, FitResult] = {}
    measures: dict[str, dict] = {}
    blocks: list[dict[str, Any]] = []
    sample = None  # prepared once: every step fits the same wide data
    for name in steps:
        equal = long_equal(name, ordered)
        syntax = longitudinal_syntax(model, waves, name, ordered, n_th)
        head = {"name": name, "long.equal": list(equal), "syntax": syntax}
        try:
            res = fit_model(data, syntax, estimator, missing, sample=sample, ordered=ordered)
            sample = res.sample
        except (ValueError, np.linalg.LinAlgError) as err:
            if name == steps[0]:
                raise
            blocks.append({**head, "error": str(err), "fit": None, "test": None})
            continue
        m = fit_measures(res)
        block = {**head, **step_block(name, equal, res, m, name == "configural", level)}
        block.pop("group.equal")
        block.pop("group_labels")
        status = admissibility(res)
        block["status"] = status
        if not status["admissible"]:  # no fit indices, no test for an unusable solution
            block["fit"] = None
            block.pop("fit_all")
        else:
            fits[name], measures[name] = res, m
        blocks.append(block)
    done = [s for s in steps if s in fits]
    out = compare_steps(fits, measures, done, estimator)
    rows = {r["model"]: r for r in out.get("lrt", {}).get("table", [])}
    previous = dict(zip(done[1:], done[:-1], strict=True))
    for block in blocks:
        block.setdefault("test", _test(rows.get(block["name"]), previous.get(block["name"])))
    return {"steps": blocks, **out}
