# Raw export + codebook -> tidy tables, quarantine and an ingest report that reconciles.


rule ingest_items:
    input:
        codebook=codebook_path,
        raw=raw_file,
    output:
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        patients="results/{item_dataset}/ingest/patients.parquet",
        quarantine=report(
            "results/{item_dataset}/ingest/quarantine.csv",
            caption="../report/quarantine.rst",
            category="Data",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "table": "quarantine"},
        ),
        report="results/{item_dataset}/ingest/ingest_report.json",
    log:
        "results/{item_dataset}/logs/ingest.log",
    benchmark:
        "results/{item_dataset}/benchmarks/ingest.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/ingest.py"


rule ingest_effects:
    input:
        codebook=codebook_path,
        raw=raw_file,
    output:
        effects="results/{effect_dataset}/ingest/effects.parquet",
        quarantine=report(
            "results/{effect_dataset}/ingest/quarantine.csv",
            caption="../report/quarantine.rst",
            category="Data",
            subcategory="{effect_dataset}",
            labels={"dataset": "{effect_dataset}", "table": "quarantine"},
        ),
        report="results/{effect_dataset}/ingest/ingest_report.json",
    log:
        "results/{effect_dataset}/logs/ingest.log",
    benchmark:
        "results/{effect_dataset}/benchmarks/ingest.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/ingest.py"


rule pool_items:
    input:
        pooled_inputs,
    output:
        item_table="results/pooled/ingest/items.parquet",
        report="results/pooled/ingest/ingest_report.json",
    log:
        "results/pooled/logs/pool.log",
    benchmark:
        "results/pooled/benchmarks/pool.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/pool_items.py"
