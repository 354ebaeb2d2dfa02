# Bayesian SEM per item dataset (rule bsem): each of bsem.models as a CFA with small-variance
# priors on cross-loadings and residual correlations (Muthen & Asparouhov 2012), on the CFA's
# sample (one row per patient: cfa.rater at cfa.session). Sampled with bayes.sampler. A fit
# whose diagnostics fail is written with status fail; data too small are skipped with a reason.


rule bsem:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        report="results/{item_dataset}/ingest/ingest_report.json",
        instrument=instrument_files,
    output:
        summary="results/{item_dataset}/bsem/{model}/summary.json",
        parameters=report(
            "results/{item_dataset}/bsem/{model}/parameters.csv",
            caption="../report/bsem_parameters.rst",
            category="Bayesian SEM",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "table": "{model} posterior"},
        ),
        parameters_md="results/{item_dataset}/bsem/{model}/parameters.md",
    log:
        "results/{item_dataset}/logs/bsem_{model}.log",
    benchmark:
        "results/{item_dataset}/benchmarks/bsem_{model}.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        ordered=bsem_ordered,
        prior_variance=config["bsem"]["prior_variance"],
        residual_size=config["bsem"]["residual_size"],
        sampler=config["bayes"]["sampler"],
        session=config["cfa"]["session"],
        rater=config["cfa"]["rater"],
    script:
        "../../scripts/bsem.py"


# Two-level Bayesian CFA per item dataset (rule bsem_twolevel, bsem.twolevel.enabled): each of
# bsem.models within patients (session-to-session) and between patients (bsem.twolevel.between),
# on every complete session of cfa.rater, continuous or ordinal items (bsem.ordered); lavaan
# cannot fit the ordinal model. Sampled with bayes.sampler.


rule bsem_twolevel:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        report="results/{item_dataset}/ingest/ingest_report.json",
        instrument=instrument_files,
    output:
        summary="results/{item_dataset}/bsem_twolevel/{model}/summary.json",
        parameters=report(
            "results/{item_dataset}/bsem_twolevel/{model}/parameters.csv",
            caption="../report/bsem_twolevel_parameters.rst",
            category="Bayesian SEM",
            subcategory="{item_dataset}",
            labels={
                "dataset": "{item_dataset}",
                "table": "{model} two-level posterior",
            },
        ),
        parameters_md="results/{item_dataset}/bsem_twolevel/{model}/parameters.md",
    log:
        "results/{item_dataset}/logs/twolevel_bsem_{model}.log",
    benchmark:
        "results/{item_dataset}/benchmarks/twolevel_bsem_{model}.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        ordered=bsem_ordered,
        between=config["bsem"]["twolevel"]["between"],
        sampler=config["bayes"]["sampler"],
        rater=config["cfa"]["rater"],
    script:
        "../../scripts/bsem_twolevel.py"
