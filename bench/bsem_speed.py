"""Bayesian SEM speed: 12 ordinal items on 600 respondents, beside the WLSMV and ML fits.

``python -m bench.bsem_speed [--persons 600]`` prints a JSON record; ``python -m bench.run --only
bsem`` puts it in bench/RESULTS.md. The issue's target (issue 18): the BSEM of 12 ordinal items
on 600 patients passing its diagnostics in at most 120 s on 2 cores, measured beside the
frequentist fit of the same CFA (``fit_cfa``: WLSMV, the ordinal estimator, and ML treating the
answers as continuous).

The BSEM runs as a user runs it, ``alliance bsem DATA --model M.lav --ordered --out DIR`` with
the default sampler (2 chains x 1,000 tuning + 2,000 draws, target acceptance .95), twice:
first with an empty PyTensor compile folder (a new machine: numba compiles every operation of
the model), then again with the folder the first run filled (every later fit on the machine).
The data: the 3-factor, 12-item model of tests/bayes/test_bsem.py (loadings .6-.8, factor
correlations .4-.6) with two residual correlations of .3 and a cross-loading of .4 planted, cut
into five categories at -1.5, -0.5, 0.3 and 1.2 standard deviations.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

TARGET_S = 120.0
ITEMS = [f"y{j + 1}" for j in range(12)]
SYNTAX = "f1 =~ y1 + y2 + y3 + y4\nf2 =~ y5 + y6 + y7 + y8\nf3 =~ y9 + y10 + y11 + y12\n"
LOADINGS = [0.7, 0.6, 0.8, 0.7, 0.75, 0.65, 0.7, 0.6, 0.6, 0.8, 0.7, 0.75]
PHI = np.array([[1.0, 0.5, 0.4], [0.5, 1.0, 0.6], [0.4, 0.6, 1.0]])
CUTS = np.array([-1.5, -0.5, 0.3, 1.2])


def simulate(n_persons: int, seed: int) -> pd.DataFrame:
    """Five-point answers of the planted 3-factor model (module docstring)."""
    rng = np.random.default_rng(seed)
    p = len(ITEMS)
    lam = np.zeros((p, 3))
    lam[np.arange(p), np.repeat(np.arange(3), 4)] = LOADINGS
    lam[3, 1] = 0.4  # y4 on f2
    resid = np.eye(p)
    for a, b in [(5, 1), (10, 6)]:  # y6~~y2, y11~~y7
        resid[a, b] = resid[b, a] = 0.3
    sigma = lam @ PHI @ lam.T + 0.5 * resid
    latent = rng.multivariate_normal(np.zeros(p), sigma, size=n_persons)
    z = (latent - latent.mean(axis=0)) / latent.std(axis=0, ddof=1)
    return pd.DataFrame(np.searchsorted(CUTS, z) + 1, columns=ITEMS)


def frequentist(data: pd.DataFrame, repeat: int) -> dict[str, Any]:
    """Median seconds of ``fit_cfa`` WLSMV and ML on the same answers (after a warm-up)."""
    from alliance.sem import fit_cfa

    record: dict[str, Any] = {}
    for estimator in ("WLSMV", "ML"):
        fit_cfa(data, SYNTAX, estimator=estimator, std_lv=True)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fit = fit_cfa(data, SYNTAX, estimator=estimator, std_lv=True)
            times.append(time.perf_counter() - start)
        record[estimator] = {"s": float(np.median(times)), "converged": bool(fit["converged"])}
    return record


def run_bsem(csv: Path, model: Path, out: Path, compiledir: Path) -> dict[str, Any]:
    """``alliance bsem --ordered`` in a new process; wall time, the summary's numbers."""
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={compiledir}")
    alliance = Path(sys.executable).with_name("alliance")  # the console script of the venv
    command = [str(alliance), "bsem", str(csv), "--model", str(model)]
    command += ["--ordered", "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    record: dict[str, Any] = {
        "wall_s": wall,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "peak_mib": after.ru_maxrss / 1024,
        "returncode": proc.returncode,
    }
    summary_path = out / "summary.json"
    if not summary_path.exists():
        record["status"] = f"no summary: {proc.stderr.strip()[-300:]}"
        return record
    summary = json.loads(summary_path.read_text())
    diagnostics = summary.get("diagnostics", {})
    record |= {
        "status": summary["status"],
        "compile_s": summary["timing"]["compile_s"],
        "sampling_s": summary["timing"]["sampling_s"],
        "min_ess_bulk": diagnostics.get("min_ess_bulk"),
        "min_ess_tail": diagnostics.get("min_ess_tail"),
        "max_r_hat": diagnostics.get("max_r_hat"),
        "divergences": diagnostics.get("divergences"),
        "failures": diagnostics.get("failures"),
        "ppp": summary.get("ppp", {}).get("ppp"),
        "large": [row.get("pair") for row in summary.get("large_residual_correlations", [])],
    }
    residuals = out / "residual_correlations.csv"
    if residuals.exists():
        top = pd.read_csv(residuals).nlargest(2, "mean")
        record["largest"] = [f"{r.pair} {r.mean:.2f}" for r in top.itertuples()]
    return record


def benchmark(n_persons: int, seed: int, repeat: int, workdir: Path) -> dict[str, Any]:
    """The frequentist fits, then the BSEM with an empty and with a filled compile folder."""
    data = simulate(n_persons, seed)
    workdir.mkdir(parents=True, exist_ok=True)
    csv, model = workdir / "answers.csv", workdir / "three_factors.lav"
    data.to_csv(csv, index=False)
    model.write_text(SYNTAX)
    record: dict[str, Any] = {"persons": n_persons, "frequentist": frequentist(data, repeat)}
    with tempfile.TemporaryDirectory(dir=workdir) as compiledir:
        record["first"] = run_bsem(csv, model, workdir / "first", Path(compiledir))
        record["again"] = run_bsem(csv, model, workdir / "again", Path(compiledir))
    return record


def _status(run: dict[str, Any]) -> str:
    return "met" if run.get("status") == "pass" and run["wall_s"] <= TARGET_S else "GAP"


def _notes(run: dict[str, Any]) -> str:
    if "compile_s" not in run:
        return str(run.get("status"))
    return (
        f"diagnostics {run['status']}; compile {run['compile_s']:.1f} s, sampling "
        f"{run['sampling_s']:.1f} s; min ESS bulk {run['min_ess_bulk']:.0f}, tail "
        f"{run['min_ess_tail']:.0f}; max R-hat {run['max_r_hat']:.3f}; divergences "
        f"{run['divergences']}; PPP {run['ppp']:.3f}; flagged residual correlations "
        f"{', '.join(run['large']) or 'none'} (largest: {', '.join(run.get('largest', []))}; "
        f"planted y6~~y2, y11~~y7 .3); CPU {run['cpu_s']:.0f} s"
    )


@register("bsem", order=78, description="ordinal BSEM, 12 items x 600, beside WLSMV and ML")
def bsem_speed(ctx: Context) -> list[Row]:
    """The issue's size (``bsem_persons`` option), first run and run again."""
    n_persons = int(ctx.options.get("bsem_persons", 600))
    repeat = int(ctx.options.get("bsem_repeat", 1 if ctx.quick else 5))
    rec = benchmark(n_persons, ctx.seed, repeat, ctx.workdir / "bsem")
    size = f"12 five-point items x {n_persons:,} respondents"
    versions = {"nutpie": package_version("nutpie"), "pymc": package_version("pymc")}
    rows = []
    for estimator, fit in rec["frequentist"].items():
        rows.append(
            Row("bsem", f"CFA {estimator} (fit_cfa), same answers", size, wall_s=fit["s"],
                notes=f"median of {repeat} after warm-up; converged {fit['converged']}",
                versions=versions)
        )  # fmt: skip
    for key, label in [("first", "empty compile folder"), ("again", "compile folder filled")]:
        run = rec[key]
        rows.append(
            Row("bsem", f"BSEM ordinal, prior variance .01 (alliance bsem --ordered), {label}",
                size, wall_s=run["wall_s"], peak_mib=run.get("peak_mib"),
                memory_method="largest RSS of any bench child so far (getrusage)",
                target=f"<= {TARGET_S:g} s, diagnostics pass", status=_status(run),
                notes=_notes(run), versions=versions)
        )  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line and print its JSON record."""
    parser = argparse.ArgumentParser(prog="python -m bench.bsem_speed", description=__doc__)
    parser.add_argument("--persons", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bsem-bench")
    args = parser.parse_args(argv)
    rec = benchmark(args.persons, args.seed, args.repeat, args.workdir)
    print(json.dumps(rec, indent=1))
    return 0 if _status(rec["again"]) == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
