"""The test cluster's leftover configuration is removed, and nothing else is (in ``make test``)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import slurm_cluster


@pytest.fixture
def system_conf(tmp_path, monkeypatch):
    """``slurm_cluster.SYSTEM_CONF`` in a temporary folder, with no slurmctld running."""
    path = tmp_path / "slurm.conf"
    monkeypatch.setattr(slurm_cluster, "SYSTEM_CONF", path)
    no_controller = subprocess.CompletedProcess(["pgrep"], 1, b"", b"")
    monkeypatch.setattr(slurm_cluster.subprocess, "run", lambda *a, **k: no_controller)
    return path


def _age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_killed_test_clusters_conf_is_removed(system_conf):
    system_conf.write_text(slurm_cluster.CONF_MARK + "ClusterName=alliance\n")
    _age(system_conf, slurm_cluster.STALE_AFTER_S + 60)
    said = slurm_cluster.remove_stale_conf()
    assert not system_conf.exists()
    assert said is not None and "no slurmctld running" in said and "10 s" in said


@pytest.mark.parametrize(
    ("text", "age_s", "controller"),
    [
        ("ClusterName=site\n", 10_000, False),  # the machine's own configuration
        (slurm_cluster.CONF_MARK + "ClusterName=alliance\n", 5, False),  # being started
        (slurm_cluster.CONF_MARK + "ClusterName=alliance\n", 10_000, True),  # running
    ],
)
def test_anything_else_is_left_alone(system_conf, monkeypatch, text, age_s, controller):
    system_conf.write_text(text)
    _age(system_conf, age_s)
    if controller:
        found = subprocess.CompletedProcess(["pgrep"], 0, b"123\n", b"")
        monkeypatch.setattr(slurm_cluster.subprocess, "run", lambda *a, **k: found)
    assert slurm_cluster.remove_stale_conf() is None
    assert system_conf.read_text() == text


def test_no_conf_is_nothing_to_do(system_conf):
    assert slurm_cluster.remove_stale_conf() is None
