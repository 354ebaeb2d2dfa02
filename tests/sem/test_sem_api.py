"""fit_cfa(): layout of the lavaan references, competing models, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import dataset, extra, fitted, reference

from alliance.sem.api import FIT_NAMES, ROBUST_NAMES, fit_cfa
from alliance.sem.model import builtin_models


def test_layout_like_reference_files():
    for case in ("holzinger_ml", "wai_mlr", "wai_mlr_fiml"):
        out = fitted(case)
        ref = reference(case)
        for key in ("meta", "converged", "nobs", "ntotal", "fit", "parameters", "standardized",
                    "reliability"):  # fmt: skip
            assert key in out
        assert set(ref["fit"]) <= set(out["fit"])
        assert set(out["parameters"][0]) >= {"lhs", "op", "rhs", "est", "se", "z", "pvalue",
                                             "ci.lower", "ci.upper", "free"}  # fmt: skip
        for key in ("modindices", "residual_correlations", "status", "htmt",
                    "factor_correlations"):  # fmt: skip
            assert key in out
        json.dumps(out, allow_nan=False)
    assert set(fitted("wai_mlr")["fit"]) == set(FIT_NAMES + ROBUST_NAMES)
    assert fitted("wai_mlr")["meta"]["test"] == "yuan.bentler.mplus"


@pytest.mark.parametrize("key", ["one_factor", "two_factor", "bifactor", "second_order"])
@pytest.mark.parametrize("estimator", ["ML", "MLR"])
def test_competing_models_match_lavaan(key, estimator):
    ref = extra("wai_competing_models.json")[f"{key}_{estimator}"]
    out = fit_cfa(dataset("wai_ml"), ref["model"], estimator=estimator,
                  orthogonal=ref["orthogonal"])  # fmt: skip
    assert out["converged"] is True
    for name in ("chisq", "df", "cfi", "tli", "rmsea", "srmr", "aic", "chisq.scaled",
                 "cfi.robust", "rmsea.robust"):  # fmt: skip
        if name in ref["fit"]:
            tol = 0.01 if name in ("chisq", "aic", "chisq.scaled") else 1e-3
            assert out["fit_all"][name] == pytest.approx(ref["fit"][name], abs=tol), name
    want = {(p["lhs"], p["op"], p["rhs"]): p for p in ref["parameters"]}
    for row in out["parameters"]:
        r = want[(row["lhs"], row["op"], row["rhs"])]
        assert row["est"] == pytest.approx(r["est"], abs=1e-3)
        assert row["se"] == pytest.approx(r["se"], abs=1e-3)


def test_builtin_bifactor_and_second_order_run(wai_sr):
    data = dataset("wai_ml")
    models = builtin_models(wai_sr)
    second = fit_cfa(data, models["second_order"])
    correlated = fit_cfa(data, models["correlated"])
    # just-identified structural part: identical fit
    assert second["fit"]["chisq"] == pytest.approx(correlated["fit"]["chisq"], abs=1e-4)
    assert second["fit"]["df"] == correlated["fit"]["df"]
    bif = fit_cfa(data, models["bifactor"])
    assert bif["fit"]["df"] == 42


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "f =~ x1 + x2 + nope"}, "not in the data"),
        ({"model": "f =~ x1 +"}, "nothing on the right|empty term"),
        ({"estimator": "GLS"}, "estimator must be one of"),
        ({"missing": "pairwise"}, "pairwise"),
        ({"missing": "mean"}, "missing must be"),
        ({"group": "school", "data": "one_level"}, "at least 2 levels"),
        ({"data": "constant"}, "without variance"),
        ({"data": "few_rows"}, "complete rows|fewer observations"),
        ({"ordered": True}, "WLSMV"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    data = dataset("holzinger_ml")
    variants = {
        "one_level": data.assign(school="Pasteur"),
        "constant": data.assign(x2=3.0),
        "few_rows": data.head(9),
    }
    kwargs = dict(kwargs)
    if "data" in kwargs:
        data = variants[kwargs.pop("data")]
    model = kwargs.pop("model", reference("holzinger_ml")["meta"]["model"])
    with pytest.raises(ValueError, match=match):
        fit_cfa(data, model, **kwargs)


def test_empty_group_raises():
    from alliance.sem.samplestats import prepare_sample

    data = dataset("holzinger_ml")
    with pytest.raises(ValueError, match="no usable rows"):
        prepare_sample(data, ["x1", "x2", "x3"], group="school", group_labels=["Pasteur", "Nope"])


def test_non_numeric_item_raises():
    data = dataset("holzinger_ml").astype({"x1": str})
    data.loc[0, "x1"] = "abc"
    with pytest.raises(ValueError, match="numeric"):
        fit_cfa(data, reference("holzinger_ml")["meta"]["model"])


ONE_FACTOR = "alliance =~ wai_01 + wai_02 + wai_03 + wai_04"


@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize("estimator", ["ML", "MLR", "WLSMV"])
def test_infinite_value_is_an_error_not_a_category(estimator, value):
    # a CSV reader parses "inf": under WLSMV it had become an extra answer category
    data = dataset("wai_ml").astype({"wai_02": float})
    data.loc[6, "wai_02"] = value
    missing = "pairwise" if estimator == "WLSMV" else "listwise"
    with pytest.raises(ValueError, match=r"'wai_02' holds 1 infinite value.*data row 7"):
        fit_cfa(data, ONE_FACTOR, estimator=estimator, missing=missing)
    if estimator == "WLSMV":  # also on the way through the category collapsing
        with pytest.raises(ValueError, match=r"'wai_02' holds 1 infinite"):
            fit_cfa(data, ONE_FACTOR, estimator=estimator, collapse_empty_categories=True)


@pytest.mark.parametrize("estimator", ["ML", "MLR"])
def test_negative_df_is_not_identified_without_fit_indices(estimator):
    # two indicators, one factor and a residual covariance (complete data, no mean structure,
    # as lavaan): 3 sample (co)variances for 5 free parameters (1 loading, 2 residual
    # variances, 1 factor variance, 1 residual covariance): df = 3 - 5 = -2
    model = "alliance =~ wai_01 + wai_02\nwai_01 ~~ wai_02"
    out = fit_cfa(dataset("wai_ml"), model, estimator=estimator)
    assert out["fit"]["df"] == -2
    assert out["fit"]["npar"] == 5
    assert all(v is None for k, v in out["fit"].items() if k not in ("df", "npar", "ntotal")), out[
        "fit"
    ]
    assert out["status"]["admissible"] is False
    assert out["status"]["identified"] is False
    assert "not identified: 5 free parameters for 3 sample statistics" in out["status"]["issues"][0]
    json.dumps(out, allow_nan=False)


def test_negative_df_under_wlsmv_is_not_identified_without_fit_indices():
    # 5 categories per item: the statistics are 2 x 4 thresholds + 1 polychoric correlation
    # = 9; the model has 2 x 4 thresholds + 1 loading + 1 factor variance + 1 residual
    # covariance = 11 free parameters (delta parameterization). lavaan 0.6-14 fits the same
    # model (cfa(ordered = TRUE, estimator = "WLSMV")) with npar 11, warns that the
    # information matrix cannot be inverted (no standard errors) and gives no fit measures.
    out = fit_cfa(
        dataset("wai_ml"),
        "alliance =~ wai_01 + wai_02\nwai_01 ~~ wai_02",
        estimator="WLSMV",
        missing="pairwise",
    )
    assert out["fit"]["df"] == -2
    assert out["fit"]["npar"] == 11
    assert set(FIT_NAMES + ROBUST_NAMES) <= set(out["fit"])
    assert all(v is None for k, v in out["fit"].items() if k not in ("df", "npar")), out["fit"]
    assert out["status"]["admissible"] is False
    assert out["status"]["identified"] is False
    assert out["status"]["se_available"] is False
    assert out["status"]["issues"][0] == (
        "not identified: 11 free parameters for 9 sample statistics (df = -2); no fit indices"
    )
    free = [r for r in out["parameters"] if r["free"]]
    assert len(free) == 11
    assert all(r["se"] is None and r["pvalue"] is None for r in free)
    assert all(r["se"] is None for r in out["standardized"])
    assert out["modindices"] == []
    json.dumps(out, allow_nan=False)


def test_group_fit_layout():
    out = fit_cfa(dataset("holzinger_ml"), reference("holzinger_ml")["meta"]["model"],
                  group="school")  # fmt: skip
    assert out["group_labels"] == ["Pasteur", "Grant-White"]
    assert out["nobs"] == [156, 145]
    assert out["fit"]["chisq"] == pytest.approx(115.851343875559, abs=0.01)
    assert isinstance(out["reliability"]["omega"], list)
    assert np.isfinite(out["fit"]["cfi"])


@pytest.mark.parametrize("variant", ["std_lv", "syntax"])
def test_std_lv_and_syntax_features_match_lavaan(variant):
    ref = extra("holzinger_syntax.json")[variant]
    out = fit_cfa(dataset("holzinger_ml"), ref["model"], std_lv=variant == "std_lv")
    for name in ("npar", "chisq", "df", "cfi", "rmsea", "srmr"):
        assert out["fit_all"][name] == pytest.approx(ref["fit"][name], abs=1e-3), name
    want = {(p["lhs"], p["op"], p["rhs"]): p for p in ref["parameters"]}
    assert len(out["parameters"]) == len(want)
    for row in out["parameters"]:
        r = want[(row["lhs"], row["op"], row["rhs"])]
        assert row["est"] == pytest.approx(r["est"], abs=1e-3)
        assert row["se"] == pytest.approx(r["se"], abs=1e-3)
    wstd = {(p["lhs"], p["op"], p["rhs"]): p for p in ref["standardized"]}
    for row in out["standardized"]:
        r = wstd[(row["lhs"], row["op"], row["rhs"])]
        assert row["est.std"] == pytest.approx(r["est.std"], abs=1e-3)
        assert row["se"] == pytest.approx(r["se"], abs=1e-3)
