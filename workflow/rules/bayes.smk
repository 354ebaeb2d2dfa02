# Bayesian alliance-outcome models per dataset (outcome, therapist, session, latent), with
# diagnostics, LOO and figures in one job per model (one interpreter, PyMC/nutpie imported and
# the model compiled once); the prior-sensitivity refits (prior scales halved and doubled) and
# their table in one job per dataset and model, rule bayes_sensitivity.


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
    script:
        "../../scripts/bayes_fit.py"


# The prior-sensitivity refits: the same model with every prior scale multiplied by each
# bayes.sensitivity_scales factor other than 1 (posterior summary and diagnostics only, one
# after another in one job), and the table of how the key estimates move.
rule bayes_sensitivity:
    input:
        item_table="results/{item_dataset}/ingest/items.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
        patients="results/{item_dataset}/ingest/patients.parquet",  # therapists
        scores="results/{item_dataset}/scores/scores.parquet",
        default_summary="results/{item_dataset}/bayes/{model}_x1/summary.csv",
    output:
        table=report(
            "results/{item_dataset}/bayes/sensitivity_{model}.csv",
            caption="../report/bayes_sensitivity.rst",
            category="Outcome models",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "table": "prior sensitivity {model}"},
        ),
        summaries=refit_files("summary.csv"),
        diagnostics=refit_files("diagnostics.json"),
    log:
        "results/{item_dataset}/logs/bayes_sensitivity_{model}.log",
    benchmark:
        "results/{item_dataset}/benchmarks/bayes_sensitivity_{model}.tsv"
    conda:
        ENV
    threads: bayes_threads
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        scales=config["bayes"]["sensitivity_scales"],
        priors=config["bayes"]["priors"],
        sampler=bayes_sampler,
        alliance_session=config["bayes"]["alliance_session"],
        measure=config["bayes"]["measure"],
    script:
        "../../scripts/bayes_sensitivity.py"
