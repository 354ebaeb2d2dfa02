"""One entry for every export format a codebook can name (``format``).

The plain formats are read by :mod:`alliance.data.readers`; REDCap and Qualtrics exports, which
are CSV files with extra structure, by :mod:`alliance.data.redcap` and
:mod:`alliance.data.qualtrics` on top of it. Keeping the dispatch here keeps the base readers
free of the formats built on them (no import cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alliance.data.qualtrics import read_qualtrics
from alliance.data.readers import RawTable, ReadError, read_csv, read_parquet, read_sav, read_xlsx
from alliance.data.redcap import read_redcap


def read_export(fmt: str, path: Path, opts: dict[str, Any], used: dict[str, str]) -> RawTable:
    """Read ``path`` as ``fmt`` (csv, sav, xlsx, parquet, redcap, qualtrics).

    The formats: :mod:`alliance.data.readers` (CSV, SPSS, Excel, Parquet),
    :mod:`alliance.data.redcap`, :mod:`alliance.data.qualtrics`.

    Parameters
    ----------
    fmt, path, opts
        The codebook's ``format``, resolved ``file`` and ``read`` options.
    used
        Raw column -> the codebook key that names it (duplicated names among these are an
        error; a line break inside one of them rejects a CSV record).

    Raises
    ------
    ReadError
        For a file that has no data rows, cannot be decoded, or names a column the codebook
        reads twice. Other exceptions of the underlying readers propagate.
    """
    if fmt == "csv":
        return read_csv(
            path, used, sep=opts.get("sep", ","), encoding=opts.get("encoding", "utf-8")
        )
    if fmt == "sav":
        return read_sav(path, used)
    if fmt == "xlsx":
        return read_xlsx(path, used, sheet=opts.get("sheet", 0))
    if fmt == "parquet":
        return read_parquet(path, used)
    if fmt == "redcap":
        return read_redcap(path, used, opts)
    if fmt == "qualtrics":
        return read_qualtrics(path, used, opts)
    raise ReadError(f"key 'format': unsupported format {fmt!r}")
