"""Snakemake adapter: how much each key estimate moves when the prior scales change."""

from alliance.bayes.sensitivity import sensitivity_table
from alliance.runlog import log_to
from alliance.tables import write_csv

log = log_to(snakemake.log[0])
table = sensitivity_table(
    dict(zip(snakemake.params.scales, snakemake.input.summaries, strict=True))
)
write_csv(table, snakemake.output.table, index=False)
log.info("prior sensitivity:\n%s", table.to_string())
