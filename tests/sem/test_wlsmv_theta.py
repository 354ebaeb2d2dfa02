"""WLSMV in the theta parameterization and the strict invariance step against lavaan 0.6-14.

References (``tests/data/lavaan/extra/make_wlsmv_theta.R``, lavaan 0.6-14,
``parameterization = "theta"``):

* ``wai_wlsmv_theta_invariance_site.json``: a single-group fit of ``wai_sr_sim.csv`` and the
  ladder configural / metric / scalar / strict across ``site`` (complete data, listwise);
* ``rater_wlsmv_theta_invariance.json``: the same ladder across ``rater`` on the demo rater
  sample (``tests/data/lavaan/rater_site_a/rater_site_a.csv``, pairwise missing).

The steps use lavaan's own ``group.equal`` identification, as the project's delta ladder:
``strict`` = ``loadings, intercepts, thresholds, residuals``. Tolerances as the other WLSMV
tests (``/work/shared/reference/README.md``): estimates within 2e-3, SEs and chi-square-type
statistics within 1%, fit indices within 2e-3. Measured: chi-squares within 6e-6, fit indices
within 3e-7, estimates within 4e-5, SEs within 2e-5, std.all within 1e-5, score tests within
2e-5, modification indices within 2e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.sem.api import fit_cfa, fit_model, invariance_ladder
from alliance.sem.fitmeasures import fit_measures
from alliance.sem.invariance import step_constraints
from alliance.sem.model import ModelSpec
from alliance.sem.modindices import residual_release_tests

LAVAAN = Path(__file__).parent.parent / "data" / "lavaan"
MODEL = (LAVAAN / "wai_sr_sim" / "wai_sr.lav").read_text()
STEPS = ("configural", "metric", "scalar", "strict")
LEVELS = {s: step_constraints(s, ordered=True) for s in STEPS}
EST_TOL = 2e-3
REL_TOL = 0.01
FIT_KEYS = ("cfi.scaled", "tli.scaled", "rmsea.scaled", "srmr", "cfi.robust", "rmsea.robust")
CASES = {
    "site": (
        "extra/wai_wlsmv_theta_invariance_site.json",
        "wai_sr_sim/wai_sr_sim.csv",
        "listwise",
    ),
    "rater": (
        "extra/rater_wlsmv_theta_invariance.json",
        "rater_site_a/rater_site_a.csv",
        "pairwise",
    ),
}


def reference(group: str) -> dict:
    return json.loads((LAVAAN / CASES[group][0]).read_text())


def data(group: str) -> pd.DataFrame:
    out = pd.read_csv(LAVAAN / CASES[group][1])
    return out.assign(**{group: out[group].astype(str)}) if group in out else out


@pytest.fixture(scope="module", params=list(CASES))
def case(request) -> tuple[str, dict, dict]:
    group = request.param
    ladder = invariance_ladder(
        data(group), MODEL, group, estimator="WLSMV", missing=CASES[group][2],
        steps=STEPS, parameterization="theta",
    )  # fmt: skip
    return group, ladder, reference(group)["invariance"]


def key(row: dict) -> tuple:
    return (row["lhs"], row["op"], row["rhs"], row.get("group", 1))


def assert_fit(ours: dict, theirs: dict) -> None:
    assert ours["npar"] == theirs["npar"]
    assert ours["df"] == theirs["df"]
    for name in ("chisq", "chisq.scaled"):
        assert ours[name] == pytest.approx(theirs[name], rel=REL_TOL)
    for name in FIT_KEYS:
        if theirs.get(name) is None:  # lavaan NA: robust indices once thresholds are equal
            assert ours.get(name) is None, name
        else:
            assert ours[name] == pytest.approx(theirs[name], abs=EST_TOL), name


def assert_rows(ours: list[dict], theirs: list[dict], est: str) -> None:
    table = {key(r): r for r in ours}
    assert len(table) == len(theirs)
    for row in theirs:
        got = table[key(row)]
        assert got[est] == pytest.approx(row[est], abs=EST_TOL), key(row)
        if row.get("se") is not None:
            assert got["se"] == pytest.approx(row["se"], rel=REL_TOL, abs=1e-4), key(row)


# ------------------------------------------------------------------ one group


def test_single_group_theta_matches_lavaan() -> None:
    ref = reference("site")["single"]
    out = fit_cfa(data("site"), MODEL, estimator="WLSMV", parameterization="theta")
    assert out["converged"] and out["meta"]["parameterization"] == "theta"
    assert_fit(out["fit"], ref["fit"])
    assert_rows(out["parameters"], ref["parameters"], "est")
    assert_rows(out["standardized"], ref["standardized"], "est.std")


def test_single_group_theta_equals_delta_fit() -> None:
    # one group: the two parameterizations are the same model
    theta = fit_model(data("site"), MODEL, "WLSMV", parameterization="theta")
    delta = fit_model(data("site"), MODEL, "WLSMV")
    assert theta.chisq == pytest.approx(delta.chisq, rel=1e-7)
    scaled = [fit_measures(f)["chisq.scaled"] for f in (theta, delta)]
    assert scaled[0] == pytest.approx(scaled[1], rel=1e-7)


def test_theta_jacobian_matches_finite_differences() -> None:
    spec = fit_model(
        data("site"), MODEL, "WLSMV", group="site", group_equal=LEVELS["scalar"],
        parameterization="theta",
    ).spec  # fmt: skip
    rng = np.random.default_rng(1)
    x = spec.x_from_table()
    x = np.where(np.isnan(x), 0.5, x) + rng.uniform(0.1, 0.3, spec.npar)
    for g in (1, 2):
        dsig, _, dtau = spec.jacobian(x, g)
        h = 1e-6
        for k in range(spec.npar):
            xp, xm = x.copy(), x.copy()
            xp[k] += h
            xm[k] -= h
            ip, im = spec.implied(xp, g)[0], spec.implied(xm, g)[0]
            np.testing.assert_allclose(dsig[k], (ip.sigma - im.sigma) / (2 * h), atol=1e-6)
            np.testing.assert_allclose(dtau[k], (ip.tau - im.tau) / (2 * h), atol=1e-6)


def test_theta_parameter_table() -> None:
    def spec(step: str) -> ModelSpec:
        return ModelSpec.from_syntax(
            MODEL, ordered=[f"wai_{i:02d}" for i in range(1, 13)],
            n_thresholds=dict.fromkeys([f"wai_{i:02d}" for i in range(1, 13)], 4),
            group_labels=["a", "b"], group_equal=LEVELS[step], parameterization="theta",
        )  # fmt: skip

    def rows(s: ModelSpec, op: str, g: int) -> list:
        return [r for r in s.rows(g, op) if op != "~~" or r.lhs == r.rhs and r.lhs in s.ov]

    for step, free_in_2 in (("configural", False), ("metric", False), ("scalar", True)):
        s = spec(step)
        assert all(not r.free and r.value == 1.0 for r in rows(s, "~~", 1))
        assert all(bool(r.free) is free_in_2 for r in rows(s, "~~", 2))
        assert all(r.computed and not r.free for r in s.rows(op="~*~"))
    strict = spec("strict")
    assert all(not r.free and r.value == 1.0 for r in rows(strict, "~~", 2))
    assert spec("scalar").npar - strict.npar == 12
    with pytest.raises(ValueError, match=r"parameterization must be one of .* got 'gamma'"):
        ModelSpec.from_syntax(MODEL, parameterization="gamma")


# ------------------------------------------------------------------ the ladder


@pytest.mark.parametrize("step", STEPS)
def test_ladder_step_matches_lavaan(case, step: str) -> None:
    _, ladder, ref = case
    assert ladder[step]["meta"]["parameterization"] == "theta"
    assert ladder[step]["group.equal"] == list(LEVELS[step])
    assert ladder[step]["nobs"] == ref[step]["nobs"]
    assert_fit(ladder[step]["fit"], ref[step]["fit"])
    assert_rows(ladder[step]["parameters"], ref[step]["parameters"], "est")
    assert_rows(ladder[step]["standardized"], ref[step]["standardized"], "est.std")


def test_ladder_difference_tests_match_lavaan(case) -> None:
    _, ladder, ref = case
    theirs = {r["model"]: r for r in ref["lrt"]}
    rows = ladder["lrt"]["table"]
    assert [r["model"] for r in rows] == list(STEPS)
    for row in rows[1:]:
        want = theirs[row["model"]]
        assert row["Df_diff"] == want["Df_diff"]
        assert row["Chisq_diff"] == pytest.approx(want["Chisq_diff"], rel=REL_TOL)
        assert row["Pr_gt_Chisq"] == pytest.approx(want["Pr_gt_Chisq"], abs=EST_TOL)


def test_strict_release_candidates_match_lavaan(case) -> None:
    # equality constraints (lavTestScore) and fixed residual variances (modindices) together
    _, ladder, ref = case
    plabel = {r["plabel"]: r for r in ref["partable_strict"]}
    want = {key(plabel[r["rhs"]]): r["X2"] for r in ref["score_strict"]}
    want |= {key(r): r["mi"] for r in ref["mi_strict_residuals"]}
    got = ladder["partial"]["strict"]
    assert len(got) == 10
    for row in got:
        assert row["X2"] == pytest.approx(want[key(row)], rel=REL_TOL, abs=1e-3)
    assert got[0]["X2"] == pytest.approx(max(want.values()), rel=REL_TOL)


@pytest.mark.parametrize("group", list(CASES))
def test_residual_release_tests_match_modindices(group: str) -> None:
    ref = reference(group)["invariance"]["mi_strict_residuals"]
    fit = fit_model(
        data(group), MODEL, "WLSMV", CASES[group][2], group=group,
        group_equal=LEVELS["strict"], parameterization="theta",
    )  # fmt: skip
    got = {key(r): r for r in residual_release_tests(fit, top=None)}
    assert len(got) == len(ref) == 12
    for row in ref:
        assert got[key(row)]["X2"] == pytest.approx(row["mi"], rel=REL_TOL, abs=1e-3)
        assert got[key(row)]["epc"] == pytest.approx(row["epc"], abs=EST_TOL)
    scalar = fit_model(
        data(group), MODEL, "WLSMV", CASES[group][2], group=group,
        group_equal=LEVELS["scalar"], parameterization="theta",
    )  # fmt: skip
    assert residual_release_tests(scalar) == []


def test_ladder_decisions_and_notes(case) -> None:
    group, ladder, ref = case
    assert ladder["parameterization"] == "theta"
    assert set(ladder["decisions"]) == {"metric", "scalar", "strict"}
    d = ladder["deltas"]["strict_vs_scalar"]
    want = ref["strict"]["fit"]["cfi.scaled"] - ref["scalar"]["fit"]["cfi.scaled"]
    assert d["cfi.scaled"] == pytest.approx(want, abs=EST_TOL)
    assert ladder["decisions"]["strict"]["indices"]["cfi"] == "cfi.scaled"
    assert any("theta parameterization" in n for n in ladder["notes"])
    json.dumps(ladder, allow_nan=False)


def test_configural_and_scalar_equal_the_delta_ladder() -> None:
    delta = json.loads((LAVAAN / "wai_sr_sim" / "lavaan_wlsmv_invariance_site.json").read_text())
    theta = reference("site")["invariance"]
    for step in ("configural", "scalar"):
        assert theta[step]["fit"]["chisq"] == pytest.approx(
            delta["invariance"][step]["fit"]["chisq"], rel=1e-6
        )
    # lavaan's metric steps differ: residual variances vs scale factors fixed at 1
    assert (
        abs(theta["metric"]["fit"]["chisq"] - delta["invariance"]["metric"]["fit"]["chisq"]) > 0.1
    )


def test_strict_needs_theta() -> None:
    ladder = invariance_ladder(data("site"), MODEL, "site", estimator="WLSMV", steps=STEPS)
    assert "strict" not in ladder
    assert any("parameterization='theta'" in n for n in ladder["notes"])
