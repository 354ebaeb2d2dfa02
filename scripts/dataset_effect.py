"""Snakemake adapter: a dataset's alliance-outcome partial correlation (r, n) for pooling."""

from alliance.meta.effects import write_dataset_effect
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
effect = write_dataset_effect(
    snakemake.input.scores,
    snakemake.input.outcomes,
    snakemake.output.effect,
    alliance_session=snakemake.params.alliance_session,
    measure=snakemake.params.measure,
)
log.info("effect: %s", effect)
