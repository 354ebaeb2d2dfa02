"""A model the data cannot support is skipped with its reason; an error becomes a status."""

import json

import arviz as az
import pandas as pd
import pytest

import alliance.bayes.api as api
from alliance.bayes.api import fit_model, fit_model_or_error, plot_saved_fit
from alliance.bayes.data import InsufficientData, session_data
from alliance.bayes.diagnostics import SUMMARY_COLUMNS
from alliance.bayes.sensitivity import sensitivity_table
from alliance.report.summary import bayes_section, reporting_checks


def irregular_tables(rng, sessions=(1, 3, 6), n_patients=30):
    """A clinic that rated sessions 1, 3 and 6: no two consecutive sessions, no lagged row."""
    rows = [
        {"patient_id": f"P{p:03d}", "therapist_id": f"T{p % 3}", "session": s, "rater": "client"}
        for p in range(n_patients)
        for s in sessions
    ]
    scores = pd.DataFrame(rows)
    scores["total_mean"] = rng.uniform(2, 5, len(scores))
    outcomes = scores[["patient_id", "session"]].assign(
        timepoint="session", measure="phq9", value=rng.integers(0, 28, len(scores)).astype(float)
    )
    patients = scores[["patient_id", "therapist_id"]].drop_duplicates()
    return {"scores": scores, "outcomes": outcomes, "patients": patients}


def test_no_lagged_rows_is_insufficient_data(rng):
    with pytest.raises(InsufficientData, match="fewer than 20 lagged session rows.*got 0"):
        session_data(irregular_tables(rng))
    # still a ValueError for callers that catch those
    assert issubclass(InsufficientData, ValueError)


def test_session_model_on_sessions_1_3_6_is_skipped_with_files(rng, tmp_path):
    tables = irregular_tables(rng)
    result = fit_model(tables, "session", out_dir=tmp_path)  # no sampling happens
    assert result["status"] == "skipped"
    # the fit's figures folder holds one figure stating the reason
    assert (tmp_path / "figures" / "not_estimated.png").stat().st_size > 1000
    assert "fewer than 20 lagged session rows" in result["reason"]
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS and summary.empty
    assert "Not estimated: fewer than 20 lagged" in (tmp_path / "summary.md").read_text()
    saved = json.loads((tmp_path / "diagnostics.json").read_text())
    assert (saved["model"], saved["status"]) == ("session", "skipped")
    assert saved["reason"] == result["reason"]
    idata = az.from_netcdf(tmp_path / "idata.nc")
    assert "posterior" not in idata.groups()
    assert idata.attrs["status"] == "skipped"
    # so does drawing the figures of the saved fit
    paths = plot_saved_fit(tables, tmp_path / "idata.nc", "session", tmp_path / "figures")
    assert [p.name for p in paths] == ["not_estimated.png", "not_estimated.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    # the prior-sensitivity table of a skipped model is empty (no key parameter), not an error
    table = sensitivity_table({1: tmp_path / "summary.csv", 2: tmp_path / "summary.csv"})
    assert table.empty
    assert list(table.columns) == ["parameter", "mean_x1", "eti95_x1", "mean_x2", "eti95_x2"] + [
        "max_shift_sd"
    ]


def test_unexpected_error_is_recorded_not_raised(rng, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise FloatingPointError("the sampler blew up")

    monkeypatch.setattr(api, "build_model", broken)
    with pytest.raises(FloatingPointError):
        fit_model(irregular_tables(rng, sessions=(1, 2, 3, 4)), "session")
    result = fit_model_or_error(
        irregular_tables(rng, sessions=(1, 2, 3, 4)), "session", out_dir=tmp_path
    )
    assert result["status"] == "error"
    assert result["reason"] == "FloatingPointError: the sampler blew up"
    saved = json.loads((tmp_path / "diagnostics.json").read_text())
    assert saved["status"] == "error" and "Traceback" in saved["traceback"]
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "idata.nc").is_file()


def test_summary_shows_each_datasets_status(tmp_path):
    """Skipped: a row with its reason, no warning; error: a row and a warning; pass: numbers."""
    fits = {
        ("irregular", "session"): {
            "model": "session",
            "status": "skipped",
            "reason": "fewer than 20 lagged session rows (...), got 0",
        },
        ("broken", "session"): {
            "model": "session",
            "status": "error",
            "reason": "FloatingPointError: the sampler blew up",
        },
        ("clinic", "session"): {
            "model": "session",
            "status": "pass",
            "diagnostics": {"max_r_hat": 1.001, "min_ess_bulk": 900, "min_ess_tail": 800},
            "effects": {"b_within_points": {"mean": -0.5, "eti90_low": -0.9, "eti90_high": -0.1}},
        },
    }
    for (name, model), diag in fits.items():
        folder = tmp_path / name / "bayes" / f"{model}_x1"
        folder.mkdir(parents=True)
        (folder / "diagnostics.json").write_text(json.dumps(diag))
    text, warnings = bayes_section(tmp_path, ["clinic", "irregular", "broken"])
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| irregular | session |"))
    assert row.endswith("| skipped: fewer than 20 lagged session rows (...), got 0 |")
    assert any("| error: FloatingPointError: the sampler blew up |" in line for line in lines)
    assert "b_within_points -0.50 [-0.90, -0.10]" in text
    assert warnings == [
        "broken: Bayesian session model could not be fitted: FloatingPointError: the sampler "
        "blew up"
    ]
    # a skipped fit is not a fit that failed convergence: 1 of 1 fitted models pass
    checks = reporting_checks(pd.DataFrame(), tmp_path, ["clinic", "irregular"])
    convergence = next(c for c in checks if c.item.startswith("MCMC convergence"))
    assert convergence.met
    assert convergence.evidence.startswith("1 of 1 fits pass")
