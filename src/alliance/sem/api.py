"""Public entry points: fit_cfa() and invariance_ladder(), returning lavaan-layout JSON dicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from alliance.sem.estimate import (
    FitResult,
    SampleStats,
    estimate,
    parameter_rows,
    prepare_sample,
    standardized_rows,
)
from alliance.sem.fit import fit_measures
from alliance.sem.model import ModelSpec
from alliance.sem.validity import (
    admissibility,
    factor_correlations,
    htmt,
    mark_not_identified,
    modification_indices,
    not_identified,
    reliability,
    residual_correlations,
)

__all__ = ["ESTIMATORS", "FIT_NAMES", "ROBUST_NAMES", "fit_cfa", "fit_model", "invariance_ladder"]

#: Estimators understood by :func:`fit_cfa`.
ESTIMATORS = ("ML", "MLR", "WLSMV")

#: The ``fit`` block of the reference files (lavaan ``fitMeasures`` names).
FIT_NAMES = (
    "npar", "ntotal", "chisq", "df", "pvalue", "cfi", "tli", "rmsea", "rmsea.ci.lower",
    "rmsea.ci.upper", "rmsea.pvalue", "srmr", "logl", "unrestricted.logl", "aic", "bic", "bic2",
    "baseline.chisq", "baseline.df", "baseline.pvalue",
)  # fmt: skip
#: Added to ``fit`` for MLR (and WLSMV).
ROBUST_NAMES = (
    "chisq.scaled", "df.scaled", "pvalue.scaled", "chisq.scaling.factor",
    "baseline.chisq.scaled", "baseline.df.scaled", "cfi.scaled", "tli.scaled", "rmsea.scaled",
    "rmsea.ci.lower.scaled", "rmsea.ci.upper.scaled", "cfi.robust", "tli.robust",
    "rmsea.robust", "rmsea.ci.lower.robust", "rmsea.ci.upper.robust", "srmr_bentler",
)  # fmt: skip


def _clean(obj: Any) -> Any:
    """Make a nested structure JSON-serialisable (numpy scalars, nan -> None)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def _check_args(estimator: str, missing: str) -> tuple[str, str]:
    est = str(estimator).upper()
    if est not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    miss = str(missing).lower()
    if miss == "ml":
        miss = "fiml"
    if miss not in ("listwise", "fiml", "pairwise"):
        raise ValueError(f"missing must be 'listwise', 'fiml' or 'pairwise', got {missing!r}")
    if miss == "fiml" and est == "WLSMV":
        return est, miss
    if miss == "pairwise" and est != "WLSMV":
        raise ValueError(f"missing='pairwise' is for WLSMV; use 'fiml' or 'listwise' with {est}")
    return est, miss


def fit_model(
    data: pd.DataFrame,
    model: str | ModelSpec,
    estimator: str = "ML",
    missing: str = "listwise",
    group: str | None = None,
    std_lv: bool = False,
    group_equal: Sequence[str] = (),
    group_partial: Sequence[str] = (),
    orthogonal: bool = False,
    group_labels: Sequence[str] | None = None,
    sample: SampleStats | None = None,
) -> FitResult:
    """Fit a continuous-indicator CFA (ML/MLR, listwise or FIML) and return the raw result.

    See :func:`fit_cfa` for the arguments; this is the object-level version used by the
    comparison and invariance modules. ``sample`` reuses the prepared data of an earlier fit
    of the same variables, groups and missing-data method (the steps of an invariance
    ladder share it, and with it the saturated EM estimates under FIML).
    """
    est, miss = _check_args(estimator, missing)
    if est == "WLSMV":
        raise ValueError("fit_model handles ML and MLR; WLSMV goes through fit_cfa")
    if isinstance(model, ModelSpec):
        spec = model
        labels = spec.group_labels if group is not None else None
    else:
        if group is not None:
            if group not in data.columns:
                raise ValueError(f"group column {group!r} not in the data")
            col = data[group].dropna().astype(str)
            labels = list(group_labels) if group_labels else list(dict.fromkeys(col))
            if len(labels) < 2:
                raise ValueError(f"group column {group!r} needs at least 2 levels, got {labels}")
        else:
            labels = None
        spec = ModelSpec.from_syntax(
            model,
            std_lv=std_lv,
            meanstructure=miss == "fiml" or group is not None,
            group_labels=labels,
            group_equal=group_equal,
            group_partial=group_partial,
            orthogonal=orthogonal,
        )
    if sample is None:
        sample = prepare_sample(data, spec.ov, group=group, missing=miss, group_labels=labels)
    elif (
        list(sample.ov) != list(spec.ov)
        or sample.missing != miss
        or (group is not None and sample.group_labels != list(spec.group_labels))
    ):
        raise ValueError(
            f"the prepared sample ({sample.ov}, {sample.missing}, groups {sample.group_labels}) "
            f"does not match the model ({spec.ov}, {miss}, groups {spec.group_labels})"
        )
    if sample.ntotal <= spec.npar:
        raise ValueError(f"fewer observations ({sample.ntotal}) than free parameters ({spec.npar})")
    return estimate(spec, sample, est)


def result_dict(
    result: FitResult,
    *,
    meta: dict[str, Any] | None = None,
    details: bool = True,
    n_modindices: int = 10,
) -> dict[str, Any]:
    """The reference-file layout for a fitted :class:`FitResult`.

    Keys: ``meta, converged, nobs, ntotal, fit, fit_all, parameters, standardized`` and,
    with ``details``, ``reliability, factor_correlations, htmt, residual_correlations,
    modindices, status``; ``group_labels`` for several groups.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _result_dict(result, meta, details, n_modindices)


def _result_dict(
    result: FitResult, meta: dict[str, Any] | None, details: bool, n_modindices: int
) -> dict[str, Any]:
    fm = fit_measures(result)
    names = FIT_NAMES + (ROBUST_NAMES if result.estimator != "ML" else ())
    unidentified = None
    if fm.get("df") is not None and fm["df"] < 0:  # more parameters than sample statistics
        unidentified = not_identified(fm["npar"], fm["df"])
        fm = {k: fm.get(k) for k in ("npar", "df", "ntotal")}
    fit = {k: fm.get(k) for k in names}
    std = standardized_rows(result)
    out: dict[str, Any] = {
        "meta": meta or {},
        "converged": result.converged,
        "nobs": [g.n for g in result.sample.groups],
        "ntotal": result.ntotal,
        "fit": fit,
        "fit_all": fm,
        "parameters": parameter_rows(result),
        "standardized": std,
    }
    if result.spec.ngroups > 1:
        out["group_labels"] = list(result.spec.group_labels)
    if details:
        out["reliability"] = reliability(result)
        out["factor_correlations"] = factor_correlations(result, std)
        spec = result.spec
        fo = {f: spec.indicators(f) for f in spec.first_order()}
        out["htmt"] = (
            htmt(result.sample.groups[0].cov, spec.ov, fo)
            if spec.ngroups == 1
            else [
                {"group": lab, **htmt(g.cov, spec.ov, fo)}
                for lab, g in zip(spec.group_labels, result.sample.groups, strict=True)
            ]
        )
        out["residual_correlations"] = residual_correlations(result)
        try:
            out["modindices"] = modification_indices(result, top=n_modindices)
        except (np.linalg.LinAlgError, ValueError) as err:
            out["modindices"] = []
            result.warnings.append(f"modification indices unavailable: {err}")
        out["status"] = admissibility(result, std)
        if unidentified:
            mark_not_identified(out["status"], unidentified)
    return _clean(out)


def _meta(
    model: str, estimator: str, missing: str, group: str | None, std_lv: bool, notes: list[str]
) -> dict[str, Any]:
    from alliance import __version__ as version

    lav = {"ML": ("standard", "standard"), "MLR": ("yuan.bentler.mplus", "robust.huber.white")}
    test, se = lav.get(estimator, ("", ""))
    return {
        "software": f"alliance {version} (alliance.sem)",
        "model": model,
        "estimator": estimator,
        "lavaan_estimator": "ML" if estimator in ("ML", "MLR") else "DWLS",
        "test": test,
        "se": se,
        "information": "expected" if estimator == "ML" and missing == "listwise" else "observed",
        "missing_requested": missing,
        "lavaan_missing": "ml" if missing == "fiml" else missing,
        "ordered": [],
        "std.lv": std_lv,
        "group": group,
        "warnings": [],
        "notes": notes,
    }


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
) -> dict[str, Any]:
    """Fit a CFA and return a JSON-serialisable dict in the layout of the lavaan references.

    Parameters
    ----------
    data
        One row per respondent; the model's items as numeric columns.
    model
        lavaan model syntax.
    estimator
        ``"ML"`` (normal-theory SEs from the expected information, likelihood chi-square),
        ``"MLR"`` (Huber-White SEs, Yuan-Bentler-Mplus scaled test, scaled and robust fit
        indices) or ``"WLSMV"`` (ordinal; dispatched to :mod:`alliance.sem.wlsmv`).
    missing
        ``"listwise"`` or ``"fiml"`` (ML/MLR; lavaan ``missing = "ml"``); ``"pairwise"`` for
        WLSMV.
    group
        Optional grouping column: a multi-group (configural unless ``group_equal``) model.
    std_lv
        Identify factors by unit variances instead of marker indicators.
    ordered
        WLSMV only: ordered items (``True`` = all model items).
    orthogonal
        Fix all factor covariances to zero (bifactor models).
    group_equal
        Equality constraints across groups (lavaan ``group.equal``).
    n_modindices
        How many of the largest modification indices to report.
    parameterization
        WLSMV only: ``"delta"`` (lavaan's default) or ``"theta"`` scaling of the latent
        responses (see :func:`alliance.sem.wlsmv.fit_wlsmv_model`); ignored for ML/MLR, as
        lavaan ignores it for continuous items.
    collapse_empty_categories
        WLSMV only: merge a category without responses in some group (or in the rows kept
        by listwise deletion) with an adjacent category of the same item in every group,
        instead of stopping as lavaan does; recorded in ``collapsed_categories`` (see
        :func:`alliance.sem.categories.collapse_empty_categories`).

    Returns
    -------
    dict
        ``meta, converged, nobs, ntotal, fit, fit_all, parameters, standardized,
        reliability, factor_correlations, htmt, residual_correlations, modindices, status``.
        Estimation problems (non-convergence, Heywood cases, singular information) are
        reported in ``converged`` and ``status``, never raised.

    Raises
    ------
    ValueError
        For bad input: syntax errors, items not in the data, non-numeric or constant items,
        a grouping column with one level or an empty group, fewer rows than parameters, an
        unknown estimator or missing-data method.
    """
    est, miss = _check_args(estimator, missing)
    if est == "WLSMV":
        from alliance.sem import wlsmv  # lazy: written separately

        if miss == "fiml":  # as lavaan (and cfa.R): no FIML with WLSMV
            out = fit_cfa(data, model, est, "pairwise", group, std_lv, ordered=ordered,
                          group_equal=group_equal, n_modindices=n_modindices,
                          parameterization=parameterization,
                          collapse_empty_categories=collapse_empty_categories)  # fmt: skip
            out.setdefault("meta", {}).setdefault("notes", []).append(
                "FIML is not available with WLSMV; used missing='pairwise' instead."
            )
            return out
        return wlsmv.fit_wlsmv(
            data,
            model,
            ordered=ordered,
            missing=miss,
            group=group,
            group_equal=tuple(group_equal),
            std_lv=std_lv,
            n_modindices=n_modindices,
            parameterization=parameterization,
            collapse_empty_categories=collapse_empty_categories,
        )
    if ordered:
        raise ValueError(f"ordered items need estimator='WLSMV', got {est!r}")
    result = fit_model(
        data,
        model,
        est,
        miss,
        group=group,
        std_lv=std_lv,
        group_equal=group_equal,
        orthogonal=orthogonal,
    )
    notes: list[str] = []
    if result.sample.n_dropped:
        notes.append(f"{result.sample.n_dropped} rows dropped ({miss})")
    meta = _meta(model, est, miss, group, std_lv, notes)
    meta["warnings"] = list(result.warnings)
    return result_dict(result, meta=meta, n_modindices=n_modindices)


def invariance_ladder(
    data: pd.DataFrame,
    model: str,
    group: str,
    estimator: str = "ML",
    missing: str = "listwise",
    steps: Sequence[str] = ("configural", "metric", "scalar", "strict"),
    parameterization: str = "delta",
    collapse_empty_categories: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Measurement-invariance ladder across ``group``; see :func:`alliance.sem.invariance.ladder`.

    Returns ``{"configural": ..., "metric": ..., "scalar": ..., "strict": ..., "lrt": ...,
    "deltas": ..., "decisions": ..., "partial": ...}`` (the reference ``invariance`` layout
    plus decisions and partial-invariance candidates). WLSMV is dispatched to
    :func:`alliance.sem.wlsmv.invariance_ladder` with ``parameterization`` (``"theta"`` fits
    the strict step; ``"delta"`` leaves it out with a note) and ``collapse_empty_categories``
    (merge a category without responses in some group with an adjacent one in every group,
    recorded in ``collapsed_categories``; otherwise such a category raises ``ValueError``,
    as in lavaan); ML/MLR ignore both.
    """
    est, miss = _check_args(estimator, missing)
    if est == "WLSMV":
        from alliance.sem import wlsmv

        if miss == "fiml":  # as fit_cfa: no FIML with WLSMV
            out = wlsmv.invariance_ladder(
                data, model, group, missing="pairwise", steps=steps,
                parameterization=parameterization,
                collapse_empty_categories=collapse_empty_categories, **kwargs,
            )  # fmt: skip
            out["notes"].append(
                "FIML is not available with WLSMV; used missing='pairwise' instead."
            )
            return out
        return wlsmv.invariance_ladder(
            data, model, group, missing=miss, steps=steps, parameterization=parameterization,
            collapse_empty_categories=collapse_empty_categories, **kwargs,
        )  # fmt: skip
    from alliance.sem.invariance import ladder

    return _clean(ladder(data, model, group, est, miss, steps=steps, **kwargs))
