"""Qualtrics exports: a CSV whose column names are followed by two more header lines.

A Qualtrics CSV export has the column names on line 1 (``Q1_1``, embedded data such as
``pid``), the question text on line 2 and, since 2016, the import IDs on line 3
(``{"ImportId":"QID1_1"}``); the responses start on line 4. :func:`read_qualtrics` reads the
file as any CSV and drops those header lines (``read.header_rows``: 3, or 2 for the legacy
export without import IDs), so ``row`` N is still the record on line N + 1. The question text
(the item wording) is never kept or shown. Choices are read as the numbers the survey's
"Recode Values" give them (export with "Use numeric values"); the codebook's ``recode`` maps
them onto the instrument's scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from alliance.data.readers import RawTable, ReadError, read_csv

IMPORT_ID = '"ImportId"'


def read_qualtrics(path: Path, used: dict[str, str], opts: dict[str, Any]) -> RawTable:
    """Read a Qualtrics CSV export: the responses below the extra header lines.

    Raises
    ------
    ReadError
        If line 3 holds no ``{"ImportId": ...}`` cell (with ``header_rows: 3``), or the file
        has no response below its header lines.
    """
    header_rows = int(opts.get("header_rows", 3))
    if header_rows not in (2, 3):
        raise ReadError(f"key 'read.header_rows' must be 2 or 3, got {header_rows!r}")
    raw = read_csv(path, used, sep=opts.get("sep", ","), encoding=opts.get("encoding", "utf-8"))
    extra = header_rows - 1  # the header lines after the names: the first `extra` records
    rows = raw.rows
    rejected_rows = raw.rejected["row"].astype(int).to_numpy()
    header_records = sorted([*rows.tolist(), *rejected_rows.tolist()])[:extra]
    head = np.isin(rows, header_records)
    if header_rows == 3:
        third = raw.frame[rows == header_records[-1]] if len(header_records) == 2 else None
        if third is None or not len(third) or not any(IMPORT_ID in str(v) for v in third.iloc[0]):
            raise ReadError(
                f'{path.name}: the third header record holds no {{"ImportId": ...}} cell: '
                "not a Qualtrics CSV export with three header lines (a legacy export has two: "
                "set read.header_rows: 2)"
            )
    rejected = raw.rejected[~np.isin(rejected_rows, header_records)]
    frame = raw.frame[~head].reset_index(drop=True)
    if not len(frame) and not len(rejected):
        raise ReadError(f"{path.name} has its {header_rows} header lines but no responses")
    notes = list(raw.notes)
    last = header_records[-1] + 1 if header_records else header_rows
    notes.append(
        f"{path.name}: the question text and import-ID records (lines 2-{last}) are no records"
    )
    return RawTable(
        frame=frame,
        rows=np.asarray(rows[~head], dtype=np.int64),
        rejected=rejected.reset_index(drop=True),
        n_records=len(frame) + len(rejected),
        notes=notes,
    )
