"""CFA tables: every displayed number is the number in the result JSON, formatted APA style."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alliance.cfa import tables as t
from alliance.tables import write_table

DATA = Path(__file__).parent / "data" / "cfa_examples"
MODELS = ("one_factor", "two_factor", "correlated", "bifactor", "second_order")


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.fixture(scope="module", params=["MLR", "WLSMV"])
def site(request) -> tuple[str, dict]:
    est = request.param
    return est, {m: load(f"site_b_{m}_{est}") for m in MODELS}


def apa3(v: float) -> str:
    """Independent APA rendering for the tests: 3 decimals, no leading zero."""
    s = f"{v:.3f}"
    return s.replace("0.", ".", 1) if abs(v) < 1 else s


def test_formatting_rules() -> None:
    assert t.fmt_bounded(0.9537) == ".954"
    assert t.fmt_bounded(-0.0123) == "\u2212.012"
    assert t.fmt_bounded(-0.0001) == ".000"  # no minus sign on a displayed zero
    assert t.fmt_bounded(1.0018) == "1.002"
    assert t.fmt_p(0.0004) == "< .001"
    assert t.fmt_p(0.0215) == ".021"
    assert t.fmt_num(8279.6702) == "8279.67"
    assert t.fmt_num(None) == t.DASH
    assert t.fmt_int(51.0) == "51"
    assert t.fmt_ci(0.0529, 0.0339, 0.0710) == ".053 [.034, .071]"


def test_fit_table_cells_equal_the_json(site) -> None:
    est, results = site
    df = t.fit_comparison_table(results, est).set_index("Model")
    assert list(df.index) == [t.MODEL_LABELS[m] for m in MODELS]
    for m in MODELS:
        fit = results[m]["fit"]
        row = df.loc[t.MODEL_LABELS[m]]
        assert row["npar"] == str(round(fit["npar"]))
        assert row["df"] == str(round(fit["df"]))
        assert row["\u03c7\u00b2 (unscaled)"] == f"{fit['chisq']:.2f}"
        assert row["Scaled \u03c7\u00b2"] == f"{fit['chisq.scaled']:.2f}"
        p = fit["pvalue.scaled"]
        assert row["p (scaled)"] == ("< .001" if p < 0.001 else apa3(p))
        assert row["Robust CFI"] == apa3(fit["cfi.robust"])
        assert row["Robust TLI"] == apa3(fit["tli.robust"])
        lo, hi = fit["rmsea.ci.lower.robust"], fit["rmsea.ci.upper.robust"]
        assert row["Robust RMSEA [90% CI]"] == (
            f"{apa3(fit['rmsea.robust'])} [{apa3(lo)}, {apa3(hi)}]"
        )
        assert row["SRMR"] == apa3(fit["srmr"])
        assert row["Converged"] == "Yes"
    if est == "MLR":
        bif = results["bifactor"]["fit"]
        assert df.loc["Bifactor", "AIC"] == f"{bif['aic']:.2f}"
        assert df.loc["Bifactor", "BIC"] == f"{bif['bic']:.2f}"
        assert (df["Status"] == "admissible").all()  # checked from the estimates
    else:
        assert "AIC" not in df.columns  # not defined for WLSMV
    note = df.attrs["note"]
    assert "derived for maximum likelihood (ML)" in note
    assert "robust" in note


def test_fit_table_numeric_matches_json(site) -> None:
    est, results = site
    num = t.fit_comparison_table(results, est, numeric=True).set_index("model")
    assert num.attrs["indices"] == {
        "cfi": "cfi.robust",
        "tli": "tli.robust",
        "rmsea": "rmsea.robust",
    }
    for m in MODELS:
        for key in ("chisq", "chisq.scaled", "cfi.robust", "rmsea.robust", "srmr"):
            assert num.loc[m, key] == results[m]["fit"][key]


def test_cutoff_flags_on_constructed_inputs() -> None:
    assert t.fails_cutoffs({"cfi": 0.95, "tli": 0.96, "rmsea": 0.06, "srmr": 0.08}) == []
    assert t.fails_cutoffs({"cfi": 0.9496, "rmsea": 0.0604, "srmr": 0.0804}) == []  # as shown
    assert t.fails_cutoffs({"cfi": 0.9494, "tli": 0.9, "rmsea": 0.0606, "srmr": 0.0806}) == [
        "CFI",
        "TLI",
        "RMSEA",
        "SRMR",
    ]
    assert t.fails_cutoffs({"cfi": None, "rmsea": 0.07}) == ["RMSEA"]

    def result(cfi: float, rmsea: float, srmr: float) -> dict:
        fit = {"npar": 30, "df": 50, "chisq": 80.0, "pvalue": 0.004, "cfi": cfi, "tli": cfi}
        fit |= {"rmsea": rmsea, "rmsea.ci.lower": 0.0, "rmsea.ci.upper": 0.1, "srmr": srmr}
        return {"converged": True, "fit": fit, "estimator": "ML"}

    results = {"good": result(0.97, 0.05, 0.04), "bad": result(0.90, 0.09, 0.10)}
    df = t.fit_comparison_table(results, "ML").set_index("Model")
    assert df.loc["Good", "Misses cutoffs"] == "None"
    assert df.loc["Bad", "Misses cutoffs"] == "CFI, TLI, RMSEA, SRMR"
    assert "CFI" in df.columns and "p" in df.columns  # standard indices under ML
    assert "derived for maximum likelihood" not in df.attrs["note"]


def test_failed_model_keeps_its_row(site) -> None:
    est, results = site
    broken = dict(results)
    broken["bifactor"] = {"converged": False, "status": {"ok": False, "error": "boom"}}
    df = t.fit_comparison_table(broken, est).set_index("Model")
    assert df.loc["Bifactor", "Converged"] == "No"
    assert df.loc["Bifactor", "Robust CFI"] == t.DASH
    assert "Bifactor: boom" in df.attrs["note"]
    loads = t.loadings_table(broken)
    assert "Bifactor: general" not in loads.columns
    assert "did not converge" in loads.attrs["note"]


def test_loadings_table_equals_standardized_solution(site) -> None:
    est, results = site
    df = t.loadings_table(results).set_index("Item")
    std = {
        (r["lhs"], r["rhs"]): r for r in results["correlated"]["standardized"] if r["op"] == "=~"
    }
    r = std[("task", "wai_12")]
    want = f"{r['est.std']:.2f}".replace("0.", ".", 1) + " (" + f"{r['se']:.2f}"[1:] + ")"
    assert df.loc["wai_12", "Three correlated factors (Bordin)"] == want
    assert df.loc["wai_12", "Factor"] == "Task"
    bif = {
        (r["lhs"], r["rhs"]): r["est.std"]
        for r in results["bifactor"]["standardized"]
        if r["op"] == "=~"
    }
    assert df.loc["wai_06", "Bifactor: specific"].startswith(
        t.fmt_num(bif[("goal", "wai_06")], 2, leading_zero=False)
    )
    assert df.loc["wai_06", "Bifactor: general"].startswith(
        t.fmt_num(bif[("general", "wai_06")], 2, leading_zero=False)
    )
    # items grouped by factor: Task, Goal, Bond
    items = [i for i in df.index if i.startswith("wai")]
    assert items[:4] == ["wai_01", "wai_02", "wai_10", "wai_12"]
    second = df[df["Factor"] == "Second-order loadings"]
    assert len(second) == 3
    long = t.loadings_long(results)
    assert len(long[(long.model == "bifactor")]) == 24
    assert set(long.role) == {"item", "general", "specific", "second_order"}


def test_reliability_table() -> None:
    results = {m: load(f"site_b_{m}_MLR") for m in MODELS}
    df = t.reliability_table(results)
    rel = results["correlated"]["reliability"]
    row = df[(df.Model == "Three correlated factors (Bordin)") & (df.Factor == "Goal")].iloc[0]
    assert row["\u03c9"] == apa3(rel["omega"]["goal"])
    assert row["\u03c9 (observed variance)"] == apa3(rel["omega_obs_var"]["goal"])
    assert row["\u03b1"] == apa3(rel["alpha"]["goal"])
    assert row["AVE"] == apa3(rel["avevar"]["goal"])
    bif = df[df.Model == "Bifactor"]
    assert bif.iloc[0]["Factor"] == "General"  # the general factor first
    assert "omega-hierarchical" in df.attrs["note"]
    wlsmv = t.reliability_table({m: load(f"site_b_{m}_WLSMV") for m in MODELS})
    assert wlsmv.empty and "Not available for" in wlsmv.attrs["note"]


def test_invariance_table_mlr() -> None:
    ladder = load("pooled_invariance_dataset_MLR")
    df = t.invariance_table(ladder, "MLR", group="dataset").set_index("Step")
    assert [s.split()[0] for s in df.index] == ["Configural", "Metric", "Scalar", "Strict"]
    metric = df.iloc[1]
    fit = ladder["metric"]["fit"]
    assert metric["Scaled \u03c7\u00b2"] == f"{fit['chisq.scaled']:.2f}"
    assert metric["Robust CFI"] == apa3(fit["cfi.robust"])
    assert metric["Robust RMSEA"] == apa3(fit["rmsea.robust"])
    lrt = ladder["lrt"]["table"][1]
    assert metric["\u0394\u03c7\u00b2"] == f"{lrt['Chisq_diff']:.2f}"
    assert metric["\u0394df"] == str(lrt["Df_diff"])
    assert metric["p"] == apa3(lrt["Pr_gt_Chisq"])
    dec = ladder["decisions"]["metric"]
    assert metric["\u0394CFI"] == apa3(dec["delta_cfi"])
    assert metric["\u0394RMSEA"] == t.fmt_bounded(dec["delta_rmsea"])
    assert metric["\u0394SRMR"] == apa3(dec["delta_srmr"])
    assert metric["Decision"] == "Invariant"
    assert "Chen (2007)" in metric["Criterion"] and ".030" in metric["Criterion"]
    assert ".010" in df.iloc[2]["Criterion"]
    assert df.iloc[0]["Decision"] == "Baseline"
    assert "intercept of wai_12 in site_c" in df.iloc[2]["Release candidates"]
    assert "across dataset" in df.attrs["title"]


def test_invariance_table_wlsmv_computes_decisions_with_one_variant() -> None:
    ladder = load("pooled_invariance_dataset_WLSMV")
    num = t.invariance_table(ladder, "WLSMV", numeric=True)
    # cfi.robust is missing at the scalar step, so the scaled variant is used throughout
    assert num.attrs["indices"]["cfi"] == "cfi.scaled"
    assert list(num["step"]) == ["configural", "metric", "scalar"]
    d = ladder["deltas"]["scalar_vs_metric"]
    assert num.loc[2, "delta_cfi"] == pytest.approx(d["cfi.scaled"])
    assert num.loc[2, "delta_rmsea"] == pytest.approx(d["rmsea.scaled"])
    assert (num.loc[1:, "decision_source"] == "computed").all()
    assert num.loc[1:, "invariant"].tolist() == [True, True]
    df = t.invariance_table(ladder, "WLSMV")
    assert "Strict invariance is not fitted" in df.attrs["note"]
    assert "derived here" in df.attrs["note"]


def test_chen_decision_flags_non_invariance() -> None:
    ladder = load("pooled_invariance_dataset_WLSMV")
    bad = json.loads(json.dumps(ladder))
    bad["scalar"]["fit"]["cfi.scaled"] = bad["metric"]["fit"]["cfi.scaled"] - 0.02
    bad["scalar"]["fit"]["rmsea.scaled"] = bad["metric"]["fit"]["rmsea.scaled"] + 0.02
    df = t.invariance_table(bad, "WLSMV")
    assert df.iloc[2]["Decision"] == "Not invariant"


def test_writers(site, tmp_path: Path) -> None:
    est, results = site
    df = t.fit_comparison_table(results, est)
    files = write_table(df, tmp_path / "tables" / "fit")
    assert [f.name for f in files] == ["fit.csv", "fit.md"]
    md = files[1].read_text()
    assert md.startswith(f"**Fit of the competing CFA models ({est})**")
    assert "*Note.*" in md
    assert md.count("\n| ") == len(df) + 2  # header, rule, rows
    import pandas as pd

    back = pd.read_csv(files[0], dtype=str, keep_default_na=False)
    assert back["Robust CFI"].tolist() == df["Robust CFI"].tolist()


# --------------------------------------------------------------------------- issue 15
# Small samples that reproduce what two clinics' exports (60 and 80 patients) showed.


def small_mlr_results(rng) -> dict:
    """N = 80 from three correlated factors: one- and three-factor fits that converge and
    are admissible, and a bifactor fit stopped before it converged (see small_samples)."""
    from small_samples import correlated_factors, not_converged_fit, syntax

    from alliance.sem.api import fit_cfa

    data = correlated_factors(rng, 80)
    out = {m: fit_cfa(data, syntax(m), "MLR", "fiml") for m in ("one_factor", "correlated")}
    out["bifactor"] = not_converged_fit(data)
    return {m: r | {"estimator": "MLR"} for m, r in out.items()}


def test_non_converged_fit_gets_no_indices(rng) -> None:
    results = small_mlr_results(rng)
    bif = results["bifactor"]
    # its JSON keeps the model's size and no fit measure (as lavaan's fitMeasures refuses)
    assert bif["converged"] is False
    assert set(bif["fit"]) == {"npar", "df"} and bif["fit_all"] == {}
    assert "fit measures withheld: the estimation did not converge" in bif["meta"]["notes"]
    assert t.fit_status(bif) == (False, "not converged")
    df = t.fit_comparison_table(results, "MLR").set_index("Model")
    row = df.loc["Bifactor"]
    for col in ("χ² (unscaled)", "Scaled χ²", "p (scaled)", "Robust CFI", "Robust TLI",
                "Robust RMSEA [90% CI]", "SRMR", "AIC", "BIC", "Misses cutoffs"):  # fmt: skip
        assert row[col] == t.DASH, col
    assert (row["npar"], row["Converged"], row["Status"]) == ("48", "No", "not converged")
    assert df.loc["One factor", "Status"] == "admissible"
    assert df.loc["Three correlated factors (Bordin)", "Robust TLI"] == t.fmt_bounded(
        results["correlated"]["fit"]["tli.robust"]
    )
    assert "No fit statistics for a model that did not converge" in df.attrs["note"]
    assert "Bifactor (not converged)" in df.attrs["note"]
    num = t.fit_comparison_table(results, "MLR", numeric=True).set_index("model")
    assert num.loc["bifactor", ["chisq", "tli.robust", "rmsea.robust"]].isna().all()
    assert not num.loc["bifactor", "usable"] and num.loc["correlated", "usable"]


def test_inadmissible_fit_status_names_the_problem(rng) -> None:
    from small_samples import correlated_factors, syntax

    from alliance.sem.api import fit_cfa

    # A bifactor model of data with three correlated factors and no general factor (N = 80)
    # converges to an improper solution: the Task factor's variance goes negative (the
    # general factor takes it all), so the latent covariance matrix is not positive definite.
    bif = fit_cfa(correlated_factors(rng, 80), syntax("bifactor"), "MLR", "fiml")
    assert bif["converged"] is True
    var = {
        r["lhs"]: r["est"] for r in bif["parameters"] if r["op"] == "~~" and r["lhs"] == r["rhs"]
    }
    assert var["task"] < 0  # the truth the status must report
    usable, status = t.fit_status(bif)
    assert not usable
    assert status == "Heywood case in task; non-PD latent covariances"
    df = t.fit_comparison_table({"bifactor": bif | {"estimator": "MLR"}}, "MLR")
    assert df.loc[0, "Status"] == status and df.loc[0, "Robust CFI"] == t.DASH
    # without a status block the estimates are checked (a negative latent variance)
    bare = {k: v for k, v in bif.items() if k != "status"}
    assert t.fit_status(bare) == (False, "Heywood case in task")


def test_na_robust_indices_stay_na_with_the_reason(rng) -> None:
    from small_samples import ordinal_items, syntax

    from alliance.sem.api import fit_cfa

    # 60 patients, 15% of answers missing at random: the pairwise polychoric correlations do
    # not form a positive-definite matrix, so the robust (catML) indices are not defined.
    data = ordinal_items(rng, 60, missing=0.15)
    fit = fit_cfa(data, syntax("correlated"), "WLSMV", "pairwise", ordered=True)
    assert fit["fit"]["cfi.robust"] is None and fit["fit"]["rmsea.robust"] is None
    assert fit["fit"]["cfi"] is not None and fit["fit"]["cfi.scaled"] is not None
    df = t.fit_comparison_table({"correlated": fit | {"estimator": "WLSMV"}}, "WLSMV")
    row = df.iloc[0]
    shown = [row["Robust CFI"], row["Robust TLI"], row["Robust RMSEA [90% CI]"]]
    assert shown == [t.DASH] * 3  # not the standard or scaled indices in their place
    assert row["Status"] == "admissible" and row["Scaled χ²"] != t.DASH
    note = df.attrs["note"]
    assert "robust CFI, TLI, RMSEA not defined for Three correlated factors (Bordin)" in note
    assert "polychoric correlation matrix is not positive definite" in note
    assert df.attrs["indices"] == {
        "cfi": "cfi.robust",
        "tli": "tli.robust",
        "rmsea": "rmsea.robust",
    }


def test_small_sample_and_rmsea_notes(rng) -> None:
    from small_samples import ordinal_items, syntax

    from alliance.sem.api import fit_cfa

    # 60 patients, answers from the fitted model itself (correctly specified): the scaled test
    # does not reject exact fit, yet the robust RMSEA misses .06 (sampling variability).
    fit = fit_cfa(ordinal_items(rng, 60), syntax("correlated"), "WLSMV", "pairwise", ordered=True)
    p, rmsea = fit["fit"]["pvalue.scaled"], fit["fit"]["rmsea.robust"]
    assert p > 0.05 and rmsea > 0.06  # the contradiction of the clinics' tables
    df = t.fit_comparison_table({"correlated": fit | {"estimator": "WLSMV"}}, "WLSMV")
    note = df.attrs["note"]
    assert "N = 60." in note and df.attrs["n"] == 60
    assert "Small sample: N = 60 is below 200" in note
    assert f"p = {t.fmt_p(p)}, RMSEA = {t.fmt_bounded(rmsea)}, df = 51; N = 60" in note
    assert "Kenny, Kaniskan, & McCoach, 2015" in note


def test_sample_size_rules() -> None:
    # ML/MLR: fewer than 5 cases per free parameter (Bentler & Chou 1987)
    assert t.small_sample_note(80, {"Bifactor": 48, "One factor": 36}, "MLR").startswith(
        "Small sample: N = 80 gives fewer than 5 cases per free parameter"
    )
    assert t.small_sample_note(240, {"Bifactor": 48}, "MLR") is None  # 5.0 per parameter
    assert "Bifactor (48)" in t.small_sample_note(239, {"Bifactor": 48, "One": 36}, "MLR")
    assert "One (36)" not in t.small_sample_note(239, {"Bifactor": 48, "One": 36}, "MLR")
    # WLSMV: N < 200, whatever the number of thresholds
    assert t.small_sample_note(199, {"x": 63}, "WLSMV") is not None
    assert t.small_sample_note(200, {"x": 63}, "WLSMV") is None
    assert t.small_sample_note(None, {"x": 63}, "WLSMV") is None
    # the clinic's numbers: p = .17 with a robust RMSEA of .235
    rows = [{"label": "Bifactor", "df": 42, "p": 0.17, "rmsea": 0.235}]
    text = t.rmsea_note(rows, 60, small=True)
    assert text.startswith("The χ² test does not reject exact fit while the RMSEA misses")
    assert "Bifactor: p = .170, RMSEA = .235, df = 42; N = 60" in text
    assert t.rmsea_note(rows, 900, small=False) is not None  # the disagreement alone
    fine = [{"label": "x", "df": 51, "p": 0.30, "rmsea": 0.03}]
    assert t.rmsea_note(fine, 900, small=False) is None
