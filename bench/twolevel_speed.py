"""Two-level CFA speed: ML and MLR on 150 patients x 6 sessions, beside lavaan 0.6-14.

``python -m bench.twolevel_speed [--repeat 20] [--lavaan auto]`` prints a JSON record;
``python -m bench.run --only twolevel`` puts it in bench/RESULTS.md. The data are the two-level
reference data of the tests (tests/data/twolevel/balanced.csv: 150 patients x 6 sessions, 12
items) and the model three correlated factors within and between patients. Per estimator two
timings, each the median after one warm-up:

- ``core``: one fit with standard errors and the test statistic
  (:func:`alliance.sem.twolevel.estimate_twolevel`), as lavaan's ``cfa(model, data, cluster =
  "patient", estimator = ...)``;
- ``full``: what ``alliance cfa --cluster`` computes
  (:func:`alliance.sem.twolevel_output.fit_twolevel`: the fit, the baseline model, every fit
  measure, the JSON), as lavaan's ``cfa()`` plus ``fitMeasures()`` and
  ``parameterEstimates()``.

The issue's target: each fit in at most lavaan's time (ratio <= 1).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cfa_speed import clock
from bench.common import Context, Row, package_version, register

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "twolevel" / "balanced.csv"
FACTORS = {
    "task": "wai_01 + wai_02 + wai_10 + wai_12",
    "goal": "wai_04 + wai_06 + wai_08 + wai_11",
    "bond": "wai_03 + wai_05 + wai_07 + wai_09",
}
MODEL = "\n".join(
    ["level: 1", *(f"{f}_w =~ {v}" for f, v in FACTORS.items())]
    + ["level: 2", *(f"{f}_b =~ {v}" for f, v in FACTORS.items())]
)
ESTIMATORS = ("ML", "MLR")
TARGET_RATIO = 1.0

#: Times lavaan after one warm-up. Arguments: data CSV, model file, estimator, repeat.
R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(lavaan))
d <- read.csv(args[1])
m <- paste(readLines(args[2]), collapse = "\n")
est <- args[3]; n <- as.integer(args[4])
core <- function() cfa(m, data = d, cluster = "patient", estimator = est)
full <- function() {
  f <- core(); fitMeasures(f); parameterEstimates(f)
  invisible(f)
}
clock <- function(fun) {
  fun()
  sapply(seq_len(n), function(i) {
    t0 <- Sys.time(); fun(); as.numeric(difftime(Sys.time(), t0, units = "secs"))
  })
}
cat(sprintf("{\"lavaan\": \"%s\", \"core_s\": %.6f, \"full_s\": %.6f}\n",
            as.character(packageVersion("lavaan")), median(clock(core)), median(clock(full))))
"""


def time_lavaan(estimator: str, repeat: int, timeout: int = 900) -> dict[str, Any]:
    """The median seconds of lavaan (core and full), or why it was not timed."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {"status": "not timed: no Rscript"}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.lav").write_text(MODEL + "\n")
        (Path(tmp) / "time.R").write_text(R_SCRIPT)
        command = [rscript, str(Path(tmp) / "time.R"), str(DATA), str(Path(tmp) / "model.lav"),
                   estimator, str(repeat)]  # fmt: skip
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"status": f"not timed: over {timeout} s"}
    if proc.returncode != 0:
        return {"status": f"not timed: {proc.stderr.strip()[-200:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def benchmark(estimator: str, repeat: int, lavaan: str = "auto") -> dict[str, Any]:
    """Median seconds here and in lavaan (core and full), their ratios and the status."""
    import pandas as pd

    from alliance.sem.twolevel import estimate_twolevel
    from alliance.sem.twolevel_output import fit_twolevel

    data = pd.read_csv(DATA)

    def core() -> Any:
        return estimate_twolevel(data, MODEL, "patient", estimator)

    def full() -> Any:
        return fit_twolevel(data, MODEL, "patient", estimator)

    record: dict[str, Any] = {
        "estimator": estimator,
        "patients": int(data["patient"].nunique()),
        "rows": len(data),
        "core_s": statistics.median(clock(core, repeat)),
        "full_s": statistics.median(clock(full, repeat)),
    }
    if lavaan != "no":
        lav = time_lavaan(estimator, repeat)
        record["lavaan"] = lav
        if "core_s" in lav:
            record["core_ratio"] = record["core_s"] / lav["core_s"]
            record["full_ratio"] = record["full_s"] / lav["full_s"]
            ok = max(record["core_ratio"], record["full_ratio"]) <= TARGET_RATIO
            record["status"] = "met" if ok else "GAP"
    return record


@register("twolevel", order=67, description="two-level CFA, ML/MLR, 150 x 6, beside lavaan")
def twolevel_speed(ctx: Context) -> list[Row]:
    """The issue's size, lavaan beside it (``twolevel_repeat``, ``twolevel_lavaan`` options)."""
    repeat = int(ctx.options.get("twolevel_repeat", 3 if ctx.quick else 20))
    rows = []
    for estimator in ESTIMATORS:
        rec = benchmark(estimator, repeat, ctx.options.get("twolevel_lavaan", "auto"))
        lav = rec.get("lavaan", {})
        for key, step in (("core", "fit"), ("full", "alliance cfa --cluster (fit measures)")):
            seen = f"{key}_s" in lav
            rows.append(
                Row(
                    "twolevel",
                    f"two-level {estimator} {step}",
                    f"{rec['patients']} patients x 6 sessions",
                    wall_s=rec[f"{key}_s"],
                    per_unit=f"ratio {rec[f'{key}_ratio']:.2f}" if seen else "",
                    target="<= lavaan",
                    status=("met" if rec[f"{key}_ratio"] <= TARGET_RATIO else "GAP")
                    if seen
                    else "",
                    notes=(
                        f"median of {repeat} after warm-up; lavaan {lav['lavaan']} "
                        f"{lav[f'{key}_s']:.3f} s"
                        if seen
                        else f"lavaan {lav.get('status', 'not run')}"
                    ),
                    versions={
                        "numpy": package_version("numpy"),
                        "scipy": package_version("scipy"),
                    },  # fmt: skip
                )
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line and print its JSON records."""
    parser = argparse.ArgumentParser(prog="python -m bench.twolevel_speed", description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--lavaan", choices=["auto", "no"], default="auto")
    args = parser.parse_args(argv)
    recs = [benchmark(e, args.repeat, args.lavaan) for e in ESTIMATORS]
    print(json.dumps(recs, indent=1))
    return 0 if all(r.get("status", "met") == "met" for r in recs) else 1


if __name__ == "__main__":
    sys.exit(main())
