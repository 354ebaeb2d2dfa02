from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.bayes.data import load_tables, patient_data, session_data


def toy_tables(rng: np.random.Generator, n: int = 40) -> dict[str, pd.DataFrame]:
    rows, outs = [], []
    for i in range(n):
        last = 2 if i == 0 else (5 if i % 4 else 4)  # patient 0 has no score after session 3
        for s in range(1, last + 1):
            rows.append(
                {
                    "patient_id": f"P{i:02d}",
                    "therapist_id": f"T{i % 5}",
                    "session": s,
                    "rater": "client",
                    "total_mean": 3 + rng.normal(),
                }
            )
            outs.append(
                {
                    "patient_id": f"P{i:02d}",
                    "session": s,
                    "timepoint": "session",
                    "measure": "phq9",
                    "value": float(20 - s - i % 3),
                }
            )
    scores = pd.DataFrame(rows)
    scores.loc[len(scores)] = {
        "patient_id": "P01",
        "therapist_id": "T1",
        "session": 3,
        "rater": "therapist",
        "total_mean": 1.0,
    }
    return {"scores": scores, "outcomes": pd.DataFrame(outs)}


def test_patient_rules(rng):
    d = patient_data(toy_tables(rng), alliance_session=3)
    f = d.frame.set_index("patient_id")
    assert "P00" not in f.index and d.info["excluded"]["no_post"] == 1
    assert f.loc["P01", "post_session"] == 5 and f.loc["P04", "post_session"] == 4
    assert f.loc["P01", "post"] == 20 - 5 - 1 and f.loc["P01", "baseline"] == 20 - 1 - 1
    # the therapist's row is not the client's alliance
    assert f.loc["P01", "alliance"] != 1.0
    assert np.isclose(f["z_alliance"].mean(), 0) and np.isclose(f["z_alliance"].std(), 1)
    assert np.allclose(f["a_within"] + f["a_between"], f["z_alliance"])
    assert np.allclose(f.groupby("therapist_id")["a_within"].mean(), 0)
    assert np.isclose(f["y"].std() * d.scales["baseline_sd"], f["post"].std())
    assert d.coords["therapist"] == sorted(f["therapist_id"].unique())
    assert "last observed" in d.info["post"]


def test_fixed_post_timepoint_wins(rng):
    t = toy_tables(rng)
    post = pd.DataFrame(
        {
            "patient_id": ["P01", "P02"],
            "session": [None, None],
            "timepoint": "post",
            "measure": "phq9",
            "value": [3.0, 4.0],
        }
    )
    t["outcomes"] = pd.concat([t["outcomes"], post], ignore_index=True)
    with pytest.raises(ValueError, match="fewer than 10 patients"):
        patient_data(t)  # only two patients have the fixed post score


def test_session_rows_are_lagged(rng):
    d = session_data(toy_tables(rng))
    f = d.frame
    assert (f["next"] == f["now"] - 1).all()  # next session's score, here one point lower
    assert f.groupby("patient_id")["session"].max().max() == 4
    assert np.allclose(f.groupby("patient_id")["a_within"].mean(), 0)


def test_invalid_arguments(rng):
    with pytest.raises(ValueError, match="alliance_session must be a positive whole number"):
        patient_data(toy_tables(rng), alliance_session=0)
    with pytest.raises(ValueError, match="score column"):
        patient_data(toy_tables(rng), score="nope")
    with pytest.raises(ValueError, match="need the table 'outcomes'"):
        load_tables({"scores": toy_tables(rng)["scores"]})
    with pytest.raises(ValueError, match="does not exist"):
        load_tables("/nonexistent/folder")


def test_demo_counts(demo_tables):
    d = patient_data(demo_tables("site_b"))
    assert d.info["n_patients"] > 250 and d.info["n_therapists"] == 15
    assert d.info["alliance"] == "client total_mean at session 3"


def test_scores_of_an_unscored_ingest_folder_use_its_instrument(tmp_path, wai_sr, item_simulator):
    """An ingest folder without scores is scored with the instrument it was ingested with (its
    report's instrument file), not with the WAI-SR key: here a custom two-factor key."""
    import json

    import yaml

    custom = tmp_path / "two_factor.yaml"
    key = yaml.safe_load(Path(wai_sr.path).read_text())
    key |= {
        "name": "two_factor_custom",
        "factors": {"rapport": key["items"][:6], "work": key["items"][6:]},
    }
    custom.write_text(yaml.safe_dump(key))
    ingest = tmp_path / "ingest"
    ingest.mkdir()
    items = item_simulator(wai_sr, n_patients=20, n_sessions=1, missing_share=0.0)
    items.to_parquet(ingest / "items.parquet")
    outcomes = pd.DataFrame(
        {"patient_id": ["P1"], "session": [1], "timepoint": "post", "measure": "phq9"}
    ).assign(value=3.0)
    outcomes.to_parquet(ingest / "outcomes.parquet")
    report = {"kind": "items", "instrument": "two_factor_custom", "instrument_file": str(custom)}
    (ingest / "ingest_report.json").write_text(json.dumps(report))
    scores = load_tables(ingest)["scores"]
    assert {"rapport_mean", "work_mean", "total_mean"} <= set(scores.columns)
    assert "bond_mean" not in scores.columns
    expected = items[key["items"][:6]].mean(axis=1)
    np.testing.assert_allclose(scores["rapport_mean"], expected)
