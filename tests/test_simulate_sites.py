import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from alliance.data.codebook import load_codebook
from alliance.data.ingest import ingest
from alliance.data.schemas import load_schema
from alliance.simulate.sites import ERROR_PLAN, simulate_sites, site_names

ROOT = Path(__file__).resolve().parents[1]
CONFIG_SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def files_of(project: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(project)): p.read_bytes()
        for p in sorted(project.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return simulate_sites(5, tmp_path_factory.mktemp("sites"), seed=11, patients_per_site=40)


def test_layout_and_schemas(project):
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    jsonschema.Draft202012Validator(CONFIG_SCHEMA).validate(config)
    names = site_names(5)
    assert list(config["datasets"]) == names
    codebook_schema = jsonschema.Draft202012Validator(load_schema("codebook"))
    for name in names:
        path = project / config["datasets"][name]["codebook"]
        codebook_schema.validate(yaml.safe_load(path.read_text()))
        codebook = load_codebook(path)  # resolves the data file relative to the codebook
        assert codebook.dataset == name
        assert codebook.file == (project / "data" / f"{name}.csv").resolve()
    assert sorted(p.name for p in (project / "data").glob("site_*.csv")) == [
        f"{n}.csv" for n in names
    ]


def test_rows_match_patients_and_injected_errors(project):
    truth = json.loads((project / "data" / "truth.json").read_text())
    patients = pd.read_csv(project / "data" / "truth_patients.csv")
    assert len(patients) == 5 * 40
    assert patients.groupby("dataset")["patient_id"].nunique().tolist() == [40] * 5
    for name in site_names(5):
        raw = pd.read_csv(project / "data" / f"{name}.csv", dtype=str, keep_default_na=False)
        sessions = int(patients.loc[patients["dataset"] == name, "last_session"].sum())
        # one client row per attended session, plus the planted duplicate row
        assert len(raw) == sessions + 1 == truth["expected_ingest"][name]["rows_in"]
        assert {e["reason"] for e in truth["injected_errors"][name]} == {r for r, _ in ERROR_PLAN}
        assert raw["patient_id"].str.startswith(f"S{name[-3:]}-P").sum() == len(raw) - 1


def test_ingest_reconciles_with_truth(project):
    truth = json.loads((project / "data" / "truth.json").read_text())
    name = "site_002"
    report = ingest(project / "config" / "codebooks" / f"{name}.yaml").report
    expected = truth["expected_ingest"][name]
    assert report["rows_in"] == expected["rows_in"]
    assert report["rows_quarantined"] == expected["rows_quarantined"]
    assert report["reasons"] == expected["reasons"]


def test_reproducible_and_prefix_stable(project, tmp_path):
    again = simulate_sites(5, tmp_path / "again", seed=11, patients_per_site=40)
    assert files_of(again) == files_of(project)
    # site k does not depend on how many sites are drawn
    fewer = simulate_sites(2, tmp_path / "fewer", seed=11, patients_per_site=40)
    for name in site_names(2):
        csv = f"data/{name}.csv"
        assert (fewer / csv).read_bytes() == (project / csv).read_bytes()
    other = simulate_sites(1, tmp_path / "other", seed=12, patients_per_site=40)
    first = "data/site_001.csv"
    assert (other / first).read_bytes() != (project / first).read_bytes()


def test_options(tmp_path):
    out = simulate_sites(
        2,
        tmp_path,
        seed=3,
        patients_per_site=30,
        therapists_per_site=5,
        therapist_ratings=True,
        inject_errors=False,
        config_overrides={"describe": {"parallel_iterations": 20}, "pool": {"enabled": False}},
    )
    config = yaml.safe_load((out / "config" / "config.yaml").read_text())
    jsonschema.Draft202012Validator(CONFIG_SCHEMA).validate(config)
    assert config["describe"] == {"session": 3, "rater": "client", "parallel_iterations": 20}
    assert config["pool"] == {"enabled": False}
    raw = pd.read_csv(out / "data" / "site_001.csv")
    assert set(raw["rater"]) == {"client", "therapist"}
    assert raw["therapist_id"].nunique() == 5
    truth = json.loads((out / "data" / "truth.json").read_text())
    assert truth["injected_errors"] == {"site_001": [], "site_002": []}
    report = ingest(out / "config" / "codebooks" / "site_001.yaml").report
    assert report["rows_quarantined"] == 0
    assert report["tidy"]["raters"] == ["client", "therapist"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_sites": 0}, "n_sites must be a positive integer, got 0"),
        ({"n_sites": 2, "seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"n_sites": 2, "patients_per_site": 0}, "patients_per_site must be a positive"),
        ({"n_sites": 2, "patients_per_site": 20, "therapists_per_site": 8}, "at least 3 per"),
        ({"n_sites": 2, "patients_per_site": 12}, "inject_errors needs at least 14"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_sites(out_dir=tmp_path, **kwargs)


def test_two_hundred_sites_are_fast(tmp_path):
    import time

    start = time.perf_counter()
    simulate_sites(200, tmp_path, seed=1, patients_per_site=20, inject_errors=False)
    assert time.perf_counter() - start < 30  # about 5 s on a 2-core laptop
    assert len(list((tmp_path / "config" / "codebooks").glob("*.yaml"))) == 200


def test_snakemake_dry_run_lists_every_site(tmp_path):
    project = simulate_sites(20, tmp_path, seed=5, patients_per_site=20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(project),
            "--cores",
            "2",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in site_names(20):
        for path in ("ingest/ingest_report.json", "scores/scores.parquet", "describe/summary.json"):
            assert f"results/{name}/{path}" in result.stdout
    stats = result.stdout.split("Job stats:")[1]
    counts = dict(
        (line.split()[0], int(line.split()[1]))
        for line in stats.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert counts["ingest_items"] == counts["score"] == 20
    assert counts["describe"] == 21  # every site and the pooled data
