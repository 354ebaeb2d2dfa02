"""Snakemake adapter: item description, reliability and exploratory analyses of one dataset."""

from pathlib import Path

from alliance.describe.stage import describe_dataset_dir
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
describe_dataset_dir(
    Path(snakemake.input.item_table).parent,
    Path(snakemake.output.summary).parent,
    figures_dir=Path(snakemake.output.item_figure).parent,
    session=snakemake.params.session,
    rater=snakemake.params.rater,
    n_iter=snakemake.params.parallel_iterations,
    seed=snakemake.params.seed,
)
log.info("described %s", snakemake.wildcards.analysis_dataset)
