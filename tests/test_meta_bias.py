"""Egger, PET-PEESE, trim-and-fill and selection models against metafor 3.8-1
(tests/data/metafor/metafor_multilevel.json, made by meta_multilevel.R).

Tolerances. Egger, PET, PEESE and trim-and-fill run the same closed-form fits and the same REML
scoring as metafor: 1e-6 relative for estimates, 1e-4 for p values. Selection models are fitted
by maximum likelihood with a numerical optimizer and a numerical Hessian, as metafor's (optim
BFGS, numDeriv); the likelihood is flat near its maximum, so where the two optimizers stop
matters: the step-function model is checked against metafor run with reltol = 1e-12 to 1e-4
relative (estimates, SEs, delta) and 1e-6 (log-likelihood, LRT, its p value). The beta model's
likelihood integrates numerically with R's integrate() tolerance eps^0.25 (used here too),
whose noise moves the maximum of a flat likelihood by about 1e-3 SE and the numerical Hessian
by about 0.1%: estimates within 2e-3 SE, SEs within 2e-3 relative, log-likelihood and LRT
within 1e-6 relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.meta import pooling as meta
from alliance.meta.bias import bias_block, pet_peese, trim_and_fill
from alliance.meta.selection import selection_model

REF_DIR = Path(__file__).parent / "data" / "metafor"
EST = 1e-6
PVAL = 1e-4


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF_DIR / "metafor_multilevel.json").read_text())


@pytest.fixture(scope="module")
def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    mol = pd.read_csv(REF_DIR / "molloy2014_moderators.csv")
    k11 = pd.read_csv(REF_DIR / "konstantopoulos2011.csv")
    return {
        "bias_molloy": (meta.fisher_z(mol["r"]), meta.fisher_z_variance(mol["n"])),
        "bias_konstantopoulos": (k11["yi"].to_numpy(), k11["vi"].to_numpy()),
    }


NAMES = ["bias_molloy", "bias_konstantopoulos"]


@pytest.mark.parametrize("name", NAMES)
def test_egger_pet_peese_match_metafor(name: str, datasets: dict, ref: dict) -> None:
    yi, vi = datasets[name]
    r = ref["two_level"][name]
    out = bias_block(yi, vi)
    assert out["egger"]["z"] == pytest.approx(r["egger"]["z"], rel=EST)
    assert out["egger"]["pvalue"] == pytest.approx(r["egger"]["pvalue"], rel=PVAL)
    for method in ("pet", "peese"):
        for key in ("estimate", "se", "slope", "tau2"):
            assert out[method][key] == pytest.approx(r[method][key], rel=EST), (method, key)
    assert out["pet"]["model"] == "rma.uni"


@pytest.mark.parametrize("name", NAMES)
def test_trim_and_fill_matches_metafor(name: str, datasets: dict, ref: dict) -> None:
    yi, vi = datasets[name]
    r = ref["two_level"][name]["trimfill"]
    out = trim_and_fill(yi, vi)
    assert (out["k0"], out["side"]) == (r["k0"], r["side"])
    for key in ("se.k0", "estimate", "se", "tau2"):
        assert out[key] == pytest.approx(r[key], rel=EST), key
    np.testing.assert_allclose([f["yi"] for f in out["filled"]], [f["yi"] for f in r["filled"]])
    np.testing.assert_allclose([f["vi"] for f in out["filled"]], [f["vi"] for f in r["filled"]])


def test_trim_and_fill_symmetric_funnel_fills_nothing() -> None:
    """Effects spread evenly on both sides of 0.3 with matching variances: nothing is missing
    (the signed ranks alternate, so S_r is below k (k + 1) / 4 and L0 rounds to 0)."""
    dev = np.array([0.05, 0.1, 0.2, 0.3])
    yi = np.concatenate([0.3 + dev, 0.3 - dev - 0.01, [0.3]])
    vi = np.concatenate([[0.01, 0.02, 0.04, 0.08]] * 2 + [[0.005]])
    out = trim_and_fill(yi, vi)
    assert out["k0"] == 0
    assert out["filled"] == []
    assert out["estimate"] == pytest.approx(meta.rma(yi, vi).beta[0], rel=1e-12)


def test_pet_peese_three_level_match_rma_mv(ref: dict) -> None:
    k11 = pd.read_csv(REF_DIR / "konstantopoulos2011.csv")
    out = pet_peese(k11["yi"], k11["vi"], cluster=k11["district"], study=k11["school"])
    for method in ("pet", "peese"):
        intercept, slope = ref["three_level"][method]["coefficients"]
        assert out[method]["estimate"] == pytest.approx(intercept["estimate"], rel=EST)
        assert out[method]["se"] == pytest.approx(intercept["se"], rel=EST)
        assert out[method]["slope"] == pytest.approx(slope["estimate"], rel=EST)
        np.testing.assert_allclose(
            out[method]["sigma2"], ref["three_level"][method]["sigma2"], rtol=1e-5
        )
    block = bias_block(k11["yi"], k11["vi"], cluster=k11["district"], study=k11["school"])
    slope = ref["three_level"]["pet"]["coefficients"][1]
    assert block["egger"]["z"] == pytest.approx(slope["statistic"], rel=EST)
    assert block["egger"]["pvalue"] == pytest.approx(slope["pval"], rel=PVAL)
    assert block["trimfill"]["model"].startswith("rma.uni (effects treated as independent)")


@pytest.mark.parametrize("name", NAMES)
def test_step_selection_model_matches_metafor(name: str, datasets: dict, ref: dict) -> None:
    yi, vi = datasets[name]
    r = ref["two_level"][name]["step_tight"]
    out = selection_model(yi, vi, "step", steps=[0.025])
    assert out["steps"] == r["steps"]
    for key in ("estimate", "se", "tau2", "se.tau2"):
        assert out[key] == pytest.approx(r[key], rel=1e-4), key
    assert out["delta"][0] == 1
    assert out["delta"][1] == pytest.approx(r["delta"][1], rel=1e-4)
    assert out["se.delta"][1] == pytest.approx(r["se.delta"][1], rel=1e-4)
    for key in ("logLik", "logLik0", "LRT", "lrt_pvalue"):
        assert out[key] == pytest.approx(r[key], rel=1e-6), key
    assert out["LRT_df"] == r["LRT_df"] == 1
    # metafor's default BFGS stops earlier; its estimate is still within 1e-4 relative
    assert out["estimate"] == pytest.approx(ref["two_level"][name]["step"]["estimate"], rel=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_beta_selection_model_matches_metafor(name: str, datasets: dict, ref: dict) -> None:
    yi, vi = datasets[name]
    r = ref["two_level"][name]["beta_tight"]
    out = selection_model(yi, vi, "beta")
    assert out["estimate"] == pytest.approx(r["estimate"], abs=2e-3 * r["se"])
    assert out["tau2"] == pytest.approx(r["tau2"], abs=2e-3 * r["se.tau2"])
    for j in range(2):
        assert out["delta"][j] == pytest.approx(r["delta"][j], abs=2e-3 * r["se.delta"][j])
        assert out["se.delta"][j] == pytest.approx(r["se.delta"][j], rel=2e-3)
    assert out["se"] == pytest.approx(r["se"], rel=2e-3)
    for key in ("logLik", "logLik0", "LRT", "lrt_pvalue"):
        assert out[key] == pytest.approx(r[key], rel=1e-6), key
    assert out["LRT_df"] == 2


def test_selection_model_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        selection_model([0.1, 0.2, 0.3, 0.4], [0.01] * 4, "logistic")
    with pytest.raises(ValueError, match=r"steps must lie in \(0, 1\]"):
        selection_model([0.1, 0.2, 0.3, 0.4], [0.01] * 4, "step", steps=[1.5])
    with pytest.raises(ValueError, match="3 parameters, got 2 studies"):
        selection_model([0.1, 0.2], [0.01] * 2, "step")


def test_bias_block_with_few_effects_is_skipped_with_reason() -> None:
    out = bias_block([0.1, 0.2], [0.01, 0.02], selection="step")
    assert out["egger"] == {"status": "skipped", "reason": "needs at least 3 effects, got 2"}
    assert out["selection"]["status"] == "skipped"
