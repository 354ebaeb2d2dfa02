"""Figures of a Bayesian fit: key posteriors with 95% intervals, within/between, PPC, ranks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from alliance.bayes.data import ModelData
from alliance.figures import DOUBLE_COLUMN, SINGLE_COLUMN, save, style

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

__all__ = [
    "KEY_EFFECTS",
    "plot_fit",
    "posterior_effects",
    "ppc_overlay",
    "rank_plots",
    "within_between",
]

#: Effects shown per model (standardized scale; the therapist model also in raw points).
KEY_EFFECTS: dict[str, list[str]] = {
    "outcome": ["b_alliance", "r_partial_improvement"],
    "therapist": ["b_within_points", "b_between_points", "contextual_points"],
    "session": ["b_within_points"],
    "latent": ["b_latent", "r_partial_latent_improvement"],
}
_LABELS = {
    "b_alliance": "Alliance slope (SD per SD)",
    "r_partial_improvement": "Partial r (positive = better outcome)",
    "b_latent": "Latent alliance slope (SD per SD)",
    "r_partial_latent_improvement": "Latent partial r (positive = better outcome)",
    "b_within_points": "Within slope (points per SD)",
    "b_between_points": "Between slope (points per SD)",
    "contextual_points": "Contextual effect (points per SD)",
}
_COLOUR = "#2166ac"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def posterior_effects(idata: az.InferenceData, names: list[str]) -> Figure:
    """Histograms of the posterior of each effect with its mean and 95% equal-tailed interval."""
    names = [n for n in names if n in idata.posterior]
    if not names:
        raise ValueError(f"none of the effects is in the posterior, got {names}")
    with mpl.rc_context(style()):
        fig = _figure(DOUBLE_COLUMN, 1.6)
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        for ax, name in zip(axes, names, strict=True):
            x = np.asarray(idata.posterior[name]).ravel()
            low, high = np.quantile(x, [0.025, 0.975])
            ax.hist(x, bins=40, color=_COLOUR, alpha=0.6, density=True)
            top = ax.get_ylim()[1]
            ax.plot([low, high], [0.04 * top] * 2, color="black", lw=2.5, solid_capstyle="butt")
            ax.axvline(0.0, color="#999999", lw=0.6, ls="--")
            ax.set_title(f"mean {x.mean():.2f}, 95% interval [{low:.2f}, {high:.2f}]")
            ax.set_xlabel(_LABELS.get(name, name))
            ax.set_yticks([])
    return fig


def within_between(idata: az.InferenceData, data: ModelData) -> Figure:
    """Within- and between-therapist alliance slopes over the data (Baldwin et al. 2007).

    Left: patients' outcome (baseline-adjusted, raw points) against early alliance, one thin
    line per therapist with the posterior mean within slope through the therapist's mean.
    Right: therapist means with the between slope (posterior mean and 94% band).
    """
    f = data.frame
    post = idata.posterior
    unit = data.scales["outcome_unit_sd"]
    b_w = np.asarray(post["b_within"]).ravel()
    b_b = np.asarray(post["b_between"]).ravel()
    b_1 = float(np.asarray(post["b_baseline"]).mean())
    adjusted = (f["y"] - b_1 * f["z_baseline"]) * unit
    means = (
        f.assign(adj=adjusted)
        .groupby("therapist_id")
        .agg(a=("a_between", "first"), y=("adj", "mean"))
    )
    with mpl.rc_context(style()):
        fig = _figure(DOUBLE_COLUMN, 2.6)
        left, right = fig.subplots(1, 2, sharey=True)
        left.scatter(f["z_alliance"], adjusted, s=4, color="#777777", alpha=0.5, lw=0)
        for therapist, row in means.iterrows():
            sel = f["therapist_id"] == therapist
            xs = np.array([f.loc[sel, "z_alliance"].min(), f.loc[sel, "z_alliance"].max()])
            left.plot(xs, row["y"] + b_w.mean() * unit * (xs - row["a"]), color=_COLOUR, lw=0.6)
        left.set_xlabel("Early alliance (z)")
        left.set_ylabel("Outcome, baseline-adjusted (points)")
        left.set_title(f"Within therapists: {b_w.mean() * unit:.2f} points per SD")
        grid = np.linspace(means["a"].min(), means["a"].max(), 50)
        lines = means["y"].mean() + np.outer(b_b * unit, grid - means["a"].mean())
        lo, hi = np.quantile(lines, [0.03, 0.97], axis=0)
        right.fill_between(grid, lo, hi, color=_COLOUR, alpha=0.2, lw=0)
        right.plot(grid, lines.mean(axis=0), color=_COLOUR, lw=1.2)
        right.scatter(means["a"], means["y"], s=12, color="black", zorder=3)
        right.set_xlabel("Therapist mean alliance (z)")
        right.set_title(f"Between therapists: {b_b.mean() * unit:.2f} points per SD")
    return fig


def ppc_overlay(
    idata: az.InferenceData,
    n_draws: int = 50,
    seed: int = 0,
    group: str = "posterior_predictive",
) -> Figure:
    """Density of the observed outcome over densities of predictive replicates.

    ``group`` is ``"posterior_predictive"`` (posterior predictive check) or
    ``"prior_predictive"`` (prior predictive check; Gabry et al. 2019).
    """
    from scipy.stats import gaussian_kde

    if group not in idata.groups():
        raise ValueError(f"idata has no {group} group, got {idata.groups()}")
    name = next(iter(idata.observed_data.data_vars))
    observed = np.asarray(idata.observed_data[name]).ravel()
    reps = np.asarray(idata[group][name]).reshape(-1, observed.size)
    pick = np.random.default_rng(seed).choice(
        len(reps), size=min(n_draws, len(reps)), replace=False
    )
    span = np.ptp(observed)
    low, high = observed.min() - 0.1 * span, observed.max() + 0.1 * span
    if group == "prior_predictive":  # show the spread the priors allow, not just the data's
        low, high = min(low, *np.quantile(reps, [0.01])), max(high, *np.quantile(reps, [0.99]))
    grid = np.linspace(low, high, 200)
    with mpl.rc_context(style()):
        fig = _figure(SINGLE_COLUMN, 2.4)
        ax = fig.subplots()
        for i, j in enumerate(pick):
            ax.plot(
                grid,
                gaussian_kde(reps[j])(grid),
                color=_COLOUR,
                alpha=0.15,
                lw=0.6,
                label=group.replace("_", " ").capitalize() if i == 0 else None,
            )
        ax.plot(grid, gaussian_kde(observed)(grid), color="black", lw=1.2, label="Observed")
        ax.set_xlabel("Outcome (model scale)")
        ax.set_yticks([])
        ax.legend(frameon=False)
    return fig


def rank_plots(idata: az.InferenceData, names: list[str]) -> Figure:
    """Rank histograms per chain (Vehtari et al. 2021): flat and alike when chains mix."""
    from scipy.stats import rankdata

    names = [n for n in names if n in idata.posterior]
    if not names:
        raise ValueError(f"none of the parameters is in the posterior, got {names}")
    with mpl.rc_context(style()):
        fig = _figure(DOUBLE_COLUMN, 1.2 * len(names) + 0.4)
        axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
        for ax, name in zip(axes, names, strict=True):
            x = np.asarray(idata.posterior[name])  # chain x draw
            ranks = rankdata(x.ravel()).reshape(x.shape)
            bins = np.linspace(0, ranks.size, 21)
            for c in range(x.shape[0]):
                counts, _ = np.histogram(ranks[c], bins=bins)
                ax.step(bins[:-1], counts, where="post", lw=0.8, label=f"chain {c + 1}")
            ax.axhline(x.shape[1] / 20, color="#999999", lw=0.6, ls="--")
            ax.set_ylabel(name)
            ax.set_yticks([])
        axes[0].legend(frameon=False, ncols=x.shape[0])
        axes[-1].set_xlabel("Rank of draw among all chains")
    return fig


def plot_fit(
    idata: az.InferenceData, model: str, data: ModelData, out_dir: str | Path
) -> list[Path]:
    """Write every figure of a fit to ``out_dir``.

    PNG and PDF via :func:`alliance.figures.save`.

    Files: ``posteriors``, ``ppc``, ``prior_predictive`` (when ``idata`` has the group),
    ``rank`` and, for the therapist model, ``within_between``.
    """
    out = Path(out_dir)
    names = KEY_EFFECTS.get(model, [])
    paths = []
    paths += save(posterior_effects(idata, names), out / "posteriors")
    paths += save(ppc_overlay(idata), out / "ppc")
    if "prior_predictive" in idata.groups():
        paths += save(ppc_overlay(idata, group="prior_predictive"), out / "prior_predictive")
    rank_names = [n for n in names if not n.endswith("_points")] or names
    rank_names += [
        n for n in ("b_within", "b_between", "sigma", "tau_u", "tau_v") if n not in rank_names
    ]
    paths += save(rank_plots(idata, rank_names), out / "rank")
    if model == "therapist":
        paths += save(within_between(idata, data), out / "within_between")
    return paths
