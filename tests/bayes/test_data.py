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
