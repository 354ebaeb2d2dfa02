"""Item response model speed: the GRM of 12 items on 10,000 patients, the PCM beside eRm.

``python -m bench.irt_speed [--persons 10000] [--items 12] [--repeat 3] [--erm auto]`` prints a
JSON record; ``python -m bench.run --only irt`` puts it in bench/RESULTS.md. The issue's
target (issue 18): the GRM of 12 items on 10,000 patients in at most 10 s (marginal ML with
standard errors). The Rasch PCM (conditional ML) is timed on the same answers beside eRm's
``PCM`` when R with eRm is installed (the reference of tests/irt/test_pcm.py); mirt, the GRM's
natural reference, is not packaged for Debian here.
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
import pandas as pd

from bench.common import Context, Row, package_version, register

TARGET_S = 10.0

#: Times eRm's PCM on the same answers after one warm-up fit. Arguments: CSV, repeat.
ERM_SCRIPT = r"""
suppressPackageStartupMessages(library(eRm))
args <- commandArgs(trailingOnly = TRUE)
d <- as.matrix(read.csv(args[1])); n <- as.integer(args[2])
invisible(PCM(d, se = TRUE))
times <- sapply(seq_len(n), function(i) system.time(PCM(d, se = TRUE))[["elapsed"]])
cat(sprintf("{\"erm_version\": \"%s\", \"median_s\": %.6f}\n",
            as.character(packageVersion("eRm")), median(times)))
"""


def simulate(n_persons: int, n_items: int, seed: int) -> pd.DataFrame:
    """Five-point answers from a logistic GRM: a in [1, 2.5], ordered thresholds, N(0, 1) trait."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(1.0, 2.5, n_items)
    b = np.sort(rng.normal(0.0, 1.0, (n_items, 4)), axis=1) + np.array([-1.0, -0.3, 0.3, 1.0])
    theta = rng.normal(size=n_persons)
    above = 1.0 / (1.0 + np.exp(-a[None, :, None] * (theta[:, None, None] - b[None])))
    answers = 1 + (rng.uniform(size=(n_persons, n_items, 1)) < above).sum(axis=2)
    return pd.DataFrame(answers, columns=[f"i{k + 1:02d}" for k in range(n_items)])


def time_erm(data: pd.DataFrame, repeat: int, timeout: int = 900) -> dict[str, Any]:
    """Median seconds per eRm PCM fit (categories 0..4), or why it was not timed."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {"status": "not timed: no Rscript"}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "answers.csv"
        (data - 1).to_csv(csv, index=False)
        script = Path(tmp) / "time.R"
        script.write_text(ERM_SCRIPT)
        try:
            proc = subprocess.run(
                [rscript, str(script), str(csv), str(repeat)], capture_output=True, text=True,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"status": f"not timed: {repeat + 1} PCM fits took over {timeout} s"}
    if proc.returncode != 0:
        return {"status": f"not timed: {proc.stderr.strip()[-200:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median_time(function: Any, repeat: int) -> tuple[float, Any]:
    function()  # warm-up (imports, BLAS)
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def benchmark(n_persons: int, n_items: int, repeat: int, erm: str, seed: int) -> dict[str, Any]:
    """Median seconds per GRM and PCM fit here (and eRm's PCM)."""
    from alliance.irt.grm import fit_grm
    from alliance.irt.pcm import fit_pcm
    from alliance.irt.responses import response_codes

    data = simulate(n_persons, n_items, seed)
    responses = response_codes(data, list(data.columns), [1, 2, 3, 4, 5])
    grm_s, grm = _median_time(lambda: fit_grm(responses), repeat)
    pcm_s, pcm = _median_time(lambda: fit_pcm(responses), repeat)
    record: dict[str, Any] = {
        "persons": n_persons,
        "items": n_items,
        "grm_s": grm_s,
        "grm_status": grm["status"],
        "pcm_s": pcm_s,
        "pcm_status": pcm["status"],
        "status": "met" if grm_s <= TARGET_S and grm["status"] == "converged" else "GAP",
    }
    if erm != "no":
        record["erm"] = time_erm(data, repeat)
        if "median_s" in record["erm"]:
            record["pcm_ratio"] = pcm_s / record["erm"]["median_s"]
    return record


@register("irt", order=75, description="GRM and PCM, 12 items x 10,000 patients, PCM beside eRm")
def irt_speed(ctx: Context) -> list[Row]:
    """The issue's size (``irt_persons``, ``irt_items`` options), eRm beside the PCM."""
    n_persons = int(ctx.options.get("irt_persons", 10000))
    n_items = int(ctx.options.get("irt_items", 12))
    repeat = int(ctx.options.get("irt_repeat", 1 if ctx.quick else 3))
    rec = benchmark(n_persons, n_items, repeat, ctx.options.get("irt_erm", "auto"), ctx.seed)
    erm = rec.get("erm", {})
    erm_text = (
        f"eRm {erm['erm_version']} PCM {erm['median_s']:.2f} s (ratio {rec['pcm_ratio']:.2f})"
        if "median_s" in erm
        else f"eRm {erm.get('status', 'not run')}"
    )
    size = f"{n_items} five-point items x {n_persons:,} patients"
    versions = {"scipy": package_version("scipy")}
    return [
        Row("irt", "GRM, marginal ML with SEs (fit_grm)", size, wall_s=rec["grm_s"],
            target=f"<= {TARGET_S:g} s", status=rec["status"],
            notes=f"median of {repeat} after warm-up; {rec['grm_status']}; no mirt reference "
            "(not packaged for Debian)", versions=versions),
        Row("irt", "Rasch PCM, conditional ML (fit_pcm)", size, wall_s=rec["pcm_s"],
            notes=f"median of {repeat} after warm-up; {rec['pcm_status']}; {erm_text}",
            versions=versions),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line and print its JSON record."""
    parser = argparse.ArgumentParser(prog="python -m bench.irt_speed", description=__doc__)
    parser.add_argument("--persons", type=int, default=10000)
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--erm", choices=["auto", "no"], default="auto")
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args(argv)
    rec = benchmark(args.persons, args.items, args.repeat, args.erm, args.seed)
    print(json.dumps(rec, indent=1))
    return 0 if rec["status"] == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
