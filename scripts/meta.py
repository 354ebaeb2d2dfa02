"""Snakemake adapter: pool the datasets' and published effects."""

from pathlib import Path

from alliance.meta.stage import run_meta
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
# dataset -> file from the input paths (results/{dataset}/effects/effect.json and
# results/{dataset}/ingest/effects.parquet), which are local copies elsewhere than results/ under
# a default storage provider (Kubernetes)
files = [Path(f) for f in snakemake.input.effects]
result = run_meta(
    {f.parent.parent.name: f for f in files if f.name == "effect.json"},
    {f.parent.parent.name: f for f in files if f.name == "effects.parquet"},
    Path(snakemake.output.meta).parent,
    # the Bayesian pooling's chains in parallel up to the cores Snakemake granted this job
    {
        **snakemake.params.settings,
        "bayes": {**snakemake.params.settings["bayes"], "cores": snakemake.threads},
    },
    seed=snakemake.params.seed,
)
log.info("pooled r %s from %s effects", result["pooled_r"]["estimate"], result["k"])
