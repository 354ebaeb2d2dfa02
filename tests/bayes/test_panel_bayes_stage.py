"""Rule panel_bayes (issue 20): the Bayesian dynamic panel model of a dataset on disk.

The model's statistics are tested in test_panel_model.py (likelihood against the joint normal
density, recovery, SBC); here the stage: the demo's lagged effect through it, nothing
identifying written, the skip path and the summary's column.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from alliance.panel.stage import PANEL_BAYES_MEANINGS, run_panel_bayes
from alliance.panel.summary import _bayes_panel


def test_dataset_without_the_measure_per_session_is_skipped_with_its_reason(
    tmp_path: Path,
) -> None:
    tables = {
        "scores": pd.DataFrame(
            {"patient_id": ["P1"], "session": [1], "rater": ["client"], "total_mean": [5.0]}
        ),
        "outcomes": pd.DataFrame(
            {
                "patient_id": ["P1"],
                "session": [1],
                "timepoint": ["session"],
                "measure": ["gad7"],
                "value": [7.0],
            }  # fmt: skip
        ),
    }
    result = run_panel_bayes(tables, tmp_path / "out", dataset_name="site_x")
    assert result["status"] == "skipped"
    assert result["reason"] == "no phq9 scores per session"
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["status"] == "skipped" and saved["dataset"] == "site_x"
    assert "skipped (no phq9 scores per session)" in (tmp_path / "out" / "effects.md").read_text()
    with pytest.raises(ValueError, match="trend must be one of .* got 'linear'"):
        run_panel_bayes(tables, tmp_path / "out", trend="linear")


def test_summary_column_gives_the_effect_or_why_not(tmp_path: Path) -> None:
    folder = tmp_path / "site_a" / "panel" / "bayes"
    folder.mkdir(parents=True)
    warnings: list[str] = []
    assert _bayes_panel(tmp_path, "site_a", warnings) is None
    effect = {"mean": -0.514, "sd": 0.1, "eti90_low": -0.7, "eti90_high": -0.331}
    (folder / "summary.json").write_text(
        json.dumps({"status": "pass", "effects": {"b_cross_points": effect}})
    )
    assert _bayes_panel(tmp_path, "site_a", warnings) == "-0.51 [-0.70, -0.33] (90%)"
    (folder / "summary.json").write_text(
        json.dumps({"status": "fail", "diagnostics": {"failures": ["R-hat 1.05 > 1.01"]}})
    )
    assert _bayes_panel(tmp_path, "site_a", warnings) == "fail: R-hat 1.05 > 1.01"
    assert warnings == ["site_a: the Bayesian dynamic panel model fail: R-hat 1.05 > 1.01"]


@pytest.mark.slow
def test_simulated_panel_through_the_stage(tmp_path: Path) -> None:
    """The stage's tables -> panel -> fit -> files path recovers simulated lags (each within 3
    posterior SDs, on the data's scales) and writes no patient identifier (the demo's lag
    through the model: tests/bayes/test_panel_recovery.py).
    """
    import numpy as np

    from alliance.bayes.panel import simulate_panel

    truth = {"phi_xx": 0.3, "phi_xy": -0.05, "phi_yx": -0.4, "phi_yy": 0.5, "sigma_x": 0.8,
             "sigma_y": 1.1, "rho_e": -0.3, "sigma1_x": 1.2, "sigma1_y": 0.9, "rho1": 0.25,
             "sd_mu_x": 0.7, "sd_mu_y": 1.0, "rho_mu": -0.4, "gamma_x": 0.0,
             "gamma_y": 0.0}  # fmt: skip
    long = simulate_panel(np.random.default_rng(20261204), truth, n_patients=150, n_sessions=8)
    long["id"] = "PT-" + long["id"]
    tables = {
        "scores": pd.DataFrame(
            {
                "patient_id": long["id"],
                "session": long["wave"],
                "rater": "client",
                "total_mean": long["x"],
            }
        ),  # fmt: skip
        "outcomes": pd.DataFrame(
            {
                "patient_id": long["id"],
                "session": long["wave"],
                "timepoint": "session",
                "measure": "phq9",
                "value": long["y"],
            }
        ),  # fmt: skip
    }
    # the pipeline's 2 x 2,000 draws: at 2 x 1,000 the patient SDs' bulk ESS was 387 < 400
    sampler = {"backend": "pymc", "draws": 2000, "tune": 1000, "seed": 5}
    result = run_panel_bayes(tables, tmp_path / "bayes", sampler=sampler, trend="none")
    assert result["status"] == "pass", result["diagnostics"]["failures"]
    sx, sy = result["scales"]["x_sd"], result["scales"]["outcome_unit_sd"]
    scaled = {"phi_xx": truth["phi_xx"], "phi_yy": truth["phi_yy"],
              "phi_yx": truth["phi_yx"] * sx / sy,
              "phi_xy": truth["phi_xy"] * sy / sx}  # fmt: skip
    for name, value in scaled.items():
        e = result["effects"][name]
        assert abs(e["mean"] - value) < 3 * e["sd"], (name, e, value)
    table = pd.read_csv(tmp_path / "bayes" / "effects.csv")
    assert list(table["parameter"]) == list(PANEL_BAYES_MEANINGS)
    written = "".join(p.read_text() for p in (tmp_path / "bayes").iterdir())
    assert "PT-" not in written
