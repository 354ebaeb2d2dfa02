"""Simulation-based calibration of the therapist model: rank uniformity and time per replication."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m bench.calibration_speed --reps 200 --json out.json``.

    Runs :func:`alliance.bayes.calibration.run_sbc` (the therapist model compiled once, each
    replication's simulated data swapped in) and writes one row: replications, seconds, the
    chi-square p-value of each parameter's ranks and whether all are uniform at alpha .01.
    """
    from alliance.bayes.calibration import run_sbc

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--therapists", type=int, default=8)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, default=None, help="write the row here")
    args = parser.parse_args(argv)
    result = run_sbc(args.reps, args.patients, args.therapists, seed=args.seed, bins=20)
    ranks = result["ranks"]
    row = {
        "step": "therapist model SBC (nutpie, compiled once)",
        "size": f"{args.reps} reps x {args.patients} patients / {args.therapists} therapists",
        "total_s": result["seconds"],
        "compile_s": result["compile_s"],
        "s_per_rep": round(float(ranks["seconds"].mean()), 3),
        "divergent_reps": int((ranks["divergences"] > 0).sum()),
        **{f"p_{k}": round(v["p_value"], 4) for k, v in result["tests"].items()},
        "status": "met" if result["calibrated"] else "GAP",
    }
    text = json.dumps([row], indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
