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
    priority: FEEDER_PRIORITY
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
    # as soon as the effects are in: left to the end it waits for the last fits (common.smk,
    # BAYES_PRIORITY)
    priority: 15
    conda:
        ENV
    # the Bayesian pooling's chains in parallel up to these cores (meta.bayes.cores; the
    # script passes the threads granted). With 2 on the 2-core demo it waited for both cores
    # to be free, which happened only after the last fits: it ran alone at the end (9 s)
    threads: int(config["meta"]["bayes"]["cores"])
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


rule masem:
    input:
        item_tables=expand("results/{name}/ingest/items.parquet", name=ITEM_DATASETS),
        reports=expand("results/{name}/ingest/ingest_report.json", name=ITEM_DATASETS),
        instrument=instrument_files,
    output:
        masem="results/meta/masem/masem.json",
        fit=report(
            "results/meta/masem/fit.csv",
            caption="../report/masem_fit.rst",
            category="Meta-analysis",
            labels={"table": "MASEM model fit"},
        ),
        correlations="results/meta/masem/correlations.csv",
        parameters="results/meta/masem/parameters.csv",
        comparisons="results/meta/masem/comparisons.csv",
    log:
        "results/meta/logs/masem.log",
    benchmark:
        "results/meta/benchmarks/masem.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        settings=masem_settings,
        session=config["cfa"]["session"],
        rater=config["cfa"]["rater"],
    script:
        "../../scripts/masem.py"


rule ipd:
    input:
        scores=expand("results/{name}/scores/scores.parquet", name=ITEM_DATASETS),
        outcomes=expand("results/{name}/ingest/outcomes.parquet", name=ITEM_DATASETS),
        patients=expand("results/{name}/ingest/patients.parquet", name=ITEM_DATASETS),
        effects=expand("results/{name}/effects/effect.json", name=ITEM_DATASETS),
    output:
        ipd="results/meta/ipd/ipd.json",
        summary=report(
            "results/meta/ipd/summary.csv",
            caption="../report/ipd_summary.rst",
            category="Meta-analysis",
            labels={"table": "one-stage IPD model"},
        ),
    log:
        "results/meta/logs/ipd.log",
    benchmark:
        "results/meta/benchmarks/ipd.tsv"
    priority: 15
    conda:
        ENV
    threads: int(config["bayes"]["sampler"]["cores"])
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        alliance_session=config["meta"]["alliance_session"],
        measure=config["meta"]["measure"],
        priors=config["bayes"]["priors"],
        sampler=ipd_sampler_settings,
    script:
        "../../scripts/ipd.py"
