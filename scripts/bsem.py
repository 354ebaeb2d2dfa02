"""Snakemake adapter: the Bayesian SEM of one CFA model of one item dataset (rule bsem)."""

from pathlib import Path

from alliance.bayes.bsem_stage import run_bsem
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = run_bsem(
    Path(snakemake.input.item_table).parent,
    snakemake.wildcards.model,
    Path(snakemake.output.summary).parent,
    ordered=snakemake.params.ordered,
    prior_variance=snakemake.params.prior_variance,
    residual_size=snakemake.params.residual_size,
    sampler=dict(snakemake.params.sampler) | {"cores": snakemake.threads},
    session=snakemake.params.session,
    rater=snakemake.params.rater,
)
log.info("BSEM %s: %s %s", result["model_name"], result["status"], result.get("reason", ""))
