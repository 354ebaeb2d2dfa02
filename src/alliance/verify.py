"""A reviewer's check: compare every number in the result tables with an expected manifest.

Every number is keyed by what it is, never by a computed value: the file, then for a CSV row
its identity columns (dataset, model, step, item, parameter, ...; :data:`ROW_KEYS`) and the
column, for a JSON value its path, where list items that describe something (a parameter
``lhs op rhs`` in a group, a study, a model pair) are named by their identity fields
(:data:`IDENTITY_FIELDS`) rather than their position.

Deterministic numbers are compared with a fixed tolerance per kind (counts exactly, estimates
to 1e-6, p-values to 1e-4 relative). Monte Carlo numbers (posterior summaries) are compared as
a statistician would: every one is written with its Monte Carlo standard error (MCSE) beside it
(``mcse_mean`` beside ``mean``, ...), and the difference between the expected and the observed
value is judged against the MCSE of the difference, ``sqrt(mcse_expected**2 +
mcse_observed**2)``. The numbers of one statistic of one parameter (a scalar, or every element
of a vector such as per-therapist effects) form a family, tested with ``sum(z**2) ~ chi2(k)``;
a family fails when its p-value is below ``family_alpha / number of families`` (Bonferroni), so
that a rerun on another machine, which draws other chains, fails the whole check with
probability at most ``family_alpha`` (1%), while a shift of a few MCSE in one posterior mean
fails. R-hat, ESS and divergences are checked against their pass thresholds (R-hat <= 1.01,
ESS >= 400, no divergences), not as values: a rerun must pass them wherever the manifest's
run passed them.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Version of the manifest layout written by :func:`build_manifest`.
MANIFEST_FORMAT = 2

# Result tables whose numbers are checked (globs relative to the results folder; ``*`` also
# matches ``/``). Quarantine tables, tidy data and logs are left out: they hold raw values and
# IDs, not results.
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
    "*/effects/effect.json",
    "*/process/agreement.csv",
    "*/process/variance_components.json",
    "*/panel/effects.csv",
    "*/irt/*/items.csv",
    "meta/*.json",
    "meta/*.csv",
)

#: Identity columns of the rows of each CSV result table (first match wins). A table not
#: listed is keyed by its first column when that column is text with unique values.
ROW_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("*/process/bayes/*/summary.csv", ("stage", "parameter")),
    ("*/bayes/*/summary.csv", ("parameter",)),
    ("*/cfa/tables/fit_*.csv", ("Model",)),
    ("*/cfa/tables/invariance_*.csv", ("Step",)),
    ("*/cfa/tables/loadings_*.csv", ("Factor", "Item")),
    ("*/cfa/tables/nested_tests_*.csv", ("restricted", "general")),
    ("*/cfa/tables/reliability_*.csv", ("Model", "Factor")),
    ("*/cfa/tables/bifactor_*.csv", ("Model", "Factor")),
    ("*/describe/item_categories.csv", ("item",)),
    ("*/describe/item_total.csv", ("item",)),
    ("*/describe/reliability.csv", ("scale",)),
    ("*/process/agreement.csv", ("measure", "scope")),
    ("*/panel/effects.csv", ("model", "effect", "from_wave", "to_wave")),
    ("*/irt/*/items.csv", ("scale", "item")),
    ("meta/studies.csv", ("study",)),
    ("meta/leave_one_out.csv", ("study",)),
    ("meta/masem/fit.csv", ("method", "model")),
    ("meta/masem/parameters.csv", ("method", "model", "lhs", "op", "rhs")),
    ("meta/masem/comparisons.csv", ("method", "restricted", "general")),
)

#: Fields that name a list item in a JSON result (a parameter, a study, a model pair, a step);
#: the item's key joins those it has.
IDENTITY_FIELDS = (
    "stage",
    "model",
    "step",
    "study",
    "cluster",
    "term",
    "scale",
    "factor",
    "item",
    "restricted",
    "general",
    "method",
    "test",
    "group",
    "group_label",
    "block",
    "efa",
    "level",
    "lhs",
    "op",
    "rhs",
    "label",
    "parameter",
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
    "timing",
    "traceback",
    # sampler settings echoed beside a posterior (the reference run has 5x the draws)
    "sampler",
    "draws",
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

#: Prefix of the column or key holding a Monte Carlo number's standard error.
MCSE_PREFIX = "mcse_"

#: Pass thresholds of the sampler diagnostics, as :data:`alliance.bayes.diagnostics.THRESHOLDS`
#: judges them (R-hat at two decimals, ESS in whole draws); a rerun's values must pass them.
DIAGNOSTIC_KEYS = {
    "r_hat": "r_hat",
    "max_r_hat": "r_hat",
    "rhat_max": "r_hat",
    "ess_bulk": "ess",
    "ess_tail": "ess",
    "min_ess_bulk": "ess",
    "min_ess_tail": "ess",
    "ess_bulk_min": "ess",
    "ess_tail_min": "ess",
    "divergences": "divergences",
    "bfmi": "bfmi",
}
#: E-BFMI pass threshold per chain (Betancourt 2016), as the diagnostics judge it.
BFMI_MIN = 0.3
R_HAT_MAX = 1.01
ESS_MIN = 400.0

#: Family-wise probability that a faithful rerun on another machine (other chains) fails the
#: Monte Carlo check.
FAMILY_ALPHA = 0.01


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


# Tolerance per kind of deterministic statistic: counts exactly, estimates to numerical
# precision across platforms (BLAS kernels, compilers), p-values relative (tiny p-values
# carry the relative error of their chi-square).
TOLERANCES: dict[str, Tolerance] = {
    "count": Tolerance(0.0, 0.0),
    "estimate": Tolerance(1e-6, 1e-6),
    "p_value": Tolerance(1e-6, 1e-4),
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
    "n_pairs",
    "cells_quarantined",
    "attended_sessions",
    "attended_sessions_not_kept",
    "rows_with_quarantined_cells",
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
    "k",
}


def kind_of(file: str, key: str) -> str:
    """The kind of a number that has no MCSE beside it, from its file and key.

    ``count``, ``p_value`` or ``estimate`` (fixed tolerances), or a sampler diagnostic judged
    by its verdict (``r_hat``, ``ess``, ``divergences``).
    """
    parts = key.lower().split("/")
    leaf = parts[-1]
    if leaf in DIAGNOSTIC_KEYS and _is_sampled(file, key):
        return DIAGNOSTIC_KEYS[leaf]
    if len(parts) > 1 and parts[-2] == "bfmi" and _is_sampled(file, key):
        return "bfmi"  # one value per chain
    if (
        leaf in COUNT_KEYS
        or leaf.startswith("n_")
        or key.startswith(("reasons/", "row_reasons/", "cell_reasons/", "missing_codes_seen/"))
    ):
        return "count"
    if leaf in {"p", "pvalue", "p_value", "qp", "pval"} or leaf.startswith("pvalue"):
        return "p_value"
    return "estimate"


#: Result folders of Bayesian fits (their numbers come from posterior draws).
SAMPLED_FOLDERS = ("/bayes/", "/meta/ipd/")


def _is_sampled(file: str, key: str) -> bool:
    """Whether a number comes from posterior draws (a Bayesian fit)."""
    return any(part in f"/{file}" for part in SAMPLED_FOLDERS) or key.startswith("bayes/")


def _scalar(value: Any) -> float | None:
    """A number (Python or NumPy), else None (text, booleans, missing)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return None


def _item_names(items: list[Any], where: str) -> list[str]:
    """Names of the items of a JSON list: identity fields of dicts, else positions."""
    if not items or not all(isinstance(x, dict) for x in items):
        return [str(i) for i in range(len(items))]
    names = []
    for item in items:
        parts = [
            f"{field}={item[field]}"
            for field in IDENTITY_FIELDS
            if field in item
            and not isinstance(item[field], bool | float)
            and item[field] not in (None, "")
        ]
        names.append(",".join(parts))
    if all(names) and len(set(names)) == len(names):
        return names
    duplicated = sorted({n for n in names if names.count(n) > 1 or not n})
    raise ValueError(
        f"the items of {where} have no unique identity ({', '.join(IDENTITY_FIELDS[:6])}, "
        f"...): add an identity field to the writer, got {duplicated[:3]!r}"
    )


#: What is checked of a fit that did not converge (an object with ``"converged": false``): its
#: status and its sample size. Its estimates and fit measures are wherever the optimizer
#: stopped, which depends on the path taken (iteration limits, floating-point details of the
#: machine), so they are no result to reproduce; the tables and tests leave them out as well.
UNCONVERGED_CHECKED = {"converged", "status", "ntotal", "nobs", "npar", "df"}


def _flatten(value: Any, prefix: str, out: dict[str, float], where: str) -> None:
    if isinstance(value, dict):
        unconverged = value.get("converged") is False
        for k, v in value.items():
            if str(k) in IGNORED_KEYS:
                continue
            if unconverged and str(k) not in UNCONVERGED_CHECKED:
                continue
            _flatten(v, f"{prefix}/{k}" if prefix else str(k), out, where)
    elif isinstance(value, list):
        for name, v in zip(_item_names(value, f"{where}::{prefix}"), value, strict=True):
            _flatten(v, f"{prefix}/{name}" if prefix else name, out, where)
    else:
        number = _scalar(value)
        if number is not None:
            out[prefix] = number


def row_key_columns(file: str, table: pd.DataFrame) -> list[str]:
    """The identity columns of the rows of the CSV result table ``file``."""
    for pattern, columns in ROW_KEYS:
        if fnmatch.fnmatch(file, pattern):
            missing = [c for c in columns if c not in table.columns]
            if missing:
                raise ValueError(f"{file}: identity columns {missing} are missing")
            return list(columns)
    first = table.columns[0]
    if not pd.api.types.is_numeric_dtype(table[first]) and table[first].is_unique:
        return [first]
    raise ValueError(
        f"{file}: no identity columns known for its rows (add them to ROW_KEYS), "
        f"got columns {list(table.columns)[:6]}"
    )


def numbers_in(path: Path, file: str | None = None) -> dict[str, float]:
    """Every number in a JSON or CSV result file, keyed by what it is.

    JSON: the path of keys (list items named by :data:`IDENTITY_FIELDS`). CSV:
    ``identity/column`` with the row's identity columns (:func:`row_key_columns`) joined by
    ``|``.
    """
    file = file or path.name
    out: dict[str, float] = {}
    if path.suffix == ".json":
        _flatten(json.loads(path.read_text()), "", out, file)
    elif path.suffix == ".csv":
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
        keys = row_key_columns(file, table)
        labels = pd.Series(
            ["|".join(str(v) for v in row) for row in table[keys].itertuples(index=False)]
        )
        if not labels.is_unique:
            dup = labels[labels.duplicated()].iloc[0]
            raise ValueError(f"{file}: rows are not unique by {keys}, got {dup!r} twice")
        for label, (_, row) in zip(labels, table.iterrows(), strict=True):
            for col in table.columns:
                if col in keys:
                    continue
                number = _scalar(row[col])
                if number is not None:
                    out[f"{label}/{col}"] = number
    else:
        raise ValueError(f"only .json and .csv result files are checked, got {path}")
    return out


def _mcse_key(key: str) -> str:
    head, _, leaf = key.rpartition("/")
    return f"{head}/{MCSE_PREFIX}{leaf}" if head else f"{MCSE_PREFIX}{leaf}"


def entries_in(path: Path, file: str) -> dict[str, dict[str, Any]]:
    """The manifest entries of one result file: value, kind and, for Monte Carlo numbers, MCSE.

    A number with an ``mcse_``-prefixed sibling (same row or same JSON object) is a Monte Carlo
    number; the MCSE itself is not an entry.

    Raises
    ------
    ValueError
        For a number from posterior draws (a mean, SD, median or interval end of a Bayesian
        fit) without its MCSE: it could only be compared with an arbitrary tolerance.
    """
    numbers = numbers_in(path, file)
    out: dict[str, dict[str, Any]] = {}
    unpaired = []
    for key, value in numbers.items():
        leaf = key.rsplit("/", 1)[-1]
        if leaf.startswith(MCSE_PREFIX):
            continue
        mcse = numbers.get(_mcse_key(key))
        if mcse is not None:
            out[key] = {"value": value, "kind": "monte_carlo", "mcse": mcse}
            continue
        kind = kind_of(file, key)
        if _is_sampled(file, key) and kind == "estimate" and _looks_sampled(key):
            unpaired.append(key)
        out[key] = {"value": value, "kind": kind}
    if unpaired:
        raise ValueError(
            f"{file}: Monte Carlo numbers without their MCSE (write mcse_<name> beside them), "
            f"got {unpaired[:5]}"
        )
    return out


def _looks_sampled(key: str) -> bool:
    """A posterior summary statistic (not a setting or a criterion echoed from the config)."""
    parts = key.split("/")
    if {"settings", "criteria"} & set(parts):
        return False
    return parts[-1] in {"mean", "sd", "median", "eti.lb", "eti.ub", "eti95_low", "eti95_high"}


def result_files(results_dir: str | Path, patterns: tuple[str, ...] = DEFAULT_PATTERNS):
    """The result files under ``results_dir`` that match ``patterns``, sorted."""
    root = Path(results_dir)
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and any(fnmatch.fnmatch(rel, p) for p in patterns):
            found.append(rel)
    return found


def _all_entries(root: Path, patterns: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    entries = {}
    for rel in result_files(root, patterns):
        for key, entry in entries_in(root / rel, rel).items():
            entries[f"{rel}::{key}"] = entry
    return entries


def build_manifest(results_dir: str | Path, patterns: tuple[str, ...] = DEFAULT_PATTERNS) -> dict:
    """Record every number of the result tables with its kind (and MCSE for Monte Carlo ones)."""
    tolerances = {
        k: {"absolute": t.absolute, "relative": t.relative} for k, t in TOLERANCES.items()
    }
    values = _all_entries(Path(results_dir), patterns)
    return {
        "format": MANIFEST_FORMAT,
        "patterns": list(patterns),
        "tolerances": tolerances,
        "monte_carlo": {
            "family_alpha": FAMILY_ALPHA,
            "thresholds": {"r_hat_max": R_HAT_MAX, "ess_min": ESS_MIN},
        },
        "values": values,
    }


_ELEMENT = re.compile(r"\[[^\]]*\]")


def mc_family(full_key: str) -> str:
    """The family of a Monte Carlo number: its file and key with vector elements dropped.

    ``site_a/bayes/therapist_x1/summary.csv::u_raw[TB01]/mean`` and ``...::u_raw[TB02]/mean``
    are one family (the posterior means of the therapist effects).
    """
    return _ELEMENT.sub("[]", full_key)


def _verdict(kind: str, value: float) -> bool:
    if math.isnan(value):
        return False
    if kind == "r_hat":
        return round(value, 2) <= R_HAT_MAX
    if kind == "ess":
        return round(value) >= ESS_MIN
    if kind == "bfmi":
        return value >= BFMI_MIN
    return value == 0  # divergences


def _chi2_sf(statistic: float, df: int) -> float:
    from scipy.special import chdtrc

    return float(chdtrc(df, statistic))


def _normal_isf(p: float) -> float:
    from scipy.special import ndtri

    return float(-ndtri(p))


def verify(results_dir: str | Path, manifest: dict) -> pd.DataFrame:
    """Compare the result tables under ``results_dir`` with ``manifest``.

    Returns
    -------
    pandas.DataFrame
        One row per expected or observed number: ``file``, ``key``, ``kind``, ``expected``,
        ``observed``, ``tolerance`` (the largest difference accepted: fixed for deterministic
        numbers; for a Monte Carlo number alone in its family, the critical z times the MCSE of
        the difference), ``z`` (Monte Carlo numbers: difference / its MCSE) and ``status``
        (``match``, ``mismatch``, ``missing``: expected but not produced, ``unexpected``:
        produced but not in the manifest).

    Raises
    ------
    ValueError
        For a manifest of an older layout (regenerate it with ``alliance verify --update``).
    """
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(
            f"the manifest has layout {manifest.get('format', 1)!r}, this version reads "
            f"{MANIFEST_FORMAT}: regenerate it with `alliance verify RESULTS --update`"
        )
    root = Path(results_dir)
    patterns = tuple(manifest.get("patterns", DEFAULT_PATTERNS))
    tolerances = {
        k: Tolerance(v["absolute"], v["relative"])
        for k, v in manifest.get("tolerances", {}).items()
    } or TOLERANCES
    alpha = float(manifest.get("monte_carlo", {}).get("family_alpha", FAMILY_ALPHA))
    observed = _all_entries(root, patterns)
    expected = manifest["values"]

    rows: dict[str, dict[str, Any]] = {}
    families: dict[str, list[str]] = defaultdict(list)
    for full_key, spec in expected.items():
        file, key = full_key.split("::", 1)
        got = observed.get(full_key)
        row = {
            "file": file,
            "key": key,
            "kind": spec["kind"],
            "expected": spec["value"],
            "observed": None if got is None else got["value"],
            "tolerance": None,
            "z": None,
            "status": "missing" if got is None else "match",
        }
        rows[full_key] = row
        if got is None:
            continue
        kind = spec["kind"]
        if kind == "monte_carlo":
            mcse_obs = got.get("mcse", spec["mcse"])
            se = math.hypot(spec["mcse"], mcse_obs)
            diff = got["value"] - spec["value"]
            if math.isnan(diff) or not se > 0:
                same = math.isnan(spec["value"]) and math.isnan(got["value"])
                same = same or diff == 0
                row["status"] = "match" if same else "mismatch"
                continue
            row["z"] = diff / se
            row["se"] = se
            families[mc_family(full_key)].append(full_key)
        elif kind in ("r_hat", "ess", "divergences", "bfmi"):
            # a rerun must converge by the thresholds wherever the manifest's run did; its
            # values are no expectation (the reference has 5x the draws, so 5x the ESS)
            ok = _verdict(kind, got["value"]) or not _verdict(kind, spec["value"])
            row["status"] = "match" if ok else "mismatch"
        else:
            tol = tolerances[kind]
            row["tolerance"] = tol.absolute
            row["status"] = "match" if tol.matches(spec["value"], got["value"]) else "mismatch"

    n_families = max(1, len(families))
    threshold = alpha / n_families
    for members in families.values():
        z = np.array([rows[m]["z"] for m in members], dtype=float)
        statistic = float(np.sum(z**2))
        # a family of one is a two-sided z test at alpha / families; a vector's elements are
        # tested jointly, then its elements beyond a Bonferroni bound within it are named
        z_element = _normal_isf(threshold / (2 * len(members)))
        for m in members:
            rows[m]["tolerance"] = z_element * rows[m].pop("se")
        if _chi2_sf(statistic, len(members)) >= threshold:
            continue
        beyond = [m for m, zi in zip(members, z, strict=True) if abs(zi) > z_element]
        for m in beyond or members:
            rows[m]["status"] = "mismatch"
    for row in rows.values():
        row.pop("se", None)

    table = list(rows.values())
    for full_key in sorted(set(observed) - set(expected)):
        file, key = full_key.split("::", 1)
        got = observed[full_key]
        table.append(
            {
                "file": file,
                "key": key,
                "kind": got["kind"],
                "expected": None,
                "observed": got["value"],
                "tolerance": None,
                "z": None,
                "status": "unexpected",
            }
        )
    columns = ["file", "key", "kind", "expected", "observed", "tolerance", "z", "status"]
    return pd.DataFrame(table, columns=columns)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Counts of each status per result file, for the printed verdict."""
    counts = table.pivot_table(index="file", columns="status", values="key", aggfunc="count")
    return counts.fillna(0).astype(int)


def write_manifest(manifest: dict, path: str | Path) -> None:
    """Write ``manifest`` as JSON with one value per line (small diffs when numbers change)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {k: v for k, v in manifest.items() if k != "values"}
    values = manifest["values"]
    lines = ",\n".join(
        f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(values.items())
    )
    text = json.dumps(head, sort_keys=True)[:-1]
    path.write_text(f'{text}, "values": {{\n{lines}\n}}}}\n')
