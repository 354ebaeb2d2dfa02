# Bayesian alliance-outcome models per dataset (outcome, therapist, session), with diagnostics,
# LOO and figures; the prior-sensitivity refits (prior scales halved and doubled) are the same
# rule with another {scale}.


rule bayes_fit:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        patients="results/{item_dataset}/ingest/patients.parquet",  # therapists
        scores="results/{item_dataset}/scores/scores.parquet",
    output:
        summary=report(
            "results/{item_dataset}/bayes/{model}_x{scale}/summary.csv",
            caption="../report/bayes_summary.rst",
            category="Outcome models",
            subcategory="{item_dataset}",
            labels={
                "dataset": "{item_dataset}",
                "model": "{model}",
                "table": "posterior summary, prior scale x{scale}",
            },
        ),
        diagnostics="results/{item_dataset}/bayes/{model}_x{scale}/diagnostics.json",
        idata="results/{item_dataset}/bayes/{model}_x{scale}/idata.nc",
    log:
        "results/{item_dataset}/logs/bayes_{model}_x{scale}.log",
    benchmark:
        "results/{item_dataset}/benchmarks/bayes_{model}_x{scale}.tsv"
    conda:
        ENV
    threads: bayes_threads
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        priors=config["bayes"]["priors"],
        sampler=bayes_sampler,
        alliance_session=config["bayes"]["alliance_session"],
        measure=config["bayes"]["measure"],
    script:
        "../../scripts/bayes_fit.py"


rule bayes_figures:
    input:
        idata="results/{item_dataset}/bayes/{model}_x1/idata.nc",
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        patients="results/{item_dataset}/ingest/patients.parquet",  # therapists
        scores="results/{item_dataset}/scores/scores.parquet",
    output:
        figures=report(
            directory("results/{item_dataset}/bayes/{model}_x1/figures"),
            patterns=["{name}.png"],
            caption="../report/bayes_figures.rst",
            category="Outcome models",
            subcategory="{item_dataset}",
            labels={
                "dataset": "{item_dataset}",
                "model": "{model}",
                "figure": "{name}",
            },
        ),
    log:
        "results/{item_dataset}/logs/bayes_figures_{model}.log",
    benchmark:
        "results/{item_dataset}/benchmarks/bayes_figures_{model}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        alliance_session=config["bayes"]["alliance_session"],
        measure=config["bayes"]["measure"],
    script:
        "../../scripts/bayes_figures.py"


rule bayes_sensitivity:
    input:
        summaries=bayes_sensitivity_inputs,
    output:
        table=report(
            "results/{item_dataset}/bayes/sensitivity_{model}.csv",
            caption="../report/bayes_sensitivity.rst",
            category="Outcome models",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "table": "prior sensitivity {model}"},
        ),
    log:
        "results/{item_dataset}/logs/bayes_sensitivity_{model}.log",
    benchmark:
        "results/{item_dataset}/benchmarks/bayes_sensitivity_{model}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        scales=config["bayes"]["sensitivity_scales"],
    script:
        "../../scripts/bayes_sensitivity.py"
