"""Subscale and total scores: reverse keying, prorated sums and answered counts per factor."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alliance.data.instruments import Instrument

TOTAL = "total"


def item_matrix(items: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> np.ndarray:
    """Return ``items[columns]`` as a float array with NaN for missing values.

    Parameters
    ----------
    items
        A table holding the item columns (nullable ``Float64`` or plain numeric dtypes).
    columns
        Item columns to extract, in this order.

    Returns
    -------
    numpy.ndarray
        Array of shape ``(len(items), len(columns))``.

    Raises
    ------
    ValueError
        If a column is missing or not numeric.

    """
    missing = [c for c in columns if c not in items.columns]
    if missing:
        raise ValueError(f"item columns missing from the table, got {missing}")
    not_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(items[c])]
    if not_numeric:
        raise ValueError(f"item columns must be numeric, got non-numeric columns {not_numeric}")
    return items.loc[:, list(columns)].to_numpy(dtype=float, na_value=np.nan)


def check_on_scale(items: pd.DataFrame, instrument: Instrument) -> None:
    """Raise if an answered item lies outside the instrument's response scale.

    Raises
    ------
    ValueError
        Naming the first offending item and value.

    """
    values = item_matrix(items, instrument.items)
    bad = ~np.isnan(values) & ((values < instrument.scale_min) | (values > instrument.scale_max))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"item {instrument.items[col]!r} must lie in [{instrument.scale_min}, "
            f"{instrument.scale_max}] for {instrument.name!r}, got {values[row, col]} "
            f"({int(bad.sum())} value(s) off the scale)"
        )


def reverse_key(items: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
    """Return a copy of ``items`` with the instrument's reverse-keyed items reversed.

    A reverse-keyed answer ``x`` is scored ``scale_min + scale_max - x``, so that a high score
    means more of the construct for every item. Missing answers stay missing.

    Parameters
    ----------
    items
        Tidy item table (see ``docs/data-model.md``) on the instrument's scale.
    instrument
        The scoring key.

    Returns
    -------
    pandas.DataFrame
        A copy; other columns are unchanged.

    """
    check_on_scale(items, instrument)
    out = items.copy()
    for item in instrument.reverse_keyed:
        out[item] = instrument.scale_min + instrument.scale_max - out[item]
    return out


def score_items(
    items: pd.DataFrame, instrument: Instrument, min_answered_share: float = 0.75
) -> pd.DataFrame:
    """Score every factor (subscale) and the total of an instrument, one row per input row.

    Reverse-keyed items are reversed first (``scale_min + scale_max - x``). For each factor,
    and for the total over all items when ``instrument.total`` is true, the output holds

    - ``{factor}_mean``: mean of the answered items;
    - ``{factor}_sum``: prorated sum, the mean times the number of items in the factor (equal
      to the plain sum when every item is answered);
    - ``{factor}_answered``: number of items answered.

    A score (mean and sum) is missing when fewer than ``min_answered_share`` of the factor's
    items are answered (the usual proration rule for questionnaire scoring; e.g. Hatcher &
    Gillaspy 2006 score the WAI-SR subscales as item means).

    Parameters
    ----------
    items
        Tidy item table (``docs/data-model.md``): ID columns, then one numeric column per
        instrument item, NaN for item non-response, values on the instrument's scale and not
        reverse-keyed.
    instrument
        The scoring key (:func:`alliance.data.instruments.load_instrument`).
    min_answered_share
        Smallest share of a factor's items that must be answered for a score, in (0, 1].

    Returns
    -------
    pandas.DataFrame
        Every non-item column of ``items`` (IDs, groups, ``source_row``) in input order and
        index, followed by the score columns (``Float64`` means and sums, ``Int64`` counts).

    Raises
    ------
    ValueError
        If ``min_answered_share`` is outside (0, 1], an item column is missing or not
        numeric, a value lies off the scale, or a factor is named ``total`` while the
        instrument also has a total.

    References
    ----------
    Hatcher, R. L., & Gillaspy, J. A. (2006). Development and validation of a revised short
    version of the Working Alliance Inventory. *Psychotherapy Research, 16*(1), 12-25.

    """
    if isinstance(min_answered_share, bool) or not isinstance(min_answered_share, int | float):
        raise ValueError(f"min_answered_share must be a number, got {min_answered_share!r}")
    if not 0 < min_answered_share <= 1:
        raise ValueError(f"min_answered_share must lie in (0, 1], got {min_answered_share}")
    if instrument.total and TOTAL in instrument.factors:
        raise ValueError(
            f"a factor named {TOTAL!r} clashes with the instrument total, got factors "
            f"{list(instrument.factors)}"
        )
    keyed = reverse_key(items, instrument)
    scales: dict[str, tuple[str, ...]] = dict(instrument.factors)
    if instrument.total:
        scales[TOTAL] = instrument.items

    item_set = set(instrument.items)
    out = items.loc[:, [c for c in items.columns if c not in item_set]].copy()
    for name, members in scales.items():
        values = item_matrix(keyed, members)
        answered = (~np.isnan(values)).sum(axis=1)
        n_items = len(members)
        needed = math.ceil(min_answered_share * n_items - 1e-9)
        enough = answered >= needed
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(values, axis=1) / answered
        mean = np.where(enough, mean, np.nan)
        out[f"{name}_mean"] = pd.array(mean, dtype="Float64")
        out[f"{name}_sum"] = pd.array(mean * n_items, dtype="Float64")
        out[f"{name}_answered"] = pd.array(answered, dtype="Int64")
    # pd.array turns NaN into <NA> for Float64, so missing scores are proper missing values.
    return out
