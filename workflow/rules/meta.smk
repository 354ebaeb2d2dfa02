# Each dataset's alliance-outcome effect, pooled with published effects: REML (as metafor) and
# Bayesian random effects, forest and funnel plots.


rule dataset_effect:
    input:
        scores="results/{item_dataset}/scores/scores.parquet",
        outcomes="results/{item_dataset}/ingest/outcomes.parquet",
    output:
        effect="results/{item_dataset}/effects/effect.json",
    log:
        "results/{item_dataset}/logs/effect.log",
    benchmark:
        "results/{item_dataset}/benchmarks/effect.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        alliance_session=config["meta"]["alliance_session"],
        measure=config["meta"]["measure"],
    script:
        "../../scripts/dataset_effect.py"


rule meta:
    input:
        effects=meta_inputs,
    output:
        meta="results/meta/meta.json",
        studies=report(
            "results/meta/studies.csv",
            caption="../report/meta_studies.rst",
            category="Meta-analysis",
            labels={"table": "studies and weights"},
        ),
        forest=report(
            "results/meta/forest.png",
            caption="../report/forest.rst",
            category="Meta-analysis",
            labels={"figure": "forest plot"},
        ),
        forest_pdf="results/meta/forest.pdf",
        funnel=report(
            "results/meta/funnel.png",
            caption="../report/funnel.rst",
            category="Meta-analysis",
            labels={"figure": "funnel plot"},
        ),
        funnel_pdf="results/meta/funnel.pdf",
    log:
        "results/meta/logs/meta.log",
    benchmark:
        "results/meta/benchmarks/meta.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        settings=config["meta"],
        seed=config["seed"],
    script:
        "../../scripts/meta.py"


rule provenance:
    input:
        inputs=provenance_inputs,
        benchmarks=benchmark_files,
    output:
        provenance="results/provenance.json",
    log:
        "results/logs/provenance.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../../scripts/provenance.py"
