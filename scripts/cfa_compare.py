"""Snakemake adapter: the model comparison of one dataset and estimator."""

from pathlib import Path

from alliance.cfa.stage import compare
from alliance.jsonio import write_json
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = compare(
    dict(zip(snakemake.params.models, snakemake.input.fits, strict=True)),
    Path(snakemake.input.item_table).parent,
    snakemake.wildcards.estimator,
    missing=snakemake.params.missing,
    session=snakemake.params.session,
    rater=snakemake.params.rater,
    std_lv=snakemake.params.std_lv,
)
write_json(snakemake.output.comparison, result)
log.info("compared %s models, %s nested tests", len(result["results"]), len(result["tests"]))
