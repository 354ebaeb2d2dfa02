"""MLR: sandwich SEs, Yuan-Bentler-Mplus scaling, scaled and robust indices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import dataset, fitted, reference

from alliance.sem.api import fit_model
from alliance.sem.fitmeasures import fit_measures
from alliance.sem.teststats import yuan_bentler_mplus


@pytest.mark.parametrize("case", ["holzinger_mlr", "wai_mlr", "wai_mlr_fiml"])
def test_scaling_factor_and_robust_indices(case):
    ref = reference(case)["fit"]
    mine = fitted(case)["fit"]
    for name in ("chisq.scaling.factor", "cfi.robust", "tli.robust", "rmsea.robust",
                 "rmsea.ci.upper.robust", "cfi.scaled", "rmsea.scaled"):  # fmt: skip
        assert mine[name] == pytest.approx(ref[name], abs=1e-3), name
    assert mine["chisq.scaled"] == pytest.approx(ref["chisq.scaled"], abs=0.01)


def test_sandwich_ses_differ_from_ml():
    ml = {(r["lhs"], r["op"], r["rhs"]): r["se"] for r in fitted("holzinger_ml")["parameters"]}
    mlr = {(r["lhs"], r["op"], r["rhs"]): r["se"] for r in fitted("holzinger_mlr")["parameters"]}
    key = ("visual", "=~", "x2")
    assert ml[key] != pytest.approx(mlr[key], abs=1e-3)
    assert mlr[key] == pytest.approx(0.132077906461934, abs=1e-6)


def test_scaling_close_to_one_for_normal_data(rng):
    lam = np.array([0.8, 0.7, 0.6, 0.75])
    eta = rng.standard_normal(4000)
    y = eta[:, None] * lam + rng.standard_normal((4000, 4)) * np.sqrt(1 - lam**2)
    data = pd.DataFrame(y, columns=["a", "b", "c", "d"])
    res = fit_model(data, "f =~ a + b + c + d", "MLR")
    yb = yuan_bentler_mplus(res)
    assert yb["chisq.scaling.factor"] == pytest.approx(1.0, abs=0.25)
    assert yb["trace.UGamma"] == pytest.approx(yb["chisq.scaling.factor"] * res.df)


def test_ml_has_no_robust_measures():
    res = fit_model(dataset("holzinger_ml"), reference("holzinger_ml")["meta"]["model"], "ML")
    fm = fit_measures(res)
    assert "cfi.robust" not in fm and "chisq.scaled" not in fm
