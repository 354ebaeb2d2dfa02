"""RI-CLPM speed: ML with 5 waves on 400 patients (FIML), beside lavaan 0.6-14.

``python -m bench.panel_speed [--repeat 20] [--lavaan auto]`` prints a JSON record;
``python -m bench.run --only panel`` puts it in bench/RESULTS.md. The data are the lavaan
reference panel of the tests (tests/data/lavaan/riclpm/panel_long.csv: 400 patients, 5
sessions, dropout and single missing scores). Two timings, each the median after one warm-up:

- ``core``: one fit with standard errors and the test statistic, as lavaan's
  ``lavaan(model, missing = "ml", meanstructure = TRUE, int.ov.free = TRUE)``
  (:func:`alliance.sem.fitting.fit_model` on the model with free lags);
- ``full``: what ``alliance riclpm`` computes (:func:`alliance.sem.panel.fit_riclpm`: the models
  with free and with equal lags, fit measures, standardized solutions, the Wald and LR tests of
  equal lags), as lavaan's two fits plus ``fitMeasures``, ``standardizedSolution``,
  ``lavTestWald`` and ``lavTestLRT``.

The issue's target: the ML RI-CLPM in at most lavaan's time (ratio <= 1).
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
PANEL = ROOT / "tests" / "data" / "lavaan" / "riclpm" / "panel_long.csv"
WAVES = [1, 2, 3, 4, 5]
TARGET_RATIO = 1.0

#: Times lavaan on the same panel and syntax after one warm-up. Arguments: wide CSV, free
#: syntax file, equal syntax file, repeat.
R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(lavaan))
d <- read.csv(args[1])
free <- paste(readLines(args[2]), collapse = "\n")
equal <- paste(readLines(args[3]), collapse = "\n")
n <- as.integer(args[4])
con <- paste(readLines(args[5]), collapse = "\n")
fit1 <- function(m) lavaan(m, data = d, missing = "ml", meanstructure = TRUE, int.ov.free = TRUE)
core <- function() fit1(free)
full <- function() {
  f <- fit1(free); e <- fit1(equal)
  fitMeasures(f); standardizedSolution(f); fitMeasures(e); standardizedSolution(e)
  lavTestWald(f, constraints = con); lavTestLRT(f, e)
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


def wide_panel() -> Any:
    """The reference panel as one row per patient (x: alliance, y: symptoms)."""
    from alliance.panel.data import long_panel, read_long_table, wide_panel

    frame, where = read_long_table(PANEL)
    long = long_panel(
        frame, id_col="patient", time_col="session", x_col="alliance", y_col="symptoms",
        where=where,
    )  # fmt: skip
    return wide_panel(long, WAVES)[0]


def time_lavaan(wide: Any, repeat: int, timeout: int = 900) -> dict[str, Any]:
    """The median seconds of lavaan (core and full), or why it was not timed."""
    from alliance.sem.panel import equal_lag_constraints, riclpm_syntax

    rscript = shutil.which("Rscript")
    if rscript is None:
        return {"status": "not timed: no Rscript"}
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "data.csv": None,
            "free.lav": riclpm_syntax(WAVES),
            "equal.lav": riclpm_syntax(WAVES, constrain_lags=True),
            "con.txt": "\n".join(equal_lag_constraints(WAVES)),
            "time.R": R_SCRIPT,
        }
        for name, text in files.items():
            if text is not None:
                (Path(tmp) / name).write_text(text + "\n")
        wide.to_csv(Path(tmp) / "data.csv", index=False)
        paths = [str(Path(tmp) / n) for n in ("data.csv", "free.lav", "equal.lav")]
        command = [
            rscript,
            str(Path(tmp) / "time.R"),
            *paths,
            str(repeat),
            str(Path(tmp) / "con.txt"),
        ]
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"status": f"not timed: over {timeout} s"}
    if proc.returncode != 0:
        return {"status": f"not timed: {proc.stderr.strip()[-200:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def benchmark(repeat: int, lavaan: str = "auto") -> dict[str, Any]:
    """Median seconds here and in lavaan (core and full), their ratios and the status."""
    from alliance.sem.fitting import fit_model
    from alliance.sem.model import ModelSpec
    from alliance.sem.panel import fit_riclpm, riclpm_syntax

    wide = wide_panel()
    syntax = riclpm_syntax(WAVES)

    def core() -> Any:
        return fit_model(wide, ModelSpec.from_syntax(syntax, meanstructure=True), "ML", "fiml")

    def full() -> Any:
        return fit_riclpm(wide, WAVES, "ML", "fiml")

    record: dict[str, Any] = {
        "patients": len(wide),
        "waves": len(WAVES),
        "core_s": statistics.median(clock(core, repeat)),
        "full_s": statistics.median(clock(full, repeat)),
    }
    if lavaan != "no":
        lav = time_lavaan(wide, repeat)
        record["lavaan"] = lav
        if "core_s" in lav:
            record["core_ratio"] = record["core_s"] / lav["core_s"]
            record["full_ratio"] = record["full_s"] / lav["full_s"]
            ok = max(record["core_ratio"], record["full_ratio"]) <= TARGET_RATIO
            record["status"] = "met" if ok else "GAP"
    return record


@register("panel", order=65, description="RI-CLPM, ML, 5 waves x 400 patients, beside lavaan")
def panel_speed(ctx: Context) -> list[Row]:
    """The issue's size, lavaan beside it (``panel_repeat``, ``panel_lavaan`` options)."""
    repeat = int(ctx.options.get("panel_repeat", 3 if ctx.quick else 20))
    rec = benchmark(repeat, ctx.options.get("panel_lavaan", "auto"))
    lav = rec.get("lavaan", {})
    rows = []
    for key, step in (("core", "ML fit (FIML)"), ("full", "alliance riclpm (both models, tests)")):
        seen = f"{key}_s" in lav
        rows.append(
            Row(
                "panel",
                f"RI-CLPM {step}",
                f"{rec['waves']} waves x {rec['patients']} patients",
                wall_s=rec[f"{key}_s"],
                per_unit=f"ratio {rec[f'{key}_ratio']:.2f}" if seen else "",
                target="<= lavaan",
                status=("met" if rec[f"{key}_ratio"] <= TARGET_RATIO else "GAP") if seen else "",
                notes=(
                    f"median of {repeat} after warm-up; lavaan {lav['lavaan']} "
                    f"{lav[f'{key}_s']:.3f} s"
                    if seen
                    else f"lavaan {lav.get('status', 'not run')}"
                ),
                versions={"numpy": package_version("numpy")},
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line and print its JSON record."""
    parser = argparse.ArgumentParser(prog="python -m bench.panel_speed", description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--lavaan", choices=["auto", "no"], default="auto")
    args = parser.parse_args(argv)
    rec = benchmark(args.repeat, args.lavaan)
    print(json.dumps(rec, indent=1))
    return 0 if rec.get("status", "met") == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
