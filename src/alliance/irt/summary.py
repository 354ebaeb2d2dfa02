"""The summary's section "Item response models": disordered thresholds and item fit per scale.

Read from ``results/{dataset}/irt/{grm,pcm}/irt.json`` (rule ``irt``). One row per dataset,
model and scale: its status, the items with disordered thresholds, and for the PCM the items
whose infit or outfit mean square lies outside :data:`MSQ_RANGE`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["LEAD", "irt_methods", "irt_rows"]

#: Item fit outside these mean squares is flagged (Wright & Linacre 1994, rating scales).
MSQ_RANGE = (0.6, 1.4)

LEAD = (
    "Item response models per dataset and factor (results/{dataset}/irt/): the graded "
    "response model (GRM; thresholds b must increase) and the Rasch partial credit model "
    "(PCM; Andrich thresholds, disordered when a later one is not above an earlier one: the "
    "category between them is nowhere the most likely answer). Item fit: PCM infit/outfit "
    f"mean squares outside {MSQ_RANGE[0]}-{MSQ_RANGE[1]}. Tables and figures: items.csv, "
    "category_curves.png, threshold_map.png per model."
)


def _misfit(items: list[dict[str, Any]]) -> str:
    lo, hi = MSQ_RANGE
    out = []
    for i in items:
        for key in ("infit_msq", "outfit_msq"):
            v = i.get(key)
            if v is not None and not lo <= v <= hi:
                out.append(f"{i['item']} {key.split('_')[0]} {v:.2f}")
    return ", ".join(out) or "none"


def irt_rows(results: Path, datasets: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """The table rows and warnings (scales not fitted)."""
    rows, warnings = [], []
    for name in datasets:
        for model in ("grm", "pcm"):
            path = Path(results) / name / "irt" / model / "irt.json"
            if not path.is_file():
                continue
            result = json.loads(path.read_text())
            for scale in result["scales"]:
                fit = scale["fit"]
                row = {"Dataset": name, "Model": model.upper(), "Scale": scale["name"]}
                row["Status"] = fit.get("status")
                if fit.get("status") != "converged":
                    warnings.append(
                        f"{name}: {model.upper()} of {scale['name']} not fitted: "
                        f"{fit.get('reason', fit.get('status'))}"
                    )
                    rows.append({**row, "N": "", "Disordered thresholds": "", "Item misfit": ""})
                    continue
                bad = [i["item"] for i in fit["items"] if not i["ordered"]]
                row["N"] = fit["n_respondents"]
                row["Disordered thresholds"] = ", ".join(bad) or "none"
                row["Item misfit"] = _misfit(fit["items"]) if model == "pcm" else ""
                notes = scale.get("coding", {}).get("notes", [])
                if notes:
                    row["Scale"] += f" ({len(notes)} collapsing note{'s' * (len(notes) > 1)})"
                rows.append(row)
    return pd.DataFrame(rows), warnings


def irt_methods(config: dict[str, Any]) -> str:
    """The methods sentences (empty when the stage is off)."""
    irt = config.get("irt", {})
    if not irt.get("enabled", True):
        return ""
    by = "per factor of the instrument" if irt.get("by", "factor") == "factor" else "on all items"
    return (
        f"Item response models were fitted {by} to the same sample as the CFA: Samejima's "
        "graded response model by marginal maximum likelihood (61-point rectangular "
        "quadrature, N(0, 1) trait, logistic metric without scaling constant, standard errors "
        "from the observed information, EAP scores) and the Rasch partial credit model by "
        "conditional maximum likelihood (as eRm, sum-zero normalisation; infit and outfit "
        "mean squares). Empty categories were merged with an adjacent category and reported."
    )
