"""Rater invariance in the workflow (issue 3): the client vs therapist ladder of demo site_a.

The sample is built from the committed demo data (``demo_results`` ingests site_a afresh) by
:func:`alliance.cfa.stage.invariance_sample`: one row per patient x rater at session 3, client
first. ``tests/data/lavaan/rater_site_a/rater_site_a.csv`` is that sample as lavaan saw it
(688 rows: since issue 14 a bad answer quarantines its cell, so A0032's session-3 client row,
source row 487 with wai_10 = 3.5, is kept with wai_10 missing) and
``lavaan_rater_invariance.json`` lavaan 0.6-14's ladder on it
(``make_rater_invariance.R``: MLR with FIML, WLSMV with ordered items and pairwise deletion,
as ``config/config.yaml``). Tolerances as ``tests/data/lavaan``: chi-squares within 0.01 (MLR)
or 1% (WLSMV, scaled), indices within 1e-3 (2e-3 for WLSMV); measured differences are far
smaller (chi-squares: MLR 7e-6, WLSMV 2e-6; estimates 7e-6).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.cfa.stage import DEPENDENCE_NOTE, invariance_sample, run_invariance

REF_DIR = Path(__file__).parent / "data" / "lavaan" / "rater_site_a"
REF = json.loads((REF_DIR / "lavaan_rater_invariance.json").read_text())
ITEMS = [f"wai_{i:02d}" for i in range(1, 13)]
STEPS = {
    "MLR": ("configural", "metric", "scalar", "strict"),
    "WLSMV": ("configural", "metric", "scalar"),
}
CHISQ_TOL = {"MLR": {"abs": 0.01}, "WLSMV": {"rel": 0.01}}
INDEX_TOL = {"MLR": 1e-3, "WLSMV": 2e-3}


@pytest.fixture(scope="module")
def site_a_ingest(demo_results) -> Path:
    return demo_results("site_a") / "ingest"


def test_rater_sample_is_one_row_per_patient_and_rater(site_a_ingest):
    data, _, sample = invariance_sample(site_a_ingest, "rater", session=3, rater="client")
    assert list(pd.unique(data["rater"])) == ["client", "therapist"]
    assert not data.duplicated(["patient_id", "rater"]).any()
    assert (data["session"] == 3).all()
    assert sample["n_rows_used"] == len(data) == 688
    assert sample["n_patients_all_groups"] == 344
    assert set(sample["per_group"]) == {"client", "therapist"}
    assert sample["note"] == DEPENDENCE_NOTE
    # the row kept since issue 14 (source row 487), with its quarantined cell missing
    kept = data[(data["patient_id"] == "A0032") & (data["rater"] == "client")]
    assert len(kept) == 1 and pd.isna(kept["wai_10"].iloc[0])
    # the very rows lavaan was given
    ref = pd.read_csv(REF_DIR / "rater_site_a.csv")
    for column in ("patient_id", "rater"):
        assert data[column].astype(str).tolist() == ref[column].astype(str).tolist()
    np.testing.assert_array_equal(
        data[ITEMS].to_numpy(dtype=float, na_value=np.nan), ref[ITEMS].to_numpy(dtype=float)
    )


def test_site_grouping_keeps_one_row_per_patient(site_a_ingest):
    data, _, sample = invariance_sample(site_a_ingest, "site", session=3, rater="client")
    assert (data["rater"] == "client").all()
    assert data["patient_id"].is_unique
    assert "note" not in sample


@pytest.mark.parametrize("estimator", ["MLR", "WLSMV"])
def test_rater_ladder_matches_lavaan(site_a_ingest, estimator):
    ladder = run_invariance(site_a_ingest, "correlated", "rater", estimator, session=3)
    assert ladder["status"]["ok"], ladder["status"]
    assert DEPENDENCE_NOTE in ladder["notes"]
    ref = REF[estimator]
    for step in STEPS[estimator]:
        ours, theirs = ladder[step], ref[step]
        assert ours["group_labels"] == theirs["group_labels"] == ["client", "therapist"]
        assert ours["nobs"] == theirs["nobs"]
        assert ours["fit"]["df"] == theirs["fit"]["df"]
        for key in ("chisq", "chisq.scaled"):
            assert ours["fit"][key] == pytest.approx(theirs["fit"][key], **CHISQ_TOL[estimator])
        for key in ("cfi.scaled", "rmsea.scaled", "srmr"):
            assert ours["fit"][key] == pytest.approx(theirs["fit"][key], abs=INDEX_TOL[estimator])
    ref_lrt = {r["model"]: r for r in ref["lrt"]}
    for row in ladder["lrt"]["table"][1:]:
        theirs = ref_lrt[row["model"]]
        assert row["Df_diff"] == theirs["Df_diff"]
        assert row["Chisq_diff"] == pytest.approx(theirs["Chisq_diff"], rel=0.01)


def test_rater_grouping_needs_two_raters(tmp_path, site_a_ingest):
    items = pd.read_parquet(site_a_ingest / "items.parquet")
    folder = tmp_path / "ingest"
    folder.mkdir()
    items[items["rater"] == "client"].to_parquet(folder / "items.parquet")
    for name in ("ingest_report.json",):
        (folder / name).write_text((site_a_ingest / name).read_text())
    ladder = run_invariance(folder, "correlated", "rater", "MLR")
    assert ladder["status"]["ok"] is False
    assert "at least two raters" in ladder["status"]["error"]


def test_cli_rater_ladder_theta_has_strict(tmp_path):
    # alliance cfa on lavaan's copy of the sample, WLSMV theta: configural..strict as lavaan
    from alliance.cli import main

    ref = json.loads((REF_DIR.parent / "extra" / "rater_wlsmv_theta_invariance.json").read_text())[
        "invariance"
    ]
    out = tmp_path / "fit.json"
    args = [
        "cfa", str(REF_DIR / "rater_site_a.csv"), "--model", str(REF_DIR / "correlated.lav"),
        "--estimator", "WLSMV", "--group", "rater", "--parameterization", "theta",
        "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    ladder = json.loads(out.read_text())["invariance"]
    assert ladder["parameterization"] == "theta"
    for step in ("configural", "metric", "scalar", "strict"):
        fit, want = ladder[step]["fit"], ref[step]["fit"]
        assert fit["df"] == want["df"]
        assert fit["chisq.scaled"] == pytest.approx(want["chisq.scaled"], rel=0.01)
        assert fit["cfi.scaled"] == pytest.approx(want["cfi.scaled"], abs=2e-3)
        assert fit["rmsea.scaled"] == pytest.approx(want["rmsea.scaled"], abs=2e-3)


def test_stage_wlsmv_theta_ladder_has_strict(site_a_ingest):
    # the workflow's setting (cfa.invariance.parameterization: theta) on the demo sample
    ref = json.loads((REF_DIR.parent / "extra" / "rater_wlsmv_theta_invariance.json").read_text())[
        "invariance"
    ]
    ladder = run_invariance(
        site_a_ingest, "correlated", "rater", "WLSMV", session=3, parameterization="theta"
    )
    assert ladder["status"]["ok"], ladder["status"]
    assert ladder["parameterization"] == "theta"
    for step in ("configural", "metric", "scalar", "strict"):
        assert ladder[step]["fit"]["df"] == ref[step]["fit"]["df"]
        assert ladder[step]["fit"]["chisq.scaled"] == pytest.approx(
            ref[step]["fit"]["chisq.scaled"], rel=0.01
        )
    assert ladder["decisions"]["strict"]["invariant"] is True
