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
