"""The Snakemake workflow: dry runs, lint, profiles, config errors, formatting, DAG rules."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_support import (
    ROOT,
    deterministic_demo_project,
    run_snakemake,
    small_project,
    srs_project,
)


def test_invalid_config_is_named(tmp_path, rng):
    project = small_project(tmp_path, rng)
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["describe"]["session"] = 0
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(project, "--cores", "1", "--dry-run")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "instance['describe']['session']" in output
    assert "minimum" in output


def test_demo_dag_dry_run_and_lint():
    # --forceall lists every job whether or not results/ exists here
    result = run_snakemake(ROOT, "--cores", "2", "--dry-run", "--forceall")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("site_a", "site_b", "site_c", "published"):
        assert f"results/{name}/ingest/ingest_report.json" in result.stdout
    # every stage of every item dataset, the Bayesian process models and the RI-CLPM included
    for rule in ("process", "process_bayes", "panel"):
        assert f"rule {rule}:" in result.stdout
    for name in ("site_a", "site_b", "site_c"):
        for path in ("process/summary.json", "process/bayes/key_effects.csv", "panel/riclpm.json"):
            assert f"results/{name}/{path}" in result.stdout
    lint = run_snakemake(ROOT, "--lint", "--cores", "1")
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]


def test_slurm_profile_dry_run(tmp_path):
    result = run_snakemake(
        ROOT,
        "--workflow-profile",
        str(ROOT / "workflow/profiles/slurm"),
        "--dry-run",
        "--forceall",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ingest_items" in result.stdout


# Snakemake with its S3 storage plugin talking to moto's in-process S3 instead of a bucket: the
# inputs the workflow reads from storage (config/ and data/) are uploaded first, then the CLI runs
# in the same process. argv: the snakemake arguments.
S3_FAKE_RUN = """
import os, sys
import boto3
from moto import mock_aws
import snakemake.cli

with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="alliance-test")
    for folder in ("config", "data"):
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                s3.upload_file(path, "alliance-test", "run/" + path)
    sys.argv = ["snakemake", *sys.argv[1:]]
    snakemake.cli.main()
"""


def test_kubernetes_profile_dry_run(tmp_path):
    """The Kubernetes profile's dry run, offline.

    The Kubernetes executor implies no shared file system, so Snakemake needs the profile's
    default storage (S3) even for a dry run: it checks every input in the bucket. moto stands in
    for the bucket; no cluster is contacted in a dry run (KUBECONFIG points nowhere).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKEMAKE", "AWS_"))}
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "KUBECONFIG": str(tmp_path / "none"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            S3_FAKE_RUN,
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(ROOT),
            "--workflow-profile",
            str(ROOT / "workflow/profiles/kubernetes"),
            "--default-storage-prefix",
            "s3://alliance-test/run",
            "--dry-run",
            "--forceall",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ingest_items" in result.stdout
    # inputs come from the bucket, outputs go to it; package sources (instruments) stay local
    assert "s3://alliance-test/run/data/demo/site_a.csv (retrieve from storage)" in result.stdout
    assert "s3://alliance-test/run/results/summary.md (send to storage)" in result.stdout
    assert "src/alliance/data/instruments/wai_sr.yaml" in result.stdout
    assert "s3://alliance-test/run/src/" not in result.stdout
    assert "s3://alliance-test/run//" not in result.stdout  # no absolute path became a key


def test_formatting_is_clean():
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent))
    files = [str(ROOT / "Snakefile"), str(ROOT / "workflow" / "rules")]
    check = subprocess.run([snakefmt, "--check", *files], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [ruff, *args, "src", "tests", "scripts"], capture_output=True, text=True, cwd=ROOT
        )
        assert result.returncode == 0, result.stdout[-3000:]


def test_fresh_clone_never_regenerates_the_demo_data(tmp_path):
    """The first run of a fresh clone uses the committed demo data and codebooks as they are.

    In a fresh clone the files are as old as the checkout and the generator's script may be
    newer; the demo data must not be scheduled for regeneration (which would overwrite a user's
    edits to them) unless asked for (`make demo-data`).
    """
    for name in ("config", "data"):
        shutil.copytree(ROOT / name, tmp_path / name)
    for path in [*(tmp_path / "data").rglob("*"), *(tmp_path / "config").rglob("*")]:
        os.utime(path, (1_000_000_000, 1_000_000_000))  # older than every script
    result = run_snakemake(tmp_path, "--cores", "2", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule ingest_items:" in result.stdout
    assert "simulate_demo" not in result.stdout
    # asked for, it runs (and writes the exports and codebooks beside the truth files)
    asked = run_snakemake(
        tmp_path, "simulate_demo", "--forcerun", "simulate_demo", "--cores", "1", "--dry-run"
    )
    assert asked.returncode == 0, asked.stderr[-3000:]
    assert "rule simulate_demo:" in asked.stdout


def test_bayes_models_per_dataset(tmp_path, rng):
    project = small_project(tmp_path, rng)
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["bayes"]["models_by_dataset"] = {"clinic": ["session", "therapist"]}
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    plan = run_snakemake(project, "--cores", "1", "--dry-run", "--forceall")
    assert plan.returncode == 0, plan.stderr[-3000:]
    fits = set(re.findall(r"results/clinic/bayes/(\w+)_x1/summary\.csv", plan.stdout))
    assert fits == {"session", "therapist"}  # in place of bayes.models: [outcome]
    config["bayes"]["models_by_dataset"] = {"elsewhere": ["outcome"]}
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    wrong = run_snakemake(project, "--cores", "1", "--dry-run")
    assert wrong.returncode != 0
    assert "'bayes.models_by_dataset' names ['elsewhere']" in wrong.stdout + wrong.stderr


def test_pooling_datasets_of_different_instruments_stops_at_parse_time(tmp_path):
    """Pooling and MASEM stack the datasets' answers: a dataset ingested with another
    instrument (a user's two-factor key of the WAI-SR items) stops the workflow before any job,
    naming each dataset's instrument and the keys to change; with both off it plans."""
    from alliance.data.instruments import load_instrument

    deterministic_demo_project(tmp_path)
    key = yaml.safe_load(Path(load_instrument("wai_sr").path).read_text())
    key |= {"name": "wai_two_factor", "factors": {"a": key["items"][:6], "b": key["items"][6:]}}
    (tmp_path / "config" / "codebooks" / "two_factor.yaml").write_text(yaml.safe_dump(key))
    codebook = tmp_path / "config" / "codebooks" / "site_c.yaml"
    codebook.write_text(
        codebook.read_text().replace("instrument: wai_sr", "instrument: two_factor.yaml")
    )
    wrong = run_snakemake(tmp_path, "--cores", "1", "--dry-run")
    assert wrong.returncode != 0
    message = wrong.stdout + wrong.stderr
    assert "'pool.enabled' and 'meta.masem.enabled'" in message
    assert "site_a: wai_sr (built-in)" in message
    assert "site_c: wai_two_factor (" in message and "two_factor.yaml)" in message
    config_path = tmp_path / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["pool"]["enabled"] = False
    config["meta"]["masem"]["enabled"] = False
    config_path.write_text(yaml.safe_dump(config))
    plan = run_snakemake(tmp_path, "--cores", "1", "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "results/pooled/" not in plan.stdout


def test_a_continuous_scale_runs_what_needs_no_categories(tmp_path, rng):
    """A Session Rating Scale dataset (0-10 lines read to 0.1) beside a WAI-SR one: its plan
    leaves out what needs ordered categories (WLSMV, IRT, the latent model) while the WAI-SR
    dataset keeps them; its description bins the lines by unit interval with floor and
    ceiling exactly at the ends; its CFA fits the one-factor model and names why the
    multi-factor models are not models of a one-factor key."""
    import json

    import numpy as np
    import pandas as pd

    project = srs_project(tmp_path, rng)
    plan = run_snakemake(project, "--cores", "1", "--dry-run", "--forceall")
    assert plan.returncode == 0, plan.stderr[-3000:]
    planned = set(re.findall(r"results/(\w+)/(cfa/fits/\w+\.json|irt/\w+|bayes/\w+)", plan.stdout))
    for what in ("cfa/fits/one_factor_WLSMV.json", "bayes/latent_x1"):
        assert ("clinic", what) in planned and ("vas", what) not in planned
    assert ("vas", "cfa/fits/one_factor_MLR.json") in planned
    assert ("vas", "bayes/outcome_x1") in planned
    assert not any(d == "vas" and w.startswith("irt/") for d, w in planned)

    targets = ["results/vas/describe/summary.json", "results/vas/cfa/comparison_MLR.json"]
    result = run_snakemake(project, "--cores", "2", *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    results = project / "results" / "vas"
    items = pd.read_parquet(results / "ingest" / "items.parquet")
    table = pd.read_csv(results / "describe" / "item_categories.csv", index_col="item")
    assert [c for c in table.columns if c.isdigit()] == [str(b) for b in range(10)]
    for item in ("srs_1", "srs_4"):
        answers = items.loc[items["session"] == 2, item].dropna().to_numpy(float)
        share_9 = np.mean(answers >= 9)  # the last interval is closed: 9 <= x <= 10
        assert table.loc[item, "9"] == pytest.approx(share_9, abs=1e-12)
        assert table.loc[item, "ceiling_share"] == pytest.approx(np.mean(answers == 10), abs=1e-12)
        assert table.loc[item, "floor_share"] == pytest.approx(np.mean(answers == 0), abs=1e-12)
    comparison = json.loads((results / "cfa" / "comparison_MLR.json").read_text())
    fits = comparison["results"]
    assert fits["one_factor"]["status"]["admissible"] is True
    skipped = fits["correlated"]["status"]
    assert skipped["skipped"] is True
    assert "correlated needs two or more factors; the srs key has 1 factor(s)" in skipped["reason"]
