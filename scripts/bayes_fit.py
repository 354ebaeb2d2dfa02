"""Snakemake adapter: one Bayesian model of one dataset (fit, diagnostics, figures); a model
the data cannot support is skipped with its reason, an unexpected error becomes its status."""

from pathlib import Path

from alliance.bayes.api import fit_model_or_error
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = fit_model_or_error(
    Path(snakemake.input.item_table).parent.parent,
    snakemake.wildcards.model,
    priors=snakemake.params.priors,
    # chains in parallel up to the cores Snakemake granted this job
    sampler={**snakemake.params.sampler, "cores": snakemake.threads},
    out_dir=Path(snakemake.output.summary).parent,
    alliance_session=snakemake.params.alliance_session,
    measure=snakemake.params.measure,
)
log.info("status %s; effects %s", result["status"], result.get("effects"))
if result.get("reason"):
    log.warning("%s: %s", result["status"], result["reason"])
