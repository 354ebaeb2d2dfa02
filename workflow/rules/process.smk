# Alliance as a process: client-therapist agreement, rupture-repair episodes, the dropout
# person-period table and the trait-like / state-like variance shares (rule process); the
# Bayesian process models on those tables (rule process_bayes): dropout hazard, alliance
# growth, client vs therapist as outcome predictors, ruptures and outcome.


rule process:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        attendance="results/{item_dataset}/ingest/attendance.parquet",
        scores="results/{item_dataset}/scores/scores.parquet",
        instrument=process_instrument_file,
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
    priority: FEEDER_PRIORITY
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


rule process_bayes:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        patients="results/{item_dataset}/ingest/patients.parquet",
        scores="results/{item_dataset}/scores/scores.parquet",
        process="results/{item_dataset}/process/summary.json",
        person_period="results/{item_dataset}/process/person_period.parquet",
        ruptures="results/{item_dataset}/process/ruptures_patients.csv",
        variance="results/{item_dataset}/process/variance_components.json",
    output:
        summary="results/{item_dataset}/process/bayes/summary.json",
        effects=report(
            "results/{item_dataset}/process/bayes/key_effects.csv",
            caption="../report/process_bayes_effects.rst",
            category="Process",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "table": "Bayesian process models"},
        ),
        effects_md="results/{item_dataset}/process/bayes/key_effects.md",
        models=expand(
            "results/{{item_dataset}}/process/bayes/{model}/diagnostics.json",
            model=PROCESS_BAYES_MODELS,
        ),
        figures=report(
            directory("results/{item_dataset}/process/bayes/figures"),
            patterns=["{name}.png"],
            caption="../report/process_bayes_figures.rst",
            category="Process",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "figure": "Bayesian {name}"},
        ),
    log:
        "results/{item_dataset}/logs/process_bayes.log",
    benchmark:
        "results/{item_dataset}/benchmarks/process_bayes.tsv"
    # after the latent fits, before the shorter jobs (common.smk, BAYES_PRIORITY)
    priority: 20
    conda:
        ENV
    threads: int(config["bayes"]["sampler"]["cores"])
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        models=PROCESS_BAYES_MODELS,
        sampler=bayes_sampler,
        settings=process_bayes_settings,
    script:
        "../../scripts/process_bayes.py"
