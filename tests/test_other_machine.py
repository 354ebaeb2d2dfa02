"""The demo on "another machine": every compiled path built for an older CPU (issue 13).

``make test-machine`` runs the whole demo (Bayesian stages on) with OpenBLAS's kernels, NumPy's
SIMD loops, numba's and g++'s code for the CPU tier below this host's and another BLAS thread
count (``tests/other_machine.py``), from an empty compile cache, and checks it against the
committed manifest as ``make verify`` does: deterministic numbers within their tolerances,
Monte Carlo numbers within their Monte Carlo error. The two short tests here (``make test``)
check that the tier is chosen by the host's CPU and that each switch takes effect.
"""

from __future__ import annotations

import pytest
from other_machine import (
    TIERS,
    MachineUnavailable,
    describe_machine,
    host_cpu_flags,
    other_machine_env,
    pick_tier,
)
from workflow_support import ROOT, demo_project, manifest_problems, run_snakemake

SKYLAKE_X = frozenset(
    {"sse4_2", "popcnt", "avx", "avx2", "fma", "bmi2", "f16c", "movbe", "avx512f"}
)
ZEN_3 = SKYLAKE_X - {"avx512f"}


def test_the_machine_acted_is_the_tier_below_the_host():
    """An AVX-512 host acts as an AVX2 machine, an AVX2 host as an AVX one; a host with neither
    has no tier below it."""
    assert pick_tier(SKYLAKE_X).cpu == "haswell"
    assert pick_tier(ZEN_3).cpu == "sandybridge"
    with pytest.raises(MachineUnavailable, match="neither AVX-512 nor AVX2"):
        pick_tier(frozenset({"sse4_2", "avx"}))
    # a tier is acted only where the host can run its code
    with pytest.raises(MachineUnavailable, match="no older tier"):
        pick_tier(frozenset({"avx512f"}))
    assert [t.above for t in TIERS] == ["avx512f", "avx2"]


@pytest.mark.parametrize("tier", TIERS, ids=[t.cpu for t in TIERS])
def test_every_compiled_path_acts_as_the_other_cpu(tmp_path, tier):
    """In a process with the environment, OpenBLAS runs the tier's kernels on one thread, NumPy
    dispatches only the tier's SIMD targets, numba targets the tier's CPU with its own feature
    set (not the host's), and PyTensor compiles its C code with the tier's ``-march``; for each
    tier this host can run (the demo test uses the newest one below the host)."""
    try:
        host_flags = host_cpu_flags()
    except MachineUnavailable as exc:
        pytest.skip(str(exc))
    if not tier.needs <= host_flags:
        pytest.skip(
            f"this CPU cannot run {tier.cpu} code (lacks {sorted(tier.needs - host_flags)})"
        )
    chosen, env = other_machine_env(tmp_path / "compiledir", flags=tier.needs | {tier.above})
    assert chosen == tier
    report = describe_machine(env)
    assert report["openblas"] == [tier.openblas]
    assert report["openblas_threads"] == [1]
    assert set(report["numpy_dispatch"]) <= tier.numpy_targets
    assert report["numba_cpu"] == tier.cpu
    assert report["numba_features"] == ""
    assert report["pytensor_cxxflags"] == f"-march={tier.cpu}"
    host = describe_machine({k: v for k, v in env.items() if k not in _SWITCHES})
    assert host["openblas"] != report["openblas"]
    assert host["numba_cpu"] != tier.cpu


_SWITCHES = (
    "OPENBLAS_CORETYPE",
    "NPY_DISABLE_CPU_FEATURES",
    "NUMBA_CPU_NAME",
    "NUMBA_CPU_FEATURES",
    "OPENBLAS_NUM_THREADS",
    "PYTENSOR_FLAGS",
)


@pytest.mark.other_machine
def test_demo_on_another_machine_matches_the_manifest(tmp_path, monkeypatch):
    """``make demo``'s whole project, Bayesian stages on, run as on an older CPU from an empty
    compile cache, reproduces the committed manifest (deterministic numbers within their
    tolerances, posterior summaries within their Monte Carlo error, diagnostics passing)."""
    try:
        _, env = other_machine_env(tmp_path / "compiledir")
    except MachineUnavailable as exc:
        pytest.skip(str(exc))
    for name in _SWITCHES:
        monkeypatch.setenv(name, env[name])
    project = tmp_path / "project"
    demo_project(project)
    profile = ROOT / "workflow" / "profiles" / "default"
    # a machine's first run compiles every model: allow 40 minutes
    result = run_snakemake(project, "--workflow-profile", str(profile), timeout=2400)
    assert result.returncode == 0, result.stderr[-3000:]
    bad = manifest_problems(project / "results")
    assert bad.empty, bad.head(20).to_string()
