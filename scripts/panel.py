"""Snakemake adapter: the RI-CLPM of one dataset (alliance and symptoms within patients)."""

from pathlib import Path

import pandas as pd

from alliance.panel.stage import run_panel
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
tables = {name: pd.read_parquet(getattr(snakemake.input, name)) for name in ("scores", "outcomes")}
result = run_panel(
    tables,
    Path(snakemake.output.fit).parent,
    snakemake.params.settings,
    dataset_name=snakemake.wildcards.item_dataset,
)
log.info("RI-CLPM: %s %s", result["state"], result.get("reason", ""))
