"""Chi-square difference tests (plain and Satorra-Bentler 2001) and model comparison tables."""

from __future__ import annotations

import pytest
from conftest import dataset, extra

from alliance.sem.api import fit_model
from alliance.sem.compare import compare_models
from alliance.sem.teststats import lrt_table, sb2001_difference


@pytest.fixture(scope="module")
def competing():
    ref = extra("wai_competing_models.json")
    data = dataset("wai_ml")
    fits = {}
    for est in ("ML", "MLR"):
        fits[est] = {
            name: fit_model(data, ref[f"{key}_{est}"]["model"], est)
            for name, key in (("three", "second_order"), ("two", "two_factor"),
                              ("one", "one_factor"))
        }  # fmt: skip
    return ref, fits


@pytest.mark.parametrize("estimator", ["ML", "MLR"])
def test_lrt_matches_lavtestlrt(competing, estimator):
    ref, fits = competing
    want = ref[f"lrt_{estimator.lower()}"]
    got = lrt_table(list(fits[estimator].values()), list(fits[estimator]))
    assert got["method"].startswith("Scaled" if estimator == "MLR" else "Chi-Squared")
    for a, b in zip(got["table"], want, strict=True):
        assert a["model"] == b["model"]
        assert a["AIC"] == pytest.approx(b["AIC"], abs=0.01)
        if b["Chisq_diff"] is not None:
            assert a["Chisq_diff"] == pytest.approx(b["Chisq_diff"], abs=0.01)
            assert a["Df_diff"] == b["Df_diff"]
            assert a["Pr_gt_Chisq"] == pytest.approx(b["Pr_gt_Chisq"], abs=1e-6)


def test_sb2001_formula():
    stat, cd = sb2001_difference(120.0, 10, 1.2, 100.0, 8, 1.1)
    assert cd == pytest.approx((10 * 1.2 - 8 * 1.1) / 2)
    assert stat == pytest.approx(20 / cd)


def test_compare_models_table(competing):
    _, fits = competing
    out = compare_models(fits["MLR"])
    assert set(out["fit"]) == {"three", "two", "one"}
    assert {t["restricted"] for t in out["tests"]} == {"two", "one"}
    test = next(t for t in out["tests"] if (t["general"], t["restricted"]) == ("three", "two"))
    assert test["deltas"]["cfi"] < 0
    assert "cfi.robust" in test["deltas"]
    assert test["aic_diff"] == pytest.approx(16499.458217644 - 16462.2716499657, abs=0.01)
    with pytest.raises(ValueError, match="names"):
        lrt_table([fits["ML"]["one"]], ["a", "b"])


def test_compare_models_skips_fits_that_did_not_converge(competing):
    from alliance.sem.estimate import estimate

    _, fits = competing
    one = fits["MLR"]["one"]
    # the same one-factor model and data, stopped after 2 iterations: not converged
    stopped = estimate(one.spec, one.sample, "MLR", max_iter=2)
    assert not stopped.converged
    out = compare_models({"three": fits["MLR"]["three"], "one": stopped})
    (test,) = out["tests"]
    assert test["restricted"] == "one" and "did not converge" in test["not_tested"]
    assert "chisq_diff" not in test
    assert out["fit"]["one"]["admissible"] is False and out["fit"]["three"]["admissible"]
