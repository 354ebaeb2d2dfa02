"""Snakemake adapter: subscale and total scores of one dataset."""

from pathlib import Path

from alliance.describe.stage import score_dataset
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
summary = score_dataset(
    Path(snakemake.input.item_table).parent,
    Path(snakemake.output.scores).parent,
    min_answered_share=snakemake.params.min_answered_share,
)
log.info("scored %s", summary)
