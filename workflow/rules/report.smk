# Everything upstream -> results/summary.md (+ .html): the numbers a paper needs, a methods
# paragraph written from the config, the reporting checklist and every warning.


rule summary:
    input:
        upstream=summary_inputs,
    output:
        markdown=report(
            "results/summary.md",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "results summary"},
        ),
        html="results/summary.html",
        # every table of the summary in APA layout, to paste into a manuscript
        docx="results/summary_tables.docx",
    log:
        "results/logs/summary.log",
    benchmark:
        "results/benchmarks/summary.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../../scripts/summary.py"
