"""The one figure style and writer of every stage's figures: sizes, fonts, colours, PNG + PDF.

Every figure of the project is drawn at a journal column's width (:data:`SINGLE_COLUMN`,
:data:`DOUBLE_COLUMN`) in :func:`style`, on an Agg canvas outside pyplot (:func:`_new_figure`),
and written by :func:`save` as a 300-dpi PNG and a PDF without a creation date, so reruns give
identical files; :func:`placeholder_figure` states why an analysis was skipped. The stages'
``plots`` modules draw with these; no statistics module does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import fontManager

from alliance.data.instruments import Instrument

#: Figure widths in inches for a single and a double journal column.
SINGLE_COLUMN = 3.5
DOUBLE_COLUMN = 7.0
DPI = 300
_PREFERRED_FONTS = ("Arial", "Helvetica", "Liberation Sans", "Nimbus Sans", "DejaVu Sans")
NEUTRAL = "#c8c8c8"


def _fonts() -> list[str]:
    """Preferred sans-serif fonts that are installed (journal style first, DejaVu last)."""
    installed = {f.name for f in fontManager.ttflist}
    return [f for f in _PREFERRED_FONTS if f in installed] or ["DejaVu Sans"]


def style() -> dict[str, Any]:
    """Return the rcParams of the project's figure style (sizes in points at print size)."""
    return {
        "font.family": "sans-serif",
        "font.sans-serif": _fonts(),
        "font.size": 8,
        "axes.titlesize": 8,
        "axes.labelsize": 8,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "legend.fontsize": 7,
        "legend.title_fontsize": 7,
        "axes.linewidth": 0.6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": "#333333",
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "xtick.major.size": 3,
        "ytick.major.size": 0,
        "xtick.color": "#333333",
        "ytick.color": "#333333",
        "savefig.dpi": DPI,
        "savefig.bbox": None,  # keep the exact figure size: constrained layout fits the content
        "pdf.fonttype": 42,  # TrueType in PDFs: text stays editable and searchable
        "ps.fonttype": 42,
        "svg.fonttype": "none",
    }


def set_style() -> dict[str, Any]:
    """Apply the project's figure style to matplotlib's global rcParams and return it.

    The plotting functions apply the same style inside an ``rc_context`` themselves, so
    calling this is only needed for other figures that should match them.
    """
    rc = style()
    mpl.rcParams.update(rc)
    return rc


@contextmanager
def _styled() -> Iterator[None]:
    with mpl.rc_context(style()):
        yield


def _new_figure(width: float, height: float) -> Figure:
    """Create a figure on the Agg canvas, outside pyplot's global figure registry."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path_stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``{path_stem}.png`` (300 dpi) and ``{path_stem}.pdf``.

    The PDF carries no creation date so that reruns give identical files.

    Returns
    -------
    list of pathlib.Path
        The two files written.

    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = stem.with_name(stem.name + ".png")
    pdf = stem.with_name(stem.name + ".pdf")
    fig.savefig(png, dpi=DPI)
    # The PDF keeps the layout the PNG's drawing computed (same figure size): a second pass
    # of constrained layout took 0.1-0.35 s per figure (a third of the drawing time of the
    # IRT figures' 12 panels)
    engine = fig.get_layout_engine()
    fig.set_layout_engine("none")
    try:
        fig.savefig(pdf, metadata={"CreationDate": None})
    finally:
        fig.set_layout_engine(engine)
    return [png, pdf]


def _width(size: str) -> float:
    if size == "single":
        return SINGLE_COLUMN
    if size == "double":
        return DOUBLE_COLUMN
    raise ValueError(f"size must be 'single' or 'double', got {size!r}")


def _category_colours(n: int) -> list[tuple[float, float, float]]:
    """Colour-blind-safe diverging colours (ColorBrewer RdBu) with a grey middle category."""
    cmap = colormaps["RdBu"]
    colours = [to_rgb(cmap(v)) for v in np.linspace(0.1, 0.9, n)]
    if n % 2 == 1:
        colours[n // 2] = to_rgb(NEUTRAL)
    return colours


def _sequential() -> Colormap:
    """ColorBrewer Blues without its white end, so 0% cells stay visible on white."""
    return ListedColormap(colormaps["Blues"](np.linspace(0.1, 1.0, 256)), name="blues_light")


def _text_colour(rgb: tuple[float, float, float]) -> str:
    """Black or white, whichever reads better on ``rgb`` (relative luminance)."""
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return "black" if luminance > 0.45 else "white"


def _item_rows(index: pd.Index, instrument: Instrument) -> list[tuple[str, str]]:
    """Plot rows from top to bottom: ``("factor", name)`` headers and ``("item", id)`` rows."""
    present = [str(i) for i in index]
    rows: list[tuple[str, str]] = []
    placed: set[str] = set()
    for factor, members in instrument.factors.items():
        block = [i for i in members if i in present and i not in placed]
        if block:
            rows.append(("factor", factor))
            rows += [("item", i) for i in block]
            placed.update(block)
    rest = [i for i in present if i not in placed]
    if rest:
        rows.append(("factor", "other items"))
        rows += [("item", i) for i in rest]
    return rows


def placeholder_figure(title: str, reason: str, path_stem: str | Path | None = None) -> Figure:
    """A small figure that states why an analysis was skipped (keeps declared outputs)."""
    with _styled():
        fig = _new_figure(DOUBLE_COLUMN / 2, 1.2)
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.0, 0.75, title, fontsize=8, fontweight="bold", transform=ax.transAxes)
        ax.text(
            0.0, 0.45, f"Not run: {reason}", fontsize=7, wrap=True, transform=ax.transAxes, va="top"
        )
        if path_stem is not None:
            save(fig, path_stem)
    return fig
