"""The workflow's WLSMV ladder with empty categories: cfa.invariance.collapse_empty_categories.

On (the default) the ladder runs on collapsed categories and lists the merges in its notes,
its table note and the summary; off, the failure is a status, as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate

from alliance.cfa.stage import run_invariance, write_invariance_report
from alliance.report.summary import _cfa_methods, cfa_section

ROOT = Path(__file__).parents[1]
RAW = ROOT / "tests" / "data" / "lavaan" / "collapse" / "wai_empty.csv"
ITEMS = [f"wai_{i:02d}" for i in range(1, 13)]


def ingest_folder(tmp_path: Path) -> Path:
    """An ingest folder holding tests/data/lavaan/collapse/wai_empty.csv (site B lacks a 1)."""
    data = pd.read_csv(RAW)
    folder = tmp_path / "ingest"
    folder.mkdir()
    rows = data[ITEMS].astype("Float64")
    rows.insert(0, "patient_id", data["id"].astype(str))
    rows.insert(1, "therapist_id", "t")
    rows.insert(2, "session", 3)
    rows.insert(3, "rater", "client")
    rows.insert(4, "source_row", range(1, len(data) + 1))
    rows["site"] = data["site"]
    rows.to_parquet(folder / "items.parquet")
    report = {"dataset": "x", "kind": "items", "instrument": "wai_sr"}
    (folder / "ingest_report.json").write_text(json.dumps(report))
    return folder


def test_config_default_is_on():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    inv = schema["properties"]["cfa"]["properties"]["invariance"]["properties"]
    assert inv["collapse_empty_categories"] == {"type": "boolean", "default": True}
    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert demo["cfa"]["invariance"]["collapse_empty_categories"] is True
    validate(demo, schema=str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    del demo["cfa"]["invariance"]["collapse_empty_categories"]
    validate(demo, schema=str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    assert demo["cfa"]["invariance"]["collapse_empty_categories"] is True  # the default


def test_ladder_collapses_and_reports(tmp_path):
    folder = ingest_folder(tmp_path)
    ladder = run_invariance(folder, "correlated", "site", "WLSMV")
    assert ladder["status"] == {"ok": True}
    merged = [(r["item"], r["category"], r["merged_into"]) for r in ladder["collapsed_categories"]]
    assert ("wai_03", 1.0, 2.0) in merged and ("wai_05", 2.0, 1.0) in merged
    assert any(n.startswith("Ordered categories without responses") for n in ladder["notes"])
    results = tmp_path / "results"
    (results / "pooled" / "cfa").mkdir(parents=True)
    path = results / "pooled" / "cfa" / "invariance_site_WLSMV.json"
    path.write_text(json.dumps(ladder))
    write_invariance_report(path, "WLSMV", tmp_path / "tables", tmp_path / "figures")
    table = (tmp_path / "tables" / "invariance_site_WLSMV.md").read_text()
    assert "wai_03: 1 -> 2 (empty in B)" in table
    text, warnings = cfa_section(results, ["pooled"])
    assert "Collapsed categories (pooled, across site, WLSMV" in text
    assert "wai_05: 2 -> 1 (empty in B)" in text
    assert not warnings


def test_ladder_off_keeps_the_error_status(tmp_path):
    folder = ingest_folder(tmp_path)
    ladder = run_invariance(folder, "correlated", "site", "WLSMV", collapse_empty_categories=False)
    assert ladder["status"]["ok"] is False
    assert "has empty categories" in ladder["status"]["error"]
    assert "collapse_empty_categories=True" in ladder["status"]["error"]


def test_methods_paragraph_mentions_collapsing():
    config = {
        "cfa": {
            "enabled": True,
            "estimators": ["WLSMV"],
            "models": ["correlated"],
            "invariance": {"groups": {"dataset": ["pooled"]}, "collapse_empty_categories": True},
        }
    }
    assert "merged with an adjacent category" in _cfa_methods(config)
    config["cfa"]["invariance"]["collapse_empty_categories"] = False
    assert "merged with an adjacent category" not in _cfa_methods(config)
