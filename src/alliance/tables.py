"""Result tables as CSV (full precision) and Markdown (rounded for reading), side by side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_csv_and_markdown(
    table: pd.DataFrame,
    path: str | Path,
    title: str,
    note: str | None = None,
    digits: int = 3,
    index: bool = False,
) -> None:
    """Write ``table`` to ``path`` (CSV) and beside it as ``.md`` with a title and a note.

    The CSV keeps full precision (it is what `alliance verify` checks); the Markdown rounds
    numbers to ``digits`` decimals for reading.
    """
    from alliance.cfa_tables import to_markdown

    path = Path(path)
    table.to_csv(path, index=index)
    shown = table.reset_index() if index else table.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}f}")
    path.with_suffix(".md").write_text(to_markdown(shown, title=title, note=note) + "\n")
