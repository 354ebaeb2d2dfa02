# alliance-pipeline: raw alliance questionnaires -> tidy data -> description, reliability, EFA.
# This file is the table of contents; the rules live in workflow/rules/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    item_dataset=alternation(ITEM_DATASETS),
    effect_dataset=alternation(EFFECT_DATASETS),
    analysis_dataset=alternation(ANALYSIS_DATASETS),
    estimator="ML|MLR|WLSMV",
    model="[A-Za-z][A-Za-z0-9_]*?",
    scale="[0-9.]+",
    irt_model="grm|pcm",


include: "workflow/rules/simulate.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/describe.smk"
include: "workflow/rules/cfa.smk"
include: "workflow/rules/bayes.smk"
include: "workflow/rules/meta.smk"
include: "workflow/rules/process.smk"
include: "workflow/rules/panel.smk"
include: "workflow/rules/irt.smk"
include: "workflow/rules/bsem.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),


onsuccess:
    cancel_scheduler_wakeups()


onerror:
    cancel_scheduler_wakeups()
