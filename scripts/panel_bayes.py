"""Snakemake adapter: the Bayesian dynamic panel model of one dataset (rule panel_bayes)."""

from pathlib import Path

import pandas as pd

from alliance.panel.stage import run_panel_bayes
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
tables = {name: pd.read_parquet(getattr(snakemake.input, name)) for name in ("scores", "outcomes")}
result = run_panel_bayes(
    tables,
    Path(snakemake.output.summary).parent,
    snakemake.params.settings,
    sampler=dict(snakemake.params.sampler) | {"cores": snakemake.threads},
    trend=snakemake.params.trend,
    dataset_name=snakemake.wildcards.item_dataset,
)
log.info("Bayesian dynamic panel: %s %s", result["status"], result.get("reason", ""))
