# Item response models per item dataset (rule irt): Samejima's graded response model (marginal
# ML) and the Rasch partial credit model (conditional ML, as eRm), one model per factor of the
# instrument, on the CFA's sample (one row per patient: cfa.rater at cfa.session). A scale the
# data cannot support is written with its status and reason; it never stops the run.


rule irt:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        report="results/{item_dataset}/ingest/ingest_report.json",
        instrument=instrument_files,
    output:
        fit="results/{item_dataset}/irt/{irt_model}/irt.json",
        item_params=report(
            "results/{item_dataset}/irt/{irt_model}/items.csv",
            caption="../report/irt_items.rst",
            category="Item response models",
            subcategory="{item_dataset}",
            labels={
                "dataset": "{item_dataset}",
                "table": "{irt_model} item parameters",
            },
        ),
        item_params_md="results/{item_dataset}/irt/{irt_model}/items.md",
        curves=report(
            "results/{item_dataset}/irt/{irt_model}/category_curves.png",
            caption="../report/irt_figures.rst",
            category="Item response models",
            subcategory="{item_dataset}",
            labels={
                "dataset": "{item_dataset}",
                "figure": "{irt_model} category curves",
            },
        ),
        curves_pdf="results/{item_dataset}/irt/{irt_model}/category_curves.pdf",
        threshold_map="results/{item_dataset}/irt/{irt_model}/threshold_map.png",
        threshold_map_pdf="results/{item_dataset}/irt/{irt_model}/threshold_map.pdf",
    log:
        "results/{item_dataset}/logs/irt_{irt_model}.log",
    benchmark:
        "results/{item_dataset}/benchmarks/irt_{irt_model}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        by=config["irt"]["by"],
        session=config["cfa"]["session"],
        rater=config["cfa"]["rater"],
    script:
        "../../scripts/irt.py"
