"""Snakemake adapter: stack the item datasets into the pooled dataset."""

from pathlib import Path

from alliance.data.pool import pool_to
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
# each dataset's ingest folder from its input files (results/{dataset}/ingest/...): with a default
# storage provider (Kubernetes) they are local copies elsewhere than results/
ingest_dirs = {
    Path(f).parent.parent.name: Path(f).parent
    for f in snakemake.input
    if Path(f).name == "ingest_report.json"
}
report = pool_to(ingest_dirs, Path(snakemake.output.report).parent)
log.info("pooled %s rows from %s", report["rows_in"], report["pooled_from"])
