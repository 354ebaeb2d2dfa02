"""The summary's BSEM part: fit (PPP), diagnostics and large residual correlations per model.

Read from ``results/{dataset}/bsem/{model}/summary.json`` (rule ``bsem``). One row per dataset
and model: status, N, prior variance, PPP with the 95% interval of the observed - replicated
chi-square discrepancy, and the residual correlations listed as large.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

__all__ = ["LEAD", "bsem_rows"]

LEAD = (
    "Bayesian SEM (BSEM; Muthén & Asparouhov 2012) of the CFA models per dataset "
    "(results/{dataset}/bsem/): cross-loadings and residual correlations get normal priors of "
    "small variance instead of exact zeros. PPP: posterior predictive p-value of the "
    "chi-square discrepancy (about .5 and an interval of observed - replicated covering 0: "
    "good fit; below .05: misfit). Large residual correlations: 95% interval excludes 0 and "
    "the posterior mean reaches bsem.residual_size. A fit whose convergence diagnostics fail "
    "is listed without its PPP."
)


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
