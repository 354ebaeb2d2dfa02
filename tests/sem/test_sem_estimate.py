"""Tests for alliance.sem.estimate against lavaan 0.6-14, plus recovery and edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import CASES, fitted, reference

from alliance.sem.estimate import estimate
from alliance.sem.model import ModelSpec
from alliance.sem.samplestats import prepare_sample

TOL = 1e-3


def _key(row: dict) -> tuple:
    return (row["lhs"], row["op"], row["rhs"], row.get("group", 1))


def _param_cases(block: str) -> list:
    out = []
    for case in CASES:
        for row in reference(case)[block]:
            out.append(
                pytest.param(case, _key(row), id=f"{case}-{''.join(map(str, _key(row)[:3]))}")
            )
    return out


def _find(rows: list[dict], key: tuple) -> dict:
    hits = [r for r in rows if _key(r) == key]
    assert len(hits) == 1, f"{key} appears {len(hits)} times"
    return hits[0]


@pytest.mark.parametrize(("case", "key"), _param_cases("parameters"))
def test_parameter_matches_lavaan(case, key):
    ref = _find(reference(case)["parameters"], key)
    mine = _find(fitted(case)["parameters"], key)
    assert mine["free"] == ref["free"]
    for col in ("est", "se", "ci.lower", "ci.upper", "z"):
        if ref[col] is None:
            assert mine[col] is None
        else:
            tol = TOL * max(1.0, abs(ref[col])) if col == "z" else TOL
            assert mine[col] == pytest.approx(ref[col], abs=tol), col


@pytest.mark.parametrize(("case", "key"), _param_cases("standardized"))
def test_standardized_matches_lavaan(case, key):
    ref = _find(reference(case)["standardized"], key)
    mine = _find(fitted(case)["standardized"], key)
    assert mine["est.std"] == pytest.approx(ref["est.std"], abs=TOL)
    assert mine["se"] == pytest.approx(ref["se"], abs=TOL)


def test_same_rows_as_lavaan():
    for case in CASES:
        assert [_key(r) for r in fitted(case)["parameters"]] == [
            _key(r) for r in reference(case)["parameters"]
        ]


def _simulate(rng, n=800, loadings=(0.8, 0.7, 0.6, 0.75), phi=0.4, heywood=False):
    lam = np.zeros((8, 2))
    lam[:4, 0] = loadings
    lam[4:, 1] = loadings
    psi = np.array([[1.0, phi], [phi, 1.0]])
    eta = rng.multivariate_normal(np.zeros(2), psi, size=n)
    theta = 1 - lam.max(axis=1) ** 2
    y = eta @ lam.T + rng.standard_normal((n, 8)) * np.sqrt(theta)
    if heywood:
        y[:, 0] = eta[:, 0] * 1.0 + rng.standard_normal(n) * 0.01
    cols = [f"y{i}" for i in range(1, 9)]
    return pd.DataFrame(y, columns=cols), lam, psi


MODEL = "f1 =~ y1 + y2 + y3 + y4\nf2 =~ y5 + y6 + y7 + y8"


def test_recovery_of_known_loadings(rng):
    data, lam, psi = _simulate(rng)
    spec = ModelSpec.from_syntax(MODEL, std_lv=True)
    res = estimate(spec, prepare_sample(data, spec.ov))
    assert res.converged
    fitted_spec = spec.with_values(res.x)
    se = res.se
    covered = 0
    total = 0
    for r in fitted_spec.table:
        if r.op == "=~":
            true = lam[spec.ov.index(r.rhs), spec.lv.index(r.lhs)]
            s = se[r.free - 1]
            covered += abs(r.value - true) <= 1.96 * s
            total += 1
            assert r.value == pytest.approx(true, abs=0.1)
    assert covered / total >= 0.75
    assert fitted_spec.find("f1", "~~", "f2").value == pytest.approx(psi[0, 1], abs=0.1)


def test_heywood_case_reported_not_raised(rng):
    from alliance.sem.api import fit_cfa

    # one factor, three indicators: lambda_1^2 = r12 r13 / r23 = 1.28 > 1 -> negative theta_1
    corr = np.array([[1.0, 0.8, 0.8], [0.8, 1.0, 0.5], [0.8, 0.5, 1.0]])
    y = rng.multivariate_normal(np.zeros(3), corr, size=2000)
    data = pd.DataFrame(y, columns=["y1", "y2", "y3"])
    out = fit_cfa(data, "f =~ y1 + y2 + y3")
    status = out["status"]
    assert status["negative_variances"] == ["y1~~y1"]
    assert status["std_loadings_above_1"] == ["f=~y1"]
    assert status["admissible"] is False
    assert any("Heywood" in issue for issue in status["issues"])


def test_non_convergence_is_a_status(rng):
    data, _, _ = _simulate(rng, n=200)
    spec = ModelSpec.from_syntax(MODEL)
    res = estimate(spec, prepare_sample(data, spec.ov), max_iter=2)
    assert res.converged is False
    assert any("did not converge" in w for w in res.warnings)


def test_estimator_and_sample_checks(rng):
    data, _, _ = _simulate(rng, n=100)
    spec = ModelSpec.from_syntax(MODEL)
    sample = prepare_sample(data, spec.ov)
    with pytest.raises(ValueError, match="estimator must be"):
        estimate(spec, sample, "GLS")
    with pytest.raises(ValueError, match="not in the data"):
        prepare_sample(data.drop(columns="y3"), spec.ov)
    const = data.assign(y2=1.0)
    with pytest.raises(ValueError, match="without variance"):
        prepare_sample(const, spec.ov)
    with pytest.raises(ValueError, match="complete rows"):
        prepare_sample(data.head(8), spec.ov)
    with pytest.raises(ValueError, match="at least 2 levels"):
        prepare_sample(data.assign(g="a"), spec.ov, group="g")
    with pytest.raises(ValueError, match="missing must be"):
        prepare_sample(data, spec.ov, missing="pairwise")
