"""The describe stage on one ingested dataset folder: scores, item description, figures.

The entries of the workflow's ``score`` and ``describe`` rules and of ``alliance score`` and
``alliance describe``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from alliance.data.tidy import read_ingested
from alliance.jsonio import write_json
from alliance.tables import write_csv


def score_dataset(
    ingest_dir: str | Path, out_dir: str | Path, min_answered_share: float = 0.75
) -> dict[str, Any]:
    """Score an ingested dataset and write ``scores.parquet`` and ``summary.json`` to ``out_dir``.

    Returns
    -------
    dict
        The summary: rows scored, and per score the number of non-missing values, mean and SD.
    """
    from alliance.data.scoring import score_items

    items, instrument, report = read_ingested(ingest_dir)
    scores = score_items(items, instrument, min_answered_share=min_answered_share)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(out / "scores.parquet", index=False)
    summary: dict[str, Any] = {
        "dataset": report["dataset"],
        "instrument": instrument.name,
        "rows": int(len(scores)),
        "min_answered_share": min_answered_share,
        "scores": {},
    }
    for column in [c for c in scores.columns if c.endswith("_mean")]:
        values = scores[column].astype(float)
        summary["scores"][column.removesuffix("_mean")] = {
            "n": int(values.notna().sum()),
            "missing": int(values.isna().sum()),
            "mean": float(values.mean()) if values.notna().any() else None,
            "sd": float(values.std()) if values.notna().sum() > 1 else None,
        }
    write_json(out / "summary.json", summary)
    return summary


def describe_dataset_dir(
    ingest_dir: str | Path,
    out_dir: str | Path,
    figures_dir: str | Path | None = None,
    session: int | None = 3,
    rater: str = "client",
    n_iter: int = 100,
    seed: int = 20261125,
) -> dict[str, Any]:
    """Describe an ingested dataset and write its tables, ``summary.json`` and figures.

    Item distributions, missingness, item-total correlations and reliability come from
    :func:`alliance.describe.items.describe_items`; KMO, Bartlett's test, parallel analysis and the
    EFA from :func:`alliance.describe.items.describe_dataset`, both on one row per patient (the
    ratings of ``rater`` at ``session``).

    Returns
    -------
    dict
        The JSON summary (sample selection, factorability, dimensionality, EFA, reliability).
    """
    from alliance.describe.items import describe_dataset, describe_items
    from alliance.describe.plots import diverging_item_bars, missingness_plot

    items, instrument, report = read_ingested(ingest_dir)
    out = Path(out_dir)
    figures = Path(figures_dir) if figures_dir is not None else out.parent / "figures"
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    tables = describe_items(items, instrument, session=session, rater=rater)
    summary = describe_dataset(
        items, instrument, session=session, rater=rater, n_iter=n_iter, seed=seed
    )
    summary["dataset"] = report["dataset"]
    summary["instrument"] = {"name": instrument.name, "source": instrument.source}
    summary["sample_items"] = tables["sample"].iloc[0].to_dict()
    summary["reliability"] = tables["reliability"].reset_index().to_dict(orient="records")
    from alliance.tables import write_csv_and_markdown

    rule = tables["sample"].iloc[0]["rule"]
    write_csv_and_markdown(
        tables["proportions"].join(tables["item_stats"]),
        out / "item_categories.csv",
        f"Item response distributions ({report['dataset']})",
        note=(
            "Shares of answers per unit interval of the continuous scale (column: its lower "
            "end; floor and ceiling: answers exactly at the scale's ends)"
            if instrument.continuous
            else "Shares of answers per category"
        )
        + f", item statistics; sample: {rule}.",
        index=True,
    )
    write_csv_and_markdown(
        tables["item_total"],
        out / "item_total.csv",
        f"Corrected item-total correlations ({report['dataset']})",
        index=True,
    )
    write_csv_and_markdown(
        tables["reliability"],
        out / "reliability.csv",
        f"Internal consistency ({report['dataset']})",
        note="Cronbach's alpha as psych::alpha (pairwise covariances) with the Feldt 95% CI.",
        index=True,
    )
    missing = tables["missing_by_session"]
    write_csv(missing, out / "missingness.csv")
    efa = summary.get("efa", {})
    loadings = efa.get("loadings") if isinstance(efa, dict) else None
    write_csv(pd.DataFrame.from_dict(loadings or {}, orient="index"), out / "efa_loadings.csv")
    write_json(out / "summary.json", summary)
    diverging_item_bars(tables["proportions"], instrument, figures / "item_responses")
    missingness_plot(missing, figures / "missingness")
    return summary
