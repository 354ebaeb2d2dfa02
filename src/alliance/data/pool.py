"""Pool the tidy item tables of several datasets that share an instrument into one dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from alliance.data.ingest import ID_COLUMNS
from alliance.data.tidy import read_ingested
from alliance.jsonio import write_json


def pool_items(ingest_dirs: dict[str, str | Path]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Stack the tidy items of several ingested datasets, with a ``dataset`` column.

    Patient and therapist IDs are prefixed with the dataset name (``site_a:P001``) so that IDs
    repeated across datasets stay distinct. Group columns that only some datasets have are
    kept and are missing elsewhere.

    Parameters
    ----------
    ingest_dirs
        Dataset name -> its ingest output folder.

    Returns
    -------
    items, report
        The pooled table and an ingest-style report (kind items, the instrument, rows per dataset).

    Raises
    ------
    ValueError
        If fewer than two datasets are given or their instruments differ.
    """
    if len(ingest_dirs) < 2:
        raise ValueError(f"pooling needs at least two datasets, got {sorted(ingest_dirs)}")
    frames, reports, item_cols = [], {}, []
    for name, folder in ingest_dirs.items():
        items, instrument, reports[name] = read_ingested(folder)
        item_cols = list(instrument.items)
        items.insert(0, "dataset", name)
        for col in ("patient_id", "therapist_id"):
            items[col] = (name + ":" + items[col].astype("string")).astype("string")
        frames.append(items)
    instruments = {r["instrument"] for r in reports.values()}
    if len(instruments) != 1:
        raise ValueError(
            f"datasets measure different instruments and cannot be pooled, got "
            f"{ {n: r['instrument'] for n, r in reports.items()} }"
        )
    pooled = pd.concat(frames, ignore_index=True)
    first = next(iter(reports.values()))
    id_cols = ["dataset", *ID_COLUMNS]
    others = [c for c in pooled.columns if c not in id_cols + item_cols]
    pooled = pooled[id_cols + others + item_cols]
    report = {
        "dataset": "pooled",
        "kind": "items",
        "instrument": first["instrument"],
        "instrument_file": first.get("instrument_file"),
        "pooled_from": sorted(ingest_dirs),
        "rows_per_dataset": {n: int((pooled["dataset"] == n).sum()) for n in ingest_dirs},
        "rows_in": int(len(pooled)),
        "rows_kept": int(len(pooled)),
        "rows_quarantined": 0,
        "reasons": {},
        "warnings": [],
    }
    return pooled, report


def pool_to(ingest_dirs: dict[str, str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Pool datasets and write ``items.parquet`` and ``ingest_report.json`` into ``out_dir``."""
    items, report = pool_items(ingest_dirs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items.to_parquet(out / "items.parquet", index=False)
    write_json(out / "ingest_report.json", report)
    return report
