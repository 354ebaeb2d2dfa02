"""WLSMV across groups by group blocks: the same numbers as the dense formulas (and MINPACK)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import LAVAAN
from scipy import optimize

from alliance.sem import teststats
from alliance.sem.api import fit_model
from alliance.sem.blocks import GroupSum, Layout
from alliance.sem.estimate import FitResult, _dwls_start
from alliance.sem.information import wls_implied, wls_jacobian
from alliance.sem.invariance import step_constraints

MODEL = (LAVAAN / "wai_sr_sim" / "wai_sr.lav").read_text()
COLLAPSED = LAVAAN / "collapse" / "sites5_empty_collapsed.csv"


@pytest.fixture(scope="module")
def ladders() -> dict[tuple[str, str], dict[str, FitResult]]:
    """Ladder fits across 2 sites (wai_sr_sim) and 5 simulated sites, delta and theta."""
    data = {
        "wai": (pd.read_csv(LAVAAN / "wai_sr_sim" / "wai_sr_sim.csv"), "site", "listwise"),
        "sites5": (pd.read_csv(COLLAPSED), "dataset", "pairwise"),
    }
    out = {}
    for name, (frame, group, missing) in data.items():
        for par in ("delta", "theta"):
            steps = ["configural", "metric", "scalar"] + (["strict"] if par == "theta" else [])
            out[(name, par)] = {
                s: fit_model(
                    frame,
                    MODEL,
                    "WLSMV",
                    missing,
                    group=group,
                    group_equal=step_constraints(s, ordered=True),
                    parameterization=par,
                )  # fmt: skip
                for s in steps
            }
    return out


def test_trace_pair_of_two_block_matrices(rng):
    local = [np.r_[0, 1, 2 + 3 * g + np.arange(3)] for g in range(4)]
    lay = Layout.from_local(14, local)

    def rand() -> GroupSum:
        out = []
        for ix in lay.local:
            a = rng.normal(size=(len(ix), len(ix) + 2))
            out.append(a @ a.T)
        return GroupSum(lay, out)

    f, g, y1, y2 = rand().inverse(), rand().inverse(), rand(), rand()
    want = np.trace(f.dense() @ y1.dense() @ g.dense() @ y2.dense())
    assert f.trace_pair(y1, y2, other=g) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize(("name", "par"), [("wai", "delta"), ("wai", "theta"), ("sites5", "theta")])
def test_difference_test_traces_equal_lavaans_dense_algorithm(ladders, name, par):
    fits = ladders[(name, par)]
    steps = list(fits)
    for a, b in zip(steps, steps[1:], strict=False):
        blocks = teststats._satorra2000_traces_blocks(fits[a], fits[b])
        dense = teststats._satorra2000_traces_dense(fits[a], fits[b])
        np.testing.assert_allclose(blocks, dense, rtol=1e-9)
        assert teststats.satorra2000_difference(fits[a], fits[b])["method"] == "blocks"


def test_difference_test_falls_back_to_dense(ladders, monkeypatch):
    fits = ladders[("wai", "delta")]
    want = teststats.satorra2000_difference(fits["metric"], fits["scalar"])

    def singular(*_args):
        raise np.linalg.LinAlgError("S is (nearly) singular")

    monkeypatch.setattr(teststats, "_satorra2000_traces_blocks", singular)
    got = teststats.satorra2000_difference(fits["metric"], fits["scalar"])
    assert got["method"] == "dense"
    assert got["chisq_diff"] == pytest.approx(want["chisq_diff"], rel=1e-9)


def test_covariance_and_traces_equal_dense_formulas(ladders):
    fit = ladders[("sites5", "delta")]["metric"]
    fg = fit.sample.fg
    deltas = teststats._full_deltas(fit)  # all npar columns
    weights = [g.wls.v_diag for g in fit.sample.groups]
    gammas = [g.wls.gamma for g in fit.sample.groups]
    e = sum(f * d.T @ (w[:, None] * d) for f, d, w in zip(fg, deltas, weights, strict=True))
    meat = sum(
        f * (d.T * w) @ gm @ (w[:, None] * d)
        for f, d, w, gm in zip(fg, deltas, weights, gammas, strict=True)
    )
    e_inv = np.linalg.inv(e)
    np.testing.assert_allclose(fit.information.dense(), e, atol=1e-12)
    want = e_inv @ meat @ e_inv / (fit.ntotal - fit.spec.ngroups)
    np.testing.assert_allclose(fit.vcov, want, rtol=1e-8, atol=1e-14)
    # tr(U Gamma), tr((U Gamma)^2) with the stacked matrices
    v = np.concatenate([f * w for f, w in zip(fg, weights, strict=True)])
    d = np.vstack(deltas)
    gamma = teststats._bdiag([gm / f for f, gm in zip(fg, gammas, strict=True)])
    ug = (np.diag(v) - (v[:, None] * d) @ e_inv @ (v[:, None] * d).T) @ gamma
    test = teststats.model_test(fit)
    assert test["trace.UGamma"] == pytest.approx(np.trace(ug), rel=1e-10)
    assert test["trace.UGamma2"] == pytest.approx(np.sum(ug * ug.T), rel=1e-10)


@pytest.mark.parametrize(
    ("name", "par", "step"), [("wai", "theta", "scalar"), ("sites5", "delta", "metric")]
)
def test_levenberg_marquardt_reaches_minpacks_minimum(ladders, name, par, step):
    fit = ladders[(name, par)][step]
    spec, groups = fit.spec, fit.sample.groups
    wls = [g.wls for g in groups]
    sw = [np.sqrt((g.n - 1.0) * g.wls.v_diag) for g in groups]

    def resid(x):
        parts = [
            w * (s.obs - wls_implied(spec, x, k + 1, s))
            for k, (w, s) in enumerate(zip(sw, wls, strict=True))
        ]
        return np.concatenate(parts)

    def jac(x):
        return -np.vstack(
            [
                w[:, None] * wls_jacobian(spec, x, k + 1, s, local=False)
                for k, (w, s) in enumerate(zip(sw, wls, strict=True))
            ]
        )

    ref = optimize.least_squares(
        resid, _dwls_start(spec, fit.sample), jac=jac, method="lm", xtol=1e-12, ftol=1e-12,
        gtol=1e-12, max_nfev=2000,
    )  # fmt: skip
    assert fit.converged and ref.success
    np.testing.assert_allclose(fit.x, ref.x, atol=1e-6)
    assert fit.chisq == pytest.approx(float(np.sum(ref.fun**2)), rel=1e-9)
