"""The one JSON writer of the project's results, and the clean-up every result goes through.

Every ``*.json`` result a stage writes (ingest and pooling reports, scores and description
summaries, CFA fits and ladders, Bayesian diagnostics, process and meta results) is written by
:func:`write_json`: the value cleaned by :func:`jsonable`, keys sorted, two-space indentation,
ASCII, a final newline, and never a bare ``NaN`` or ``Infinity`` (which are not JSON, RFC 8259
section 6, and which strict readers such as ``jq`` or JavaScript's ``JSON.parse`` reject).
The ``sem`` engine keeps its own copy of the clean-up (:func:`alliance.sem.output.clean`)
because it imports nothing outside ``alliance.sem``; the demo-data generators write their
committed truth files byte for byte as they always have.

References
----------
Bray, T. (Ed.) (2017). The JavaScript Object Notation (JSON) data interchange format. RFC 8259.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["jsonable", "write_json"]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: numpy and pandas values to Python, NaN and inf to None.

    Mappings become dicts with text keys (a DataFrame one entry per index label, each row a
    dict of its columns; a Series one entry per label), lists, tuples and arrays become lists,
    numpy scalars their Python value, ``pd.NA`` and ``pd.NaT`` None, and a float that is not
    finite None (JSON has no NaN). Anything else is returned as it is.
    """
    if isinstance(value, pd.DataFrame):
        return {str(k): jsonable(v) for k, v in value.to_dict(orient="index").items()}
    if isinstance(value, pd.Series):
        return {str(k): jsonable(v) for k, v in value.to_dict().items()}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data``, cleaned by :func:`jsonable`, to ``path`` as JSON; return the path.

    The folder is created if needed. Keys are sorted and the file ends with a newline, so the
    same result gives the same bytes.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(jsonable(data), indent=2, sort_keys=True, allow_nan=False)
    out.write_text(text + "\n", encoding="utf-8")
    return out
