"""The tidy tables of an ingest output folder, read back with their instrument and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.data.instruments import Instrument, load_instrument

__all__ = ["ingested_instrument", "read_ingested"]


def _ingest_report(folder: Path) -> dict[str, Any]:
    report_path = folder / "ingest_report.json"
    if not report_path.is_file():
        raise ValueError(f"{folder}: no ingest_report.json; run `alliance ingest` first")
    report = json.loads(report_path.read_text())
    if report.get("kind") != "items":
        raise ValueError(
            f"{folder}: dataset kind is {report.get('kind')!r}; only item data are scored"
        )
    return report


def _report_instrument(report: dict[str, Any]) -> Instrument:
    source = report.get("instrument_file")
    return load_instrument(source if source and Path(source).is_file() else report["instrument"])


def ingested_instrument(ingest_dir: str | Path) -> Instrument:
    """The instrument an ingest output folder's items were ingested with.

    That is the codebook's: its report's instrument file (a user's), else the built-in
    instrument of that name.

    Raises
    ------
    ValueError
        If the folder holds no ingest output or the dataset is a published-effects table.
    """
    return _report_instrument(_ingest_report(Path(ingest_dir)))


def read_ingested(ingest_dir: str | Path) -> tuple[pd.DataFrame, Instrument, dict[str, Any]]:
    """The tidy items table, its instrument and the ingest report of an ingest output folder.

    Raises
    ------
    ValueError
        If the folder holds no ingest output or the dataset is a published-effects table.
    """
    folder = Path(ingest_dir)
    report = _ingest_report(folder)
    items = pd.read_parquet(folder / "items.parquet")
    return items, _report_instrument(report), report
