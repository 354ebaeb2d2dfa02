"""The workflow on a real one-node SLURM cluster, through snakemake-executor-plugin-slurm.

``make test-cluster`` runs it (marked ``cluster``; ``make test`` and ``make test-all`` leave it
out; the cluster itself is ``tests/slurm_cluster.py``, shared with ``bench/slurm_speed.py``). It
needs root and Debian's packages ``slurm-wlm`` and ``munge`` (installed with apt-get
when missing); without them it is skipped with the reason. The fixture starts ``munged`` (if
it is not running), ``slurmctld`` and ``slurmd`` with a minimal configuration in a temporary
folder (one node with this machine's CPUs and memory, no accounting database: the plugin then
checks job states with ``squeue``, which ``MinJobAge`` = 300 s keeps reliable; a copy at
``/etc/slurm/slurm.conf`` for the ``srun`` inside each job, see ``slurm_cluster.SYSTEM_CONF``),
and stops the daemons it started.
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from slurm_cluster import ClusterUnavailable, one_node_cluster, slurm_args
from workflow_support import (
    ROOT,
    SNAKEMAKE,
    demo_project,
    deterministic_demo_project,
    manifest_problems,
    run_snakemake,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node SLURM cluster; yields the environment its clients need."""
    with ExitStack() as stack:
        try:
            env = stack.enter_context(one_node_cluster(tmp_path_factory.mktemp("slurm")))
        except ClusterUnavailable as exc:
            pytest.skip(str(exc))
        yield env


def _slurm_args(partition: str = "main") -> list[str]:
    return slurm_args(ROOT / "workflow" / "profiles" / "slurm", partition)


def test_demo_through_slurm_matches_the_manifest(tmp_path, slurm_cluster, monkeypatch):
    """The whole demo (``make demo``'s project, Bayesian stages on), every job submitted with
    sbatch within its declared memory, run by slurmd and collected through squeue, reproduces
    the committed manifest as a local run does (Monte Carlo numbers within their MCSE)."""
    for name, value in slurm_cluster.items():
        monkeypatch.setenv(name, value)
    demo_project(tmp_path)
    # the Bayesian fits compile their models on a machine's first run: allow 40 minutes
    result = run_snakemake(tmp_path, *_slurm_args(), timeout=2400)
    assert result.returncode == 0, result.stderr[-3000:]
    submitted = result.stderr.count("has been submitted with SLURM jobid")
    assert submitted > 20, result.stderr[-3000:]
    # every job ran under slurmd and left its SLURM log (rule_<name>/<wildcards>/<jobid>.log)
    logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) == submitted
    bad = manifest_problems(tmp_path / "results")
    assert bad.empty, bad.head(20).to_string()


#: The faults test's targets: site_b's ingest (run over its memory request) and site_a's WLSMV
#: CFA fits (cancelled while running; its ingest runs first and completes).
INGEST_B = "results/site_b/ingest/items.parquet"
CFA_A = "results/site_a/cfa/fits/correlated_WLSMV.json"


def _squeue(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of every job slurmctld still knows."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%T|%k"],
        env=env, capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return [tuple(line.split("|", 2)) for line in out.splitlines() if line.count("|") == 2]


def _cancel_when_running(env: dict[str, str], rule: str, proc: subprocess.Popen) -> str:
    """Wait for a job of ``rule`` to run, ``scancel`` it; its SLURM job ID."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        for job_id, state, comment in _squeue(env):
            if comment.startswith(f"rule_{rule}") and state == "RUNNING":
                subprocess.run(["scancel", job_id], env=env, check=True)
                return job_id
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no job of rule {rule} was seen running: {_squeue(env)}")


def _verified_numbers(results: Path) -> int:
    """The manifest's numbers in the files of ``results``; fails on any mismatch."""
    import json

    from alliance.verify import verify

    manifest = json.loads((ROOT / "verification" / "demo_manifest.json").read_text())
    checked = verify(results, manifest)
    produced = {p.relative_to(results).as_posix() for p in results.rglob("*")}
    checked = checked[checked["file"].isin(produced)]
    bad = checked[checked["status"].isin(["mismatch", "missing"])]
    assert bad.empty, bad.head(20).to_string()
    return len(checked)


def test_cancelled_and_out_of_memory_jobs_are_named_and_a_rerun_completes(
    tmp_path, slurm_cluster, monkeypatch
):
    """A job over its memory request and a job killed by ``scancel`` while it runs: Snakemake
    names the rule, the SLURM state and the rule's log, leaves none of the job's outputs
    behind, and a rerun finishes the DAG with the manifest's numbers."""
    for name, value in slurm_cluster.items():
        monkeypatch.setenv(name, value)
    deterministic_demo_project(tmp_path)
    # 1. over memory: a Python process with pandas is far above 20 MB
    over = run_snakemake(tmp_path, *_slurm_args(), "--set-resources", "ingest_items:mem_mb=20",
                         "--", INGEST_B)  # fmt: skip
    assert over.returncode != 0
    assert "Error in rule ingest_items" in over.stderr, over.stderr[-3000:]
    assert "results/site_b/logs/ingest.log" in over.stderr
    # squeue reports the killed job as FAILED (the reason needs sacct, i.e. slurmdbd); the
    # job's SLURM log, which Snakemake names, says why
    (slurm_log,) = (tmp_path / ".snakemake" / "slurm_logs" / "rule_ingest_items").rglob("*.log")
    assert str(slurm_log) in over.stderr, over.stderr[-3000:]
    assert "Exceeded job memory limit" in slurm_log.read_text()
    assert not (tmp_path / "results" / "site_b" / "ingest").exists() or not any(
        (tmp_path / "results" / "site_b" / "ingest").iterdir()
    )
    # 2. cancelled while running
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    command = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path)]
    console = tmp_path / "cancelled_run.txt"  # a file, not a pipe nobody reads while we wait
    with (
        console.open("w") as out,
        subprocess.Popen(
            [*command, *_slurm_args(), "--", CFA_A], stdout=out, stderr=out, text=True, env=env
        ) as proc,
    ):
        job_id = _cancel_when_running(slurm_cluster, "cfa_fit", proc)
        proc.wait(timeout=600)
    stderr = console.read_text()
    assert proc.returncode != 0
    assert "Error in rule cfa_fit" in stderr, stderr[-3000:]
    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED'" in stderr, stderr[-3000:]
    assert "results/site_a/logs/cfa_fit_WLSMV.log" in stderr
    fits = tmp_path / "results" / "site_a" / "cfa" / "fits"
    assert not fits.exists() or not any(fits.iterdir()), sorted(fits.iterdir())
    assert (tmp_path / "results" / "site_a" / "ingest" / "items.parquet").exists()
    # 3. the rerun finishes both targets; nothing is left incomplete
    rerun = run_snakemake(tmp_path, *_slurm_args(), "--", INGEST_B, CFA_A)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "has been submitted with SLURM jobid" in rerun.stderr
    assert (tmp_path / "results" / "site_b" / "ingest" / "items.parquet").exists()
    assert _verified_numbers(tmp_path / "results") > 100
    summary = run_snakemake(tmp_path, "--cores", "1", "--summary", "--", INGEST_B, CFA_A)
    assert "incomplete" not in summary.stdout, summary.stdout
