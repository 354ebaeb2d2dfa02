"""Snakemake adapter: one CFA (dataset x model x estimator); a failure is written as a status."""

from pathlib import Path

from alliance.cfa.stage import run_cfa
from alliance.jsonio import write_json
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = run_cfa(
    Path(snakemake.input.item_table).parent,
    snakemake.params.model,
    snakemake.wildcards.estimator,
    missing=snakemake.params.missing,
    session=snakemake.params.session,
    rater=snakemake.params.rater,
    std_lv=snakemake.params.std_lv,
)
write_json(snakemake.output.fit, result)
log.info("converged: %s; %s s", result.get("converged"), result.get("elapsed_s"))
