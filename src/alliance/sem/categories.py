"""Empty categories of ordered items across groups: find them and collapse them with a neighbour.

A multi-group model for ordered items has one set of thresholds per item, the same number in
every group (lavaan's and Mplus's requirement): a category that nobody chose in one group has
no threshold there, and the WLS statistics cannot be computed (lavaan stops with "some
categories of variable ... are empty in group ..."). The remedy used in multi-group ordinal
CFA is to collapse the empty category with an adjacent one *for that item in all groups*, so
the item keeps the same categories, hence comparable thresholds, in every group (Rutkowski,
Svetina & Liaw 2019). :func:`collapse_empty_categories` does that and records each merge.

References
----------
Rutkowski, L., Svetina, D., & Liaw, Y.-L. (2019). Collapsing categorical variables and
measurement invariance. Structural Equation Modeling, 26(5), 790-802 (preprint: The effects
of collapsing ordered categorical variables on tests of measurement invariance,
doi:10.14434/iusw.464).
Liu, Y., Millsap, R. E., West, S. G., Tein, J.-Y., Tanaka, R., & Grimm, K. J. (2017). Testing
measurement invariance in longitudinal data with ordered-categorical measures. Psychological
Methods, 22(3), 486-506.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COLLAPSE_NOTE", "collapse_empty_categories", "empty_categories", "merges_text"]

COLLAPSE_NOTE = (
    "Ordered categories without responses in some group were merged with an adjacent "
    "category of the same item in every group (so that each item has the same categories and "
    "comparable thresholds in all groups; Rutkowski, Svetina & Liaw 2019): {merges}. The "
    "collapsed items have fewer thresholds, and collapsing can change fit (see "
    "collapsed_categories)"
)


def _item_values(data: pd.DataFrame, item: str) -> np.ndarray:
    return pd.to_numeric(data[item], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _rows_used(data: pd.DataFrame, items: Sequence[str], missing: str) -> np.ndarray:
    """Rows that enter the WLS statistics (listwise: complete on ``items``; pairwise: any)."""
    values = np.column_stack([_item_values(data, v) for v in items])
    observed = ~np.isnan(values)
    return observed.all(axis=1) if missing == "listwise" else observed.any(axis=1)


def _group_keys(data: pd.DataFrame, group: str | None) -> tuple[np.ndarray, list[str]]:
    if group is None:
        return np.full(len(data), "1", dtype=object), ["1"]
    if group not in data.columns:
        raise ValueError(f"group column not in the data: {group!r}")
    keys = data[group].astype(str).to_numpy()
    return keys, [str(v) for v in pd.unique(keys)]


def empty_categories(
    data: pd.DataFrame,
    items: Sequence[str],
    group: str | None = None,
    missing: str = "pairwise",
) -> list[dict[str, Any]]:
    """The categories of each item that have no responses in some group.

    Categories are the values observed for the item in all the data (as the WLSMV fit
    defines them); counts use the rows that enter the statistics (``missing``).

    Returns
    -------
    list of dict
        ``{"item", "category", "groups"}`` per empty category, in item and category order.
    """
    if missing not in ("listwise", "pairwise"):
        raise ValueError(f"missing must be 'listwise' or 'pairwise', got {missing!r}")
    keys, labels = _group_keys(data, group)
    used = _rows_used(data, items, missing)
    out = []
    for item in items:
        x = _item_values(data, item)
        levels = np.unique(x[~np.isnan(x)])
        for lev in levels:
            empty = [lab for lab in labels if not np.any(used & (keys == lab) & (x == lev))]
            if empty:
                out.append({"item": item, "category": float(lev), "groups": empty})
    return out


def collapse_empty_categories(
    data: pd.DataFrame,
    items: Sequence[str],
    group: str | None = None,
    missing: str = "pairwise",
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Merge each category that is empty in some group with an adjacent one, in all groups.

    For each item, repeatedly: take the lowest category with no responses in some group
    (counting the rows that enter the statistics, see ``missing``) and recode it to an
    adjacent category of the same item, in every group: the lowest category to the next one
    up, the highest to the next one down, an inner category to the neighbour with fewer
    responses in all groups together (the lower one on a tie). Stop when every remaining
    category of the item has responses in every group. Items without empty categories are
    left as they are.

    Parameters
    ----------
    data : pandas.DataFrame
        Item responses (numeric categories, NaN missing) and the ``group`` column.
    items : sequence of str
        The ordered items to check.
    group : str, optional
        Grouping column; ``None`` checks the data as one group (an empty category then
        only arises from listwise deletion).
    missing : {"pairwise", "listwise"}
        Which rows count: ``"pairwise"`` every answer to the item, ``"listwise"`` only rows
        complete on ``items`` (as the WLSMV sample statistics).

    Returns
    -------
    data : pandas.DataFrame
        A copy with the merged categories recoded (unchanged columns are shared values).
    records : list of dict
        One record per merge: ``item``, ``category`` (the empty category, as recoded so
        far), ``merged_into``, ``original_categories`` (the original values now coded
        ``merged_into``), ``empty_in_groups``, ``counts`` (responses per group to the two
        merged categories, before the merge) and ``reason``.

    Raises
    ------
    ValueError
        For items or the group column not in the data, an unknown ``missing``, or an item
        left with fewer than two categories.

    References
    ----------
    Rutkowski, L., Svetina, D., & Liaw, Y.-L. (2019). Collapsing categorical variables and
    measurement invariance. Structural Equation Modeling, 26(5), 790-802.
    """
    if missing not in ("listwise", "pairwise"):
        raise ValueError(f"missing must be 'listwise' or 'pairwise', got {missing!r}")
    absent = [v for v in items if v not in data.columns]
    if absent:
        raise ValueError(f"items not in the data: {absent}")
    keys, labels = _group_keys(data, group)
    used = _rows_used(data, items, missing)
    out = data.copy()
    records: list[dict[str, Any]] = []
    for item in items:
        x = _item_values(data, item)
        code = x.copy()
        origin = {float(v): [float(v)] for v in np.unique(x[~np.isnan(x)])}
        changed = False
        while True:
            levels = sorted(origin)
            counts = {
                lab: [int(np.sum(used & (keys == lab) & (code == lev))) for lev in levels]
                for lab in labels
            }
            empty_at = [i for i in range(len(levels)) if any(counts[lab][i] == 0 for lab in labels)]
            if not empty_at:
                break
            if len(levels) < 3:
                groups = [lab for lab in labels if 0 in counts[lab]]
                raise ValueError(
                    f"ordered item {item!r} would keep fewer than two categories after "
                    f"collapsing empty ones (categories {levels} in groups {groups}), got "
                    f"counts {counts}"
                )
            i = empty_at[0]
            if i == 0:
                j = 1
            elif i == len(levels) - 1:
                j = i - 1
            else:
                below = sum(counts[lab][i - 1] for lab in labels)
                above = sum(counts[lab][i + 1] for lab in labels)
                j = i + 1 if above < below else i - 1
            src, dst = levels[i], levels[j]
            groups = [lab for lab in labels if counts[lab][i] == 0]
            if group is not None:
                where, scope = f"group(s) {', '.join(groups)}", " in every group"
            elif missing == "listwise":
                where, scope = "the rows kept by listwise deletion", ""
            else:
                where, scope = "the data", ""
            records.append(
                {
                    "item": item,
                    "category": src,
                    "merged_into": dst,
                    "original_categories": sorted(origin[src] + origin[dst]),
                    "empty_in_groups": groups,
                    "counts": {lab: [counts[lab][i], counts[lab][j]] for lab in labels},
                    "reason": f"no responses in category {src:g} of {item} in {where}; "
                    f"merged with the adjacent category {dst:g}{scope}",
                }
            )
            code[code == src] = dst
            origin[dst] = origin[dst] + origin.pop(src)
            changed = True
        if changed:
            out[item] = code
    return out, records


def merges_text(records: Sequence[dict[str, Any]]) -> str:
    """A short list of the merges for notes: ``item: 1 -> 2 (empty in site_001)``."""
    parts = []
    for r in records:
        groups = ", ".join(r["empty_in_groups"][:3])
        more = len(r["empty_in_groups"]) - 3
        if more > 0:
            groups += f" and {more} more"
        parts.append(f"{r['item']}: {r['category']:g} -> {r['merged_into']:g} (empty in {groups})")
    return "; ".join(parts)
