"""Person-period tables, the dropout rule and REML variance shares against known truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.process.trajectories import (
    PERSON_PERIOD_COLUMNS,
    dropout_status,
    person_period,
    planned_sessions,
    variance_components,
)

ROOT = Path(__file__).resolve().parents[2]


def _scores(courses: dict[str, list[float | None]]) -> pd.DataFrame:
    rows = [
        {"patient_id": p, "therapist_id": "T1", "session": s, "rater": "client", "total_mean": v}
        for p, c in courses.items()
        for s, v in enumerate(c, start=1)
        if v is not None
    ]
    out = pd.DataFrame(rows)
    out["session"] = out["session"].astype("Int64")
    return out


def test_planned_sessions_precedence():
    scores = _scores({"a": [4.0, 4.0, 4.0]})
    assert planned_sessions(12, scores) == (12, "config (process.planned_sessions)")
    assert planned_sessions(None, scores, [1, 2, 3, 4, 5]) == (5, "codebook sessions")
    assert planned_sessions(None, scores) == (3, "largest observed session")
    with pytest.raises(ValueError, match="positive integer"):
        planned_sessions(0, scores)


def test_person_period_rows_and_events():
    scores = _scores({"a": [4.0, 3.5, 4.5, 4.0], "b": [3.0, None, 2.0]})
    outcomes = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b", "b"],
            "session": pd.array([1, 2, 2, 3], dtype="Int64"),
            "timepoint": "session",
            "measure": "phq9",
            "value": [10.0, 9.0, 15.0, 16.0],
        }
    )
    pp = person_period(scores, 4, outcomes)
    assert list(pp.columns) == PERSON_PERIOD_COLUMNS
    a = pp[pp["patient_id"] == "a"]
    b = pp[pp["patient_id"] == "b"]
    assert len(a) == 4 and len(b) == 3
    assert a["event"].sum() == 0 and not a["dropped_out"].any()
    assert a["at_risk"].tolist() == [True, True, True, False]
    assert b["event"].tolist() == [0, 0, 1]  # last attended session 3 < planned 4
    assert b["alliance_observed"].tolist() == [True, False, True]  # session 2: outcome only
    assert b["alliance_lag1"].tolist()[2] != b["alliance_lag1"].tolist()[2]  # NaN lag
    assert a["alliance_lag1"].tolist()[1:] == [4.0, 3.5, 4.5]
    assert b["symptoms"].tolist()[1:] == [15.0, 16.0]
    assert a["alliance_within"].sum() == pytest.approx(0.0)
    z = (pp["alliance"] - scores["total_mean"].mean()) / scores["total_mean"].std()
    assert np.allclose(pp["alliance_z"], z, equal_nan=True)


def test_dropout_status_uses_outcome_rows():
    scores = _scores({"a": [4.0, 4.0]})
    outcomes = pd.DataFrame(
        {
            "patient_id": ["a"],
            "session": [3],
            "timepoint": ["session"],
            "measure": ["phq9"],
            "value": [5.0],
        }
    )
    st = dropout_status(scores, 3, outcomes)
    assert st.loc[0, "last_session"] == 3 and not st.loc[0, "dropped_out"]


def test_attendance_from_source_records():
    """Issue 14: a session whose records were all quarantined (a conflicting duplicate, a bad
    rater code) was attended; without attendance.parquet it looked like a dropout."""
    scores = _scores({"a": [4.0, 3.5, 4.5], "b": [3.0, 3.5, 4.0, 4.5], "c": [4.0, None, None, 3.0]})
    attendance = pd.DataFrame(
        {
            "patient_id": pd.array(["a", "a", "a", "a", "c", "x"], dtype="string"),
            "session": pd.array([1, 2, 3, 4, 4, 2], dtype="Int64"),
            "rater": pd.array(["client"] * 3 + [pd.NA, "client", "client"], dtype="string"),
            "records": [1, 1, 1, 2, 1, 1],
            "kept": [True, True, True, False, True, False],
        }
    )
    old = person_period(scores, 4)
    assert old.loc[old["patient_id"] == "a", "event"].tolist() == [0, 0, 1]  # a false dropout
    pp = person_period(scores, 4, attendance=attendance)
    assert sorted(pp["patient_id"].unique()) == ["a", "b", "c"]  # x: no kept record
    assert pp["event"].sum() == 0 and not pp["dropped_out"].any()
    a, c = pp[pp["patient_id"] == "a"], pp[pp["patient_id"] == "c"]
    assert a["session"].tolist() == [1, 2, 3, 4]
    assert a["attended"].all()
    assert a["alliance_observed"].tolist() == [True, True, True, False]
    assert a["last_session"].tolist() == [4] * 4
    # c's sessions 2 and 3 have no record at all: at risk, not attended
    assert c["attended"].tolist() == [True, False, False, True]
    assert c["at_risk"].tolist() == [True, True, True, False]
    status = dropout_status(scores, 4, attendance=attendance).set_index("patient_id")
    assert status["last_session"].to_dict() == {"a": 4, "b": 4, "c": 4}


def _three_level(rng, shares, n_t=40, n_p=12, n_s=8) -> pd.DataFrame:
    u = rng.normal(0, np.sqrt(shares[0]), n_t)
    rows = []
    for j in range(n_t):
        for i in range(n_p):
            p = rng.normal(0, np.sqrt(shares[1]))
            for s in range(1, n_s + 1):
                y = 4 + u[j] + p + rng.normal(0, np.sqrt(shares[2]))
                rows.append(
                    {
                        "patient_id": f"T{j}P{i}",
                        "therapist_id": f"T{j}",
                        "session": s,
                        "rater": "client",
                        "total_mean": y,
                    }
                )
    return pd.DataFrame(rows)


def test_variance_components_recover_known_shares(rng):
    data = _three_level(rng, (0.10, 0.60, 0.30))
    res = variance_components(data)
    assert res["status"] == "ok", res["warnings"]
    assert res["model"] == "three-level"
    assert res["converged"]
    # tolerances ~2.5 SE: therapist var from 40 therapists, patient var from 480 patients
    assert res["variances"]["therapist"] == pytest.approx(0.10, abs=0.06)
    assert res["variances"]["patient"] == pytest.approx(0.60, abs=0.11)
    assert res["variances"]["session"] == pytest.approx(0.30, abs=0.03)
    assert res["shares"]["session"] == pytest.approx(0.30, abs=0.04)
    assert res["between_patient_share"] == pytest.approx(0.70, abs=0.04)


def test_variance_components_reliability_correction(rng):
    data = _three_level(rng, (0.10, 0.60, 0.30), n_t=20, n_p=10, n_s=6)
    res = variance_components(data, reliability=0.9)
    err = 0.1 * data["total_mean"].var()
    assert res["error_variance"] == pytest.approx(err)
    corrected = res["corrected_shares"]
    assert sum(corrected.values()) == pytest.approx(1.0)
    assert corrected["session"] < res["shares"]["session"]
    with pytest.raises(ValueError, match="reliability"):
        variance_components(data, reliability=1.0)


def test_variance_components_two_level_and_skip(rng):
    data = _three_level(rng, (0.0, 0.6, 0.4), n_t=1, n_p=60, n_s=4)
    res = variance_components(data)
    assert res["model"] == "two-level"
    assert res["shares"]["therapist"] is None
    assert "therapist" in res["reason"]
    assert res["status"] in {"ok", "warning", "not_converged"}
    one = data[data["session"] == 1]
    skipped = variance_components(one)
    assert skipped["status"] == "skipped"
    assert "one rated session" in skipped["reason"]


@pytest.fixture(scope="module")
def site_a(demo_results) -> dict:
    built = demo_results("site_a")
    paths = {
        "scores": built / "scores" / "scores.parquet",
        "outcomes": built / "ingest" / "outcomes.parquet",
        "truth": ROOT / "data/demo/truth_patients.csv",
        "truth_json": ROOT / "data/demo/truth.json",
    }
    return {
        "items": pd.read_parquet(built / "ingest" / "items.parquet"),
        "scores": pd.read_parquet(paths["scores"]),
        "outcomes": pd.read_parquet(paths["outcomes"]),
        "truth": pd.read_csv(paths["truth"]),
        "truth_json": json.loads(paths["truth_json"].read_text()),
    }


def test_demo_dropout_matches_truth(site_a):
    planned, _ = planned_sessions(None, site_a["scores"])
    assert planned == site_a["truth_json"]["design"]["n_sessions"]
    st = dropout_status(site_a["scores"], planned, site_a["outcomes"])
    truth = site_a["truth"][site_a["truth"]["dataset"] == "site_a"]
    merged = st.merge(truth, on="patient_id", suffixes=("", "_true"))
    assert len(merged) == len(truth)
    assert (merged["last_session"] == merged["last_session_true"]).mean() >= 0.99
    assert (merged["dropped_out"] == merged["dropped_out_true"]).mean() >= 0.99


def test_demo_lagged_alliance_predicts_dropout(site_a):
    """Sanity check of the person-period table: lower alliance, higher hazard (truth -0.7)."""
    import statsmodels.api as sm

    pp = person_period(site_a["scores"], 12, site_a["outcomes"])
    rows = pp[pp["at_risk"] & pp["alliance_observed"]]
    x = sm.add_constant(rows[["alliance_z"]].to_numpy(dtype=float))
    fit = sm.GLM(rows["event"].to_numpy(dtype=float), x, family=sm.families.Binomial()).fit()
    slope, (_lo, hi) = fit.params[1], fit.conf_int()[1]
    assert hi < 0
    assert -1.2 < slope < -0.3


def test_demo_variance_shares_match_truth(site_a):
    """REML shares of the observed client total vs truth.json (latent composite A).

    truth: therapist .06, patient .70, session .24 of the latent composite, rupture dips
    counted as session variance (simulate.py docstring). The observed total mean also holds
    item measurement error, which is session-level: raw session share is higher (~.30);
    after subtracting (1 - alpha) Var(y) the shares come back to the truth.
    """
    from alliance.describe.reliability import cronbach_alpha

    items = site_a["items"]
    items = items[items["rater"] == "client"]
    alpha = cronbach_alpha(items[[c for c in items if c.startswith("wai_")]].astype(float))
    res = variance_components(site_a["scores"], reliability=alpha["raw_alpha"])
    truth = site_a["truth_json"]["alliance"]["variance_shares"]
    assert res["status"] == "ok"
    assert res["shares"]["session"] > truth["session"]
    corrected = res["corrected_shares"]
    assert corrected["therapist"] == pytest.approx(truth["therapist"], abs=0.04)
    assert corrected["patient"] == pytest.approx(truth["patient"], abs=0.05)
    assert corrected["session"] == pytest.approx(truth["session"], abs=0.03)
