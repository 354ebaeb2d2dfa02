"""Snakemake adapter: the Bayesian process models of one dataset (dropout, growth, raters,
ruptures), each skipped with a reason where the data do not support it."""

from pathlib import Path

from alliance.process.bayes_api import run_process_bayes
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = run_process_bayes(
    Path(snakemake.input.scores).parent.parent,
    Path(snakemake.output.summary).parent,
    # chains in parallel up to the cores Snakemake granted this job
    sampler={**snakemake.params.sampler, "cores": snakemake.threads},
    models=snakemake.params.models,
    settings=snakemake.params.settings,
)
for name, model in result["models"].items():
    log.info("%s: %s%s", name, model["status"], f" ({model['reason']})" if model["reason"] else "")
log.info("total %.1f s", result["timing"]["total_s"])
