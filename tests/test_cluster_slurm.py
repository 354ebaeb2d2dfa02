"""The workflow on a real one-node SLURM cluster, through snakemake-executor-plugin-slurm.

``make test-cluster`` runs it (marked ``cluster``; ``make test`` and ``make test-all`` leave it
out). It needs root and Debian's packages ``slurm-wlm`` and ``munge`` (installed with apt-get
when missing); without them it is skipped with the reason. The fixture starts ``munged`` (if
it is not running), ``slurmctld`` and ``slurmd`` with a minimal configuration in a temporary
folder (one node with this machine's CPUs and memory, no accounting database: the plugin then
checks job states with ``squeue``, which ``MinJobAge`` = 300 s keeps reliable), and stops
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
from workflow_support import ROOT, deterministic_demo_project, manifest_problems, run_snakemake

pytestmark = pytest.mark.cluster

SLURM_PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged")


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
    """A one-node cluster: no accounting database, processes tracked without cgroups."""
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
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, host, os.cpu_count() or 1, _memory_mb() - 2048))
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
