"""Snakemake adapter: MASEM (two-stage SEM) over the item datasets' correlation matrices."""

from pathlib import Path

from alliance.meta.masem_stage import run_masem
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
# dataset -> its ingest folder (results/{dataset}/ingest/items.parquet)
sources = {Path(f).parent.parent.name: Path(f).parent for f in snakemake.input.item_tables}
result = run_masem(
    sources,
    Path(snakemake.output.masem).parent,
    snakemake.params.settings,
    session=snakemake.params.session,
    rater=snakemake.params.rater,
)
log.info("MASEM %s over %s", result["status"], ", ".join(result["datasets"]) or "no dataset")
