"""Polychoric correlations, thresholds and Gamma against lavaan 0.6-14 (lavaan_wlsmv_extra.json)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from alliance.sem.polychoric import (
    bivariate_normal_cdf,
    bivariate_normal_pdf,
    ordinal_stats,
    polychoric_pair,
    univariate_thresholds,
)

DATA = Path(__file__).parent.parent / "data" / "lavaan" / "wai_sr_sim"
EXTRA = json.loads((DATA / "lavaan_wlsmv_extra.json").read_text())
FILES = {
    "complete": ("wai_sr_sim.csv", "listwise"),
    "pairwise": ("wai_sr_sim_missing.csv", "pairwise"),
}


@pytest.fixture(scope="module", params=sorted(FILES))
def case(request: pytest.FixtureRequest):
    ref = EXTRA[request.param]
    name, missing = FILES[request.param]
    items = pd.read_csv(DATA / name)[ref["ov_names"]]
    return ref, ordinal_stats(items, missing=missing)


def _quad_cdf(x: float, y: float, r: float) -> float:
    def f(t: float) -> float:
        return stats.norm.pdf(t) * stats.norm.cdf((y - r * t) / np.sqrt(1 - r * r))

    return integrate.quad(f, -np.inf, x, epsabs=1e-14, epsrel=1e-13, limit=200)[0]


@pytest.mark.parametrize(
    ("x", "y", "r"),
    [
        (0.0, 0.0, 0.0),
        (-1.2, 0.7, 0.35),
        (1.5, -0.4, -0.6),
        (0.3, 0.9, 0.8),
        (-2.5, -2.0, 0.93),
        (1.1, 1.3, 0.999),
        (-0.7, 0.4, -0.95),
        (2.2, -1.9, -0.9999),
        (-3.5, 3.0, 0.5),
    ],
)
def test_bivariate_normal_cdf_matches_quadrature(x: float, y: float, r: float) -> None:
    assert bivariate_normal_cdf(x, y, r) == pytest.approx(_quad_cdf(x, y, r), abs=1e-13)


def test_bivariate_normal_cdf_vectorised_and_infinite(rng: np.random.Generator) -> None:
    x = rng.normal(size=200) * 1.5
    y = rng.normal(size=200) * 1.5
    r = rng.uniform(-0.99, 0.99, size=200)
    got = bivariate_normal_cdf(x, y, r)
    ref = [_quad_cdf(a, b, c) for a, b, c in zip(x[:20], y[:20], r[:20], strict=True)]
    np.testing.assert_allclose(got[:20], ref, atol=1e-13)
    assert got.shape == (200,)
    inf = np.inf
    np.testing.assert_allclose(
        bivariate_normal_cdf([inf, 0.5, -inf, inf], [0.3, inf, 0.2, inf], 0.4),
        [stats.norm.cdf(0.3), stats.norm.cdf(0.5), 0.0, 1.0],
    )
    with pytest.raises(ValueError, match="rho must lie in"):
        bivariate_normal_cdf(0.0, 0.0, 1.5)


def test_bivariate_normal_pdf_matches_scipy() -> None:
    mvn = stats.multivariate_normal(mean=[0, 0], cov=[[1, 0.6], [0.6, 1]])
    assert bivariate_normal_pdf(0.3, -0.8, 0.6) == pytest.approx(mvn.pdf([0.3, -0.8]), rel=1e-12)
    assert bivariate_normal_pdf(np.inf, 0.0, 0.6) == 0.0


def test_thresholds_match_lavaan(case) -> None:
    ref, st = case
    assert st.names == ref["ov_names"]
    assert st.th_names == ref["th_names"]
    np.testing.assert_allclose(st.th_vector, ref["th"], atol=1e-10)
    assert st.nobs == ref["nobs"]


def test_polychoric_correlations_match_lavaan(case) -> None:
    ref, st = case
    np.testing.assert_allclose(st.cor, np.array(ref["cor"]), atol=1e-6)


def test_gamma_matches_lavaan(case) -> None:
    ref, st = case
    gamma = np.array(ref["gamma"])
    assert st.gamma.shape == gamma.shape
    np.testing.assert_allclose(st.gamma, gamma, atol=1e-5 * np.abs(gamma).max())
    np.testing.assert_allclose(st.wls_v_diag, ref["wls_v_diag"], rtol=1e-5)


def test_univariate_thresholds_are_probits() -> None:
    y = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2, -1])
    np.testing.assert_allclose(univariate_thresholds(y), stats.norm.ppf([2 / 10, 5 / 10]))


def test_polychoric_recovers_latent_correlation(rng: np.random.Generator) -> None:
    z = rng.multivariate_normal([0, 0], [[1, 0.55], [0.55, 1]], size=20_000)
    y1 = np.digitize(z[:, 0], [-1.0, 0.0, 0.8])
    y2 = np.digitize(z[:, 1], [-0.5, 1.2])
    assert polychoric_pair(y1, y2) == pytest.approx(0.55, abs=0.03)
    # reversing one item flips the sign
    assert polychoric_pair(y1, -y2) == pytest.approx(-polychoric_pair(y1, y2), abs=1e-6)


def test_binary_items_tetrachoric(rng: np.random.Generator) -> None:
    z = rng.multivariate_normal([0, 0], [[1, -0.4], [-0.4, 1]], size=5_000)
    y1 = (z[:, 0] > 0.3).astype(int)
    y2 = (z[:, 1] > -0.2).astype(int)
    assert polychoric_pair(y1, y2) == pytest.approx(-0.4, abs=0.05)


def test_speed_600_rows() -> None:
    items = pd.read_csv(DATA / "wai_sr_sim.csv").filter(like="wai_")
    ordinal_stats(items)
    start = time.perf_counter()
    ordinal_stats(items)
    assert time.perf_counter() - start < 1.0


def test_large_sample_uses_patterns(rng: np.random.Generator) -> None:
    items = pd.read_csv(DATA / "wai_sr_sim.csv").filter(like="wai_")
    big = items.iloc[rng.integers(0, len(items), size=100_000)].reset_index(drop=True)
    start = time.perf_counter()
    st = ordinal_stats(big)
    assert time.perf_counter() - start < 10.0
    small = ordinal_stats(items)
    assert st.nobs == 100_000
    np.testing.assert_allclose(st.cor, small.cor, atol=0.05)
    assert np.all(np.isfinite(st.gamma))
    # Gamma is N times the ACOV, so it stays on the same scale as with 600 rows
    np.testing.assert_allclose(np.diag(st.gamma), np.diag(small.gamma), rtol=0.5)


def test_listwise_drops_incomplete_rows() -> None:
    items = pd.read_csv(DATA / "wai_sr_sim_missing.csv").filter(like="wai_")
    st = ordinal_stats(items, missing="listwise")
    assert st.nobs == int(items.notna().all(axis=1).sum())


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"a": [1, 2, 3]}), {}, "at least two ordered items"),
        (pd.DataFrame({"a": [1, 2, 3], "b": [1, 1, 1]}), {}, "at least two observed categories"),
        (pd.DataFrame({"a": [1, 2.5, 3], "b": [1, 2, 1]}), {}, "integer categories"),
        (pd.DataFrame({"a": [1, 2, 3], "b": [1, 2, 1]}), {"missing": "ml"}, "missing must be"),
        (
            pd.DataFrame({"a": [1, 2, np.nan, np.nan], "b": [np.nan, np.nan, 1, 2]}),
            {"missing": "pairwise"},
            "never answered together",
        ),
        (
            pd.DataFrame({"a": [1, 3, 1, 3], "b": [1, 2, 2, 1]}),
            {"levels": [np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0])]},
            "empty categories",
        ),
    ],
)
def test_bad_input(frame: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ordinal_stats(frame, **kwargs)
