"""Snakemake adapter: pool the datasets' and published effects."""

from pathlib import Path

from alliance.meta_stage import run_meta
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = run_meta(
    snakemake.params.dataset_effects,
    snakemake.params.published,
    Path(snakemake.output.meta).parent,
    snakemake.params.settings,
    seed=snakemake.params.seed,
)
log.info("pooled r %s from %s effects", result["pooled_r"]["estimate"], result["k"])
