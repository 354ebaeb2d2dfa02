"""Snakemake adapter: the one-stage IPD model beside the two-stage pooled correlation."""

from pathlib import Path

from alliance.meta.ipd_stage import run_ipd
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
# dataset -> results/{dataset} (holding ingest/ and scores/), and its effect.json
sources = {Path(f).parent.parent.name: Path(f).parent.parent for f in snakemake.input.scores}
effects = {Path(f).parent.parent.name: Path(f) for f in snakemake.input.effects}
sampler = {**snakemake.params.sampler, "cores": snakemake.threads}
result = run_ipd(
    sources,
    effects,
    Path(snakemake.output.ipd).parent,
    alliance_session=snakemake.params.alliance_session,
    measure=snakemake.params.measure,
    priors=snakemake.params.priors,
    sampler=sampler,
)
log.info("one-stage IPD model: %s", result["status"])
