"""FIML: EM saturated model, casewise likelihood and gradient, agreement with lavaan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import dataset, fitted, reference

from alliance.sem.estimate import FIMLObjective
from alliance.sem.model import ModelSpec, start_values
from alliance.sem.mvnorm import em_saturated
from alliance.sem.mvnorm import missing_patterns as _patterns
from alliance.sem.samplestats import fill_h1, prepare_sample


def test_em_on_complete_data_gives_sample_moments(rng):
    x = rng.standard_normal((200, 4))
    mu, sigma, logl, it = em_saturated(x, _patterns(x))
    np.testing.assert_allclose(mu, x.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False, bias=True), atol=1e-10)
    assert it <= 2


def test_em_recovers_moments_under_mcar(rng):
    cov = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])
    x = rng.multivariate_normal([1.0, 2.0, 3.0], cov, size=5000)
    x[rng.random(x.shape) < 0.15] = np.nan
    x = x[~np.isnan(x).all(axis=1)]
    mu, sigma, _, _ = em_saturated(x, _patterns(x))
    np.testing.assert_allclose(mu, [1, 2, 3], atol=0.05)
    np.testing.assert_allclose(sigma, cov, atol=0.06)


def test_fiml_gradient_matches_numeric(rng):
    data = dataset("wai_mlr_fiml")
    spec = ModelSpec.from_syntax(reference("wai_mlr_fiml")["meta"]["model"], meanstructure=True)
    sample = prepare_sample(data, spec.ov, missing="fiml")
    fill_h1(sample)
    fun = FIMLObjective(spec, sample)
    x = start_values(spec, [g.cov for g in sample.groups], [g.mean for g in sample.groups])
    x = x + 0.05 * rng.standard_normal(len(x))
    _, grad = fun(x)
    for k in rng.choice(len(x), size=6, replace=False):
        e = np.zeros(len(x))
        e[k] = 1e-6
        num = (fun(x + e)[0] - fun(x - e)[0]) / 2e-6
        assert grad[k] == pytest.approx(num, abs=1e-6)


def test_fiml_on_complete_data_equals_ml():
    fiml = fitted("holzinger_fiml")["fit"]
    ml = fitted("holzinger_ml")["fit"]
    assert fiml["chisq"] == pytest.approx(ml["chisq"], abs=1e-6)
    assert fiml["npar"] == ml["npar"] + 9


def test_fiml_uses_all_rows_and_listwise_drops():
    data = dataset("wai_mlr_fiml")
    model = reference("wai_mlr_fiml")["meta"]["model"]
    spec = ModelSpec.from_syntax(model, meanstructure=True)
    assert prepare_sample(data, spec.ov, missing="fiml").ntotal == 600
    listwise = prepare_sample(data, spec.ov, missing="listwise")
    assert listwise.ntotal < 600 and listwise.n_dropped == 600 - listwise.ntotal
    assert fitted("wai_mlr_fiml")["ntotal"] == 600


def test_fiml_needs_meanstructure():
    data = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [2.0, 1, 4, 3], "c": [1.0, 3, 2, 5]})
    spec = ModelSpec.from_syntax("f =~ a + b + c")
    with pytest.raises(ValueError, match="mean structure"):
        FIMLObjective(spec, prepare_sample(data, spec.ov, missing="fiml"))
