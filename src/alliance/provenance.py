"""Provenance record of a run: input hashes, code version, software, seeds, platform, timings."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file's bytes, read in 1 MiB chunks.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.

    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file not found, got {str(p)!r}")
    digest = hashlib.sha256()
    with p.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _kind(path: Path) -> str:
    """Classify an input by where it lives: config, codebook, instrument or data."""
    parts = {p.lower() for p in path.parts}
    if path.suffix.lower() in (".yaml", ".yml"):
        if "codebooks" in parts:
            return "codebook"
        if "instruments" in parts:
            return "instrument"
        if path.name.lower().startswith("config"):
            return "config"
    return "data"


def hash_inputs(inputs: Iterable[str | Path], project_root: str | Path) -> list[dict[str, Any]]:
    """SHA-256, size and kind of every input file (duplicates removed, order kept)."""
    root = Path(project_root)
    rows: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if not p.is_absolute():
            p = root / p
        key = p.resolve()
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "path": _relative(p, root),
                "kind": _kind(p),
                "bytes": p.stat().st_size if p.is_file() else None,
                "sha256": sha256_file(p),
            }
        )
    return rows


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.rstrip()


def git_state(project_root: str | Path) -> dict[str, Any]:
    """Commit, branch and dirty state of the repository holding ``project_root``.

    ``dirty`` is True when tracked files differ from the commit (staged or not);
    ``untracked`` counts files git does not know and does not ignore. Outside a repository,
    or without git, every field is None and ``error`` says why.
    """
    root = Path(project_root)
    try:
        commit = _git(root, "rev-parse", "HEAD")
        branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
        tracked = _git(root, "status", "--porcelain", "--untracked-files=no")
        untracked = _git(root, "ls-files", "--others", "--exclude-standard")
    except FileNotFoundError:
        return _no_git("git is not installed")
    except subprocess.CalledProcessError as err:
        return _no_git((err.stderr or "").strip().splitlines()[0] if err.stderr else str(err))
    except subprocess.TimeoutExpired:
        return _no_git("git timed out")
    changed = [line[3:] for line in tracked.splitlines() if line.strip()]
    return {
        "commit": commit,
        "branch": branch,
        "dirty": bool(changed),
        "changed_files": changed,
        "untracked": len([x for x in untracked.splitlines() if x.strip()]),
        "error": None,
    }


def _no_git(reason: str) -> dict[str, Any]:
    return {
        "commit": None,
        "branch": None,
        "dirty": None,
        "changed_files": None,
        "untracked": None,
        "error": reason,
    }


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s<>=!~;\[(@]", spec.strip(), maxsplit=1)[0]


def package_versions(project_root: str | Path) -> dict[str, str | None]:
    """Installed versions of the direct dependencies in ``pyproject.toml`` (None if absent).

    The project itself is included under its distribution name. Without a
    ``pyproject.toml`` only the project's core scientific packages are listed.
    """
    pyproject = Path(project_root) / "pyproject.toml"
    names: list[str]
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        names = [project.get("name", "alliance-pipeline")]
        names += [_requirement_name(d) for d in project.get("dependencies", [])]
    else:
        names = ["alliance-pipeline", "numpy", "pandas", "scipy", "pymc", "snakemake"]
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def find_seeds(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every ``seed`` (or ``*_seed``) entry of a nested config, keyed by its dotted path."""
    seeds: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            seeds.update(find_seeds(value, path))
        elif str(key) == "seed" or str(key).endswith("_seed"):
            seeds[path] = value
    return seeds


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def platform_info() -> dict[str, Any]:
    """Operating system, machine, CPU count (total and usable) and memory."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    memory = _memory_bytes()
    return {
        "system": platform.system(),
        "release": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "memory_gb": round(memory / 1024**3, 2) if memory else None,
    }


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def parse_benchmark(path: str | Path) -> dict[str, Any]:
    """Read one Snakemake ``benchmark:`` TSV (one row per repeat).

    Returns
    -------
    dict
        ``runs`` (rows), ``s`` (mean wall-clock seconds), ``s_max``, ``cpu_time`` (mean
        seconds), ``max_rss_mb`` (largest resident memory, MB), ``mean_load`` (mean CPU
        load, %), each None when the column is absent or not a number (Snakemake writes
        ``-`` or ``NA`` when it could not measure).

    Raises
    ------
    ValueError
        If the file has no ``s`` column or no rows.

    """
    p = Path(path)
    with p.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise ValueError(f"not a Snakemake benchmark file (needs an 's' column), got {str(p)!r}")

    def column(name: str) -> list[float]:
        values = [_number(r.get(name, "")) for r in rows]
        return [v for v in values if v is not None]

    secs, cpu, rss, load = column("s"), column("cpu_time"), column("max_rss"), column("mean_load")
    return {
        "runs": len(rows),
        "s": sum(secs) / len(secs) if secs else None,
        "s_max": max(secs) if secs else None,
        "cpu_time": sum(cpu) / len(cpu) if cpu else None,
        "max_rss_mb": max(rss) if rss else None,
        "mean_load": sum(load) / len(load) if load else None,
    }


def benchmark_times(
    benchmarks: Iterable[str | Path], project_root: str | Path
) -> list[dict[str, Any]]:
    """Per-rule run times from ``benchmark:`` files, named by rule (file stem) and path.

    The rule's wildcards are in the path (``results/{dataset}/benchmarks/{rule}.tsv``), so
    the path is kept next to the stem; missing files are skipped with ``missing: True``.
    """
    root = Path(project_root)
    out = []
    for item in benchmarks:
        p = Path(item)
        if not p.is_absolute():
            p = root / p
        row: dict[str, Any] = {"rule": p.stem, "file": _relative(p, root)}
        if p.is_file():
            row.update(parse_benchmark(p), missing=False)
        else:
            row["missing"] = True
        out.append(row)
    return out


def _jsonable_config(config: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(config, default=str, sort_keys=True))


def collect_provenance(
    inputs: Iterable[str | Path],
    config: Mapping[str, Any],
    project_root: str | Path,
    benchmarks: Iterable[str | Path] = (),
) -> dict[str, Any]:
    """Assemble the provenance record of a pipeline run (``results/provenance.json``).

    Parameters
    ----------
    inputs
        Every input file: data exports, codebooks, instrument files and the config file
        (relative paths resolve against ``project_root``).
    config
        The run's configuration as loaded (Snakemake's ``config``).
    project_root
        The repository's root: paths are reported relative to it and git is asked there.
    benchmarks
        Snakemake ``benchmark:`` TSV files.

    Returns
    -------
    dict
        JSON-serialisable: ``created`` (UTC), ``project_root``, ``inputs`` (path, kind,
        bytes, sha256), ``config`` (as given) and ``config_sha256`` (of its canonical
        JSON), ``git`` (commit, branch, dirty, changed_files, untracked, error),
        ``python`` (version, implementation, executable), ``packages`` (direct
        dependencies), ``seeds`` (dotted config path -> seed), ``platform`` and
        ``benchmarks`` (per rule) with ``total_s``.

    Raises
    ------
    FileNotFoundError
        If an input file does not exist.

    """
    root = Path(project_root)
    cfg = _jsonable_config(config)
    canonical = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
    times = benchmark_times(benchmarks, root)
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "project_root": root.resolve().as_posix(),
        "inputs": hash_inputs(inputs, root),
        "config": cfg,
        "config_sha256": hashlib.sha256(canonical).hexdigest(),
        "git": git_state(root),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": package_versions(root),
        "seeds": find_seeds(config),
        "platform": platform_info(),
        "benchmarks": times,
        "total_s": sum(t["s"] for t in times if t.get("s") is not None),
    }
