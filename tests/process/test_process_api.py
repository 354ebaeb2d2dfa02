"""run_process_analyses end to end on small tables, and the process figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alliance.data.ingest import ingest_to
from alliance.describe.stage import score_dataset
from alliance.process import DEFAULTS, run_process_analyses
from alliance.process.plots import choose_patients, rupture_trajectories_figure

MEASURES = ("task_mean", "goal_mean", "bond_mean", "total_mean")
ROOT = Path(__file__).resolve().parents[2]


def _scores(rng, n_patients=40, n_sessions=6, raters=("client", "therapist"), drop=True):
    rows = []
    for p in range(n_patients):
        level = rng.normal(4.0, 0.4)
        last = int(rng.integers(2, n_sessions + 1)) if drop and p % 3 == 0 else n_sessions
        rupture = int(rng.integers(3, n_sessions)) if p % 4 == 0 and n_sessions > 3 else None
        for s in range(1, last + 1):
            state = rng.normal(0, 0.15) - (1.2 if s == rupture else 0.0)
            for rater in raters:
                row = {
                    "patient_id": f"P{p:03d}",
                    "therapist_id": f"T{p % 5}",
                    "session": s,
                    "rater": rater,
                    "site": "X",
                }
                for m in MEASURES:
                    row[m] = float(np.clip(level + state + rng.normal(0, 0.1), 1, 5))
                rows.append(row)
    out = pd.DataFrame(rows)
    out["session"] = out["session"].astype("Int64")
    return out


def _write(tmp_path, scores, outcomes=None):
    ingest, sc = tmp_path / "ingest", tmp_path / "scores"
    ingest.mkdir()
    sc.mkdir()
    scores.to_parquet(sc / "scores.parquet")
    if outcomes is not None:
        outcomes.to_parquet(ingest / "outcomes.parquet")
    return ingest, sc, tmp_path / "ds" / "process"


def _outcomes(scores):
    client = scores[scores["rater"] == "client"]
    return pd.DataFrame(
        {
            "patient_id": client["patient_id"],
            "session": client["session"],
            "timepoint": "session",
            "measure": "phq9",
            "value": 10.0,
        }
    )


def test_run_two_raters(tmp_path, rng):
    scores = _scores(rng)
    ingest, sc, out = _write(tmp_path, scores, _outcomes(scores))
    summary = run_process_analyses(ingest, sc, out, {"planned_sessions": 6})
    for name in (
        "agreement.csv",
        "agreement.json",
        "ruptures_episodes.csv",
        "ruptures_patients.csv",
        "variance_components.json",
        "person_period.parquet",
        "summary.json",
        "figures/bland_altman.png",
        "figures/bland_altman.pdf",
        "figures/rupture_trajectories.png",
        "figures/rupture_trajectories.pdf",
    ):
        assert (out / name).exists(), name
    assert summary["dataset"] == "ds"
    assert summary["agreement"]["status"] == "ok"
    assert summary["ruptures"]["status"] == "ok"
    assert summary["ruptures"]["episodes"] >= 5
    assert summary["variance_components"]["status"] in {"ok", "warning", "not_converged"}
    assert summary["variance_components"]["corrected_shares"] is None  # no items: no alpha
    pp = summary["person_period"]
    assert pp["status"] == "ok" and pp["planned_sessions"] == 6
    assert pp["planned_sessions_source"].startswith("config")
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["ruptures"]["episodes"] == summary["ruptures"]["episodes"]
    with Image.open(out / "figures/bland_altman.png") as img:
        assert round(img.info["dpi"][0]) == 300
        assert img.size[0] == 2100  # 7 in double column at 300 dpi


def test_quarantined_records_make_no_dropout(tmp_path):
    """Issue 14 end to end (ingest, scores, process): P01's last session is a conflicting
    duplicate and P02's sessions 3 and 4 have a bad rater code and no therapist ID, so all
    these records are quarantined; both attended sessions 1-4 of 4 and did not drop out.
    P03's third record has session 3.5 (no session), so P03's last attended session is 2."""
    case = ROOT / "tests" / "data" / "bad_inputs" / "quarantined_rows_keep_attendance"
    ingest_dir, scores_dir = tmp_path / "ds" / "ingest", tmp_path / "ds" / "scores"
    ingest_to(case / "codebook.yaml", ingest_dir)
    score_dataset(ingest_dir, scores_dir)
    summary = run_process_analyses(ingest_dir, scores_dir, tmp_path / "ds" / "process")
    pp = pd.read_parquet(tmp_path / "ds" / "process" / "person_period.parquet")
    status = pp.groupby("patient_id").agg(
        last=("last_session", "first"), dropped=("dropped_out", "first"), events=("event", "sum")
    )
    assert status.to_dict("index") == {
        "P01": {"last": 4, "dropped": False, "events": 0},
        "P02": {"last": 4, "dropped": False, "events": 0},
        "P03": {"last": 2, "dropped": True, "events": 1},
        "P04": {"last": 4, "dropped": False, "events": 0},
    }
    assert summary["person_period"]["dropouts"] == 1
    assert summary["person_period"]["planned_sessions"] == 4
    assert summary["person_period"]["attendance_source"].startswith("attendance.parquet")
    observed = pp.groupby("patient_id")["alliance_observed"].apply(list).to_dict()
    assert observed["P01"] == [True, True, True, False]
    assert observed["P02"] == [True, True, False, False]
    assert pp["attended"].all()
    # the toy answers cycle through the scale, so alpha is negative: no correction, no crash
    assert any("outside [0, 1)" in w for w in summary["variance_components"]["warnings"])


def test_run_skips_what_the_data_do_not_support(tmp_path, rng):
    scores = _scores(rng, n_sessions=1, raters=("client",), drop=False)
    ingest, sc, out = _write(tmp_path, scores)
    summary = run_process_analyses(ingest, sc, out, None)
    assert summary["agreement"]["status"] == "skipped"
    assert "no therapist ratings" in summary["agreement"]["reason"]
    assert summary["ruptures"]["status"] == "skipped"
    assert "one session per patient" in summary["ruptures"]["reason"]
    assert summary["variance_components"]["status"] == "skipped"
    assert summary["person_period"]["status"] == "skipped"
    assert (out / "figures/bland_altman.png").exists()
    assert (out / "figures/rupture_trajectories.png").exists()
    assert pd.read_csv(out / "ruptures_episodes.csv").empty


def test_run_rejects_unknown_settings(tmp_path, rng):
    ingest, sc, out = _write(tmp_path, _scores(rng, n_patients=5))
    with pytest.raises(ValueError, match="unknown process setting"):
        run_process_analyses(ingest, sc, out, {"plannedsessions": 3})
    with pytest.raises(ValueError, match="unknown process.ruptures settings"):
        run_process_analyses(ingest, sc, out, {"ruptures": {"depth": 1}})
    with pytest.raises(ValueError, match="scores table not found"):
        run_process_analyses(ingest, tmp_path / "nowhere", out, {})


def test_run_rci_from_data_needs_items(tmp_path, rng):
    ingest, sc, out = _write(tmp_path, _scores(rng, n_patients=20, raters=("client",)))
    summary = run_process_analyses(ingest, sc, out, {"ruptures": {"threshold_type": "rci"}})
    assert summary["ruptures"]["status"] == "skipped"
    assert "rci needs" in summary["ruptures"]["reason"]
    given = {"threshold_type": "rci", "scale_sd": 0.7, "reliability": 0.9}
    summary = run_process_analyses(ingest, sc, out, {"ruptures": given})
    assert summary["ruptures"]["status"] == "ok"
    assert summary["ruptures"]["settings"]["rci_criterion"] == pytest.approx(0.6136, abs=1e-4)


def test_defaults_are_documented():
    assert DEFAULTS["ruptures"]["threshold"] == 2.0
    assert DEFAULTS["ruptures"]["repair_window"] == 2


def test_choose_patients_is_deterministic():
    episodes = pd.DataFrame(
        {
            "patient_id": ["B", "A", "C", "D", "A"],
            "rupture_session": [4, 3, 5, 6, 8],
            "status": ["repaired", "unrepaired", "repaired", "censored", "repaired"],
        }
    )
    assert choose_patients(episodes, 2) == ["A", "B"]  # one repaired (B), one other (A)
    assert choose_patients(episodes, 10) == ["A", "B", "C", "D"]
    assert choose_patients(episodes.iloc[:0], 3) == []
    with pytest.raises(ValueError, match="positive"):
        choose_patients(episodes, 0)
    with pytest.raises(ValueError, match="no patients"):
        rupture_trajectories_figure(pd.DataFrame(), episodes.iloc[:0])


def test_key_effects_figure_shows_whole_skip_reasons(tmp_path):
    from alliance.process.plots import key_effects_figure

    reason = (
        "no second rater: the scores have rater(s) ['client'], no 'therapist'; the rater "
        "model needs client and therapist ratings of the same sessions, which this export "
        "does not hold for any patient"
    )
    est = {"status": "pass", "reason": None, "eti95_low": -0.4, "eti95_high": -0.1}
    table = pd.DataFrame(
        [
            {**est, "model": "dropout", "effect": "or_alliance", "mean": 0.6,
             "label": "odds ratio of dropout (discrete-time hazard ratio) per SD of session "
             "alliance", "eti95_low": 0.5, "eti95_high": 0.7},
            {**est, "model": "growth", "effect": "b_level", "mean": -0.3,
             "label": "outcome (z) per SD of the early alliance level"},
            {"model": "rater_outcome", "status": "skipped", "effect": None, "label": None,
             "mean": None, "eti95_low": None, "eti95_high": None, "reason": reason},
        ]
    )  # fmt: skip
    fig = key_effects_figure(table, tmp_path / "key_effects")
    assert (tmp_path / "key_effects.png").is_file() and (tmp_path / "key_effects.pdf").is_file()
    (text,) = [a for a in fig.findobj() if a.get_gid() == "skip_rater_outcome"]
    assert text.get_text().replace("\n", " ") == f"Not estimated: {reason}"  # not cut off
    fig.canvas.draw()
    box = text.get_window_extent()
    width = fig.bbox.width
    assert box.x0 < 0.02 * width and box.x1 < width  # from the figure's left edge, inside it
    assert len(text.get_text().splitlines()) == 2  # wrapped to the figure width
    # the estimate labels are wrapped, so the panels keep most of the width
    plotted = [ax for ax in fig.axes if ax.axison]
    assert all(ax.get_position().x0 < 0.4 for ax in plotted)


def test_alpha_and_axis_come_from_the_dataset_instrument(tmp_path):
    """With ``instrument`` unset, alpha is that of the instrument the dataset was ingested with,
    its reverse-keyed items reversed as in the scores (here the WAI-SR's items under a user's
    key reversing two of them): before, it always took the WAI-SR's items as answered."""
    import yaml

    from alliance.data.instruments import load_instrument
    from alliance.describe.reliability import cronbach_alpha

    key = yaml.safe_load(Path(load_instrument("wai_sr").path).read_text())
    reversed_items = ["wai_03", "wai_05"]
    key |= {"name": "wai_sr_reversed", "reverse_keyed": reversed_items}
    (tmp_path / "reversed.yaml").write_text(yaml.safe_dump(key))
    codebook = yaml.safe_load((ROOT / "config" / "codebooks" / "site_b.yaml").read_text())
    codebook |= {"file": str(ROOT / "data" / "demo" / "site_b.sav"), "instrument": "reversed.yaml"}
    (tmp_path / "site_b.yaml").write_text(yaml.safe_dump(codebook))
    ingest, scores = tmp_path / "site_b" / "ingest", tmp_path / "site_b" / "scores"
    ingest_to(tmp_path / "site_b.yaml", ingest)
    score_dataset(ingest, scores)
    summary = run_process_analyses(ingest, scores, tmp_path / "site_b" / "process", {})
    assert summary["instrument"]["name"] == "wai_sr_reversed"
    items = pd.read_parquet(ingest / "items.parquet")
    client = items.loc[items["rater"] == "client", key["items"]].astype(float)
    expected = client.assign(**{c: 6.0 - client[c] for c in reversed_items})
    alpha = summary["variance_components"]["reliability"]
    assert alpha == pytest.approx(cronbach_alpha(expected)["raw_alpha"], abs=1e-12)
    assert abs(alpha - cronbach_alpha(client)["raw_alpha"]) > 0.01


def test_trajectories_without_a_scale_take_the_data_range(rng):
    """A score off the items' scale (a sum, a 0-40 total) is drawn on the data's range."""
    scores = _scores(rng, n_patients=12, raters=("client",))
    scores["total_mean"] = scores["total_mean"] * 8.0  # 8-40
    episodes = pd.DataFrame(
        {
            "patient_id": ["P000"],
            "rupture_session": [3],
            "status": ["unrepaired"],
            "pre_level": [30.0],
            "rupture_score": [20.0],
            "repair_session": [np.nan],
            "repair_score": [np.nan],
        }
    )
    fig = rupture_trajectories_figure(scores, episodes, patients=["P000"], scale=None)
    low, high = fig.axes[0].get_ylim()
    values = scores.loc[scores["patient_id"] == "P000", "total_mean"]
    assert low <= values.min() and high >= values.max() and high > 10
