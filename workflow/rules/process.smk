# Alliance as a process: client-therapist agreement, rupture-repair episodes, the dropout
# person-period table and the trait-like / state-like variance shares.


rule process:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        scores="results/{item_dataset}/scores/scores.parquet",
    output:
        summary="results/{item_dataset}/process/summary.json",
        agreement=report(
            "results/{item_dataset}/process/agreement.csv",
            caption="../report/agreement.rst",
            category="Process",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "table": "rater agreement"},
        ),
        episodes="results/{item_dataset}/process/ruptures_episodes.csv",
        patients="results/{item_dataset}/process/ruptures_patients.csv",
        variance="results/{item_dataset}/process/variance_components.json",
        person_period="results/{item_dataset}/process/person_period.parquet",
    log:
        "results/{item_dataset}/logs/process.log",
    benchmark:
        "results/{item_dataset}/benchmarks/process.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        settings=process_settings,
    script:
        "../../scripts/process.py"
