"""Process figures: Bland-Altman agreement plots and alliance trajectories with ruptures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from alliance.figures import DOUBLE_COLUMN, save, style

__all__ = [
    "OKABE_ITO",
    "bland_altman_figure",
    "choose_patients",
    "key_effects_figure",
    "rupture_trajectories_figure",
]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "grey": "#999999",
}
LABELS = {"task_mean": "Task", "goal_mean": "Goal", "bond_mean": "Bond", "total_mean": "Total"}
STATUS_STYLE = {
    "repaired": {"colour": OKABE_ITO["green"], "marker": "^", "label": "repaired"},
    "unrepaired": {"colour": OKABE_ITO["vermillion"], "marker": "X", "label": "unrepaired"},
    "censored": {"colour": OKABE_ITO["purple"], "marker": "s", "label": "censored (no follow-up)"},
}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def bland_altman_figure(
    pairs: pd.DataFrame,
    table: pd.DataFrame,
    rater_a: str = "client",
    rater_b: str = "therapist",
    measures: Sequence[str] = ("task_mean", "goal_mean", "bond_mean", "total_mean"),
    path_stem: str | Path | None = None,
) -> Figure:
    """Bland-Altman plots (difference vs mean of two raters), one panel per measure.

    Points are patient x session pairs (drawn translucent: ratings are discrete, so many
    coincide); the solid line is the mean difference and the dashed lines the 95% limits of
    agreement (Bland & Altman 1986), each with its 95% CI as a band.

    Parameters
    ----------
    pairs
        The matched table of :func:`alliance.process.agreement.match_raters`.
    table
        The agreement table (rows with ``scope == "all sessions"`` are used).
    rater_a, rater_b
        Raters; the difference is ``rater_a - rater_b``.
    measures
        Panels, in order.
    path_stem
        If given, save ``{path_stem}.png`` (300 dpi) and ``.pdf``.

    Returns
    -------
    matplotlib.figure.Figure

    """
    rows = table[table["scope"] == "all sessions"].set_index("measure")
    measures = [m for m in measures if m in rows.index]
    if not measures:
        raise ValueError(f"the agreement table has no 'all sessions' rows for {list(measures)}")
    ncol = 2 if len(measures) > 1 else 1
    nrow = int(np.ceil(len(measures) / ncol))
    with mpl.rc_context(style()):
        fig = _figure(DOUBLE_COLUMN if ncol == 2 else DOUBLE_COLUMN / 2, 2.6 * nrow + 0.3)
        axes = np.atleast_1d(fig.subplots(nrow, ncol, sharex=True, sharey=True)).ravel()
        for ax, m in zip(axes, measures, strict=False):
            a = pairs[f"{m}_{rater_a}"].to_numpy(dtype=float)
            b = pairs[f"{m}_{rater_b}"].to_numpy(dtype=float)
            keep = np.isfinite(a) & np.isfinite(b)
            mean, diff = (a[keep] + b[keep]) / 2, a[keep] - b[keep]
            ax.scatter(mean, diff, s=4, color=OKABE_ITO["blue"], alpha=0.12, lw=0, rasterized=True)
            r = rows.loc[m]
            lines = (
                ("mean_diff", "mean_diff_lower", "mean_diff_upper", "-", "mean difference"),
                ("loa_lower", "loa_lower_ci_low", "loa_lower_ci_high", "--", "95% limits"),
                ("loa_upper", "loa_upper_ci_low", "loa_upper_ci_high", "--", None),
            )
            for est, lo, hi, ls, _ in lines:
                ax.axhspan(r[lo], r[hi], color=OKABE_ITO["vermillion"], alpha=0.18, lw=0)
                ax.axhline(r[est], color=OKABE_ITO["vermillion"], ls=ls, lw=1.0)
                ax.annotate(
                    f"{r[est]:+.2f}",
                    xy=(1.0, r[est]),
                    xycoords=("axes fraction", "data"),
                    xytext=(2, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                    color=OKABE_ITO["vermillion"],
                )
            ax.axhline(0, color=OKABE_ITO["grey"], lw=0.6, zorder=0)
            ax.set_title(
                f"{LABELS.get(m, m)}: ICC(A,1) = {r['icc_a1']:.2f}, r = {r['pearson_r']:.2f}",
                loc="left",
            )
            ax.set_ylim(-4.2, 4.2)
            ax.set_xlim(0.8, 5.2)
        for ax in axes[len(measures) :]:
            ax.set_visible(False)
        for ax in axes[-ncol:]:
            ax.set_xlabel(f"Mean of {rater_a} and {rater_b} rating")
        for ax in axes[::ncol]:
            ax.set_ylabel(f"{rater_a.capitalize()} - {rater_b} rating")
        handles = [
            Line2D([], [], color=OKABE_ITO["vermillion"], ls="-", label="Mean difference"),
            Line2D([], [], color=OKABE_ITO["vermillion"], ls="--", label="95% limits of agreement"),
            mpl.patches.Patch(color=OKABE_ITO["vermillion"], alpha=0.18, label="95% CI"),
        ]
        fig.legend(handles=handles, loc="outside upper center", ncol=3, frameon=False)
        if path_stem is not None:
            save(fig, path_stem)
    return fig


def choose_patients(episodes: pd.DataFrame, n: int = 12) -> list[str]:
    """Pick ``n`` patients with a detected episode, deterministically.

    In patient-ID order: first up to ``ceil(n/2)`` patients whose first episode was
    repaired, then fill with patients whose first episode was unrepaired or censored, then
    any remaining patients with an episode; returned sorted by ID.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if episodes.empty:
        return []
    first = episodes.sort_values(["patient_id", "rupture_session"]).groupby("patient_id").first()
    ids = sorted(first.index)
    repaired = [p for p in ids if first.loc[p, "status"] == "repaired"][: -(-n // 2)]
    other = [p for p in ids if first.loc[p, "status"] != "repaired"][: n - len(repaired)]
    chosen = repaired + other
    chosen += [p for p in ids if p not in chosen][: n - len(chosen)]
    return sorted(chosen)


def rupture_trajectories_figure(
    scores: pd.DataFrame,
    episodes: pd.DataFrame,
    patients: Sequence[str] | None = None,
    n: int = 12,
    score: str = "total_mean",
    rater: str | None = "client",
    scale: tuple[float, float] | None = (1.0, 5.0),
    path_stem: str | Path | None = None,
) -> Figure:
    """Small multiples of individual alliance courses with rupture-repair episodes marked.

    Each panel is one patient's session-by-session score; a detected rupture is a filled
    circle at the rupture session with a dotted line at the pre-rupture level, and its end
    is a triangle (repaired, at the repair session; the dotted line runs from the
    pre-rupture sessions to the repair), a cross (unrepaired, at the rupture
    session) or a square (censored), colour-coded (Okabe-Ito, colour-blind safe) and shaped
    so the figure also reads in grey scale. Panels are titled ``Case 1`` ... ``Case n`` in
    the order of ``patients`` (by default :func:`choose_patients`, sorted by ID), never by
    patient ID: no patient identifier appears in a figure.

    Parameters
    ----------
    scores
        Scores table.
    episodes
        Episodes table of :func:`alliance.process.ruptures.detect_ruptures`.
    patients
        Patients to show; default :func:`choose_patients` (``n``).
    n
        Number of panels when ``patients`` is None.
    score, rater
        The plotted score and rater.
    scale
        Y-axis range (the instrument's scale, for a mean score); None: the data's range.
    path_stem
        If given, save ``{path_stem}.png`` (300 dpi) and ``.pdf``.

    Returns
    -------
    matplotlib.figure.Figure

    """
    chosen = list(patients) if patients is not None else choose_patients(episodes, n)
    if not chosen:
        raise ValueError("no patients to plot, got no detected episodes and no patient list")
    frame = scores if rater is None or "rater" not in scores else scores[scores["rater"] == rater]
    frame = frame[["patient_id", "session", score]].copy()
    frame["patient_id"] = frame["patient_id"].astype(str)
    frame = frame.dropna().astype({"session": int, score: float})
    max_session = int(frame["session"].max())
    ncol = 4 if len(chosen) > 6 else min(3, len(chosen))
    nrow = int(np.ceil(len(chosen) / ncol))
    with mpl.rc_context(style()):
        fig = _figure(DOUBLE_COLUMN, 1.45 * nrow + 0.45)
        axes = np.atleast_1d(fig.subplots(nrow, ncol, sharex=True, sharey=True)).ravel()
        for case, (ax, pid) in enumerate(zip(axes, chosen, strict=False), start=1):
            course = frame[frame["patient_id"] == pid].sort_values("session")
            ax.plot(course["session"], course[score], color=OKABE_ITO["grey"], lw=0.9, zorder=1)
            ax.scatter(course["session"], course[score], s=7, color=OKABE_ITO["black"], zorder=2)
            for ep in episodes[episodes["patient_id"] == pid].itertuples(index=False):
                s0 = int(ep.rupture_session)
                st = STATUS_STYLE[ep.status]
                end = int(ep.repair_session) if ep.status == "repaired" else s0 + 1
                ax.hlines(ep.pre_level, s0 - 3, end, color=st["colour"], ls=":", lw=1.0)
                ax.scatter([s0], [ep.rupture_score], s=30, color=st["colour"], zorder=3)
                if ep.status == "repaired":
                    xy = (int(ep.repair_session), float(ep.repair_score))
                else:
                    xy = (s0, float(ep.rupture_score) - 0.35)
                ax.scatter(*xy, s=30, marker=st["marker"], color=st["colour"], zorder=3, lw=0)
            ax.set_title(f"Case {case}", loc="left")  # never the patient ID
            if scale is not None:
                ax.set_ylim(scale[0] - 0.1, scale[1] + 0.1)
            ax.set_xlim(0.5, max_session + 0.5)
            ax.set_xticks(range(1, max_session + 1, 2 if max_session > 8 else 1))
            ax.grid(axis="y", color="#e5e5e5", lw=0.5)
            ax.set_axisbelow(True)
        for ax in axes[len(chosen) :]:
            ax.set_visible(False)
        for ax in axes[::ncol]:
            ax.set_ylabel("Alliance")
        for ax in axes[(nrow - 1) * ncol : nrow * ncol]:
            ax.set_xlabel("Session")
        handles = [
            Line2D(
                [],
                [],
                color="none",
                marker="o",
                markerfacecolor=OKABE_ITO["grey"],
                markeredgecolor="none",
                label="Rupture (colour = outcome)",
            ),
            Line2D([], [], color=OKABE_ITO["grey"], ls=":", label="Pre-rupture level"),
        ] + [
            Line2D(
                [],
                [],
                color="none",
                marker=st["marker"],
                markerfacecolor=st["colour"],
                markeredgecolor="none",
                markersize=6,
                label=st["label"].capitalize(),
            )
            for st in STATUS_STYLE.values()
        ]
        fig.legend(handles=handles, loc="outside upper center", ncol=5, frameon=False)
        if path_stem is not None:
            save(fig, path_stem)
    return fig


def key_effects_figure(
    table: pd.DataFrame, path_stem: str | Path | None = None, label_width: int = 48
) -> Figure:
    """One panel per Bayesian process model: each key estimate with its 95% interval.

    A model that was skipped or could not be fitted gets a short panel with its status and
    the whole reason, wrapped across the full figure width (not cut off, and not confined
    to the plotting area right of the estimate labels). Estimate labels are wrapped at
    ``label_width`` characters so the label column does not leave the panels narrow. Each
    panel has its own scale (the estimates are odds ratios, shares or slopes); a dashed
    line marks no effect (1 for an odds ratio, 0 otherwise; none for shares).

    Parameters
    ----------
    table
        Rows of :func:`alliance.process.bayes_api.key_effects` of every model: ``model``,
        ``status``, ``effect``, ``label``, ``mean``, ``eti95_low``, ``eti95_high``,
        ``reason``.
    path_stem
        If given, save ``{path_stem}.png`` (300 dpi) and ``.pdf``.
    label_width
        Characters per line of an estimate's label.

    Returns
    -------
    matplotlib.figure.Figure
        Text of a skipped model's panel has gid ``skip_<model>``.
    """
    import textwrap

    from matplotlib.transforms import blended_transform_factory

    models = list(dict.fromkeys(table["model"]))
    chars = int(DOUBLE_COLUMN * 72 / (7 * 0.55))  # characters of 7-pt text across the figure
    panels = []
    for model in models:
        rows = table[table["model"] == model]
        shown = rows[rows["effect"].notna()]
        if shown.empty:
            reason = str(rows["reason"].iloc[0]) if rows["reason"].notna().any() else "no reason"
            lines = textwrap.wrap(f"Not estimated: {reason}", chars)
            panels.append((model, rows, shown, lines, 0.32 + 0.13 * len(lines)))
        else:
            labels = [textwrap.fill(str(t), label_width) for t in shown["label"]]
            height = sum(0.16 + 0.13 * lab.count("\n") + 0.12 for lab in labels) + 0.25
            panels.append((model, rows, shown, labels, height))
    heights = [h for *_, h in panels]
    with mpl.rc_context(style()):
        fig = _figure(DOUBLE_COLUMN, sum(heights) + 0.45)
        axes = fig.subplots(len(models), 1, squeeze=False, height_ratios=heights)[:, 0]
        for ax, (model, rows, shown, lines, _) in zip(axes, panels, strict=True):
            status = str(rows["status"].iloc[0])
            if shown.empty:
                # from the figure's left edge across its width, not from the axes' left
                ax.set_axis_off()
                where = blended_transform_factory(fig.transFigure, ax.transAxes)
                title = ax.annotate(
                    f"{model}: {status}", (0.01, 1.0), xycoords=where, va="top", fontsize=8
                )
                body = ax.annotate(
                    "\n".join(lines),
                    (0.01, 1.0),
                    xycoords=where,
                    xytext=(0, -13),
                    textcoords="offset points",
                    va="top",
                    fontsize=7,
                )
                body.set_gid(f"skip_{model}")
                for text in (title, body):
                    text.set_in_layout(False)
                continue
            y = np.arange(len(shown))[::-1]
            ax.errorbar(
                shown["mean"],
                y,
                xerr=[shown["mean"] - shown["eti95_low"], shown["eti95_high"] - shown["mean"]],
                fmt="o",
                color=OKABE_ITO["black"],
                ms=3,
                lw=1,
            )
            ref = 1.0 if str(shown["effect"].iloc[0]).startswith("or_") else 0.0
            if not shown["effect"].str.contains("share").all():
                ax.axvline(ref, color=OKABE_ITO["grey"], lw=0.6, ls="--")
            ax.set_yticks(y, lines, fontsize=6)
            ax.set_ylim(-0.6, len(shown) - 0.4)
            ax.set_title(f"{model}: diagnostics {status}", loc="left", fontsize=8)
        plotted = [ax for ax, (_, _, shown, _, _) in zip(axes, panels, strict=True) if len(shown)]
        if plotted:
            plotted[-1].set_xlabel("Posterior mean and 95% interval (each panel on its own scale)")
        if path_stem is not None:
            save(fig, path_stem)
    return fig
