"""BSEM: the exact-zero CFA against ML, recovery of planted residual correlations, PPP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.bayes.bsem import (
    Measurement,
    bsem_model,
    bsem_parameters,
    chi_square_discrepancy,
    lkj_eta_for_variance,
    posterior_predictive_fit,
    residual_correlation_table,
)
from alliance.bayes.diagnostics import check, summarize
from alliance.bayes.sampling import sample
from alliance.sem import fit_cfa

ITEMS = [f"y{j + 1}" for j in range(12)]
FACTORS = {"f1": ITEMS[:4], "f2": ITEMS[4:8], "f3": ITEMS[8:]}
SYNTAX = "f1 =~ y1 + y2 + y3 + y4\nf2 =~ y5 + y6 + y7 + y8\nf3 =~ y9 + y10 + y11 + y12"
PHI = np.array([[1.0, 0.5, 0.4], [0.5, 1.0, 0.6], [0.4, 0.6, 1.0]])
LOADINGS = [0.7, 0.6, 0.8, 0.7, 0.75, 0.65, 0.7, 0.6, 0.6, 0.8, 0.7, 0.75]
#: planted misspecification (WAI-SR-like 3 x 4 items): residual correlations of two pairs
#: of items on different factors, and a cross-loading of .4 of y4 on f2
PLANTED = {("y6", "y2"): 0.3, ("y11", "y7"): 0.3}
CROSS = ("f2", "y4")
SAMPLER = {"draws": 1000, "tune": 1000, "seed": 11}
#: the ordinal fits: the default 2,000 draws per chain (with 1,000 the smallest bulk ESS of
#: the ordinal BSEM was 400, at the threshold)
ORDINAL_SAMPLER = {"draws": 2000, "tune": 1000, "seed": 11}


def simulate(seed: int, n: int, planted: bool) -> pd.DataFrame:
    """Continuous items of a 3-factor CFA (loadings .6-.8, residual variances .5).

    With ``planted``: the residual correlations of :data:`PLANTED` and the cross-loading
    :data:`CROSS` of .4. Items are put on an arbitrary scale (x 2 + 3).
    """
    rng = np.random.default_rng(seed)
    p = len(ITEMS)
    lam = np.zeros((p, 3))
    lam[np.arange(p), np.repeat(np.arange(3), 4)] = LOADINGS
    resid = np.eye(p)
    if planted:
        lam[ITEMS.index(CROSS[1]), list(FACTORS).index(CROSS[0])] = 0.4
        for (a, b), r in PLANTED.items():
            i, j = ITEMS.index(a), ITEMS.index(b)
            resid[i, j] = resid[j, i] = r
    theta_sd = np.sqrt(np.full(p, 0.5))
    sigma = lam @ PHI @ lam.T + theta_sd[:, None] * resid * theta_sd[None, :]
    x = rng.multivariate_normal(np.zeros(p), sigma, size=n) * 2.0 + 3.0
    return pd.DataFrame(x, columns=ITEMS)


def fit(data: pd.DataFrame, prior_variance: float | None, factors=FACTORS):
    model = bsem_model(data, Measurement(factors), prior_variance=prior_variance)
    idata, _ = sample(model, SAMPLER)
    names = bsem_parameters(model)
    table = summarize(idata, names)
    return idata, table, check(idata, names, table=table)


@pytest.fixture(scope="module")
def exact_zero_fit():
    data = simulate(seed=7, n=2000, planted=False)
    return data, *fit(data, None)


@pytest.fixture(scope="module")
def planted_data():
    return simulate(seed=8, n=1000, planted=True)


@pytest.fixture(scope="module")
def planted_bsem(planted_data):
    return fit(planted_data, 0.01)


@pytest.fixture(scope="module")
def planted_exact_zero(planted_data):
    return fit(planted_data, None)


# --------------------------------------------------------------------------- the prior


def test_lkj_eta_gives_the_prior_variance_of_each_residual_correlation(rng):
    """Monte Carlo check of the LKJ marginal: 2 Beta(eta - 1 + d/2, same) - 1, variance v."""
    for dim, v in ((9, 0.01), (12, 0.01), (12, 0.05)):
        eta = lkj_eta_for_variance(v, dim)
        a = eta - 1 + dim / 2
        draws = 2 * rng.beta(a, a, size=200_000) - 1
        assert draws.var() == pytest.approx(v, rel=0.02)
    # the model's own prior (its canonical partial correlations) gives the same variance
    import pymc as pm

    data = simulate(seed=1, n=50, planted=False)
    model = bsem_model(data, Measurement(FACTORS), prior_variance=0.01)
    prior = pm.sample_prior_predictive(draws=4000, model=model, random_seed=3)
    r = np.asarray(prior.prior["residual_correlation"]).reshape(-1)
    assert r.var() == pytest.approx(0.01, rel=0.05)
    assert abs(r.mean()) < 0.003
    cross = np.asarray(prior.prior["cross_loading"]).reshape(-1)
    assert cross.var() == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize("dim", [2, 3, 12])
def test_vine_cholesky_is_the_element_by_element_map(rng, dim):
    """The whole-matrix Cholesky factor from canonical partial correlations equals the latent
    model's element-by-element one (Lewandowski et al. 2009), and L L' has a unit diagonal."""
    import pytensor
    import pytensor.tensor as pt

    from alliance.bayes.bsem import _vine_cholesky
    from alliance.bayes.latent import _cpc_cholesky

    cpc = pt.vector("cpc")
    values = rng.uniform(-0.95, 0.95, size=dim * (dim - 1) // 2)
    vectorized, by_element = pytensor.function(
        [cpc], [_vine_cholesky(cpc, dim), _cpc_cholesky(cpc, dim)]
    )(values)
    np.testing.assert_allclose(vectorized, by_element, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.diag(vectorized @ vectorized.T), 1.0, rtol=1e-12)
    assert np.all(np.triu(vectorized, 1) == 0.0)


def test_a_prior_variance_an_lkj_cannot_reach_is_refused():
    with pytest.raises(ValueError, match=r"among 12 items must lie in \(0, 0.09091\), got 0.1"):
        lkj_eta_for_variance(0.1, 12)
    with pytest.raises(ValueError, match="got 0"):
        lkj_eta_for_variance(0, 12)


def test_bad_input_names_the_problem():
    data = simulate(seed=1, n=50, planted=False)
    with pytest.raises(ValueError, match=r"lack the model's items, got missing \['y9'\]"):
        bsem_model(data.drop(columns="y9"), Measurement(FACTORS))
    with pytest.raises(ValueError, match=r"complete answers .* got NaN in \['y4'\]"):
        bsem_model(
            data.assign(y4=np.where(data.index == 3, np.nan, data["y4"])), Measurement(FACTORS)
        )
    with pytest.raises(ValueError, match=r"constant items \['y2'\]"):
        bsem_model(data.assign(y2=1.0), Measurement(FACTORS))
    with pytest.raises(ValueError, match="factor 'g' has no items"):
        Measurement({"f": ["a"], "g": []})


def test_chi_square_discrepancy_is_lavaans_ml_statistic():
    """At the ML estimates, f(S, Sigma_hat) is lavaan's chi-square (fit_cfa's, itself
    checked against lavaan in tests/sem)."""
    data = simulate(seed=5, n=500, planted=True)
    ml = fit_cfa(data, SYNTAX, std_lv=True)
    x = data.to_numpy()
    s = np.cov(x, rowvar=False, bias=True)
    est = {(r["lhs"], r["op"], r["rhs"]): r["est"] for r in ml["parameters"]}
    lam = np.zeros((len(ITEMS), 3))
    for k, (f, members) in enumerate(FACTORS.items()):
        for i in members:
            lam[ITEMS.index(i), k] = est[(f, "=~", i)]
    phi = np.eye(3)
    for a, fa in enumerate(FACTORS):
        for b, fb in enumerate(FACTORS):
            if a != b:
                phi[a, b] = est.get((fa, "~~", fb), est.get((fb, "~~", fa)))
    theta = np.diag([est[(i, "~~", i)] for i in ITEMS])
    sigma = lam @ phi @ lam.T + theta
    assert chi_square_discrepancy(s, sigma, len(x)) == pytest.approx(ml["fit"]["chisq"], rel=1e-6)


# --------------------------------------------------------------------------- step 1: ML


@pytest.mark.slow
def test_exact_zero_bsem_reproduces_ml_on_a_large_sample(exact_zero_fit):
    """n = 2000: posterior means of the standardized loadings and factor correlations within
    0.02 of ML (lavaan-validated fit_cfa), and within 0.5 posterior SD (posterior mean and
    ML mode differ by O(1/n), the SD is O(1/sqrt(n)) ~ 0.017); MCSE of the means < 0.002."""
    data, idata, table, diagnostics = exact_zero_fit
    assert diagnostics["status"] == "pass", diagnostics["failures"]
    ml = fit_cfa(data, SYNTAX, std_lv=True)
    assert ml["status"]["converged"]
    t = table.set_index("parameter")
    compared = 0
    for row in ml["standardized"]:
        if row["op"] == "=~":
            label = f"std_loading[{row['lhs']}=~{row['rhs']}]"
        elif row["op"] == "~~" and row["lhs"] in FACTORS and row["lhs"] != row["rhs"]:
            label = f"factor_correlation[{row['rhs']}~~{row['lhs']}]"
            if label not in t.index:
                label = f"factor_correlation[{row['lhs']}~~{row['rhs']}]"
        elif row["op"] == "~~" and row["lhs"] == row["rhs"] and row["lhs"] in ITEMS:
            label = f"std_residual_variance[{row['lhs']}~~{row['lhs']}]"
        else:
            continue
        diff = abs(t.loc[label, "mean"] - row["est.std"])
        assert diff <= 0.02, (label, diff)
        assert diff <= 0.5 * t.loc[label, "sd"], (label, diff, t.loc[label, "sd"])
        assert t.loc[label, "mcse_mean"] < 0.002
        compared += 1
    assert compared == 12 + 3 + 12


@pytest.mark.slow
def test_exact_zero_model_fits_data_without_misspecification(exact_zero_fit):
    data, idata, _, _ = exact_zero_fit
    ppp = posterior_predictive_fit(idata, len(data), seed=1)
    assert 0.05 < ppp["ppp"] < 0.95
    assert ppp["diff_eti95"][0] < 0 < ppp["diff_eti95"][1]


# --------------------------------------------------------------------------- step 2: BSEM


@pytest.mark.slow
def test_ppp_rejects_the_exact_zero_model_of_misspecified_data(planted_data, planted_exact_zero):
    idata, _, _ = planted_exact_zero
    ppp = posterior_predictive_fit(idata, len(planted_data), seed=1)
    assert ppp["ppp"] < 0.05
    assert ppp["diff_eti95"][0] > 0


@pytest.mark.slow
def test_bsem_fits_the_misspecified_data(planted_data, planted_bsem):
    idata, _, diagnostics = planted_bsem
    assert diagnostics["status"] == "pass", diagnostics["failures"]
    ppp = posterior_predictive_fit(idata, len(planted_data), seed=1)
    assert ppp["ppp"] > 0.05
    assert ppp["diff_eti95"][0] < 0 < ppp["diff_eti95"][1]


@pytest.mark.slow
def test_bsem_finds_the_planted_residual_correlations_and_cross_loading(planted_bsem):
    """The planted .3 pairs are the only ones whose 95% interval excludes 0 and which exceed
    .1; their posterior means are pulled toward 0 by the prior of variance .01 (the
    shrinkage Muthén & Asparouhov 2012 describe) but stay above .1. The planted .4
    cross-loading (.33 standardized) is the only cross-loading above .1.

    Its 95% interval is not asserted to exclude 0: with factors correlated about .5 the
    cross-loading trades off against y4's loading on f1 (draw correlation -.73) and the f1-f2
    correlation (-.49), and the prior of variance .01 halves it (posterior mean .16, SD .08,
    95% interval [-0.001, .32] with n = 1,000; the lower end was again 0 with n = 2,000). As
    Muthén & Asparouhov (2012) recommend, BSEM points to the parameter and the model with it
    freed estimates it (the next test)."""
    _, table, _ = planted_bsem
    resid = residual_correlation_table(table, size=0.1)
    large = set(resid.loc[resid["large"], "pair"])
    assert large == {f"{a}~~{b}" for a, b in PLANTED}
    t = resid.set_index("pair")
    for a, b in PLANTED:
        assert 0.1 < t.loc[f"{a}~~{b}", "mean"] < 0.35
    others = t.drop([f"{a}~~{b}" for a, b in PLANTED])
    assert others["mean"].abs().max() < 0.1
    cross = table.set_index("parameter").loc["std_loading[f2=~y4]"]
    assert 0.1 < cross["mean"] < 0.45
    other_cross = table[
        table["parameter"].str.startswith("std_loading[")
        & ~table["parameter"].isin(
            [f"std_loading[{f}=~{i}]" for f, m in FACTORS.items() for i in m]
        )
        & (table["parameter"] != "std_loading[f2=~y4]")
    ]
    assert other_cross["mean"].abs().max() < 0.1


#: the planted cross-loading standardized: .4 / sd(y4), var(y4) = .7^2 + .4^2 + 2 (.7)(.4)(.5)
#: + .5 (target loading, cross-loading, their factors' correlation, residual variance)
CROSS_STD = 0.4 / np.sqrt(0.7**2 + 0.4**2 + 2 * 0.7 * 0.4 * PHI[0, 1] + 0.5)


@pytest.mark.slow
def test_bsem_with_the_flagged_cross_loading_freed_recovers_it(planted_data):
    """Second step (Muthén & Asparouhov 2012): y4 measures f1 and f2, the rest as before under
    the small-variance priors. The freed loading's 95% interval excludes 0 and contains the
    planted standardized value (.33); the planted residual correlations are still found."""
    factors = {**FACTORS, "f2": ["y4", *FACTORS["f2"]]}
    _, table, diagnostics = fit(planted_data, 0.01, factors=factors)
    assert diagnostics["status"] == "pass", diagnostics["failures"]
    freed = table.set_index("parameter").loc["std_loading[f2=~y4]"]
    assert freed["eti95_low"] > 0
    assert freed["eti95_low"] < CROSS_STD < freed["eti95_high"]
    resid = residual_correlation_table(table, size=0.1)
    assert set(resid.loc[resid["large"], "pair"]) == {f"{a}~~{b}" for a, b in PLANTED}


# --------------------------------------------------------------------------- step 4: ordinal


def ordinal(data: pd.DataFrame) -> pd.DataFrame:
    """Five-point answers: each standardized item cut at -1.5, -0.5, 0.3 and 1.2."""
    z = (data - data.mean()) / data.std()
    cuts = np.array([-1.5, -0.5, 0.3, 1.2])
    return pd.DataFrame({c: np.searchsorted(cuts, z[c].to_numpy()) + 1 for c in z.columns})


def test_ordinal_answers_are_coded_by_their_observed_levels():
    from alliance.bayes.bsem import _ordinal_codes

    frame = pd.DataFrame({"a": [1, 3, 5, 3], "b": [2, 2, 4, 4]})
    codes, n_cat = _ordinal_codes(frame, ["a", "b"])
    assert codes.tolist() == [[0, 0], [1, 0], [2, 1], [1, 1]]
    assert n_cat == 3
    with pytest.raises(ValueError, match=r"ordered item 'a' needs whole-number answers"):
        _ordinal_codes(pd.DataFrame({"a": [1.5, 2.0]}), ["a"])
    with pytest.raises(ValueError, match=r"ordered item 'a' needs two categories, got \[2.0\]"):
        _ordinal_codes(pd.DataFrame({"a": [2, 2]}), ["a"])


def test_latent_responses_lie_in_their_categories_with_their_change_of_variables(rng):
    """x* of every answer and the log-Jacobian against a direct NumPy transcription of the
    definition (each answer on its own: lowest category tau_1 - exp(z), highest tau_last +
    exp(z), a middle one tau_{c-1} + gap logistic(z)), with an item of fewer categories."""
    import pymc as pm

    from alliance.bayes.bsem import _latent_responses

    n, n_cat = 40, 5
    codes = rng.integers(0, n_cat, size=(n, 3))
    codes[:, 2] = rng.integers(0, 3, size=n)  # three categories only
    with pm.Model(coords={"item": ["a", "b", "c"], "cut": list("1234"), "gap": list("234")}):
        x_star = _latent_responses(codes, n_cat)
        model = pm.modelcontext(None)
    point = {
        "tau_first": rng.normal(-1.0, 0.3, size=3),
        "tau_gap_log__": rng.normal(-0.5, 0.3, size=(3, 3)),
        "x_star_raw": rng.normal(0.0, 1.5, size=(n, 3)),
    }
    x_value, log_jac = model.compile_fn(
        model.replace_rvs_by_values([x_star, model.potentials[0]]),
        inputs=model.value_vars,
        point_fn=True,
    )(point)
    tau = point["tau_first"][:, None] + np.concatenate(
        [np.zeros((3, 1)), np.cumsum(np.exp(point["tau_gap_log__"]), axis=1)], axis=1
    )
    expected_x, expected_jac = np.empty((n, 3)), 0.0
    for i in range(n):
        for j in range(3):
            c, z = codes[i, j], point["x_star_raw"][i, j]
            if c == codes[:, j].max():
                expected_x[i, j] = tau[j, c - 1] + np.exp(z)
                expected_jac += z
            elif c == 0:
                expected_x[i, j] = tau[j, 0] - np.exp(z)
                expected_jac += z
            else:
                width = tau[j, c] - tau[j, c - 1]
                u = 1.0 / (1.0 + np.exp(-z))
                expected_x[i, j] = tau[j, c - 1] + width * u
                expected_jac += np.log(width) + np.log(u) + np.log1p(-u)
            lower = -np.inf if c == 0 else tau[j, c - 1]
            upper = np.inf if c == codes[:, j].max() else tau[j, c]
            assert lower < x_value[i, j] < upper
    np.testing.assert_allclose(x_value, expected_x, rtol=1e-12, atol=1e-12)
    assert log_jac == pytest.approx(expected_jac, rel=1e-12)


@pytest.mark.slow
def test_ordinal_exact_zero_bsem_agrees_with_wlsmv():
    """12 five-point items, n = 600 (the issue's timing case): posterior means of the
    standardized loadings within 0.05 and one posterior SD (~0.03) of WLSMV's (fit_cfa,
    lavaan-validated; a limited-information estimator, so not the same estimate: first run
    max difference 0.018, 0.6 SD); diagnostics pass; PPP not small on data the model fits."""
    data = ordinal(simulate(seed=8, n=600, planted=False))
    model = bsem_model(data, Measurement(FACTORS), prior_variance=None, ordered=True)
    idata, timing = sample(model, ORDINAL_SAMPLER)
    names = bsem_parameters(model)
    table = summarize(idata, names)
    diagnostics = check(idata, names, table=table)
    assert diagnostics["status"] == "pass", diagnostics["failures"]
    wlsmv = fit_cfa(data, SYNTAX, estimator="WLSMV", std_lv=True)
    t = table.set_index("parameter")
    for row in wlsmv["standardized"]:
        if row["op"] == "=~":
            label = f"std_loading[{row['lhs']}=~{row['rhs']}]"
            diff = abs(t.loc[label, "mean"] - row["est.std"])
            assert diff <= min(0.05, t.loc[label, "sd"]), (label, diff)
    ppp = posterior_predictive_fit(idata, len(data), seed=1)
    assert ppp["ppp"] > 0.05
    print("ordinal 12 x 600 timing", timing)


@pytest.mark.slow
def test_ordinal_bsem_finds_the_planted_residual_correlations():
    """The planted data of the continuous tests cut into five categories, n = 600: the two
    planted pairs are the only large residual correlations (the set is asserted: the values
    move with the sampler's code), PPP not small, diagnostics pass."""
    data = ordinal(simulate(seed=8, n=600, planted=True))
    model = bsem_model(data, Measurement(FACTORS), prior_variance=0.01, ordered=True)
    idata, timing = sample(model, ORDINAL_SAMPLER)
    names = bsem_parameters(model)
    table = summarize(idata, names)
    diagnostics = check(idata, names, table=table)
    assert diagnostics["status"] == "pass", diagnostics["failures"]
    resid = residual_correlation_table(table, size=0.1)
    assert set(resid.loc[resid["large"], "pair"]) == {f"{a}~~{b}" for a, b in PLANTED}
    assert posterior_predictive_fit(idata, len(data), seed=1)["ppp"] > 0.05
    print("ordinal BSEM 12 x 600 timing", timing)


# --------------------------------------------------------------------------- step 5: SBC


@pytest.mark.slow
def test_sbc_of_a_small_bsem_gives_uniform_ranks():
    """2 factors x 3 items, n = 100, prior variance .01: 60 replications, ranks among 200
    thinned draws uniform (10 bins) for every SBC parameter at alpha = .01 (Talts et al.
    2018). Divergent transitions: under 0.1% of the 60,000 (prior draws with a loading near 0
    make a funnel; 10 in the first run). About 7 s per replication on 2 cores."""
    from alliance.bayes.bsem import bsem_sbc

    small = Measurement({"f1": ["a1", "a2", "a3"], "f2": ["b1", "b2", "b3"]})
    result = bsem_sbc(60, 100, small, seed=5, draws=500, tune=500, thin=5)
    assert result["n_draws"] == 200
    p_values = {k: round(t["p_value"], 4) for k, t in result["tests"].items()}
    print("SBC p-values", p_values, "divergences", result["divergences"])
    assert result["calibrated"], p_values
    assert result["divergences"] < 60
