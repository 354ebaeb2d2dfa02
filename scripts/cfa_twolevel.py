"""Snakemake adapter: the two-level CFA (sessions within patients) of one dataset."""

from pathlib import Path

from alliance.cfa.twolevel import run_dataset, write_table
from alliance.jsonio import write_json
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = run_dataset(
    Path(snakemake.input.item_table).parent,
    snakemake.params.model,
    snakemake.wildcards.estimator,
    rater=snakemake.params.rater,
    between=snakemake.params.between,
    dataset_name=snakemake.wildcards.analysis_dataset,
)
write_json(snakemake.output.fit, result)
write_table(result, Path(snakemake.output.table).with_suffix(""))
log.info("two-level CFA: %s %s", result["state"], result.get("reason", ""))
