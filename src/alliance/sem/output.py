"""The lavaan-layout JSON of a fit, whatever the estimator (the layout of the reference files).

``meta`` (software, estimator, lavaan's test, SE and missing-data names), ``fit``
(fitMeasures names), ``fit_all``, ``parameters`` (parameterEstimates), ``standardized``
(standardizedSolution) and the validity blocks, made JSON-safe.
"""

from __future__ import annotations

import math
from importlib import metadata
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from alliance.sem.bifactor import bifactor_indices
from alliance.sem.esem import ESEM_NOTE
from alliance.sem.estimate import FitResult
from alliance.sem.fitmeasures import fit_block, fit_measures
from alliance.sem.modindices import MODINDICES_NOTE, modification_indices
from alliance.sem.solution import parameter_rows
from alliance.sem.standardize import standardized_rows
from alliance.sem.validity import (
    admissibility,
    factor_correlations,
    htmt_block,
    mark_not_identified,
    reliability,
    residual_correlations,
)

__all__ = ["MISSING_NOTE", "clean", "fit_meta", "result_dict", "step_block"]

#: Each WLSMV fit's ``meta.missing_note``: the pipeline's default differs from lavaan's.
MISSING_NOTE = (
    "WLSMV here defaults to missing = 'pairwise' (the pipeline and `alliance cfa`: each "
    "threshold from all answers to its item, each polychoric correlation from the rows that "
    "answered both items); lavaan's default is 'listwise' (only complete rows). Pass "
    "missing='listwise' for lavaan's default."
)

#: lavaan's names of the test and standard errors of each estimator.
LAVAAN_TEST = {
    "ML": ("ML", "standard", "standard"),
    "MLR": ("ML", "yuan.bentler.mplus", "robust.huber.white"),
    "WLSMV": ("DWLS", "scaled.shifted", "robust.sem"),
}


def clean(obj: Any) -> Any:
    """Make a nested structure JSON-serialisable (numpy scalars, nan -> None)."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def _software() -> str:
    try:
        version = metadata.version("alliance-pipeline")
    except metadata.PackageNotFoundError:  # a source checkout that is not installed
        version = "unknown"
    return f"alliance {version} (alliance.sem)"


def fit_meta(
    result: FitResult, model: str, missing_requested: str, group: str | None
) -> dict[str, Any]:
    """The ``meta`` block of a fit: what was estimated, as lavaan names it."""
    est = result.estimator
    lav_est, test, se = LAVAAN_TEST[est]
    spec = result.spec
    if est == "WLSMV":
        information = "expected"
    else:
        information = "expected" if est == "ML" and result.missing == "listwise" else "observed"
    meta: dict[str, Any] = {
        "software": _software(),
        "model": model,
        "estimator": est,
        "lavaan_estimator": lav_est,
        "test": test,
        "se": se,
        "information": information,
        "missing": result.missing,
        "missing_requested": missing_requested,
        "lavaan_missing": "ml" if result.missing == "fiml" else result.missing,
        "ordered": list(spec.ordered),
        "std.lv": bool(spec.std_lv),
        "group": group,
        "group.equal": list(spec.group_equal),
        "warnings": list(result.warnings),
        "notes": [],
    }
    if est == "WLSMV":
        meta["parameterization"] = spec.parameterization
        meta["missing_note"] = MISSING_NOTE
    if "rotation" in result.extra:
        meta["rotation"] = result.extra["rotation"]
        meta["notes"].append(ESEM_NOTE)
    if len(result.active_bounds):
        names = [
            spec.free_rows()[k].label or spec.free_rows()[k].name() for k in result.active_bounds
        ]
        meta["notes"].append(f"held at an inequality bound (SE 0, as lavaan): {', '.join(names)}")
    return meta


def result_dict(
    result: FitResult,
    *,
    meta: dict[str, Any] | None = None,
    details: bool = True,
    n_modindices: int = 10,
    level: float = 0.95,
) -> dict[str, Any]:
    """The reference-file layout for a fitted :class:`~alliance.sem.estimate.FitResult`.

    Keys: ``meta, converged, nobs, ntotal, fit, fit_all, parameters, standardized`` and,
    with ``details``, ``reliability, factor_correlations, htmt, residual_correlations,
    modindices, status``; ``group_labels`` for several groups. A block that cannot be computed
    is empty and its reason is in ``meta.notes``; estimation problems are in ``converged`` and
    ``status``, never raised.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _result_dict(result, meta, details, n_modindices, level)


def _result_dict(
    result: FitResult, meta: dict[str, Any] | None, details: bool, n_modindices: int, level: float
) -> dict[str, Any]:
    # a rotated (ESEM) solution: fit statistics and score tests of the unrotated fit
    base = result.extra.get("unrotated", result)
    fm = fit_measures(base)
    std = standardized_rows(result, level)
    meta = dict(meta or {})
    notes = list(meta.get("notes", []))
    notes += [n for n in result.notes if n not in notes]
    out: dict[str, Any] = {
        "meta": meta,
        "converged": result.converged,
        "nobs": result.nobs,
        "ntotal": result.ntotal,
        "fit": fit_block(base, fm),
        "fit_all": fm,
        "parameters": parameter_rows(result, level),
        "standardized": std,
    }
    if not result.converged:
        _withhold_fit(out, notes)
    if result.spec.ngroups > 1:
        out["group_labels"] = list(result.spec.group_labels)
    if details:

        def attempt(key: str, fn: Any, empty: Any) -> None:
            try:
                out[key] = fn()
            except (ValueError, np.linalg.LinAlgError, FloatingPointError) as err:
                out[key] = empty
                notes.append(f"{key} unavailable: {err}")

        attempt("reliability", lambda: {**reliability(result), **bifactor_indices(result)}, {})
        attempt("factor_correlations", lambda: factor_correlations(result, std), [])
        if result.spec.efa:
            out["htmt"] = {}
        else:
            attempt("htmt", lambda: htmt_block(result), {})
        attempt("residual_correlations", lambda: residual_correlations(result), [])
        if result.not_identified:
            out["modindices"] = []
            notes.append("modification indices unavailable: the model is not identified")
        else:
            attempt("modindices", lambda: _modindices(base, n_modindices), [])
        if out["modindices"] and result.estimator == "WLSMV":
            notes.append(MODINDICES_NOTE)
        out["status"] = admissibility(result, std)
        if result.not_identified:
            mark_not_identified(out["status"], result.not_identified)
    meta["notes"] = notes
    return clean(out)


#: What a fit that did not converge keeps of its ``fit`` block: the model's size, not a test.
KEPT_WITHOUT_CONVERGENCE = ("npar", "df")


def _withhold_fit(out: dict[str, Any], notes: list[str]) -> None:
    """Withhold the fit measures of a fit that did not converge.

    As lavaan's ``fitMeasures``, which refuses them: its chi-square and indices describe
    wherever the optimizer stopped.
    """
    fit = out.get("fit") or {}
    out["fit"] = {k: fit[k] for k in KEPT_WITHOUT_CONVERGENCE if k in fit}
    out["fit_all"] = {}
    note = "fit measures withheld: the estimation did not converge"
    if note not in notes:
        notes.append(note)


def _modindices(result: FitResult, top: int) -> list[dict[str, Any]]:
    """Modification indices; of an ESEM fit, none that involve its rotated blocks' factors.

    Their value depends on how the unrotated solution is identified.
    """
    efa = {f for factors in result.spec.efa.values() for f in factors}
    if not efa:
        return modification_indices(result, top=top)
    rows = modification_indices(result, top=None)
    rows = [
        r
        for r in rows
        if not (r["op"] == "=~" and r["lhs"] in efa)
        and not (r["op"] == "~~" and (r["lhs"] in efa or r["rhs"] in efa))
    ]
    return rows[:top] if top else rows


def step_block(
    name: str,
    group_equal: tuple[str, ...],
    result: FitResult,
    measures: dict[str, Any],
    with_reliability: bool,
    level: float = 0.95,
) -> dict[str, Any]:
    """One step of an invariance ladder: its fit, parameters and (configural) reliability."""
    block: dict[str, Any] = {
        "group.equal": list(group_equal),
        "meta": {
            "step": name,
            "estimator": result.estimator,
            "missing": result.missing,
            "parameterization": result.spec.parameterization,
            "warnings": list(result.warnings),
            "notes": list(result.notes),
        },
        "warnings": list(result.warnings),
        "converged": result.converged,
        "nobs": result.nobs,
        "ntotal": result.ntotal,
        "fit": fit_block(result, measures),
        "fit_all": measures,
        "parameters": parameter_rows(result, level),
        "standardized": standardized_rows(result, level),
        "group_labels": list(result.spec.group_labels),
    }
    if not result.converged:
        _withhold_fit(block, block["meta"]["notes"])
    if with_reliability:
        block["reliability"] = reliability(result)
    return block
