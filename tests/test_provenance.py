"""Provenance: input hashes, git state, versions, seeds and benchmark timings."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from alliance import provenance

BENCH = (
    "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    "3.09\t0:00:03\t136.43\t1514.89\t69.79\t84.17\t0.00\t0.04\t19.42\t0.74\n"
)
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "config" / "codebooks").mkdir(parents=True)
    (root / "data" / "a.csv").write_text("x,y\n1,2\n")
    (root / "config" / "config.yaml").write_text("seed: 1\n")
    (root / "config" / "codebooks" / "a.yaml").write_text("dataset: a\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "alliance-pipeline"\ndependencies = ["numpy>=1", "pandas", '
        '"not-a-real-package-xyz"]\n'
    )
    return root


def test_sha256_equals_hashlib(tmp_path: Path, rng) -> None:
    path = tmp_path / "blob.bin"
    payload = rng.bytes(3_000_000)  # spans several read chunks
    path.write_bytes(payload)
    assert provenance.sha256_file(path) == hashlib.sha256(payload).hexdigest()


def test_sha256_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input file not found, got .*nope.csv"):
        provenance.sha256_file(tmp_path / "nope.csv")


def test_hash_inputs_relative_kinds_and_duplicates(repo: Path) -> None:
    rows = provenance.hash_inputs(
        ["data/a.csv", repo / "data" / "a.csv", "config/config.yaml", "config/codebooks/a.yaml"],
        repo,
    )
    assert [r["path"] for r in rows] == [
        "data/a.csv",
        "config/config.yaml",
        "config/codebooks/a.yaml",
    ]
    assert [r["kind"] for r in rows] == ["data", "config", "codebook"]
    assert rows[0]["bytes"] == 8
    assert rows[0]["sha256"] == hashlib.sha256(b"x,y\n1,2\n").hexdigest()


@needs_git
def test_git_state_detects_dirty_tree(repo: Path) -> None:
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    clean = provenance.git_state(repo)
    assert clean["dirty"] is False and clean["error"] is None
    assert len(clean["commit"]) == 40 and clean["untracked"] == 0
    (repo / "new.txt").write_text("untracked\n")
    assert provenance.git_state(repo)["dirty"] is False  # untracked files are counted apart
    assert provenance.git_state(repo)["untracked"] == 1
    (repo / "data" / "a.csv").write_text("x,y\n1,3\n")
    dirty = provenance.git_state(repo)
    assert dirty["dirty"] is True
    assert dirty["changed_files"] == ["data/a.csv"]
    assert dirty["commit"] == clean["commit"]


@needs_git
def test_git_state_outside_a_repository(tmp_path: Path) -> None:
    state = provenance.git_state(tmp_path)
    assert state["commit"] is None and state["dirty"] is None
    assert "not a git repository" in state["error"]


def test_git_state_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", missing)
    assert provenance.git_state(tmp_path)["error"] == "git is not installed"


def test_parse_benchmark(tmp_path: Path) -> None:
    path = tmp_path / "score.tsv"
    path.write_text(BENCH + "5.01\t0:00:05\t-\t-\t-\t-\t-\t-\t-\t1.26\n")
    out = provenance.parse_benchmark(path)
    assert out["runs"] == 2
    assert out["s"] == pytest.approx(4.05)
    assert out["s_max"] == pytest.approx(5.01)
    assert out["cpu_time"] == pytest.approx(1.0)
    assert out["max_rss_mb"] == pytest.approx(136.43)  # "-" (not measured) is skipped
    assert out["mean_load"] == pytest.approx(19.42)


def test_parse_benchmark_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="needs an 's' column"):
        provenance.parse_benchmark(path)


def test_find_seeds() -> None:
    config = {"seed": 7, "simulate": {"seed": 8}, "bayes": {"sampler": {"init_seed": 9}}, "x": 1}
    assert provenance.find_seeds(config) == {
        "seed": 7,
        "simulate.seed": 8,
        "bayes.sampler.init_seed": 9,
    }


def test_package_versions(repo: Path) -> None:
    versions = provenance.package_versions(repo)
    assert list(versions) == ["alliance-pipeline", "numpy", "pandas", "not-a-real-package-xyz"]
    import numpy

    assert versions["numpy"] == numpy.__version__
    assert versions["not-a-real-package-xyz"] is None


def test_collect_provenance(repo: Path) -> None:
    (repo / "results" / "site_a" / "benchmarks").mkdir(parents=True)
    (repo / "results" / "site_a" / "benchmarks" / "ingest.tsv").write_text(BENCH)
    config = {"seed": 20261125, "datasets": {"a": {"codebook": "config/codebooks/a.yaml"}}}
    out = provenance.collect_provenance(
        ["data/a.csv", "config/config.yaml", "config/codebooks/a.yaml"],
        config,
        repo,
        ["results/site_a/benchmarks/ingest.tsv", "results/site_a/benchmarks/gone.tsv"],
    )
    json.dumps(out, allow_nan=False)
    assert len(out["inputs"]) == 3
    assert out["seeds"] == {"seed": 20261125}
    assert out["config"] == config
    assert out["benchmarks"][0] | {"rule": "ingest", "missing": False} == out["benchmarks"][0]
    assert out["benchmarks"][0]["file"] == "results/site_a/benchmarks/ingest.tsv"
    assert out["benchmarks"][1] == {
        "rule": "gone",
        "file": "results/site_a/benchmarks/gone.tsv",
        "missing": True,
    }
    assert out["total_s"] == pytest.approx(3.09)
    assert out["python"]["version"].startswith("3.")
    assert out["platform"]["cpus"] >= 1
    assert out["packages"]["pandas"]
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        provenance.collect_provenance(["data/missing.csv"], config, repo, [])
