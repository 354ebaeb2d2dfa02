"""Snakemake adapter: write the results summary (Markdown and HTML)."""

from pathlib import Path

from alliance.report.summary import write_summary
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
# the results folder is the one summary.md is written to: results/, or the local copy of it
# under a default storage provider (Kubernetes), where the rule's inputs are downloaded
write_summary(Path(snakemake.output.markdown).parent, snakemake.config, snakemake.output.markdown)
log.info("wrote %s", snakemake.output.markdown)
