"""Longitudinal invariance speed: the ladder over three sessions of 300 patients, beside lavaan.

``python -m bench.longinv_speed [--repeat 5] [--lavaan auto]`` prints a JSON record;
``python -m bench.run --only longinv`` puts it in bench/RESULTS.md. The data are the lavaan
reference panel of the tests (tests/data/lavaan/longinv: 300 patients at sessions 1, 3 and 6,
two factors of three items, missed sessions absent): continuous items under ML and MLR (FIML),
five-category items under WLSMV (pairwise). Timed, the median after one warm-up: the whole
ladder as :func:`alliance.sem.longitudinal.longitudinal_ladder` computes it (every step's fit,
fit measures, standardized solution and the difference tests), against lavaan's ``cfa`` of
semTools' ``measEq.syntax`` model per step, ``fitMeasures``, ``standardizedSolution`` and
``lavTestLRT`` (the syntax is made before the clock starts in R too).

The issue's target (17): each fit in at most lavaan's time (ratio <= 1).
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
from functools import cache
from pathlib import Path
from typing import Any

from bench.cfa_speed import clock
from bench.common import Context, Row, package_version, register

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "tests" / "data" / "lavaan" / "longinv"
TARGET_RATIO = 1.0
#: case -> (file, estimator, ordered)
CASES = {
    "ML": ("longinv_continuous.csv", "ML", False),
    "MLR": ("longinv_continuous.csv", "MLR", False),
    "WLSMV": ("longinv_ordinal.csv", "WLSMV", True),
}

#: Times lavaan's ladder on the same data. Arguments: data directory, repeat.
R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages({library(lavaan); library(semTools)})
here <- args[1]; n <- as.integer(args[2])
waves <- c(1, 3, 6)
factors <- list(bond = c("b1", "b2", "b3"), task = c("t1", "t2", "t3"))
long_model <- paste(unlist(lapply(names(factors), function(f) sapply(waves, function(w)
  paste0(f, "_", w, " =~ ", paste0(factors[[f]], "_", w, collapse = " + "))))), collapse = "\n")
fac_names <- lapply(names(factors), function(f) paste0(f, "_", waves))
names(fac_names) <- names(factors)
widen <- function(file) {
  long <- read.csv(file.path(here, file), stringsAsFactors = FALSE)
  wide <- reshape(long, idvar = "patient", timevar = "session", direction = "wide", sep = "_")
  wide[, unlist(lapply(waves, function(w) paste0(unlist(factors), "_", w)))]
}
steps_equal <- list(configural = "", metric = "loadings",
                    scalar = c("loadings", "intercepts"),
                    strict = c("loadings", "intercepts", "residuals"))
prepare <- function(file, ordered) {
  wide <- widen(file)
  steps <- if (ordered) steps_equal[1:3] else steps_equal
  if (ordered) steps$scalar <- c("loadings", "thresholds", "intercepts")
  syntax <- lapply(steps, function(eq) {
    a <- list(configural.model = long_model, data = wide, longFacNames = fac_names,
              long.equal = eq)
    if (ordered) a <- c(a, list(ordered = names(wide), parameterization = "delta",
                                ID.cat = "Wu.Estabrook.2016"))
    as.character(do.call(measEq.syntax, a))
  })
  list(wide = wide, syntax = syntax)
}
ladder <- function(p, estimator, missing, ordered) {
  fits <- lapply(p$syntax, function(s) {
    f <- if (ordered) cfa(s, data = p$wide, ordered = names(p$wide), estimator = estimator,
                          missing = missing, parameterization = "delta")
         else cfa(s, data = p$wide, estimator = estimator, missing = missing)
    fitMeasures(f); standardizedSolution(f); f
  })
  do.call(lavTestLRT, unname(fits))
}
clock <- function(fun) {
  fun()
  sapply(seq_len(n), function(i) {
    t0 <- Sys.time(); fun(); as.numeric(difftime(Sys.time(), t0, units = "secs"))
  })
}
cont <- prepare("longinv_continuous.csv", FALSE)
ord <- prepare("longinv_ordinal.csv", TRUE)
ml <- median(clock(function() ladder(cont, "ML", "ml", FALSE)))
mlr <- median(clock(function() ladder(cont, "MLR", "ml", FALSE)))
wlsmv <- median(clock(function() ladder(ord, "WLSMV", "pairwise", TRUE)))
cat(sprintf(paste0("{\"lavaan\": \"%s\", \"semTools\": \"%s\", ",
                   "\"ML\": %.6f, \"MLR\": %.6f, \"WLSMV\": %.6f}\n"),
            as.character(packageVersion("lavaan")), as.character(packageVersion("semTools")),
            ml, mlr, wlsmv))
"""


@cache
def wide(file: str) -> Any:
    """The long reference table as one row per patient with ``item_session`` columns."""
    import pandas as pd

    from alliance.sem.longitudinal import wave_name

    long = pd.read_csv(HERE / file)
    out = long.pivot(index="patient", columns="session")  # noqa: PD010 - one row per cell
    out.columns = [wave_name(i, s) for i, s in out.columns]
    return out.reset_index(drop=True)


def time_lavaan(repeat: int, timeout: int = 1800) -> dict[str, Any]:
    """Median seconds of lavaan's ladder per estimator, or why it was not timed."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {"status": "not timed: no Rscript"}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "time.R"
        script.write_text(R_SCRIPT)
        try:
            proc = subprocess.run(
                [rscript, str(script), str(HERE), str(repeat)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"status": f"not timed: over {timeout} s"}
    if proc.returncode != 0:
        return {"status": f"not timed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def benchmark(repeat: int, lavaan: str = "auto") -> dict[str, Any]:
    """Median seconds of each ladder here and in lavaan, their ratios and the status."""
    from alliance.sem.longitudinal import longitudinal_ladder

    reference = json.loads((HERE / "lavaan_longinv.json").read_text())["meta"]
    record: dict[str, Any] = {"patients": 300, "waves": 3, "items_per_wave": 6}
    for case, (file, estimator, ordered) in CASES.items():
        data = wide(file)

        def run(data: Any = data, estimator: str = estimator, ordered: bool = ordered) -> Any:
            return longitudinal_ladder(
                data, reference["model"], reference["waves"], estimator, ordered=ordered
            )

        record[f"{case}_s"] = statistics.median(clock(run, repeat))
    if lavaan != "no":
        lav = time_lavaan(repeat)
        record["lavaan"] = lav
        if all(case in lav for case in CASES):
            for case in CASES:
                record[f"{case}_ratio"] = record[f"{case}_s"] / lav[case]
            ok = max(record[f"{case}_ratio"] for case in CASES) <= TARGET_RATIO
            record["status"] = "met" if ok else "GAP"
    return record


@register("longinv", order=67, description="longitudinal invariance ladder, 3 x 300, vs lavaan")
def longinv_speed(ctx: Context) -> list[Row]:
    """The issue's size, lavaan beside it (``longinv_repeat``, ``longinv_lavaan`` options)."""
    repeat = int(ctx.options.get("longinv_repeat", 2 if ctx.quick else 5))
    rec = benchmark(repeat, ctx.options.get("longinv_lavaan", "auto"))
    lav = rec.get("lavaan", {})
    rows = []
    for case, (_, estimator, ordered) in CASES.items():
        seen = case in lav
        steps = "configural, metric, scalar" + ("" if ordered else ", strict")
        rows.append(
            Row(
                "longinv",
                f"longitudinal ladder {estimator}",
                f"{rec['waves']} sessions x {rec['patients']} patients ({steps})",
                wall_s=rec[f"{case}_s"],
                per_unit=f"ratio {rec[f'{case}_ratio']:.2f}" if seen else "",
                target="<= lavaan",
                status=("met" if rec[f"{case}_ratio"] <= TARGET_RATIO else "GAP") if seen else "",
                notes=(
                    f"median of {repeat} after warm-up; lavaan {lav['lavaan']} with semTools "
                    f"{lav['semTools']} {lav[case]:.3f} s"
                    if seen
                    else f"lavaan {lav.get('status', 'not run')}"
                ),
                versions={"numpy": package_version("numpy")},
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line and print its JSON record."""
    parser = argparse.ArgumentParser(prog="python -m bench.longinv_speed", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lavaan", choices=["auto", "no"], default="auto")
    args = parser.parse_args(argv)
    rec = benchmark(args.repeat, args.lavaan)
    print(json.dumps(rec, indent=1))
    return 0 if rec.get("status", "met") == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
