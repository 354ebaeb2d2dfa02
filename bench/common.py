"""Shared machinery of the benchmark suite: registry, measurement, machine facts, Markdown table."""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024**2
#: What :func:`snapshot_workflow` copies: everything a Snakemake run reads from the repository.
SNAPSHOT_ITEMS = ("Snakefile", "workflow", "scripts", "src", "environment.yml", "config", "data")
#: The workflow the benchmarks run: the repository, or a snapshot of it (see snapshot_workflow).
_WORKFLOW: dict[str, Path] = {"root": ROOT}

#: Benchmark modules imported by :func:`discover`; the optional ones are written by the CFA and
#: Bayesian work and are skipped (not an error) while they do not exist.
MODULES = ("bench.pipeline_scale", "bench.ingest_speed", "bench.test_suite")
OPTIONAL_MODULES = (
    "bench.cfa_speed",
    "bench.bayes_speed",
    "bench.latent_speed",
    "bench.calibration_speed",
    "bench.meta_speed",
    "bench.panel_speed",
    "bench.longinv_speed",
    "bench.twolevel_speed",
    "bench.irt_speed",
    "bench.bsem_speed",
    "bench.slurm_speed",
)


@dataclass
class Row:
    """One line of the results table.

    Attributes
    ----------
    suite
        The registered benchmark that produced the row (``pipeline``, ``ingest``, ``cfa``, ...).
    step
        What was measured, for example ``full run`` or ``ML fit``.
    size
        The problem size in words, for example ``200 sites`` or ``100,000 rows``.
    wall_s
        Wall time in seconds (``None`` when not measured).
    per_unit
        A derived rate as text, for example ``4.1 s/site`` or ``120,000 rows/s``.
    peak_mib
        Peak memory in MiB (``None`` when not measured); ``memory_method`` says how.
    memory_method
        How ``peak_mib`` was measured (a short phrase).
    target
        The target this row is checked against, as text (empty when none).
    status
        ``met``, ``GAP`` or empty.
    notes
        Anything else a reader needs (free text, kept short).
    versions
        Extra package versions relevant to the row (for example ``{"semopy": "2.3"}``).
    """

    suite: str
    step: str
    size: str
    wall_s: float | None = None
    per_unit: str = ""
    peak_mib: float | None = None
    memory_method: str = ""
    target: str = ""
    status: str = ""
    notes: str = ""
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    """Options and shared state handed to every benchmark function.

    Attributes
    ----------
    workdir
        Scratch folder for generated projects and outputs (kept after the run).
    cores
        ``--cores`` for Snakemake runs.
    sites
        Site counts for the pipeline benchmark (full runs).
    dag_sites
        Site counts measured without a full run: parse, DAG build and a no-op rerun on stubbed
        outputs (cheap checks of how the DAG scales, e.g. 200 or 1000 sites).
    ingest_rows
        Row counts for the ingest benchmark.
    seed
        Seed of every generated data set.
    quick
        A smoke run: benchmarks should pick their smallest sizes.
    profile
        Profile the DAG build at the largest site count.
    options
        Free-form ``key=value`` options from ``--option`` for benchmarks written later
        (for example ``cfa_rows=600,100000``).
    pipeline_config
        Config keys merged over the synthetic project's config (the scale config of later stages).
    extra_sections
        Markdown sections a benchmark adds below the table (for example a profile).
    on_partial
        Set by the runner: called by :meth:`checkpoint` with a benchmark's rows so far.
    """

    workdir: Path
    cores: int = 2
    sites: list[int] = field(default_factory=lambda: [1, 10, 50, 200])
    ingest_rows: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000])
    dag_sites: list[int] = field(default_factory=list)
    seed: int = 20261125
    quick: bool = False
    profile: bool = True
    options: dict[str, str] = field(default_factory=dict)
    pipeline_config: dict[str, Any] = field(default_factory=dict)
    extra_sections: list[str] = field(default_factory=list)
    on_partial: Callable[[list[Row]], None] | None = None

    def checkpoint(self, rows: list[Row]) -> None:
        """Hand the rows measured so far to the runner (it rewrites RESULTS.md with them)."""
        if self.on_partial is not None:
            self.on_partial(list(rows))

    def ints(self, key: str, default: Sequence[int]) -> list[int]:
        """Return option ``key`` parsed as comma-separated integers, or ``default``."""
        if key not in self.options:
            return list(default)
        return parse_ints(self.options[key], key)


BenchFunction = Callable[[Context], list[Row]]


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: its name, order in the table and function."""

    name: str
    order: int
    description: str
    function: BenchFunction


REGISTRY: dict[str, Benchmark] = {}


def register(name: str, order: int = 100, description: str = "") -> Callable:
    """Register a benchmark function under ``name`` (the hook for new benchmarks).

    Parameters
    ----------
    name
        Unique name, also the ``suite`` of its rows and the value ``--only`` selects.
    order
        Position in the table (lower first): pipeline 10, ingest 20, cfa 30, bayes 40.
    description
        One line for ``python -m bench.run --list``.

    Returns
    -------
    callable
        A decorator that registers and returns the function unchanged. The function takes a
        :class:`Context` and returns a list of :class:`Row`.

    Examples
    --------
    >>> @register("cfa", order=30, description="CFA time by estimator and rows")
    ... def cfa(ctx: Context) -> list[Row]:
    ...     return [Row("cfa", "ML fit", "600 rows", wall_s=0.1)]
    """

    def decorate(function: BenchFunction) -> BenchFunction:
        if name in REGISTRY and REGISTRY[name].function is not function:
            raise ValueError(f"benchmark name already registered, got {name!r}")
        REGISTRY[name] = Benchmark(name, order, description or (function.__doc__ or ""), function)
        return function

    return decorate


def discover() -> dict[str, str]:
    """Import the benchmark modules so they register; return optional modules that are absent.

    Returns
    -------
    dict
        Module name -> reason it was skipped (not written yet, or an import error).
    """
    skipped: dict[str, str] = {}
    for module in MODULES:
        importlib.import_module(module)
    for order, module in enumerate(OPTIONAL_MODULES, start=3):
        before = set(REGISTRY)
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                skipped[module] = "not present"
            else:
                skipped[module] = f"import failed: {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 - another team's module must not stop the run
            skipped[module] = f"import failed: {type(exc).__name__}: {exc}"
            continue
        if set(REGISTRY) == before and callable(getattr(imported, "main", None)):
            short = module.rsplit(".", 1)[-1].removesuffix("_speed")
            register(short, order=10 * order, description=f"{module} --json (adapter)")(
                json_adapter(module, short)
            )
    return skipped


def json_adapter(module: str, suite: str) -> BenchFunction:
    """Wrap a stand-alone benchmark script that writes a list of JSON rows with ``--json PATH``.

    The script runs as ``python -m <module> --json <file> [--option <suite>_args=...]`` in the
    repository root; each JSON object becomes a :class:`Row`: ``step`` from ``sampler``,
    ``estimator``, ``model`` or ``step``; ``size`` from ``dataset``, ``n`` or ``size``; wall
    time from ``total_s`` or ``wall_s``; every other key goes to the notes. A script that
    registers its own function (see bench/README.md) gets full control of its rows instead.
    """

    def run(ctx: Context) -> list[Row]:
        out = ctx.workdir / f"{suite}.json"
        out.unlink(missing_ok=True)
        extra = shlex.split(ctx.options.get(f"{suite}_args", ""))
        command = [sys.executable, "-m", module, "--json", str(out), *extra]
        result = run_measured(command, cwd=ROOT, env=clean_env())
        if result.returncode != 0 or not out.is_file():
            tail = " / ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
            return [Row(suite, module, "", wall_s=result.wall_s, status="FAILED", notes=tail)]
        records = json.loads(out.read_text())
        rows = []
        for record in records if isinstance(records, list) else [records]:
            rec = dict(record)
            step = next((str(rec.pop(k)) for k in ("sampler", "estimator", "model", "step")
                         if k in rec), module)  # fmt: skip
            size = next((str(rec.pop(k)) for k in ("dataset", "n", "size") if k in rec), "")
            wall = next((float(rec.pop(k)) for k in ("total_s", "wall_s") if k in rec), None)
            status = str(rec.pop("status", ""))
            notes = "; ".join(f"{k} {v}" for k, v in rec.items() if v not in (None, [], ""))
            rows.append(Row(suite, step, size, wall_s=wall, status=status, notes=notes))
        if rows:
            rows[
                -1
            ].notes += f" (whole script: {result.wall_s:.0f} s, peak {result.peak_mib:.0f} MiB)"
        return rows

    run.__doc__ = f"{module} run as a script with --json (adapter)."
    return run


def parse_ints(text: str, label: str) -> list[int]:
    """Parse ``"1,10,50"`` (``k`` suffix allowed: ``"10k"``) into positive integers."""
    values = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        factor = 1000 if part.endswith("k") else 1
        try:
            value = int(part.removesuffix("k")) * factor
        except ValueError:
            raise ValueError(f"{label} must be comma-separated integers, got {text!r}") from None
        if value < 1:
            raise ValueError(f"{label} must be positive, got {text!r}")
        values.append(value)
    return values


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    """Cores, memory and CPU of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cores": affinity or os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / 1024**3,
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
    }


def versions() -> dict[str, str]:
    """Versions of Python and the packages every row depends on."""
    out = {"python": platform.python_version()}
    for package in ("snakemake", "numpy", "pandas"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "absent"
    return out


def package_version(name: str) -> str:
    """The installed version of ``name``, or ``absent``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def machine_label(info: dict[str, Any]) -> str:
    """``2 cores, 23.4 GiB``."""
    return f"{info['cores']} cores, {info['memory_gib']:.1f} GiB"


def versions_label(base: dict[str, str], extra: dict[str, str]) -> str:
    """``Py 3.11.7, snakemake 9.1, numpy 2.4, pandas 3.1`` plus any extra packages."""
    merged = {**base, **extra}
    parts = [f"Py {merged.pop('python')}"] + [f"{k} {v}" for k, v in merged.items()]
    return ", ".join(parts)


# --------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    """A finished command: wall time, sampled peak memory of its process tree, its output."""

    wall_s: float
    peak_mib: float
    returncode: int
    stdout: str
    stderr: str


def _tree_rss(proc: psutil.Process) -> int:
    """Sum of the resident set sizes of a process and all its descendants (bytes)."""
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def run_measured(
    command: Sequence[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    interval: float = 0.1,
    timeout: float | None = None,
) -> Measured:
    """Run ``command``; measure wall time and the peak summed RSS of its process tree.

    The tree (the command and every descendant, e.g. Snakemake and its jobs) is sampled every
    ``interval`` seconds with psutil; processes shorter than one interval can be missed, and
    shared pages are counted once per process (an upper bound on physical use).
    """
    start = time.perf_counter()
    proc = psutil.Popen(
        list(command),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc))
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    finally:
        stop.set()
        sampler.join()
    wall = time.perf_counter() - start
    return Measured(wall, peak / MIB, proc.returncode, stdout, stderr)


def snapshot_workflow(dest: Path) -> Path:
    """Copy the Snakefile, rules, scripts, library, config and demo data to ``dest`` for the run.

    Other people may edit the working tree while a long benchmark runs; the copy keeps every
    size measuring the same workflow and library. Child processes import ``alliance`` from
    ``dest/src`` (``PYTHONPATH``, ahead of the editable install).
    """
    dest = Path(dest).resolve()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake", "results")
    for name in SNAPSHOT_ITEMS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, dest / name)
    _WORKFLOW["root"] = dest
    return dest


def workflow_root() -> Path:
    """The folder whose Snakefile and src/ the benchmarks run (the repository or a snapshot)."""
    return _WORKFLOW["root"]


def git_state() -> str:
    """``<commit> + N uncommitted files`` of the repository, or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.splitlines()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'} + {len(dirty)} uncommitted files"


def clean_env() -> dict[str, str]:
    """The environment for child runs: no SNAKEMAKE_* settings, bytecode caches on, venv first.

    When a snapshot is in use, its ``src`` comes first on ``PYTHONPATH``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches: pymc imports 3x faster
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    if workflow_root() != ROOT:
        paths = [str(workflow_root() / "src"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def snakemake_command(project: Path, *args: str) -> list[str]:
    """``python -m snakemake`` on the benchmarked Snakefile in ``project``.

    With the workflow's default profile (``workflow/profiles/default``), as ``make demo`` runs
    it: its scheduler setting (``max-jobs-per-timespan``) keeps Snakemake's own CPU linear in
    the number of sites; ``args`` (e.g. ``--cores``) override the profile.
    """
    root = workflow_root()
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(root / "Snakefile"),
        "--workflow-profile",
        str(root / "workflow" / "profiles" / "default"),
        "--directory",
        str(project),
        *args,
    ]


def load_average() -> str:
    """The 1/5/15-minute load average (other work on the machine inflates wall times)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # pragma: no cover - not on Linux/macOS
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


# --------------------------------------------------------------------------- table


def read_table(path: Path) -> list[Row]:
    """Read the rows back from a RESULTS.md written by :func:`markdown_table` (for ``--merge``)."""
    rows: list[Row] = []
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| ") or line.startswith("| Suite |"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 11:
            continue
        suite, step, size, wall, per_unit, memory, target, status, notes = cells[:9]
        match = re.match(r"([\d,.]+)\s*(?:\((.*)\))?$", memory)
        rows.append(
            Row(
                suite,
                step,
                size,
                wall_s=float(wall.replace(",", "")) if wall else None,
                per_unit=per_unit,
                peak_mib=float(match.group(1).replace(",", "")) if match else None,
                memory_method=(match.group(2) or "") if match else "",
                target=target,
                status=status,
                notes=notes,
            )
        )
    return rows


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Row], info: dict[str, Any], base_versions: dict[str, str]) -> str:
    """Render rows as a Markdown table; each row names the machine and the versions."""
    header = [
        "Suite",
        "Step",
        "Size",
        "Wall (s)",
        "Per unit",
        "Peak memory (MiB)",
        "Target",
        "Status",
        "Notes",
        "Machine",
        "Versions",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    label = machine_label(info)
    for row in rows:
        cells = [
            row.suite,
            row.step,
            row.size,
            _cell(row.wall_s),
            row.per_unit,
            _cell(row.peak_mib, 0) + (f" ({row.memory_method})" if row.memory_method else ""),
            row.target,
            row.status,
            row.notes,
            label,
            versions_label(base_versions, row.versions),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)
