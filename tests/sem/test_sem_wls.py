"""WLS with a given weight: correlation structures on a pooled matrix against lavaan 0.6-14.

The reference (tests/data/masem/masem_references.json, made by make_references.R) fits the
WAI-SR models to the fixed-effects pooled matrix of six simulated samples by lavaan's WLS with
the matrix's asymptotic covariance V as weight (residual variances constrained to 1 -
communality; WLS.V = V^-1 / (N - 1), so lavaan's statistic is (r - rho)' V^-1 (r - rho)).
lavaan counts the 12 variances among its statistics, so its df are 12 more. lavaan's
optimizer (nlminb with the constraints) agrees with ours to about 1e-7 in the estimates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alliance.sem.model import ModelSpec, SyntaxError_
from alliance.sem.samplestats import lower_pairs
from alliance.sem.solution import parameter_rows
from alliance.sem.syntax import builtin_models
from alliance.sem.validity import admissibility
from alliance.sem.wls import correlation_fit_measures, fit_correlation_structure

DATA = Path(__file__).parents[1] / "data" / "masem"
EST = 1e-6  # estimates (absolute)
SE = 1e-7  # standard errors (absolute)
CHISQ = 1e-8  # chi-square (relative)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((DATA / "masem_references.json").read_text())["wai"]


@pytest.fixture(scope="module")
def pooled(reference: dict) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    items = json.loads((DATA / "wai_correlations.json").read_text())["variables"]
    fixed = reference["fixed"]
    p = len(items)
    cor = np.eye(p)
    pairs = lower_pairs(p, diagonal=False)
    cor[pairs[:, 0], pairs[:, 1]] = fixed["estimate"]
    cor[pairs[:, 1], pairs[:, 0]] = fixed["estimate"]
    return cor, np.array(fixed["acov"]), int(fixed["ntotal"]), items


@pytest.mark.parametrize("name", ["one_factor", "two_factor", "correlated", "bifactor"])
def test_correlation_structure_matches_lavaan_wls(name, reference, pooled, wai_sr):
    cor, acov, n, items = pooled
    syntax = builtin_models(wai_sr)[name]
    result = fit_correlation_structure(syntax, cor, acov, n, items)
    theirs = reference["stage2"][name]
    assert result.converged
    assert result.chisq == pytest.approx(theirs["chisq"], rel=CHISQ)
    assert result.df == theirs["df_lavaan"] - len(items)
    lav = {(p["lhs"], p["op"], p["rhs"]): p for p in theirs["parameters"]}
    lav |= {(p["rhs"], p["op"], p["lhs"]): p for p in theirs["parameters"] if p["op"] == "~~"}
    free = [r for r in parameter_rows(result) if r["free"]]
    assert len(free) == result.npar
    compared = 0
    for row in free:
        ref_row = lav[(row["lhs"], row["op"], row["rhs"])]
        assert row["est"] == pytest.approx(ref_row["est"], abs=EST)
        assert row["se"] == pytest.approx(ref_row["se"], abs=SE)
        compared += 1
    assert compared == result.npar
    assert admissibility(result)["admissible"]


def test_fit_measures_follow_their_definitions(pooled, wai_sr):
    cor, acov, n, items = pooled
    result = fit_correlation_structure(builtin_models(wai_sr)["correlated"], cor, acov, n, items)
    fit = correlation_fit_measures(result)
    # the baseline (all correlations 0): r in vechs order
    pairs = lower_pairs(12, diagonal=False)
    r = cor[pairs[:, 0], pairs[:, 1]]
    assert fit["baseline.chisq"] == pytest.approx(r @ np.linalg.solve(acov, r), rel=1e-10)
    assert fit["baseline.df"] == 66
    x2, df, x0, df0 = fit["chisq"], fit["df"], fit["baseline.chisq"], fit["baseline.df"]
    assert fit["cfi"] == pytest.approx(1 - max(x2 - df, 0) / max(x2 - df, x0 - df0), rel=1e-12)
    assert fit["tli"] == pytest.approx((x0 / df0 - x2 / df) / (x0 / df0 - 1), rel=1e-12)
    assert fit["rmsea"] == pytest.approx(np.sqrt(max(x2 - df, 0) / (n * df)), abs=1e-12)
    assert fit["aic"] == pytest.approx(x2 - 2 * df)
    assert fit["bic"] == pytest.approx(x2 - np.log(n) * df)
    implied = result.spec.implied(result.x)[0].sigma
    order = [items.index(v) for v in result.spec.ov]
    resid = (cor[np.ix_(order, order)] - implied)[np.tril_indices(12, -1)]
    assert fit["srmr"] == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-10)


def test_correlation_structure_has_unit_implied_variances_and_computed_residuals(wai_sr):
    spec = ModelSpec.from_syntax(builtin_models(wai_sr)["bifactor"], std_lv=True, correlation=True)
    x = np.full(spec.npar, 0.4)
    sigma = spec.implied(x)[0].sigma
    assert np.allclose(np.diag(sigma), 1.0)
    # only loadings are free: 12 general + 12 specific, no residual variances or intercepts
    assert spec.npar == 24
    assert all(r.op == "=~" for r in spec.free_rows())


def test_correlation_structure_refuses_means_thresholds_and_groups():
    with pytest.raises(SyntaxError_, match="no means or thresholds"):
        ModelSpec.from_syntax("f =~ a + b + c\na ~ 1", correlation=True)
    with pytest.raises(ValueError, match="one group"):
        ModelSpec.from_syntax("f =~ a + b + c", correlation=True, group_labels=["x", "y"])


def test_bad_matrices_are_named():
    cor = np.eye(3)
    acov = np.eye(3) / 100
    with pytest.raises(ValueError, match="unit diagonal"):
        fit_correlation_structure("f =~ a + b + c", 2 * cor, acov, 100, ["a", "b", "c"])
    with pytest.raises(ValueError, match="acov must be 3 x 3"):
        fit_correlation_structure("f =~ a + b + c", cor, np.eye(2), 100, ["a", "b", "c"])
    with pytest.raises(ValueError, match="not positive definite"):
        fit_correlation_structure("f =~ a + b + c", cor, -acov, 100, ["a", "b", "c"])
    with pytest.raises(ValueError, match="not in the correlation matrix"):
        fit_correlation_structure("f =~ a + b + d", cor, acov, 100, ["a", "b", "c"])


def test_heywood_case_is_inadmissible_not_an_error():
    # one factor, three indicators: lambda_1^2 = r12 r13 / r23 = 1.28 > 1
    cor = np.array([[1.0, 0.8, 0.8], [0.8, 1.0, 0.5], [0.8, 0.5, 1.0]])
    pairs = lower_pairs(3, diagonal=False)
    acov = np.diag(np.full(len(pairs), 0.001))
    result = fit_correlation_structure("f =~ a + b + c", cor, acov, 500, ["a", "b", "c"])
    status = admissibility(result)
    assert not status["admissible"]
    assert any("Heywood" in issue for issue in status["issues"])
