"""Meta-analysis speed: three-level REML with 2,000 effects in 500 clusters, beside metafor.

``python -m bench.meta_speed [--effects 2000] [--clusters 500] [--repeat 3] [--metafor auto]``
prints a JSON record; ``python -m bench.run --only meta`` puts it in bench/RESULTS.md. The
issue's target: at most 5 s per fit (``rma_mv``; profile CIs, the robust test and the bias
methods are timed separately in the notes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Context, Row, package_version, register

TARGET_S = 5.0

#: Times metafor's rma.mv on the same data after one warm-up fit. Arguments: CSV, repeat.
METAFOR_SCRIPT = r"""
suppressPackageStartupMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); n <- as.integer(args[2])
fit <- function() rma.mv(yi, vi, random = ~ 1 | cluster/study, data = d, method = "REML")
invisible(fit())
times <- sapply(seq_len(n), function(i) system.time(res <- fit())[["elapsed"]])
cat(sprintf("{\"metafor_version\": \"%s\", \"median_s\": %.6f, \"sigma2\": [%.12g, %.12g]}\n",
            as.character(packageVersion("metafor")), median(times), res$sigma2[1],
            res$sigma2[2]))
"""


def simulate(n_effects: int, n_clusters: int, seed: int) -> dict[str, np.ndarray]:
    """Effects in clusters of unequal size (1 to 7 around 4), sigma2 = (0.04, 0.02)."""
    rng = np.random.default_rng(seed)
    sizes = np.full(n_clusters, n_effects // n_clusters)
    sizes[: n_effects - sizes.sum()] += 1
    shift = rng.integers(-3, 4, n_clusters)
    sizes = np.clip(sizes + shift - int(round(shift.mean())), 1, None)
    while sizes.sum() != n_effects:  # restore the total after clipping
        j = rng.integers(n_clusters)
        sizes[j] += 1 if sizes.sum() < n_effects else (-1 if sizes[j] > 1 else 0)
    cluster = np.repeat(np.arange(n_clusters), sizes)
    vi = rng.uniform(0.005, 0.08, n_effects)
    yi = (
        0.3
        + rng.normal(0, 0.2, n_clusters)[cluster]
        + rng.normal(0, np.sqrt(0.02), n_effects)
        + rng.normal(0, np.sqrt(vi))
    )
    return {"cluster": cluster, "study": np.arange(n_effects), "yi": yi, "vi": vi}


def time_metafor(data: dict[str, np.ndarray], repeat: int, timeout: int = 1800) -> dict[str, Any]:
    """Median seconds per metafor rma.mv fit, or why it was not timed.

    metafor's rma.mv works with dense k x k matrices by default (``sparse = FALSE``): at
    2,000 effects a fit takes minutes (on a loaded 2-core machine a warm-up and 3 fits did
    not finish in 28 min), so the whole R run is bounded by ``timeout``.
    """
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {"status": "not timed: no Rscript"}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "effects.csv"
        lines = ["cluster,study,yi,vi"] + [
            f"{c},{s},{float(y)!r},{float(v)!r}"
            for c, s, y, v in zip(
                data["cluster"], data["study"], data["yi"], data["vi"], strict=True
            )
        ]
        csv.write_text("\n".join(lines) + "\n")
        script = Path(tmp) / "time.R"
        script.write_text(METAFOR_SCRIPT)
        try:
            proc = subprocess.run(
                [rscript, str(script), str(csv), str(repeat)], capture_output=True, text=True,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"status": f"not timed: {repeat + 1} rma.mv fits took over {timeout} s"}
    if proc.returncode != 0:
        return {"status": f"not timed: {proc.stderr.strip()[-200:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def benchmark(n_effects: int, n_clusters: int, repeat: int, metafor: str, seed: int) -> dict:
    """Median seconds per three-level fit here (and with metafor), plus the extras."""
    from alliance.meta.multilevel import profile_ci, rma_mv
    from alliance.meta.robust import robust_rma_mv

    data = simulate(n_effects, n_clusters, seed)
    args = (data["yi"], data["vi"], data["cluster"], data["study"])
    rma_mv(*args)  # warm-up (imports, BLAS)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fit = rma_mv(*args)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    for j in range(2):
        profile_ci(fit, j)
    ci_s = time.perf_counter() - start
    start = time.perf_counter()
    robust_rma_mv(fit)
    robust_s = time.perf_counter() - start
    median = float(np.median(times))
    record: dict[str, Any] = {
        "effects": n_effects,
        "clusters": n_clusters,
        "median_s": median,
        "min_s": float(np.min(times)),
        "iterations": fit.iterations,
        "sigma2": [float(s) for s in fit.sigma2],
        "profile_ci_s": ci_s,
        "robust_s": robust_s,
        "status": "met" if median <= TARGET_S else "GAP",
    }
    if metafor != "no":
        mf = time_metafor(data, repeat)
        record["metafor"] = mf
        if "median_s" in mf:
            record["ratio"] = median / mf["median_s"]
            record["sigma2_max_rel_diff"] = float(
                np.max(np.abs(np.array(record["sigma2"]) - mf["sigma2"]) / np.array(mf["sigma2"]))
            )
    return record


@register("meta", order=60, description="three-level REML, 2,000 effects in 500 clusters")
def meta_speed(ctx: Context) -> list[Row]:
    """The issue's size (``meta_effects``, ``meta_clusters`` options), metafor beside it."""
    n_effects = int(ctx.options.get("meta_effects", 2000))
    n_clusters = int(ctx.options.get("meta_clusters", 500))
    repeat = int(ctx.options.get("meta_repeat", 1 if ctx.quick else 3))
    rec = benchmark(
        n_effects, n_clusters, repeat, ctx.options.get("meta_metafor", "auto"), ctx.seed
    )
    mf = rec.get("metafor", {})
    mf_text = (
        f"metafor {mf['metafor_version']} rma.mv {mf['median_s']:.2f} s (ratio {rec['ratio']:.2f}; "
        f"sigma2 agree to {rec['sigma2_max_rel_diff']:.1e} relative)"
        if "median_s" in mf
        else f"metafor {mf.get('status', 'not run')}"
    )
    return [
        Row(
            "meta",
            "three-level REML (rma_mv)",
            f"{n_effects:,} effects in {n_clusters} clusters",
            wall_s=rec["median_s"],
            per_unit=f"{rec['iterations']} scoring iterations",
            target=f"<= {TARGET_S:g} s",
            status=rec["status"],
            notes=f"median of {repeat} after warm-up; profile CIs {rec['profile_ci_s']:.2f} s, "
            f"CR2 test {rec['robust_s']:.2f} s; {mf_text}",
            versions={"scipy": package_version("scipy")},
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line and print its JSON record."""
    parser = argparse.ArgumentParser(prog="python -m bench.meta_speed", description=__doc__)
    parser.add_argument("--effects", type=int, default=2000)
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--metafor", choices=["auto", "no"], default="auto")
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args(argv)
    rec = benchmark(args.effects, args.clusters, args.repeat, args.metafor, args.seed)
    print(json.dumps(rec, indent=1))
    return 0 if rec["status"] == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
