"""CFA figures: the drawn values are the estimates, cutoffs sit at the documented values."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from alliance.cfa import plots as p
from alliance.cfa import tables as t
from alliance.data.instruments import load_instrument
from alliance.figures import DOUBLE_COLUMN, DPI, SINGLE_COLUMN

DATA = Path(__file__).parent / "data" / "cfa_examples"
MODELS = ("one_factor", "two_factor", "correlated", "bifactor", "second_order")


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def results() -> dict:
    return {m: load(f"site_b_{m}_MLR") for m in MODELS}


def by_gid(fig, gid: str):
    found = [a for a in fig.findobj() if a.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


def assert_written(stem: Path, width: float) -> None:
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    assert pdf.stat().st_size > 0
    h, w = mpimg.imread(png).shape[:2]
    assert w == round(width * DPI)


def test_loading_heatmap_draws_the_loadings(results: dict, tmp_path: Path) -> None:
    inst = load_instrument("wai_sr")
    long = t.loadings_long(results)
    fig = p.loading_heatmap(long, inst, tmp_path / "heat")
    assert_written(tmp_path / "heat", SINGLE_COLUMN)
    mesh = by_gid(fig, "loadings")
    ax = fig.axes[0]
    rows = [lab.get_text() for lab in ax.get_yticklabels()]
    heads = [lab.get_text() for lab in ax.get_xticklabels()]
    assert rows[:5] == ["Task", "wai_01", "wai_02", "wai_10", "wai_12"]
    assert heads == [
        "One\nfactor",
        "Two\nfactors",
        "Three\nfactors",
        "Bifactor\ngeneral",
        "Bifactor\nspecific",
        "Second\norder",
    ]
    grid = np.ma.masked_invalid(mesh.get_array()).reshape(len(rows), len(heads))
    assert grid.mask[0].all()  # the factor header row is empty
    cols = [("one_factor", "item"), ("two_factor", "item"), ("correlated", "item")]
    cols += [("bifactor", "general"), ("bifactor", "specific"), ("second_order", "item")]
    for r, item in enumerate(rows):
        if not item.startswith("wai"):
            continue
        for c, (model, role) in enumerate(cols):
            want = long[(long.model == model) & (long.role == role) & (long.item == item)]
            assert grid[r, c] == pytest.approx(float(want["est.std"].iloc[0]))
    texts = {a.get_text() for a in ax.texts}
    neg = float(long[(long.model == "bifactor") & (long.item == "wai_06")]["est.std"].min())
    assert t.fmt_num(neg, 2, leading_zero=False) in texts
    assert mesh.norm.vmin == -1 and mesh.norm.vmax == 1


def test_loading_heatmap_accepts_a_factor_map(tmp_path: Path) -> None:
    import pandas as pd

    wide = pd.DataFrame({"A": [0.7, 0.8, 0.6]}, index=["x1", "x2", "y1"])
    fig = p.loading_heatmap(wide, {"f": ["x1", "x2"], "g": ["y1"]}, tmp_path / "h")
    rows = [lab.get_text() for lab in fig.axes[0].get_yticklabels()]
    assert rows == ["F", "x1", "x2", "G", "y1"]


@pytest.mark.parametrize("estimator", ["MLR", "WLSMV"])
def test_fit_plot_cutoffs_and_points(estimator: str, tmp_path: Path) -> None:
    res = {m: load(f"site_b_{m}_{estimator}") for m in MODELS}
    fig = p.fit_comparison_plot(res, estimator, tmp_path / "fit")
    assert_written(tmp_path / "fit", DOUBLE_COLUMN)
    for key, (_, cut) in t.CUTOFFS.items():
        line = by_gid(fig, f"cutoff_{key}")
        assert tuple(line.get_xdata()) == (cut, cut)
    assert (t.CUTOFFS["cfi"][1], t.CUTOFFS["rmsea"][1], t.CUTOFFS["srmr"][1]) == (
        0.95,
        0.06,
        0.08,
    )
    # every model's robust CFI is drawn, as a dot (meets) or a triangle (misses)
    dots = by_gid(fig, "points_cfi").get_offsets()[:, 0]
    tris = by_gid(fig, "misses_cfi").get_offsets()[:, 0]
    drawn = np.where(np.isfinite(dots), dots, tris)
    np.testing.assert_allclose(drawn, [res[m]["fit"]["cfi.robust"] for m in MODELS])
    assert np.isfinite(tris[0]) and not np.isfinite(dots[0])  # one factor misses .95
    segs = by_gid(fig, "rmsea_ci").get_segments()
    lows = sorted(s[0][0] for s in segs)
    assert lows == pytest.approx(sorted(res[m]["fit"]["rmsea.ci.lower.robust"] for m in MODELS))
    caption = by_gid(fig, "caption").get_text().replace("\n", " ")
    assert "cutoffs derived for ML" in caption
    assert fig.axes[0].get_xlabel() == "Robust CFI"


def test_fit_plot_ml_caption_and_table_input(tmp_path: Path) -> None:
    fit = {"npar": 30, "df": 50, "chisq": 80.0, "pvalue": 0.004, "cfi": 0.97, "tli": 0.96}
    fit |= {"rmsea": 0.05, "rmsea.ci.lower": 0.03, "rmsea.ci.upper": 0.07, "srmr": 0.04}
    res = {"correlated": {"converged": True, "fit": fit}, "bifactor": {"converged": False}}
    table = t.fit_comparison_table(res, "ML", numeric=True)
    fig = p.fit_comparison_plot(table, "ML", tmp_path / "fit_ml", size="single")
    assert_written(tmp_path / "fit_ml", SINGLE_COLUMN)
    caption = by_gid(fig, "caption").get_text()
    assert "derived for ML" not in caption
    labels = [lab.get_text() for lab in fig.axes[0].get_yticklabels()]
    assert labels[1] == "Bifactor\n(not estimated)"


def test_invariance_deltas_plot_thresholds(tmp_path: Path) -> None:
    ladder = load("pooled_invariance_dataset_MLR")
    fig = p.invariance_deltas_plot(ladder, tmp_path / "inv")
    assert_written(tmp_path / "inv", DOUBLE_COLUMN)
    cfi = [s[0][0] for s in by_gid(fig, "threshold_cfi").get_segments()]
    rmsea = [s[0][0] for s in by_gid(fig, "threshold_rmsea").get_segments()]
    srmr = [s[0][0] for s in by_gid(fig, "threshold_srmr").get_segments()]
    assert cfi == pytest.approx([-0.010] * 3)
    assert rmsea == pytest.approx([0.015] * 3)
    assert srmr == pytest.approx([0.030, 0.010, 0.010])  # metric, scalar, strict
    drawn = by_gid(fig, "deltas_cfi").get_offsets()[:, 0]
    want = [ladder["decisions"][s]["delta_cfi"] for s in ("metric", "scalar", "strict")]
    np.testing.assert_allclose(drawn, want)
    labels = [lab.get_text() for lab in fig.axes[0].get_yticklabels()]
    assert labels[0] == "Metric vs configural\n(invariant)"
    assert "Chen (2007)" in by_gid(fig, "caption").get_text()


def test_invariance_deltas_plot_wlsmv(tmp_path: Path) -> None:
    fig = p.invariance_deltas_plot(load("pooled_invariance_dataset_WLSMV"), tmp_path / "iw")
    assert fig.axes[0].get_xlabel() == "\u0394 scaled CFI"
    assert len(by_gid(fig, "deltas_rmsea").get_offsets()) == 2


def loading_labels(result: dict) -> set[str]:
    return {
        t.fmt_num(r["est.std"], 2, leading_zero=False)
        for r in result["standardized"]
        if r["op"] == "=~"
    }


@pytest.mark.parametrize("model", ["correlated", "bifactor", "second_order"])
def test_path_diagram_source(model: str, results: dict) -> None:
    res = results[model]
    src = p.path_dot(res)
    items = [f"wai_{i:02d}" for i in range(1, 13)]
    for item in items:
        assert f'"{item}" [shape=box' in src
    labels = set(re.findall(r'label="([^"]*)"', src))
    assert loading_labels(res) <= labels
    if model == "correlated":
        r = {frozenset((c["lhs"], c["rhs"])): c["r"] for c in res["factor_correlations"]}
        assert t.fmt_num(r[frozenset(("task", "goal"))], 2, leading_zero=False) in labels
        assert "dir=both" in src


@pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz 'dot' is not installed (make setup installs Debian's graphviz when it can)",
)
@pytest.mark.parametrize("model", ["correlated", "bifactor", "second_order"])
def test_path_diagram_files(model: str, results: dict, tmp_path: Path) -> None:
    res = results[model]
    out = p.path_diagram(res, tmp_path / model)
    assert out["dot"] == p.path_dot(res)
    assert out["status"] == "ok"
    names = sorted(f.name for f in out["files"])
    assert names == [f"{model}.gv", f"{model}.pdf", f"{model}.png"]
    assert mpimg.imread(tmp_path / f"{model}.png").shape[1] <= round(DOUBLE_COLUMN * DPI) + 1


def test_path_diagram_without_dot_writes_a_placeholder(
    results: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(p.shutil, "which", lambda name: None)
    out = p.path_diagram(results["correlated"], tmp_path / "pd")
    assert out["status"] == "placeholder"
    assert "Graphviz 'dot'" in out["message"]
    assert (tmp_path / "pd.png").is_file() and (tmp_path / "pd.pdf").is_file()
    assert (tmp_path / "pd.gv").is_file()


def test_path_diagram_of_a_failed_model(tmp_path: Path) -> None:
    out = p.path_diagram({"converged": False, "model_name": "bifactor"}, tmp_path / "x")
    assert out["status"] == "placeholder" and out["dot"] is None
    assert (tmp_path / "x.png").is_file()


def test_fit_plot_leaves_out_fits_that_did_not_converge(rng, tmp_path: Path) -> None:
    from small_samples import correlated_factors, not_converged_fit, syntax

    from alliance.sem.api import fit_cfa

    data = correlated_factors(rng, 80)
    res = {m: fit_cfa(data, syntax(m), "MLR", "fiml") for m in ("one_factor", "correlated")}
    res["bifactor"] = not_converged_fit(data)  # stopped after 3 iterations (small_samples)
    res["bifactor"]["fit"]["tli.robust"] = 415089431232.889  # as in the clinic's export
    fig = p.fit_comparison_plot(res, "MLR", tmp_path / "fit")
    labels = [lab.get_text() for lab in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "Bifactor\n(not converged)"  # bottom row: drawn last, at y = 0
    caption = by_gid(fig, "caption").get_text().replace("\n", " ")
    assert caption.endswith("Not drawn (no proper solution): Bifactor (not converged).")
    tli = fig.axes[1]
    assert tli.get_xlim()[1] < 1.1  # the axis is set by the usable fits only
    for key in ("cfi", "tli", "rmsea", "srmr"):
        for gid in (f"points_{key}", f"misses_{key}"):
            ys = by_gid(fig, gid).get_offsets()
            xs = np.asarray(ys)[:, 0]
            assert not np.isfinite(xs[-1]), gid  # no point for the bifactor row
    drawn = [
        x
        for gid in ("points_tli", "misses_tli")
        for x in np.asarray(by_gid(fig, gid).get_offsets())[:, 0]
        if np.isfinite(x)
    ]
    assert sorted(drawn) == pytest.approx(
        sorted(res[m]["fit"]["tli.robust"] for m in ("one_factor", "correlated"))
    )
    assert len(by_gid(fig, "rmsea_ci").get_segments()) == 2
