import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh
from PIL import Image

from alliance.data.instruments import load_instrument
from alliance.describe.items import describe_items
from alliance.describe.plots import diverging_item_bars, missingness_plot
from alliance.figures import set_style, style


@pytest.fixture
def proportions(items_table, wai_sr) -> pd.DataFrame:
    return describe_items(items_table, wai_sr, session=1)["proportions"]


def _segments(fig, categories):
    """Category -> (lefts, widths, y) of its bar container, checked to be complete."""
    ax = fig.axes[0]
    assert len(ax.containers) == len(categories)
    out = {}
    for c, container in zip(categories, ax.containers, strict=True):
        rects = container.patches
        out[c] = (
            np.array([r.get_x() for r in rects]),
            np.array([r.get_width() for r in rects]),
            np.array([r.get_y() + r.get_height() / 2 for r in rects]),
        )
    return out


def test_diverging_bars_draw_the_proportions(proportions, wai_sr, tmp_path):
    fig = diverging_item_bars(proportions, wai_sr, tmp_path / "fig" / "likert")
    for ext in ("png", "pdf"):
        assert (tmp_path / "fig" / f"likert.{ext}").stat().st_size > 1000
    with Image.open(tmp_path / "fig" / "likert.png") as png:
        assert png.size[0] == 1050  # 3.5 in at 300 dpi
        assert png.info["dpi"][0] == pytest.approx(300, abs=0.01)

    seg = _segments(fig, wai_sr.categories)
    # y positions from the top: the drawing order of items is the table's (factor-grouped)
    order = np.argsort(-seg[1][2])
    items = list(proportions.index)
    for c in wai_sr.categories:
        np.testing.assert_allclose(seg[c][1][order], proportions[c].to_numpy() * 100, atol=1e-9)
    # centred on the midpoint: category 3 straddles zero, 1-2 left of it, 4-5 right of it
    p = proportions.to_numpy() * 100
    np.testing.assert_allclose(seg[3][0][order], -p[:, 2] / 2, atol=1e-9)
    np.testing.assert_allclose(seg[2][0][order], -p[:, 2] / 2 - p[:, 1], atol=1e-9)
    np.testing.assert_allclose(seg[1][0][order], -p[:, 2] / 2 - p[:, 1] - p[:, 0], atol=1e-9)
    np.testing.assert_allclose(seg[4][0][order], p[:, 2] / 2, atol=1e-9)
    np.testing.assert_allclose(
        seg[5][0][order] + seg[5][1][order], 100 - p[:, :2].sum(1) - p[:, 2] / 2
    )

    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["Task", *items[:4], "Goal", *items[4:8], "Bond", *items[8:]]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["1 Seldom", "2 Sometimes", "3 Fairly often", "4 Very often", "5 Always"]
    assert ax.get_xlabel() == "Share of answers (%)"
    assert ax.get_ylabel() == "Item"
    xticks = [t.get_text() for t in ax.get_xticklabels()]
    assert all(not t.startswith(("-", "\u2212")) for t in xticks)  # left side reads as shares
    assert "0" in xticks
    lo, hi = ax.get_xlim()
    assert lo <= seg[1][0].min() and (seg[5][0] + seg[5][1]).max() <= hi  # nothing clipped


def test_diverging_bars_even_scale_double_width(tmp_path):
    phq9 = load_instrument("phq9")
    shares = pd.DataFrame(
        [[0.1, 0.2, 0.3, 0.4]] * 9, index=list(phq9.items), columns=list(phq9.categories)
    )
    fig = diverging_item_bars(shares, phq9, tmp_path / "phq", size="double")
    with Image.open(tmp_path / "phq.png") as png:
        assert png.size[0] == 2100
    seg = _segments(fig, phq9.categories)
    np.testing.assert_allclose(seg[1][0], -20)  # no middle category: 0-1 left, 2-3 right
    np.testing.assert_allclose(seg[0][0], -30)
    np.testing.assert_allclose(seg[2][0], 0)
    np.testing.assert_allclose(seg[3][0], 30)
    # symmetric limits: the larger extent (70% right of zero) rounded up to a 20% tick step
    assert fig.axes[0].get_xlim() == (-80, 80)


def test_diverging_bars_fit_lopsided_items(tmp_path):
    phq9 = load_instrument("phq9")
    shares = pd.DataFrame(
        [[0.7, 0.25, 0.05, 0.0]] * 9, index=list(phq9.items), columns=list(phq9.categories)
    )
    fig = diverging_item_bars(shares, phq9, tmp_path / "phq")
    seg = _segments(fig, phq9.categories)
    np.testing.assert_allclose(seg[0][0], -95)
    assert fig.axes[0].get_xlim() == (-100, 100)


def test_diverging_bars_validation(proportions, wai_sr, tmp_path):
    bad = proportions.copy()
    bad.iloc[0, 0] += 0.2
    with pytest.raises(ValueError, match="each item's proportions must sum to 1, got"):
        diverging_item_bars(bad, wai_sr, tmp_path / "x")
    with pytest.raises(ValueError, match=r"categories must lie on the scale .*, got \[6\]"):
        diverging_item_bars(proportions.assign(**{"6": 0.0}), wai_sr, tmp_path / "x")
    with pytest.raises(ValueError, match="size must be 'single' or 'double', got 'poster'"):
        diverging_item_bars(proportions, wai_sr, tmp_path / "x", size="poster")


def test_missingness_heatmap(items_table, wai_sr, tmp_path):
    missing = describe_items(items_table, wai_sr)["missing_by_session"]
    fig = missingness_plot(missing, tmp_path / "missing")
    for ext in ("png", "pdf"):
        assert (tmp_path / f"missing.{ext}").exists()
    with Image.open(tmp_path / "missing.png") as png:
        assert png.size[0] == 1050
    mesh = next(c for c in fig.axes[0].collections if isinstance(c, QuadMesh))
    drawn = np.asarray(mesh.get_array()).reshape(len(missing.columns), len(missing.index))
    np.testing.assert_allclose(drawn, missing.to_numpy().T * 100)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(missing.columns)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    assert ax.get_xlabel() == "Session"
    assert fig.axes[1].get_ylabel() == "Item non-response (%)"  # colour bar
    # annotations (cells are wide enough with 3 sessions): one per cell, in percent
    assert len(ax.texts) == missing.size


def test_missingness_validation(tmp_path):
    with pytest.raises(ValueError, match=r"shares must lie in \[0, 1\], got range"):
        missingness_plot(pd.DataFrame({"a": [0.1, 1.5]}, index=[1, 2]), tmp_path / "m")
    with pytest.raises(ValueError, match="must not be empty"):
        missingness_plot(pd.DataFrame(), tmp_path / "m")


def test_pdf_is_reproducible(proportions, wai_sr, tmp_path):
    diverging_item_bars(proportions, wai_sr, tmp_path / "a")
    diverging_item_bars(proportions, wai_sr, tmp_path / "b")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_set_style_applies_the_shared_style():
    with mpl.rc_context():
        rc = set_style()
        assert rc == style()
        assert mpl.rcParams["pdf.fonttype"] == 42
        assert mpl.rcParams["savefig.dpi"] == 300
        assert mpl.rcParams["font.size"] == 8


def test_save_writes_the_pdf_with_the_pngs_layout_and_keeps_the_layout_engine(tmp_path):
    """The PDF reuses the constrained layout the PNG's drawing computed (no second layout
    pass): the axes keep their positions, the figure keeps its layout engine, and a rerun
    writes the same bytes."""
    from alliance.figures import _new_figure, save

    fig = _new_figure(3.5, 2.5)
    ax = fig.subplots()
    ax.plot([0, 1, 2], [2, 0, 1])
    ax.set(xlabel="session", ylabel="a long axis label", title="title")
    engine = fig.get_layout_engine()
    png, pdf = save(fig, tmp_path / "a" / "figure")
    after_png = ax.get_position().bounds
    assert fig.get_layout_engine() is engine
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:5] == b"%PDF-"
    # constrained layout moved the axes off matplotlib's default position, and left them there
    assert after_png != pytest.approx((0.125, 0.11, 0.775, 0.77))
    save(fig, tmp_path / "b" / "figure")
    assert ax.get_position().bounds == pytest.approx(after_png, abs=1e-12)
    assert (tmp_path / "a" / "figure.pdf").read_bytes() == (
        tmp_path / "b" / "figure.pdf"
    ).read_bytes()
