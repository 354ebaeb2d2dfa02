"""Figures of the item response models: category characteristic curves and threshold maps.

Drawn from the fitted results (the JSON :mod:`alliance.irt.stage` writes), in the project's
style (:mod:`alliance.figures`). A scale whose fit did not converge draws no curve or point:
its panel names the status instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from alliance.figures import (
    DOUBLE_COLUMN,
    _category_colours,
    _new_figure,
    placeholder_figure,
    save,
    style,
)
from alliance.irt import grm, pcm

__all__ = ["category_curves_figure", "threshold_map_figure"]

THETA = np.linspace(-4.0, 4.0, 161)


def _usable(scale: Mapping[str, Any]) -> bool:
    return scale.get("status") in ("converged",)


def _curves(model: str, fit: Mapping[str, Any], item: Mapping[str, Any]) -> np.ndarray:
    """Category probabilities on :data:`THETA`, shape (K, len(THETA))."""
    if model == "grm":
        return grm.category_probabilities(item["a"], item["d"], THETA, fit["link"])
    beta = -np.cumsum(item["thresholds"])  # beta_ih = -sum_{l <= h} delta_il
    return pcm.category_probabilities(beta, THETA).T


def _labels(item: Mapping[str, Any]) -> list[str]:
    cats = item.get("categories")
    if not cats:
        return [str(k) for k in range(item["n_categories"])]
    return ["/".join(str(c) for c in group) for group in cats]


def category_curves_figure(
    result: Mapping[str, Any], path_stem: str | Path | None = None, title: str = ""
) -> Figure:
    """Category characteristic curves, one panel per item (items of all scales, in order).

    For the GRM ``P(X = k | theta)`` of the fitted item parameters; for the PCM the same from
    the thresholds (on the PCM's logit scale, where adjacent curves cross at the thresholds:
    disordered thresholds show a category whose curve is nowhere on top).
    """
    model = result["model_key"]
    panels = [
        (scale, item)
        for scale in result["scales"]
        if _usable(scale["fit"])
        for item in scale["fit"]["items"]
    ]
    if not panels:
        reasons = "; ".join(f"{s['name']}: {s['fit'].get('status')}" for s in result["scales"])
        return placeholder_figure(title or "Category curves", reasons or "no scale", path_stem)
    ncol = 4
    nrow = int(np.ceil(len(panels) / ncol))
    with mpl.rc_context(style()):
        fig = _new_figure(DOUBLE_COLUMN, 1.35 * nrow + 0.4)
        axes = np.atleast_1d(fig.subplots(nrow, ncol, sharex=True, sharey=True)).ravel()
        for ax, (scale, item) in zip(axes, panels, strict=False):
            prob = _curves(model, scale["fit"], item)
            colours = _category_colours(prob.shape[0])
            labels = _labels(item)
            for k in range(prob.shape[0]):
                ax.plot(THETA, prob[k], color=colours[k], lw=1.0, label=labels[k])
            flag = "" if item.get("ordered", True) else " (disordered)"
            ax.set_title(f"{item['item']} [{scale['name']}]{flag}", fontsize=7)
            ax.set_ylim(0, 1)
        for ax in axes[len(panels) :]:
            ax.set_axis_off()
        axes[0].legend(frameon=False, fontsize=6, title="answer")
        metric = "theta (logits)" if model == "pcm" else "theta (SD units)"
        fig.supxlabel(metric, fontsize=8)
        fig.supylabel("P(answer)", fontsize=8)
        if title:
            fig.suptitle(title, fontsize=8)
        if path_stem is not None:
            save(fig, path_stem)
    return fig


def _thresholds(model: str, item: Mapping[str, Any]) -> Sequence[float]:
    return item["b"] if model == "grm" else item["thresholds"]


def threshold_map_figure(
    result: Mapping[str, Any], path_stem: str | Path | None = None, title: str = ""
) -> Figure:
    """A Wright-style map: the persons' locations above, every item's thresholds below.

    Thresholds are numbered (1 = between the lowest two categories); a disordered item is
    drawn in orange. GRM: the thresholds b (theta where P(X >= k) = 1/2) and the EAP scores;
    PCM: the Andrich thresholds and the ML person locations (extreme scores by the spline).
    """
    model = result["model_key"]
    scales = [s for s in result["scales"] if _usable(s["fit"])]
    if not scales:
        reasons = "; ".join(f"{s['name']}: {s['fit'].get('status')}" for s in result["scales"])
        return placeholder_figure(title or "Threshold map", reasons or "no scale", path_stem)
    rows = [(s, item) for s in scales for item in s["fit"]["items"]]
    with mpl.rc_context(style()):
        fig = _new_figure(DOUBLE_COLUMN, 1.4 + 0.18 * len(rows))
        top, bottom = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [1.0, 0.2 * len(rows) + 0.4]}
        )
        edges = np.linspace(-5, 5, 51)
        for s in scales:
            counts = np.asarray(s["persons"]["histogram"], dtype=float)
            top.stairs(counts, edges, label=s["name"], lw=0.9)
        top.set_ylabel("persons")
        if len(scales) > 1:
            top.legend(frameon=False, fontsize=6)
        for y, (_, item) in enumerate(rows):
            th = np.asarray(_thresholds(model, item), dtype=float)
            colour = "#D55E00" if not item.get("ordered", True) else "#0072B2"
            bottom.plot(th, np.full(th.size, y), color=colour, lw=0.6)
            for k, t in enumerate(th):
                bottom.text(t, y, str(k + 1), ha="center", va="center", fontsize=6, color=colour)
        bottom.set_yticks(range(len(rows)), [f"{i['item']} [{s['name']}]" for s, i in rows])
        bottom.invert_yaxis()
        bottom.set_xlim(-5, 5)
        bottom.set_xlabel("theta (logits)" if model == "pcm" else "theta (SD units)")
        if title:
            fig.suptitle(title, fontsize=8)
        if path_stem is not None:
            save(fig, path_stem)
    return fig
