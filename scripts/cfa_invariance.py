"""Snakemake adapter: the measurement-invariance ladder across one grouping column."""

from pathlib import Path

from alliance.cfa.stage import run_invariance
from alliance.jsonio import write_json
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
ladder = run_invariance(
    Path(snakemake.input.item_table).parent,
    snakemake.params.model,
    snakemake.wildcards.group,
    snakemake.wildcards.estimator,
    missing=snakemake.params.missing,
    session=snakemake.params.session,
    rater=snakemake.params.rater,
    parameterization=snakemake.params.parameterization,
    collapse_empty_categories=snakemake.params.collapse_empty_categories,
    std_lv=snakemake.params.std_lv,
)
write_json(snakemake.output.invariance, ladder)
log.info("invariance across %s: %s", snakemake.wildcards.group, ladder["status"])
