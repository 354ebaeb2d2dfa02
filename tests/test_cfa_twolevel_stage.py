"""Rule cfa_twolevel's stage: sessions within patients of an ingested dataset (issue 17 part 3).

The two-level engine itself is tested against lavaan in tests/sem/test_sem_twolevel.py; here:
the model built from the instrument model, the session rows and their counts, the skip
reasons, the table and the summary section, the config schema.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from alliance.cfa.twolevel import run_dataset, twolevel_syntax, twolevel_table, write_table
from alliance.sem.syntax import model_variables, parse_syntax, split_levels

TWO_FACTOR = "bond =~ b1 + b2 + b3\ngoal_task =~ g1 + g2 + t1 + t2"


def test_syntax_renames_factors_by_whole_name() -> None:
    text = twolevel_syntax(TWO_FACTOR, "same")
    blocks = split_levels(text)
    ov_w, lv_w = model_variables(parse_syntax(blocks[1]))
    ov_b, lv_b = model_variables(parse_syntax(blocks[2]))
    assert lv_w == ["bond_w", "goal_task_w"] and lv_b == ["bond_b", "goal_task_b"]
    assert ov_w == ov_b == ["b1", "b2", "b3", "g1", "g2", "t1", "t2"]
    one = split_levels(twolevel_syntax(TWO_FACTOR))
    assert one[2].strip() == "general_b =~ b1 + b2 + b3 + g1 + g2 + t1 + t2"
    with pytest.raises(ValueError, match="between must be one of.*got 'two'"):
        twolevel_syntax(TWO_FACTOR, "two")


def test_dataset_fit_counts_sessions_and_patients(demo_results, tmp_path: Path) -> None:
    from alliance.data.tidy import read_ingested

    ingest = demo_results("site_a") / "ingest"
    result = run_dataset(ingest, "correlated", "MLR", dataset_name="site_a")
    assert result["state"] == "fitted", result.get("reason")
    items, instrument, _ = read_ingested(ingest)
    client = items[items["rater"].astype(str) == "client"]
    names = list(instrument.items)
    complete = client.dropna(subset=names)
    data = result["data"]
    assert data["sessions"] == len(complete) == result["ntotal"]
    assert data["sessions_incomplete_dropped"] == len(client) - len(complete)
    assert data["patients"] == complete["patient_id"].nunique() == result["nclusters"]
    assert {p["level"] for p in result["parameters"]} == {1, 2}
    assert result["meta"]["cluster"] == "patient_id" and result["meta"]["estimator"] == "MLR"
    write_table(result, tmp_path / "t")
    table = pd.read_csv(tmp_path / "t.csv")
    if result["fit"]:
        assert table.loc[0, "SRMR within"] == pytest.approx(result["fit"]["srmr_within"])
        assert table.loc[0, "chi2"] == pytest.approx(result["fit"]["chisq.scaled"])
    else:
        assert "Not admissible" in table.columns
    assert "patient_id" not in table.columns  # no identifiers written


def test_rater_without_rows_is_skipped_with_reason(demo_results, tmp_path: Path) -> None:
    result = run_dataset(demo_results("site_a") / "ingest", "correlated", "ML", rater="observer")
    assert result["state"] == "skipped"
    assert "no complete session rows of rater 'observer'" in result["reason"]
    write_table(result, tmp_path / "t")
    assert "no complete session rows" in (tmp_path / "t.md").read_text()


def test_summary_section(tmp_path: Path) -> None:
    from alliance.jsonio import write_json
    from alliance.report.summary import twolevel_parts

    cfa = tmp_path / "ds" / "cfa"
    cfa.mkdir(parents=True)
    fitted = {
        "state": "fitted", "estimator": "ML", "model_name": "correlated",
        "between": "one_factor", "data": {"sessions": 900, "patients": 150,
                                          "sessions_incomplete_dropped": 4},
        "fit": {"chisq": 134.74, "df": 105, "pvalue": 0.027, "cfi": 0.993, "tli": 0.992,
                "rmsea": 0.018, "srmr_within": 0.026, "srmr_between": 0.091},
    }  # fmt: skip
    write_json(cfa / "twolevel_ML.json", fitted)
    write_json(cfa / "twolevel_MLR.json", {"state": "skipped", "estimator": "MLR",
                                           "reason": "no complete session rows"})  # fmt: skip
    parts, warnings = twolevel_parts(tmp_path, "ds")
    assert "Two-level CFA, sessions within patients (ML)" in parts[0]
    assert (
        "| correlated within, one general factor between | ML | 900 | 150 | 134.74 | 105 | 0.027 "
        "| 0.993 | 0.992 | 0.018 | 0.026 | 0.091 |" in parts[0]
    )
    assert "left out (4)" in parts[0]
    assert warnings == ["ds, two-level CFA, MLR: skipped: no complete session rows"]
    assert twolevel_table(fitted).loc[0, "SRMR between"] == 0.091


def test_config_schema_validates_the_twolevel_block() -> None:
    import yaml
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    root = Path(__file__).parents[1]
    schema = str(root / "workflow" / "schemas" / "config.schema.yaml")
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    assert config["cfa"]["twolevel"] == {
        "datasets": ["site_a"], "rater": "client", "between": "one_factor"
    }  # fmt: skip
    validate(config, schema=schema)
    config["cfa"]["twolevel"]["between"] = "two_factors"
    with pytest.raises(WorkflowError, match="'two_factors' is not one of"):
        validate(json.loads(json.dumps(config)), schema=schema)
