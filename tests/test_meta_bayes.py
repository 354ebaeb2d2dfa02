"""Bayesian random-effects meta-analysis: agreement with REML, recovery, reproducibility."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.bayes.diagnostics import SUMMARY_COLUMNS, THRESHOLDS
from alliance.meta import bayes as meta_bayes
from alliance.meta import pooling as meta

REF_DIR = Path(__file__).parent / "data" / "metafor"
# Small runs keep the file well under a minute (nutpie compiles the model once, ~10 s).
FAST = {"chains": 2, "draws": 1000, "tune": 1000, "cores": 2, "seed": 11}


@pytest.fixture(scope="module")
def molloy() -> pd.DataFrame:
    return pd.read_csv(REF_DIR / "effects.csv")


@pytest.fixture(scope="module")
def molloy_fit(molloy: pd.DataFrame) -> tuple[dict, object]:
    y = meta.fisher_z(molloy["r"].to_numpy())
    v = meta.fisher_z_variance(molloy["n"].to_numpy())
    return meta_bayes.fit_bayes_meta(y, v, prior_mu_sd=1.0, prior_tau_scale=0.5, **FAST)


def test_posterior_mean_close_to_reml(molloy_fit: tuple[dict, object]) -> None:
    """With weak priors (mu ~ N(0, 1), tau ~ HalfNormal(0.5) on z) the posterior mean of mu
    lies within 0.02 of the REML estimate 0.1499 (metafor), and tau within 0.03 of 0.090."""
    summary, _ = molloy_fit
    ref = json.loads((REF_DIR / "metafor_reml.json").read_text())
    assert summary["mu"]["mean"] == pytest.approx(ref["pooled_z"]["estimate"], abs=0.02)
    assert summary["tau"]["median"] == pytest.approx(ref["heterogeneity"]["tau"], abs=0.03)
    # The Bayesian interval for r is close to metafor's CI (it also carries tau's uncertainty).
    assert summary["pooled_r"]["eti.lb"] == pytest.approx(ref["pooled_r"]["ci.lb"], abs=0.02)
    assert summary["pooled_r"]["eti.ub"] == pytest.approx(ref["pooled_r"]["ci.ub"], abs=0.02)
    # A new study's r is more uncertain than the pooled r.
    pred, pooled = summary["prediction_r"], summary["pooled_r"]
    assert pred["eti.lb"] < pooled["eti.lb"] and pred["eti.ub"] > pooled["eti.ub"]
    assert pred["eti.ub"] == pytest.approx(ref["pooled_r"]["pi.ub"], abs=0.05)


def test_summary_layout_and_diagnostics(molloy_fit: tuple[dict, object]) -> None:
    summary, idata = molloy_fit
    json.dumps(summary, allow_nan=False)
    assert summary["k"] == 16
    for key in ("mu", "pooled_r", "tau", "tau2", "prediction_r"):
        s = summary[key]
        assert s["eti.lb"] <= s["median"] <= s["eti.ub"]
        for stat in ("mean", "median", "sd", "eti.lb", "eti.ub"):
            assert 0 < s[f"mcse_{stat}"] < 0.25 * s["sd"]  # FAST: a few hundred ESS
    diag = summary["diagnostics"]
    assert diag["status"] == "pass", diag["problems"]
    assert diag["rhat_max"] <= 1.01 and diag["ess_bulk_min"] >= 400 and diag["divergences"] == 0
    assert diag["ess_tail_min"] >= 400 and min(diag["bfmi"]) >= 0.3
    # the one diagnostics path of every PyMC model: its thresholds and summary columns
    assert diag["criteria"]["rhat_max"] == THRESHOLDS["r_hat"]
    assert diag["criteria"]["ess_tail_min"] == THRESHOLDS["ess_tail"]
    rows = {row["parameter"]: row for row in summary["summary"]}
    assert sorted(rows) == ["mu", "tau"] and list(rows["mu"]) == SUMMARY_COLUMNS
    assert rows["mu"]["mean"] == pytest.approx(summary["mu"]["mean"])
    assert rows["tau"]["mcse_median"] == pytest.approx(summary["tau"]["mcse_median"])
    assert "log_likelihood" in idata.groups()  # sampled by alliance.bayes.sampling.sample
    mu = idata.posterior["mu"].to_numpy()
    assert mu.shape == (FAST["chains"], FAST["draws"])
    assert summary["pooled_r"]["mean"] == pytest.approx(float(np.tanh(mu).mean()))
    assert summary["settings"]["prior_tau"] == "HalfNormal(0.5)"


def test_same_seed_same_numbers(molloy: pd.DataFrame, molloy_fit: tuple[dict, object]) -> None:
    again = meta_bayes.pool_effects_bayes(molloy, prior_mu_sd=1.0, prior_tau_scale=0.5, **FAST)
    assert again == molloy_fit[0]


def test_recovers_known_mu_and_tau() -> None:
    """Simulated: 60 studies, true mu = 0.30 and tau = 0.10 on z, n between 40 and 400."""
    gen = np.random.default_rng(20261125)
    k, mu, tau = 60, 0.30, 0.10
    n = gen.integers(40, 401, k)
    v = 1 / (n - 3)
    y = gen.normal(gen.normal(mu, tau, k), np.sqrt(v))
    summary, _ = meta_bayes.fit_bayes_meta(y, v, tau_prior="halfcauchy", **FAST)
    assert summary["mu"]["eti.lb"] < mu < summary["mu"]["eti.ub"]
    assert summary["mu"]["mean"] == pytest.approx(mu, abs=0.03)
    assert summary["tau"]["eti.lb"] < tau < summary["tau"]["eti.ub"]
    assert summary["pooled_r"]["median"] == pytest.approx(math.tanh(mu), abs=0.03)
    assert summary["settings"]["prior_tau"] == "HalfCauchy(0.5)"


def test_pymc_sampler_agrees(molloy: pd.DataFrame, molloy_fit: tuple[dict, object]) -> None:
    settings = {**FAST, "draws": 500, "tune": 500}
    out = meta_bayes.pool_effects_bayes(molloy, sampler="pymc", **settings)
    assert out["mu"]["mean"] == pytest.approx(molloy_fit[0]["mu"]["mean"], abs=0.01)
    assert out["settings"]["sampler"] == "pymc"


def test_interval_summary() -> None:
    x = np.arange(1, 101, dtype=float)
    s = meta_bayes._interval(x, 0.9)
    assert s["mean"] == 50.5 and s["median"] == 50.5
    assert (s["eti.lb"], s["eti.ub"]) == pytest.approx((5.95, 95.05))


def test_interval_mcse_matches_independent_draws(rng) -> None:
    """Independent normal draws: the MCSE of the mean is 1 / sqrt(n), of the SD 1 / sqrt(2 n),
    of a quantile sqrt(p (1 - p) / n) / phi(z_p). A quantile's MCSE is itself estimated from
    two order statistics about 60 ranks apart here, so it scatters by about 15%: tolerance
    30% (tests/bayes/test_diagnostics.py checks the calibration on 400 replicates)."""
    n = 40_000
    s = meta_bayes._interval(rng.normal(size=(4, n // 4)), 0.95)
    assert s["mcse_mean"] == pytest.approx(1 / math.sqrt(n), rel=0.05)
    assert s["mcse_sd"] == pytest.approx(1 / math.sqrt(2 * n), rel=0.05)
    p, z = 0.025, 1.959963984540054
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    assert s["mcse_eti.lb"] == pytest.approx(math.sqrt(p * (1 - p) / n) / phi, rel=0.3)
    assert s["mcse_median"] == pytest.approx(math.sqrt(0.25 / n) * math.sqrt(2 * math.pi), rel=0.3)


def test_a_short_run_fails_on_its_tail_ess(molloy: pd.DataFrame) -> None:
    """50 draws per chain cannot reach 400 effective draws in the tails: the status says so."""
    out = meta_bayes.pool_effects_bayes(molloy, chains=2, draws=50, tune=200, cores=2, seed=3)
    diag = out["diagnostics"]
    assert diag["status"] == "fail"
    assert diag["ess_tail_min"] < 400
    assert any(p.startswith("tail ESS") for p in diag["problems"]), diag["problems"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau_prior": "uniform"}, "tau_prior must be one of .*, got 'uniform'"),
        ({"sampler": "stan"}, "sampler must be one of .*, got 'stan'"),
        ({"prior_mu_sd": 0}, "prior_mu_sd must be positive, got 0"),
        ({"prior_tau_scale": -1}, "prior_tau_scale must be positive, got -1"),
        ({"chains": 0}, "chains must be a positive whole number, got 0"),
        ({"target_accept": 1.5}, "target_accept must lie in \\(0, 1\\), got 1.5"),
    ],
)
def test_invalid_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        meta_bayes.fit_bayes_meta([0.1, 0.2, 0.3], [0.01, 0.01, 0.02], **kwargs)
