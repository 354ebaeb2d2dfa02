# Regenerate the embedded demo data (not part of `all`):
#   snakemake simulate_demo --forcerun simulate_demo --cores 1


rule simulate_demo:
    output:
        truth=f"{config['simulate']['data_dir']}/truth.json",
        patients=f"{config['simulate']['data_dir']}/truth_patients.csv",
        site_a=f"{config['simulate']['data_dir']}/site_a.csv",
        site_b=f"{config['simulate']['data_dir']}/site_b.sav",
        site_c=f"{config['simulate']['data_dir']}/site_c.xlsx",
        published=f"{config['simulate']['data_dir']}/published.csv",
        codebooks=expand(
            "{folder}/{site}.yaml",
            folder=config["simulate"]["codebook_dir"],
            site=["site_a", "site_b", "site_c", "published"],
        ),
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
        codebook_dir=codebook_folder,
    script:
        "../../scripts/simulate_demo.py"
