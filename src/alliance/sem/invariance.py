"""Measurement-invariance ladder (configural to strict), Chen (2007) decisions, partial release.

One ladder for every estimator: ML and MLR (continuous items) and WLSMV (ordered items, where
the scalar step also holds thresholds equal and the strict step needs the theta
parameterization; or continuous items).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from alliance.sem.categories import COLLAPSE_NOTE, merges_text
from alliance.sem.compare import DELTA_NAMES, ROBUST_DELTA_NAMES, delta_fit
from alliance.sem.estimate import FitResult
from alliance.sem.fitmeasures import fit_measures
from alliance.sem.fitting import check_args, collapse, fit_model, ordered_items
from alliance.sem.modindices import release_tests, residual_release_tests
from alliance.sem.output import clean, step_block
from alliance.sem.syntax import efa_sets, parse_syntax
from alliance.sem.teststats import lrt_table

__all__ = ["CHEN_2007", "STEPS", "chen_decision", "compare_steps", "ladder", "step_constraints"]

#: group.equal of each step (lavaan names) for continuous items.
STEPS: dict[str, tuple[str, ...]] = {
    "configural": (),
    "metric": ("loadings",),
    "scalar": ("loadings", "intercepts"),
    "strict": ("loadings", "intercepts", "residuals"),
}

CHEN_2007 = (
    "Chen (2007): non-invariance if delta CFI <= -0.010 together with delta RMSEA >= 0.015 "
    "or delta SRMR >= 0.030 (metric) / >= 0.010 (scalar, strict); deltas are the more "
    "constrained model minus the previous step"
)

CRITERIA_WLSMV = (
    "WLSMV: Chen (2007) applied to the deltas of the scaled (mean-and-variance adjusted) CFI "
    "and RMSEA and of the SRMR of the polychoric correlations; the robust (Savalei 2021) "
    "CFI/RMSEA deltas are reported in `deltas` where lavaan 0.6-14 defines them (not once "
    "thresholds are held equal, so not for scalar) and are not used for the decision. Chen's "
    "cutoffs were derived for ML with continuous items."
)

THETA_NOTE = (
    "theta parameterization (lavaan parameterization = 'theta'): the residual variances of "
    "the latent responses are fixed to 1 in every group until thresholds are held equal, then "
    "free in groups 2+ (scalar) and equal again (fixed to 1) in the strict step. Configural "
    "and scalar fits equal the delta parameterization's; the metric step does not (lavaan's "
    "metric identification fixes residual variances, not scale factors, at 1). Release "
    "candidates of the strict step include freeing one group's residual variance "
    "(modification index, lavaan modindices())"
)

SCORE_NOTE = (
    "partial invariance: univariate score tests for releasing each equality constraint, as "
    "lavaan's lavTestScore() with WLSMV (which falls back to the ordinary, non-robust score "
    "test with the DWLS information); largest X2 first"
)

DELTA_STRICT_NOTE = (
    "strict invariance is not fitted for ordered items in the delta parameterization "
    "(residual variances are not parameters there); use parameterization='theta'"
)


def step_constraints(step: str, ordered: bool) -> tuple[str, ...]:
    """The ``group.equal`` of a step (lavaan's names).

    For ordered items the scalar and strict steps also hold the thresholds equal (Wu &
    Estabrook 2016; lavaan's convention).
    """
    if step not in STEPS:
        raise ValueError(f"unknown invariance steps {[step]}; use {list(STEPS)}")
    base = STEPS[step]
    if ordered and step in ("scalar", "strict"):
        base = ("loadings", "intercepts", "thresholds", *base[2:])
    return base


def chen_decision(step: str, deltas: dict[str, float | None], robust: bool = False) -> dict:
    """Chen's (2007) decision for one step of the ladder.

    Parameters
    ----------
    step
        ``"metric"``, ``"scalar"`` or ``"strict"``.
    deltas
        Changes in fit (constrained minus previous): ``cfi``, ``rmsea``, ``srmr`` (and, with
        ``robust``, ``cfi.robust``/``rmsea.robust`` are used instead of CFI/RMSEA).
    robust
        Use the robust CFI and RMSEA (MLR).

    Returns
    -------
    dict
        ``invariant`` (bool or None when a delta is missing), the values used and the
        criterion text.

    References
    ----------
    Chen, F. F. (2007). Sensitivity of goodness of fit indexes to lack of measurement
    invariance. Structural Equation Modeling, 14(3), 464-504.
    """
    cfi_key = "cfi.robust" if robust and deltas.get("cfi.robust") is not None else "cfi"
    rmsea_key = "rmsea.robust" if robust and deltas.get("rmsea.robust") is not None else "rmsea"
    d_cfi, d_rmsea, d_srmr = deltas.get(cfi_key), deltas.get(rmsea_key), deltas.get("srmr")
    srmr_cut = 0.030 if step == "metric" else 0.010
    if d_cfi is None or d_rmsea is None or d_srmr is None:
        invariant = None
    else:
        worse = d_cfi <= -0.010 and (d_rmsea >= 0.015 or d_srmr >= srmr_cut)
        invariant = not worse
    return {
        "criterion": CHEN_2007,
        "indices": {"cfi": cfi_key, "rmsea": rmsea_key, "srmr": "srmr"},
        "delta_cfi": d_cfi,
        "delta_rmsea": d_rmsea,
        "delta_srmr": d_srmr,
        "cutoffs": {"delta_cfi": -0.010, "delta_rmsea": 0.015, "delta_srmr": srmr_cut},
        "invariant": invariant,
    }


def compare_steps(
    fits: dict[str, FitResult], measures: dict[str, dict], done: Sequence[str], estimator: str
) -> dict[str, Any]:
    """The difference tests, fit deltas and Chen (2007) decisions of consecutive steps.

    Shared by the cross-group ladder and the longitudinal one
    (:mod:`alliance.sem.longitudinal`). ``done`` are the fitted steps in order; with fewer
    than two nothing is compared (empty dict).

    Returns
    -------
    dict
        ``lrt`` (:func:`alliance.sem.teststats.lrt_table`), ``deltas`` (``"{step}_vs_{prev}"``:
        constrained minus previous) and ``decisions`` (per step, :func:`chen_decision` with
        the difference test's p-value; MLR on the robust CFI/RMSEA, WLSMV on the scaled ones).
    """
    if len(done) < 2:
        return {}
    out: dict[str, Any] = {
        "lrt": lrt_table([fits[s] for s in done], done, [measures[s] for s in done])
    }
    robust = estimator != "ML"
    names = DELTA_NAMES + (ROBUST_DELTA_NAMES if robust else ())
    out["deltas"] = {}
    out["decisions"] = {}
    for prev, cur in zip(done, done[1:], strict=False):
        d = delta_fit(measures[prev], measures[cur], names)
        out["deltas"][f"{cur}_vs_{prev}"] = d
        if estimator == "WLSMV":
            scaled = {"cfi": d["cfi.scaled"], "rmsea": d["rmsea.scaled"], "srmr": d["srmr"]}
            dec = chen_decision(cur, scaled)
            dec["indices"] = {"cfi": "cfi.scaled", "rmsea": "rmsea.scaled", "srmr": "srmr"}
        else:
            dec = chen_decision(cur, d, robust=robust)
        lrt_row = next(r for r in out["lrt"]["table"] if r["model"] == cur)
        dec["chisq_diff_pvalue"] = lrt_row["Pr_gt_Chisq"]
        out["decisions"][cur] = dec
    return out


def ladder(
    data: pd.DataFrame,
    model: str,
    group: str,
    estimator: str = "ML",
    missing: str = "listwise",
    steps: Sequence[str] = ("configural", "metric", "scalar", "strict"),
    std_lv: bool = False,
    n_release: int = 10,
    ordered: Sequence[str] | bool | None = None,
    parameterization: str = "delta",
    collapse_empty_categories: bool = False,
    level: float = 0.95,
) -> dict[str, Any]:
    """Fit the invariance ladder across ``group`` and judge each step.

    Steps (lavaan ``group.equal``): configural (same pattern), metric (loadings), scalar
    (loadings and intercepts, for ordered items also thresholds; latent means free in groups
    2+, and for ordered items the scale factors (delta) or residual variances (theta)), strict
    (plus residual variances; for ordered items only in the theta parameterization, where
    they are fixed to group 1's value 1 in every group: in the delta parameterization the step
    is left out with a note). Each step reports its fit and parameters; then the chi-square
    difference tests (``lavTestLRT``: plain for ML, Satorra-Bentler 2001 scaled for MLR,
    Satorra 2000 scaled-shifted for WLSMV), the deltas of CFI, TLI, RMSEA and SRMR (plus
    scaled/robust for MLR and WLSMV), a decision per step by Chen (2007) (MLR: on the robust
    CFI/RMSEA; WLSMV: on the scaled ones), and, for every constrained step, the constraints
    whose release improves fit most (score tests; partial invariance; under theta-strict also
    freeing a group's residual variance).

    Parameters
    ----------
    data, model, group
        Data, lavaan syntax and the grouping column.
    estimator, missing
        As :func:`alliance.sem.api.fit_cfa` (FIML with WLSMV falls back to pairwise, noted).
    steps
        Steps to fit, from :data:`STEPS`.
    std_lv
        Identify factors by unit variances.
    n_release
        How many partial-invariance candidates (largest score tests) to report per step.
    ordered, parameterization
        WLSMV: the ordered items (default all) and lavaan's parameterization.
    collapse_empty_categories
        WLSMV with ordered items: merge a category without responses in some group with an
        adjacent category of that item in every group first (Rutkowski, Svetina & Liaw 2019),
        recorded in ``collapsed_categories`` and ``notes``; otherwise such a category raises
        ``ValueError``, as in lavaan.
    level
        Confidence level of the intervals.

    Returns
    -------
    dict
        ``configural, metric, scalar, strict, lrt, deltas, decisions, partial, criteria,
        notes``; WLSMV also ``parameterization`` and ``collapsed_categories``. A step that
        fails to fit holds ``{"error": message}`` and the others go on.

    References
    ----------
    Millsap, R. E., & Yun-Tein, J. (2004). Assessing factorial invariance in ordered-categorical
    measures. Multivariate Behavioral Research, 39(3), 479-515.
    Wu, H., & Estabrook, R. (2016). Identification of confirmatory factor analysis models of
    different levels of invariance for ordered categorical outcomes. Psychometrika, 81(4),
    1014-1045.
    """
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown invariance steps {unknown}; use {list(STEPS)}")
    if efa_sets(parse_syntax(model)):
        raise ValueError(
            "the invariance ladder needs a confirmatory model: efa() blocks (ESEM) are fitted "
            f"in one group here, got {model!r}"
        )
    if group not in data.columns:
        raise ValueError(f"group column {group!r} not in the data")
    est, miss = check_args(estimator, missing)
    notes: list[str] = []
    if est == "WLSMV" and miss == "fiml":  # as fit_cfa: no FIML with WLSMV
        miss = "pairwise"
        notes.append("FIML is not available with WLSMV; used missing='pairwise' instead.")
    items = ordered_items(model, ordered) if est == "WLSMV" else []
    kept = list(steps)
    if items and "strict" in kept and parameterization != "theta":
        notes.insert(0, DELTA_STRICT_NOTE)
        kept = [s for s in kept if s != "strict"]
    collapsed: list[dict[str, Any]] = []
    if items and collapse_empty_categories:
        data, collapsed = collapse(data, model, ordered, group, miss)
    with threadpool_limits(limits=1, user_api="blas"):
        out = _ladder(
            data, model, group, est, miss, kept, std_lv, n_release, ordered if items else False,
            parameterization, level,
        )  # fmt: skip
    if est == "WLSMV":
        out["criteria"] = f"{CHEN_2007}. {CRITERIA_WLSMV}"
        out["parameterization"] = parameterization
        if out["partial"]:
            notes.append(SCORE_NOTE)
        if parameterization == "theta" and len(kept) > 1 and items:
            notes.append(THETA_NOTE)
        if collapsed:
            notes.append(COLLAPSE_NOTE.format(merges=merges_text(collapsed)))
        out["collapsed_categories"] = collapsed
    out["notes"] = notes
    return clean(out)


def _ladder(
    data: pd.DataFrame,
    model: str,
    group: str,
    estimator: str,
    missing: str,
    steps: Sequence[str],
    std_lv: bool,
    n_release: int,
    ordered: Sequence[str] | bool | None,
    parameterization: str,
    level: float,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fits: dict[str, FitResult] = {}
    measures: dict[str, dict] = {}
    sample = None  # prepared once: every step fits the same data
    is_ordered = bool(ordered is None or ordered is True or (ordered and len(ordered)))
    for name in steps:
        constraints = step_constraints(name, estimator == "WLSMV" and is_ordered)
        try:
            res = fit_model(
                data, model, estimator, missing, group=group, std_lv=std_lv,
                group_equal=constraints, sample=sample, ordered=ordered,
                parameterization=parameterization,
            )  # fmt: skip
            sample = res.sample
        except (ValueError, np.linalg.LinAlgError) as err:
            if name == steps[0]:
                raise
            out[name] = {"group.equal": list(constraints), "error": str(err)}
            continue
        fits[name] = res
        measures[name] = fit_measures(res)
        out[name] = step_block(name, constraints, res, measures[name], name == "configural", level)
    done = [s for s in steps if s in fits]
    out.update(compare_steps(fits, measures, done, estimator))
    out["partial"] = {}
    for s in done:
        if s == "configural":
            continue
        rows = release_tests(fits[s], top=None if s == "strict" else n_release)
        if s == "strict":  # theta: the residual variances are fixed, not constrained
            rows = rows + residual_release_tests(fits[s], None)
            rows.sort(
                key=lambda r: (not np.isfinite(r["X2"]), -r["X2"] if np.isfinite(r["X2"]) else 0)
            )
            rows = rows[:n_release] if n_release else rows
        out["partial"][s] = rows
    out["criteria"] = CHEN_2007
    return out
