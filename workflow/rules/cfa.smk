# Confirmatory factor analysis: competing models x estimators per dataset, their comparison with
# nested difference tests, and the measurement-invariance ladder across grouping columns.


rule cfa_fit:
    input:
        item_table="results/{analysis_dataset}/ingest/items.parquet",
        report="results/{analysis_dataset}/ingest/ingest_report.json",
        instrument=instrument_files,
    output:
        # every competing model in one job: a fit takes under a second, starting a
        # Python process with the SEM engine about two
        fits=expand(
            "results/{{analysis_dataset}}/cfa/fits/{model}_{{estimator}}.json",
            model=config["cfa"]["models"],
        ),
    log:
        "results/{analysis_dataset}/logs/cfa_fit_{estimator}.log",
    benchmark:
        "results/{analysis_dataset}/benchmarks/cfa_fit_{estimator}.tsv"
    priority: CHAIN_PRIORITY
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        models=CFA_MODEL_SOURCES,
        missing=cfa_missing,
        session=config["cfa"]["session"],
        rater=config["cfa"]["rater"],
        std_lv=config["cfa"].get("std.lv", False),
        esem=config["cfa"].get("esem", {}),
    script:
        "../../scripts/cfa_fit.py"


rule cfa_compare:
    input:
        item_table="results/{analysis_dataset}/ingest/items.parquet",
        report="results/{analysis_dataset}/ingest/ingest_report.json",
        fits=cfa_fit_files,
        instrument=instrument_files,
    output:
        comparison="results/{analysis_dataset}/cfa/comparison_{estimator}.json",
    log:
        "results/{analysis_dataset}/logs/cfa_compare_{estimator}.log",
    benchmark:
        "results/{analysis_dataset}/benchmarks/cfa_compare_{estimator}.tsv"
    priority: CHAIN_PRIORITY
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        models=config["cfa"]["models"],
        missing=cfa_missing,
        session=config["cfa"]["session"],
        rater=config["cfa"]["rater"],
        std_lv=config["cfa"].get("std.lv", False),
    script:
        "../../scripts/cfa_compare.py"


rule cfa_invariance:
    input:
        item_table="results/{analysis_dataset}/ingest/items.parquet",
        report="results/{analysis_dataset}/ingest/ingest_report.json",
        instrument=instrument_files,
    output:
        invariance="results/{analysis_dataset}/cfa/invariance_{group}_{estimator}.json",
    log:
        "results/{analysis_dataset}/logs/cfa_invariance_{group}_{estimator}.log",
    benchmark:
        "results/{analysis_dataset}/benchmarks/cfa_invariance_{group}_{estimator}.tsv"
    wildcard_constraints:
        # invariance_long_{estimator}.json is rule cfa_invariance_long's
        group="(?!long_)[^/]+",
    priority: CHAIN_PRIORITY
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        model=config["cfa"]["invariance"]["model"],
        missing=cfa_missing,
        session=config["cfa"]["session"],
        rater=config["cfa"]["rater"],
        parameterization=config["cfa"]["invariance"]["parameterization"],
        collapse_empty_categories=config["cfa"]["invariance"][
            "collapse_empty_categories"
        ],
        std_lv=config["cfa"].get("std.lv", False),
    script:
        "../../scripts/cfa_invariance.py"


rule cfa_invariance_long:
    input:
        item_table="results/{analysis_dataset}/ingest/items.parquet",
        report="results/{analysis_dataset}/ingest/ingest_report.json",
        instrument=instrument_files,
    output:
        invariance="results/{analysis_dataset}/cfa/invariance_long_{estimator}.json",
        table="results/{analysis_dataset}/cfa/tables/invariance_long_{estimator}.csv",
    log:
        "results/{analysis_dataset}/logs/cfa_invariance_long_{estimator}.log",
    benchmark:
        "results/{analysis_dataset}/benchmarks/cfa_invariance_long_{estimator}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        model=config["cfa"]["invariance"]["model"],
        waves=config["cfa"]["invariance"]["longitudinal"]["waves"],
        rater=config["cfa"]["rater"],
    script:
        "../../scripts/cfa_invariance_long.py"


rule cfa_twolevel:
    input:
        item_table="results/{analysis_dataset}/ingest/items.parquet",
        report="results/{analysis_dataset}/ingest/ingest_report.json",
        instrument=instrument_files,
    output:
        fit="results/{analysis_dataset}/cfa/twolevel_{estimator}.json",
        table=report(
            "results/{analysis_dataset}/cfa/tables/twolevel_{estimator}.csv",
            caption="../report/cfa_twolevel.rst",
            category="Measurement",
            subcategory="{analysis_dataset}",
            labels={
                "dataset": "{analysis_dataset}",
                "table": "two-level CFA {estimator}",
            },
        ),
    log:
        "results/{analysis_dataset}/logs/cfa_twolevel_{estimator}.log",
    benchmark:
        "results/{analysis_dataset}/benchmarks/cfa_twolevel_{estimator}.tsv"
    wildcard_constraints:
        estimator="ML|MLR",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        model=config["cfa"]["invariance"]["model"],
        rater=config["cfa"]["twolevel"]["rater"],
        between=config["cfa"]["twolevel"]["between"],
    script:
        "../../scripts/cfa_twolevel.py"


rule cfa_report:
    input:
        item_table="results/{analysis_dataset}/ingest/items.parquet",
        report="results/{analysis_dataset}/ingest/ingest_report.json",
        fits=cfa_fit_files,
        comparison="results/{analysis_dataset}/cfa/comparison_{estimator}.json",
        ladders=cfa_invariance_files,
        instrument=instrument_files,
    output:
        fit_table=report(
            "results/{analysis_dataset}/cfa/tables/fit_{estimator}.csv",
            caption="../report/cfa_fit_table.rst",
            category="Measurement",
            subcategory="{analysis_dataset}",
            labels={"dataset": "{analysis_dataset}", "table": "CFA fit {estimator}"},
        ),
        loadings_table="results/{analysis_dataset}/cfa/tables/loadings_{estimator}.csv",
        reliability_table="results/{analysis_dataset}/cfa/tables/reliability_{estimator}.csv",
        bifactor_table="results/{analysis_dataset}/cfa/tables/bifactor_{estimator}.csv",
        fit_figure=report(
            "results/{analysis_dataset}/figures/cfa_fit_{estimator}.png",
            caption="../report/cfa_fit_figure.rst",
            category="Measurement",
            subcategory="{analysis_dataset}",
            labels={"dataset": "{analysis_dataset}", "figure": "CFA fit {estimator}"},
        ),
        loadings_figure=report(
            "results/{analysis_dataset}/figures/cfa_loadings_{estimator}.png",
            caption="../report/cfa_loadings.rst",
            category="Measurement",
            subcategory="{analysis_dataset}",
            labels={
                "dataset": "{analysis_dataset}",
                "figure": "CFA loadings {estimator}",
            },
        ),
        path_figure=report(
            "results/{analysis_dataset}/figures/cfa_path_{estimator}.png",
            caption="../report/cfa_path.rst",
            category="Measurement",
            subcategory="{analysis_dataset}",
            labels={
                "dataset": "{analysis_dataset}",
                "figure": "path diagram {estimator}",
            },
        ),
    log:
        "results/{analysis_dataset}/logs/cfa_report_{estimator}.log",
    benchmark:
        "results/{analysis_dataset}/benchmarks/cfa_report_{estimator}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=config["cfa"]["models"],
        diagram_model=config["cfa"]["invariance"]["model"],
    script:
        "../../scripts/cfa_report.py"
