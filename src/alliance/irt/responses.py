"""Item responses as category codes 0..K-1 per item, with empty categories collapsed and noted.

The models of this package need every category of an item between its lowest and highest
to be chosen by someone: an empty category has no threshold (the GRM's intercepts are not
identified, eRm's PCM stops). :func:`response_codes` therefore merges an empty category with
its neighbour below (the top one with the one below it, an empty lowest one with the one
above), *per item*, and returns a note for each merge, never silently (Wetzel & Carstensen
2014 on collapsing in Rasch analyses). Empty categories at either end simply shift the codes:
an item answered only 3-5 on a 1-5 scale gets codes 0-2, also noted.

References
----------
Wetzel, E., & Carstensen, C. H. (2014). Reversed thresholds in partial credit models: A
reason for collapsing categories? Assessment, 21(6), 765-774.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Responses", "response_codes"]

#: The code of a missing response in :attr:`Responses.codes`.
MISSING = -1


@dataclass(frozen=True)
class Responses:
    """Category codes of the respondents who answered at least one item.

    Attributes
    ----------
    items
        Item names, in column order.
    codes
        ``(n, J)`` integers: 0..K_j-1, :data:`MISSING` (-1) for no answer.
    n_categories
        K_j per item (after collapsing).
    categories
        Per item, the scale values each code stands for (``[[1], [2], [3, 4], [5]]``: code 2
        holds the answers 3 and 4 after an empty category was merged).
    notes
        A sentence per collapsed or shifted item.
    n_dropped
        Rows left out because they answered none of the items.
    rows
        Positions (in the input) of the rows kept.
    """

    items: tuple[str, ...]
    codes: np.ndarray
    n_categories: tuple[int, ...]
    categories: tuple[tuple[tuple[int, ...], ...], ...]
    notes: tuple[str, ...] = ()
    n_dropped: int = 0
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))

    @property
    def observed(self) -> np.ndarray:
        """``(n, J)`` booleans: the item was answered."""
        return self.codes != MISSING

    def to_dict(self) -> dict[str, Any]:
        """The coding as JSON data (no response values)."""
        return {
            "items": list(self.items),
            "n_respondents": int(self.codes.shape[0]),
            "n_dropped_no_answer": int(self.n_dropped),
            "n_missing_responses": int((~self.observed).sum()),
            "n_categories": dict(zip(self.items, map(int, self.n_categories), strict=True)),
            "categories": {
                item: [list(c) for c in cats]
                for item, cats in zip(self.items, self.categories, strict=True)
            },
            "notes": list(self.notes),
        }


def _column(data: pd.DataFrame, item: str, scale: Sequence[int], source: str) -> np.ndarray:
    if item not in data.columns:
        raise ValueError(f"{source}: item column {item!r} not found; columns: {list(data.columns)}")
    raw = data[item]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(values) & raw.notna().to_numpy()
    allowed = np.isin(values, np.asarray(scale, dtype=float)) | np.isnan(values)
    bad |= ~allowed
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = raw.iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise ValueError(
            f"{source}: column {item!r}, row {row + 1}: value {value!r} is not a "
            f"category of the scale {list(scale)}"
        )
    return values


def response_codes(
    data: pd.DataFrame,
    items: Sequence[str],
    scale: Sequence[int],
    source: str = "data",
) -> Responses:
    """Category codes of ``items`` on the ordered ``scale``, empty categories merged.

    Parameters
    ----------
    data
        One row per respondent; the item columns hold scale values or missing values.
    items
        The item columns, at least two.
    scale
        The ordered response categories (``[1, 2, 3, 4, 5]``).
    source
        Named in error messages (the file).

    Returns
    -------
    Responses

    Raises
    ------
    ValueError
        A missing column, a value off the scale (naming the column, row and value), fewer
        than two items, or an item with fewer than two observed categories.
    """
    items = [str(i) for i in items]
    if len(items) < 2:
        raise ValueError(f"an item response model needs at least 2 items, got {items!r}")
    scale = [int(s) for s in scale]
    values = np.column_stack([_column(data, item, scale, source) for item in items])
    answered = ~np.isnan(values).all(axis=1)
    values = values[answered]
    codes = np.full(values.shape, MISSING, dtype=int)
    n_cats: list[int] = []
    categories: list[tuple[tuple[int, ...], ...]] = []
    notes: list[str] = []
    for j, item in enumerate(items):
        col = values[:, j]
        seen = [s for s in scale if np.any(col == s)]
        if len(seen) < 2:
            raise ValueError(
                f"{source}: item {item!r} has fewer than 2 observed categories ({seen}); an "
                "item response model cannot use it (leave it out with --items)"
            )
        groups: list[list[int]] = []
        empty = [s for s in scale if s not in seen]
        inner = [s for s in empty if seen[0] < s < seen[-1]]
        for s in scale:
            if s < seen[0] or s > seen[-1]:
                continue
            if s in seen or not groups:
                groups.append([s])
            else:
                groups[-1].append(s)  # an empty inner category joins the one below
        # an empty inner category was appended to the category below it; the merged code
        # therefore holds [below, empty]; answers keep their own value's group
        lookup = {s: k for k, g in enumerate(groups) for s in g}
        obs = ~np.isnan(col)
        codes[obs, j] = [lookup[int(v)] for v in col[obs]]
        n_cats.append(len(groups))
        categories.append(tuple(tuple(g) for g in groups))
        outer = [s for s in empty if s not in inner]
        if inner:
            notes.append(
                f"{item}: no answers in categor{'y' if len(inner) == 1 else 'ies'} {inner}; "
                "merged with the category below"
            )
        if outer:
            notes.append(
                f"{item}: no answers in end categor{'y' if len(outer) == 1 else 'ies'} "
                f"{outer}; the item has {len(groups)} categories ({seen[0]}-{seen[-1]})"
            )
    return Responses(
        items=tuple(items),
        codes=codes,
        n_categories=tuple(n_cats),
        categories=tuple(categories),
        notes=tuple(notes),
        n_dropped=int((~answered).sum()),
        rows=np.flatnonzero(answered),
    )
