"""Snakemake adapter: regenerate the embedded demo data and its codebooks."""

from alliance.runlog import log_to
from alliance.simulate.demo import simulate_demo

log = log_to(snakemake.log[0])
simulate_demo(snakemake.params.data_dir, snakemake.params.codebook_dir, seed=snakemake.params.seed)
log.info("demo data written to %s", snakemake.params.data_dir)
