# Regenerate the embedded demo data (not part of `all`):
#   snakemake simulate_demo --forcerun simulate_demo --cores 1


rule simulate_demo:
    output:
        truth=f"{config['simulate']['data_dir']}/truth.json",
    params:
        seed=config["simulate"]["seed"],
        data_dir=config["simulate"]["data_dir"],
        codebook_dir=config["simulate"]["codebook_dir"],
    log:
        "results/logs/simulate_demo.log",
    benchmark:
        "results/benchmarks/simulate_demo.tsv"
    conda:
        ENV
    script:
        "../../scripts/simulate_demo.py"
