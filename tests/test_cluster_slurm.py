"""The workflow on a real one-node SLURM cluster, through snakemake-executor-plugin-slurm.

``make test-cluster`` runs it (marked ``cluster``; ``make test`` and ``make test-all`` leave it
out). It needs root and Debian's packages ``slurm-wlm`` and ``munge`` (installed with apt-get
when missing); without them it is skipped with the reason. The fixture starts ``munged`` (if
it is not running), ``slurmctld`` and ``slurmd`` with a minimal configuration in a temporary
folder (one node with this machine's CPUs and memory, no accounting database: the plugin then
checks job states with ``squeue``, which ``MinJobAge`` = 300 s keeps reliable; a copy at
``/etc/slurm/slurm.conf`` for the ``srun`` inside each job, see :data:`SYSTEM_CONF`), and stops
the daemons it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from workflow_support import (
    ROOT,
    SNAKEMAKE,
    deterministic_demo_project,
    manifest_problems,
    run_snakemake,
)

pytestmark = pytest.mark.cluster

SLURM_PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged")
#: Where every SLURM client looks for the configuration when ``SLURM_CONF`` is not set. Inside
#: each job, snakemake-executor-plugin-slurm-jobstep 0.6.1 runs the rule with ``srun`` in an
#: environment stripped of every ``SLURM_*`` variable but the job's identity, ``SLURM_CONF``
#: included, so ``srun`` finds the test cluster's configuration only here ("Could not establish
#: a configuration source" otherwise). The test writes it only where there is none, with
#: :data:`CONF_MARK` on its first line, and removes it afterwards.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
CONF_MARK = "# one-node test cluster of alliance-pipeline's tests/test_cluster_slurm.py\n"


def _skip_or_install() -> None:
    """Install slurm-wlm and munge with apt-get, or skip with the reason."""
    if all(Path(d).exists() for d in DAEMONS):
        return
    if os.geteuid() != 0:
        pytest.skip("a SLURM cluster needs root to install and start slurmctld/slurmd/munged")
    if shutil.which("apt-get") is None:
        pytest.skip("slurm-wlm and munge are not installed and there is no apt-get")
    done = subprocess.run(
        ["apt-get", "install", "-y", "-q", *SLURM_PACKAGES],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        check=False,
    )
    if done.returncode != 0 or not all(Path(d).exists() for d in DAEMONS):
        pytest.skip(f"apt-get install {' '.join(SLURM_PACKAGES)} failed: {done.stderr[-500:]}")


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ValueError("no MemTotal in /proc/meminfo")


def slurm_conf(folder: Path, host: str, cpus: int, memory_mb: int) -> str:
    """A one-node cluster: no accounting database, processes tracked without cgroups.

    Without cgroups a job's memory request is enforced by the accounting poller: every second
    (``JobAcctGatherFrequency``) it sums the resident memory of the job's processes and kills a
    job above its request (``OverMemoryKill``), as a cgroup-confined cluster would.
    """
    return f"""ClusterName=alliance
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _munge_running() -> bool:
    return (
        subprocess.run(["pgrep", "-x", "munged"], capture_output=True, check=False).returncode == 0
    )


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node SLURM cluster; yields the environment its clients need."""
    _skip_or_install()
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld and slurmd needs root")
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    host = socket.gethostname()
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text().startswith(CONF_MARK):
        pytest.skip(f"{SYSTEM_CONF} exists: this machine has a SLURM configuration of its own")
    text = CONF_MARK + slurm_conf(folder, host, os.cpu_count() or 1, _memory_mb() - 2048)
    conf = folder / "slurm.conf"
    conf.write_text(text)
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.write_text(text)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started_munge = False
    if not _munge_running():
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True)
        started_munge = True
    subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], env=env, check=True)
    subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], env=env, check=True)
    try:
        for _ in range(60):
            state = subprocess.run(
                ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, check=False
            ).stdout.strip()
            if state == "idle":
                break
            time.sleep(1)
        else:
            pytest.fail(f"the SLURM node did not become idle: {state!r}; see {folder}")
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True, check=False)
        if started_munge:
            subprocess.run(["pkill", "-x", "munged"], check=False)
        SYSTEM_CONF.unlink(missing_ok=True)


def _slurm_args(partition: str = "main") -> list[str]:
    return [
        "--workflow-profile",
        str(ROOT / "workflow" / "profiles" / "slurm"),
        "--default-resources",
        f"slurm_partition={partition}",
        "mem_mb=2000",
        "runtime=30",
        "cpus_per_task=1",
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "2",
        "--slurm-keep-successful-logs",
    ]


def test_demo_through_slurm_matches_the_manifest(tmp_path, slurm_cluster, monkeypatch):
    """The demo's deterministic stages, every job submitted with sbatch, run by slurmd and
    collected through squeue, reproduce the committed manifest as a local run does."""
    for name, value in slurm_cluster.items():
        monkeypatch.setenv(name, value)
    deterministic_demo_project(tmp_path)
    result = run_snakemake(tmp_path, *_slurm_args())
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
