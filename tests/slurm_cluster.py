"""A one-node SLURM cluster for the cluster tests and the bench: install, configure, start, stop.

:func:`one_node_cluster` installs Debian's ``slurm-wlm`` and ``munge`` with apt-get when missing,
starts ``munged`` (if it is not running), ``slurmctld`` and ``slurmd`` with a minimal
configuration (:func:`slurm_conf`) in a folder, yields the environment SLURM's clients need, and
stops the daemons it started. Where that is impossible (not root, no apt-get, the install failed,
a SLURM configuration of the machine's own) it raises :class:`ClusterUnavailable` with the
reason: the tests skip with it, the bench writes it in its row.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


#: How old a marked :data:`SYSTEM_CONF` must be, with no ``slurmctld`` running, to be a leftover:
#: :func:`one_node_cluster` starts the controller a few seconds after writing it.
STALE_AFTER_S = 120


def remove_stale_conf() -> str | None:
    """Remove the test cluster's :data:`SYSTEM_CONF` left by a run killed before it stopped.

    A run killed with SIGKILL (or a machine shut down) mid-test cannot remove the file. It then
    costs every later ``snakemake`` start 10 s: snakemake-executor-plugin-slurm (2.x) runs
    ``scontrol show config`` when it is imported, with a 10-s timeout, and ``scontrol`` waits that
    long for a controller that no longer runs (measured: ``import snakemake.cli`` 10.0 s against
    1.1 s; ``make test`` 344 s against 234 s). Only a file with :data:`CONF_MARK` on its first
    line, older than :data:`STALE_AFTER_S` and with no ``slurmctld`` running is removed: never a
    machine's own configuration or a running test cluster's.

    Returns
    -------
    str or None
        What was removed and why, or None when nothing was.
    """
    try:
        if not SYSTEM_CONF.read_text().startswith(CONF_MARK):
            return None
        age = time.time() - SYSTEM_CONF.stat().st_mtime
    except OSError:  # absent, or not readable by this user
        return None
    running = subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True, check=False)
    if age < STALE_AFTER_S or running.returncode == 0:
        return None
    try:
        SYSTEM_CONF.unlink()
    except OSError:  # not root: leave it, the message says why it matters
        return None
    return (
        f"removed {SYSTEM_CONF}, left by a killed cluster test ({age:.0f} s old, no slurmctld "
        "running): with it every snakemake start waited 10 s for scontrol"
    )


class ClusterUnavailable(RuntimeError):
    """This machine cannot run the one-node cluster; the message says why."""


def install() -> None:
    """Install slurm-wlm and munge with apt-get when missing (:class:`ClusterUnavailable`)."""
    if all(Path(d).exists() for d in DAEMONS):
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable("a SLURM cluster needs root to install and start its daemons")
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable("slurm-wlm and munge are not installed and there is no apt-get")
    done = subprocess.run(
        ["apt-get", "install", "-y", "-q", *SLURM_PACKAGES],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        check=False,
    )
    if done.returncode != 0 or not all(Path(d).exists() for d in DAEMONS):
        packages = " ".join(SLURM_PACKAGES)
        raise ClusterUnavailable(f"apt-get install {packages} failed: {done.stderr[-500:]}")


def memory_mb() -> int:
    """This machine's memory in MiB (``MemTotal``)."""
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


@contextmanager
def one_node_cluster(folder: Path) -> Iterator[dict[str, str]]:
    """A running one-node cluster with its state in ``folder``; yields its clients' environment.

    Raises
    ------
    ClusterUnavailable
        When the cluster cannot be installed or started here (the reason in the message).
    RuntimeError
        When the started node does not become idle within a minute.
    """
    install()
    if os.geteuid() != 0:
        raise ClusterUnavailable("starting slurmctld and slurmd needs root")
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text().startswith(CONF_MARK):
        raise ClusterUnavailable(f"{SYSTEM_CONF} exists: this machine has a SLURM configuration")
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    text = CONF_MARK + slurm_conf(folder, host, os.cpu_count() or 1, memory_mb() - 2048)
    conf = folder / "slurm.conf"
    conf.write_text(text)
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.write_text(text)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started_munge = False
    try:
        if not _munge_running():
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True)
            started_munge = True
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], env=env, check=True)
        subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], env=env, check=True)
        state = ""
        for _ in range(60):
            state = subprocess.run(
                ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, check=False
            ).stdout.strip()
            if state == "idle":
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"the SLURM node did not become idle: {state!r}; see {folder}")
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True, check=False)
        if started_munge:
            subprocess.run(["pkill", "-x", "munged"], check=False)
        SYSTEM_CONF.unlink(missing_ok=True)


def slurm_args(profile: Path, partition: str = "main") -> list[str]:
    """Snakemake options for the one-node cluster with the SLURM ``profile`` folder."""
    return [
        "--workflow-profile",
        str(profile),
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
