"""Fixtures for the SEM tests: lavaan reference files and cached fits."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

LAVAAN = Path(__file__).parents[1] / "data" / "lavaan"

#: (data set, reference file, data file)
CASES = {
    "holzinger_ml": ("holzinger1939", "lavaan_ml.json", "holzinger1939.csv"),
    "holzinger_mlr": ("holzinger1939", "lavaan_mlr.json", "holzinger1939.csv"),
    "holzinger_fiml": ("holzinger1939", "lavaan_ml_fiml.json", "holzinger1939.csv"),
    "wai_ml": ("wai_sr_sim", "lavaan_ml.json", "wai_sr_sim.csv"),
    "wai_mlr": ("wai_sr_sim", "lavaan_mlr.json", "wai_sr_sim.csv"),
    "wai_mlr_fiml": ("wai_sr_sim", "lavaan_mlr_fiml_missing.json", "wai_sr_sim_missing.csv"),
}


@cache
def reference(case: str) -> dict[str, Any]:
    folder, ref, _ = CASES[case]
    return json.loads((LAVAAN / folder / ref).read_text())


@cache
def dataset(case: str) -> pd.DataFrame:
    folder, _, data = CASES[case]
    return pd.read_csv(LAVAAN / folder / data)


@cache
def fitted(case: str) -> dict[str, Any]:
    """``fit_cfa`` output for a reference case (computed once per session)."""
    from alliance.sem.api import fit_cfa

    ref = reference(case)
    meta = ref["meta"]
    missing = "fiml" if meta["lavaan_missing"] == "ml" else "listwise"
    return fit_cfa(dataset(case), meta["model"], estimator=meta["estimator"], missing=missing)


@pytest.fixture
def lavaan_dir() -> Path:
    return LAVAAN


@cache
def extra(name: str) -> dict[str, Any]:
    """An extra lavaan reference from tests/data/lavaan/extra (made by make_extra.R)."""
    return json.loads((LAVAAN / "extra" / name).read_text())


#: invariance references: (reference file or extra file, data case, group column, estimator)
HZ, WAI = "holzinger1939", "wai_sr_sim"
LADDERS = {
    "holzinger_ml": (f"{HZ}/lavaan_ml_invariance_school.json", "holzinger_ml", "school", "ML"),
    "wai_ml": (f"{WAI}/lavaan_ml_invariance_site.json", "wai_ml", "site", "ML"),
    "holzinger_ml_strict": ("extra/holzinger_invariance_strict_ml.json", "holzinger_ml", "school",
                            "ML"),
    "wai_ml_strict": ("extra/wai_invariance_strict_ml.json", "wai_ml", "site", "ML"),
    "wai_mlr_strict": ("extra/wai_invariance_strict_mlr.json", "wai_ml", "site", "MLR"),
}  # fmt: skip


@cache
def ladder_reference(name: str) -> dict[str, Any]:
    return json.loads((LAVAAN / LADDERS[name][0]).read_text())["invariance"]


@cache
def ladder_fitted(name: str) -> dict[str, Any]:
    from alliance.sem.api import invariance_ladder

    ref_file, case, group, est = LADDERS[name]
    model = reference(case)["meta"]["model"]
    steps = ("configural", "metric", "scalar", "strict")
    if "strict" not in name:
        steps = steps[:3]
    return invariance_ladder(dataset(case), model, group, est, steps=steps)
