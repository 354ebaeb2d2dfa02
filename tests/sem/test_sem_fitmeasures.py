"""Every lavaan fitMeasures(fit, "all") value of the shipped references, for every estimator.

References: the ``fit_all`` blocks of ``tests/data/lavaan/{holzinger1939,wai_sr_sim}`` (ML, MLR,
FIML, WLSMV), the full ``fit`` blocks of the WLSMV pairwise and theta-ladder references and of
the ML/MLR strict ladders (``tests/data/lavaan/extra``), WLSMV on continuous items
(``wlsmv_continuous/make_wlsmv_continuous.R``) and ML with FIML on incomplete data
(``fit_measures/make_fit_measures.R``), all lavaan 0.6-14. Tolerances as
``/work/shared/reference/README.md``: ML/MLR/FIML indices within 1e-3 and chi-square-type values
within 0.01 (absolute); WLSMV indices within 2e-3 (absolute) and chi-square-type values within
1% (relative). Measured: every value within 3e-6 of lavaan's (relative above 1, else
absolute).
"""

from __future__ import annotations

import json
from functools import cache

import pandas as pd
import pytest
from conftest import CASES, LAVAAN, dataset, fitted, reference

from alliance.sem.api import fit_cfa, invariance_ladder

#: lavaan names whose scale is that of a chi-square (compared like the chi-square).
CHISQ_LIKE = ("chisq", "logl", "aic", "bic", "cn_0")
WAI = (LAVAAN / "wai_sr_sim" / "wai_sr.lav").read_text()
HZ = (LAVAAN / "holzinger1939" / "holzinger.lav").read_text()


def check(name: str, ours: float | None, ref: float | None, wlsmv: bool) -> None:
    if ref is None:  # lavaan NA
        assert ours is None, name
        return
    assert ours is not None, name
    if name.startswith(CHISQ_LIKE) or name.startswith("baseline.chisq"):
        tol = {"rel": 0.01} if wlsmv else {"abs": 0.01}
    else:
        tol = {"abs": 2e-3 if wlsmv else 1e-3}
    assert ours == pytest.approx(ref, **tol), name


def _json(path: str) -> dict:
    return json.loads((LAVAAN / path).read_text())


@cache
def cases() -> dict[str, tuple[dict, dict, bool]]:
    """name -> (our fit_all, lavaan's fitMeasures, WLSMV?)."""
    out: dict[str, tuple[dict, dict, bool]] = {}
    for case in CASES:
        out[case] = (fitted(case)["fit_all"], reference(case)["fit_all"], False)
    wai = dataset("wai_ml")
    wlsmv = _json("wai_sr_sim/lavaan_wlsmv.json")
    out["wai_wlsmv"] = (fit_cfa(wai, WAI, "WLSMV")["fit_all"], wlsmv["fit_all"], True)
    missing = pd.read_csv(LAVAAN / "wai_sr_sim" / "wai_sr_sim_missing.csv")
    pair = _json("wai_sr_sim/lavaan_wlsmv_extra.json")["pairwise_fit"]["fit"]
    out["wai_wlsmv_pairwise"] = (fit_cfa(missing, WAI, "WLSMV", "pairwise")["fit_all"], pair, True)
    cont = _json("wlsmv_continuous/lavaan_wlsmv_continuous.json")
    hz = dataset("holzinger_ml")
    single = fit_cfa(hz, HZ, "WLSMV", ordered=False)
    school = fit_cfa(hz, HZ, "WLSMV", ordered=False, group="school")
    out["hz_wlsmv_continuous"] = (single["fit_all"], cont["single"]["fit"], True)
    out["hz_wlsmv_continuous_school"] = (school["fit_all"], cont["school"]["fit"], True)
    fm = _json("fit_measures/lavaan_fit_measures.json")
    out["wai_ml_fiml_missing"] = (fit_cfa(missing, WAI, "ML", "fiml")["fit_all"],
                                  fm["ml_fiml"]["fit"], False)  # fmt: skip
    site = fit_cfa(missing, WAI, "ML", "fiml", group="site")
    out["wai_ml_fiml_missing_site"] = (site["fit_all"], fm["ml_fiml_site"]["fit"], False)
    theta = _json("extra/wai_wlsmv_theta_invariance_site.json")["invariance"]
    ladder = invariance_ladder(wai, WAI, "site", "WLSMV", parameterization="theta")
    for step in ("configural", "metric", "scalar", "strict"):
        out[f"wai_wlsmv_theta_{step}"] = (ladder[step]["fit_all"], theta[step]["fit"], True)
    strict = _json("extra/wai_invariance_strict_mlr.json")["invariance"]
    mlr = invariance_ladder(wai, WAI, "site", "MLR")
    for step in ("configural", "strict"):
        out[f"wai_mlr_{step}"] = (mlr[step]["fit_all"], strict[step]["fit"], False)
    return out


CASE_NAMES = [
    *CASES, "wai_wlsmv", "wai_wlsmv_pairwise", "hz_wlsmv_continuous",
    "hz_wlsmv_continuous_school", "wai_ml_fiml_missing", "wai_ml_fiml_missing_site",
    "wai_wlsmv_theta_configural", "wai_wlsmv_theta_metric", "wai_wlsmv_theta_scalar",
    "wai_wlsmv_theta_strict", "wai_mlr_configural", "wai_mlr_strict",
]  # fmt: skip


@pytest.mark.parametrize("case", CASE_NAMES)
def test_every_lavaan_fit_measure(case):
    ours, ref, wlsmv = cases()[case]
    # lavaan's ntotal is absent from WLSMV's "all" (it belongs to the log-likelihood block)
    missing = sorted(set(ref) - set(ours) - ({"ntotal"} if wlsmv else set()))
    assert missing == []
    for name, value in ref.items():
        check(name, ours.get(name), value, wlsmv)


def test_the_measures_named_in_issue_16_are_there():
    ml = cases()["holzinger_mlr"][0]
    for name in ("gfi", "agfi", "pgfi", "ecvi", "cn_05", "cn_01", "mfi", "srmr_mplus",
                 "scaling.factor.h0", "scaling.factor.h1", "rni", "cfi.scaled", "nnfi.scaled",
                 "rfi.scaled", "nfi.scaled", "ifi.scaled", "rni.scaled"):  # fmt: skip
        assert name in ml, name
    wlsmv = cases()["wai_wlsmv"][0]
    for name in ("wrmr", "crmr", "rmr", "nfi", "nnfi", "rfi", "ifi", "rni", "fmin",
                 "rmsea.pvalue.scaled", "rmsea.pvalue.robust"):  # fmt: skip
        assert name in wlsmv, name


def test_wlsmv_continuous_estimates_match_lavaan():
    cont = _json("wlsmv_continuous/lavaan_wlsmv_continuous.json")
    hz = dataset("holzinger_ml")
    for name, kwargs in (("single", {}), ("school", {"group": "school"})):
        out = fit_cfa(hz, HZ, "WLSMV", ordered=False, **kwargs)
        assert out["meta"]["ordered"] == [] and out["meta"]["lavaan_estimator"] == "DWLS"
        for block, col in (("parameters", "est"), ("standardized", "est.std")):
            ours = {(r["lhs"], r["op"], r["rhs"], r.get("group", 1)): r for r in out[block]}
            refs = cont[name][block]
            assert len(refs) == len(ours)
            for ref in refs:
                row = ours[(ref["lhs"], ref["op"], ref["rhs"], ref.get("group", 1))]
                assert row[col] == pytest.approx(ref[col], abs=2e-3)
                if ref["se"]:
                    assert row["se"] == pytest.approx(ref["se"], rel=0.01)


def test_continuous_wlsmv_is_refused_with_pairwise_and_named_for_ordered():
    hz = dataset("holzinger_ml")
    with pytest.raises(ValueError, match="continuous items uses listwise"):
        fit_cfa(hz, HZ, "WLSMV", "pairwise", ordered=False)
    with pytest.raises(ValueError, match=r"'x1' must hold integer categories.*ordered=False"):
        fit_cfa(hz, HZ, "WLSMV")
