"""Snakemake adapter: CFA tables (CSV + Markdown) and figures of one dataset and estimator."""

from pathlib import Path

from alliance.cfa.stage import write_cfa_report, write_invariance_report
from alliance.data.tidy import read_ingested
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
_, instrument, _ = read_ingested(Path(snakemake.input.item_table).parent)
estimator = snakemake.wildcards.estimator
tables = Path(snakemake.output.fit_table).parent
figures = Path(snakemake.output.fit_figure).parent
done = write_cfa_report(
    dict(zip(snakemake.params.models, snakemake.input.fits, strict=True)),
    snakemake.input.comparison,
    estimator,
    instrument,
    tables,
    figures,
    diagram_model=snakemake.params.diagram_model,
)
for ladder in snakemake.input.ladders:
    write_invariance_report(ladder, estimator, tables, figures)
log.info("CFA report: %s", done)
