"""Meta-analysis figures: a forest plot of study correlations and a funnel plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon
from matplotlib.textpath import TextToPath

from alliance.figures import DOUBLE_COLUMN, SINGLE_COLUMN, save, style

#: Okabe & Ito (2008) colour-blind-safe colours.
STUDY = "#000000"
REML = "#0072B2"  # blue
BAYES = "#D55E00"  # vermillion
REGION = "#E8E8E8"
MINUS = "\u2212"


def _width(size: str) -> float:
    if size == "single":
        return SINGLE_COLUMN
    if size == "double":
        return DOUBLE_COLUMN
    raise ValueError(f"size must be 'single' or 'double', got {size!r}")


def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def fmt_r(value: float, digits: int = 2) -> str:
    """A correlation in APA style: no leading zero and a true minus sign (``-.09`` -> ``−.09``)."""
    text = f"{abs(value):.{digits}f}"
    if text.startswith("0"):
        text = text[1:]
    negative = value < 0 and float(text) != 0
    return (MINUS if negative else "") + text


def fmt_es(value: float, digits: int = 2) -> str:
    """An effect size on its own scale: leading zero kept, a true minus sign."""
    text = f"{abs(value):.{digits}f}"
    negative = value < 0 and float(text) != 0
    return (MINUS if negative else "") + text


def _fmt_ci(est: float, lb: float, ub: float, fmt: Any = fmt_r) -> str:
    return f"{fmt(est)} [{fmt(lb)}, {fmt(ub)}]"


def _scale(result: dict[str, Any]) -> tuple[bool, str, str]:
    """Correlations or effects on their own scale: (is_r, pooled key, effect-size key)."""
    if "pooled_r" in result:
        return True, "pooled_r", "r"
    return False, "pooled", "yi"


def _cluster_rows(studies: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Rows from the top: ``("cluster", label)`` headers, each followed by its studies."""
    if not any("cluster" in s for s in studies):
        return [("study", s) for s in studies]
    order: dict[str, list[dict[str, Any]]] = {}
    for s in studies:
        order.setdefault(str(s["cluster"]), []).append(s)
    rows: list[tuple[str, Any]] = []
    for label, members in order.items():
        rows.append(("cluster", label))
        rows += [("study", s) for s in members]
    return rows


def _diamond(ax: Any, y: float, est: float, lb: float, ub: float, colour: str, gid: str) -> None:
    half = 0.32
    poly = Polygon(
        [(lb, y), (est, y + half), (ub, y), (est, y - half)],
        closed=True,
        facecolor=colour,
        edgecolor=colour,
        linewidth=0.6,
        zorder=3,
    )
    poly.set_gid(gid)
    ax.add_patch(poly)


def forest_plot(
    result: dict[str, Any],
    path_stem: str | Path,
    bayes: dict[str, Any] | None = None,
    size: str = "single",
    sort: bool = False,
) -> Figure:
    """Forest plot of study correlations with the pooled estimate and prediction interval.

    One row per study: the correlation (a square whose area is proportional to the study's
    random-effects weight) with its 95% confidence interval (``tanh(z +/- 1.96 se)``), and
    on the right ``r [95% CI]`` and the weight in percent. Below, the pooled REML estimate
    as a diamond spanning its confidence interval, the 95% prediction interval for a new
    study's r as a bar, and optionally the Bayesian posterior median with its 95% HDI as a
    second diamond. The x axis is the correlation with a reference line at 0 and a dotted
    line at the pooled estimate. Colours are Okabe-Ito (colour-blind-safe). Studies with a
    ``cluster`` (the three-level model) are grouped under a bold row per cluster, in order of
    appearance, and the summary row is the three-level model's; effects given as ``yi``,
    ``vi`` are drawn on their own scale ("Effect size", no Bayesian diamond).

    Parameters
    ----------
    result
        The output of :func:`alliance.meta.analysis.pool_effects`.
    path_stem
        Output path without extension; ``.png`` (300 dpi) and ``.pdf`` are written.
    bayes
        Optional :func:`alliance.meta.bayes.fit_bayes_meta` summary (``pooled_r`` with
        ``median``, ``eti.lb``, ``eti.ub``).
    size
        ``"single"`` (3.5 in) or ``"double"`` (7 in) journal column.
    sort
        Order studies by their correlation instead of the input order.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[1]`` is the plot; artists carry gids: ``study_ci`` (a LineCollection of
        the CI segments, top study first), ``study_points`` (the squares), ``pooled_reml``
        and ``pooled_bayes`` (diamonds), ``prediction_interval`` (a Line2D).

    Raises
    ------
    ValueError
        If ``size`` is unknown or ``result`` has no studies.

    References
    ----------
    Lewis, S., & Clarke, M. (2001). Forest plots: Trying to see the wood and the trees.
    *BMJ*, 322(7300), 1479-1480.
    Okabe, M., & Ito, K. (2008). Color universal design (CUD): How to make figures and
    presentations that are friendly to colorblind people. https://jfly.uni-koeln.de/color/

    """
    width = _width(size)
    studies = list(result.get("studies") or [])
    if not studies:
        raise ValueError(f"result must hold studies, got {len(studies)}")
    is_r, pooled_key, es_key = _scale(result)
    fmt = fmt_r if is_r else fmt_es
    if not is_r:
        bayes = None  # the Bayesian model pools correlations only
    if sort:
        studies = sorted(studies, key=lambda s: s[es_key], reverse=True)
    pooled = result[pooled_key]
    method = result.get("meta", {}).get("method", "REML")
    three_level = result.get("meta", {}).get("model") == "three-level"
    layout = _cluster_rows(studies)
    studies = [item for kind, item in layout if kind == "study"]
    k = len(layout)

    # Rows from the top: studies (and cluster headers) at y = 1..k drawn downwards, a gap,
    # then the summary rows.
    row_y = -np.arange(1, k + 1, dtype=float)
    ys = np.array([y for y, (kind, _) in zip(row_y, layout, strict=True) if kind == "study"])
    headers = [
        (y, item) for y, (kind, item) in zip(row_y, layout, strict=True) if kind == "cluster"
    ]
    y_pooled = -(k + 1.6)
    y_pi = y_pooled - 1
    y_bayes = y_pi - 1.2
    bottom = (y_bayes if bayes else y_pi) - 0.8
    rows = k + (5.0 if bayes else 3.8)

    lows = [s["ci.lb"] for s in studies] + [pooled["pi.lb"], 0.0]
    highs = [s["ci.ub"] for s in studies] + [pooled["pi.ub"], 0.0]
    if bayes:
        lows.append(bayes["pooled_r"]["eti.lb"])
        highs.append(bayes["pooled_r"]["eti.ub"])
    span = max(highs) - min(lows)
    step = 0.2 if span > 0.6 else 0.1
    if not is_r and span > 2:
        step = 0.5 if span <= 4 else 1.0
    lo = math.floor(min(lows) / step - 1e-9) * step
    hi = math.ceil(max(highs) / step + 1e-9) * step

    if bayes:
        b = bayes["pooled_r"]
    fs = style()["font.size"] - 1
    narrow = width < DOUBLE_COLUMN
    model_label = (
        ("3-level model" if narrow else f"Three-level model ({method})")
        if three_level
        else (f"RE model ({method})" if narrow else f"Random-effects model ({method})")
    )
    summary_rows = [
        (
            y_pooled,
            model_label,
            _fmt_ci(pooled["estimate"], pooled["ci.lb"], pooled["ci.ub"], fmt),
            "100%",
            REML,
            "bold",
        ),
        (
            y_pi,
            "Prediction interval" if narrow else "95% prediction interval",
            f"[{fmt(pooled['pi.lb'])}, {fmt(pooled['pi.ub'])}]",
            "",
            REML,
            "normal",
        ),
    ]
    if bayes:
        summary_rows.append(
            (
                y_bayes,
                "Bayesian (HDI)" if narrow else "Bayesian (median, 95% HDI)",
                _fmt_ci(b["median"], b["eti.lb"], b["eti.ub"]),
                "",
                BAYES,
                "bold",
            )
        )
    study_ci = [_fmt_ci(s[es_key], s["ci.lb"], s["ci.ub"], fmt) for s in studies]
    indent = "   " if headers else ""
    ci_head = "r [95% CI]" if is_r else "Effect [95% CI]"
    study_wt = [f"{s['weight_pct']:.1f}%" for s in studies]
    with mpl.rc_context(style()):
        # Column widths (inches) from the widest text in each, so nothing overlaps.
        label_w = (
            max(
                [_text_width(indent + s["study"], fs) for s in studies]
                + [_text_width(str(label), fs, "bold") for _, label in headers]
                + [_text_width(r[1], fs, r[5]) for r in summary_rows]
                + [_text_width("Study", fs, "bold")]
            )
            + 0.08
        )
        ci_w = (
            max(
                [_text_width(t, fs) for t in study_ci]
                + [_text_width(r[2], fs, r[5]) for r in summary_rows]
                + [_text_width(ci_head, fs, "bold")]
            )
            + 0.1
        )
        wt_w = max([_text_width(t, fs) for t in study_wt] + [_text_width("Weight", fs, "bold")])
        plot_w = width - label_w - ci_w - wt_w - 0.2
        if plot_w < 0.9:
            raise ValueError(
                f"study labels are too long for a {size} column (plot width {plot_w:.2f} in); "
                "use size='double' or shorter labels"
            )
        height = 0.55 + 0.165 * rows
        fig = _figure(width, height)
        grid = fig.add_gridspec(1, 4, width_ratios=[label_w, plot_w, ci_w, wt_w], wspace=0)
        ax_lab = fig.add_subplot(grid[0, 0])
        ax = fig.add_subplot(grid[0, 1], sharey=ax_lab)
        ax_txt = fig.add_subplot(grid[0, 2], sharey=ax_lab)
        ax_wt = fig.add_subplot(grid[0, 3], sharey=ax_lab)
        for a in (ax_lab, ax_txt, ax_wt):
            a.set_axis_off()
            a.set_xlim(0, 1)
        ax.set_ylim(bottom, 0.6)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", left=False, labelleft=False)

        weights = np.array([s["weight_pct"] for s in studies], dtype=float)
        sizes = (36 if narrow else 60) * weights / weights.max()  # area proportional to weight
        segs = ax.hlines(
            ys,
            [s["ci.lb"] for s in studies],
            [s["ci.ub"] for s in studies],
            color=STUDY,
            linewidth=0.8,
            zorder=2,
        )
        segs.set_gid("study_ci")
        pts = ax.scatter(
            [s[es_key] for s in studies],
            ys,
            s=sizes,
            marker="s",
            color=STUDY,
            linewidths=0,
            zorder=3,
        )
        pts.set_gid("study_points")

        _diamond(
            ax, y_pooled, pooled["estimate"], pooled["ci.lb"], pooled["ci.ub"], REML, "pooled_reml"
        )
        pi = Line2D(
            [pooled["pi.lb"], pooled["pi.ub"]],
            [y_pi, y_pi],
            color=REML,
            linewidth=1.6,
            solid_capstyle="butt",
            zorder=3,
        )
        pi.set_gid("prediction_interval")
        ax.add_line(pi)
        for end in (pooled["pi.lb"], pooled["pi.ub"]):
            ax.plot([end, end], [y_pi - 0.22, y_pi + 0.22], color=REML, linewidth=1.0)
        if bayes:
            _diamond(ax, y_bayes, b["median"], b["eti.lb"], b["eti.ub"], BAYES, "pooled_bayes")

        ax.vlines(0, bottom, -0.4, color="#555555", linewidth=0.6, zorder=1)
        ax.vlines(
            pooled["estimate"],
            bottom,
            -0.4,
            color=REML,
            linewidth=0.6,
            linestyle=(0, (2, 2)),
            zorder=1,
        )
        ax.axhline(-(k + 0.75), color="#999999", linewidth=0.5)
        ax.set_xlim(lo, hi)
        if plot_w < 1.6 and (hi - lo) / step >= 5:
            step *= 2
        ticks = np.round(np.arange(math.ceil(lo / step - 1e-9) * step, hi + 1e-9, step), 10)
        ax.set_xticks(ticks, [fmt(t, 1) if t != 0 else "0" for t in ticks])
        ax.set_xlim(lo, hi)
        ax.xaxis.set_minor_locator(mpl.ticker.MultipleLocator(step / 2))
        ax.set_xlabel("Correlation r" if is_r else "Effect size")

        head = {"va": "center", "fontsize": fs, "fontweight": "bold"}
        ax_lab.text(0, 0, "Study", **head)
        ax_txt.text(0.06, 0, ci_head, **head)
        ax_wt.text(1, 0, "Weight", ha="right", **head)
        for y, label in headers:
            ax_lab.text(0, y, str(label), va="center", fontsize=fs, fontweight="bold")
        for y, s, ci, wt in zip(ys, studies, study_ci, study_wt, strict=True):
            ax_lab.text(0, y, indent + s["study"], va="center", fontsize=fs)
            ax_txt.text(0.06, y, ci, va="center", fontsize=fs)
            ax_wt.text(1, y, wt, va="center", ha="right", fontsize=fs)
        for y, label, text, wt, colour, weight in summary_rows:
            kw = {"va": "center", "fontsize": fs, "color": colour, "fontweight": weight}
            ax_lab.text(0, y, label, **kw)
            ax_txt.text(0.06, y, text, **kw)
            ax_wt.text(1, y, wt, ha="right", **kw)
        het = result.get("heterogeneity") or {}
        scale_note = " (z scale)" if is_r else ""
        if het and three_level:
            note = (
                f"k = {result.get('k', len(studies))} in {het['n_clusters']} clusters; "
                f"\u03c3 = {het['sigma'][0]:.3f} between, {het['sigma'][1]:.3f} within"
                f"{scale_note}; I\u00b2 = {het['I2'][0]:.0f}% + {het['I2'][1]:.0f}%; "
                f"Q({het['Q_df']}) = {het['Q']:.1f}, p {_fmt_p(het['Q_pval'])}"
            )
        elif het:
            note = (
                f"k = {result.get('k', len(studies))}; \u03c4 = {het['tau']:.3f}{scale_note}; "
                f"I\u00b2 = {het['I2']:.0f}%; Q({het['Q_df']}) = {het['Q']:.1f}, "
                f"p {_fmt_p(het['Q_pval'])}"
            )
        if het:
            fig.text(0.01, 0.04 / height, note, fontsize=fs - 0.5, color="#333333", va="bottom")
            foot = 0.2 / height
            fig.get_layout_engine().set(rect=(0, foot, 1, 1 - foot))
        save(fig, path_stem)
    return fig


def _text_width(text: str, size: float, weight: str = "normal") -> float:
    """Width in inches of ``text`` set in the current style's font."""
    prop = FontProperties(size=size, weight=weight)
    width, _, _ = TextToPath().get_text_width_height_descent(text, prop, ismath=False)
    return width / 72


def _fmt_p(p: float) -> str:
    """APA p value: ``= .031``, ``< .001``."""
    if p < 0.001:
        return "< .001"
    return "= " + f"{p:.3f}"[1:]


def funnel_plot(
    result: dict[str, Any],
    path_stem: str | Path,
    size: str = "single",
    level: float = 0.95,
) -> Figure:
    """Funnel plot: each study's Fisher z against its standard error, SE axis reversed.

    The pseudo-confidence region ``b +/- z_{(1+level)/2} SE`` around the pooled estimate
    ``b`` (as metafor's ``funnel`` draws it) is shaded; without small-study effects or
    heterogeneity about ``level`` of the studies fall inside it and the funnel is
    symmetric. A top axis gives the matching correlations (effects given as r, n), and
    Egger's test (metafor's ``regtest`` default) is printed when ``result`` carries it. With
    the ``bias`` block of :func:`alliance.meta.analysis.pool_effects`, the effects filled by
    trim-and-fill are drawn as open circles with the filled model's estimate as a dashed
    line, and the PET line (``b0 + b1 SE``) and the PEESE curve (``b0 + b1 SE^2``) run from
    their limit estimate at SE 0 (Stanley & Doucouliagos 2014).

    Parameters
    ----------
    result
        The output of :func:`alliance.meta.analysis.pool_effects`.
    path_stem
        Output path without extension; ``.png`` (300 dpi) and ``.pdf`` are written.
    size
        ``"single"`` or ``"double"`` journal column.
    level
        Coverage of the pseudo-confidence region.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]`` with gids ``studies`` (the points), ``region`` (the polygon),
        ``pooled`` (the vertical line at the estimate), ``trimfill_points``,
        ``trimfill_estimate``, ``pet_line`` and ``peese_line``.

    References
    ----------
    Sterne, J. A. C., & Egger, M. (2001). Funnel plots for detecting bias in meta-analysis:
    Guidelines on choice of axis. *Journal of Clinical Epidemiology*, 54(10), 1046-1055.
    Stanley, T. D., & Doucouliagos, H. (2014). Meta-regression approximations to reduce
    publication selection bias. *Research Synthesis Methods*, 5(1), 60-78.

    """
    from scipy import stats

    width = _width(size)
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    studies = list(result.get("studies") or [])
    if not studies:
        raise ValueError(f"result must hold studies, got {len(studies)}")
    is_r = "pooled_r" in result
    yi = np.array([s["yi"] for s in studies], dtype=float)
    sei = np.sqrt(np.array([s["vi"] for s in studies], dtype=float))
    b = float(result["pooled_z" if is_r else "pooled"]["estimate"])
    bias = result.get("bias") or {}
    trimfill = bias.get("trimfill") or {}
    filled = trimfill.get("filled") or []
    fy = np.array([f["yi"] for f in filled], dtype=float)
    fse = np.sqrt(np.array([f["vi"] for f in filled], dtype=float))
    crit = float(stats.norm.ppf(1 - (1 - level) / 2))
    se_max = float(np.ceil(sei.max() * 1.05 / 0.05) * 0.05)
    half = crit * se_max
    span = max(half, float(np.max(np.abs(np.concatenate([yi, fy]) - b)))) * 1.08

    with mpl.rc_context(style()):
        fig = _figure(width, width * 0.92)
        ax = fig.add_subplot()
        region = Polygon(
            [(b - half, se_max), (b, 0), (b + half, se_max)],
            closed=True,
            facecolor=REGION,
            edgecolor="#888888",
            linestyle=(0, (3, 2)),
            linewidth=0.6,
            zorder=1,
            label=f"Pseudo {level:.0%} confidence region",
        )
        region.set_gid("region")
        ax.add_patch(region)
        three_level = (result.get("meta") or {}).get("model") == "three-level"
        label = "Pooled estimate (three-level REML)" if three_level else "Pooled estimate (REML)"
        line = ax.axvline(b, color=REML, linewidth=0.8, zorder=2, label=label)
        line.set_gid("pooled")
        ax.axvline(0, color="#555555", linewidth=0.6, linestyle=(0, (1, 1.5)), zorder=1)
        pts = ax.scatter(yi, sei, s=14, color=STUDY, zorder=3, linewidths=0, label="Study")
        pts.set_gid("studies")
        if filled:
            fill = ax.scatter(
                fy,
                fse,
                s=14,
                facecolors="white",
                edgecolors=STUDY,
                linewidths=0.7,
                zorder=3,
                label=f"Filled by trim-and-fill (k0 = {trimfill['k0']}, {trimfill['side']})",
            )
            fill.set_gid("trimfill_points")
            adj = ax.axvline(
                trimfill["estimate"],
                color=STUDY,
                linewidth=0.7,
                linestyle=(0, (4, 2)),
                zorder=2,
                label="Trim-and-fill estimate",
            )
            adj.set_gid("trimfill_estimate")
        se_grid = np.linspace(0, se_max, 101)
        for key, curve, gid, style_ in (
            ("pet", se_grid, "pet_line", (0, (6, 2))),
            ("peese", se_grid**2, "peese_line", (0, (1, 1.2))),
        ):
            reg = bias.get(key) or {}
            if "slope" in reg:
                line_ = ax.plot(
                    reg["estimate"] + reg["slope"] * curve,
                    se_grid,
                    color=BAYES,
                    linewidth=0.9,
                    linestyle=style_,
                    zorder=2,
                    label=f"{key.upper()}: {fmt_es(reg['estimate'], 3)} at SE 0",
                )[0]
                line_.set_gid(gid)
        ax.set_xlim(b - span, b + span)
        ax.set_ylim(se_max, 0)
        ax.set_xlabel("Fisher z" if is_r else "Effect size")
        ax.set_ylabel("Standard error")
        if is_r:
            top = ax.secondary_xaxis("top", functions=(np.tanh, np.arctanh))
            top.set_xlabel("Correlation r")
            top.xaxis.set_major_formatter(
                mpl.ticker.FuncFormatter(lambda v, _: "0" if abs(v) < 1e-12 else fmt_r(v, 1))
            )
        handles, _ = ax.get_legend_handles_labels()
        egger = bias.get("egger") or {}
        if "z" in egger:
            z_text = f"{egger['z']:.2f}".replace("-", MINUS)
            egger_text = f"Egger test: z = {z_text}, p {_fmt_p(egger['pvalue'])}"
        elif (result.get("egger") or {}).get("rma"):
            e = result["egger"]["rma"]
            egger_text = f"Egger test: z = {e['statistic']:.2f}, p {_fmt_p(e['pval'])}"
        else:
            egger_text = ""
        if egger_text:
            handles.append(Line2D([], [], linestyle="none", label=egger_text))
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=1 if width < DOUBLE_COLUMN else 2,
            frameon=False,
            handlelength=1.4,
            columnspacing=1.2,
        )
        save(fig, path_stem)
    return fig
