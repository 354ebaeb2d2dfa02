"""RI-CLPM (alliance.sem.panel) against lavaan 0.6-14 on a simulated alliance-symptom panel.

The references (tests/data/lavaan/riclpm/lavaan_riclpm.json, made by make_riclpm.R from
panel_long.csv, made by make_data.py) write the model independently, as Mulder & Hamaker
(2021) do for ``lavaan()``; the detrended model there holds labelled intercepts on a line by
equality constraints, where the engine uses a slope factor of variance 0, so only the fit, the
lags and the implied means are compared for it.

Tolerances: estimates and SEs within 1e-4 relative (``abs 1e-4 max(1, |lavaan|)``; the largest
differences seen are 4e-5, both optimizers stopping at their gradient tolerances); standardized
values within 1e-4; every fitMeasures value within 1e-4 relative; Wald and LR statistics within
1e-4 relative.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from alliance.sem.model import ModelSpec
from alliance.sem.panel import (
    EFFECTS,
    equal_lag_constraints,
    fit_riclpm,
    riclpm_syntax,
)
from alliance.sem.teststats import wald_test

HERE = Path(__file__).parents[1] / "data" / "lavaan" / "riclpm"
WAVES = [1, 2, 3, 4, 5]
REL = 1e-4
#: case -> (estimator, missing, constrain_lags, detrend)
CASES = {
    "ml_fiml_free": ("ML", "fiml", False, False),
    "ml_fiml_equal": ("ML", "fiml", True, False),
    "mlr_fiml_free": ("MLR", "fiml", False, False),
    "mlr_fiml_equal": ("MLR", "fiml", True, False),
    "ml_fiml_detrend": ("ML", "fiml", False, True),
    "ml_listwise_free": ("ML", "listwise", False, False),
}


@cache
def reference() -> dict[str, Any]:
    return json.loads((HERE / "lavaan_riclpm.json").read_text())


@cache
def wide() -> pd.DataFrame:
    """panel_long.csv as one row per patient, x{session} (alliance) and y{session} (symptoms)."""
    long = pd.read_csv(HERE / "panel_long.csv")
    out = long.pivot_table(
        index="patient", columns="session", values=["alliance", "symptoms"], dropna=False
    )
    out.columns = [("x" if v == "alliance" else "y") + str(s) for v, s in out.columns]
    return out.reset_index()


@cache
def fitted(case: str) -> dict[str, Any]:
    est, miss, equal, detrend = CASES[case]
    return fit_riclpm(wide(), WAVES, est, miss, constrain_lags=equal, detrend=detrend)


def _close(mine: float | None, ref: float | None, rel: float = REL) -> bool:
    if ref is None or mine is None:
        return ref is None and mine is None
    return abs(mine - ref) <= rel * max(1.0, abs(ref))


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["lhs"], row["op"], row["rhs"])


@pytest.mark.parametrize("case", list(CASES))
def test_every_fit_measure_matches_lavaan(case):
    ref = reference()["cases"][case]
    out = fitted(case)
    assert out["converged"] and out["usable"] and ref["converged"]
    assert out["ntotal"] == ref["nobs"]
    bad = {
        name: (out["fit_all"].get(name), value)
        for name, value in ref["fit"].items()
        if not _close(out["fit_all"].get(name), value)
    }
    assert not bad


@pytest.mark.parametrize("case", [c for c in CASES if "detrend" not in c])
def test_parameters_and_standardized_solution_match_lavaan(case):
    ref = reference()["cases"][case]
    out = fitted(case)
    mine = {_key(r): r for r in out["parameters"]}
    for r in ref["parameters"]:
        m = mine[_key(r)]
        for col in ("est", "se", "z", "ci.lower", "ci.upper"):
            assert _close(m[col], r[col], REL if col != "z" else 1e-3), (_key(r), col)
        assert m.get("label", "") == r["label"]
    # the only rows lavaan() does not list: the zero covariances of the random intercepts
    # with the wave-1 components, written out for the engine's cfa()-like defaults
    extra = sorted(set(mine) - {_key(r) for r in ref["parameters"]})
    assert extra == sorted((a, "~~", b) for a in ("RIx", "RIy") for b in ("wx1", "wy1"))
    assert all(mine[k]["est"] == 0 and not mine[k]["free"] for k in extra)
    std = {_key(r): r for r in out["standardized"]}
    for r in ref["standardized"]:
        s = std[_key(r)]
        for col in ("est.std", "se"):
            assert _close(s[col], r[col]), (_key(r), col)


def test_detrended_model_equals_lavaans_constrained_intercepts():
    ref = reference()["cases"]["ml_fiml_detrend"]
    out = fitted("ml_fiml_detrend")
    assert out["fit"]["df"] == ref["fit"]["df"] == 27
    mine = {_key(r): r for r in out["parameters"]}
    lavaan = {_key(r): r for r in ref["parameters"]}
    for key, r in lavaan.items():
        if key[1] in ("~", "~~") and key[0][0] in ("w", "R"):
            assert _close(mine[key]["est"], r["est"]), key
            assert _close(mine[key]["se"], r["se"]), key
    level = {v: mine[(f"RI{v}", "~1", "")]["est"] for v in "xy"}
    slope = {v: mine[(f"T{v}", "~1", "")]["est"] for v in "xy"}
    for v in "xy":
        for w in WAVES:
            implied = level[v] + slope[v] * (w - 1)
            assert _close(implied, ref["implied_mean"][f"{v}{w}"]), (v, w)
    # Tx, Ty have variance 0: no negative variance, admissible, std of their means undefined
    assert out["status"]["admissible"]
    std = {_key(r): r for r in out["standardized"]}
    assert std[("Tx", "~1", "")]["est.std"] is None


@pytest.mark.parametrize("estimator", ["ML", "MLR"])
def test_equal_lag_tests_match_lavaan(estimator):
    key = estimator.lower()
    out = fitted(f"{key}_fiml_free")["equal_lags"]
    ref_w = reference()["wald"][key]
    assert out["constraints"] == reference()["meta"]["wald_constraints"]
    assert out["wald"]["df"] == ref_w["df"] == 12
    assert _close(out["wald"]["stat"], ref_w["stat"])
    assert _close(out["wald"]["pvalue"], ref_w["pvalue"])
    assert out["wald"]["se"] == ref_w["se"]
    ref_lrt = reference()["lrt"][key][1]
    row = out["lrt"]["table"][1]
    assert row["model"] == "equal_lags" and row["Df_diff"] == ref_lrt["Df_diff"]
    for col in ("Chisq", "Chisq_diff", "Pr_gt_Chisq", "AIC", "BIC"):
        assert _close(row[col], ref_lrt[col]), col


def test_effects_are_the_lagged_rows():
    for case in ("ml_fiml_free", "ml_fiml_equal"):
        out = fitted(case)
        rows = {_key(r): r for r in out["parameters"]}
        std = {_key(r): r for r in out["standardized"]}
        for name, (stem, lhs, rhs) in EFFECTS.items():
            block = out["effects"][name]
            assert [(r["from"], r["to"]) for r in block["waves"]] == list(
                zip(WAVES[:-1], WAVES[1:], strict=True)
            )
            assert block["equal_over_waves"] is (case == "ml_fiml_equal")
            assert block["label"] == (stem if case == "ml_fiml_equal" else None)
            for r in block["waves"]:
                key = (f"{lhs}{r['to']}", "~", f"{rhs}{r['from']}")
                assert r["est"] == rows[key]["est"] and r["se"] == rows[key]["se"]
                assert r["std.all"] == std[key]["est.std"] and r["std.se"] == std[key]["se"]
    equal = fitted("ml_fiml_equal")["effects"]["cross_x_to_y"]["waves"]
    assert len({r["est"] for r in equal}) == 1
    assert len({r["std.all"] for r in equal}) > 1  # the within SDs differ by wave


def test_recovers_the_simulated_lags():
    """The equal-lags model on the simulated panel: each lag within 2.5 SE of its truth."""
    truth = json.loads((HERE / "truth.json").read_text())["lags"]
    out = fitted("ml_fiml_equal")["effects"]
    for name, (stem, _, _) in EFFECTS.items():
        r = out[name]["waves"][0]
        assert abs(r["est"] - truth[stem]) < 2.5 * r["se"], (name, r["est"], truth[stem])


def test_syntax_is_lavaans_model():
    text = riclpm_syntax([1, 3, 4], constrain_lags=True)
    assert "wy3 ~ cxy*wx1 + ay*wy1" in text and "wx4 ~ ax*wx3 + cyx*wy3" in text
    spec = ModelSpec.from_syntax(text, meanstructure=True)
    free = {(r.lhs, r.op, r.rhs) for r in spec.table if r.free}
    assert ("x1", "~~", "x1") not in free and ("RIx", "~~", "wx1") not in free
    assert ("RIx", "~~", "RIy") in free and ("wx3", "~~", "wy3") in free
    assert spec.npar == 6 + 3 + 3 + 4 + 4 + 2  # means, RI, wave 1, 4 lags, innovations
    assert equal_lag_constraints([1, 3, 4])[0] == "ax3 == ax4"
    trend = riclpm_syntax([2, 4, 7], detrend=True)
    assert "Tx =~ 0*x2 + 2*x4 + 5*x7" in trend and "x4 ~ 0*1" in trend


@pytest.mark.parametrize(
    ("waves", "match"),
    [([1, 2], "at least 3 waves"), ([1, 3, 2], "increasing"), ([1, 2, 2.5], "whole numbers")],
)
def test_bad_waves_are_refused(waves, match):
    with pytest.raises(ValueError, match=match):
        riclpm_syntax(waves)


def test_bad_estimator_and_columns_are_refused():
    with pytest.raises(ValueError, match="ML or MLR, got estimator 'WLSMV'"):
        fit_riclpm(wide(), WAVES, "WLSMV", "listwise")
    with pytest.raises(ValueError, match=r"lack the wave columns \['x6', 'y6'\]"):
        fit_riclpm(wide(), [*WAVES, 6])


def test_inadmissible_fit_has_no_fit_indices_and_no_tests(rng):
    # within-person scores that move like MA(1) differences: no stable part, and neighbouring
    # waves correlate negatively, so the random-intercept variances go negative
    e, f = rng.standard_normal((60, 6)), rng.standard_normal((60, 6))
    x, y = e[:, 1:] - e[:, :-1], f[:, 1:] - 0.9 * f[:, :-1]
    data = pd.DataFrame({**{f"x{t}": x[:, t - 1] for t in WAVES},
                         **{f"y{t}": y[:, t - 1] for t in WAVES}})  # fmt: skip
    out = fit_riclpm(data, WAVES)
    assert out["converged"] and not out["usable"]
    assert "negative variances (Heywood case): RIx~~RIx, RIy~~RIy" in out["status"]["issues"]
    assert out["fit"] == {} and out["fit_all"] == {}
    assert out["equal_lags"]["wald"] is None and out["equal_lags"]["lrt"] is None
    assert "not usable" in out["equal_lags"]["wald_reason"]
    row = out["effects"]["cross_x_to_y"]["waves"][0]
    assert row["est"] is not None and row["se"] is None and row["pvalue"] is None


def test_wald_test_reads_lavaan_constraints():
    from alliance.sem.fitting import fit_model

    spec = ModelSpec.from_syntax(riclpm_syntax(WAVES), meanstructure=True)
    result = fit_model(wide(), spec, "ML", "fiml")
    both = wald_test(result, "ax2 == ax3; ay2 == ay3")
    assert both["df"] == 2
    one = wald_test(result, ["ax2 - ax3 == 0"])
    d = {r.label: r.free - 1 for r in spec.table if r.label}
    v = result.vcov
    g = result.x[d["ax2"]] - result.x[d["ax3"]]
    var = v[d["ax2"], d["ax2"]] + v[d["ax3"], d["ax3"]] - 2 * v[d["ax2"], d["ax3"]]
    assert one["stat"] == pytest.approx(g**2 / var, rel=1e-6)  # the univariate Wald test
    with pytest.raises(ValueError, match="unknown labels"):
        wald_test(result, "ax2 == nope")
    with pytest.raises(ValueError, match="expected 'lhs == rhs'"):
        wald_test(result, "ax2 > 0")
    assert np.isfinite(both["pvalue"])
