"""The IRT stage and command: files written, failures as status, input errors exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.cli import main
from alliance.irt.stage import run_irt

DATA = Path(__file__).resolve().parents[1] / "data"

ITEMS = [f"w{i}" for i in range(1, 9)]


def test_pcm_stage_writes_the_erm_thresholds_and_flags(tmp_path):
    ref = json.loads((DATA / "erm" / "erm_pcm.json").read_text())["complete"]
    result = run_irt(DATA / "erm" / "pcm_items.csv", "pcm", tmp_path, items=ITEMS, by="none")
    table = pd.read_csv(tmp_path / "items.csv")
    cols = [f"threshold{k}" for k in range(1, 5)]
    np.testing.assert_allclose(table[cols].to_numpy().ravel(), ref["threshpar"], atol=2e-4)
    np.testing.assert_allclose(table["outfit_msq"], ref["itemfit"]["outfit_msq"], atol=5e-5)
    assert table.loc[~table["ordered"], "item"].tolist() == ["w4"]
    assert table.loc[table["item"] == "w4", "disordered"].item() == "2>3"
    for stem in ("category_curves", "threshold_map"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 0
    assert sum(result["scales"][0]["persons"]["histogram"]) == 400
    # no person's score or row is written
    text = (tmp_path / "irt.json").read_text()
    assert '"theta"' not in text


def test_a_scale_the_data_cannot_support_is_skipped_with_its_reason(tmp_path):
    data = pd.read_csv(DATA / "erm" / "pcm_items.csv")
    data["w9"] = 3  # one category only
    path = tmp_path / "items.csv"
    data.to_csv(path, index=False)
    result = run_irt(path, "grm", tmp_path / "out", items=[*ITEMS, "w9"], figures=False)
    fit = result["scales"][0]["fit"]
    assert fit["status"] == "skipped"
    assert "item 'w9' has fewer than 2 observed categories" in fit["reason"]
    table = pd.read_csv(tmp_path / "out" / "items.csv")
    assert set(table["status"]) == {"skipped"}
    assert "a" not in table.columns


def test_irt_command_input_errors_exit_2(tmp_path, capsys):
    data = pd.read_csv(DATA / "erm" / "pcm_items.csv")
    data.loc[6, "w2"] = 9
    path = tmp_path / "bad.csv"
    data.to_csv(path, index=False)
    args = ["irt", str(path), "--model", "pcm", "--items", "w1,w2", "--scale", "1-5"]
    args += ["--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "bad.csv: column 'w2', row 7: value 9 is not a category" in err
    assert "Traceback" not in err
    assert main(["irt", str(tmp_path / "none.csv"), "--model", "grm", "--out", "x"]) == 2
    assert main([*args[:-2], "--scale", "5-1", "--out", "x"]) == 2
    assert "--scale takes the lowest and highest category" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["irt", str(path), "--model", "rasch", "--out", "x"])


def test_wai_sr_ingest_folder_by_factor(tmp_path, wai_sr, item_simulator):
    """An ingested WAI-SR dataset: one GRM per factor (Bond, Goal, Task)."""
    items = item_simulator(wai_sr, n_patients=150, n_sessions=1, missing_share=0.02)
    folder = tmp_path / "ingest"
    folder.mkdir()
    items.to_parquet(folder / "items.parquet")
    report = {"kind": "items", "instrument": "wai_sr"}
    (folder / "ingest_report.json").write_text(json.dumps(report))
    result = run_irt(folder, "grm", tmp_path / "out", session=1, figures=False)
    assert [s["name"] for s in result["scales"]] == list(wai_sr.factors)
    assert all(s["fit"]["status"] == "converged" for s in result["scales"])
    assert "correlated factors" in result["dimensionality"]


def test_summary_rows_name_disordered_items_and_skipped_scales(tmp_path):
    from alliance.irt.summary import irt_rows

    base = tmp_path / "results" / "demo" / "irt"
    run_irt(DATA / "erm" / "pcm_items.csv", "pcm", base / "pcm", items=ITEMS, figures=False)
    data = pd.read_csv(DATA / "erm" / "pcm_items.csv").assign(w9=3)
    data.to_csv(tmp_path / "one_category.csv", index=False)
    run_irt(tmp_path / "one_category.csv", "grm", base / "grm", items=[*ITEMS, "w9"], figures=False)
    rows, warnings = irt_rows(tmp_path / "results", ["demo"])
    assert rows["Model"].tolist() == ["GRM", "PCM"]
    pcm = rows.iloc[1]
    assert pcm["Disordered thresholds"] == "w4"
    assert pcm["Item misfit"] == "none"  # every mean square of the reference within 0.6-1.4
    assert pcm["N"] == 400
    assert rows.iloc[0]["Status"] == "skipped"
    assert warnings == [
        "demo: GRM of items not fitted: one_category.csv: item 'w9' has fewer than 2 observed "
        "categories ([3]); an item response model cannot use it (leave it out with --items)"
    ]
