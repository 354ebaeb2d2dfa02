"""The demo's deterministic stages through a one-node SLURM cluster, beside the same run locally.

``python -m bench.run --only slurm`` (issue 22): the demo project with the sampling stages off
(Bayesian models, Bayesian process models, pooling: the project of
``test_demo_through_slurm_matches_the_manifest``) runs once locally (``--cores`` of the bench,
the default profile, as ``make demo``) and once through ``snakemake-executor-plugin-slurm`` on
the one-node cluster of ``tests/slurm_cluster.py`` (every job submitted with ``sbatch``, run by
``slurmd``, its state read with ``squeue`` every 2 s; the node has the machine's cores). Both
runs are checked against the committed manifest. The cluster needs root (and apt-get when
slurm-wlm is missing); without it the row says why.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Context,
    Row,
    clean_env,
    package_version,
    register,
    run_measured,
    snakemake_command,
    workflow_root,
)

#: The cluster and the demo project are the tests' own helpers (one definition of each).
TESTS = ROOT / "tests"
SIZE = "demo, 3 sites + pooled, sampling stages off"


def _helpers() -> tuple[Any, Any]:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import slurm_cluster
    import workflow_support

    return slurm_cluster, workflow_support


def _mismatches(support: Any, results: Path) -> str:
    bad = support.manifest_problems(results)
    return "manifest: every number matches" if bad.empty else f"manifest: {len(bad)} mismatches"


def _steps(stderr: str) -> str:
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", stderr)
    return f"{done[-1][1]} jobs" if done else "not finished"


@register("slurm", order=88, description="demo's deterministic stages through SLURM vs locally")
def slurm_speed(ctx: Context) -> list[Row]:
    """Local run, then the same project through the one-node cluster (root only)."""
    cluster, support = _helpers()
    base = ctx.workdir / "slurm"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    versions = {
        "snakemake-executor-plugin-slurm": package_version("snakemake-executor-plugin-slurm")
    }
    local = base / "local"
    support.deterministic_demo_project(local)
    run = run_measured(snakemake_command(local, "--cores", str(ctx.cores)), env=clean_env())
    rows = [
        Row("slurm", f"local run (--cores {ctx.cores})", SIZE, wall_s=run.wall_s,
            status="" if run.returncode == 0 else "fail",
            notes=f"{_steps(run.stderr)}; {_mismatches(support, local / 'results')}",
            versions=versions)
    ]  # fmt: skip
    project = base / "through_slurm"
    support.deterministic_demo_project(project)
    root = workflow_root()
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(root / "Snakefile"),
               "--directory", str(project),
               *cluster.slurm_args(root / "workflow" / "profiles" / "slurm")]  # fmt: skip
    step = "through SLURM (sbatch, slurmd, squeue every 2 s; one node, the machine's cores)"
    try:
        with cluster.one_node_cluster(base / "cluster") as env:
            run = run_measured(command, env={**clean_env(), **env}, timeout=1800)
    except cluster.ClusterUnavailable as exc:
        rows.append(Row("slurm", step, SIZE, notes=f"not run: {exc}", versions=versions))
        return rows
    submitted = run.stderr.count("has been submitted with SLURM jobid")
    rows.append(
        Row("slurm", step, SIZE, wall_s=run.wall_s,
            per_unit=f"x{run.wall_s / rows[0].wall_s:.1f} the local run" if rows[0].wall_s else "",
            status="" if run.returncode == 0 else "fail",
            notes=f"{submitted} jobs submitted; {_mismatches(support, project / 'results')}",
            versions=versions)
    )  # fmt: skip
    return rows
