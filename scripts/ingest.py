"""Snakemake adapter: ingest one dataset with its codebook."""

from pathlib import Path

from alliance.data.ingest import ingest_to
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
report = ingest_to(snakemake.input.codebook, Path(snakemake.output.report).parent)
log.info("rows in %(rows_in)s, kept %(rows_kept)s, quarantined %(rows_quarantined)s", report)
for warning in report["warnings"]:
    log.warning(warning)
