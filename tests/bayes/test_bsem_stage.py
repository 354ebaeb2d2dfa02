"""The ``bsem`` stage and command: model syntax, outputs, status, skipped fits, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alliance.bayes.bsem_stage import measurement_from_syntax, run_bsem
from alliance.cli import main
from alliance.tables import FORMULA_TRIGGERS

SYNTAX = "f1 =~ a1 + a2 + a3\nf2 =~ b1 + b2 + b3\nf1 ~~ f2\n"


def _data(rng: np.random.Generator, n: int) -> pd.DataFrame:
    f = rng.multivariate_normal([0, 0], [[1, 0.4], [0.4, 1]], size=n)
    x = np.repeat(f, 3, axis=1) * 0.7 + rng.normal(scale=0.7, size=(n, 6))
    return pd.DataFrame(x, columns=["a1", "a2", "a3", "b1", "b2", "b3"])


def test_measurement_from_syntax_reads_factors_and_refuses_other_statements():
    m = measurement_from_syntax(SYNTAX)
    assert m.factors == {"f1": ["a1", "a2", "a3"], "f2": ["b1", "b2", "b3"]}
    assert m.items == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert m.target.sum() == 6
    with pytest.raises(ValueError, match=r"line 2: a1 ~~ 'a2'"):
        measurement_from_syntax("f1 =~ a1 + a2 + a3\na1 ~~ a2\n")
    with pytest.raises(ValueError, match=r"line 1: f1 =~ 'a1'"):
        measurement_from_syntax("f1 =~ 1*a1 + a2 + a3\n")
    with pytest.raises(ValueError, match=r"first-order factors only, got line 4: .* \(g =~ f1\)"):
        measurement_from_syntax(SYNTAX + "g =~ f1 + f2\n")


def test_the_instruments_builtin_models_bsem_takes(wai_sr):
    from alliance.sem.syntax import builtin_models

    models = builtin_models(wai_sr)
    correlated = measurement_from_syntax(models["correlated"])
    assert sorted(correlated.factors) == ["bond", "goal", "task"]
    assert sorted(correlated.items) == sorted(wai_sr.items)
    assert list(measurement_from_syntax(models["one_factor"]).factors) == ["general"]
    for name in ("bifactor", "second_order", "esem"):
        with pytest.raises(ValueError, match="BSEM takes"):
            measurement_from_syntax(models[name])


def test_too_few_rows_are_skipped_with_the_reason(tmp_path, rng):
    (tmp_path / "m.lav").write_text(SYNTAX)
    _data(rng, 12).to_csv(tmp_path / "d.csv", index=False)
    result = run_bsem(tmp_path / "d.csv", str(tmp_path / "m.lav"), tmp_path / "out")
    assert result["status"] == "skipped"
    assert result["reason"] == "12 complete rows; BSEM of 6 items needs at least 13"
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["status"] == "skipped" and saved["n"] == 12


def test_bad_options_are_input_errors(tmp_path, rng, capsys):
    (tmp_path / "m.lav").write_text(SYNTAX)
    _data(rng, 50).to_csv(tmp_path / "d.csv", index=False)
    code = main(
        [
            "bsem",
            str(tmp_path / "d.csv"),
            "--model",
            str(tmp_path / "m.lav"),
            "--out",
            str(tmp_path / "o"),
            "--prior-variance",
            "-1",
        ]
    )
    assert code == 2
    assert "prior_variance must be a number >= 0, got -1.0" in capsys.readouterr().err
    code = main(
        [
            "bsem",
            str(tmp_path / "d.csv"),
            "--model",
            str(tmp_path / "m.lav"),
            "--out",
            str(tmp_path / "o"),
            "--prior-variance",
            "0.5",
        ]
    )
    assert code == 2
    assert "among 6 items must lie in (0, 0.2), got 0.5" in capsys.readouterr().err
    _data(rng, 50).drop(columns="b3").to_csv(tmp_path / "e.csv", index=False)
    code = main(
        [
            "bsem",
            str(tmp_path / "e.csv"),
            "--model",
            str(tmp_path / "m.lav"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "lack the model's items, got missing ['b3']" in capsys.readouterr().err


@pytest.mark.slow
def test_bsem_command_writes_status_ppp_and_formula_safe_tables(tmp_path, rng, capsys):
    """A planted residual correlation (about .30, a1~~b1) is listed; incomplete rows are dropped
    and counted; the CSVs are formula-safe (a pair label starting with '-' or '=' would be
    quoted; here none does, so each text cell must not start with a trigger).

    With a residual correlation of .45 (4.5 prior SDs under the N(0, .01) prior, on factors of
    three items) the default 2 x 2,000 draws did not pass: tail ESS 313 of a1's loading, which
    trades off with the residual correlation; the command then says so and exits 1 (a user
    would run it with more --draws). .30 is the size of the residual correlations BSEM is used
    to find, and the default draws suffice."""
    data = _data(rng, 800)
    # residual covariance .9 x .5^2 = .225 on residual variances .49 + .25: correlation .30
    e = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=800) * 0.5
    data["a1"] += e[:, 0]
    data["b1"] += e[:, 1]
    data.loc[:2, "a2"] = np.nan
    (tmp_path / "m.lav").write_text(SYNTAX)
    data.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "out"
    code = main(
        [
            "bsem",
            str(tmp_path / "d.csv"),
            "--model",
            str(tmp_path / "m.lav"),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert code == (0 if summary["status"] == "pass" else 1)
    assert summary["status"] == "pass", summary["diagnostics"]["failures"]
    assert summary["n"] == 797 and summary["n_dropped"] == 3
    assert summary["ppp"]["ppp"] > 0.05
    assert [r["pair"] for r in summary["large_residual_correlations"]] == ["b1~~a1"]
    assert "residual correlation b1~~a1" in printed
    params = pd.read_csv(out / "parameters.csv")
    assert {"parameter", "mean", "mcse_mean", "r_hat", "ess_bulk"} <= set(params.columns)
    resid = pd.read_csv(out / "residual_correlations.csv")
    assert len(resid) == 15
    for cell in resid["pair"].astype(str):
        assert cell[:1] not in FORMULA_TRIGGERS
    assert (out / "parameters.md").is_file()


def test_summary_rows_show_ppp_large_residuals_and_warn_of_failed_fits(tmp_path):
    from alliance.bayes.bsem_summary import bsem_rows
    from alliance.report.summary import bsem_section

    ok = tmp_path / "site_a" / "bsem" / "correlated"
    ok.mkdir(parents=True)
    (ok / "summary.json").write_text(
        json.dumps(
            {
                "model_name": "correlated",
                "status": "pass",
                "n": 400,
                "prior_variance": 0.01,
                "ppp": {"ppp": 0.412, "diff_eti95": [-20.04, 25.5]},
                "large_residual_correlations": [{"pair": "w2~~w1", "mean": 0.214}],
            }
        )
    )
    bad = tmp_path / "site_b" / "bsem" / "correlated"
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text(
        json.dumps({"model_name": "correlated", "status": "skipped", "n": 9, "reason": "too few"})
    )
    rows, warnings = bsem_rows(tmp_path, ["site_a", "site_b", "site_c"])
    assert rows.to_dict("records") == [
        {
            "Dataset": "site_a",
            "Model": "correlated",
            "Status": "pass",
            "N": 400,
            "Prior variance": "0.01",
            "PPP": "0.412",
            "95% interval": "[-20.0, 25.5]",
            "Large residual correlations": "w2~~w1 0.21",
        },
        {
            "Dataset": "site_b",
            "Model": "correlated",
            "Status": "skipped",
            "N": 9,
            "Prior variance": "exact zero",
            "PPP": "",
            "95% interval": "",
            "Large residual correlations": "",
        },
    ]
    assert warnings == ["site_b: BSEM of correlated skipped: too few"]
    text, _ = bsem_section(tmp_path, ["site_a"])
    assert text.startswith("### Bayesian SEM") and "0.412" in text
    assert bsem_section(tmp_path, ["site_c"]) == ("", [])


def test_failed_ess_names_the_option_that_adds_draws(capsys):
    from alliance.cli.bsem import _print_failures

    _print_failures(["tail ESS 313 < 400 (std_loading[f1=~a1])"], 2000)
    printed = capsys.readouterr().out
    assert "diagnostic failed: tail ESS 313 < 400 (std_loading[f1=~a1])" in printed
    assert "--draws 4000" in printed
    _print_failures(["3 divergent transitions"], 2000)
    assert "--draws" not in capsys.readouterr().out
