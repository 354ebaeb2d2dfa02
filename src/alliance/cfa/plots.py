"""CFA figures: loading heatmap, fit against the cutoffs, invariance deltas, path diagram.

The matplotlib figures use the project style of :mod:`alliance.figures` (PNG at 300 dpi
and PDF, journal-column widths, colour-blind-safe colours); the path diagram is laid out by Graphviz
``dot`` and written as PNG (300 dpi), PDF and its DOT source.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from alliance.cfa import tables
from alliance.figures import (
    DOUBLE_COLUMN,
    SINGLE_COLUMN,
    _item_rows,
    _new_figure,
    _styled,
    _text_colour,
    _width,
    save,
)

#: Okabe & Ito (2008) colour-blind-safe colours.
MEETS = "#000000"
MISSES = "#D55E00"  # vermillion
CUTOFF = "#555555"
REGION = "#EFEFEF"
MINUS = tables.MINUS

#: Short column heads of the loading heatmap.
SHORT_MODEL = {
    "one_factor": "One\nfactor",
    "two_factor": "Two\nfactors",
    "correlated": "Three\nfactors",
    "bifactor": "Bifactor",
    "second_order": "Second\norder",
}


def _factor_map(instrument_or_factor_map: Any) -> dict[str, list[str]]:
    factors = getattr(instrument_or_factor_map, "factors", instrument_or_factor_map)
    if factors is None:
        return {}
    return {str(f): [str(i) for i in items] for f, items in dict(factors).items()}


def _loading_grid(loadings_df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Items x columns of standardized loadings and the columns' display heads."""
    if {"model", "item", "est.std"} <= set(loadings_df.columns):
        long = loadings_df
        if "role" in long.columns:
            long = long[long["role"] != "second_order"]
        else:
            long = long.assign(role="item")
        cols = tables.loading_columns(long)
        items = list(dict.fromkeys(long["item"]))
        grid = pd.DataFrame(np.nan, index=items, columns=range(len(cols)), dtype=float)
        heads = []
        for k, (m, role) in enumerate(cols):
            sub = long[(long["model"] == m) & (long["role"] == role)]
            grid.loc[sub["item"].to_numpy(), k] = sub["est.std"].astype(float).to_numpy()
            base = SHORT_MODEL.get(m, tables.model_label(m).replace(" ", "\n", 1))
            heads.append(base if role == "item" else f"{base}\n{role}")
        return grid, heads
    grid = loadings_df.astype(float)
    heads = [str(c) for c in grid.columns]
    return grid.set_axis(range(grid.shape[1]), axis=1), heads


def loading_heatmap(
    loadings_df: pd.DataFrame,
    instrument_or_factor_map: Any,
    path_stem: str | Path,
    size: str = "single",
) -> Figure:
    """Heatmap of standardized loadings: items (grouped by factor) x models.

    The colour is the standardized loading on a diverging, colour-blind-safe scale
    (ColorBrewer RdBu, blue positive, red negative, white at zero, from -1 to 1), so weak and
    negative loadings (as on the bifactor model's specific factors) stand out; each cell shows
    its value in APA style. Items are grouped under their factor, in the order of
    ``instrument_or_factor_map``; a cell is empty where the model has no such loading.

    Parameters
    ----------
    loadings_df
        The long table of :func:`alliance.cfa.tables.loadings_long` (``model``, ``item``,
        ``role``, ``est.std``; second-order rows are left out), or a wide numeric table of
        items (index) x columns (the column names are the heads).
    instrument_or_factor_map
        An :class:`alliance.data.instruments.Instrument` or a mapping factor -> items.
    path_stem
        Output path without extension; ``.png`` and ``.pdf`` are written.
    size
        ``"single"`` (3.5 in) or ``"double"`` (7 in) journal column.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0].collections[0]`` (gid ``loadings``) is the mesh; its array holds the
        plotted rows from the top (factor header rows masked) x columns.

    """
    width = _width(size)
    grid, heads = _loading_grid(loadings_df)
    if grid.empty:
        raise ValueError("loadings_df holds no item loadings")
    grid.index = grid.index.astype(str)
    rows = _item_rows(grid.index, SimpleNamespace(factors=_factor_map(instrument_or_factor_map)))
    values = np.full((len(rows), grid.shape[1]), np.nan)
    for r, (kind, name) in enumerate(rows):
        if kind == "item":
            values[r] = grid.loc[name].to_numpy()
    mask = np.array([[kind == "factor"] * grid.shape[1] for kind, _ in rows])
    limit = max(1.0, math.ceil(float(np.nanmax(np.abs(values))) * 10) / 10)
    cmap = colormaps["RdBu"]
    n_rows, n_cols = values.shape
    height = 0.95 + 0.17 * n_rows
    with _styled():
        fig = _new_figure(width, height)
        ax = fig.add_subplot()
        mesh = ax.pcolormesh(
            np.arange(n_cols + 1),
            np.arange(n_rows + 1),
            np.ma.masked_array(values, mask=mask | ~np.isfinite(values)),
            cmap=cmap,
            vmin=-limit,
            vmax=limit,
            edgecolors="white",
            linewidth=0.6,
        )
        mesh.set_gid("loadings")
        for r in range(n_rows):
            for c in range(n_cols):
                v = values[r, c]
                if mask[r, c] or not np.isfinite(v):
                    continue
                rgb = to_rgb(cmap((v + limit) / (2 * limit)))
                ax.text(
                    c + 0.5,
                    r + 0.5,
                    tables.fmt_num(v, 2, leading_zero=False),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color=_text_colour(rgb),
                )
        ax.set_ylim(n_rows, 0)
        ax.set_xlim(0, n_cols)
        ax.xaxis.tick_top()
        ax.xaxis.set_label_position("top")
        ax.set_xticks(np.arange(n_cols) + 0.5, heads, fontsize=6.5)
        ax.set_yticks(
            np.arange(n_rows) + 0.5,
            [name if kind == "item" else tables.factor_label(name) for kind, name in rows],
        )
        for tick, (kind, _) in zip(ax.get_yticklabels(), rows, strict=True):
            if kind == "factor":
                tick.set_fontweight("bold")
                tick.set_fontsize(7.5)
        ax.tick_params(axis="both", length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel("Model")
        ax.set_ylabel("Item")
        bar = fig.colorbar(
            mesh, ax=ax, location="bottom", shrink=0.7, aspect=30, pad=0.02, fraction=0.04
        )
        bar.set_label("Standardized loading")
        bar.outline.set_visible(False)
        bar.ax.tick_params(width=0.6, length=2)
        ticks = np.linspace(-limit, limit, 5)
        bar.set_ticks(ticks, labels=[tables.fmt_num(t, 1) for t in ticks])
        save(fig, path_stem)
    return fig


# --------------------------------------------------------------------------- fit vs cutoffs


def _fit_rows(fit_table_or_results: Any, estimator: str | None) -> tuple[pd.DataFrame, dict, str]:
    if isinstance(fit_table_or_results, pd.DataFrame):
        table = fit_table_or_results
        if "model" not in table.columns:
            raise ValueError(
                "fit_comparison_plot needs the numeric table "
                "(cfa_tables.fit_comparison_table(..., numeric=True)) or the results dict"
            )
        indices = table.attrs.get("indices") or {
            k: next((c for c in table.columns if c == k or c.startswith(k + ".")), k)
            for k in ("cfi", "tli", "rmsea")
        }
        est = (estimator or table.attrs.get("estimator") or "ML").upper()
        return table, indices, est
    table = tables.fit_comparison_table(fit_table_or_results, estimator, numeric=True)
    return table, table.attrs["indices"], table.attrs["estimator"]


def fit_comparison_plot(
    fit_table_or_results: pd.DataFrame | Mapping[str, dict[str, Any]],
    estimator: str | None,
    path_stem: str | Path,
    size: str = "double",
) -> Figure:
    """Dot plots of CFI, TLI, RMSEA (with its 90% CI) and SRMR per model against the cutoffs.

    One panel per index, one row per model (top to bottom in the order of
    :data:`alliance.cfa.tables.MODEL_LABELS`). Dashed lines mark the conventional cutoffs of Hu &
    Bentler (1999) (:data:`alliance.cfa.tables.CUTOFFS`), labelled with their value; the side
    that misses a cutoff is shaded, and a value that misses it is drawn as a vermillion
    triangle instead of a black dot (shape and colour, for colour-blind and grey-scale
    readers). For MLR and WLSMV the robust indices are shown and the axis labels
    say so; the footnote states that the cutoffs were derived for ML when the estimator is not
    ML. A model that failed, did not converge or is inadmissible keeps its row, labelled "not
    estimated", "not converged" or "inadmissible", but gets no point and does not set the axis
    limits (its indices do not describe a proper solution); the footnote gives its status
    (:func:`alliance.cfa.tables.fit_status`) in full.

    Parameters
    ----------
    fit_table_or_results
        ``fit_comparison_table(results, estimator, numeric=True)`` or the results dict itself.
    estimator
        ``"ML"``, ``"MLR"`` or ``"WLSMV"`` (None: from the table or results).
    path_stem
        Output path without extension; ``.png`` and ``.pdf`` are written.
    size
        ``"double"`` (7 in, default) or ``"single"`` (3.5 in; panels in a 2 x 2 grid).

    Returns
    -------
    matplotlib.figure.Figure
        The figure; the cutoff lines have gids ``cutoff_cfi``, ``cutoff_tli``,
        ``cutoff_rmsea``, ``cutoff_srmr``, the points ``points_<index>``, the RMSEA intervals
        ``rmsea_ci``, the footnote ``caption``.

    """
    width = _width(size)
    table, indices, est = _fit_rows(fit_table_or_results, estimator)
    suffix = indices["cfi"].removeprefix("cfi")
    variant = {"": "", ".robust": "Robust ", ".scaled": "Scaled "}.get(suffix, "")
    names = (
        table["label"]
        if width >= DOUBLE_COLUMN
        else table["model"].map(lambda m: tables.column_label(str(m), "item", short=True))
    )
    usable = table["usable"] if "usable" in table.columns else table["converged"]
    states = table["status"] if "status" in table.columns else ["not estimated"] * len(table)
    short = {"not estimated": "not estimated", "not converged": "not converged"}
    labels = [
        lab if ok else f"{lab}\n({short.get(str(state), 'inadmissible')})"
        for lab, ok, state in zip(names, usable, states, strict=True)
    ]
    left_out = [
        f"{lab} ({state})"
        for lab, ok, state in zip(table["label"], usable, states, strict=True)
        if not ok
    ]
    n = len(table)
    y = np.arange(n)[::-1].astype(float)
    panels = [
        ("cfi", indices["cfi"], f"{variant}CFI"),
        ("tli", indices["tli"], f"{variant}TLI"),
        ("rmsea", indices["rmsea"], f"{variant}RMSEA (90% CI)"),
        ("srmr", "srmr", "SRMR"),
    ]
    sym = {">=": "\u2265", "<=": "\u2264"}
    if est == "ML":
        caption = (
            f"Estimator: {est}. Dashed lines: conventional cutoffs for good fit "
            "(Hu & Bentler, 1999); shaded: the side that misses them. Black dots meet the "
            "cutoff, vermillion triangles miss it."
        )
    else:
        caption = (
            f"Estimator: {est}. Dashed lines: Hu & Bentler (1999) cutoffs derived for ML "
            f"with continuous data, shown for orientation only with {est}; shaded: the side "
            "that misses them. Black dots meet the cutoff, vermillion triangles miss it."
        )
    if left_out:
        caption += " Not drawn (no proper solution): " + "; ".join(left_out) + "."
    grid = (1, 4) if width >= DOUBLE_COLUMN else (2, 2)
    height = (0.95 + 0.28 * n) * grid[0] + 0.35
    with _styled():
        fig = _new_figure(width, height)
        axes = fig.subplots(*grid, sharey=True).ravel()
        for ax, (key, col, xlabel) in zip(axes, panels, strict=True):
            direction, cut = tables.CUTOFFS[key]
            vals = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
            lo_ci = hi_ci = None
            finite = vals[np.isfinite(vals)]
            if key == "rmsea":
                lo_ci = pd.to_numeric(table.get(f"rmsea.ci.lower{suffix}"), errors="coerce")
                hi_ci = pd.to_numeric(table.get(f"rmsea.ci.upper{suffix}"), errors="coerce")
                lo_ci = np.asarray(lo_ci, dtype=float)
                hi_ci = np.asarray(hi_ci, dtype=float)
                finite = np.concatenate([finite, hi_ci[np.isfinite(hi_ci)]])
            if direction == ">=":
                low = min(float(finite.min()) if finite.size else cut, cut) - 0.02
                low = math.floor(low * 50) / 50
                high = max(1.0, float(finite.max()) if finite.size else 1.0) + 0.005
            else:
                low = 0.0
                top = max(float(finite.max()) if finite.size else cut, cut)
                high = math.ceil(top * 1.12 * 50) / 50
            ax.set_xlim(low, high)
            if direction == ">=":
                ax.axvspan(low, cut, color=REGION, zorder=0, lw=0)
            else:
                ax.axvspan(cut, high, color=REGION, zorder=0, lw=0)
            line = ax.axvline(cut, color=CUTOFF, linestyle=(0, (3, 2)), linewidth=0.8, zorder=1)
            line.set_gid(f"cutoff_{key}")
            ax.text(
                cut,
                1.0,
                f"{sym[direction]} {tables.fmt_bounded(cut, 2)}",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=6.5,
                color=CUTOFF,
            )
            if key == "rmsea" and lo_ci is not None and hi_ci is not None:
                ok = np.isfinite(lo_ci) & np.isfinite(hi_ci)
                segs = ax.hlines(
                    y[ok], lo_ci[ok], hi_ci[ok], color="#333333", linewidth=0.9, zorder=2
                )
                segs.set_gid("rmsea_ci")
            shown = np.round(vals, 3)
            misses = np.where(direction == ">=", shown < cut, shown > cut) & np.isfinite(vals)
            meets = ~misses & np.isfinite(vals)
            pts = ax.scatter(
                np.where(meets, vals, np.nan), y, s=16, color=MEETS, marker="o", zorder=3
            )
            pts.set_gid(f"points_{key}")
            bad = ax.scatter(
                np.where(misses, vals, np.nan), y, s=22, color=MISSES, marker="^", zorder=3
            )
            bad.set_gid(f"misses_{key}")
            ax.set_xlabel(xlabel)
            ax.set_ylim(-0.6, n - 0.4)
            ax.spines["left"].set_visible(False)
            ax.xaxis.set_major_locator(_nice_locator(low, high))
            ax.xaxis.set_major_formatter(_bounded_formatter())
        axes[0].set_yticks(y, labels)
        if grid[1] == 2:
            axes[2].set_yticks(y, labels)
        _caption(fig, caption, width, height)
        save(fig, path_stem)
    return fig


def _caption(fig: Figure, caption: str, width: float, height: float) -> None:
    """A footnote below the axes, wrapped to the figure width, with room reserved for it."""
    chars = int(width * 72 / (6.5 * 0.56))
    lines = textwrap.wrap(caption, chars)
    text = fig.text(
        0.01, 0.02 / height, "\n".join(lines), fontsize=6.5, color="#333333", va="bottom"
    )
    text.set_gid("caption")
    foot = (0.06 + 0.115 * len(lines)) / height
    top = 0.08 / height  # room for the cutoff labels above the axes
    fig.get_layout_engine().set(rect=(0, foot, 1, 1 - foot - top))


def _nice_locator(low: float, high: float) -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=4, steps=[1, 2, 5, 10])


def _bounded_formatter(digits: int | None = None) -> Any:
    from matplotlib.ticker import FuncFormatter

    def fmt(v: float, _pos: int) -> str:
        d = digits or (2 if abs(v * 100 - round(v * 100)) < 1e-6 else 3)
        return tables.fmt_num(v, d, leading_zero=abs(v) > 1)

    return FuncFormatter(fmt)


# --------------------------------------------------------------------------- invariance


def invariance_deltas_plot(
    ladder: dict[str, Any],
    path_stem: str | Path,
    estimator: str | None = None,
    size: str = "double",
) -> Figure:
    """Change in CFI, RMSEA and SRMR at each step of the invariance ladder, with Chen's cutoffs.

    One panel per index, one row per constrained step (metric vs configural, scalar vs
    metric, strict vs scalar). Dashed segments mark the Chen (2007) thresholds of each step
    (delta CFI -.010; delta RMSEA .015; delta SRMR .030 for metric, .010 for scalar and
    strict), with the non-invariance side shaded; the row label carries the decision. The
    deltas use the same index variant as :func:`alliance.cfa.tables.invariance_table`.

    Returns
    -------
    matplotlib.figure.Figure
        The threshold segments have gids ``threshold_cfi``, ``threshold_rmsea``,
        ``threshold_srmr`` (one segment per step, at the step's row), the points
        ``deltas_<index>``.

    """
    width = _width(size)
    est = tables.ladder_estimator(ladder, estimator)
    deltas = tables.invariance_deltas(ladder, est)
    if deltas.empty:
        raise ValueError("the ladder has fewer than two fitted steps: no deltas to plot")
    idx = deltas.attrs["indices"]
    variant = {"": "", ".robust": "robust ", ".scaled": "scaled "}[idx["cfi"].removeprefix("cfi")]
    n = len(deltas)
    y = np.arange(n)[::-1].astype(float)

    def label(row: pd.Series) -> str:
        verdict = {True: "invariant", False: "not invariant"}.get(row["invariant"], "undecided")
        return f"{row['step'].capitalize()} vs {row['previous']}\n({verdict})"

    labels = [label(r) for _, r in deltas.iterrows()]
    panels = [
        ("cfi", "delta_cfi", "cut_cfi", f"{tables.DELTA} {variant}CFI", -1),
        ("rmsea", "delta_rmsea", "cut_rmsea", f"{tables.DELTA} {variant}RMSEA", 1),
        ("srmr", "delta_srmr", "cut_srmr", f"{tables.DELTA} SRMR", 1),
    ]
    height = 1.15 + 0.36 * n
    with _styled():
        fig = _new_figure(width, height)
        axes = fig.subplots(1, 3, sharey=True)
        for ax, (key, col, cut_col, xlabel, sign) in zip(axes, panels, strict=True):
            vals = pd.to_numeric(deltas[col], errors="coerce").to_numpy(dtype=float)
            cuts = pd.to_numeric(deltas[cut_col], errors="coerce").to_numpy(dtype=float)
            span = np.concatenate([vals[np.isfinite(vals)], cuts[np.isfinite(cuts)], [0.0]])
            pad = 0.15 * (span.max() - span.min() or 0.01)
            low, high = span.min() - pad, span.max() + pad
            ax.set_xlim(low, high)
            ax.axvline(0, color="#999999", linewidth=0.6, zorder=1)
            segs = []
            for yi, c in zip(y, cuts, strict=True):
                if not np.isfinite(c):
                    continue
                band = (low, c) if sign < 0 else (c, high)
                ax.fill_betweenx([yi - 0.45, yi + 0.45], *band, color=REGION, lw=0, zorder=0)
                segs.append([(c, yi - 0.45), (c, yi + 0.45)])
                ax.text(
                    c,
                    yi + 0.4,
                    f" {tables.fmt_bounded(c)} ",
                    ha="right" if sign < 0 else "left",
                    va="top",
                    fontsize=6,
                    color=CUTOFF,
                )
            from matplotlib.collections import LineCollection

            lc = LineCollection(
                segs, colors=CUTOFF, linestyles=[(0, (3, 2))], linewidths=0.8, zorder=2
            )
            lc.set_gid(f"threshold_{key}")
            ax.add_collection(lc)
            pts = ax.scatter(vals, y, s=18, color=MEETS, zorder=3)
            pts.set_gid(f"deltas_{key}")
            for yi, v in zip(y, vals, strict=True):
                if np.isfinite(v):
                    ax.annotate(
                        tables.fmt_bounded(v),
                        (v, yi),
                        xytext=(0, 5),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=6,
                    )
            ax.set_xlabel(xlabel)
            ax.set_ylim(-0.6, n - 0.4)
            ax.spines["left"].set_visible(False)
            ax.xaxis.set_major_locator(_nice_locator(low, high))
            ax.xaxis.set_major_formatter(_bounded_formatter(3))
        axes[0].set_yticks(y, labels)
        caption = (
            f"Dashed: Chen (2007) thresholds; shaded: the side that signals non-invariance. "
            f"Not invariant when {tables.DELTA}CFI \u2264 {MINUS}.010 together with "
            f"{tables.DELTA}RMSEA \u2265 .015 or {tables.DELTA}SRMR \u2265 .030 (metric) / "
            f".010 (scalar, strict). Estimator: {est}."
        )
        _caption(fig, caption, width, height)
        save(fig, path_stem)
    return fig


# --------------------------------------------------------------------------- path diagram


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _std_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result.get("standardized") or []
    return [r for r in rows if r.get("group") in (None, 1, "1")]


def path_dot(result: dict[str, Any], residuals: bool = True, title: str | None = None) -> str:
    """DOT source of a CFA model's path diagram with its standardized estimates.

    Factors are ellipses, items boxes; single-headed arrows from factor to item carry the
    standardized loading (std.all); factor correlations are curved double-headed arrows;
    with ``residuals`` each item has a small circle below it with its standardized residual
    variance (not in a bifactor model, whose general factor takes that row).
    Items are ordered by factor so the loadings do not cross. In a bifactor model the general
    factor sits below the items; in a second-order model the general factor sits above the
    first-order factors.
    """
    std = _std_rows(result)
    if not std:
        raise ValueError("the result has no standardized solution to draw")
    latent = list(dict.fromkeys(r["lhs"] for r in std if r.get("op") == "=~"))
    loadings = [r for r in std if r.get("op") == "=~"]
    first_order = [
        f for f in latent if any(r["lhs"] == f and r["rhs"] not in latent for r in loadings)
    ]
    higher = [f for f in latent if f not in first_order]
    general = tables._general_factor(result)
    specifics = [f for f in first_order if f != general]
    order_source = specifics if general else first_order
    items: list[str] = []
    for f in order_source:
        items += [r["rhs"] for r in loadings if r["lhs"] == f and r["rhs"] not in latent]
    items += [r["rhs"] for r in loadings if r["rhs"] not in latent and r["rhs"] not in items]
    items = list(dict.fromkeys(items))
    resid = {
        r["lhs"]: r.get("est.std")
        for r in std
        if r.get("op") == "~~" and r["lhs"] == r["rhs"] and r["lhs"] in items
    }
    corr = [
        r
        for r in std
        if r.get("op") == "~~"
        and r["lhs"] != r["rhs"]
        and r["lhs"] in latent
        and r["rhs"] in latent
        and not (tables._missing(r.get("est.std")) or abs(float(r["est.std"])) < 1e-12)
    ]

    def num(v: Any) -> str:
        return tables.fmt_num(v, 2, leading_zero=False)

    lines = [
        "digraph cfa {",
        '  graph [rankdir=TB, splines=true, nodesep=0.12, ranksep=0.75, fontname="Helvetica",'
        ' bgcolor="white", pad=0.1];',
        '  node [fontname="Helvetica", fontsize=11, penwidth=0.8];',
        '  edge [fontname="Helvetica", fontsize=9, penwidth=0.7, arrowsize=0.55];',
    ]
    if title:
        lines.append(f"  labelloc=t; label={_q(title)}; fontsize=12;")
    for f in latent:
        lines.append(
            f"  {_q(f)} [shape=ellipse, label={_q(tables.factor_label(f))}, "
            'style=filled, fillcolor="#DCE9F5"];'
        )
    for i in items:
        lines.append(f"  {_q(i)} [shape=box, label={_q(i)}, width=0.55, height=0.3, fontsize=9];")
    # rows: higher-order factors, first-order (specific) factors, items, residuals, general
    top = higher + [f for f in first_order if f != general]
    if higher:
        lines.append("  { rank=min; " + " ".join(_q(f) for f in higher) + "; }")
        lines.append("  { rank=same; " + " ".join(_q(f) for f in first_order) + "; }")
    else:
        lines.append("  { rank=min; " + " ".join(_q(f) for f in top) + "; }")
    lines.append("  { rank=same; " + " ".join(_q(i) for i in items) + "; }")
    # keep the item order left to right
    if len(items) > 1:
        lines.append("  " + " -> ".join(_q(i) for i in items) + " [style=invis, weight=10];")
    for r in loadings:
        lhs, rhs, v = r["lhs"], r["rhs"], num(r.get("est.std"))
        if lhs == general and rhs in items:
            # general factor below the items: edge drawn upwards, arrow at the item
            lines.append(
                f'  {_q(rhs)} -> {_q(lhs)} [dir=back, label={_q(v)}, fontcolor="#333333"];'
            )
        else:
            lines.append(f"  {_q(lhs)} -> {_q(rhs)} [label={_q(v)}];")
    if residuals and resid and not general:  # a bifactor's general factor sits below
        for i in items:
            if i in resid:
                e = f"e_{i}"
                lines.append(
                    f"  {_q(e)} [shape=circle, label={_q(num(resid[i]))}, width=0.3, "
                    "fixedsize=true, fontsize=7.5, penwidth=0.6];"
                )
                lines.append(f"  {_q(i)} -> {_q(e)} [dir=back, arrowsize=0.45];")
        lines.append(
            "  { rank=same; " + " ".join(_q(f"e_{i}") for i in items if i in resid) + "; }"
        )
    if general:
        lines.append(f"  {{ rank=max; {_q(general)}; }}")
    for r in corr:
        lines.append(
            f"  {_q(r['lhs'])} -> {_q(r['rhs'])} [dir=both, constraint=false, "
            f'label={_q(num(r["est.std"]))}, color="#444444", style=solid];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _placeholder(path_stem: str | Path, message: str) -> list[Path]:
    with _styled():
        fig = _new_figure(SINGLE_COLUMN, 1.2)
        fig.text(0.5, 0.5, message, ha="center", va="center", fontsize=8, wrap=True)
        return save(fig, path_stem)


def path_diagram(
    result: dict[str, Any],
    path_stem: str | Path,
    residuals: bool = True,
    title: str | None = None,
    width_in: float = DOUBLE_COLUMN,
) -> dict[str, Any]:
    """Draw a CFA model's path diagram with standardized estimates (Graphviz ``dot``).

    Writes ``{path_stem}.gv`` (the DOT source of :func:`path_dot`), ``.png`` (300 dpi) and
    ``.pdf``, at most ``width_in`` inches wide. When ``dot`` is not installed, or the result
    has no standardized solution (the model did not converge), a placeholder PNG/PDF saying
    so is written instead and the status says why; nothing is raised.

    Returns
    -------
    dict
        ``status`` (``"ok"`` or ``"placeholder"``), ``message``, ``files`` (paths written),
        ``dot`` (the DOT source, or None).

    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    try:
        source = path_dot(result, residuals=residuals, title=title)
    except (ValueError, KeyError, TypeError) as err:
        message = f"Path diagram not drawn: {err} (model {result.get('model_name', '?')})."
        files = _placeholder(stem, message)
        return {"status": "placeholder", "message": message, "files": files, "dot": None}
    gv = stem.with_name(stem.name + ".gv")
    gv.write_text(source, encoding="utf-8")
    dot = shutil.which("dot")
    if dot is None:
        message = (
            "Path diagram not drawn: the Graphviz 'dot' program is not installed "
            "(apt install graphviz, or conda install graphviz). The DOT source is in "
            f"{gv.name}."
        )
        files = [gv, *_placeholder(stem, message)]
        return {"status": "placeholder", "message": message, "files": files, "dot": source}
    sized = source.replace(
        "digraph cfa {", f'digraph cfa {{\n  graph [size="{width_in:g},9", dpi=300];', 1
    )
    env = dict(os.environ, SOURCE_DATE_EPOCH="0")  # no creation date in the PDF
    files = [gv]
    for fmt in ("png", "pdf"):
        out = stem.with_name(f"{stem.name}.{fmt}")
        subprocess.run(
            [dot, f"-T{fmt}", "-o", str(out)],
            input=sized.encode(),
            check=True,
            env=env,
            capture_output=True,
            timeout=60,
        )
        files.append(out)
    return {"status": "ok", "message": "", "files": files, "dot": source}
