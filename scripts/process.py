"""Snakemake adapter: rater agreement, rupture-repair episodes, dropout table, variance shares."""

from pathlib import Path

from alliance.process import run_process_analyses
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
summary = run_process_analyses(
    Path(snakemake.input.item_table).parent,
    Path(snakemake.input.scores).parent,
    Path(snakemake.output.summary).parent,
    snakemake.params.settings,
)
log.info(
    "process analyses: %s", {k: v.get("status") for k, v in summary.items() if isinstance(v, dict)}
)
