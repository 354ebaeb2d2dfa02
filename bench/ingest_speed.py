"""Ingest speed: rows per second and peak memory of one CSV export of 1k to 100k rows."""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import sys
import time
from pathlib import Path

from alliance.simulate.sites import simulate_sites
from bench.common import Context, Row, clean_env, register, run_measured

ROWS_PER_PATIENT = 8.5  # client rows per simulated patient (12 sessions less dropout), about


def make_input(workdir: Path, n_rows: int, seed: int) -> Path:
    """Write a long CSV with exactly ``n_rows`` data rows and its codebook; return the codebook.

    The rows are the first ``n_rows`` of one simulated site (planted errors included, so the
    quarantine path runs).
    """
    source = workdir / f"ingest_src_{n_rows}"
    if source.exists():
        shutil.rmtree(source)
    patients = max(20, math.ceil(n_rows / ROWS_PER_PATIENT * 1.1))
    simulate_sites(1, source, seed=seed, patients_per_site=patients)
    raw = source / "data" / "site_001.csv"
    lines = raw.read_text(encoding="utf-8").splitlines(keepends=True)
    if len(lines) - 1 < n_rows:
        raise ValueError(f"simulated too few rows for {n_rows}, got {len(lines) - 1}")
    raw.write_text("".join(lines[: n_rows + 1]), encoding="utf-8")
    return source / "config" / "codebooks" / "site_001.yaml"


def worker(codebook: Path, out_dir: Path) -> dict[str, float]:
    """Ingest one codebook in this process; return timings (s) and peak RSS (MiB).

    ``read_apply_s`` is :func:`alliance.data.ingest.ingest` (read, validate, tidy, quarantine);
    ``write_s`` writes the Parquet tables; imports are excluded from both. Memory is the
    process's peak resident set (``VmHWM``), the baseline is taken after the imports.
    """
    from alliance.data.ingest import ingest

    baseline = _vm_hwm_mib()
    start = time.perf_counter()
    result = ingest(codebook)
    middle = time.perf_counter()
    result.write(out_dir)
    end = time.perf_counter()
    return {
        "read_apply_s": middle - start,
        "write_s": end - middle,
        "rows_in": result.report["rows_in"],
        "rows_quarantined": result.report["rows_quarantined"],
        "baseline_mib": baseline,
        "peak_mib": _vm_hwm_mib(),
    }


def _vm_hwm_mib() -> float:
    """Peak RSS of this process image (``VmHWM``; ``ru_maxrss`` would include the parent's).

    Linux keeps ``ru_maxrss`` across fork and exec, so a worker started by a large parent
    reports the parent's peak; ``VmHWM`` belongs to the current address space only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@register("ingest", order=20, description="ingest rows/s and peak memory by rows")
def ingest_speed(ctx: Context) -> list[Row]:
    """Time ``alliance.data.ingest`` on 1k, 10k and 100k rows, each in a fresh process."""
    rows: list[Row] = []
    for n in sorted(set(ctx.ingest_rows)):
        codebook = make_input(ctx.workdir, n, ctx.seed)
        out = codebook.parents[2] / "results"
        command = [sys.executable, "-m", "bench.ingest_speed", "--worker", str(codebook), str(out)]
        result = run_measured(command, env=clean_env(), cwd=Path(__file__).resolve().parents[1])
        if result.returncode != 0:
            rows.append(
                Row(
                    "ingest",
                    "ingest CSV",
                    f"{n:,} rows",
                    status="FAILED",
                    notes=result.stderr[-300:],
                )
            )
            continue
        timing = json.loads(result.stdout.strip().splitlines()[-1])
        total = timing["read_apply_s"] + timing["write_s"]
        rows.append(
            Row(
                "ingest",
                "ingest CSV (long)",
                f"{n:,} rows",
                wall_s=total,
                per_unit=f"{n / total:,.0f} rows/s",
                peak_mib=timing["peak_mib"],
                memory_method="VmHWM of the worker process",
                notes=f"read+apply {timing['read_apply_s']:.2f} s, write Parquet "
                f"{timing['write_s']:.2f} s; {timing['rows_quarantined']} rows quarantined; "
                f"process baseline after imports {timing['baseline_mib']:.0f} MiB",
                versions={"pyarrow": _version("pyarrow")},
            )
        )
    return rows


def _version(name: str) -> str:
    from bench.common import package_version

    return package_version(name)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ingest benchmark worker (used by bench.run)")
    parser.add_argument("--worker", nargs=2, metavar=("CODEBOOK", "OUT_DIR"), required=True)
    args = parser.parse_args(argv)
    print(json.dumps(worker(Path(args.worker[0]), Path(args.worker[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
