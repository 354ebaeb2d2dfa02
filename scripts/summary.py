"""Snakemake adapter: write the results summary (Markdown and HTML)."""

from alliance.report import write_summary
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
write_summary("results", snakemake.config, snakemake.output.markdown)
log.info("wrote %s", snakemake.output.markdown)
