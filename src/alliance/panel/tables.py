"""The table of lagged effects of an RI-CLPM fit (CSV at full precision, Markdown to read)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.tables import write_csv_and_markdown

__all__ = ["EFFECT_NAMES", "effects_table", "write_effects"]

#: Reading names of the four lagged effects (x: alliance, y: symptoms in the pipeline).
EFFECT_NAMES = {
    "cross_x_to_y": "x -> next y (cross-lagged)",
    "cross_y_to_x": "y -> next x (cross-lagged)",
    "autoregressive_x": "x -> next x (autoregressive)",
    "autoregressive_y": "y -> next y (autoregressive)",
}
COLUMNS = [
    "model",
    "effect",
    "from_wave",
    "to_wave",
    "est",
    "se",
    "ci_lower",
    "ci_upper",
    "pvalue",
    "std_all",
    "std_ci_lower",
    "std_ci_upper",
    "usable",
]


def effects_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per model (equal or free lags), effect and lag.

    The reported model comes first; a model that is not usable keeps its estimates without
    standard errors, tests or intervals (``usable`` False). A skipped fit gives no rows.
    """
    if "effects" not in result:
        return pd.DataFrame(columns=COLUMNS)
    blocks = [(result["meta"]["constrain_lags"], result["usable"], result["effects"])]
    other = result.get("other_model")
    if other:
        blocks.append((other["constrain_lags"], other["usable"], other["effects"]))
    rows = []
    for equal, usable, effects in blocks:
        for key in EFFECT_NAMES:
            for r in effects[key]["waves"]:
                rows.append(
                    {
                        "model": "equal_lags" if equal else "free_lags",
                        "effect": key,
                        "from_wave": r["from"],
                        "to_wave": r["to"],
                        "est": r["est"],
                        "se": r["se"],
                        "ci_lower": r["ci.lower"],
                        "ci_upper": r["ci.upper"],
                        "pvalue": r["pvalue"],
                        "std_all": r["std.all"],
                        "std_ci_lower": r["std.ci.lower"],
                        "std_ci_upper": r["std.ci.upper"],
                        "usable": bool(usable),
                    }
                )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in COLUMNS[4:-1]:
        frame[col] = pd.to_numeric(frame[col]).astype(float)
    return frame


def write_effects(result: Mapping[str, Any], path_stem: str | Path) -> None:
    """``{path_stem}.csv`` and ``.md``: :func:`effects_table` with a title and a note."""
    stem = Path(path_stem)
    table = effects_table(result)
    data = result.get("data") or {}
    if "effects" in result:
        note = (
            f"RI-CLPM, {result['meta']['estimator']} with FIML; x = {data.get('x', 'x')}, "
            f"y = {data.get('y', 'y')}; est in units of the outcome per unit of the predictor, "
            "std_all in within-person SDs at the two waves (lavaan std.all); the reported "
            f"model is {'equal' if result['meta']['constrain_lags'] else 'free'} lags."
        )
    else:
        note = f"Not estimated: {result.get('reason', 'no fit')}"
    write_csv_and_markdown(
        table, stem.with_suffix(".csv"), title="Lagged within-person effects", note=note
    )
