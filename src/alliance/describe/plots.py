"""Publication figures: diverging Likert bars of item responses and an item non-response map."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from alliance.data.instruments import Instrument
from alliance.figures import (
    DOUBLE_COLUMN,
    _category_colours,
    _item_rows,
    _new_figure,
    _sequential,
    _styled,
    _text_colour,
    _width,
    save,
)


def diverging_item_bars(
    proportions: pd.DataFrame,
    instrument: Instrument,
    path_stem: str | Path,
    size: str = "single",
    annotate_min: float = 0.1,
) -> Figure:
    """Diverging stacked bars of the response categories of every item (a Likert plot).

    Each item is a horizontal bar of 100%: categories below the scale midpoint extend to the
    left of zero, categories above it to the right, and the middle category (odd scales) is
    centred on zero, so the balance of low and high answers reads off directly (Robbins &
    Heiberger 2011). Items are grouped under their factor, in instrument order. Colours are
    ColorBrewer's colour-blind-safe RdBu with a grey middle; the legend shows the anchor
    labels of ``instrument.labels``. Segments of at least ``annotate_min`` are labelled with
    their percentage.

    Parameters
    ----------
    proportions
        Items (index, instrument item IDs) x categories (columns, scale values): the share
        of answers in each category, rows summing to 1 (an all-missing row is drawn empty).
        ``describe_items(...)["proportions"]`` has this form.
    instrument
        The instrument (scale, factors, labels).
    path_stem
        Output path without extension; ``.png`` and ``.pdf`` are written.
    size
        ``"single"`` (3.5 in wide) or ``"double"`` (7 in) journal column.
    annotate_min
        Smallest share labelled inside its segment (1 turns labels off).

    Returns
    -------
    matplotlib.figure.Figure
        The figure (its bars are in ``fig.axes[0].containers``, one per category, widths in
        percent).

    Raises
    ------
    ValueError
        If categories are off the scale, a row does not sum to 1, or ``size`` is unknown.

    References
    ----------
    Robbins, N. B., & Heiberger, R. M. (2011). Plotting Likert and other rating scales. In
    *JSM Proceedings, Section on Survey Research Methods* (pp. 1058-1066). American
    Statistical Association.

    """
    width = _width(size)
    categories = list(instrument.response_bins)
    try:
        columns = [int(c) for c in proportions.columns]
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"proportions columns must be response categories {categories}, "
            f"got {list(proportions.columns)}"
        ) from err
    off = sorted(set(columns) - set(categories))
    if off:
        raise ValueError(f"categories must lie on the scale {categories}, got {off}")
    shares = proportions.set_axis(columns, axis=1).reindex(columns=categories)
    shares = shares.astype(float).fillna(0.0)
    if (shares.to_numpy() < 0).any():
        raise ValueError(f"proportions must be non-negative, got minimum {shares.min().min()}")
    sums = shares.sum(axis=1)
    bad = sums[(np.abs(sums - 1) > 1e-6) & (sums != 0)]
    if not bad.empty:
        raise ValueError(f"each item's proportions must sum to 1, got {bad.round(4).to_dict()}")

    rows = _item_rows(shares.index.astype(str), instrument)
    shares.index = shares.index.astype(str)
    k = len(categories)
    low = categories[: k // 2]
    middle = [categories[k // 2]] if k % 2 == 1 else []
    high = categories[k // 2 + (k % 2) :]
    colours = dict(zip(categories, _category_colours(k), strict=True))
    percent = shares * 100

    y = np.arange(len(rows))[::-1].astype(float)
    item_y = {name: y[i] for i, (kind, name) in enumerate(rows) if kind == "item"}
    items = list(item_y)
    ys = np.array([item_y[i] for i in items])
    half_mid = percent[middle[0]].loc[items].to_numpy() / 2 if middle else np.zeros(len(items))

    lefts: dict[int, np.ndarray] = {}
    edge = -half_mid.copy()
    for c in reversed(low):  # nearest the midpoint first, outwards to the left
        edge = edge - percent[c].loc[items].to_numpy()
        lefts[c] = edge.copy()
    if middle:
        lefts[middle[0]] = -half_mid
    edge = half_mid.copy()
    for c in high:
        lefts[c] = edge.copy()
        edge = edge + percent[c].loc[items].to_numpy()
    # lefts[low[0]] is the outer edge of the lowest category: the bars' left extent.
    extent = max(
        float(np.max(-lefts[low[0]] if low else half_mid, initial=0)),
        float(np.max(edge, initial=0)),
    )
    step = 20 if extent > 50 else 10
    limit = min(100.0, math.ceil((extent + 1) / step) * step)

    height = 0.6 + 0.19 * len(rows)
    with _styled():
        fig = _new_figure(width, height)
        ax = fig.add_subplot()
        for c in categories:
            widths = percent[c].loc[items].to_numpy()
            label = instrument.labels.get(c, "")
            bars = ax.barh(
                ys,
                widths,
                left=lefts[c],
                height=0.72,
                color=colours[c],
                edgecolor="white",
                linewidth=0.4,
                label=f"{c} {label}".strip(),
            )
            for rect, w in zip(bars.patches, widths, strict=True):
                if w >= annotate_min * 100:
                    ax.text(
                        rect.get_x() + w / 2,
                        rect.get_y() + rect.get_height() / 2,
                        f"{w:.0f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color=_text_colour(colours[c]),
                    )
        ax.axvline(0, color="#333333", linewidth=0.6, zorder=0.5)  # behind the bars
        ax.set_xlim(-limit, limit)
        right = np.arange(0, limit + 1, step)
        ticks = np.concatenate([-right[:0:-1], right])
        ax.set_xticks(ticks, [f"{abs(t):.0f}" for t in ticks])
        ax.set_yticks(y, [name if kind == "item" else name.capitalize() for kind, name in rows])
        for tick, (kind, _) in zip(ax.get_yticklabels(), rows, strict=True):
            if kind == "factor":
                tick.set_fontweight("bold")
                tick.set_fontsize(7.5)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.spines["left"].set_visible(False)
        ax.set_xlabel("Share of answers (%)")
        ax.set_ylabel("Item")
        handles = [
            Patch(
                facecolor=colours[c],
                edgecolor="none",
                label=f"{instrument.bin_label(c)} {instrument.labels.get(c, '')}".strip(),
            )
            for c in categories
        ]
        fig.legend(
            handles=handles,
            loc="outside upper center",
            ncol=k if width >= DOUBLE_COLUMN else math.ceil(k / 2),
            frameon=False,
            handlelength=1.2,
            handleheight=0.9,
            columnspacing=1.0,
        )
        save(fig, path_stem)
    return fig


def missingness_plot(
    missing_by_item_session: pd.DataFrame,
    path_stem: str | Path,
    size: str = "single",
    annotate: bool | None = None,
) -> Figure:
    """Heatmap of item non-response (%) by session.

    Rows are items (in the given column order), columns sessions; the colour is the share
    of the session's rows in which the item is missing, on a sequential, colour-blind-safe
    scale (ColorBrewer Blues) from 0% to at least 10%.

    Parameters
    ----------
    missing_by_item_session
        Sessions (index) x items (columns) with shares in [0, 1], for example
        ``describe_items(...)["missing_by_session"]``.
    path_stem
        Output path without extension; ``.png`` and ``.pdf`` are written.
    size
        ``"single"`` (3.5 in wide) or ``"double"`` (7 in) journal column.
    annotate
        Write the percentage in each cell; by default when the cells are wide enough.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; ``fig.axes[0].collections[0]`` is the mesh, its array in percent
        (items x sessions).

    Raises
    ------
    ValueError
        If the table is empty or a share lies outside [0, 1].

    """
    width = _width(size)
    table = missing_by_item_session.astype(float)
    if table.empty:
        raise ValueError(f"missing_by_item_session must not be empty, got shape {table.shape}")
    values = table.to_numpy()
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(f"shares must lie in [0, 1], got range [{finite.min()}, {finite.max()}]")
    grid = values.T * 100  # items x sessions
    items = [str(c) for c in table.columns]
    sessions = [str(s) for s in table.index]
    vmax = max(10.0, math.ceil(float(np.nanmax(grid, initial=0)) / 5) * 5)
    n_items, n_sessions = grid.shape
    map_width = width - 1.3
    if annotate is None:
        annotate = map_width / n_sessions >= 0.22
    height = 0.75 + 0.17 * n_items
    cmap = _sequential()
    with _styled():
        fig = _new_figure(width, height)
        ax = fig.add_subplot()
        mesh = ax.pcolormesh(
            np.arange(n_sessions + 1),
            np.arange(n_items + 1),
            np.ma.masked_invalid(grid),
            cmap=cmap,
            vmin=0,
            vmax=vmax,
            edgecolors="white",
            linewidth=0.5,
        )
        ax.set_xticks(np.arange(n_sessions) + 0.5, sessions)
        ax.set_yticks(np.arange(n_items) + 0.5, items)
        ax.set_ylim(n_items, 0)  # first item at the top
        ax.tick_params(axis="x", length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel("Session")
        ax.set_ylabel("Item")
        if annotate:
            for i in range(n_items):
                for j in range(n_sessions):
                    v = grid[i, j]
                    if not np.isfinite(v):
                        continue
                    rgb = to_rgb(cmap(min(v / vmax, 1.0)))
                    ax.text(
                        j + 0.5,
                        i + 0.5,
                        "<1" if 0 < v < 0.5 else f"{v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color=_text_colour(rgb),
                    )
        bar = fig.colorbar(mesh, ax=ax, shrink=0.8, aspect=25, pad=0.02)
        bar.set_label("Item non-response (%)")
        bar.outline.set_visible(False)
        bar.ax.tick_params(width=0.6, length=2)
        save(fig, path_stem)
    return fig
