"""Forest plot with clusters, funnel plot with trim-and-fill and PET-PEESE: the drawn numbers
are the computed ones (which tests/test_meta_bias.py and test_meta_multilevel.py check against
metafor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.meta import plots as meta_plots
from alliance.meta.analysis import pool_effects

REF_DIR = Path(__file__).parent / "data" / "metafor"


def by_gid(fig, gid: str):
    found = [a for a in fig.findobj() if a.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


@pytest.fixture(scope="module")
def three() -> dict:
    k11 = pd.read_csv(REF_DIR / "konstantopoulos2011.csv")
    effects = k11.assign(
        study="school " + k11["school"].astype(str),
        district="district " + k11["district"].astype(str),
    )[["study", "yi", "vi", "district"]]
    return pool_effects(effects, cluster="district")


def test_forest_plot_groups_studies_by_cluster(three: dict, tmp_path: Path) -> None:
    fig = meta_plots.forest_plot(three, tmp_path / "forest", size="double")
    texts = [t.get_text() for a in fig.axes for t in a.texts]
    assert "district 11" in texts and "district 644" in texts
    assert "Three-level model (REML)" in texts
    assert "Effect [95% CI]" in texts
    ys = [seg[0][1] for seg in by_gid(fig, "study_ci").get_segments()]
    # 56 studies in 11 clusters: one header row per cluster between the groups
    assert len(ys) == 56
    assert min(ys) == -(56 + 11)
    pts = by_gid(fig, "study_points")
    np.testing.assert_allclose(pts.get_offsets()[:, 0], [s["yi"] for s in three["studies"]])
    pooled = three["pooled"]
    xs = by_gid(fig, "pooled_reml").get_xy()[:, 0]
    assert (min(xs), xs[1], max(xs)) == pytest.approx(
        (pooled["ci.lb"], pooled["estimate"], pooled["ci.ub"])
    )
    assert fig.axes[1].get_xlabel() == "Effect size"
    assert any("in 11 clusters" in t.get_text() for t in fig.texts)


def test_funnel_plot_shows_trim_and_fill_and_pet_peese(three: dict, tmp_path: Path) -> None:
    fig = meta_plots.funnel_plot(three, tmp_path / "funnel")
    filled = three["bias"]["trimfill"]["filled"]
    assert len(filled) == three["bias"]["trimfill"]["k0"] == 11
    offsets = by_gid(fig, "trimfill_points").get_offsets()
    np.testing.assert_allclose(offsets[:, 0], [f["yi"] for f in filled])
    np.testing.assert_allclose(offsets[:, 1], np.sqrt([f["vi"] for f in filled]))
    adj = by_gid(fig, "trimfill_estimate").get_xdata()
    assert adj[0] == pytest.approx(three["bias"]["trimfill"]["estimate"])
    for key, power in (("pet", 1), ("peese", 2)):
        line = by_gid(fig, f"{key}_line")
        x, se = line.get_xdata(), line.get_ydata()
        reg = three["bias"][key]
        assert se[0] == 0 and x[0] == pytest.approx(reg["estimate"])
        np.testing.assert_allclose(x, reg["estimate"] + reg["slope"] * se**power)
    assert fig.axes[0].get_xlabel() == "Effect size"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "Pooled estimate (three-level REML)" in labels
    assert any(label.startswith("Egger test: z = \u22121.18") for label in labels)
