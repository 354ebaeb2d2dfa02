"""The summary's BSEM part: fit (PPP), diagnostics and large residual correlations per model.

Read from ``results/{dataset}/bsem/{model}/summary.json`` (rule ``bsem``). One row per dataset
and model: status, N, prior variance, PPP with the 95% interval of the observed - replicated
chi-square discrepancy, and the residual correlations listed as large. The two-level fits
(rule ``bsem_twolevel``, ``results/{dataset}/bsem_twolevel/{model}/``): one row per dataset and
model with the ranges of the standardized loadings per level and of the items' ICCs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

__all__ = ["LEAD", "LEAD_TWOLEVEL", "bsem_rows", "twolevel_rows"]

LEAD = (
    "Bayesian SEM (BSEM; Muthén & Asparouhov 2012) of the CFA models per dataset "
    "(results/{dataset}/bsem/): cross-loadings and residual correlations get normal priors of "
    "small variance instead of exact zeros. PPP: posterior predictive p-value of the "
    "chi-square discrepancy (about .5 and an interval of observed - replicated covering 0: "
    "good fit; below .05: misfit). Large residual correlations: 95% interval excludes 0 and "
    "the posterior mean reaches bsem.residual_size. A fit whose convergence diagnostics fail "
    "is listed without its PPP."
)

LEAD_TWOLEVEL = (
    "Two-level Bayesian CFA (Muthén 1994) per dataset (results/{dataset}/bsem_twolevel/): the "
    "factor model of the session-to-session variation within patients and of the patient "
    "level, every complete session; ordinal items as probit with thresholds, which lavaan "
    "cannot fit at two levels. Ranges of the posterior means of the standardized loadings "
    "per level and of the items' ICCs (between-patient share of the variance)."
)


def _range(table: pd.DataFrame, prefix: str) -> str:
    values = table.loc[table["parameter"].str.startswith(prefix + "["), "mean"]
    return f"{values.min():.2f}-{values.max():.2f}" if len(values) else ""


def twolevel_rows(results: Path, datasets: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """The two-level fits' table rows and warnings (skipped or failing their diagnostics)."""
    rows, warnings = [], []
    for name in datasets:
        folder = Path(results) / name / "bsem_twolevel"
        for path in sorted(folder.glob("*/summary.json")) if folder.is_dir() else []:
            result = json.loads(path.read_text())
            model = result.get("model_name", path.parent.name)
            data = result.get("data", {})
            row = {
                "Dataset": name,
                "Model": model,
                "Items": "ordinal" if result.get("ordered") else "continuous",
                "Status": result.get("status"),
                "Sessions": data.get("sessions", ""),
                "Patients": data.get("clusters", ""),
            }
            ranges = {"Loadings within": "", "Loadings between": "", "ICC": ""}
            if result.get("status") != "pass":
                reason = result.get("reason") or "; ".join(
                    result.get("diagnostics", {}).get("failures", [])
                )
                warnings.append(
                    f"{name}: two-level BSEM of {model} {result.get('status')}: {reason}"
                )
            else:
                table = pd.read_csv(path.parent / "parameters.csv")
                ranges = {
                    "Loadings within": _range(table, "std_loading_within"),
                    "Loadings between": _range(table, "std_loading_between"),
                    "ICC": _range(table, "icc"),
                }
            rows.append(row | ranges)
    return pd.DataFrame(rows), warnings


def bsem_rows(results: Path, datasets: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """The table rows and warnings (fits skipped or failing their diagnostics)."""
    rows, warnings = [], []
    for name in datasets:
        folder = Path(results) / name / "bsem"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*/summary.json")):
            result = json.loads(path.read_text())
            model = result.get("model_name", path.parent.name)
            row = {"Dataset": name, "Model": model, "Status": result.get("status")}
            row["N"] = result.get("n", "")
            variance = result.get("prior_variance")
            row["Prior variance"] = "exact zero" if not variance else f"{variance:g}"
            if result.get("status") != "pass":
                reason = result.get("reason") or "; ".join(
                    result.get("diagnostics", {}).get("failures", [])
                )
                warnings.append(f"{name}: BSEM of {model} {result.get('status')}: {reason}")
                rows.append(
                    {**row, "PPP": "", "95% interval": "", "Large residual correlations": ""}
                )
                continue
            ppp = result["ppp"]
            low, high = ppp["diff_eti95"]
            row["PPP"] = f"{ppp['ppp']:.3f}"
            row["95% interval"] = f"[{low:.1f}, {high:.1f}]"
            large = result.get("large_residual_correlations", [])
            row["Large residual correlations"] = (
                ", ".join(f"{r['pair']} {r['mean']:.2f}" for r in large) or "none"
            )
            rows.append(row)
    return pd.DataFrame(rows), warnings
