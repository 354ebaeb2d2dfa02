"""Snakemake adapter: longitudinal measurement invariance over the configured sessions."""

from pathlib import Path

from alliance.cfa.longinv import run_dataset, write_table
from alliance.jsonio import write_json
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = run_dataset(
    Path(snakemake.input.item_table).parent,
    snakemake.params.model,
    snakemake.params.waves,
    snakemake.wildcards.estimator,
    rater=snakemake.params.rater,
    dataset_name=snakemake.wildcards.analysis_dataset,
)
write_json(snakemake.output.invariance, result)
write_table(result, Path(snakemake.output.table).with_suffix(""))
log.info("longitudinal invariance: %s %s", result["state"], result.get("reason", ""))
