import json

import arviz as az
import numpy as np
import pandas as pd
import pytest

from alliance.bayes.api import build_data, fit_model
from alliance.bayes.diagnostics import SUMMARY_COLUMNS, check
from alliance.bayes.models import build_model
from alliance.bayes.sampling import sample

SMALL = {"backend": "pymc", "draws": 300, "tune": 300, "seed": 3}


def test_fit_outcome_writes_outputs(demo_tables, tmp_path):
    result = fit_model(demo_tables("site_c"), "outcome", sampler=SMALL, out_dir=tmp_path)
    for name in (
        "idata.nc",
        "summary.csv",
        "diagnostics.json",
        "loo_compare.csv",
        "figures/posteriors.png",
        "figures/ppc.pdf",
        "figures/rank.png",
    ):
        assert (tmp_path / name).is_file(), name
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert {"b_alliance", "r_partial", "r_partial_improvement"} <= set(summary["parameter"])
    saved = json.loads((tmp_path / "diagnostics.json").read_text())
    assert saved["status"] in ("pass", "fail") and saved["status"] == result["status"]
    assert saved["effects"]["r_partial_improvement"]["p_expected"] > 0.99
    assert saved["loo_comparison"][0]["model"] == "outcome"  # alliance improves prediction
    idata = az.from_netcdf(tmp_path / "idata.nc")
    assert {"posterior", "log_likelihood", "posterior_predictive", "observed_data"} <= set(
        idata.groups()
    )


def test_same_seed_same_summary(demo_tables, tmp_path):
    a = fit_model(
        demo_tables("site_c"), "outcome", sampler=SMALL, out_dir=tmp_path / "a", figures=False
    )
    b = fit_model(
        demo_tables("site_c"), "outcome", sampler=SMALL, out_dir=tmp_path / "b", figures=False
    )
    assert (tmp_path / "a" / "summary.csv").read_bytes() == (
        tmp_path / "b" / "summary.csv"
    ).read_bytes()
    assert a["effects"] == b["effects"]


def test_sensitivity_refit_is_the_same_posterior_without_the_extras(demo_tables, tmp_path):
    """A prior-sensitivity refit samples the same posterior (same seed, same summary bytes)
    and writes only what the sensitivity table reads: no comparison model, predictive
    checks, LOO, idata.nc or figures."""
    full = fit_model(demo_tables("site_c"), "outcome", sampler=SMALL, out_dir=tmp_path / "full")
    refit = fit_model(
        demo_tables("site_c"), "outcome", sampler=SMALL, out_dir=tmp_path / "refit", refit=True
    )
    assert (tmp_path / "refit" / "summary.csv").read_bytes() == (
        tmp_path / "full" / "summary.csv"
    ).read_bytes()
    assert refit["status"] == full["status"] and refit["effects"] == full["effects"]
    assert {"loo", "loo_comparison", "prior_predictive"} & set(refit) == set()
    written = {p.name for p in (tmp_path / "refit").iterdir()}
    assert written == {"summary.csv", "summary.md", "diagnostics.json"}
    assert (tmp_path / "full" / "figures").is_dir() and (tmp_path / "full" / "idata.nc").is_file()


def test_prior_sensitivity_refits_each_scale_in_one_call(demo_tables, tmp_path):
    """The workflow's sensitivity job: each refit is fit_model's refit with the priors scaled
    (same summary bytes), the default fit (scale 1) is read, not refit, and the table holds
    each refit's mean."""
    from alliance.bayes.priors import DEFAULT_PRIORS, scale_priors
    from alliance.bayes.sensitivity import prior_sensitivity

    data = demo_tables("site_c")
    fit_model(data, "outcome", sampler=SMALL, out_dir=tmp_path / "outcome_x1", refit=True)
    table = prior_sensitivity(
        data,
        "outcome",
        tmp_path / "outcome_x1" / "summary.csv",
        tmp_path,
        [1, 0.5, 2],
        priors=DEFAULT_PRIORS,
        sampler=SMALL,
    ).set_index("parameter")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "outcome_x0.5",
        "outcome_x1",
        "outcome_x2",
    ]
    fit_model(
        data,
        "outcome",
        priors=scale_priors(DEFAULT_PRIORS, 2.0),
        sampler=SMALL,
        out_dir=tmp_path / "alone",
        refit=True,
    )
    assert (tmp_path / "alone" / "summary.csv").read_bytes() == (
        tmp_path / "outcome_x2" / "summary.csv"
    ).read_bytes()
    for scale in ("0.5", "2"):
        refit = pd.read_csv(tmp_path / f"outcome_x{scale}" / "summary.csv").set_index("parameter")
        assert table.loc["b_alliance", f"mean_x{scale}"] == refit.loc["b_alliance", "mean"]
    assert table.loc["b_alliance", "max_shift_sd"] >= 0


def test_pathological_fit_is_flagged(demo_tables):
    # an absurd prior (SD 1e-4 on intercept and slopes: scales 10,000x apart from sigma) with
    # tuning too short to adapt step size and mass matrix to it
    data = build_data(demo_tables("site_c"), "outcome")
    model = build_model("outcome", data, {"slope": 1e-4, "intercept": 1e-4})
    idata, _ = sample(model, {"backend": "pymc", "draws": 1000, "tune": 5, "seed": 1})
    result = check(idata)
    assert result["status"] == "fail" and result["failures"]


@pytest.mark.slow
def test_nutpie_tune5_is_flagged_and_reproducible(demo_tables):
    data = build_data(demo_tables("site_b"), "outcome")
    model = build_model("outcome", data)
    bad, _ = sample(model, {"backend": "nutpie", "draws": 1000, "tune": 5, "seed": 1})
    assert check(bad)["status"] == "fail"
    a, _ = sample(model, {"backend": "nutpie", "draws": 500, "tune": 500, "seed": 2})
    b, _ = sample(model, {"backend": "nutpie", "draws": 500, "tune": 500, "seed": 2})
    assert a.posterior.equals(b.posterior)


def test_invalid_model(demo_tables):
    with pytest.raises(ValueError, match="model must be one of"):
        fit_model(demo_tables("site_c"), "outcome_null")


def test_small_pymc_model_samples_its_chains_in_process_with_the_same_draws(demo_tables):
    """Chains in turn in-process (no child processes for a 4-parameter model) give the draws
    PyMC's parallel chain processes give: each chain has its own seed."""
    import pymc as pm

    from alliance.bayes.sampling import _pymc_cores

    data = build_data(demo_tables("site_c"), "outcome")
    model = build_model("outcome", data)
    assert _pymc_cores(model, {"cores": 2}) == 1
    settings = {"backend": "pymc", "draws": 200, "tune": 200, "seed": 3, "cores": 2}
    ours, _ = sample(model, settings)
    theirs = pm.sample(
        draws=200,
        tune=200,
        chains=2,
        cores=2,
        random_seed=3,
        model=model,
        progressbar=False,
        target_accept=0.95,
        compute_convergence_checks=False,
    )
    for name in ours.posterior.data_vars:
        np.testing.assert_array_equal(ours.posterior[name], theirs.posterior[name])


def test_nutpie_compiles_without_fast_math(monkeypatch, rng):
    """The draws must not depend on PyTensor's on-disk numba cache (with fast-math a warm cache
    gave other draws than a cold one for the demo's site_b therapist model): nutpie's
    compilation runs with IEEE semantics, the cache left as configured, and the settings are
    restored after it."""
    import pymc as pm
    import pytensor
    from pytensor.tensor import extra_ops

    import alliance.bayes.nutpie_callbacks as callbacks

    seen = []

    def compile_model(model):
        seen.append((pytensor.config.numba__fastmath, pytensor.config.numba__cache))
        assert extra_ops.broadcast_shape_iter is callbacks._broadcast_shape_iter_in_input_order
        raise RuntimeError("stop after the compilation was entered")

    monkeypatch.setattr(callbacks, "compile_for_nutpie", compile_model)
    before = (pytensor.config.numba__fastmath, pytensor.config.numba__cache)
    with pm.Model() as model:
        pm.Normal("x", 0, 1, shape=3)
    with pytest.raises(RuntimeError, match="stop after the compilation"):
        sample(model, {"backend": "nutpie", "seed": 1})
    assert seen == [(False, before[1])]
    assert (pytensor.config.numba__fastmath, pytensor.config.numba__cache) == before


@pytest.mark.slow
def test_same_draws_with_a_cold_and_a_warm_compile_cache(tmp_path):
    """Same machine, same seed: a fit compiled with an empty PyTensor cache (a reviewer's
    first run) and one with the cache it left (the second run) give the same draws. Run in
    fresh processes, as Snakemake's jobs are; the demo's site_b therapist model differed
    before compilation was made independent of the cache."""
    import os
    import subprocess
    import sys

    script = tmp_path / "fit.py"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "from alliance.bayes.data import load_tables, patient_data\n"
        "from alliance.bayes.models import build_model\n"
        "from alliance.bayes.sampling import sample\n"
        "from alliance.data.ingest import ingest_to\n"
        "from alliance.describe.stage import score_dataset\n"
        "out = Path(sys.argv[1])\n"
        "if not (out / 'scores').is_dir():\n"
        "    ingest_to(Path(sys.argv[2]), out / 'ingest')\n"
        "    score_dataset(out / 'ingest', out / 'scores')\n"
        "d = patient_data(load_tables(out))\n"
        "idata, _ = sample(build_model('therapist', d), {'backend': 'nutpie', 'seed': 20261125,"
        " 'chains': 2, 'draws': 2000, 'tune': 1000, 'target_accept': 0.95, 'cores': 1})\n"
        "print(repr(float(idata.posterior['b_within'].values.mean())))\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'cache'}"}
    codebook = root / "config" / "codebooks" / "site_b.yaml"
    runs = [
        subprocess.run(
            [sys.executable, str(script), str(tmp_path / "site_b"), str(codebook)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
