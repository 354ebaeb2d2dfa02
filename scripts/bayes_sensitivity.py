"""Snakemake adapter: refit one model of one dataset under the other prior scales and table
how much each key estimate moves."""

from pathlib import Path

from alliance.bayes.sensitivity import prior_sensitivity
from alliance.runlog import log_to
from alliance.tables import write_csv

log = log_to(snakemake.log[0])
table = prior_sensitivity(
    Path(snakemake.input.item_table).parent.parent,
    snakemake.wildcards.model,
    snakemake.input.default_summary,
    Path(snakemake.output.table).parent,
    snakemake.params.scales,
    priors=snakemake.params.priors,
    # chains in parallel up to the cores Snakemake granted this job
    sampler={**snakemake.params.sampler, "cores": snakemake.threads},
    alliance_session=snakemake.params.alliance_session,
    measure=snakemake.params.measure,
)
write_csv(table, snakemake.output.table, index=False)
log.info("prior sensitivity:\n%s", table.to_string())
