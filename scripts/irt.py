"""Snakemake adapter: the GRM or Rasch PCM of one item dataset (rule irt)."""

from pathlib import Path

from alliance.irt.stage import run_irt
from alliance.runlog import log_to

log = log_to(snakemake.log[0])
result = run_irt(
    Path(snakemake.input.item_table).parent,
    snakemake.wildcards.irt_model,
    Path(snakemake.output.fit).parent,
    by=snakemake.params.by,
    session=snakemake.params.session,
    rater=snakemake.params.rater,
    dataset_name=snakemake.wildcards.item_dataset,
)
for scale in result["scales"]:
    log.info("%s: %s %s", scale["name"], scale["fit"]["status"], scale["fit"].get("reason", ""))
