"""Forest and funnel plots: the drawn numbers are the computed ones."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from alliance.figures import DPI, SINGLE_COLUMN
from alliance.meta import plots as meta_plots
from alliance.meta.analysis import pool_effects

REF_DIR = Path(__file__).parent / "data" / "metafor"
BAYES = {"pooled_r": {"median": 0.149, "eti.lb": 0.077, "eti.ub": 0.213}}


@pytest.fixture(scope="module")
def result() -> dict:
    return pool_effects(pd.read_csv(REF_DIR / "effects.csv"))


def by_gid(fig, gid: str):
    found = [a for a in fig.findobj() if a.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


def test_forest_plot_draws_the_computed_intervals(result: dict, tmp_path: Path) -> None:
    fig = meta_plots.forest_plot(result, tmp_path / "forest", bayes=BAYES)
    segs = by_gid(fig, "study_ci").get_segments()
    studies = result["studies"]
    assert len(segs) == len(studies)
    for seg, s in zip(segs, studies, strict=True):
        (x0, y0), (x1, y1) = seg
        assert (x0, x1) == pytest.approx((s["ci.lb"], s["ci.ub"]), abs=1e-12)
        assert y0 == y1
    # Rows run from the top in input order; squares sit at r with area proportional to weight.
    ys = [seg[0][1] for seg in segs]
    assert ys == sorted(ys, reverse=True)
    pts = by_gid(fig, "study_points")
    np.testing.assert_allclose(pts.get_offsets()[:, 0], [s["r"] for s in studies])
    weights = np.array([s["weight_pct"] for s in studies])
    np.testing.assert_allclose(pts.get_sizes() / pts.get_sizes().max(), weights / weights.max())

    pooled = result["pooled_r"]
    xs = by_gid(fig, "pooled_reml").get_xy()[:, 0]
    assert min(xs) == pytest.approx(pooled["ci.lb"])
    assert max(xs) == pytest.approx(pooled["ci.ub"])
    assert xs[1] == pytest.approx(pooled["estimate"])
    pi = by_gid(fig, "prediction_interval").get_xdata()
    assert tuple(pi) == pytest.approx((pooled["pi.lb"], pooled["pi.ub"]))
    bx = by_gid(fig, "pooled_bayes").get_xy()[:, 0]
    assert (min(bx), bx[1], max(bx)) == pytest.approx((0.077, 0.149, 0.213))

    ax = fig.axes[1]
    assert ax.get_xlabel() == "Correlation r"
    lo, hi = ax.get_xlim()
    assert lo <= min(s["ci.lb"] for s in studies) and hi >= pooled["pi.ub"]
    texts = [t.get_text() for a in fig.axes for t in a.texts]
    assert ".19 [.00, .36]" in texts  # Axelsson et al., APA style
    assert "\u2212.09 [\u2212.34, .18]" in texts  # Moran et al., true minus signs
    assert "10.5%" in texts and "100%" in texts


def test_forest_plot_files(result: dict, tmp_path: Path) -> None:
    meta_plots.forest_plot(result, tmp_path / "sub" / "forest")
    png = tmp_path / "sub" / "forest.png"
    assert png.exists() and (tmp_path / "sub" / "forest.pdf").exists()
    assert mpimg.imread(png).shape[1] == round(SINGLE_COLUMN * DPI)


def test_forest_plot_without_bayes_and_sorted(result: dict, tmp_path: Path) -> None:
    fig = meta_plots.forest_plot(result, tmp_path / "f", size="double", sort=True)
    assert not [a for a in fig.findobj() if a.get_gid() == "pooled_bayes"]
    xs = by_gid(fig, "study_points").get_offsets()[:, 0]
    assert list(xs) == sorted(xs, reverse=True)


def test_forest_plot_rejects_bad_input(result: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size must be 'single' or 'double', got 'poster'"):
        meta_plots.forest_plot(result, tmp_path / "f", size="poster")
    with pytest.raises(ValueError, match="must hold studies, got 0"):
        meta_plots.forest_plot({**result, "studies": []}, tmp_path / "f")
    long = {**result, "studies": [{**s, "study": "x" * 120} for s in result["studies"]]}
    with pytest.raises(ValueError, match="too long for a single column"):
        meta_plots.forest_plot(long, tmp_path / "f")


def test_funnel_plot_draws_studies_and_region(result: dict, tmp_path: Path) -> None:
    fig = meta_plots.funnel_plot(result, tmp_path / "funnel")
    assert (tmp_path / "funnel.png").exists() and (tmp_path / "funnel.pdf").exists()
    studies = result["studies"]
    offsets = by_gid(fig, "studies").get_offsets()
    np.testing.assert_allclose(offsets[:, 0], [s["yi"] for s in studies])
    np.testing.assert_allclose(offsets[:, 1], [math.sqrt(s["vi"]) for s in studies])
    b = result["pooled_z"]["estimate"]
    assert by_gid(fig, "pooled").get_xdata()[0] == pytest.approx(b)
    (left, se_max), apex, (right, _) = by_gid(fig, "region").get_xy()[:3]
    assert tuple(apex) == pytest.approx((b, 0))
    assert b - left == pytest.approx(1.959963984540054 * se_max)
    assert right - b == pytest.approx(b - left)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # SE axis reversed: precise studies on top
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "Egger test: z = 1.02, p = .307" in legend


def test_fmt_r() -> None:
    assert meta_plots.fmt_r(0.187) == ".19"
    assert meta_plots.fmt_r(-0.09) == "\u2212.09"
    assert meta_plots.fmt_r(-0.001) == ".00"
    assert meta_plots.fmt_r(1.0) == "1.00"
