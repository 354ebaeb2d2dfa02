# Tidy items -> scores; item distributions, missingness, reliability, KMO, Bartlett, parallel
# analysis and EFA, with figures.


rule score:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        report="results/{item_dataset}/ingest/ingest_report.json",
        instrument=instrument_files,
    output:
        scores="results/{item_dataset}/scores/scores.parquet",
        summary="results/{item_dataset}/scores/summary.json",
    log:
        "results/{item_dataset}/logs/score.log",
    benchmark:
        "results/{item_dataset}/benchmarks/score.tsv"
    priority: FEEDER_PRIORITY
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        min_answered_share=config["scoring"]["min_answered_share"],
    script:
        "../../scripts/score.py"


rule describe:
    input:
        item_table="results/{analysis_dataset}/ingest/items.parquet",
        report="results/{analysis_dataset}/ingest/ingest_report.json",
        instrument=instrument_files,
    output:
        summary="results/{analysis_dataset}/describe/summary.json",
        categories=report(
            "results/{analysis_dataset}/describe/item_categories.csv",
            caption="../report/item_categories.rst",
            category="Data",
            subcategory="{analysis_dataset}",
            labels={"dataset": "{analysis_dataset}", "table": "item categories"},
        ),
        reliability=report(
            "results/{analysis_dataset}/describe/reliability.csv",
            caption="../report/reliability.rst",
            category="Measurement",
            subcategory="{analysis_dataset}",
            labels={"dataset": "{analysis_dataset}", "table": "reliability"},
        ),
        item_total="results/{analysis_dataset}/describe/item_total.csv",
        missingness="results/{analysis_dataset}/describe/missingness.csv",
        efa_loadings=report(
            "results/{analysis_dataset}/describe/efa_loadings.csv",
            caption="../report/efa_loadings.rst",
            category="Measurement",
            subcategory="{analysis_dataset}",
            labels={"dataset": "{analysis_dataset}", "table": "EFA loadings"},
        ),
        item_figure=report(
            "results/{analysis_dataset}/figures/item_responses.png",
            caption="../report/item_responses.rst",
            category="Data",
            subcategory="{analysis_dataset}",
            labels={"dataset": "{analysis_dataset}", "figure": "item responses"},
        ),
        item_figure_pdf="results/{analysis_dataset}/figures/item_responses.pdf",
        missing_figure=report(
            "results/{analysis_dataset}/figures/missingness.png",
            caption="../report/missingness.rst",
            category="Data",
            subcategory="{analysis_dataset}",
            labels={"dataset": "{analysis_dataset}", "figure": "missingness"},
        ),
        missing_figure_pdf="results/{analysis_dataset}/figures/missingness.pdf",
    log:
        "results/{analysis_dataset}/logs/describe.log",
    benchmark:
        "results/{analysis_dataset}/benchmarks/describe.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        session=config["describe"]["session"],
        rater=config["describe"]["rater"],
        parallel_iterations=config["describe"]["parallel_iterations"],
        seed=config["seed"],
    script:
        "../../scripts/describe.py"
