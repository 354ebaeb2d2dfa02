"""WLSMV reliability, validity, admissibility and invariance decisions against lavaan/semTools.

References: ``tests/data/lavaan/wai_sr_sim/lavaan_wlsmv_details.json`` (made by
``make_wlsmv_details.R`` with lavaan 0.6-14 and semTools 0.5-6) and the shared
``lavaan_wlsmv.json`` / ``lavaan_wlsmv_invariance_site.json``. Tolerances as
``/work/shared/reference/README.md`` gives for WLSMV: polychoric-based estimates within 2e-3
(absolute), robust SEs and chi-square-type statistics within 1% (relative).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.sem.api import fit_cfa, fit_model, invariance_ladder
from alliance.sem.estimate import FitResult
from alliance.sem.modindices import modification_indices
from alliance.sem.validity import admissibility, htmt, omega_categorical, reliability

DATA = Path(__file__).parent.parent / "data" / "lavaan" / "wai_sr_sim"
MODEL = (DATA / "wai_sr.lav").read_text()
DETAILS = json.loads((DATA / "lavaan_wlsmv_details.json").read_text())
REF = json.loads((DATA / "lavaan_wlsmv.json").read_text())
REF_INV = json.loads((DATA / "lavaan_wlsmv_invariance_site.json").read_text())["invariance"]
FACTORS = ("bond", "task", "goal")
EST_TOL = 2e-3
REL_TOL = 0.01
#: our reliability keys -> semTools reliability() rows
SEMTOOLS = {
    "omega": "omega",
    "omega2": "omega2",
    "omega_obs_var": "omega3",
    "alpha": "alpha",
    "alpha_ordinal": "alpha.ord",
    "avevar": "avevar",
}
DETAIL_KEYS = {
    "reliability",
    "factor_correlations",
    "htmt",
    "residual_correlations",
    "modindices",
    "status",
}


def semtools_rows(block: dict) -> dict[str, dict]:
    return {r["_row"]: r for r in block["semtools"]}


def same_pair(row: dict, table: dict) -> dict:
    """The lavaan row of (lhs, op, rhs[, group]), either way round for covariances."""
    g = row.get("group")
    for k in ((row["lhs"], row["op"], row["rhs"], g), (row["rhs"], row["op"], row["lhs"], g)):
        if k in table:
            return table[k]
    raise KeyError(row)


@pytest.fixture(scope="module")
def wai() -> pd.DataFrame:
    return pd.read_csv(DATA / "wai_sr_sim.csv")


@pytest.fixture(scope="module")
def fit(wai: pd.DataFrame) -> FitResult:
    return fit_model(wai, MODEL, "WLSMV")


@pytest.fixture(scope="module")
def out(wai: pd.DataFrame) -> dict:
    return fit_cfa(wai, MODEL, estimator="WLSMV")


@pytest.fixture(scope="module")
def pairwise() -> dict:
    return fit_cfa(pd.read_csv(DATA / "wai_sr_sim_missing.csv"), MODEL, "WLSMV", "pairwise")


@pytest.fixture(scope="module")
def ladder(wai: pd.DataFrame) -> dict:
    return invariance_ladder(wai, MODEL, "site", estimator="WLSMV", n_release=None)


# ------------------------------------------------------------------ layout


def test_output_has_the_ml_detail_blocks(out: dict) -> None:
    json.dumps(out, allow_nan=False)
    assert DETAIL_KEYS <= set(out)
    assert len(out["modindices"]) == 10
    assert any("DWLS" in n for n in out["meta"]["notes"])
    assert "Green & Yang" in out["reliability"]["reliability_note"]


def test_n_modindices_and_fiml_fallback(wai: pd.DataFrame) -> None:
    res = fit_cfa(wai, MODEL, "WLSMV", "fiml", n_modindices=3)
    assert len(res["modindices"]) == 3
    assert res["meta"]["missing"] == "pairwise"
    assert any("FIML" in n for n in res["meta"]["notes"])


# ------------------------------------------------------------------ reliability


@pytest.mark.parametrize("key", sorted(SEMTOOLS))
def test_reliability_matches_semtools(out: dict, key: str) -> None:
    want = semtools_rows(DETAILS["complete"]["reliability"])[SEMTOOLS[key]]
    for f in FACTORS:
        assert out["reliability"][key][f] == pytest.approx(want[f], abs=EST_TOL)


def test_reliability_matches_shared_reference(out: dict) -> None:
    # the shared file's omega / omega_obs_var are the categorical (ord.scale) compRelSEM values
    for key in ("omega", "omega_obs_var", "alpha"):
        for f in FACTORS:
            want = REF["reliability"][key][f]
            assert out["reliability"][key][f] == pytest.approx(want, abs=EST_TOL)
    for f in FACTORS:
        want = REF["reliability"]["semtools_reliability"][f]["avevar"]
        assert out["reliability"]["avevar"][f] == pytest.approx(want, abs=EST_TOL)


def test_omega_latent_response_scale(out: dict) -> None:
    want = DETAILS["complete"]["reliability"]["omega_latent"]
    for f in FACTORS:
        assert out["reliability"]["omega_latent"][f] == pytest.approx(want[f], abs=EST_TOL)
        # the y* scale omega is above the omega of the coarse item scores
        assert out["reliability"]["omega_latent"][f] > out["reliability"]["omega"][f]


@pytest.mark.parametrize("key", sorted(set(SEMTOOLS) - {"alpha"}))
def test_pairwise_reliability_matches_semtools(pairwise: dict, key: str) -> None:
    want = semtools_rows(DETAILS["pairwise"]["reliability"])[SEMTOOLS[key]]
    for f in FACTORS:
        assert pairwise["reliability"][key][f] == pytest.approx(want[f], abs=EST_TOL)


def test_pairwise_alpha_uses_complete_cases_of_the_factor() -> None:
    # semTools gives NA with missing answers; ours is alpha on the factor's complete cases
    assert semtools_rows(DETAILS["pairwise"]["reliability"])["alpha"]["bond"] is None
    data = pd.read_csv(DATA / "wai_sr_sim_missing.csv")
    items = ["wai_03", "wai_05", "wai_07", "wai_09"]
    cov = np.cov(data[items].dropna().to_numpy(dtype=float), rowvar=False)
    want = 4 / 3 * (1 - np.trace(cov) / cov.sum())
    got = reliability(fit_model(data, MODEL, "WLSMV", "pairwise"))
    assert got["alpha"]["bond"] == pytest.approx(want, rel=1e-12)


def test_omega_categorical_reduces_to_known_values() -> None:
    # one binary item pair with thresholds 0: the numerator and denominator are equal when
    # truevar equals the total, so the reliability is 1
    truevar = np.array([[0.5, 0.5], [0.5, 0.5]])
    total = np.array([[1.0, 0.5], [0.5, 1.0]])
    ths = [np.array([0.0]), np.array([0.0])]
    assert omega_categorical(total, ths, np.ones(2), total) == pytest.approx(1.0)
    assert 0 < omega_categorical(truevar, ths, np.ones(2), total) < 1


# ------------------------------------------------------------------ validity


def test_htmt_on_polychoric_matches_semtools(out: dict, fit: FitResult) -> None:
    want = {r["_row"]: r for r in DETAILS["complete"]["htmt"]}
    for a in FACTORS:
        for b in FACTORS:
            assert out["htmt"][a][b] == pytest.approx(want[a][b], abs=EST_TOL)
    arith = {r["_row"]: r for r in DETAILS["complete"]["htmt_arithmetic"]}
    fo = {f: fit.spec.indicators(f) for f in FACTORS}
    mine = htmt(fit.sample.groups[0].cov, fit.spec.ov, fo, htmt2=False)
    assert mine["task"]["goal"] == pytest.approx(arith["task"]["goal"], abs=EST_TOL)


def test_factor_correlations_match_standardized_solution(out: dict) -> None:
    std = {(r["lhs"], r["op"], r["rhs"]): r for r in REF["standardized"]}
    assert len(out["factor_correlations"]) == 3
    for row in out["factor_correlations"]:
        ref = std[(row["lhs"], "~~", row["rhs"])]
        assert row["r"] == pytest.approx(ref["est.std"], abs=EST_TOL)
        assert row["se"] == pytest.approx(ref["se"], rel=REL_TOL)
        assert row["ci.lower"] == pytest.approx(ref["ci.lower"], abs=EST_TOL)
        assert row["ci.upper"] == pytest.approx(ref["ci.upper"], abs=EST_TOL)


def test_residual_correlations_match_lavaan(out: dict) -> None:
    (res,) = out["residual_correlations"]
    assert res["variables"] == DETAILS["complete"]["ov_names"]
    want = np.array(DETAILS["complete"]["residual_cor"])
    np.testing.assert_allclose(np.array(res["matrix"]), want, atol=EST_TOL)
    th = np.array(list(res["thresholds"].values()))
    np.testing.assert_allclose(th, DETAILS["complete"]["residual_th"], atol=EST_TOL)


def check_mi(row: dict, ref: dict) -> None:
    assert row["mi"] == pytest.approx(ref["mi"], rel=REL_TOL, abs=1e-3)
    assert row["epc"] == pytest.approx(ref["epc"], abs=EST_TOL)
    assert row["sepc.all"] == pytest.approx(ref["sepc.all"], abs=EST_TOL)


def test_top_modindices_match_lavaan(out: dict) -> None:
    ref = DETAILS["complete"]["modindices"]
    table = {(r["lhs"], r["op"], r["rhs"], None): r for r in ref}
    for row, want in zip(out["modindices"], ref[:10], strict=True):
        check_mi(row, same_pair(row, table))
        assert row["mi"] == pytest.approx(want["mi"], rel=REL_TOL)


def test_all_modindices_match_lavaan(fit: FitResult) -> None:
    rows = modification_indices(fit, top=None)
    ref = DETAILS["complete"]["modindices"]
    assert len(rows) == len(ref)
    table = {(r["lhs"], r["op"], r["rhs"], None): r for r in ref}
    for row in rows:
        check_mi(row, same_pair(row, table))


def test_multigroup_modindices_match_lavaan(wai: pd.DataFrame) -> None:
    fit2 = fit_model(wai, MODEL, "WLSMV", group="site")
    rows = modification_indices(fit2, top=None)
    ref = DETAILS["invariance"]["modindices_configural"]
    assert len(rows) == len(ref)
    table = {(r["lhs"], r["op"], r["rhs"], r["group"]): r for r in ref}
    for row in rows:
        check_mi(row, same_pair(row, table))


# ------------------------------------------------------------------ admissibility


def test_admissible_status(out: dict) -> None:
    st = out["status"]
    assert st["admissible"] is True
    assert st["converged"] is True
    assert st["issues"] == []
    assert st["negative_variances"] == [] and st["std_loadings_above_1"] == []


def test_heywood_case_is_reported_not_raised(fit: FitResult, wai: pd.DataFrame) -> None:
    x = fit.x.copy()
    row = fit.spec.find("bond", "=~", "wai_05")
    x[row.free - 1] = 1.6  # implied residual variance of wai_05* below zero
    bad = dataclasses.replace(fit, x=x, converged=False, warnings=["test warning"])
    st = admissibility(bad)
    assert st["admissible"] is False
    assert st["converged"] is False
    assert "wai_05~~wai_05" in st["negative_variances"]
    assert "bond=~wai_05" in st["std_loadings_above_1"]
    assert st["warnings"] == ["test warning"]


def test_status_never_raises(fit: FitResult) -> None:
    broken = dataclasses.replace(fit, x=np.full_like(fit.x, np.nan))
    st = admissibility(broken)
    assert st["admissible"] is False
    assert st["issues"]


# ------------------------------------------------------------------ invariance


def test_ladder_layout(ladder: dict) -> None:
    json.dumps(ladder, allow_nan=False)
    assert {"configural", "metric", "scalar", "lrt", "deltas", "decisions", "partial"} <= set(
        ladder
    )
    assert "strict" not in ladder
    assert any("strict" in n for n in ladder["notes"])
    assert "scaled" in ladder["criteria"] and "Chen (2007)" in ladder["criteria"]


def test_ladder_df_match_lavaan(ladder: dict) -> None:
    # the group.equal constraints (model.py) give lavaan's df at every step
    for step, df in zip(
        ("configural", "metric", "scalar"), DETAILS["invariance"]["df"], strict=True
    ):
        assert ladder[step]["fit"]["df"] == df == REF_INV[step]["fit"]["df"]
        assert ladder[step]["fit"]["npar"] == REF_INV[step]["fit"]["npar"]


@pytest.mark.parametrize("step", ["metric", "scalar"])
def test_decisions_use_scaled_deltas(ladder: dict, step: str) -> None:
    dec = ladder["decisions"][step]
    prev = {"metric": "configural", "scalar": "metric"}[step]
    ref = REF_INV["deltas"][f"{step}_vs_{prev}"]
    assert dec["indices"] == {"cfi": "cfi.scaled", "rmsea": "rmsea.scaled", "srmr": "srmr"}
    assert dec["delta_cfi"] == pytest.approx(ref["cfi.scaled"], abs=EST_TOL)
    assert dec["delta_rmsea"] == pytest.approx(ref["rmsea.scaled"], abs=EST_TOL)
    assert dec["delta_srmr"] == pytest.approx(ref["srmr"], abs=EST_TOL)
    assert dec["invariant"] is True  # |delta CFI| < .01 at both steps here
    row = next(r for r in REF_INV["lrt"]["table"] if r["model"] == step)
    assert dec["chisq_diff_pvalue"] == pytest.approx(row["Pr_gt_Chisq"], abs=EST_TOL)


@pytest.mark.parametrize("step", ["metric", "scalar"])
def test_partial_matches_lavtestscore(ladder: dict, step: str) -> None:
    ref = DETAILS["invariance"][f"score_{step}"]
    plabel = {r["plabel"]: r for r in ref["partable"]}
    want = {}
    for row in ref["uni"]:
        other = plabel[row["rhs"]]
        want[(other["lhs"], other["op"], other["rhs"], other["group"])] = row["X2"]
    got = ladder["partial"][step]
    assert len(got) == len(want)
    for row in got:
        key = (row["lhs"], row["op"], row["rhs"], row["group"])
        assert row["X2"] == pytest.approx(want[key], rel=REL_TOL, abs=1e-3)
    assert got[0]["X2"] == pytest.approx(max(want.values()), rel=REL_TOL)


@pytest.mark.parametrize("key", ["omega", "omega_obs_var", "alpha", "alpha_ordinal", "avevar"])
def test_configural_reliability_per_group(ladder: dict, key: str) -> None:
    rel = ladder["configural"]["reliability"][key]
    labels = DETAILS["invariance"]["group_labels"]
    for g, block in enumerate(DETAILS["invariance"]["reliability_configural"]):
        want = semtools_rows(block)[SEMTOOLS[key]]
        assert rel[g]["group"] == labels[g]
        for f in FACTORS:
            assert rel[g][f] == pytest.approx(want[f], abs=EST_TOL)


def test_ladder_fiml_falls_back_to_pairwise() -> None:
    data = pd.read_csv(DATA / "wai_sr_sim_missing.csv")
    res = invariance_ladder(data, MODEL, "site", "WLSMV", "fiml", steps=("configural", "metric"))
    assert res["configural"]["meta"]["missing"] == "pairwise"
    assert any("FIML" in n for n in res["notes"])
    assert res["decisions"]["metric"]["invariant"] in (True, False)
    assert len(res["partial"]["metric"]) == 9
