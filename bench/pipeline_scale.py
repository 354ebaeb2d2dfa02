"""Pipeline scaling: wall time, memory, DAG building and no-op reruns for 1 to 200 sites."""

from __future__ import annotations

import csv
import json
import math
import pstats
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from alliance.simulate.sites import simulate_sites
from bench.common import (
    ROOT,
    Context,
    Measured,
    Row,
    clean_env,
    register,
    run_measured,
    snakemake_command,
    workflow_root,
)

TREE = "tree RSS sum, sampled 0.1 s"
RULE_RSS = "max_rss of the largest job (Snakemake benchmark files)"
NOOP_TARGET_S = 10.0
RULE_MEMORY_TARGET_MIB = 2048.0
LINEARITY_TOLERANCE = 0.20
#: The issue's scale config, applied to the keys the workflow's config schema knows: per site
#: ingest, scoring (and the description), the three-factor CFA under the default (first)
#: estimator and the Bayesian outcome model (default priors only); pooled: invariance across
#: sites and the meta-analysis. The process analyses, MASEM and the one-stage IPD model are off.
SCALE_CONFIG: dict[str, Any] = {
    "cfa": {"models": ["correlated"], "estimators": ["WLSMV"]},
    "bayes": {"models": ["outcome"], "sensitivity_scales": [1]},
    "process": {"enabled": False},
    "process_bayes": {"enabled": False},
    "meta": {"masem": {"enabled": False}, "ipd": {"enabled": False}},
}


def scale_config(schema_path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """``SCALE_CONFIG`` restricted to the top-level keys in the config schema, then ``extra``."""
    import yaml

    known = set(yaml.safe_load(schema_path.read_text()).get("properties", {}))
    merged = {k: dict(v) for k, v in SCALE_CONFIG.items() if k in known}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def job_stats(project: Path) -> dict[str, dict[str, float]]:
    """Per rule: job count, mean and total wall and CPU seconds, largest max_rss (MiB).

    Read from Snakemake's benchmark files. The rule is the benchmark file's stem
    (``results/<dataset>/benchmarks/<rule>.tsv``); the pooled dataset's jobs are reported as
    ``<rule> (pooled)``.
    """
    stats: dict[str, dict[str, float]] = {}
    for path in sorted((project / "results").glob("**/benchmarks/*.tsv")):
        with path.open() as handle:
            records = list(csv.DictReader(handle, delimiter="\t"))
        if not records:
            continue
        record = records[-1]
        rule = path.stem + (" (pooled)" if path.parts[-3] == "pooled" else "")
        entry = stats.setdefault(rule, {"jobs": 0, "seconds": 0.0, "cpu": 0.0, "max_rss": 0.0})
        entry["jobs"] += 1
        entry["seconds"] += float(record["s"])
        try:
            entry["cpu"] += float(record["cpu_time"])
        except (KeyError, ValueError):
            pass
        try:
            entry["max_rss"] = max(entry["max_rss"], float(record["max_rss"]))
        except ValueError:  # "NA" for jobs too short to sample
            pass
    for entry in stats.values():
        entry["mean"] = entry["seconds"] / entry["jobs"]
    return stats


def _fail_note(result: Measured) -> str:
    tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
    return f"FAILED (exit {result.returncode}): " + " / ".join(tail)[-300:]


def _marginal(times: dict[int, float], n: int) -> str:
    """Extra seconds per site over the smallest size: (T(n) - T(n0)) / (n - n0), in ms."""
    n0 = min(times)
    if n == n0:
        return ""
    return f"+{1000 * (times[n] - times[n0]) / (n - n0):,.1f} ms/site over {n0}"


def profile_dry_run(project: Path, out_dir: Path) -> str:
    """Profile ``snakemake --dry-run`` in ``project`` with cProfile; return a Markdown summary.

    Reports where the parse and DAG time goes: the codebook loading in ``common.smk`` (YAML
    parsing, schema validation, instrument loading) and Snakemake's DAG building.
    """
    prof = out_dir / "dry_run.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(prof), *snakemake_command(project)[1:]]
    command += ["--cores", "2", "--dry-run", "--quiet"]
    result = run_measured(command, env=clean_env())
    if result.returncode != 0 or not prof.is_file():
        return f"Profiling failed: {_fail_note(result)}"
    stats = pstats.Stats(str(prof))
    wanted = {
        ("common.smk", "<module>"): "common.smk (config validation, codebook loading)",
        ("codebook.py", "load_codebook"): "alliance.data.codebook.load_codebook",
        ("schemas.py", "read_yaml"): "alliance.data.schemas.read_yaml (PyYAML)",
        ("schemas.py", "validate_document"): "alliance.data.schemas.validate_document (jsonschema)",
        ("instruments.py", "load_instrument"): "alliance.data.instruments.load_instrument",
        ("workflow.py", "_build_dag"): "snakemake Workflow._build_dag",
        ("dag.py", "update"): "snakemake DAG.update (job/file matching)",
        ("rules.py", "is_producer"): "snakemake Rule.is_producer (output regex matching)",
        ("dag.py", "postprocess"): "snakemake DAG.postprocess",
        ("persistence.py", "__init__"): "snakemake Persistence (.snakemake metadata)",
    }
    found: dict[str, tuple[int, float]] = {}
    total = 0.0
    for (filename, _line, name), (_cc, ncalls, _tt, cumtime, _callers) in stats.stats.items():
        if name == "<module>" and filename.endswith("snakemake/__main__.py"):
            total = cumtime
        for (suffix, function), label in wanted.items():
            if filename.endswith(suffix) and name == function:
                calls, seconds = found.get(label, (0, 0.0))
                found[label] = (calls + ncalls, max(seconds, cumtime))
    lines = [
        f"cProfile of `snakemake --dry-run` on {project.name} "
        f"(total {total:.2f} s under the profiler, which inflates Python-heavy code about 2x):",
        "",
        "| Function | Calls | Cumulative s | Share |",
        "|---|---|---|---|",
    ]
    for label in wanted.values():
        if label in found:
            calls, seconds = found[label]
            share = f"{100 * seconds / total:.0f}%" if total else ""
            lines.append(f"| {label} | {calls:,} | {seconds:.2f} | {share} |")
    return "\n".join(lines)


def stub_noop(project: Path, label: str, ctx: Context) -> Row:
    """Time a no-op rerun without running the jobs: stub every output, ``--touch``, rerun.

    ``snakemake --summary`` lists every output of the DAG; each is created empty, ``--touch``
    gives them consistent modification times, and the rerun's wall time is measured. The rerun
    checks the same files as after a real run; Snakemake's per-output metadata records are
    absent (``--touch`` writes none), which skips the code/params checks: a lower bound.
    """
    env = clean_env()
    summary = run_measured(snakemake_command(project, "--summary", "--cores", "1"), env=env)
    if summary.returncode != 0:
        return Row("pipeline", "no-op rerun (stubbed outputs)", label, notes=_fail_note(summary))
    for line in summary.stdout.splitlines()[1:]:
        name = line.split("\t", 1)[0].strip()
        if name:
            path = project / name
            if not path.suffix:  # a directory() output (the workflow's files all have one)
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    touch = run_measured(snakemake_command(project, "--touch", "--cores", "1"), env=env)
    if touch.returncode != 0:
        return Row("pipeline", "no-op rerun (stubbed outputs)", label, notes=_fail_note(touch))
    noop = run_measured(snakemake_command(project, "--cores", str(ctx.cores)), env=env)
    nothing = "Nothing to be done" in noop.stdout + noop.stderr
    return Row(
        "pipeline",
        "no-op rerun (stubbed outputs)",
        label,
        wall_s=noop.wall_s,
        peak_mib=noop.peak_mib,
        memory_method=TREE,
        target="< 10 s" if label == "200 sites" else "",
        status=("met" if noop.wall_s < NOOP_TARGET_S else "GAP") if label == "200 sites" else "",
        notes="DAG-only size: outputs stubbed (--summary, empty files, --touch); no metadata "
        "records, so a lower bound"
        if nothing and noop.returncode == 0
        else "NOT a no-op: " + _fail_note(noop),
    )


@register("pipeline", order=10, description="pipeline wall time, memory, DAG, no-op by sites")
def pipeline_scale(ctx: Context) -> list[Row]:
    """Generate 1..N-site projects and run the workflow on each with ``--cores``.

    Per size: project generation, parse only (``--list-rules``: config validation and the
    codebooks loaded by common.smk), DAG building (``--dry-run`` with no results), the full run
    (wall, peak memory of the process tree, largest job), and the no-op rerun.
    """
    rows: list[Row] = []
    env = clean_env()
    parse_times: dict[int, float] = {}
    dag_times: dict[int, float] = {}
    per_site: dict[int, float] = {}
    schema = workflow_root() / "workflow" / "schemas" / "config.schema.yaml"
    overrides = scale_config(schema, ctx.pipeline_config)
    sizes = sorted(set(ctx.sites) | set(ctx.dag_sites))
    for n in sizes:
        project = ctx.workdir / f"sites_{n}"
        if project.exists():
            shutil.rmtree(project)
        label = f"{n} site" + ("s" if n != 1 else "")
        start = time.perf_counter()
        simulate_sites(n, project, seed=ctx.seed, config_overrides=overrides)
        elapsed = time.perf_counter() - start
        rows.append(
            Row(
                "pipeline",
                "simulate project",
                label,
                wall_s=elapsed,
                per_unit=f"{1000 * elapsed / n:,.0f} ms/site",
                notes="alliance.simulate.sites, 100 patients/site, in-process; config "
                f"overrides {overrides}",
            )
        )

        parse = run_measured(snakemake_command(project, "--list-rules"), env=env)
        parse_times[n] = parse.wall_s
        rows.append(
            Row(
                "pipeline",
                "parse (--list-rules)",
                label,
                wall_s=parse.wall_s,
                per_unit=_marginal(parse_times, n),
                notes="startup + Snakefile + config validation + codebook loads"
                if parse.returncode == 0
                else _fail_note(parse),
            )
        )

        dry = run_measured(
            snakemake_command(project, "--cores", str(ctx.cores), "--dry-run", "--quiet"), env=env
        )
        dag_times[n] = dry.wall_s
        rows.append(
            Row(
                "pipeline",
                "DAG build (--dry-run)",
                label,
                wall_s=dry.wall_s,
                per_unit=_marginal(dag_times, n),
                notes=f"DAG alone about {dry.wall_s - parse.wall_s:.2f} s (dry run minus parse)"
                if dry.returncode == 0
                else _fail_note(dry),
            )
        )
        ctx.checkpoint(rows)

        if n not in ctx.sites:  # DAG-only size: no full run; no-op on stub outputs
            rows.append(stub_noop(project, label, ctx))
            ctx.checkpoint(rows)
            continue
        full = run_measured(snakemake_command(project, "--cores", str(ctx.cores)), env=env)
        if full.returncode != 0:
            rows.append(Row("pipeline", "full run", label, wall_s=full.wall_s, status="FAILED",
                            notes=_fail_note(full)))  # fmt: skip
            continue
        jobs = job_stats(project)
        per_site[n] = full.wall_s / n
        largest = max(jobs.items(), key=lambda kv: kv[1]["max_rss"]) if jobs else ("", {})
        rule_rss = largest[1].get("max_rss", 0.0)
        job_text = ", ".join(
            f"{rule} {v['jobs']:.0f}x{v['mean']:.1f} s" for rule, v in sorted(jobs.items())
        )
        job_wall = sum(v["seconds"] for v in jobs.values())
        job_cpu = sum(v["cpu"] for v in jobs.values())
        job_text += (
            f"; job CPU {job_cpu / n:.2f} s/site; job wall sum / cores "
            f"{job_wall / ctx.cores:.1f} s of {full.wall_s:.1f} s"
        )
        linear = ""
        status = ""
        base = [k for k in per_site if k >= 10]
        if n >= 10 and base and min(base) < n:
            ratio = per_site[n] / per_site[min(base)]
            linear = f"; per-site {ratio:.2f}x the {min(base)}-site value"
            if ratio < 1 - LINEARITY_TOLERANCE:
                linear += " (cheaper per site: fixed start-up and pooled tail amortized)"
            status = "met" if ratio <= 1 + LINEARITY_TOLERANCE else "GAP"
        target = "s/site at most 1.2x the 10-site value" if n >= 10 else ""
        if n == 200:  # the wall-time target for the scale config
            target = f"< 60 min; {target}"
            if full.wall_s >= 3600:
                status = "GAP"
        rows.append(
            Row(
                "pipeline",
                "full run",
                label,
                wall_s=full.wall_s,
                per_unit=f"{per_site[n]:,.2f} s/site",
                peak_mib=full.peak_mib,
                memory_method=TREE,
                target=target,
                status=status,
                notes=f"--cores {ctx.cores}; jobs: {job_text}{linear}",
            )
        )
        rows.append(
            Row(
                "pipeline",
                "largest job memory",
                label,
                peak_mib=rule_rss,
                memory_method=RULE_RSS,
                target="< 2 GiB per rule",
                status="met" if rule_rss < RULE_MEMORY_TARGET_MIB else "GAP",
                notes=f"rule {largest[0]}",
            )
        )

        noop = run_measured(snakemake_command(project, "--cores", str(ctx.cores)), env=env)
        nothing = "Nothing to be done" in noop.stdout + noop.stderr
        rows.append(
            Row(
                "pipeline",
                "no-op rerun",
                label,
                wall_s=noop.wall_s,
                peak_mib=noop.peak_mib,
                memory_method=TREE,
                target="< 10 s" if n == 200 else "",
                status=("met" if noop.wall_s < NOOP_TARGET_S else "GAP") if n == 200 else "",
                notes="everything up to date"
                if nothing and noop.returncode == 0
                else "NOT a no-op: " + _fail_note(noop),
            )
        )
        ctx.checkpoint(rows)
    if ctx.profile and sizes:
        project = ctx.workdir / f"sites_{sizes[-1]}"
        ctx.extra_sections.append(
            "## Where the parse and DAG time goes\n\n" + profile_dry_run(project, ctx.workdir)
        )
    return rows


#: ``make demo`` after set-up on 2 cores (issue 13): what a reviewer waits for.
DEMO_TARGET_S = 300.0


def _demo_rows(ctx: Context, project: Path, env: dict[str, str], label: str) -> list[Row]:
    """One full run of the demo project (``--forceall``) and its rows."""
    full = run_measured(
        snakemake_command(project, "--cores", str(ctx.cores), "--forceall"), env=env
    )
    if full.returncode != 0:
        return [Row("demo", "full run", label, wall_s=full.wall_s, status="FAILED",
                    notes=_fail_note(full))]  # fmt: skip
    jobs = job_stats(project)
    cpu = sum(v["cpu"] for v in jobs.values())
    largest: tuple[str, dict[str, Any]] = max(jobs.items(), key=lambda kv: kv[1]["max_rss"])
    heaviest = sorted(jobs.items(), key=lambda kv: -kv[1]["cpu"])[:6]
    return [
        Row(
            "demo",
            "full run",
            label,
            wall_s=full.wall_s,
            peak_mib=full.peak_mib,
            memory_method=TREE,
            target=f"<= {DEMO_TARGET_S:.0f} s",
            status="met" if full.wall_s <= DEMO_TARGET_S else "GAP",
            notes=f"--cores {ctx.cores}; job CPU {cpu:,.0f} s in all; most CPU: "
            + ", ".join(f"{r} {v['jobs']:.0f} jobs {v['cpu']:.0f} s" for r, v in heaviest),
        ),
        Row(
            "demo",
            "largest job memory",
            label,
            peak_mib=largest[1]["max_rss"],
            memory_method=RULE_RSS,
            target="< 2 GiB per rule",
            status="met" if largest[1]["max_rss"] < RULE_MEMORY_TARGET_MIB else "GAP",
            notes=f"rule {largest[0]}",
        ),
    ]


@register("demo", order=15, description="the whole pipeline on the embedded demo data")
def demo_run(ctx: Context) -> list[Row]:
    """Run the workflow on a copy of the demo project, as a reviewer's first run and a rerun.

    A reviewer's first ``make demo`` starts with empty compile caches: PyTensor's C modules
    and its numba cache (nutpie) live under PyTensor's ``base_compiledir``, here a fresh
    folder of the work dir. The second run (``--forceall``, same caches) is what a rerun
    costs on the same machine.
    """
    project = ctx.workdir / "demo"
    if project.exists():
        shutil.rmtree(project)
    for name in ("config", "data"):
        shutil.copytree(workflow_root() / name, project / name)
    caches = ctx.workdir / "demo_compile_cache"
    if caches.exists():
        shutil.rmtree(caches)
    env = clean_env()
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f]
    env["PYTENSOR_FLAGS"] = ",".join([*flags, f"base_compiledir={caches}"])
    rows = _demo_rows(ctx, project, env, "4 datasets, first run (empty compile caches)")
    ctx.checkpoint(rows)
    if rows[0].status != "FAILED":
        rows += _demo_rows(ctx, project, env, "4 datasets, rerun (compile caches warm)")
    return rows


def pooled_project(workdir: Path, n_sites: int, seed: int) -> Path:
    """Simulate, ingest and pool ``n_sites`` sites; return the pooled ingest folder."""
    from alliance.data.ingest import ingest_to
    from alliance.data.pool import pool_to

    project = workdir / f"pooled_{n_sites}"
    if project.exists():
        shutil.rmtree(project)
    simulate_sites(n_sites, project, seed=seed, inject_errors=False)
    dirs = {}
    for codebook in sorted((project / "config" / "codebooks").glob("*.yaml")):
        out = project / "results" / codebook.stem / "ingest"
        ingest_to(codebook, out)
        dirs[codebook.stem] = out
    pooled = project / "results" / "pooled" / "ingest"
    pool_to(dirs, pooled)
    return pooled


@register("pooled", order=12, description="pooled steps by sites: invariance across N sites")
def pooled_scale(ctx: Context) -> list[Row]:
    """Time the invariance ladder across ``dataset`` on the pooled data of N sites.

    Runs ``alliance.cfa.stage.run_invariance`` (the ``cfa_invariance`` rule's call; the
    correlated three-factor model) in a worker process per size, with a timeout
    (``--option pooled_timeout=900``); sizes from ``--option pooled_sites=10,50,200``;
    estimators from ``--option pooled_estimator=WLSMV,MLR`` (both by default: about 3 min).
    """
    sizes = ctx.ints("pooled_sites", [10] if ctx.quick else [10, 50, 200])
    timeout = float(ctx.options.get("pooled_timeout", 900))
    estimators = [e.strip() for e in ctx.options.get("pooled_estimator", "WLSMV,MLR").split(",")]
    rows: list[Row] = []
    pooled_dirs = {n: pooled_project(ctx.workdir, n, ctx.seed) for n in sorted(set(sizes))}
    for estimator in estimators:
        rows += _invariance_rows(ctx, pooled_dirs, estimator, timeout, rows)
    return rows


def _invariance_rows(
    ctx: Context, pooled_dirs: dict[int, Path], estimator: str, timeout: float, done: list[Row]
) -> list[Row]:
    """The invariance rows of one estimator over the pooled sizes."""
    import json

    rows: list[Row] = []
    first: tuple[int, float] | None = None
    for n, pooled in pooled_dirs.items():
        command = [sys.executable, "-m", "bench.pipeline_scale", "--invariance", str(pooled)]
        command.append(estimator)
        result = run_measured(command, cwd=ROOT, env=clean_env(), timeout=timeout)
        label = f"{n} sites"
        if result.returncode != 0:
            why = "TIMEOUT" if result.wall_s >= timeout else "FAILED"
            rows.append(
                Row(
                    "pooled",
                    f"invariance across sites ({estimator})",
                    label,
                    wall_s=result.wall_s,
                    peak_mib=result.peak_mib,
                    memory_method=TREE,
                    status=why,
                    notes=_fail_note(result)
                    if why == "FAILED"
                    else f"stopped after {timeout:.0f} s",
                )  # fmt: skip
            )
            ctx.checkpoint(done + rows)
            continue
        info = json.loads(result.stdout.strip().splitlines()[-1])
        seconds = info["seconds"]
        growth = ""
        if first is None:
            first = (n, seconds)
        else:
            exponent = math.log(seconds / first[1]) / math.log(n / first[0])
            growth = f"; time grows as sites^{exponent:.2f} from {first[0]} sites"
        rows.append(
            Row(
                "pooled",
                f"invariance across sites ({estimator})",
                label,
                wall_s=seconds,
                per_unit=f"{seconds / n:.2f} s/site",
                peak_mib=result.peak_mib,
                memory_method="tree RSS sum of the worker, sampled 0.1 s",
                target="linear in sites",
                status=("FAILED" if not (info["status"] or {}).get("ok") else "")
                or ("" if not growth else ("met" if exponent <= 1.2 else "GAP")),
                notes=f"{info['rows']} rows; status {info['status']}; levels "
                f"{info['levels']}{growth}; "
                + (
                    f"{info['collapsed']} empty categories collapsed (as configured: "
                    "cfa.invariance.collapse_empty_categories); "
                    if info.get("collapsed")
                    else ""
                )
                + f"worker total {result.wall_s:.1f} s",
            )
        )
        ctx.checkpoint(done + rows)
    return rows


def _invariance_worker(pooled: Path, estimator: str) -> dict[str, Any]:
    """Run the invariance ladder on a pooled folder; return seconds, rows, status."""
    from alliance.cfa.stage import read_cfa_data, run_invariance

    data, _instrument, _sample = read_cfa_data(pooled, session=3, rater="client")
    start = time.perf_counter()
    ladder = run_invariance(pooled, "correlated", "dataset", estimator)
    seconds = time.perf_counter() - start
    steps = ("configural", "metric", "scalar", "strict")
    levels = [k for k in steps if isinstance(ladder.get(k), dict) and "fit" in ladder[k]]
    return {
        "seconds": seconds,
        "rows": len(data),
        "status": ladder.get("status"),
        "levels": levels,
        "collapsed": len(ladder.get("collapsed_categories") or []),
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="pooled benchmark worker (used by bench.run)")
    parser.add_argument("--invariance", nargs=2, metavar=("POOLED_DIR", "ESTIMATOR"))
    args = parser.parse_args()
    print(json.dumps(_invariance_worker(Path(args.invariance[0]), args.invariance[1]), default=str))
