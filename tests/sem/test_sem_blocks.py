"""Group-block algebra of multi-group models: the structured matrices equal the dense ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import LAVAAN

import alliance.sem.blocks as blocks_mod
from alliance.sem.api import fit_model
from alliance.sem.blocks import GroupSum, Layout, condition_number
from alliance.sem.estimate import fmin_gradient
from alliance.sem.fitmeasures import baseline_fit
from alliance.sem.information import (
    model_expected_information,
    model_scores,
    observed_information,
    observed_information_blocks,
)
from alliance.sem.model import ModelSpec
from alliance.sem.modindices import release_tests, unconstrained_copy
from alliance.sem.mvnorm import expected_information, saturated_jacobian
from alliance.sem.samplestats import h1_information
from alliance.sem.teststats import complete_chisq, fiml_corrected, yuan_bentler_mplus

MODEL = (LAVAAN / "wai_sr_sim" / "wai_sr.lav").read_text()


@pytest.fixture(scope="module")
def four_groups() -> pd.DataFrame:
    """400 rows of the WAI data with missing values, split into four groups (rows mod 4)."""
    data = pd.read_csv(LAVAAN / "wai_sr_sim" / "wai_sr_sim_missing.csv").head(400)
    return data.assign(grp=[f"g{i % 4}" for i in range(len(data))])


@pytest.fixture(scope="module")
def metric_fiml(four_groups):
    return fit_model(four_groups, MODEL, "MLR", "fiml", group="grp", group_equal=("loadings",))


@pytest.fixture(scope="module")
def scalar_ml(four_groups):
    data = four_groups.dropna()
    return fit_model(data, MODEL, "ML", group="grp", group_equal=("loadings", "intercepts"))


@pytest.fixture(scope="module")
def scalar_mlr(four_groups):
    data = four_groups.dropna()
    return fit_model(data, MODEL, "MLR", group="grp", group_equal=("loadings", "intercepts"))


def _random_layout(rng: np.random.Generator, groups: int = 6, shared: int = 4, own: int = 5):
    q = shared + groups * own
    local = [
        np.r_[np.flatnonzero(rng.random(shared) < 0.8), shared + g * own + np.arange(own)]
        for g in range(groups)
    ]
    return Layout.from_local(q, local)


def _random_sum(layout: Layout, rng: np.random.Generator) -> GroupSum:
    out = []
    for ix in layout.local:
        a = rng.normal(size=(len(ix), len(ix) + 3))
        out.append(a @ a.T)
    return GroupSum(layout, out)


def test_layout_partitions_parameters():
    lay = Layout.from_local(5, [np.array([0, 1, 2]), np.array([0, 3, 4])])
    assert lay.shared.tolist() == [0]
    assert [o.tolist() for o in lay.own] == [[1, 2], [3, 4]]
    assert lay.owner.tolist() == [-1, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="every parameter must enter a group"):
        Layout.from_local(4, [np.array([0, 1])])
    with pytest.raises(ValueError, match="must lie in"):
        Layout.from_local(2, [np.array([0, 5])])


def test_block_algebra_matches_dense(rng):
    lay = _random_layout(rng)
    e, b, y1, y2 = (_random_sum(lay, rng) for _ in range(4))
    e_dense = e.dense()
    f = e.inverse()
    f_dense = np.linalg.inv(e_dense)
    np.testing.assert_allclose(f.dense(), f_dense, atol=1e-12)
    np.testing.assert_allclose(f.diag(), np.diag(f_dense), atol=1e-12)
    v = rng.normal(size=lay.q)
    np.testing.assert_allclose(e.solve(v), np.linalg.solve(e_dense, v), atol=1e-10)
    np.testing.assert_allclose(e.matvec(v), e_dense @ v, atol=1e-10)
    sand = f.sandwich(b)
    sand_dense = f_dense @ b.dense() @ f_dense
    np.testing.assert_allclose(sand.dense(), sand_dense, atol=1e-10)
    for g in range(lay.ngroups):
        ix = lay.local[g]
        np.testing.assert_allclose(sand.local(g), sand_dense[np.ix_(ix, ix)], atol=1e-10)
    assert f.trace_with(b) == pytest.approx(np.trace(f_dense @ b.dense()), rel=1e-10)
    want = np.trace(f_dense @ y1.dense() @ f_dense @ y2.dense())
    assert f.trace_pair(y1, y2) == pytest.approx(want, rel=1e-10)
    damped = e.plus_diag(rng.random(lay.q))
    np.testing.assert_allclose(damped.inverse().dense(), np.linalg.inv(damped.dense()), atol=1e-12)
    assert f.scaled(2.0).dense() == pytest.approx(2.0 * f_dense)


def test_condition_number_lanczos_matches_dense(rng, monkeypatch):
    e = _random_sum(_random_layout(rng, groups=20), rng)
    want = np.linalg.cond(e.dense())
    monkeypatch.setattr(blocks_mod, "DENSE_COND_MAX", 0)
    assert condition_number(e) == pytest.approx(want, rel=1e-6)


def test_group_free_jacobian_is_the_nonzero_part(metric_fiml):
    spec, x = metric_fiml.spec, metric_fiml.x
    for g in (1, 3):
        idx = spec.group_free(g)
        full = spec.jacobian(x, g)
        loc = spec.jacobian(x, g, local=True)
        for a, b in zip(full, loc, strict=True):
            np.testing.assert_array_equal(a[idx], b)
            assert not np.any(np.delete(a, idx, axis=0))
    shared = Layout.of(spec).shared
    assert {spec.free_rows()[k].op for k in shared} == {"=~"}


def test_information_and_covariance_equal_dense_formulas(metric_fiml, scalar_ml, scalar_mlr):
    for res in (metric_fiml, scalar_ml, scalar_mlr):
        spec, x, sample = res.spec, res.x, res.sample
        n = sample.ntotal
        if res.estimator == "MLR":
            info = observed_information(spec, x, sample)
            scores = model_scores(spec, x, sample)  # full npar columns
            b0 = sum(s.T @ s for s in scores) / n
            e_inv = np.linalg.inv(info)
            want = e_inv @ b0 @ e_inv / n
        else:
            info = model_expected_information(spec, x, sample)
            want = np.linalg.inv(info) / n
        np.testing.assert_allclose(res.information.dense(), info, atol=1e-12)
        np.testing.assert_allclose(res.vcov, want, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(res.se, np.sqrt(np.diag(want)), rtol=1e-7)


@pytest.mark.parametrize("which", ["metric_fiml", "scalar_mlr"])
def test_yuan_bentler_trace_equals_dense(which, request):
    res = request.getfixturevalue(which)
    n = res.ntotal
    e_inv = np.linalg.inv(observed_information(res.spec, res.x, res.sample))
    scores = model_scores(res.spec, res.x, res.sample)
    trace = 0.0
    for gi, (g, s) in enumerate(zip(res.sample.groups, scores, strict=True)):
        a1, b1 = h1_information(res.sample, gi + 1, res.spec.meanstructure)
        trace += np.sum(b1 * np.linalg.inv(a1).T) - (g.n / n) * np.sum((s.T @ s / g.n) * e_inv.T)
    assert yuan_bentler_mplus(res)["trace.UGamma"] == pytest.approx(trace, rel=1e-9)


def _moment_jacobian(spec, x, group):
    """d(mu, vech Sigma) / dx of one group, all parameters, means first (np.tril_indices)."""
    dsig, dmu, _ = spec.jacobian(x, group)
    rows, cols = np.tril_indices(spec.p)
    return np.vstack([dmu.T, dsig[:, rows, cols].T])


def _dense_fiml_corrected(result, baseline):
    """The dense formula of Zhang & Savalei (2023) as lavaan writes it (stacked groups)."""
    from scipy.linalg import block_diag

    sample = result.sample
    n = sample.ntotal
    fg = [g.n / n for g in sample.groups]
    wm, jm, wc, wmi = [], [], [], []
    for gi, g in enumerate(sample.groups):
        a1, b1 = h1_information(sample, gi + 1, result.spec.meanstructure)
        dsig, dmu = saturated_jacobian(g.cov.shape[0], True)
        wm.append(a1)
        jm.append(b1)
        wc.append(expected_information(g.cov, dsig, dmu))
        wmi.append(np.linalg.inv(a1))
    wm_all = block_diag(*[f * w for f, w in zip(fg, wm, strict=True)])
    wmi_all = block_diag(*[w / f for f, w in zip(fg, wmi, strict=True)])
    wc_all = block_diag(*[f * w for f, w in zip(fg, wc, strict=True)])
    gamma = block_diag(*[wi @ j @ wi / f for f, wi, j in zip(fg, wmi, jm, strict=True)])
    core = wmi_all @ wc_all @ wmi_all
    out = []
    for fit in (result, baseline):
        delta = np.vstack([_moment_jacobian(fit.spec, fit.x, gi + 1) for gi in range(len(fg))])
        e = delta.T @ wm_all @ delta
        u = wm_all - wm_all @ delta @ np.linalg.solve(e, delta.T @ wm_all)
        out.append(float(np.trace(u @ core @ u @ gamma)) / fit.df)
    return out


def test_fiml_corrected_equals_dense_formula(metric_fiml):
    base = baseline_fit(metric_fiml)
    got = fiml_corrected(metric_fiml, base)
    c3, c3b = _dense_fiml_corrected(metric_fiml, base)
    assert got["c_hat3"] == pytest.approx(c3, rel=1e-9)
    assert got["c_hat3_null"] == pytest.approx(c3b, rel=1e-9)
    assert got["XX3"] == pytest.approx(complete_chisq(metric_fiml))


def _bordered_score_tests(result):
    """lavTestScore's univariate tests by the bordered matrix, one solve per constraint."""
    spec = result.spec
    free_rows = [r for r in spec.table if r.free]
    ext, x_un, constraints = unconstrained_copy(spec, result.x)
    score = -fmin_gradient(ext, x_un, result)
    info = model_expected_information(ext, x_un, result.sample)
    q = len(x_un)
    rmat = np.zeros((len(constraints), q))
    for i, (a, b) in enumerate(constraints):
        rmat[i, a], rmat[i, b] = 1.0, -1.0
    out = {}
    for i, (_, b) in enumerate(constraints):
        row = free_rows[b]
        if row.group == 1 or not row.label.startswith(".p"):
            continue
        r1 = np.delete(rmat, i, axis=0)
        k = len(r1)
        z = np.block([[info, r1.T], [r1, np.zeros((k, k))]])
        sol = np.linalg.solve(z, np.concatenate([score, np.zeros(k)]))
        out[(row.lhs, row.op, row.rhs, row.group)] = result.ntotal * score @ sol[:q]
    return out


def test_release_score_tests_equal_bordered_solves(scalar_ml):
    want = _bordered_score_tests(scalar_ml)
    got = release_tests(scalar_ml, top=None)
    assert len(got) == len(want) > 30
    for row in got:
        key = (row["lhs"], row["op"], row["rhs"], row["group"])
        assert row["X2"] == pytest.approx(want[key], rel=1e-7, abs=1e-9)
    assert [r["X2"] for r in got] == sorted((r["X2"] for r in got), reverse=True)


def test_observed_information_touches_each_parameter_once_per_group(metric_fiml, monkeypatch):
    """The finite differences run over each group's own parameters, not over all of them."""
    calls = []
    original = ModelSpec.chain

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ModelSpec, "chain", counting)
    res = metric_fiml
    observed_information_blocks(res.spec, res.x, res.sample)
    per_group = sum(len(res.spec.group_free(g)) for g in range(1, res.spec.ngroups + 1))
    assert len(calls) == 2 * per_group
    assert per_group < res.spec.npar * res.spec.ngroups / 2
