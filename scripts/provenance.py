"""Snakemake adapter: results/provenance.json (input hashes, config, commit, versions, timings)."""

from pathlib import Path

from alliance.jsonio import write_json
from alliance.provenance import collect_provenance
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
record = collect_provenance(
    inputs=snakemake.input.inputs,
    config=snakemake.config,
    project_root=Path.cwd(),
    benchmarks=snakemake.input.benchmarks,
)
write_json(snakemake.output.provenance, record)
log.info("provenance of %s inputs written", len(snakemake.input.inputs))
