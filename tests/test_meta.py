"""Frequentist meta-analysis against metafor 3.8-1 references (tests/data/metafor/)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.meta import pooling as meta
from alliance.meta.analysis import pool_effects

REF_DIR = Path(__file__).parent / "data" / "metafor"
# metafor and this module run the same algorithms (Fisher scoring with metafor's threshold,
# R's zeroin for the Q-profile): they agree to ~1e-13, far inside the 1e-4 required.
TOL = 1e-8


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((REF_DIR / "metafor_reml.json").read_text())


@pytest.fixture(scope="module")
def extra() -> dict:
    return json.loads((REF_DIR / "metafor_extra.json").read_text())


@pytest.fixture(scope="module")
def molloy() -> pd.DataFrame:
    return pd.read_csv(REF_DIR / "effects.csv")


@pytest.fixture(scope="module")
def molloy_mods() -> pd.DataFrame:
    return pd.read_csv(REF_DIR / "molloy2014_moderators.csv")


@pytest.fixture(scope="module")
def pooled(molloy: pd.DataFrame) -> dict:
    return pool_effects(molloy)


def assert_close(ours: dict, ref: dict, tol: float = TOL, keys: list[str] | None = None) -> None:
    for key in keys or list(ref):
        if isinstance(ref[key], int | float):
            assert ours[key] == pytest.approx(ref[key], abs=tol, rel=0), key


def test_fisher_z_and_variance() -> None:
    r = np.array([-0.5, 0.0, 0.3])
    np.testing.assert_allclose(meta.fisher_z(r), np.arctanh(r))
    np.testing.assert_allclose(meta.fisher_z_variance([4, 103]), [1.0, 0.01])


@pytest.mark.parametrize("bad", [1.0, -1.0, 1.2, float("nan")])
def test_fisher_z_rejects_out_of_range(bad: float) -> None:
    with pytest.raises(ValueError, match="strictly between -1 and 1"):
        meta.fisher_z([0.1, bad])


def test_fisher_z_variance_rejects_small_n() -> None:
    with pytest.raises(ValueError, match="greater than 3, got \\[3.0\\]"):
        meta.fisher_z_variance([10, 3])


@pytest.mark.parametrize("section", ["pooled_z", "pooled_r", "heterogeneity", "fit"])
def test_reml_matches_metafor(pooled: dict, reference: dict, section: str) -> None:
    assert_close(pooled[section], reference[section])
    assert pooled["k"] == reference["k"]


def test_heterogeneity_ci_matches_metafor_confint(pooled: dict, reference: dict) -> None:
    for name, ref in reference["heterogeneity_ci"].items():
        assert_close(pooled["heterogeneity_ci"][name], ref)


def test_studies_match_metafor(pooled: dict, reference: dict) -> None:
    assert len(pooled["studies"]) == len(reference["studies"])
    for ours, ref in zip(pooled["studies"], reference["studies"], strict=True):
        assert ours["study"] == ref["study"]
        assert_close(ours, ref, keys=["r", "n", "yi", "vi", "weight_pct"])
    assert sum(s["weight_pct"] for s in pooled["studies"]) == pytest.approx(100)
    first = pooled["studies"][0]
    half = 1.959963984540054 * math.sqrt(first["vi"])
    assert first["ci.lb"] == pytest.approx(math.tanh(first["yi"] - half))
    assert first["ci.ub"] == pytest.approx(math.tanh(first["yi"] + half))


def test_prediction_interval_uses_normal_quantile(pooled: dict) -> None:
    z, het = pooled["pooled_z"], pooled["heterogeneity"]
    half = 1.959963984540054 * math.sqrt(z["se"] ** 2 + het["tau2"])
    assert z["pi.ub"] - z["estimate"] == pytest.approx(half, abs=1e-12)
    assert pooled["pooled_r"]["pi.lb"] == pytest.approx(math.tanh(z["pi.lb"]), abs=1e-12)


def test_dl_matches_metafor(molloy_mods: pd.DataFrame, extra: dict) -> None:
    out = pool_effects(molloy_mods, method="DL")
    ref = extra["dl"]
    assert_close(out["pooled_z"], ref["pooled_z"])
    assert_close(out["heterogeneity"], ref["heterogeneity"])
    for name, ci in ref["heterogeneity_ci"].items():
        assert_close(out["heterogeneity_ci"][name], ci)
    np.testing.assert_allclose([s["weight_pct"] for s in out["studies"]], ref["weight_pct"])
    assert out["comparison"]["method"] == "REML"
    assert_close(out["comparison"]["heterogeneity"], extra["reml"]["heterogeneity"])


def test_reml_default_reports_dl_comparison(pooled: dict, extra: dict) -> None:
    assert pooled["meta"]["method"] == "REML"
    assert pooled["comparison"]["method"] == "DL"
    assert_close(pooled["comparison"]["pooled_z"], extra["dl"]["pooled_z"])


def test_leave_one_out_matches_metafor(pooled: dict, extra: dict) -> None:
    assert len(pooled["leave_one_out"]) == len(extra["leave_one_out"])
    for ours, ref in zip(pooled["leave_one_out"], extra["leave_one_out"], strict=True):
        assert ours["study"] == ref["study"]
        assert_close(ours, ref)
        assert ours["r"] == pytest.approx(math.tanh(ref["estimate"]), abs=TOL)
        assert ours["r.ci.ub"] == pytest.approx(math.tanh(ref["ci.ub"]), abs=TOL)


@pytest.mark.parametrize("model", ["rma", "lm"])
def test_egger_matches_metafor_regtest(pooled: dict, extra: dict, model: str) -> None:
    ours, ref = pooled["egger"][model], extra["egger"][model]
    assert_close(ours, ref)
    assert ours["df"] == ref["df"]


def test_classic_egger_equals_snd_on_precision(molloy: pd.DataFrame) -> None:
    """Egger et al. (1997): regress y/se on 1/se; the intercept is the asymmetry."""
    y = meta.fisher_z(molloy["r"].to_numpy())
    se = np.sqrt(meta.fisher_z_variance(molloy["n"].to_numpy()))
    x = np.column_stack([np.ones_like(se), 1 / se])
    coef, res, *_ = np.linalg.lstsq(x, y / se, rcond=None)
    sigma2 = res[0] / (len(y) - 2)
    se_int = math.sqrt(sigma2 * np.linalg.inv(x.T @ x)[0, 0])
    out = meta.egger_test(y, se**2, model="lm")
    assert out["slope"] == pytest.approx(coef[0])
    assert out["statistic"] == pytest.approx(coef[0] / se_int)
    assert out["limit_estimate"] == pytest.approx(coef[1])


@pytest.mark.parametrize("moderator", ["meanage", "controls"])
def test_meta_regression_matches_metafor(
    molloy_mods: pd.DataFrame, extra: dict, moderator: str
) -> None:
    out = pool_effects(molloy_mods, moderator=moderator)["meta_regression"]
    ref = extra["meta_regression"][moderator]
    assert_close(out, ref)
    assert out["QM_df"] == ref["QM_df"]
    assert [c["term"] for c in out["coefficients"]] == [c["term"] for c in ref["coefficients"]]
    for ours, theirs in zip(out["coefficients"], ref["coefficients"], strict=True):
        assert_close(ours, theirs)


def test_tau2_zero_boundary_matches_metafor(extra: dict) -> None:
    ref = extra["homogeneous"]
    out = pool_effects(pd.DataFrame(ref["effects"]))
    assert out["heterogeneity"]["tau2"] == 0
    assert_close(out["pooled_z"], ref["fit"]["pooled_z"])
    assert_close(out["heterogeneity"], ref["fit"]["heterogeneity"])
    for name, ci in ref["fit"]["heterogeneity_ci"].items():
        assert_close(out["heterogeneity_ci"][name], ci)


def test_tighter_threshold_approaches_the_reml_optimum(molloy: pd.DataFrame) -> None:
    y = meta.fisher_z(molloy["r"].to_numpy())
    v = meta.fisher_z_variance(molloy["n"].to_numpy())
    default = meta.rma(y, v)
    exact = meta.rma(y, v, threshold=1e-14)
    assert exact.loglik >= default.loglik
    assert exact.tau2 == pytest.approx(default.tau2, abs=1e-5)
    # At the optimum the REML score 0.5 (y'PPy - tr P) vanishes.
    w = 1 / (v + exact.tau2)
    p = np.diag(w) - np.outer(w, w) / w.sum()
    assert float(y @ p @ p @ y - np.trace(p)) == pytest.approx(0, abs=1e-8)


def test_pool_effects_is_json_serialisable(molloy_mods: pd.DataFrame) -> None:
    out = pool_effects(molloy_mods, moderator="controls")
    text = json.dumps(out, allow_nan=False)
    assert set(json.loads(text)) >= {
        "pooled_z",
        "pooled_r",
        "heterogeneity",
        "studies",
        "leave_one_out",
        "egger",
        "meta_regression",
    }


def test_pool_effects_is_order_invariant(molloy: pd.DataFrame, rng: np.random.Generator) -> None:
    shuffled = molloy.iloc[rng.permutation(len(molloy))]
    a, b = pool_effects(molloy), pool_effects(shuffled)
    for section in ("pooled_z", "heterogeneity"):
        for key, value in a[section].items():
            assert b[section][key] == pytest.approx(value, abs=1e-12)


def test_two_studies_pool_without_diagnostics() -> None:
    out = pool_effects(pd.DataFrame({"study": ["a", "b"], "r": [0.1, 0.3], "n": [50, 80]}))
    assert out["k"] == 2
    assert out["leave_one_out"] is None
    assert out["egger"] is None
    assert out["meta_regression"] is None


def test_pool_effects_validates_input(molloy: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing \\['n'\\]"):
        pool_effects(molloy.drop(columns="n"))
    with pytest.raises(ValueError, match="at least 2 studies, got 1"):
        pool_effects(molloy.head(1))
    bad = molloy.assign(r=molloy["r"].where(molloy.index != 2, 1.5))
    with pytest.raises(ValueError, match="strictly between -1 and 1.*Bruce"):
        pool_effects(bad)
    bad = molloy.assign(n=molloy["n"].where(molloy.index != 0, 2))
    with pytest.raises(ValueError, match="greater than 3.*Axelsson"):
        pool_effects(bad)
    with pytest.raises(ValueError, match="moderator column 'age' not in effects"):
        pool_effects(molloy, moderator="age")
    with pytest.raises(ValueError, match="method must be one of .*, got 'PM'"):
        pool_effects(molloy, method="PM")


def test_moderator_checks(molloy: pd.DataFrame) -> None:
    y = meta.fisher_z(molloy["r"].to_numpy())
    v = meta.fisher_z_variance(molloy["n"].to_numpy())
    with pytest.raises(ValueError, match="is constant"):
        meta.meta_regression(y, v, pd.Series(np.ones(len(y)), name="c"))
    with pytest.raises(ValueError, match="at least 2 levels"):
        meta.meta_regression(y, v, pd.Series(["a"] * len(y), name="c"))
    with pytest.raises(ValueError, match="missing values"):
        meta.meta_regression(y, v, pd.Series([np.nan] + [1.0] * (len(y) - 1), name="c"))


def test_rma_input_checks() -> None:
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        meta.rma([0.1, 0.2], [0.01, 0.02, 0.03])
    with pytest.raises(ValueError, match="must be positive"):
        meta.rma([0.1, 0.2, 0.3], [0.01, 0.0, 0.03])
    with pytest.raises(ValueError, match="level must lie in \\(0, 1\\), got 95"):
        meta.rma([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], level=95)
    with pytest.raises(ValueError, match="more studies than coefficients"):
        meta.rma([0.1, 0.2], [0.01, 0.02], mods=[1.0, 2.0])
