"""Benchmark the therapist model: PyMC default NUTS vs nutpie, demo site and 10,000 patients."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
KEY = ["b_within", "b_between"]


def simulated_tables(
    n_patients: int = 10_000, n_therapists: int = 500, seed: int = 1
) -> dict[str, pd.DataFrame]:
    """Tidy tables for the therapist model: alliance at session 3, PHQ-9 at sessions 1 and 12.

    Alliance ``A = therapist (var .06) + patient (.70) + session (.24)`` on the WAI-SR mean
    scale (mean 4, SD 0.6); PHQ-9 change ``-5.5 - 0.3 (intake - 15) - 1.2 patient - 3.0
    therapist + N(0, 3)`` as in the demo generator (no dropout, no rounding).
    """
    rng = np.random.default_rng(seed)
    therapist = rng.integers(0, n_therapists, n_patients)
    a_t = rng.normal(0, np.sqrt(0.06), n_therapists)
    a_p = rng.normal(0, np.sqrt(0.70), n_patients)
    alliance = a_t[therapist] + a_p + rng.normal(0, np.sqrt(0.24), n_patients)
    intake = rng.normal(15, 5, n_patients)
    change = (
        -5.5 - 0.3 * (intake - 15) - 1.2 * a_p - 3.0 * a_t[therapist] + rng.normal(0, 3, n_patients)
    )
    ids = [f"P{i:05d}" for i in range(n_patients)]
    tids = [f"T{j:03d}" for j in therapist]
    scores = pd.DataFrame(
        {
            "patient_id": ids,
            "therapist_id": tids,
            "session": 3,
            "rater": "client",
            "total_mean": 4 + 0.6 * alliance,
        }
    )
    outcomes = pd.concat(
        [
            pd.DataFrame(
                {
                    "patient_id": ids,
                    "session": s,
                    "timepoint": "session",
                    "measure": "phq9",
                    "value": v,
                }
            )
            for s, v in ((1, intake), (12, intake + change))
        ],
        ignore_index=True,
    )
    return {"scores": scores, "outcomes": outcomes}


def _ess(idata: Any) -> dict[str, float]:
    import arviz as az

    ess = az.ess(idata, var_names=KEY)
    return {k: float(ess[k]) for k in KEY}


def run_pymc_default(model: Any, seed: int) -> dict[str, Any]:
    """PyMC's defaults (1,000 tune + 1,000 draws, target_accept 0.8), 2 chains on 2 cores."""
    import pymc as pm

    t0 = time.perf_counter()
    model.logp_dlogp_function()  # what NUTS compiles (C, cached on disk across runs)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    idata = pm.sample(
        chains=2,
        cores=2,
        random_seed=seed,
        model=model,
        progressbar=False,
        compute_convergence_checks=False,
    )
    wall = time.perf_counter() - t0
    sampling = float(idata.sample_stats.attrs["sampling_time"])
    return _row("pymc (default NUTS)", idata, compile_s, sampling, wall + compile_s)


def run_pipeline(model: Any, seed: int) -> dict[str, Any]:
    """The pipeline's sampler settings with nutpie (alliance.bayes.sampling)."""
    from alliance.bayes.sampling import DEFAULT_SAMPLER as D
    from alliance.bayes.sampling import sample

    idata, timing = sample(model, {"backend": "nutpie", "seed": seed})
    return _row(
        f"nutpie (pipeline: {D['tune']:,} tune + {D['draws']:,} draws, "
        f"target_accept {D['target_accept']})",
        idata,
        timing["compile_s"],
        timing["sampling_s"],
        timing["total_s"],
    )


def _row(name: str, idata: Any, compile_s: float, sampling_s: float, total_s: float) -> dict:
    from alliance.bayes.diagnostics import check

    ess = _ess(idata)
    status = check(idata)
    return {
        "sampler": name,
        "compile_s": round(compile_s, 2),
        "sampling_s": round(sampling_s, 2),
        "total_s": round(total_s, 2),
        **{f"ess_bulk_{k}": round(v) for k, v in ess.items()},
        **{f"ess_per_s_sampling_{k}": round(v / sampling_s, 1) for k, v in ess.items()},
        **{f"ess_per_s_total_{k}": round(v / total_s, 1) for k, v in ess.items()},
        "b_within_mean": round(float(idata.posterior["b_within_points"].mean()), 3),
        "b_between_mean": round(float(idata.posterior["b_between_points"].mean()), 3),
        "status": status["status"],
        "failures": status["failures"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print JSON and a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--site", default=str(ROOT / "results" / "site_a"))
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--therapists", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    from alliance.bayes.data import patient_data
    from alliance.bayes.models import therapist_model

    datasets = {
        f"demo {Path(args.site).name}": args.site,
        f"simulated {args.patients} patients / {args.therapists} therapists": simulated_tables(
            args.patients, args.therapists, seed=1
        ),
    }
    rows = []
    if not Path(args.site).is_dir():
        # the demo rows need a demo run's results; the simulated rows do not
        label = f"demo {Path(args.site).name}"
        del datasets[label]
        rows.append(
            {
                "dataset": label,
                "sampler": "pymc and nutpie",
                "status": "skipped",
                "reason": f"{args.site} not found: run `make demo` first",
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    for label, source in datasets.items():
        data = patient_data(source)
        for runner in (run_pymc_default, run_pipeline):
            model = therapist_model(data)
            row = {
                "dataset": label,
                "n_patients": data.info["n_patients"],
                "n_therapists": data.info["n_therapists"],
                **runner(model, args.seed),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    for label in datasets:
        pair = [r for r in rows if r["dataset"] == label and r.get("status") != "skipped"]
        for k in KEY:
            pair[1][f"speedup_ess_per_s_sampling_{k}"] = round(
                pair[1][f"ess_per_s_sampling_{k}"] / pair[0][f"ess_per_s_sampling_{k}"], 1
            )
            pair[1][f"speedup_ess_per_s_total_{k}"] = round(
                pair[1][f"ess_per_s_total_{k}"] / pair[0][f"ess_per_s_total_{k}"], 1
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    cols = [
        "dataset",
        "sampler",
        "compile_s",
        "sampling_s",
        "total_s",
        "ess_bulk_b_within",
        "ess_bulk_b_between",
        "ess_per_s_sampling_b_within",
        "ess_per_s_total_b_within",
        "status",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
