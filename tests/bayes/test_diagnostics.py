import arviz as az
import numpy as np
import pandas as pd
import pytest

from alliance.bayes.diagnostics import SUMMARY_COLUMNS, check, compare_loo, loo, summarize


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
