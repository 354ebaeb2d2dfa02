"""One-stage IPD model: data assembly, the model's derived quantities, the two-stage pooling,
and recovery of simulated truth and of the demo's generating values (slow: sampling).

The demo's truth (data/demo/truth.json, truth_patients.csv): every site follows the same
generating model (``design.site_effects``: none, so the between-site SD of the slope is 0), and
the population partial correlation of the latent session-3 alliance with the latent session-12
PHQ-9 given intake is -.28 (``outcome.patient_level_partial_r``). Fitted to the latent values
of truth_patients.csv the one-stage model must recover both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.bayes.data import InsufficientData
from alliance.meta.analysis import pool_effects
from alliance.meta.ipd import combine_sites, fit_ipd, ipd_model, two_stage

DEMO = Path(__file__).parents[1] / "data" / "demo"
SAMPLER = {"chains": 2, "draws": 4000, "tune": 1000, "target_accept": 0.95, "cores": 2}


def simulate_sites(
    rng: np.random.Generator,
    slopes: list[float],
    n: int = 200,
    therapists: int = 10,
    tau_u: float = 0.2,
    baseline_slope: float = 0.5,
    rho: float = 0.2,
) -> dict[str, pd.DataFrame]:
    """Sites that follow the one-stage model on the standardized scale.

    Alliance and baseline are standard normal (correlation ``rho``); the outcome is
    ``b_s za + c zb + u_j + e`` with the residual variance that makes its variance 1, so the
    within-site standardized slope is ``b_s`` (up to sampling error of the z-scoring). Raw
    values are a linear transform of these (the model z-scores within site).
    """
    frames = {}
    for s, b in enumerate(slopes):
        t = rng.integers(0, therapists, size=n)
        u = rng.normal(0.0, tau_u, size=therapists)
        za = rng.standard_normal(n)
        zb = rho * za + np.sqrt(1 - rho**2) * rng.standard_normal(n)
        explained = b**2 + baseline_slope**2 + 2 * b * baseline_slope * rho + tau_u**2
        y = b * za + baseline_slope * zb + u[t] + rng.normal(0, np.sqrt(1 - explained), size=n)
        frames[f"site_{s}"] = pd.DataFrame(
            {
                "therapist_id": [f"T{k}" for k in t],
                "alliance": 3.5 + 0.6 * za,
                "baseline": 15 + 5 * zb,
                "post": 10 + 6 * y,
            }
        )
    return frames


def test_sites_are_standardized_within_site_and_therapists_nested(rng):
    frames = simulate_sites(rng, [-0.3, -0.2, -0.25], n=40, therapists=4)
    frames["site_1"].loc[0, "post"] = np.nan  # a patient without outcome is left out
    frames["tiny"] = frames["site_2"].head(5)
    data = combine_sites(frames)
    f = data.frame
    assert data.coords["site"] == ["site_0", "site_1", "site_2"]
    assert data.info["excluded_sites"] == {"tiny": "5 patients with alliance, baseline and outcome"}
    assert len(f) == 40 + 39 + 40
    for _, part in f.groupby("site"):
        for col in ("z_alliance", "z_baseline", "z_post"):
            assert part[col].mean() == pytest.approx(0.0, abs=1e-12)
            assert part[col].std(ddof=1) == pytest.approx(1.0)
    # therapist T1 of two sites: two therapists
    assert "site_0:T1" in data.coords["therapist"] and "site_1:T1" in data.coords["therapist"]
    assert data.info["n_therapists"] == f["therapist"].nunique()
    # no patient identifier in the coordinates
    assert data.coords["patient"][:3] == ["0", "1", "2"]
    assert sum(data.scales["weights"]) == pytest.approx(1.0)


def test_fewer_than_two_sites_is_insufficient(rng):
    frames = simulate_sites(rng, [-0.3], n=40)
    with pytest.raises(InsufficientData, match="at least two sites"):
        combine_sites(frames)


def test_derived_correlations_follow_their_formula(rng):
    import pymc as pm

    data = combine_sites(simulate_sites(rng, [-0.3, -0.2, -0.25], n=60, therapists=5))
    model = ipd_model(data, collapsed=False)
    given = {
        model["mu_b"]: np.array(-0.3),
        model["tau_b"]: np.array(0.1),
        model["eta"]: np.array([1.0, -1.0, 0.5]),
        model["tau_u"]: np.array(0.2),
        model["sigma"]: np.array([0.8, 0.9, 1.0]),
    }
    names = ["b_site", "r_site", "r_pooled", "r_pooled_improvement"]
    values = {n: model[n].eval(given, on_unused_input="ignore") for n in names}
    b = -0.3 + 0.1 * np.array([1.0, -1.0, 0.5])
    v = np.array(data.scales["v"])
    w = np.array(data.scales["weights"])
    sigma2 = np.array([0.8, 0.9, 1.0]) ** 2
    assert values["b_site"] == pytest.approx(b)
    assert values["r_site"] == pytest.approx(b * np.sqrt(v) / np.sqrt(b**2 * v + sigma2 + 0.04))
    vbar, noise = w @ v, w @ sigma2 + 0.04
    r = -0.3 * np.sqrt(vbar) / np.sqrt(0.09 * vbar + noise)
    assert values["r_pooled"] == pytest.approx(r)
    assert values["r_pooled_improvement"] == pytest.approx(-r)
    assert isinstance(model, pm.Model)


def test_collapsed_likelihood_integrates_the_slopes_out(rng):
    """The Potential equals the generative likelihood integrated over each site's slope."""
    from scipy import stats

    data = combine_sites(simulate_sites(rng, [-0.3, -0.1], n=30, therapists=3))
    model = ipd_model(data)
    values = {
        "intercept": np.array([0.05, -0.1]),
        "b_baseline": np.array([0.4, 0.6]),
        "mu_b": np.array(-0.2),
        "tau_b": np.array(0.15),
        "tau_u": np.array(0.3),
        "u_raw": rng.standard_normal(len(data.coords["therapist"])),
        "sigma": np.array([0.8, 1.1]),
    }
    given = {model[name]: value for name, value in values.items()}
    ours = float(model["likelihood"].eval(given, on_unused_input="ignore"))
    f = data.frame
    grid = np.linspace(-3.0, 3.0, 60001)
    total = 0.0
    for s in range(2):
        rows = f[f["site_idx"] == s]
        r = (
            rows["z_post"].to_numpy()
            - values["intercept"][s]
            - values["b_baseline"][s] * rows["z_baseline"].to_numpy()
            - values["tau_u"] * values["u_raw"][rows["therapist_idx"].to_numpy()]
        )
        x = rows["z_alliance"].to_numpy()
        sd = values["sigma"][s]
        logs = np.array([stats.norm.logpdf(r, b * x, sd).sum() for b in grid]) + stats.norm.logpdf(
            grid, values["mu_b"], values["tau_b"]
        )
        top = logs.max()
        total += top + np.log(np.trapezoid(np.exp(logs - top), grid))
    assert ours == pytest.approx(total, abs=1e-6)


def test_two_stage_pools_the_sites_as_the_meta_analysis(rng):
    effects = {
        "site_a": {"r": 0.32, "n": 321},
        "site_b": {"r": 0.36, "n": 291},
        "site_c": {"r": 0.35, "n": 253},
        "site_d": {"r": None, "n": 4, "status": "too few"},
    }
    ours = two_stage(effects)
    table = pd.DataFrame(
        [{"study": k, "r": v["r"], "n": v["n"]} for k, v in effects.items() if v["r"]]
    )
    theirs = pool_effects(table)  # checked against metafor in tests/test_meta.py
    assert ours["k"] == 3
    assert ours["pooled_r"]["estimate"] == pytest.approx(theirs["pooled_r"]["estimate"], rel=1e-12)
    assert ours["pooled_r"]["ci.lb"] == pytest.approx(theirs["pooled_r"]["ci.lb"], rel=1e-12)
    assert ours["tau2"] == pytest.approx(theirs["heterogeneity"]["tau2"], abs=1e-12)
    assert two_stage({"a": {"r": 0.3, "n": 50}})["status"] == "skipped"


@pytest.mark.slow
def test_recovers_simulated_slopes_and_their_spread(rng):
    mu, tau = -0.3, 0.12
    slopes = mu + tau * rng.standard_normal(8)
    data = combine_sites(simulate_sites(rng, list(slopes), n=300))
    fit = fit_ipd(data, sampler={**SAMPLER, "seed": 11}, prior_draws=0)
    assert fit["status"] == "pass", fit["diagnostics"]["failures"]
    mu_b, tau_b = fit["effects"]["mu_b"], fit["effects"]["tau_b"]
    assert mu_b["eti95_low"] < slopes.mean() < mu_b["eti95_high"]
    assert mu_b["mean"] == pytest.approx(mu, abs=0.1)
    assert tau_b["eti95_low"] < tau < tau_b["eti95_high"]
    sites = fit["effects"]["b_site"]
    est = np.array([sites[s]["mean"] for s in data.coords["site"]])
    assert np.mean(np.abs(est - slopes)) < 0.06  # each site's slope has an SE of about .05


@pytest.mark.slow
def test_recovers_the_demo_truth():
    truth = json.loads((DEMO / "truth.json").read_text())
    patients = pd.read_csv(DEMO / "truth_patients.csv")
    frames = {
        site: part.rename(
            columns={
                "alliance_session3": "alliance",
                "phq9_intake_latent": "baseline",
                "phq9_session12_latent": "post",
            }
        )
        for site, part in patients.groupby("dataset")
    }
    data = combine_sites(frames)
    fit = fit_ipd(data, sampler={**SAMPLER, "seed": 20261125}, prior_draws=0)
    assert fit["status"] == "pass", fit["diagnostics"]["failures"]
    r_true = truth["outcome"]["patient_level_partial_r"]["value"]  # -0.28
    r = fit["effects"]["r_pooled"]
    assert r["eti95_low"] < r_true < r["eti95_high"]
    assert r["mean"] == pytest.approx(r_true, abs=0.05)
    # no site effects in the generating model: the between-site SD is near 0
    assert truth["design"]["site_effects"].startswith("none")
    assert fit["effects"]["tau_b"]["median"] < 0.1
