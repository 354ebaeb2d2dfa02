"""Reliability, AVE, HTMT, modification indices, residuals and admissibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import CASES, dataset, extra, fitted, ladder_fitted, reference

from alliance.sem.api import fit_model
from alliance.sem.modindices import modification_indices
from alliance.sem.validity import admissibility, htmt


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("measure", ["omega", "omega_obs_var", "alpha"])
def test_reliability_matches_semtools(case, measure):
    ref = reference(case)["reliability"][measure]
    mine = fitted(case)["reliability"][measure]
    for factor, value in ref.items():
        assert mine[factor] == pytest.approx(value, abs=1e-3)


@pytest.mark.parametrize("case", list(CASES))
def test_ave_matches_semtools(case):
    ref = reference(case)["reliability"]["semtools_reliability"]
    mine = fitted(case)["reliability"]["avevar"]
    for factor, values in ref.items():
        assert mine[factor] == pytest.approx(values["avevar"], abs=1e-3)


@pytest.mark.parametrize("name", ["holzinger_ml", "wai_ml"])
def test_reliability_per_group_matches_semtools(name):
    from conftest import ladder_reference

    ref = ladder_reference(name)["configural"]["reliability"]
    mine = ladder_fitted(name)["configural"]["reliability"]
    for measure in ("omega", "omega_obs_var", "alpha"):
        for a, b in zip(mine[measure], ref[measure], strict=True):
            assert a["group"] == b["group"]
            for k, v in b.items():
                if k != "group":
                    assert a[k] == pytest.approx(v, abs=1e-3)


def test_htmt_matches_semtools():
    ref = {row["_row"]: row for row in extra("wai_competing_models.json")["htmt"]}
    mine = fitted("wai_ml")["htmt"]
    for f1, row in ref.items():
        for f2, v in row.items():
            if f2 != "_row":
                assert mine[f1][f2] == pytest.approx(v, abs=1e-3)


def test_htmt_arithmetic_variant():
    cov = np.array([[1, 0.5, 0.2, 0.2], [0.5, 1, 0.2, 0.2], [0.2, 0.2, 1, 0.4], [0.2, 0.2, 0.4, 1]])
    out = htmt(cov, ["a", "b", "c", "d"], {"f": ["a", "b"], "g": ["c", "d"]}, htmt2=False)
    assert out["f"]["g"] == pytest.approx(0.2 / np.sqrt(0.5 * 0.4))


@pytest.mark.parametrize("estimator", ["ml", "mlr"])
def test_modification_indices_match_lavaan(estimator):
    ref = extra(f"holzinger_modindices_{estimator}.json")
    res = fit_model(dataset("holzinger_ml"), ref["model"], estimator.upper())
    mine = modification_indices(res, top=None)
    assert len(mine) == len(ref["modindices"])
    got = {(r["lhs"], r["op"], r["rhs"]): r for r in mine}
    for row in ref["modindices"]:
        m = got[(row["lhs"], row["op"], row["rhs"])]
        assert m["mi"] == pytest.approx(row["mi"], abs=1e-3)
        assert m["epc"] == pytest.approx(row["epc"], abs=1e-3)
        assert m["sepc.all"] == pytest.approx(row["sepc.all"], abs=1e-3)


def test_top_ten_modindices_in_output():
    mi = fitted("holzinger_ml")["modindices"]
    assert len(mi) == 10
    assert (mi[0]["lhs"], mi[0]["op"], mi[0]["rhs"]) == ("visual", "=~", "x9")
    assert mi[0]["mi"] >= mi[-1]["mi"]


def test_factor_correlations_and_residuals():
    out = fitted("holzinger_ml")
    fc = out["factor_correlations"]
    assert [(r["lhs"], r["rhs"]) for r in fc] == [
        ("visual", "textual"), ("visual", "speed"), ("textual", "speed"),
    ]  # fmt: skip
    std = {(r["lhs"], r["rhs"]): r for r in reference("holzinger_ml")["standardized"]}
    for row in fc:
        ref = std[(row["lhs"], row["rhs"])]
        assert row["r"] == pytest.approx(ref["est.std"], abs=1e-3)
        assert row["ci.lower"] == pytest.approx(ref["ci.lower"], abs=1e-3)
    res = out["residual_correlations"][0]
    mat = np.array(res["matrix"])
    assert mat.shape == (9, 9)
    np.testing.assert_allclose(np.diag(mat), 0, atol=1e-6)
    np.testing.assert_allclose(mat, mat.T, atol=1e-12)


def test_admissible_solution_status():
    status = fitted("holzinger_ml")["status"]
    assert status["admissible"] is True
    assert status["issues"] == []
    assert status["converged"] is True


def test_admissibility_never_raises(rng):
    corr = np.array([[1.0, 0.8, 0.8], [0.8, 1.0, 0.5], [0.8, 0.5, 1.0]])
    data = pd.DataFrame(rng.multivariate_normal(np.zeros(3), corr, size=500), columns=list("abc"))
    res = fit_model(data, "f =~ a + b + c")
    res.vcov = None  # as if the information matrix were singular
    status = admissibility(res)
    assert status["admissible"] is False
    assert "standard errors unavailable" in " ".join(status["issues"])
    res.x = res.x * np.nan  # garbage estimates still give a status
    status = admissibility(res)
    assert status["admissible"] is False
