# Regenerate the embedded demo data (never part of a normal run): `make demo-data`, or
#   snakemake simulate_demo --forcerun simulate_demo --cores 1
# Only the truth files are declared outputs. The demo exports (data/demo/site_*.csv/.sav/.xlsx,
# published.csv) and their codebooks (config/codebooks/*.yaml) are written beside them but are
# not outputs of this rule: declared, they would make it their producer, and Snakemake would
# rerun it in the first `make demo` of a fresh clone (its script is newer than the checked-out
# data) and overwrite a user's edits to the demo data and codebooks. Regenerating is therefore
# only ever done on request, and gives the same bytes with the same seed.


rule simulate_demo:
    output:
        truth=f"{config['simulate']['data_dir']}/truth.json",
        patients=f"{config['simulate']['data_dir']}/truth_patients.csv",
    log:
        "results/logs/simulate_demo.log",
    benchmark:
        "results/benchmarks/simulate_demo.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        seed=config["simulate"]["seed"],
        data_dir=output_folder,
        codebook_dir=config["simulate"]["codebook_dir"],
    script:
        "../../scripts/simulate_demo.py"
