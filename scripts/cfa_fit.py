"""Snakemake adapter: the competing CFA models of one dataset with one estimator, a fit file
each; a failed model is written as its status."""

from pathlib import Path

from alliance.cfa.stage import run_cfa_models
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
converged = run_cfa_models(
    Path(snakemake.input.item_table).parent,
    snakemake.params.models,
    snakemake.wildcards.estimator,
    Path(snakemake.output.fits[0]).parent,
    missing=snakemake.params.missing,
    session=snakemake.params.session,
    rater=snakemake.params.rater,
    std_lv=snakemake.params.std_lv,
    esem=snakemake.params.esem,
)
log.info("converged: %s", converged)
