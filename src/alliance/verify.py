"""A reviewer's check: compare every number in the result tables with an expected manifest."""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

# Result tables whose numbers are checked (globs relative to the results folder). Quarantine
# tables, tidy data and logs are left out: they hold raw values and IDs, not results.
DEFAULT_PATTERNS = (
    "*/ingest/ingest_report.json",
    "*/scores/summary.json",
    "*/describe/summary.json",
    "*/describe/reliability.csv",
    "*/describe/item_total.csv",
    "*/describe/item_categories.csv",
    "*/describe/efa_loadings.csv",
    "*/cfa/*.json",
    "*/cfa/*.csv",
    "*/bayes/*/summary.csv",
    "meta/*.json",
    "meta/*.csv",
)

# Keys (last path element) that are run-specific, not results.
IGNORED_KEYS = {
    "file",
    "codebook",
    "instrument_file",
    "warnings",
    "source",
    "path",
    "elapsed_s",
    "traceback",
    # derived detail that repeats what is checked elsewhere (kept out to keep the manifest small)
    "fit_all",
    "residual_correlations",
    "modindices",
    "htmt",
    "eigenvalues",
    "structure",
    "effects",
    # derivable from an estimate and its SE
    "z",
    "ci.lower",
    "ci.upper",
}


@dataclass(frozen=True)
class Tolerance:
    """An absolute and a relative tolerance: a value matches if either holds."""

    absolute: float
    relative: float

    def matches(self, expected: float, observed: float) -> bool:
        """Whether ``observed`` agrees with ``expected`` (NaN matches NaN only)."""
        if math.isnan(expected) or math.isnan(observed):
            return math.isnan(expected) and math.isnan(observed)
        diff = abs(observed - expected)
        return diff <= self.absolute or diff <= self.relative * abs(expected)


# Tolerance per kind of statistic. Counts must match exactly; deterministic estimates to
# numerical precision across platforms; Monte Carlo summaries (posterior draws, parallel
# analysis) to within their Monte Carlo error.
TOLERANCES: dict[str, Tolerance] = {
    "count": Tolerance(0.0, 0.0),
    "estimate": Tolerance(1e-6, 1e-6),
    "p_value": Tolerance(1e-6, 1e-4),
    "monte_carlo": Tolerance(0.02, 0.02),
}

COUNT_KEYS = {
    "n",
    "rows_in",
    "rows_kept",
    "rows_quarantined",
    "problems",
    "df",
    "npar",
    "n_obs",
    "n_rows",
    "n_items",
    "n_complete",
    "n_patients",
    "studies",
    "patients",
    "therapists",
    "item_rows",
    "outcome_rows",
    "values_recoded",
    "item_nonresponse",
    "n_answered",
    "missing",
    "n_factors",
    "n_components",
    "n_iter",
    "count",
}


def kind_of(file: str, key: str) -> str:
    """The kind of statistic a value is, from its file and key (decides the tolerance)."""
    leaf = key.split("/")[-1].lower()
    if "/bayes/" in f"/{file}" or "parallel_analysis" in key and "random" in key:
        return "monte_carlo"
    if (
        leaf in COUNT_KEYS
        or leaf.startswith("n_")
        or key.startswith("reasons/")
        or (key.startswith("missing_codes_seen/"))
    ):
        return "count"
    if leaf in {"p", "pvalue", "p_value"} or leaf.startswith("pvalue"):
        return "p_value"
    return "estimate"


def _flatten(value: Any, prefix: str, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k) in IGNORED_KEYS:
                continue
            _flatten(v, f"{prefix}/{k}" if prefix else str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}/{i}", out)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int | float):
        out[prefix] = float(value)


def numbers_in(path: Path) -> dict[str, float]:
    """Every number in a JSON or CSV result file, keyed by its path (``row/column`` for CSV)."""
    out: dict[str, float] = {}
    if path.suffix == ".json":
        _flatten(json.loads(path.read_text()), "", out)
    elif path.suffix == ".csv":
        table = pd.read_csv(path)
        key_col = table.columns[0]
        for _, row in table.iterrows():
            label = str(row[key_col])
            for col in table.columns[1:]:
                value = row[col]
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out[f"{label}/{col}"] = float(value)
    else:
        raise ValueError(f"only .json and .csv result files are checked, got {path}")
    return out


def result_files(results_dir: str | Path, patterns: tuple[str, ...] = DEFAULT_PATTERNS):
    """The result files under ``results_dir`` that match ``patterns``, sorted."""
    root = Path(results_dir)
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and any(fnmatch.fnmatch(rel, p) for p in patterns):
            found.append(rel)
    return found


def build_manifest(results_dir: str | Path, patterns: tuple[str, ...] = DEFAULT_PATTERNS) -> dict:
    """Record every number of the result tables, with the kind that sets its tolerance."""
    root = Path(results_dir)
    entries = {}
    for rel in result_files(root, patterns):
        for key, value in numbers_in(root / rel).items():
            entries[f"{rel}::{key}"] = {"value": value, "kind": kind_of(rel, key)}
    tolerances = {
        k: {"absolute": t.absolute, "relative": t.relative} for k, t in TOLERANCES.items()
    }
    return {"patterns": list(patterns), "tolerances": tolerances, "values": entries}


def verify(results_dir: str | Path, manifest: dict) -> pd.DataFrame:
    """Compare the result tables under ``results_dir`` with ``manifest``.

    Returns
    -------
    pandas.DataFrame
        One row per expected or observed number: ``file``, ``key``, ``kind``, ``expected``,
        ``observed``, ``tolerance`` and ``status`` (``match``, ``mismatch``, ``missing``: expected
        but not produced, ``unexpected``: produced but not in the manifest).
    """
    root = Path(results_dir)
    patterns = tuple(manifest.get("patterns", DEFAULT_PATTERNS))
    tolerances = {
        k: Tolerance(v["absolute"], v["relative"])
        for k, v in manifest.get("tolerances", {}).items()
    } or TOLERANCES
    observed: dict[str, float] = {}
    for rel in result_files(root, patterns):
        for key, value in numbers_in(root / rel).items():
            observed[f"{rel}::{key}"] = value
    rows = []
    for full_key, spec in manifest["values"].items():
        file, key = full_key.split("::", 1)
        tol = tolerances[spec["kind"]]
        got = observed.get(full_key)
        if got is None:
            status = "missing"
        else:
            status = "match" if tol.matches(spec["value"], got) else "mismatch"
        rows.append((file, key, spec["kind"], spec["value"], got, tol.absolute, status))
    for full_key in sorted(set(observed) - set(manifest["values"])):
        file, key = full_key.split("::", 1)
        rows.append((file, key, kind_of(file, key), None, observed[full_key], None, "unexpected"))
    return pd.DataFrame(
        rows, columns=["file", "key", "kind", "expected", "observed", "tolerance", "status"]
    )


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Counts of each status per result file, for the printed verdict."""
    counts = table.pivot_table(index="file", columns="status", values="key", aggfunc="count")
    return counts.fillna(0).astype(int)
