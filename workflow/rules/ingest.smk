# Raw export + codebook -> tidy tables, quarantine and an ingest report that reconciles. The
# quarantine (patient IDs, raw values) is not attached to Snakemake's report: no patient
# identifier leaves the dataset's folder.


rule ingest_items:
    input:
        codebook=codebook_path,
        raw=raw_file,
        instrument=instrument_files,
    output:
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        patients="results/{item_dataset}/ingest/patients.parquet",
        # patient x session x rater of every source record, kept or quarantined (dropout)
        attendance="results/{item_dataset}/ingest/attendance.parquet",
        # patient IDs and raw values: kept in the dataset's folder, never in the report
        quarantine="results/{item_dataset}/ingest/quarantine.csv",
        report="results/{item_dataset}/ingest/ingest_report.json",
    log:
        "results/{item_dataset}/logs/ingest.log",
    benchmark:
        "results/{item_dataset}/benchmarks/ingest.tsv"
    priority: FEEDER_PRIORITY
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
        # patient IDs and raw values: kept in the dataset's folder, never in the report
        quarantine="results/{effect_dataset}/ingest/quarantine.csv",
        report="results/{effect_dataset}/ingest/ingest_report.json",
    log:
        "results/{effect_dataset}/logs/ingest.log",
    benchmark:
        "results/{effect_dataset}/benchmarks/ingest.tsv"
    priority: FEEDER_PRIORITY
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
        instrument=instrument_files,
    output:
        item_table="results/pooled/ingest/items.parquet",
        report="results/pooled/ingest/ingest_report.json",
    log:
        "results/pooled/logs/pool.log",
    benchmark:
        "results/pooled/benchmarks/pool.tsv"
    priority: CHAIN_PRIORITY
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/pool_items.py"
