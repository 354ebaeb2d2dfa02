"""Latent-model formulations compared by compile time, sampling time, ESS/s and diagnostics."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Formulations: the marginal (factors integrated out) model the pipeline uses and the
#: full-information ordinal probit with per-patient non-centred factor scores.
FORMULATIONS = ("marginal", "probit")


def demo_site(site: str, workdir: Path) -> Path:
    """Return ``results/{site}`` when the pipeline made it, else ingest and score it afresh."""
    done = ROOT / "results" / site
    if (done / "scores" / "scores.parquet").is_file():
        return done
    from alliance.data.ingest import ingest_to
    from alliance.describe.stage import score_dataset

    out = workdir / site
    ingest_to(ROOT / "config" / "codebooks" / f"{site}.yaml", out / "ingest")
    score_dataset(out / "ingest", out / "scores")
    return out


def run(site: str, formulation: str, workdir: Path, seed: int = 1) -> dict[str, Any]:
    """Fit one formulation to one demo site with nutpie on 2 cores.

    The marginal model (the one the pipeline runs) gets the pipeline's sampler settings
    (:data:`alliance.bayes.sampling.DEFAULT_SAMPLER`), so its status is the pipeline's; the probit
    formulation, a comparison only, gets 2 chains x 1,000 draws (about 100 s of sampling per
    site already), so its ESS and status are for that shorter run.
    :func:`alliance.bayes.sampling.sample` limits BLAS to one thread per chain; without that
    limit (OpenBLAS's default pool on 2 cores) the marginal model sampled 50-90 times slower.
    """
    from alliance.bayes.api import effects
    from alliance.bayes.diagnostics import check
    from alliance.bayes.latent import latent_data, latent_model, latent_probit_model
    from alliance.bayes.sampling import DEFAULT_SAMPLER, sample

    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
    data = latent_data(demo_site(site, workdir))
    build = latent_model if formulation == "marginal" else latent_probit_model
    settings: dict[str, Any] = {"backend": "nutpie", "seed": seed}
    if formulation == "marginal":
        runs = (
            f"pipeline settings: {DEFAULT_SAMPLER['chains']} chains x {DEFAULT_SAMPLER['draws']:,}"
        )
    else:
        settings.update(draws=1000, tune=1000)
        runs = "2 chains x 1,000 draws, comparison only"
    start = time.perf_counter()
    idata, timing = sample(build(data), settings)
    status = check(idata)
    slope = effects(idata, ["b_latent"])["b_latent"]
    ess = float(status["min_ess_bulk"] or 0.0)
    return {
        "dataset": site,
        "model": f"latent {formulation} ({runs})",
        "compile_s": timing["compile_s"],
        "sampling_s": timing["sampling_s"],
        "total_s": round(time.perf_counter() - start, 2),
        "min_ess_bulk": status["min_ess_bulk"],
        "min_ess_tail": status["min_ess_tail"],
        "max_r_hat": status["max_r_hat"],
        "divergences": status["divergences"],
        "min_ess_bulk_per_s": round(ess / timing["sampling_s"], 1),
        "status": status["status"],
        "b_latent_mean": round(slope["mean"], 3),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python bench/latent_speed.py --sites site_b --formulations marginal``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", nargs="+", default=["site_a", "site_b", "site_c"])
    parser.add_argument("--formulations", nargs="+", default=list(FORMULATIONS))
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(site, form, Path(tmp)) for form in args.formulations for site in args.sites]
    text = json.dumps(rows, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
