import pandas as pd

from alliance.report import _apa, markdown_table, methods_paragraph, versions


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

    from alliance.report import bayes_section, reporting_checks

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
    from alliance.report import process_section

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
    from alliance.report import write_summary

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
