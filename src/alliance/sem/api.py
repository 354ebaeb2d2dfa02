"""Public entry points: fit_cfa() and invariance_ladder(), returning lavaan-layout JSON dicts.

:func:`invariance_ladder` is :func:`alliance.sem.invariance.ladder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from alliance.sem.categories import COLLAPSE_NOTE, merges_text
from alliance.sem.esem import rotate_fit
from alliance.sem.estimate import ESTIMATORS
from alliance.sem.fitmeasures import FIT_NAMES, ROBUST_NAMES
from alliance.sem.fitting import check_args, collapse, fit_model
from alliance.sem.invariance import ladder as invariance_ladder
from alliance.sem.output import fit_meta, result_dict
from alliance.sem.rotation import Rotation

__all__ = [
    "ESTIMATORS",
    "FIT_NAMES",
    "ROBUST_NAMES",
    "fit_cfa",
    "fit_model",
    "invariance_ladder",
    "result_dict",
]

FIML_WLSMV_NOTE = "FIML is not available with WLSMV; used missing='pairwise' instead."


def fit_cfa(
    data: pd.DataFrame,
    model: str,
    estimator: str = "ML",
    missing: str = "listwise",
    group: str | None = None,
    std_lv: bool = False,
    *,
    ordered: Sequence[str] | bool | None = None,
    orthogonal: bool = False,
    group_equal: Sequence[str] = (),
    n_modindices: int = 10,
    parameterization: str = "delta",
    collapse_empty_categories: bool = False,
    level: float = 0.95,
    rotation: Rotation | str | None = None,
) -> dict[str, Any]:
    """Fit a CFA and return a JSON-serialisable dict in the layout of the lavaan references.

    Parameters
    ----------
    data
        One row per respondent; the model's items as numeric columns.
    model
        lavaan model syntax: ``=~``, ``~~``, ``~``, ``~ 1``, ``|``, labels and fixed values,
        ``c(...)`` per group, ``==`` between labels, defined parameters ``:=`` (reported with
        delta-method SEs) and inequality constraints ``label > number`` / ``<``.
    estimator
        ``"ML"`` (normal-theory SEs from the expected information, likelihood chi-square),
        ``"MLR"`` (Huber-White SEs, Yuan-Bentler-Mplus scaled test, scaled and robust fit
        indices) or ``"WLSMV"`` (DWLS with robust SEs and the scaled-shifted test: polychoric
        correlations and thresholds of ordered items, or covariances of continuous items with
        ``ordered=False``).
    missing
        ``"listwise"`` or ``"fiml"`` (ML/MLR; lavaan ``missing = "ml"``); ``"pairwise"`` or
        ``"listwise"`` (lavaan's default) for WLSMV with ordered items (the pipeline's
        default is pairwise: see ``meta.missing_note``).
    group
        Optional grouping column: a multi-group (configural unless ``group_equal``) model.
    std_lv
        Identify factors by unit variances instead of marker indicators (lavaan ``std.lv``).
    ordered
        WLSMV only: the ordered items (``None``/``True`` = all model items; ``False`` = none:
        WLSMV on continuous items).
    orthogonal
        Fix all factor covariances to zero (bifactor models).
    group_equal
        Equality constraints across groups (lavaan ``group.equal``).
    n_modindices
        How many of the largest modification indices to report.
    parameterization
        WLSMV with ordered items: ``"delta"`` (lavaan's default) or ``"theta"`` scaling of the
        latent responses; ignored otherwise, as lavaan ignores it for continuous items.
    collapse_empty_categories
        WLSMV only: merge a category without responses in some group (or in the rows kept
        by listwise deletion) with an adjacent category of the same item in every group,
        instead of stopping as lavaan does; recorded in ``collapsed_categories`` (see
        :func:`alliance.sem.categories.collapse_empty_categories`).
    level
        Confidence level of the intervals.
    rotation
        For models with exploratory blocks (``efa("set")*f1 + efa("set")*f2 =~ ...``,
        exploratory SEM): a :class:`~alliance.sem.rotation.Rotation` or its method name
        (``"geomin"``, lavaan's default, or ``"oblimin"``; ``"target"`` needs a
        ``Rotation`` with its target). ``None``: geomin with lavaan's defaults. Ignored
        without such blocks.

    Returns
    -------
    dict
        ``meta, converged, nobs, ntotal, fit, fit_all, parameters, standardized,
        reliability, factor_correlations, htmt, residual_correlations, modindices, status``
        (WLSMV also ``collapsed_categories``). Estimation problems (non-convergence, Heywood
        cases, singular information) are reported in ``converged`` and ``status``, never
        raised.

    Raises
    ------
    ValueError
        For bad input: syntax errors, items not in the data, non-numeric or constant items,
        a grouping column with one level or an empty group, fewer rows than parameters, an
        unknown estimator or missing-data method.
    """
    est, miss = check_args(estimator, missing)
    notes: list[str] = []
    if est == "WLSMV" and miss == "fiml":  # as lavaan (and cfa.R): no FIML with WLSMV
        miss = "pairwise"
        notes.append(FIML_WLSMV_NOTE)
    if est != "WLSMV" and ordered:
        raise ValueError(f"ordered items need estimator='WLSMV', got {est!r}")
    collapsed: list[dict[str, Any]] = []
    if est == "WLSMV" and collapse_empty_categories:
        data, collapsed = collapse(data, model, ordered, group, miss)
    result = fit_model(
        data,
        model,
        est,
        miss,
        group=group,
        std_lv=std_lv,
        group_equal=group_equal,
        orthogonal=orthogonal,
        ordered=ordered if est == "WLSMV" else None,
        parameterization=parameterization,
    )
    if result.spec.efa:
        if not isinstance(rotation, Rotation):
            rotation = Rotation(method=rotation or "geomin")
        result = rotate_fit(result, rotation)
    meta = fit_meta(result, model, missing, group)
    if result.sample.n_dropped:
        meta["notes"].append(f"{result.sample.n_dropped} rows dropped ({miss})")
    if collapsed:
        meta["notes"].append(COLLAPSE_NOTE.format(merges=merges_text(collapsed)))
    meta["notes"] += notes
    out = result_dict(result, meta=meta, n_modindices=n_modindices, level=level)
    if est == "WLSMV":
        out["collapsed_categories"] = collapsed
    return out
