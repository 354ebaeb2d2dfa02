import pandas as pd

from alliance.report.summary import _apa, markdown_table, methods_paragraph, versions


def test_methods_paragraph_follows_config():
    config = {
        "seed": 11,
        "scoring": {"min_answered_share": 0.5},
        "describe": {"session": 4, "rater": "therapist", "parallel_iterations": 250},
    }
    text = methods_paragraph(config, versions())
    assert "at least 50% of a scale's items" in text
    assert "the therapist ratings of session 4" in text
    assert "(250 random data sets, 95th percentile, seed 11)" in text
    assert f"pandas {versions()['pandas']}" in text


def test_apa_numbers_and_tables():
    assert _apa(0.8312) == ".83"
    assert _apa(-0.2) == "-.20"
    assert _apa(None) == "NA"
    table = markdown_table(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2 | y |"]


def test_bayes_section_shows_attenuation_and_prior_checks(tmp_path):
    import json

    from alliance.report.summary import bayes_section, reporting_checks

    fit = tmp_path / "site_x" / "bayes" / "latent_x1"
    fit.mkdir(parents=True)
    effect = {"mean": 0.35, "eti90_low": 0.27, "eti90_high": 0.43}
    diag = {
        "model": "latent",
        "status": "pass",
        "diagnostics": {"max_r_hat": 1.002, "min_ess_bulk": 1500, "min_ess_tail": 1200},
        "effects": {"r_partial_latent_improvement": effect},
        "prior_predictive": {"status": "check", "reasons": ["observed SD at percentile 1.000"]},
        "attenuation": [
            {
                "effect": "b",
                "plugin_mean": -0.27,
                "plugin_eti90_low": -0.33,
                "plugin_eti90_high": -0.2,
                "latent_mean": -0.3,
                "latent_eti90_low": -0.37,
                "latent_eti90_high": -0.22,
                "ratio": 0.9,
            }
        ],
    }
    (fit / "diagnostics.json").write_text(json.dumps(diag))
    text, warnings = bayes_section(tmp_path, ["site_x"])
    assert "| site_x | b | -0.27 [-0.33, -0.20] | -0.30 [-0.37, -0.22] | 0.90 |" in text
    assert "r_partial_latent_improvement 0.35 [0.27, 0.43]" in text
    assert warnings == [
        "site_x: the priors of the latent model need a look (prior predictive check): "
        "observed SD at percentile 1.000"
    ]
    checks = {c.item: c for c in reporting_checks(pd.DataFrame(), tmp_path, ["site_x"])}
    assert checks["Prior predictive check"].met
    assert "1 of 1 fits" in checks["Prior predictive check"].evidence


def _process_results(root):
    """A dataset with the process summaries of rules process and process_bayes."""
    import json

    folder = root / "site_x" / "process"
    (folder / "bayes").mkdir(parents=True)
    process = {
        "agreement": {
            "status": "ok",
            "all_sessions": {
                "total_mean": {
                    "icc_a1": 0.334,
                    "pearson_r": 0.347,
                    "mean_diff": 0.185,
                    "loa_lower": -1.397,
                    "loa_upper": 1.768,
                }
            },
        },
        "ruptures": {
            "status": "ok",
            "episodes": 106,
            "patients_with_rupture": 98,
            "patients_eligible": 344,
            "repaired": 79,
            "unrepaired": 12,
            "censored": 15,
        },
        "variance_components": {
            "status": "ok",
            "corrected_shares": {"therapist": 0.0654, "patient": 0.6909, "session": 0.2437},
        },
        "person_period": {
            "status": "ok",
            "dropouts": 158,
            "patients": 375,
            "dropout_share": 0.4213,
            "planned_sessions": 12,
        },
    }
    (folder / "summary.json").write_text(json.dumps(process))
    diag = {"max_r_hat": 1.002, "min_ess_bulk": 2262.0, "min_ess_tail": 1673.0, "divergences": 0}
    odds = {
        "effect": "or_alliance",
        "mean": 0.545,
        "eti95_low": 0.473,
        "eti95_high": 0.625,
        "probability": 1.0,
        "probability_of": "OR < 1",
    }
    share = {"effect": "corrected_share_trait", "mean": 0.764, "eti95_low": 0.730}
    share |= {"eti95_high": 0.799, "probability": None, "probability_of": None}
    bayes = {
        "dataset": "site_x",
        "models": {
            "dropout": {
                "status": "pass",
                "reason": None,
                "failures": [],
                "diagnostics": diag,
                "key": [odds],
                "definition": "Discrete-time hazard model of premature termination.",
                "references": ["Singer, J. D., & Willett, J. B. (2003). Applied longitudinal."],
            },
            "growth": {
                "status": "fail",
                "reason": None,
                "failures": ["growth: bulk ESS 310 < 400 (sd_slope)"],
                "diagnostics": {**diag, "min_ess_bulk": 310.0},
                "key": [share],
                "definition": "Linear growth model.",
                "references": ["Zilcha-Mano, S. (2017). American Psychologist, 72(4), 311-325."],
            },
            "rater_outcome": {
                "status": "skipped",
                "reason": "no second rater: the scores have rater(s) ['client'], no 'therapist'",
                "failures": [],
                "diagnostics": {"max_r_hat": None, "min_ess_bulk": None},
                "key": [{"effect": None, "reason": "no second rater"}],
                "definition": "Which perspective predicts outcome.",
                "references": ["Bachelor, A. (2013). Clinical Psychology & Psychotherapy."],
            },
        },
    }
    (folder / "bayes" / "summary.json").write_text(json.dumps(bayes))


def test_process_section_reports_estimates_diagnostics_sources_and_skips(tmp_path):
    from alliance.report.summary import process_section

    _process_results(tmp_path)
    text, warnings = process_section(tmp_path, ["site_x", "site_without_process"])
    lines = text.splitlines()
    assert (
        "| site_x | ICC(2,1) .33, r .35; mean difference 0.18 [LoA -1.40, 1.77] | 106 in 98 of 344 "
        "patients (79 repaired, 12 unrepaired, 15 censored) | .065 / .691 / .244 "
        "(error-corrected) | 158 of 375 (42%) before session 12 |"
    ) in lines
    assert (
        "| site_x | dropout | pass | dropout OR per SD of session alliance 0.55 [0.47, 0.62], "
        "P(OR < 1) = 1.00 | 1.002 | 2262 / 1673 | 0 |"
    ) in lines
    assert (
        "| site_x | growth | fail | trait-like share 0.76 [0.73, 0.80] | 1.002 | 310 / 1673 |"
        in (text)
    )
    assert (
        "| site_x | rater_outcome | skipped: no second rater: the scores have rater(s) "
        "['client'], no 'therapist' | - | NA | NA | NA |"
    ) in lines
    # the operational definitions with their sources, once per model
    assert (
        "- **dropout**: Discrete-time hazard model of premature termination. Sources: Singer, "
        "J. D., & Willett, J. B. (2003). Applied longitudinal."
    ) in lines
    assert text.count("- **growth**") == 1
    # failed diagnostics are a warning; a skipped model is not
    assert warnings == [
        "site_x: Bayesian process model growth failed its diagnostics: growth: bulk ESS 310 < "
        "400 (sd_slope)"
    ]
    # every table row has as many cells as its header (no stray pipes in the cells)
    for table in (lines[: lines.index("")],):
        assert len({line.count("|") for line in table}) == 1


def test_summary_has_the_process_section_and_methods(tmp_path):
    from alliance.report.summary import write_summary

    _process_results(tmp_path)
    config = {
        "datasets": {"site_x": {}},
        "seed": 3,
        "process": {"enabled": True, "settings": {"ruptures": {"threshold": 1.5}}},
        "process_bayes": {"enabled": True, "models": ["dropout", "growth", "rater_outcome"]},
    }
    text = write_summary(tmp_path, config, tmp_path / "summary.md")
    assert "## Alliance as a process" in text
    assert "a session at least 1.5 times the patient's own SD of session scores" in text
    assert "Bayesian process models (dropout, growth, rater_outcome) were sampled" in text
    assert "- site_x: Bayesian process model growth failed its diagnostics" in text


# --------------------------------------------------------------------------- issue 15


def _comparison(root, dataset, estimator, results, tests=()):
    import json

    folder = root / dataset / "cfa"
    folder.mkdir(parents=True, exist_ok=True)
    comp = {"estimator": estimator, "results": results, "tests": list(tests)}
    (folder / f"comparison_{estimator}.json").write_text(json.dumps(comp))


def test_cfa_section_shows_the_table_of_cfa_tables(tmp_path, rng):
    from small_samples import not_converged_fit, ordinal_items, syntax

    from alliance.cfa.tables import DASH, fit_comparison_table
    from alliance.report.summary import cfa_section
    from alliance.sem.api import fit_cfa

    # WLSMV, 60 patients, 15% of answers missing: robust indices not defined (non-PD
    # polychoric correlations), while the standard CFI is there (small_samples)
    data = ordinal_items(rng, 60, missing=0.15)
    wlsmv = {
        m: fit_cfa(data, syntax(m), "WLSMV", "pairwise", ordered=True)
        for m in ("one_factor", "correlated")
    }
    assert wlsmv["correlated"]["fit"]["cfi.robust"] is None
    naive = wlsmv["correlated"]["fit"]["cfi"]
    # MLR: a bifactor fit stopped before it converged, and a nested test of it as an older
    # comparison file would hold one
    complete = data.fillna(3.0)
    mlr = {m: fit_cfa(complete, syntax(m), "MLR", "fiml") for m in ("second_order",)}
    mlr["bifactor"] = not_converged_fit(complete)
    old_test = {"restricted": "second_order", "general": "bifactor", "chisq_diff": 66.42,
                "df_diff": 9, "pvalue": 1e-10, "method": "Satorra-Bentler (2001)"}  # fmt: skip
    _comparison(tmp_path, "clinic", "WLSMV", wlsmv)
    _comparison(tmp_path, "clinic", "MLR", mlr, [old_test])
    text, warnings = cfa_section(tmp_path, ["clinic"])
    for est, results in (("WLSMV", wlsmv), ("MLR", mlr)):
        table = fit_comparison_table(results, est)
        assert markdown_table(table) in text  # the same table as cfa/tables/fit_{est}.md
        assert table.attrs["note"] in text
    lines = text.splitlines()
    (row,) = [line for line in lines if line.startswith("| Three correlated factors")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[6:9] == [DASH, DASH, DASH]  # robust CFI, TLI, RMSEA: not the naive ones
    assert _apa(naive, 3) not in row
    assert "robust CFI, TLI, RMSEA not defined for Three correlated factors (Bordin): the " in text
    (bif,) = [line for line in lines if line.startswith("| Bifactor")]
    assert "| No | not converged | " + DASH + " |" in bif
    assert "66.42" not in text
    assert "Second order vs Bifactor: not tested (Bifactor: not converged)" in text
    assert "clinic: CFA Bifactor (MLR) did not converge (at its last iterate: negative " in (
        "\n".join(warnings)
    )
    assert "Small sample: N = 60 is below 200" in text


def test_meta_section_reports_what_meta_json_holds(tmp_path):
    import json
    from pathlib import Path

    from alliance.meta.analysis import pool_effects
    from alliance.report.summary import meta_section

    folder = Path(__file__).parent / "data" / "metafor"
    effects = pd.read_csv(folder / "effects.csv")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "meta.json").write_text(json.dumps(pool_effects(effects)))
    text, warnings = meta_section(tmp_path)
    assert warnings == []
    # every number against metafor 3.8-1 (rma REML, confint, regtest), formatted here
    ref = json.loads((folder / "metafor_reml.json").read_text())
    extra = json.loads((folder / "metafor_extra.json").read_text())
    r, het, ci = ref["pooled_r"], ref["heterogeneity"], ref["heterogeneity_ci"]

    def apa(v, d=3):
        return f"{v:.{d}f}".replace("0.", ".", 1)

    rows = dict(
        tuple(c.strip() for c in line.strip("|").split("|"))
        for line in text.splitlines()[2:]
        if line.startswith("| ")
    )
    assert rows["k (datasets and published studies)"] == "16"
    assert rows["Pooled r [95% CI]"].startswith(
        f"{apa(r['estimate'])} [{apa(r['ci.lb'])}, {apa(r['ci.ub'])}]"
    )
    assert rows["95% prediction interval (r)"] == f"[{apa(r['pi.lb'])}, {apa(r['pi.ub'])}]"
    assert rows["95% prediction interval (r)"] == "[-.037, .325]"
    tau2 = ci["tau2"]
    assert rows["tau2 (Fisher z, REML) [95% CI, Q-profile]"] == (
        f"{apa(het['tau2'], 4)} [{apa(tau2['ci.lb'], 4)}, {apa(tau2['ci.ub'], 4)}]"
    )
    i2 = ci["I2"]
    assert rows["I2 [95% CI]"] == f"{het['I2']:.1f}% [{i2['ci.lb']:.1f}%, {i2['ci.ub']:.1f}%]"
    assert rows["Cochran's Q"] == f"Q(15) = {het['Q']:.2f}, p < .001"
    egger = extra["egger"]
    assert rows["Egger's test (mixed-effects, SE as predictor; metafor regtest)"].startswith(
        f"z = {egger['rma']['statistic']:.2f}, p = {apa(egger['rma']['pval'])}"
    )
    assert rows["Egger's test (classic weighted regression)"].startswith(
        f"t(14) = {egger['lm']['statistic']:.2f}, p = {apa(egger['lm']['pval'])}"
    )


def test_summary_has_the_meta_analysis(tmp_path):
    from alliance.report.summary import write_summary

    text = write_summary(tmp_path, {"datasets": {}, "seed": 1}, tmp_path / "summary.md")
    assert "## Meta-analysis\n\nNo meta-analysis was run." in text


def test_library_warnings_are_not_pasted_into_the_process_table(tmp_path, rng):
    import json

    from alliance.process.trajectories import variance_components
    from alliance.report.summary import process_section

    # 60 patients of 6 therapists, 4 sessions each, no therapist variance in truth: the REML
    # optimum lies on the boundary, where statsmodels' first optimizer often stops early.
    # Draw samples until one fit converged after a retry and one did not converge at all.
    fits = {}
    for _ in range(10):
        rows = [
            {"patient_id": f"P{t}_{p}", "therapist_id": f"T{t}", "session": s,
             "rater": "client", "total_mean": 3.5 + u + rng.normal(0, 0.4)}
            for t in range(6) for p in range(10) for u in [rng.normal(0, 0.6)]
            for s in range(1, 5)
        ]  # fmt: skip
        vc = variance_components(pd.DataFrame(rows))
        fits.setdefault(vc["status"], vc)
        if {"warning", "not_converged"} <= set(fits):
            break
    retried, failed = fits["warning"], fits["not_converged"]
    raw = (
        "ConvergenceWarning: Maximum Likelihood optimization failed to converge. Check mle_retvals"
    )
    assert raw in retried["warnings"] and retried["converged"] is True
    assert raw in failed["warnings"] and failed["converged"] is False
    for name, vc in (("site_r", retried), ("site_f", failed)):
        folder = tmp_path / name / "process"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"variance_components": vc}))
    text, warnings = process_section(tmp_path, ["site_r", "site_f"])
    assert "Warning:" not in text and "mle_retvals" not in text and "MixedLM" not in text
    (row_r,) = [line for line in text.splitlines() if line.startswith("| site_r")]
    assert (
        "the REML variance model: the first optimizer stopped before converging and another "
        "one was tried, which converged; the variance shares come from the converged fit"
    ) in row_r
    assert "estimated at or near zero" in row_r
    (row_f,) = [line for line in text.splitlines() if line.startswith("| site_f")]
    assert "not reported: the REML variance model did not converge" in row_f
    assert (
        "site_f: The REML variance model did not converge (no optimizer reached the maximum of "
        "the likelihood): the variance shares are not estimates to report"
    ) in warnings
    assert not any("Warning:" in w for w in warnings)


def test_measurement_section_flags_efa_problems(tmp_path):
    import json

    from alliance.report.summary import measurement_section

    folder = tmp_path / "clinic" / "describe"
    folder.mkdir(parents=True)
    heywood = "an ultra-Heywood case: the communality of wai_07 is 1.013 (1 or more), ..."
    summary = {
        "sample": {"n_obs": 60},
        "parallel_analysis": {"n_factors": 1},
        "efa": {
            "n_factors": 3,
            "rmsr": 0.03,
            "warnings": [
                "UserWarning: Failed to converge: ABNORMAL_TERMINATION_IN_LNSRCH",
                heywood,
                "3 factors were extracted (the factors of wai_sr) where parallel analysis "
                "suggests 1: ...",
                "SomeLibraryWarning: something new",
            ],
        },
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    text, warnings = measurement_section(tmp_path, ["clinic"])
    header, _, row = text.splitlines()
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    assert cells[" EFA factors "] == " 3 (PA suggests 1; 1 Heywood case) "
    assert cells[" PA factors "] == " 1 "
    assert warnings == [
        "clinic: EFA: The EFA did not converge (ABNORMAL_TERMINATION_IN_LNSRCH): its loadings "
        "and communalities come from the last iteration, not from a solution",
        f"clinic: EFA: {heywood}",
        "clinic: EFA: 3 factors were extracted (the factors of wai_sr) where parallel analysis "
        "suggests 1: ...",
        "clinic: EFA: library warning (not translated): SomeLibraryWarning: something new",
    ]


# --------------------------------------------------------------------------- issue 14


def test_data_section_counts_rows_and_cells_apart(tmp_path):
    """The ingest table says what it counts: quarantined rows with their row reasons, and
    quarantined cells of kept rows with theirs (a bad cell once showed 'out_of_range 1' next
    to Quarantined 0). Counts of two bad-input cases, written by hand in their expected.yaml."""
    from pathlib import Path

    from alliance.data.ingest import ingest_to
    from alliance.report.summary import data_section

    cases = Path(__file__).parent / "data" / "bad_inputs"
    names = {"cell": "bad_cell_keeps_session", "rows": "quarantined_rows_keep_attendance"}
    for name, case in names.items():
        ingest_to(cases / case / "codebook.yaml", tmp_path / name / "ingest")
    text, warnings, table = data_section(tmp_path, list(names))
    header = text.splitlines()[0]
    for column in ("Quarantined rows", "Row reasons", "Quarantined cells", "Cell reasons"):
        assert f"| {column} |" in header
    assert (
        "| cell | csv (long) | 4 | 4 | 0 | none | 1 cell in 1 kept row | out_of_range 1 |" in text
    )
    row_reasons = (
        "duplicate_key_conflict 2, inexact_id 1, invalid_rater 1, invalid_session 1, missing_id 2"
    )
    assert f"| rows | csv (long) | 18 | 11 | 7 | {row_reasons} | 0 | none |" in text
    assert [w for w in warnings if "quarantined" in w] == [
        "cell: quarantined and set missing: 1 cell in 1 kept row (out_of_range 1); see "
        "results/cell/ingest/quarantine.csv",
        f"rows: 7 of 18 rows were quarantined ({row_reasons}); see "
        "results/rows/ingest/quarantine.csv",
    ]


def test_methods_paragraph_names_datasets_rated_on_a_continuous_line(tmp_path):
    """The configured estimators are not read as fitted to every dataset: a dataset rated on
    a continuous line (SRS) is named with its scale and the analyses it did not get."""
    import json

    from alliance.report.summary import continuous_scales

    reports = {
        "vas": {"kind": "items", "instrument": "srs"},
        "clinic": {"kind": "items", "instrument": "wai_sr"},
        "published": {"kind": "effects"},
        "older": {"kind": "items"},  # a report from before reports named the instrument
    }
    for name, report in reports.items():
        folder = tmp_path / name / "ingest"
        folder.mkdir(parents=True)
        (folder / "ingest_report.json").write_text(json.dumps(report))
    found = continuous_scales(tmp_path, [*reports, "not_ingested"])
    assert list(found) == ["vas"]
    assert found["vas"].scale_step == 0.1
    config = {"seed": 1, "cfa": {"enabled": True, "estimators": ["MLR", "WLSMV"]}}
    text = methods_paragraph(config, versions(), found)
    assert "rated on a continuous line (vas (srs, 0-10 in steps of 0.1))" in text
    assert "the WLSMV CFA, the ordinal BSEM, the item response models" in text
    assert "continuous line" not in methods_paragraph(config, versions(), {})
