# Alliance and symptoms within patients over sessions: the random-intercept cross-lagged panel
# model (RI-CLPM) per item dataset (rule panel). A dataset without enough sessions with both
# measures is skipped with the reason in riclpm.json; it never stops the run.


rule panel:
    input:
        scores="results/{item_dataset}/scores/scores.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
    output:
        fit="results/{item_dataset}/panel/riclpm.json",
        effects=report(
            "results/{item_dataset}/panel/effects.csv",
            caption="../report/panel_effects.rst",
            category="Within-patient dynamics",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "table": "RI-CLPM lagged effects"},
        ),
        effects_md="results/{item_dataset}/panel/effects.md",
        figure=report(
            "results/{item_dataset}/panel/lagged_paths.png",
            caption="../report/panel_figure.rst",
            category="Within-patient dynamics",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "figure": "RI-CLPM lagged paths"},
        ),
        figure_pdf="results/{item_dataset}/panel/lagged_paths.pdf",
    log:
        "results/{item_dataset}/logs/panel.log",
    benchmark:
        "results/{item_dataset}/benchmarks/panel.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        settings=config["panel"]["settings"],
    script:
        "../../scripts/panel.py"


# The Bayesian dynamic panel model per item dataset (rule panel_bayes, panel.bayes.enabled):
# latent-mean centering and every session, missed ones integrated out (README). Skipped with
# the reason when the data cannot support it; sampled with bayes.sampler.


rule panel_bayes:
    input:
        scores="results/{item_dataset}/scores/scores.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
    output:
        summary="results/{item_dataset}/panel/bayes/summary.json",
        effects=report(
            "results/{item_dataset}/panel/bayes/effects.csv",
            caption="../report/panel_bayes_effects.rst",
            category="Within-patient dynamics",
            subcategory="{item_dataset}",
            labels={"dataset": "{item_dataset}", "table": "Bayesian dynamic panel"},
        ),
        effects_md="results/{item_dataset}/panel/bayes/effects.md",
    log:
        "results/{item_dataset}/logs/panel_bayes.log",
    benchmark:
        "results/{item_dataset}/benchmarks/panel_bayes.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        settings=config["panel"]["settings"],
        trend=config["panel"]["bayes"]["trend"],
        sampler=config["bayes"]["sampler"],
    script:
        "../../scripts/panel_bayes.py"
