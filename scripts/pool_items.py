"""Snakemake adapter: stack the item datasets into the pooled dataset."""

from pathlib import Path

from alliance.pool import pool_to
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
report = pool_to(snakemake.params.ingest_dirs, Path(snakemake.output.report).parent)
log.info("pooled %s rows from %s", report["rows_in"], report["pooled_from"])
