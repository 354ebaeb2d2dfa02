"""The MASEM and IPD stages: files, skips with reasons, summary lines, the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.cli import main
from alliance.meta.ipd_stage import run_ipd
from alliance.meta.masem import pool_fixed
from alliance.meta.masem_stage import item_correlations, read_matrices, run_masem
from alliance.report.summary import ipd_summary_rows, masem_summary
from alliance.tables import read_csv

DATA = Path(__file__).parent / "data" / "masem"
MODELS = {"models": ["one_factor", "two_factor", "correlated"], "methods": ["fixed"]}


def ingest_folder(root: Path, name: str, items: pd.DataFrame) -> Path:
    """A minimal ingest output folder: the tidy items table and its report."""
    folder = root / name / "ingest"
    folder.mkdir(parents=True)
    items.to_parquet(folder / "items.parquet")
    report = {"kind": "items", "instrument": "wai_sr", "dataset": name}
    (folder / "ingest_report.json").write_text(json.dumps(report))
    return folder


@pytest.fixture
def two_sites(tmp_path, wai_sr, make_items) -> dict[str, Path]:
    return {
        "clinic_a": ingest_folder(tmp_path, "clinic_a", make_items(wai_sr, 90, 3, seed=1)),
        "clinic_b": ingest_folder(tmp_path, "clinic_b", make_items(wai_sr, 70, 3, seed=2)),
    }


def test_item_correlations_are_the_cfa_sample(two_sites, wai_sr):
    inputs = item_correlations(two_sites, session=3, rater="client")
    assert inputs["datasets"] == ["clinic_a", "clinic_b"]
    assert inputs["variables"] == list(wai_sr.items)
    items = pd.read_parquet(two_sites["clinic_a"] / "items.parquet")
    rows = items[(items["rater"] == "client") & (items["session"] == 3)]
    complete = rows[list(wai_sr.items)].dropna().to_numpy(float)
    assert inputs["n"][0] == len(complete)
    assert inputs["matrices"][0] == pytest.approx(np.corrcoef(complete, rowvar=False))


def test_run_masem_writes_json_and_tables(two_sites, tmp_path):
    out = tmp_path / "results" / "meta" / "masem"
    result = run_masem(two_sites, out, MODELS, session=3, rater="client")
    assert result["status"] == "ok"
    saved = json.loads((out / "masem.json").read_text())
    assert saved["model_order"] == ["one_factor", "two_factor", "correlated"]
    inputs = item_correlations(two_sites)
    fixed = pool_fixed(inputs["matrices"], inputs["n"], inputs["variables"])
    assert saved["stage1"]["fixed"]["fit"]["chisq"] == pytest.approx(fixed["fit"]["chisq"])
    fit = read_csv(out / "fit.csv")
    assert fit["model"].tolist() == ["one_factor", "two_factor", "correlated"]
    assert set(fit["method"]) == {"fixed"}
    assert (out / "fit.md").is_file()
    assert len(read_csv(out / "correlations.csv")) == 66
    comparisons = read_csv(out / "comparisons.csv")
    assert comparisons[["restricted", "general"]].values.tolist() == [
        ["one_factor", "two_factor"],
        ["two_factor", "correlated"],
        ["one_factor", "correlated"],
    ]
    params = read_csv(out / "parameters.csv")
    assert {"=~", "~~"} <= set(params["op"])
    # alliance verify can key every number of every file (rows of tables, items of lists)
    from alliance.verify import entries_in

    for name in ("masem.json", "fit.csv", "correlations.csv", "parameters.csv", "comparisons.csv"):
        entries = entries_in(out / name, f"meta/masem/{name}")
        assert entries and all(e["kind"] != "monte_carlo" for e in entries.values())
    # the summary paragraph: the homogeneity test, the fit table, the nested tests
    text, warnings = masem_summary(tmp_path / "results")
    assert "over the item correlations of 2 datasets" in text
    assert "| fixed | one_factor | ok |" in text
    assert "one_factor vs two_factor (fixed): chisq_diff(1)" in text
    assert warnings == []


def test_one_dataset_is_skipped_with_its_reason(two_sites, tmp_path):
    out = tmp_path / "meta" / "masem"
    result = run_masem({"clinic_a": two_sites["clinic_a"]}, out, MODELS)
    assert result["status"] == "skipped"
    assert "at least two correlation matrices, got 1" in result["reason"]
    assert read_csv(out / "fit.csv").empty
    assert "Not run" in (out / "fit.md").read_text()
    text, _ = masem_summary(tmp_path)
    assert text.startswith("MASEM not run: MASEM needs at least two correlation matrices")


def test_matrices_file_and_command_line(tmp_path, capsys):
    inputs = read_matrices(DATA / "wai_correlations.json", instrument="wai_sr")
    assert len(inputs["matrices"]) == 6
    code = main(
        [
            "masem",
            str(DATA / "wai_correlations.json"),
            "--out",
            str(tmp_path / "cli"),
            "--model",
            "one_factor",
            "--model",
            "correlated",
            "--method",
            "fixed",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "MASEM over 6 samples (N = 1620)" in printed
    assert "fixed  correlated: chisq(51) = 38.80" in printed  # lavaan: 38.7980
    code = main(["masem", str(DATA / "craft2003.json"), "--out", str(tmp_path / "x")])
    assert code == 2  # the craft variables are not the WAI-SR items
    assert "are not the items of wai_sr" in capsys.readouterr().err


def test_ipd_without_two_usable_sites_is_skipped_with_the_two_stage_result(tmp_path):
    sources, effects = {}, {}
    for name, n in (("a", 30), ("b", 4)):  # b: too few patients for any model
        root = tmp_path / name
        (root / "ingest").mkdir(parents=True)
        (root / "scores").mkdir()
        ids = [f"{name}{k}" for k in range(n)]
        pd.DataFrame(
            {"patient_id": ids, "session": 3, "rater": "client", "total_mean": np.arange(n) % 5}
        ).to_parquet(root / "scores" / "scores.parquet")
        rows = [
            {"patient_id": i, "measure": "phq9", "session": s, "timepoint": "session",
             "value": float((k * s) % 27)}
            for k, i in enumerate(ids)
            for s in (1, 6)
        ]  # fmt: skip
        pd.DataFrame(rows).to_parquet(root / "ingest" / "outcomes.parquet")
        sources[name] = root
        effects[name] = root / "effect.json"
        effects[name].write_text(json.dumps({"r": 0.3, "n": 100}))
    result = run_ipd(sources, effects, tmp_path / "ipd")
    assert result["status"] == "skipped"
    assert "at least two sites" in result["reason"]
    assert result["excluded"] == {
        "b": "fewer than 10 patients with alliance, baseline and outcome, got 4"
    }
    assert result["two_stage"]["k"] == 2
    assert read_csv(tmp_path / "ipd" / "summary.csv").empty
    saved = json.loads((tmp_path / "ipd" / "ipd.json").read_text())
    assert saved["status"] == "skipped"


def test_ipd_summary_rows_side_by_side(tmp_path):
    folder = tmp_path / "meta" / "ipd"
    folder.mkdir(parents=True)
    eff = {"mean": -0.2, "eti95_low": -0.3, "eti95_high": -0.1}
    doc = {
        "status": "fail",
        "two_stage": {
            "status": "ok",
            "k": 3,
            "pooled_r": {"estimate": 0.342, "ci.lb": 0.281, "ci.ub": 0.399},
            "tau": 0.0,
        },
        "bayes": {
            "status": "fail",
            "diagnostics": {"failures": ["2 divergent transitions"]},
            "effects": {"r_pooled_improvement": eff, "mu_b": eff, "tau_b": eff},
            "data": {"sites": {"a": {}, "b": {}, "c": {}}},
        },
    }
    (folder / "ipd.json").write_text(json.dumps(doc))
    rows, warnings = ipd_summary_rows(tmp_path)
    assert rows[0] == (
        "IPD two-stage: pooled r of the 3 item datasets [95% CI]; tau (z)",
        ".342 [.281, .399]; .000",
    )
    assert rows[1][0] == "IPD one-stage (Bayesian, 3 sites): pooled r [95% ETI]"
    assert "(diagnostics fail)" in rows[1][1]
    assert warnings == [
        "meta-analysis: the one-stage IPD model failed its diagnostics: 2 divergent transitions"
    ]


def test_methods_paragraph_names_masem_and_ipd():
    from alliance.report.summary import methods_paragraph, versions

    meta = {
        "enabled": True,
        "masem": {"enabled": True, "methods": ["random"], "models": ["one_factor", "bifactor"]},
        "ipd": {"enabled": True},
    }
    text = methods_paragraph({"seed": 1, "meta": meta}, versions())
    assert "(Cheung & Chan 2005; stage 1: random effects)" in text
    assert "the models one_factor, bifactor were fitted to the pooled matrix" in text
    assert "A one-stage Bayesian IPD model" in text
    meta["masem"]["enabled"] = meta["ipd"]["enabled"] = False
    assert "Cheung" not in methods_paragraph({"seed": 1, "meta": meta}, versions())
