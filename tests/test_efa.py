import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factor_analyzer.factor_analyzer import calculate_kmo

from alliance.describe.efa import (
    bartlett_sphericity,
    correlation_matrix,
    exploratory_factor_analysis,
    kmo,
    parallel_analysis,
)

HOLZ = Path(__file__).parent / "data" / "holzinger1939"
X9 = [f"x{i}" for i in range(1, 10)]


@pytest.fixture
def hs9() -> pd.DataFrame:
    return pd.read_csv(HOLZ / "holzinger1939.csv")[X9]


@pytest.fixture
def psych_ref() -> dict:
    with open(HOLZ / "psych_efa.json") as fh:
        return json.load(fh)


def true_three_factor() -> tuple[np.ndarray, np.ndarray]:
    """12 items, 3 correlated factors, simple structure with loadings .5-.8."""
    loadings = np.zeros((12, 3))
    values = [0.8, 0.7, 0.6, 0.5]
    for f in range(3):
        for j in range(4):
            loadings[4 * f + j, f] = values[(j + f) % 4]
    phi = np.array([[1.0, 0.3, 0.4], [0.3, 1.0, 0.5], [0.4, 0.5, 1.0]])
    return loadings, phi


def simulate(rng: np.random.Generator, n: int) -> pd.DataFrame:
    loadings, phi = true_three_factor()
    factors = rng.multivariate_normal(np.zeros(3), phi, size=n)
    unique = 1 - np.diag(loadings @ phi @ loadings.T)
    x = factors @ loadings.T + rng.standard_normal((n, 12)) * np.sqrt(unique)
    return pd.DataFrame(x, columns=[f"i{j + 1:02d}" for j in range(12)])


# --- KMO -----------------------------------------------------------------------------------


def test_kmo_closed_form(hs9):
    res = kmo(hs9)
    r = np.corrcoef(hs9.to_numpy(), rowvar=False)
    inv = np.linalg.inv(r)
    partial = -inv / np.sqrt(np.outer(np.diag(inv), np.diag(inv)))
    off = ~np.eye(9, dtype=bool)
    r2 = np.where(off, r**2, 0)
    p2 = np.where(off, partial**2, 0)
    assert res["overall"] == pytest.approx(r2.sum() / (r2.sum() + p2.sum()), abs=1e-12)
    np.testing.assert_allclose(res["per_item"], r2.sum(0) / (r2.sum(0) + p2.sum(0)), atol=1e-12)
    assert res["n_obs"] == 301


def test_kmo_matches_factor_analyzer_and_psych(hs9, psych_ref):
    per_item, overall = calculate_kmo(hs9.to_numpy())
    res = kmo(hs9)
    assert res["overall"] == pytest.approx(overall, abs=1e-10)
    np.testing.assert_allclose(res["per_item"].to_numpy(), per_item, atol=1e-10)
    # psych::KMO 2.2.9 on the same data (tests/data/holzinger1939/psych_efa.json)
    assert res["overall"] == pytest.approx(psych_ref["kmo"]["overall"], abs=1e-10)
    ref_items = pd.Series(psych_ref["kmo"]["per_item"])
    np.testing.assert_allclose(res["per_item"][ref_items.index], ref_items, atol=1e-10)


def test_kmo_published_printout(hs9):
    # A published psych::KMO printout for the Holzinger-Swineford x1-x9 tests reads
    # "Overall MSA = 0.75" (two decimals; that course used a cleaned 300-case copy of the
    # data, which also rounds to 0.75 here).
    assert round(kmo(hs9)["overall"], 2) == 0.75


def test_kmo_singular():
    data = pd.DataFrame({"a": [1.0, 2, 3, 4, 5], "b": [2.0, 1, 4, 3, 5]})
    data["c"] = data["a"] + data["b"]
    with pytest.raises(ValueError, match="the correlation matrix is singular, got"):
        kmo(data)


# --- Bartlett ------------------------------------------------------------------------------


def test_bartlett_closed_form(hs9):
    res = bartlett_sphericity(hs9)
    n, p = hs9.shape
    r = np.corrcoef(hs9.to_numpy(), rowvar=False)
    chi2 = -(n - 1 - (2 * p + 5) / 6) * np.log(np.linalg.det(r))
    assert res["chi2"] == pytest.approx(chi2, rel=1e-12)
    assert res["df"] == p * (p - 1) // 2 == 36
    assert res["p"] < 1e-100


def test_bartlett_matches_psych(hs9, psych_ref):
    res = bartlett_sphericity(hs9)
    assert res["chi2"] == pytest.approx(psych_ref["bartlett"]["chisq"], abs=1e-8)
    assert res["df"] == psych_ref["bartlett"]["df"]
    assert res["p"] == pytest.approx(psych_ref["bartlett"]["p_value"], rel=1e-6)


def test_bartlett_identity_is_not_rejected(rng):
    res = bartlett_sphericity(pd.DataFrame(rng.standard_normal((500, 6))))
    assert res["p"] > 0.01
    assert res["df"] == 15


# --- correlation matrix and sample size -----------------------------------------------------


def test_correlation_matrix_use(hs9):
    data = hs9.copy()
    data.iloc[:10, 0] = np.nan
    data.iloc[5:25, 1] = np.nan
    _, n_complete = correlation_matrix(data, "complete")
    assert n_complete == 301 - 25
    cor, n_pair = correlation_matrix(data, "pairwise")
    assert n_pair == 301 - 25  # the x1-x2 pair misses rows 0-24
    assert cor.loc["x3", "x4"] == pytest.approx(hs9["x3"].corr(hs9["x4"]), abs=1e-12)
    with pytest.raises(ValueError, match="use must be one of .*, got 'all'"):
        correlation_matrix(data, "all")


def test_constant_item_rejected(hs9):
    with pytest.raises(ValueError, match=r"items without variance .* got \['x1'\]"):
        kmo(hs9.assign(x1=1.0))


# --- parallel analysis ---------------------------------------------------------------------


def test_parallel_analysis_recovers_three_factors(rng):
    data = simulate(rng, 500)
    res = parallel_analysis(data, n_iter=50, quantile=0.95, rng=rng)
    assert res["n_factors"] == 3
    assert res["n_components"] == 3
    table = res["eigenvalues"]
    assert list(table.index) == list(range(1, 13))
    np.testing.assert_allclose(table["observed_pca"].sum(), 12, atol=1e-10)  # trace of R
    assert (table["random_pca_quantile"] >= table["random_pca_mean"]).all()


def test_parallel_analysis_holzinger(hs9):
    # Three factors are the textbook answer for these nine tests.
    assert parallel_analysis(hs9, n_iter=50, rng=1)["n_factors"] == 3


def test_parallel_analysis_reproducible(hs9):
    a = parallel_analysis(hs9, n_iter=20, rng=7)["eigenvalues"]
    b = parallel_analysis(hs9, n_iter=20, rng=np.random.default_rng(7))["eigenvalues"]
    pd.testing.assert_frame_equal(a, b)


def test_parallel_analysis_noise_gives_no_factor(rng):
    res = parallel_analysis(pd.DataFrame(rng.standard_normal((400, 8))), n_iter=50, rng=rng)
    assert res["n_factors"] <= 1 and res["n_components"] <= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_iter": 0}, "n_iter must be a positive integer, got 0"),
        ({"n_iter": 2.5}, "n_iter must be a positive integer, got 2.5"),
        ({"quantile": 1.0}, r"quantile must lie in \(0, 1\), got 1.0"),
    ],
)
def test_parallel_analysis_arguments(hs9, kwargs, message):
    with pytest.raises(ValueError, match=message):
        parallel_analysis(hs9, **kwargs)


# --- EFA -----------------------------------------------------------------------------------


def test_efa_matches_psych_fa(hs9, psych_ref):
    # psych::fa(x, 3, fm = "minres", rotate = "oblimin"); both optimise the minres criterion
    # numerically (psych: optim, factor_analyzer: L-BFGS-B), so 1e-4 is the tolerance (the
    # observed differences are about 1e-5).
    ref = psych_ref["efa"]
    res = exploratory_factor_analysis(hs9, 3)
    np.testing.assert_allclose(res["loadings"].to_numpy(), ref["loadings"], atol=1e-4)
    np.testing.assert_allclose(res["phi"].to_numpy(), ref["phi"], atol=1e-4)
    np.testing.assert_allclose(res["communalities"].to_numpy(), ref["communalities"], atol=1e-4)
    np.testing.assert_allclose(res["variance"]["ss_loadings"], ref["ss_loadings"], atol=1e-4)
    assert res["rmsr"] == pytest.approx(ref["rms"], abs=1e-6)
    assert res["warnings"] == []


def test_efa_recovers_simulated_loadings(rng):
    # n = 5000: a loading's sampling SD is about .01-.015, so 0.05 is more than 3 SDs.
    loadings, phi = true_three_factor()
    res = exploratory_factor_analysis(simulate(rng, 5000), 3, rotation="oblimin")
    est = res["loadings"].to_numpy()
    order = min(
        itertools.permutations(range(3)), key=lambda p: np.abs(est[:, list(p)] - loadings).sum()
    )
    order = list(order)
    np.testing.assert_allclose(est[:, order], loadings, atol=0.05)
    np.testing.assert_allclose(res["phi"].to_numpy()[np.ix_(order, order)], phi, atol=0.05)
    communalities = np.diag(loadings @ phi @ loadings.T)
    np.testing.assert_allclose(res["communalities"], communalities, atol=0.05)
    np.testing.assert_allclose(res["uniquenesses"], 1 - res["communalities"])
    np.testing.assert_allclose(res["structure"], est @ res["phi"].to_numpy())


def test_efa_output_conventions(hs9):
    res = exploratory_factor_analysis(hs9, 3)
    assert list(res["loadings"].columns) == ["F1", "F2", "F3"]
    assert list(res["loadings"].index) == X9
    assert (res["loadings"].sum(axis=0) > 0).all()  # signs
    assert res["variance"]["ss_loadings"].is_monotonic_decreasing
    assert res["variance"]["ss_loadings"].sum() == pytest.approx(res["communalities"].sum())
    assert res["variance"]["cumulative"].iloc[-1] == pytest.approx(res["communalities"].sum() / 9)


def test_efa_orthogonal_and_one_factor(hs9):
    res = exploratory_factor_analysis(hs9, 3, rotation="varimax")
    np.testing.assert_allclose(res["phi"].to_numpy(), np.eye(3))
    np.testing.assert_allclose(res["communalities"], (res["loadings"] ** 2).sum(axis=1))
    one = exploratory_factor_analysis(hs9, 1)
    assert one["loadings"].shape == (9, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_factors": 9}, r"n_factors must lie in \[1, 8\] for 9 items, got 9"),
        ({"n_factors": 0}, r"n_factors must lie in \[1, 8\] for 9 items, got 0"),
        ({"n_factors": "3"}, "n_factors must be an integer, got '3'"),
        ({"n_factors": 3, "rotation": "bogus"}, "rotation must be one of .*, got 'bogus'"),
        ({"n_factors": 3, "method": "principal"}, "method must be one of .*, got 'principal'"),
    ],
)
def test_efa_arguments(hs9, kwargs, message):
    with pytest.raises(ValueError, match=message):
        exploratory_factor_analysis(hs9, **kwargs)


def test_heywood_case_is_flagged(rng):
    # 60 cases, three factors of four items, and a twelfth item that is nearly the sum of one
    # item of each factor: extracting three factors gives it a communality above 1 with this
    # seed (an improper solution, as psych::fa's "ultra-Heywood case" warning).
    n = 60
    eta = rng.normal(size=(n, 3))
    x = np.repeat(eta, 4, axis=1) * 0.7 + rng.normal(size=(n, 12)) * 0.7
    x[:, 11] = x[:, 0] + x[:, 4] + x[:, 8] + rng.normal(size=n) * 0.05
    data = pd.DataFrame(x, columns=[f"wai_{i:02d}" for i in range(1, 13)])
    res = exploratory_factor_analysis(data, 3)
    h2 = res["communalities"]
    # communalities are diag(L Phi L'), recomputed here from the returned matrices
    own = np.diag(res["loadings"].to_numpy() @ res["phi"].to_numpy() @ res["loadings"].T.to_numpy())
    np.testing.assert_allclose(h2.to_numpy(), own, atol=1e-12)
    heywood = h2[h2 >= 1]
    assert list(heywood.index) == ["wai_12"]  # the precondition: the case is reproduced
    (warning,) = [w for w in res["warnings"] if "Heywood" in w]
    assert warning.startswith(
        f"an ultra-Heywood case: the communality of wai_12 is {h2['wai_12']:.3f}"
    )
    assert f"uniqueness is {1 - h2['wai_12']:.3f}" in warning


def test_heywood_warnings_boundaries():
    from alliance.describe.efa import heywood_warnings

    out = heywood_warnings(pd.Series({"a": 0.999, "b": 1.0, "c": 1.013, "d": np.nan}))
    assert [w.split(":")[0] for w in out] == ["a Heywood case", "an ultra-Heywood case"]
    assert "communality of c is 1.013" in out[1] and "uniqueness is -0.013" in out[1]
