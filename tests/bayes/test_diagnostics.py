import arviz as az
import numpy as np
import pandas as pd
import pytest

from alliance.bayes.diagnostics import (
    SUMMARY_COLUMNS,
    check,
    compare_loo,
    loo,
    posterior_statistics,
    prior_predictive_check,
    summarize,
)


def fake_idata(rng, shift=0.0, divergent=0, n_draws=1000, n_obs=30):
    x = rng.standard_normal((2, n_draws))
    x[1] += shift
    div = np.zeros((2, n_draws), dtype=bool)
    div[0, :divergent] = True
    energy = rng.standard_normal((2, n_draws))
    ll = rng.normal(-1.0, 0.1, (2, n_draws, n_obs))
    return az.from_dict(
        posterior={"b": x, "sigma": np.abs(rng.standard_normal((2, n_draws))) + 1},
        sample_stats={"diverging": div, "energy": energy},
        log_likelihood={"y": ll},
    )


def test_healthy_passes(rng):
    result = check(fake_idata(rng))
    assert result["status"] == "pass" and result["failures"] == []
    assert result["chains"] == 2 and result["draws"] == 1000 and len(result["bfmi"]) == 2


def test_disagreeing_chains_and_divergences_fail(rng):
    result = check(fake_idata(rng, shift=1.0, divergent=3))
    assert result["status"] == "fail"
    text = " ".join(result["failures"])
    assert "R-hat" in text and "3 divergent transitions" in text
    assert result["max_r_hat_parameter"] == "b"


def test_too_few_draws_fail(rng):
    result = check(fake_idata(rng, n_draws=100))
    assert any("bulk ESS" in f for f in result["failures"])


def test_stuck_chain_fails_without_warnings(rng):
    idata = az.from_dict(
        posterior={"b": np.ones((2, 500))}, sample_stats={"diverging": np.zeros((2, 500), bool)}
    )
    assert check(idata)["status"] == "fail"


def test_summary_columns(rng):
    table = summarize(fake_idata(rng))
    assert list(table.columns) == SUMMARY_COLUMNS
    assert table["parameter"].tolist() == ["b", "sigma"]
    with pytest.raises(ValueError, match="not in the posterior"):
        summarize(fake_idata(rng), ["nope"])
    with pytest.raises(ValueError, match="unknown threshold"):
        check(fake_idata(rng), thresholds={"rhat": 1.1})


def ar1_chains(rng, phi, chains, draws, elements):
    """Stationary AR(1) chains with unit marginal variance (independent elements)."""
    x = np.empty((chains, draws, elements))
    x[:, 0] = rng.standard_normal((chains, elements))
    noise = rng.standard_normal((chains, draws, elements)) * np.sqrt(1 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


@pytest.mark.parametrize("phi", [0.0, 0.6])
def test_mcse_matches_the_spread_of_replicate_runs(rng, phi):
    """Each column is an independent replicate of the same chain: the spread of the estimates
    across columns is the true Monte Carlo error, which the average MCSE must match.

    400 replicates: the SD across replicates has a relative standard error of about 3.5%; the
    tolerance is 12%. With phi = 0.6 the ESS is a quarter of the draws ((1 - phi) / (1 + phi)).
    """
    draws = ar1_chains(rng, phi, chains=2, draws=1000, elements=400)
    stats = posterior_statistics(draws)
    for estimate in ("mean", "sd", "median", "eti95_low", "eti95_high"):
        spread = np.std(stats[estimate], ddof=1)
        assert np.mean(stats[f"mcse_{estimate}"]) == pytest.approx(spread, rel=0.12), estimate
    theory = np.sqrt((1 + phi) / (1 - phi) / 2000)  # the AR(1) chain's MCSE of the mean
    assert np.mean(stats["mcse_mean"]) == pytest.approx(theory, rel=0.05)
    assert np.all(stats["r_hat"] < 1.02)


def test_posterior_statistics_match_arviz(rng):
    """The MCSEs, R-hat and ESS agree with ArviZ's own functions element by element (ArviZ's
    numba path of ``mcse(method="sd")`` fails under NumPy 2.4, so its NumPy path is used)."""
    draws = ar1_chains(rng, 0.5, chains=2, draws=500, elements=3)
    stats = posterior_statistics(draws)
    az.Numba.disable_numba()
    try:
        for k in range(3):
            x = draws[:, :, k]
            assert stats["mcse_mean"][k] == pytest.approx(float(az.mcse(x, method="mean")))
            assert stats["mcse_sd"][k] == pytest.approx(float(az.mcse(x, method="sd")))
            assert stats["mcse_median"][k] == pytest.approx(float(az.mcse(x, method="median")))
            for column, prob in (("mcse_eti95_low", 0.025), ("mcse_eti95_high", 0.975)):
                expected = float(az.mcse(x, method="quantile", prob=prob))
                assert stats[column][k] == pytest.approx(expected)
            assert stats["r_hat"][k] == pytest.approx(float(az.rhat(x)))
            assert stats["ess_bulk"][k] == pytest.approx(float(az.ess(x, method="bulk")))
            assert stats["ess_tail"][k] == pytest.approx(float(az.ess(x, method="tail")))
            assert stats["eti95_low"][k] == pytest.approx(np.quantile(x, 0.025))
    finally:
        az.Numba.enable_numba()


@pytest.mark.parametrize(
    "method, prob",
    [("bulk", None), ("tail", None), ("mean", None), ("quantile", 0.5), ("quantile", 0.025)],
)
def test_batched_ess_equals_arviz(rng, method, prob):
    """The ESS of all elements at once equals ArviZ's element by element (``az.ess``, whose
    numba variance of the chain means is the default here): chains from anti-correlated to
    nearly stuck (AR(1) with phi -0.6 to 0.995), an odd draw count, a constant element, a
    rounded one (ties in the ranks) and one with a NaN draw."""
    import xarray as xr

    from alliance.bayes.diagnostics import _ess

    blocks = [
        ar1_chains(rng, phi, chains=2, draws=1001, elements=4)
        for phi in (-0.6, 0.0, 0.5, 0.95, 0.995)
    ]
    edge = rng.normal(size=(2, 1001, 3))
    edge[:, :, 0] = 3.0
    edge[:, :, 1] = np.round(edge[:, :, 1])
    edge[0, 5, 2] = np.nan
    draws = np.concatenate([*blocks, edge], axis=2)
    data = xr.Dataset({"x": (("chain", "draw", "element"), draws)})
    kwargs = {"method": method} if prob is None else {"method": method, "prob": prob}
    expected = np.asarray(az.ess(data, **kwargs)["x"], dtype=float)
    got = _ess(draws, method, prob)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[-1]) and got[-3] == pytest.approx(2 * 2 * 500)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_batched_ess_rejects_an_unknown_method(rng):
    from alliance.bayes.diagnostics import _ess

    with pytest.raises(ValueError, match="method must be"):
        _ess(rng.normal(size=(2, 10, 1)), "median")


def test_loo_and_compare(rng):
    a, b = fake_idata(rng), fake_idata(rng)
    b.log_likelihood["y"] = b.log_likelihood["y"] - 0.5
    result = loo(a)
    assert result["n"] == 30 and result["pareto_k_over_0.7"] == 0
    table = compare_loo({"a": a, "b": b})
    assert isinstance(table, pd.DataFrame) and table["model"].tolist() == ["a", "b"]
    assert table.loc[0, "elpd_diff"] == 0 and table.loc[1, "elpd_diff"] == pytest.approx(-15, abs=1)
    with pytest.raises(ValueError, match="at least two"):
        compare_loo({"a": a})


def test_prior_predictive_check_matches_the_analytic_prior_predictive():
    """y_i = b0 + b1 x_i + e, b ~ N(0, 1), sigma ~ HalfNormal(1): Var(y_i) = 2 + x_i^2."""
    import pymc as pm

    from alliance.bayes.sampling import prior_predictive

    x = np.array([0.0, 1.0, 2.0] * 20)
    with pm.Model() as model:
        b0 = pm.Normal("b0", 0, 1)
        b1 = pm.Normal("b1", 0, 1)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", b0 + b1 * x, sigma, observed=np.zeros_like(x))
    prior = prior_predictive(model, draws=8000, seed=3)
    reps = np.asarray(prior.prior_predictive["y"]).reshape(-1, x.size)
    # variance per observation within 6% of the analytic value (8,000 draws; MC SE ~2-3%)
    np.testing.assert_allclose(reps[:, :3].var(axis=0), 2 + x[:3] ** 2, rtol=0.06)
    observed = np.random.default_rng(0).normal(0, 1, x.size)
    result = prior_predictive_check(prior, observed)
    # recomputed by hand from the draws
    sds = reps.std(axis=1, ddof=1)
    assert result["observed_sd_percentile"] == pytest.approx(np.mean(sds < observed.std(ddof=1)))
    assert result["share_beyond_5sd"] == pytest.approx(np.mean(np.abs(reps) > 5))
    assert result["share_beyond_10sd"] == pytest.approx(np.mean(np.abs(reps) > 10))
    # Var(y) = 2 + x^2 <= 6: |y| > 5 is rare but not absent; the observed data are covered
    assert 0 < result["share_beyond_5sd"] < 0.05
    assert result["share_beyond_10sd"] < 0.005
    assert result["status"] == "pass"


def test_prior_predictive_check_flags_priors_that_rule_out_the_data(rng):
    reps = rng.normal(0, 0.01, (1, 400, 50))  # priors that allow almost no spread
    prior = az.from_dict(prior_predictive={"y": reps})
    result = prior_predictive_check(prior, rng.normal(0, 1, 50))
    assert result["status"] == "check"
    assert result["observed_sd_percentile"] == 1.0
    assert any("SD at percentile" in r for r in result["reasons"])
    wide = az.from_dict(prior_predictive={"y": rng.normal(0, 20, (1, 400, 50))})
    flagged = prior_predictive_check(wide, rng.normal(0, 1, 50))
    assert flagged["status"] == "check"
    assert any("beyond +-10 SD" in r for r in flagged["reasons"])
    with pytest.raises(ValueError, match="observed 3"):
        prior_predictive_check(prior, np.zeros(3))
    with pytest.raises(ValueError, match="no prior predictive draws"):
        prior_predictive_check(prior, np.zeros(50), var_name="z")
