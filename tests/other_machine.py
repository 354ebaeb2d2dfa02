"""Another machine on this one: every compiled path of the workflow built for an older CPU.

A reviewer's machine differs from the one that made the manifest in what its compiled code
does, not in the Python: OpenBLAS picks its kernels by CPU (``DYNAMIC_ARCH``), NumPy dispatches
its SIMD loops by CPU, numba (nutpie's log densities) and g++ (PyTensor's C code) compile for
the CPU they run on, and OpenBLAS starts as many threads as the machine has cores. Each of these
can be told to act as another CPU, so a run on this machine can stand for a run on a reviewer's:

* ``OPENBLAS_CORETYPE``: the kernels OpenBLAS would pick on that CPU (BLAS and LAPACK of NumPy
  and SciPy; threadpoolctl reports the architecture in use);
* ``NPY_DISABLE_CPU_FEATURES``: NumPy's SIMD loops of the targets that CPU lacks switched off;
* ``NUMBA_CPU_NAME`` with an empty ``NUMBA_CPU_FEATURES``: numba generates code for that CPU's
  instruction set (the name alone keeps the host's features, AVX-512 included);
* ``gcc__cxxflags=-march=...`` in ``PYTENSOR_FLAGS``: PyTensor's C modules for that CPU (a
  user's ``-march`` replaces the one PyTensor derives from ``-march=native``), in a fresh
  ``base_compiledir`` so that nothing compiled for this CPU is loaded from a cache;
* ``OPENBLAS_NUM_THREADS=1``: another thread count (OpenBLAS caps the count at the machine's
  cores, so a larger machine cannot be acted; one thread is the count that differs from a
  multi-core host's).

:func:`other_machine_env` picks the tier below the host's (:data:`TIERS`): on a host with
AVX-512, an AVX2 machine (Intel Haswell to Alder Lake, AMD Zen 1 to 3: most laptops and
servers a reviewer has); on a host with AVX2 but no AVX-512, an AVX machine without AVX2 and
FMA (Intel Sandy Bridge). Elsewhere (older x86-64, ARM, not Linux) it raises
:class:`MachineUnavailable` with the reason. What it cannot change: the operating system, the
C library's ``libm`` and the Python build, which a real other machine may also differ in.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class MachineUnavailable(RuntimeError):
    """This host cannot stand for another machine; the message says why."""


@dataclass(frozen=True)
class Tier:
    """An older x86-64 CPU that a host with the ``above`` flag can act as."""

    #: what machine it stands for
    machine: str
    #: a /proc/cpuinfo flag of the host that this tier lacks (the host must be newer)
    above: str
    #: /proc/cpuinfo flags the tier needs (the host must have them to run its code)
    needs: frozenset[str]
    #: OPENBLAS_CORETYPE
    openblas: str
    #: LLVM CPU name (NUMBA_CPU_NAME) and g++ -march
    cpu: str
    #: NumPy dispatch targets this CPU has (all others are disabled)
    numpy_targets: frozenset[str]


#: Newest first: the first tier the host is above is used.
TIERS = (
    Tier(
        machine="an AVX2 machine without AVX-512 (Intel Haswell to Alder Lake, AMD Zen 1-3)",
        above="avx512f",
        needs=frozenset({"avx2", "fma", "bmi2", "f16c", "movbe"}),
        openblas="Haswell",
        cpu="haswell",
        numpy_targets=frozenset({"X86_V3", "AVX2", "FMA3", "F16C", "AVX"}),
    ),
    Tier(
        machine="an AVX machine without AVX2 or FMA (Intel Sandy Bridge)",
        above="avx2",
        needs=frozenset({"avx", "sse4_2", "popcnt"}),
        openblas="Sandybridge",
        cpu="sandybridge",
        numpy_targets=frozenset({"AVX"}),
    ),
)


def host_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU flags of the host (the first ``flags`` line of ``/proc/cpuinfo``)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise MachineUnavailable(
            f"emulating another machine needs an x86-64 host, got {platform.machine()!r}"
        )
    try:
        text = cpuinfo.read_text()
    except OSError as exc:
        raise MachineUnavailable(f"cannot read the CPU flags from {cpuinfo}: {exc}") from exc
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    raise MachineUnavailable(f"no 'flags' line in {cpuinfo}")


def pick_tier(flags: frozenset[str]) -> Tier:
    """The newest tier of :data:`TIERS` below a host with these CPU flags."""
    for tier in TIERS:
        if tier.above in flags and tier.needs <= flags:
            return tier
    raise MachineUnavailable(
        "the host has neither AVX-512 nor AVX2, so there is no older tier of "
        f"{[t.cpu for t in TIERS]} to act as"
    )


def numpy_dispatch_targets() -> list[str]:
    """NumPy's runtime-dispatched SIMD targets in this build."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    return list(__cpu_dispatch__)


def other_machine_env(
    compiledir: Path, base: dict[str, str] | None = None, flags: frozenset[str] | None = None
) -> tuple[Tier, dict[str, str]]:
    """The tier and the environment (``base``, default ``os.environ``) that make the workflow's
    compiled code act as that tier's CPU, compiling into ``compiledir``."""
    tier = pick_tier(host_cpu_flags() if flags is None else flags)
    env = dict(os.environ if base is None else base)
    disabled = [t for t in numpy_dispatch_targets() if t not in tier.numpy_targets]
    pytensor = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f]
    pytensor = [f for f in pytensor if not f.startswith(("base_compiledir=", "gcc__cxxflags="))]
    env.update(
        OPENBLAS_CORETYPE=tier.openblas,
        NPY_DISABLE_CPU_FEATURES=" ".join(disabled),
        NUMBA_CPU_NAME=tier.cpu,
        NUMBA_CPU_FEATURES="",
        OPENBLAS_NUM_THREADS="1",
        PYTENSOR_FLAGS=",".join(
            [*pytensor, f"base_compiledir={compiledir}", f"gcc__cxxflags=-march={tier.cpu}"]
        ),
    )
    return tier, env


#: Run in a process with the environment: what its compiled paths will use.
_REPORT = """
import json
import numba.core.codegen as codegen
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS too)
from threadpoolctl import threadpool_info
from numba.core import config
import pytensor
cg = codegen.JITCPUCodegen("report")
blas = [i for i in threadpool_info() if i["internal_api"] == "openblas"]
print(json.dumps({
    "openblas": sorted({i.get("architecture") for i in blas}),
    "openblas_threads": sorted({i["num_threads"] for i in blas}),
    "numpy_dispatch": sorted(t for t in __cpu_dispatch__ if __cpu_features__.get(t)),
    "numba_cpu": cg._get_host_cpu_name(),
    "numba_features": cg._get_host_cpu_features(),
    "pytensor_cxxflags": pytensor.config.gcc__cxxflags,
}))
"""


def describe_machine(env: dict[str, str]) -> dict[str, object]:
    """What a process with ``env`` uses: OpenBLAS architecture and threads, NumPy's enabled
    dispatch targets, numba's target CPU and features, PyTensor's g++ flags."""
    out = subprocess.run(
        [sys.executable, "-c", _REPORT], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"the machine report failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
