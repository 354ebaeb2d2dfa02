"""Snakemake adapter: the figures of one Bayesian fit (posteriors, predictive checks, ranks)."""

from pathlib import Path

from alliance.bayes.api import plot_saved_fit
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
paths = plot_saved_fit(
    Path(snakemake.input.item_table).parent.parent,
    snakemake.input.idata,
    snakemake.wildcards.model,
    snakemake.output.figures,
    alliance_session=snakemake.params.alliance_session,
    measure=snakemake.params.measure,
)
log.info("wrote %d figures to %s", len(paths), snakemake.output.figures)
