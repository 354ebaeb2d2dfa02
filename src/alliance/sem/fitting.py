"""One fit from data and syntax: sample statistics, the model and the estimator together.

:func:`fit_model` is the object-level entry used by the comparison and invariance modules and
by :func:`alliance.sem.api.fit_cfa`: it reads the variables from the syntax, computes the
sample statistics the estimator needs (moments; polychorics and thresholds of ordered items;
(D)WLS statistics), builds the parameter table and estimates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from alliance.sem.categories import collapse_empty_categories
from alliance.sem.estimate import ESTIMATORS, FitResult, estimate
from alliance.sem.model import ModelSpec
from alliance.sem.samplestats import (
    SampleStats,
    add_continuous_wls,
    ordinal_sample,
    prepare_sample,
    require_finite,
)
from alliance.sem.syntax import model_variables, parse_syntax

__all__ = ["check_args", "collapse", "fit_model", "ordered_items"]


def check_args(estimator: str, missing: str) -> tuple[str, str]:
    """The estimator and missing-data method, checked and in canonical spelling.

    Raises
    ------
    ValueError
        For an unknown estimator or method, or pairwise deletion with ML/MLR.
    """
    est = str(estimator).upper()
    if est not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    miss = str(missing).lower()
    if miss == "ml":
        miss = "fiml"
    if miss not in ("listwise", "fiml", "pairwise"):
        raise ValueError(f"missing must be 'listwise', 'fiml' or 'pairwise', got {missing!r}")
    if miss == "pairwise" and est != "WLSMV":
        raise ValueError(f"missing='pairwise' is for WLSMV; use 'fiml' or 'listwise' with {est}")
    return est, miss


def ordered_items(model: str, ordered: Sequence[str] | bool | None) -> list[str]:
    """The ordered items of a WLSMV model.

    ``None``/``True``: all observed variables; ``False`` or an empty list: none (continuous
    items); or the listed ones (all of them: mixed continuous and ordered indicators are not
    supported).

    Raises
    ------
    ValueError
        For an ``ordered`` that is not a list, names outside the model, or a mixed model.
    """
    ov, _ = model_variables(parse_syntax(model))
    if ordered is None or ordered is True:
        return list(ov)
    if ordered is False:
        return []
    if isinstance(ordered, str) or not isinstance(ordered, Sequence):
        raise ValueError(
            f"ordered must be None, True or a list of item names (or False), got {ordered!r}"
        )
    names = list(ordered)
    unknown = sorted(set(names) - set(ov))
    if unknown:
        raise ValueError(f"ordered variables not in the model: {unknown}")
    if names and set(names) != set(ov):
        raise ValueError(
            "WLSMV here needs every observed indicator ordered, or none (mixed continuous/ordinal "
            f"models are not supported), got continuous {sorted(set(ov) - set(names))}"
        )
    return list(ov) if names else []


def collapse(
    data: pd.DataFrame,
    model: str,
    ordered: Sequence[str] | bool | None,
    group: str | None,
    missing: str,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Collapse empty categories of the model's ordered items (see :mod:`.categories`)."""
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    items = [v for v in ordered_items(model, ordered) if v in data.columns]
    require_finite(data, items)
    if missing not in ("listwise", "pairwise"):
        raise ValueError(f"missing must be 'listwise' or 'pairwise' for WLSMV, got {missing!r}")
    if group is not None and group not in data.columns:
        raise ValueError(f"group column not in the data: {group!r}")
    if not items:
        return data, []
    return collapse_empty_categories(data, items, group, missing)


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
    ordered: Sequence[str] | bool | None = None,
    parameterization: str = "delta",
) -> FitResult:
    """Fit a CFA (ML, MLR or WLSMV) and return the :class:`~alliance.sem.estimate.FitResult`.

    See :func:`alliance.sem.api.fit_cfa` for the arguments. ``sample`` reuses the prepared data
    of an earlier fit of the same variables, groups and missing-data method (the steps of an
    invariance ladder share it, and with it the saturated EM estimates under FIML or the
    polychoric statistics). ``ordered`` (WLSMV only; see :func:`ordered_items`): the ordered
    items, default all; ``False`` fits WLSMV to continuous items (DWLS on the covariances,
    listwise deletion, as lavaan without ``ordered``).

    Raises
    ------
    ValueError
        For bad input (see :func:`alliance.sem.api.fit_cfa`), or fewer observations than free
        parameters.
    """
    est, miss = check_args(estimator, missing)
    if est == "WLSMV" and miss == "fiml":
        raise ValueError("FIML is not available with WLSMV; use 'pairwise' or 'listwise'")
    if est != "WLSMV" and ordered:
        raise ValueError(f"ordered items need estimator='WLSMV', got {est!r}")
    if isinstance(model, ModelSpec):
        spec = model
        if sample is None and spec.ordered:
            sample = ordinal_sample(data, spec.ov, group, miss)
        elif sample is None:
            labels = spec.group_labels if group is not None else None
            sample = prepare_sample(data, spec.ov, group=group, missing=miss, group_labels=labels)
    else:
        statements = parse_syntax(model)
        ov, _ = model_variables(statements)
        items = ordered_items(model, ordered) if est == "WLSMV" else []
        if items:
            if sample is None:
                sample = ordinal_sample(data, ov, group, miss)
            labels = sample.group_labels if group is not None else None
            n_th = {
                v: len(t)
                for v, t in zip(ov, sample.groups[0].ordinal.thresholds, strict=True)  # type: ignore[union-attr]
            }
        else:
            if est == "WLSMV" and miss == "pairwise":
                raise ValueError(
                    "WLSMV on continuous items uses listwise deletion (pairwise is for ordered "
                    "items), got missing='pairwise'"
                )
            if sample is None:
                sample = prepare_sample(data, ov, group=group, missing=miss,
                                        group_labels=group_labels)  # fmt: skip
            labels = sample.group_labels if group is not None else None
            n_th = {}
        spec = ModelSpec.from_syntax(
            model,
            std_lv=std_lv,
            meanstructure=miss == "fiml" or group is not None,
            ordered=items,
            n_thresholds=n_th,
            group_labels=labels,
            group_equal=group_equal,
            group_partial=group_partial,
            orthogonal=orthogonal,
            parameterization=parameterization,
        )
    if (
        list(sample.ov) != list(spec.ov)
        or sample.missing != miss
        or (group is not None and sample.group_labels != list(spec.group_labels))
    ):
        raise ValueError(
            f"the prepared sample ({sample.ov}, {sample.missing}, groups {sample.group_labels}) "
            f"does not match the model ({spec.ov}, {miss}, groups {spec.group_labels})"
        )
    if est == "WLSMV" and any(g.wls is None for g in sample.groups):
        add_continuous_wls(sample, spec.meanstructure)
    if sample.ntotal <= spec.npar and est != "WLSMV":
        raise ValueError(f"fewer observations ({sample.ntotal}) than free parameters ({spec.npar})")
    return estimate(spec, sample, est)
