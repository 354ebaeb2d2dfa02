"""Simulation-based calibration of the therapist model (Talts et al. 2018)."""

from __future__ import annotations

import numpy as np
import pytest

from alliance.bayes.calibration import (
    draw_prior,
    rank_uniformity,
    run_sbc,
    simulate_therapist_data,
)


def test_simulated_data_shape():
    rng = np.random.default_rng(1)
    data = simulate_therapist_data(rng, draw_prior(rng), 30, 6)
    f = data.frame
    assert len(f) == 30 and f["therapist_idx"].nunique() == 6
    np.testing.assert_allclose(f.groupby("therapist_idx")["a_within"].mean(), 0, atol=1e-12)
    with pytest.raises(ValueError, match="at least 2 patients per therapist"):
        simulate_therapist_data(rng, draw_prior(rng), 10, 6)


def test_rank_uniformity_flags_skew():
    rng = np.random.default_rng(2)
    assert rank_uniformity(rng.integers(0, 101, 400), 100, 10)["p_value"] > 0.001
    assert rank_uniformity(np.r_[np.zeros(50), np.full(50, 100)], 100, 10)["p_value"] < 0.01
    with pytest.raises(ValueError, match="ranks must lie"):
        rank_uniformity([0, 101], 100, 10)


def test_sbc_fast_subset():
    """20 replications of a tiny dataset: ranks in range, calibrated; a wrong prior is flagged."""
    settings = {"draws": 300, "tune": 300, "thin": 6, "bins": 5, "cores": 2}
    good = run_sbc(20, 24, 6, seed=7, **settings)
    ranks = good["ranks"]
    assert good["n_draws"] == 100
    for name in ("b_within", "b_between", "tau_u"):
        assert ranks[f"rank_{name}"].between(0, good["n_draws"]).all()
    assert good["calibrated"], good["tests"]
    # fitted with slope priors 5x narrower than those the data were drawn from
    bad = run_sbc(20, 24, 6, seed=7, fit_priors={"slope": 0.2}, **settings)
    assert not bad["tests"]["b_between"]["uniform"], bad["tests"]["b_between"]


@pytest.mark.slow
def test_sbc_full():
    """200 replications, 20 bins: ranks of every key parameter pass chi-square at alpha .01."""
    result = run_sbc(200, 40, 8, seed=11, bins=20)
    assert result["calibrated"], {k: v["p_value"] for k, v in result["tests"].items()}
