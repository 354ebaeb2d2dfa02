# Bayesian alliance-outcome models per dataset (outcome, therapist, session, latent), with
# diagnostics, LOO and figures in one job per model (one interpreter, PyMC/nutpie imported and
# the model compiled once); the prior-sensitivity refits (prior scales halved and doubled) are
# rule bayes_refit.


rule bayes_fit:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        patients="results/{item_dataset}/ingest/patients.parquet",  # therapists
        scores="results/{item_dataset}/scores/scores.parquet",
    output:
        summary=report(
            "results/{item_dataset}/bayes/{model}_x1/summary.csv",
            caption="../report/bayes_summary.rst",
            category="Outcome models",
            subcategory="{item_dataset}",
            labels={
                "dataset": "{item_dataset}",
                "model": "{model}",
                "table": "posterior summary, prior scale x1",
            },
        ),
        diagnostics="results/{item_dataset}/bayes/{model}_x1/diagnostics.json",
        idata="results/{item_dataset}/bayes/{model}_x1/idata.nc",
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
        "results/{item_dataset}/logs/bayes_{model}_x1.log",
    benchmark:
        "results/{item_dataset}/benchmarks/bayes_{model}_x1.tsv"
    priority: bayes_priority
    conda:
        ENV
    threads: bayes_threads
    resources:
        mem_mb=4000,
        runtime=30,
        latent_compilations=latent_compilations,
    params:
        priors=config["bayes"]["priors"],
        sampler=bayes_sampler,
        alliance_session=config["bayes"]["alliance_session"],
        measure=config["bayes"]["measure"],
        scale=1.0,
        refit=False,
    script:
        "../../scripts/bayes_fit.py"


# The prior-sensitivity refits: the same model with every prior scale multiplied by {scale}
# (not 1); only the posterior summary and diagnostics, which the sensitivity table compares.
rule bayes_refit:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        patients="results/{item_dataset}/ingest/patients.parquet",  # therapists
        scores="results/{item_dataset}/scores/scores.parquet",
    output:
        summary="results/{item_dataset}/bayes/{model}_x{scale}/summary.csv",
        diagnostics="results/{item_dataset}/bayes/{model}_x{scale}/diagnostics.json",
    log:
        "results/{item_dataset}/logs/bayes_refit_{model}_x{scale}.log",
    benchmark:
        "results/{item_dataset}/benchmarks/bayes_refit_{model}_x{scale}.tsv"
    wildcard_constraints:
        scale=SENSITIVITY_SCALE,
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
        scale=sensitivity_scale,
        refit=True,
    script:
        "../../scripts/bayes_fit.py"


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
