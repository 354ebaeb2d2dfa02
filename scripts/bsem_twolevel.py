"""Snakemake adapter: the two-level Bayesian CFA of one model of one item dataset."""

from pathlib import Path

from alliance.bayes.bsem_stage import run_bsem_twolevel
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = run_bsem_twolevel(
    Path(snakemake.input.item_table).parent,
    snakemake.wildcards.model,
    Path(snakemake.output.summary).parent,
    ordered=snakemake.params.ordered,
    between=snakemake.params.between,
    sampler=dict(snakemake.params.sampler) | {"cores": snakemake.threads},
    rater=snakemake.params.rater,
)
log.info(
    "two-level BSEM %s: %s %s", result["model_name"], result["status"], result.get("reason", "")
)
