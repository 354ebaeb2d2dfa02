"""The figure of an RI-CLPM fit: the four lagged within-person paths with their intervals."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from alliance.figures import DOUBLE_COLUMN, _new_figure, placeholder_figure, save, style

__all__ = ["lagged_paths_figure", "not_estimated_figure"]

#: Okabe & Ito (2008) colour-blind-safe colours used here.
OKABE_ITO = {"black": "#000000", "sky": "#56B4E9", "blue": "#0072B2"}
#: Panel order: the cross-lagged effects first (the question), then the autoregressive ones.
PANELS = ("cross_x_to_y", "cross_y_to_x", "autoregressive_x", "autoregressive_y")


def _names(result: Mapping[str, Any]) -> dict[str, str]:
    data = result.get("data") or {}
    x, y = str(data.get("x", "x")), str(data.get("y", "y"))
    return {
        "cross_x_to_y": f"{x} -> next {y}",
        "cross_y_to_x": f"{y} -> next {x}",
        "autoregressive_x": f"{x} -> next {x}",
        "autoregressive_y": f"{y} -> next {y}",
    }


def lagged_paths_figure(
    result: Mapping[str, Any], path_stem: str | Path | None = None, title: str = ""
) -> Figure:
    """The lagged paths of both models: free per wave (points, 95% CIs) and equal (band).

    Each panel is one effect in its own units (outcome units per predictor unit): the model
    with free lags as a point per lag with its confidence interval, the model with equal lags
    as a line at its estimate and a band over its interval. A model that is not usable
    (non-convergence, a Heywood case) draws nothing and is named in the panel.

    Parameters
    ----------
    result
        :func:`alliance.sem.panel.fit_riclpm`'s result (with ``other_model``).
    path_stem
        Save as ``{path_stem}.png`` (300 dpi) and ``.pdf`` when given.
    title
        Figure title (e.g. the dataset).
    """
    models = {result["meta"]["constrain_lags"]: (result["usable"], result["effects"])}
    other = result.get("other_model")
    if other:
        models[other["constrain_lags"]] = (other["usable"], other["effects"])
    names = _names(result)
    with mpl.rc_context(style()):
        fig = _new_figure(DOUBLE_COLUMN, 4.2)
        axes = fig.subplots(2, 2).ravel()
        for ax, key in zip(axes, PANELS, strict=True):
            ax.axhline(0.0, color="#777777", lw=0.6, zorder=1)
            notes = []
            free_usable, free = models.get(False, (False, None))
            equal_usable, equal = models.get(True, (False, None))
            lags = (free or equal)[key]["waves"]
            pos = np.arange(len(lags))
            if equal is not None and equal_usable:
                r = equal[key]["waves"][0]
                ax.axhspan(r["ci.lower"], r["ci.upper"], color=OKABE_ITO["sky"], alpha=0.25, lw=0)
                ax.axhline(r["est"], color=OKABE_ITO["blue"], lw=1.2, label="equal lags (95% CI)")
            elif equal is not None:
                notes.append("equal lags: not usable")
            if free is not None and free_usable:
                est = np.array([r["est"] for r in free[key]["waves"]])
                low = np.array([r["ci.lower"] for r in free[key]["waves"]])
                high = np.array([r["ci.upper"] for r in free[key]["waves"]])
                ax.errorbar(
                    pos,
                    est,
                    yerr=[est - low, high - est],
                    fmt="o",
                    ms=3,
                    lw=0.9,
                    color=OKABE_ITO["black"],
                    label="free lags (95% CI)",
                )
            elif free is not None:
                notes.append("free lags: not usable")
            ax.set_xticks(pos, [f"{r['from']}-{r['to']}" for r in lags])
            ax.set_title(names[key], loc="left")
            ax.set_xlabel("waves (sessions)")
            ax.set_ylabel("lagged effect")
            if notes:
                ax.text(0.02, 0.95, "; ".join(notes), transform=ax.transAxes, va="top", fontsize=6)
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
        fig.suptitle(
            f"{title + ': ' if title else ''}lagged within-person effects (RI-CLPM, "
            f"{result['meta']['estimator']})",
            fontsize=8,
        )
        if path_stem is not None:
            save(fig, path_stem)
    return fig


def not_estimated_figure(title: str, reason: str, path_stem: str | Path | None = None) -> Figure:
    """A small figure stating why no RI-CLPM was estimated (keeps the declared output)."""
    return placeholder_figure(f"{title}: RI-CLPM", reason, path_stem)
