"""Every fit measure of the lavaan reference `fit` blocks (ML, MLR, FIML)."""

from __future__ import annotations

import pytest
from conftest import CASES, fitted, reference

from alliance.sem.fitmeasures import cfi, rmsea, rmsea_ci, tli

CHISQ_LIKE = {"chisq", "chisq.scaled", "baseline.chisq", "baseline.chisq.scaled", "logl",
              "unrestricted.logl", "aic", "bic", "bic2"}  # fmt: skip


def _fit_cases() -> list:
    return [
        pytest.param(case, name, id=f"{case}-{name}")
        for case in CASES
        for name in reference(case)["fit"]
    ]


@pytest.mark.parametrize(("case", "name"), _fit_cases())
def test_fit_measure_matches_lavaan(case, name):
    ref = reference(case)["fit"][name]
    mine = fitted(case)["fit"][name]
    if ref is None:
        assert mine is None
        return
    if name in CHISQ_LIKE:
        assert mine == pytest.approx(ref, abs=0.01)
    else:
        assert mine == pytest.approx(ref, abs=1e-3)


def test_fit_all_has_lavaan_names():
    for case in CASES:
        mine = fitted(case)["fit_all"]
        ref = reference(case)["fit_all"]
        for name in ("fmin", "nnfi", "nfi", "ifi", "rni", "rmsea.notclose.pvalue", "srmr_bentler",
                     "srmr_bentler_nomean", "rmr", "crmr"):  # fmt: skip
            assert mine[name] == pytest.approx(ref[name], abs=1e-3), (case, name)


def test_index_formulas_edge_cases():
    assert cfi(10, 20, 500, 30) == 1.0
    assert tli(10, 20, 500, 30) > 1
    assert rmsea(10, 20, 300) == 0.0
    assert rmsea(10, 0, 300) == 0.0
    lo, up = rmsea_ci(10, 20, 300)
    assert lo == 0.0 and up >= 0.0
    lo, up = rmsea_ci(85.3055217699727, 24, 301)
    assert lo == pytest.approx(0.0714184904399382, abs=1e-6)
    assert up == pytest.approx(0.113678016811963, abs=1e-6)
