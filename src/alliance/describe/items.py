"""Item and dataset descriptions: distributions, ceiling effects, missingness, item-total, EFA."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from alliance.data.instruments import Instrument
from alliance.data.scoring import check_on_scale, item_matrix
from alliance.describe import efa
from alliance.describe.reliability import alpha_by_factor, alpha_table
from alliance.jsonio import jsonable

ID_COLUMNS = ("patient_id", "session", "rater")


def _factor_of(instrument: Instrument) -> dict[str, str]:
    """Map each item to the (first) factor it belongs to."""
    owner: dict[str, str] = {}
    for factor, members in instrument.factors.items():
        for item in members:
            owner.setdefault(item, factor)
    return owner


def select_rows(
    items: pd.DataFrame,
    instrument: Instrument,
    session: int | None = None,
    rater: str | None = "client",
) -> tuple[pd.DataFrame, str]:
    """Select the rows of one rater (and one session, if given) and state the rule.

    Parameters
    ----------
    items
        Tidy item table (``docs/data-model.md``).
    instrument
        The instrument whose item columns must be present.
    session
        A session number, or None for every session.
    rater
        A rater perspective (``client``, ``therapist``, ...), or None for every rater.

    Returns
    -------
    rows, rule
        The selected rows (original index) and a description of the selection.

    Raises
    ------
    ValueError
        If columns are missing, values are off the scale, or no row is selected.

    """
    needed = [c for c in ID_COLUMNS if c not in items.columns]
    if needed:
        raise ValueError(f"the item table needs ID columns {list(ID_COLUMNS)}, missing {needed}")
    check_on_scale(items, instrument)
    keep = pd.Series(True, index=items.index)
    parts = []
    if rater is not None:
        keep &= (items["rater"] == rater).fillna(False).astype(bool)
        parts.append(f"rater == {rater!r}")
    else:
        parts.append("all raters")
    if session is not None:
        if isinstance(session, bool) or not isinstance(session, int | np.integer):
            raise ValueError(f"session must be an integer or None, got {session!r}")
        keep &= (items["session"] == session).fillna(False).astype(bool)
        parts.append(f"session == {session}")
    else:
        parts.append("all sessions")
    rows = items.loc[keep.to_numpy()]
    if rows.empty:
        present = sorted(items["rater"].dropna().unique().tolist())
        raise ValueError(
            f"no rows for rater={rater!r}, session={session!r}; raters present: {present}"
        )
    return rows, ", ".join(parts)


def describe_items(
    items: pd.DataFrame,
    instrument: Instrument,
    session: int | None = None,
    rater: str | None = "client",
) -> dict[str, pd.DataFrame]:
    """Describe item distributions, ceiling and floor effects, missingness and item-total fit.

    Parameters
    ----------
    items
        Tidy item table (``docs/data-model.md``): ``patient_id``, ``session``, ``rater`` and
        one numeric column per instrument item, NaN for non-response.
    instrument
        The scoring key.
    session
        Describe this session only, or every session (None; rows of the same patient at
        different sessions are then pooled).
    rater
        Rater perspective to describe, or None for all.

    Returns
    -------
    dict of pandas.DataFrame
        ``sample``
            One row: ``rater``, ``session``, ``rule``, ``n_rows``, ``n_patients``.
        ``counts``, ``proportions``
            Items (instrument order, grouped by factor) x response categories (for a
            continuous scale its unit intervals, named by their lower end): the number and
            the share of answered responses in each (rows of ``proportions`` sum to 1;
            all-zero categories are kept).
        ``item_stats``
            Per item: ``factor``, ``n_answered``, ``mean``, ``sd``, ``skew`` (adjusted
            Fisher-Pearson G1), ``kurtosis`` (excess, G2), ``floor_share`` and
            ``ceiling_share`` (share of answers at the scale's lowest and highest value).
        ``missing_by_item``
            Per item: ``n_rows``, ``n_missing``, ``share_missing`` in the selected rows.
        ``missing_by_session``
            Sessions x items: share of the rater's rows with the item missing, over every
            session (regardless of ``session``), for the missingness heatmap.
        ``item_total``
            Per factor and item: the corrected item-total correlation ``r_drop`` (item with
            the sum of the other items of its factor, after reverse keying), ``r_cor``,
            ``alpha_if_dropped`` and ``n``; pairwise-complete covariances as ``psych::alpha``.
        ``reliability``
            :func:`alliance.describe.reliability.alpha_table` of every factor and the total.

    Raises
    ------
    ValueError
        As :func:`select_rows`.

    References
    ----------
    Joanes, D. N., & Gill, C. A. (1998). Comparing measures of sample skewness and kurtosis.
    *The Statistician, 47*(1), 183-189.

    """
    rows, rule = select_rows(items, instrument, session, rater)
    values = item_matrix(rows, instrument.items)
    owner = _factor_of(instrument)
    order = [i for members in instrument.factors.values() for i in members]
    order += [i for i in instrument.items if i not in order]
    order = list(dict.fromkeys(order))
    # the categories, or a continuous scale's unit intervals (Instrument.response_bins)
    categories = list(instrument.response_bins)
    binned = instrument.response_bin(values)

    counts = pd.DataFrame(
        [[int(np.sum(binned[:, j] == c)) for c in categories] for j in range(values.shape[1])],
        index=pd.Index(instrument.items, name="item"),
        columns=pd.Index(categories, name="category"),
    ).loc[order]
    answered = counts.sum(axis=1)
    proportions = counts.div(answered.where(answered > 0), axis=0)
    # floor and ceiling: answers at the scale's ends (a category's share, or on a continuous
    # scale the share exactly at its ends)
    at_end = pd.DataFrame(
        {
            "floor": np.sum(values == instrument.scale_min, axis=0),
            "ceiling": np.sum(values == instrument.scale_max, axis=0),
        },
        index=instrument.items,
    ).loc[order]
    end_shares = at_end.div(answered.where(answered > 0), axis=0)
    from scipy import stats  # here, not at the top: the CFA jobs import this module too

    def moments(col: np.ndarray) -> tuple[float, float, float, float]:
        col = col[~np.isnan(col)]
        if col.size < 4 or np.ptp(col) == 0:
            mean = float(col.mean()) if col.size else math.nan
            sd = float(col.std(ddof=1)) if col.size > 1 else math.nan
            return mean, sd, math.nan, math.nan
        return (
            float(col.mean()),
            float(col.std(ddof=1)),
            float(stats.skew(col, bias=False)),
            float(stats.kurtosis(col, bias=False)),
        )

    moment_rows = {item: moments(values[:, j]) for j, item in enumerate(instrument.items)}
    item_stats = pd.DataFrame(
        {
            "factor": [owner.get(i, "") for i in order],
            "n_answered": answered.loc[order].to_numpy(),
            "mean": [moment_rows[i][0] for i in order],
            "sd": [moment_rows[i][1] for i in order],
            "skew": [moment_rows[i][2] for i in order],
            "kurtosis": [moment_rows[i][3] for i in order],
            "floor_share": end_shares["floor"].to_numpy(),
            "ceiling_share": end_shares["ceiling"].to_numpy(),
        },
        index=pd.Index(order, name="item"),
    )

    n_missing = pd.Series(np.isnan(values).sum(axis=0), index=instrument.items).loc[order]
    missing_by_item = pd.DataFrame(
        {
            "n_rows": len(rows),
            "n_missing": n_missing.to_numpy(),
            "share_missing": n_missing.to_numpy() / len(rows),
        },
        index=pd.Index(order, name="item"),
    )

    rater_rows, _ = select_rows(items, instrument, None, rater)
    flags = pd.DataFrame(
        np.isnan(item_matrix(rater_rows, instrument.items)),
        columns=instrument.items,
        index=rater_rows.index,
    ).astype(float)
    flags["session"] = rater_rows["session"].to_numpy()
    missing_by_session = flags.groupby("session", sort=True)[order].mean()
    missing_by_session.columns.name = "item"

    results = alpha_by_factor(rows, instrument, use="pairwise")
    item_rows = []
    for factor in instrument.factors:
        res = results[factor]
        for item in res["items"]:
            item_rows.append(
                {
                    "factor": factor,
                    "item": item,
                    "n": int(res["item_stats"].loc[item, "n"]),
                    "r_drop": float(res["item_stats"].loc[item, "r_drop"]),
                    "r_cor": float(res["item_stats"].loc[item, "r_cor"]),
                    "alpha_if_dropped": float(res["alpha_if_dropped"].loc[item, "raw_alpha"]),
                }
            )
    item_total = pd.DataFrame(item_rows).set_index(["factor", "item"])

    sample = pd.DataFrame(
        {
            "rater": [rater if rater is not None else "all"],
            "session": [session if session is not None else "all"],
            "rule": [rule],
            "n_rows": [len(rows)],
            "n_patients": [int(rows["patient_id"].nunique())],
        }
    )
    return {
        "sample": sample,
        "counts": counts,
        "proportions": proportions,
        "item_stats": item_stats,
        "missing_by_item": missing_by_item,
        "missing_by_session": missing_by_session,
        "item_total": item_total,
        "reliability": alpha_table(results),
    }


def one_row_per_patient(
    items: pd.DataFrame,
    instrument: Instrument,
    session: int | None = None,
    rater: str | None = "client",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Choose one row per patient for analyses that assume independent respondents.

    With ``session`` given, each patient's row at that session; otherwise each patient's
    earliest session with at least one answered item. Should a patient still have several
    rows (for example two raters when ``rater`` is None), the one with the smallest
    ``source_row`` (else the first in table order) is kept.

    Returns
    -------
    rows, sample
        The chosen rows and a JSON-serialisable account: ``rule``, ``n_rows_selected``
        (rows of the rater/session), ``n_patients``, ``n_rows_used``,
        ``n_duplicates_dropped``.

    """
    rows, rule = select_rows(items, instrument, session, rater)
    answered = ~np.isnan(item_matrix(rows, instrument.items)).all(axis=1)
    candidates = rows.loc[answered]
    if session is None:
        rule += "; per patient the earliest session with at least one answered item"
    else:
        rule += "; rows with no answered item are left out"
    sort_cols = ["patient_id", "session"] + (
        ["source_row"] if "source_row" in candidates.columns else []
    )
    ordered = candidates.sort_values(sort_cols, kind="stable", na_position="last")
    first_session = ordered.groupby("patient_id", sort=False)["session"].transform("first")
    same = (ordered["session"] == first_session).fillna(False).astype(bool)
    at_first = ordered.loc[same.to_numpy()]
    chosen = at_first.drop_duplicates("patient_id", keep="first")
    sample = {
        "rule": rule,
        "n_rows_selected": int(len(rows)),
        "n_patients": int(rows["patient_id"].nunique()),
        "n_rows_used": int(len(chosen)),
        "n_duplicates_dropped": int(len(at_first) - len(chosen)),
    }
    return chosen, sample


def describe_dataset(
    items: pd.DataFrame,
    instrument: Instrument,
    session: int | None = None,
    rater: str | None = "client",
    use: str = "complete",
    n_iter: int = 100,
    quantile: float = 0.95,
    seed: int = 20261125,
) -> dict[str, Any]:
    """Factorability and dimensionality of one row per patient: KMO, Bartlett, PA and EFA.

    The sample is explicit: rows of ``rater`` at ``session`` (or each patient's earliest
    answered session), one per patient (:func:`one_row_per_patient`), then complete cases
    (``use="complete"``, listwise deletion) or pairwise-complete correlations
    (``use="pairwise"``; tests then use the smallest pairwise n). On that sample the
    function runs :func:`alliance.describe.efa.kmo`,
    :func:`alliance.describe.efa.bartlett_sphericity`,
    :func:`alliance.describe.efa.parallel_analysis` (Horn 1965) and
    :func:`alliance.describe.efa.exploratory_factor_analysis` with as many factors as the instrument
    has (minres, oblimin); when parallel analysis suggests another number of factors,
    ``efa.warnings`` says both. A step that fails (a singular correlation matrix, too few
    rows) records ``{"error": message}`` instead of stopping the others.

    Parameters
    ----------
    items
        Tidy item table (``docs/data-model.md``).
    instrument
        The scoring key; its items are analysed as answered (not reverse-keyed: keying
        only flips signs of loadings and correlations).
    session, rater
        Which rows describe a patient (see :func:`one_row_per_patient`).
    use
        ``"complete"`` or ``"pairwise"``.
    n_iter, quantile, seed
        Parallel-analysis settings; ``seed`` makes the random eigenvalues reproducible.

    Returns
    -------
    dict
        JSON-serialisable: ``instrument``, ``sample`` (``rule``, ``missing_data``,
        ``n_rows_selected``, ``n_patients``, ``n_rows_used``, ``n_complete``,
        ``n_duplicates_dropped``, ``n_obs``), ``kmo``, ``bartlett``, ``parallel_analysis``,
        ``efa``; NaN is written as null.

    Raises
    ------
    ValueError
        If ``use`` is unknown, or as :func:`select_rows`.

    References
    ----------
    Horn, J. L. (1965). A rationale and test for the number of factors in factor analysis.
    *Psychometrika, 30*(2), 179-185.

    Kaiser, H. F. (1970). A second generation little jiffy. *Psychometrika, 35*(4), 401-415.

    """
    if use not in efa.USES:
        raise ValueError(f"use must be one of {efa.USES}, got {use!r}")
    rows, sample = one_row_per_patient(items, instrument, session, rater)
    data = rows.loc[:, list(instrument.items)].astype(float)
    complete = data.notna().all(axis=1)
    sample["n_complete"] = int(complete.sum())
    if use == "complete":
        sample["missing_data"] = "complete cases (listwise deletion of rows with a missing item)"
    else:
        sample["missing_data"] = "pairwise-complete correlations; tests use the smallest pairwise n"
    n_factors = len(instrument.factors)
    steps = {
        "kmo": lambda: efa.kmo(data, use=use),
        "bartlett": lambda: efa.bartlett_sphericity(data, use=use),
        "parallel_analysis": lambda: efa.parallel_analysis(
            data, n_iter=n_iter, quantile=quantile, rng=seed, use=use
        ),
        "efa": lambda: efa.exploratory_factor_analysis(
            data, n_factors, rotation="oblimin", method="minres", use=use
        ),
    }
    out: dict[str, Any] = {
        "instrument": {"name": instrument.name, "n_items": len(instrument.items)},
        "sample": sample,
    }
    for name, step in steps.items():
        try:
            result = step()
        except ValueError as err:
            out[name] = {"error": str(err)}
            continue
        out[name] = result
        sample.setdefault("n_obs", result["n_obs"])
    if "error" not in out["parallel_analysis"]:
        out["parallel_analysis"]["seed"] = seed
        suggested = out["parallel_analysis"]["n_factors"]
        if "error" not in out["efa"] and suggested != n_factors:
            out["efa"]["warnings"].append(
                f"{n_factors} factors were extracted (the factors of {instrument.name}) where "
                f"parallel analysis suggests {suggested}: "
                + (
                    "the data separate fewer factors from random data than the instrument "
                    "has, so some extracted factors may be weak, nearly collinear with another "
                    "or noise"
                    if suggested < n_factors
                    else "the data may hold more factors than the instrument has"
                )
            )
    return jsonable(out)
