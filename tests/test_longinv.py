"""``alliance invariance-long`` and rule cfa_invariance_long: long table in, ladder out.

The statistics are tested against lavaan in tests/sem/test_sem_longitudinal.py; here the
reshaping, the command (end to end against the same lavaan reference), its input errors
(exit 2, naming file, line, column and value), the table and the rule's skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from alliance.cfa.longinv import LongSkipped, run_dataset, wide_items, write_table
from alliance.cli import main

HERE = Path(__file__).parent / "data" / "lavaan" / "longinv"
MODEL = "bond =~ b1 + b2 + b3\ntask =~ t1 + t2 + t3\n"
ITEMS = ["b1", "b2", "b3", "t1", "t2", "t3"]


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.lav"
    path.write_text(MODEL)
    return path


def _long() -> pd.DataFrame:
    return pd.read_csv(HERE / "longinv_continuous.csv")


def test_wide_items_one_row_per_patient():
    long = _long()
    wide, info = wide_items(long, id_col="patient", time_col="session", items=ITEMS,
                            waves=[1, 3, 6])  # fmt: skip
    assert info["patients"] == 300 and info["rows"] == len(long) == 854
    assert info["patients_per_wave"] == {"1": 300, "3": 277, "6": 277}
    assert list(wide.columns[:7]) == [*(f"{i}_1" for i in ITEMS), "b1_3"]
    assert "patient" not in wide.columns and wide.index.name is None  # no identifiers
    # patient P001 at session 6 (the first patient in sorted order)
    first = long[(long["patient"] == "P001") & (long["session"] == 6)].iloc[0]
    assert wide.loc[0, "t3_6"] == first["t3"]
    assert int(wide["b1_6"].isna().sum()) == 300 - 277


def test_command_matches_lavaan_end_to_end(tmp_path, model_file, capsys):
    out = tmp_path / "o.json"
    code = main(["invariance-long", str(HERE / "longinv_continuous.csv"), "--model",
                 str(model_file), "--id", "patient", "--time", "session", "--waves", "1,3,6",
                 "--estimator", "ML", "--out", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    ref = json.loads((HERE / "lavaan_longinv.json").read_text())["cases"]["ml"]
    for step in result["steps"]:
        want = ref["steps"][step["name"]]["fit"]
        assert step["fit"]["chisq"] == pytest.approx(want["chisq"], rel=1e-4)
        assert step["fit"]["df"] == want["df"]
    assert result["data"]["source"] == "longinv_continuous.csv"
    assert "P001" not in out.read_text()  # no patient identifiers
    shown = capsys.readouterr().out
    assert "scalar: chi2(118) = 140.11" in shown


@pytest.mark.parametrize(
    ("edit", "args", "message"),
    [
        (None, ["--time", "sess"], "longinv.csv: no column 'sess' (--time)"),
        (None, ["--waves", "1,3,7"], "no rows at waves [7]"),
        (None, ["--waves", "1,x"], "--waves takes whole numbers"),
        (None, ["--ordered"], "--ordered needs --estimator WLSMV"),
        (("b2", 4, "high"), [], "longinv.csv: line 6, column 'b2': an answer must be a number, "
                                "got 'high'"),
        (("session", 2, "3.5"), [], "line 4, column 'session': a wave must be a whole number"),
        (("session", 1, "1"), [], "line 3 repeats a patient's wave"),
    ],
)  # fmt: skip
def test_input_errors_exit_2(tmp_path, model_file, capsys, edit, args, message):
    long = _long().astype(str)
    if edit is not None:
        col, row, value = edit
        long.loc[row, col] = value
    path = tmp_path / "longinv.csv"
    long.to_csv(path, index=False)
    base = {"--id": "patient", "--time": "session", "--waves": "1,3,6"}
    for k, v in zip(args[::2], args[1::2], strict=False):
        base[k] = v
    argv = ["invariance-long", str(path), "--model", str(model_file), "--out",
            str(tmp_path / "o.json")]  # fmt: skip
    for k, v in base.items():
        argv += [k, v]
    argv += [a for a in args if a == "--ordered"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_model_with_constraints_is_an_input_error(tmp_path, capsys):
    path = tmp_path / "bad.lav"
    path.write_text("bond =~ 1*b1 + b2 + b3\n")
    argv = ["invariance-long", str(HERE / "longinv_continuous.csv"), "--model", str(path),
            "--id", "patient", "--time", "session", "--waves", "1,3", "--out",
            str(tmp_path / "o.json")]  # fmt: skip
    assert main(argv) == 2
    assert "bad.lav: the model of one wave takes plain" in capsys.readouterr().err


def test_table_reads_like_the_cross_group_ladder(tmp_path):
    from alliance.cfa.longinv import run_invariance_long

    result = run_invariance_long(HERE / "longinv_continuous.csv", _model(tmp_path),
                                 id_col="patient", time_col="session", waves=[1, 3, 6],
                                 estimator="MLR")  # fmt: skip
    write_table(result, tmp_path / "invariance_long_MLR")
    table = pd.read_csv(tmp_path / "invariance_long_MLR.csv")
    assert list(table["Step"]) == ["Configural", "Metric (loadings equal)",
                                   "Scalar (loadings, intercepts equal)",
                                   "Strict (loadings, intercepts, residuals equal)"]  # fmt: skip
    md = (tmp_path / "invariance_long_MLR.md").read_text()
    assert "Longitudinal measurement invariance over sessions 1, 3, 6 (MLR)" in md
    assert "Not invariant" in md  # the simulated intercept shift, on the robust indices


def _model(tmp_path: Path) -> Path:
    path = tmp_path / "m.lav"
    path.write_text(MODEL)
    return path


def test_wave_absent_is_skipped_with_reason(demo_results, tmp_path):
    result = run_dataset(demo_results("site_b") / "ingest", "correlated", [1, 3, 40], "MLR")
    assert result["state"] == "skipped"
    assert "no rows at waves [40]" in result["reason"]
    write_table(result, tmp_path / "t")
    assert "no rows at waves [40]" in (tmp_path / "t.md").read_text()
    with pytest.raises(LongSkipped):
        wide_items(_long(), id_col="patient", time_col="session", items=ITEMS, waves=[1, 2])


def test_model_the_key_cannot_have_is_skipped_with_why(tmp_path):
    """correlated over sessions of a one-factor key (SRS): skipped, naming the key's models."""
    ingest = tmp_path / "vas" / "ingest"
    ingest.mkdir(parents=True)
    (ingest / "ingest_report.json").write_text('{"kind": "items", "instrument": "srs"}')
    pd.DataFrame({"patient_id": ["p1"], "session": [1], "srs_1": [5.5]}).to_parquet(
        ingest / "items.parquet"
    )
    result = run_dataset(ingest, "correlated", [1, 2], "MLR")
    assert result["state"] == "skipped"
    assert result["reason"] == (
        "correlated needs two or more factors; the srs key has 1 factor(s) (alliance), so its "
        "models are one_factor"
    )


def test_summary_section_beside_the_cross_group_ladder(tmp_path):
    from alliance.cfa.longinv import run_invariance_long
    from alliance.jsonio import write_json
    from alliance.report.summary import cfa_section

    result = run_invariance_long(HERE / "longinv_continuous.csv", _model(tmp_path),
                                 id_col="patient", time_col="session", waves=[1, 3, 6],
                                 estimator="ML")  # fmt: skip
    cfa = tmp_path / "results" / "ds" / "cfa"
    cfa.mkdir(parents=True)
    write_json(cfa / "invariance_long_ML.json", {"state": "fitted", **result})
    skipped = {"state": "skipped", "reason": "no rows at waves [6]", "estimator": "MLR",
               "waves": [1, 3, 6]}  # fmt: skip
    write_json(cfa / "invariance_long_MLR.json", skipped)
    text, warnings = cfa_section(tmp_path / "results", ["ds"])
    assert "Longitudinal measurement invariance over sessions 1, 3, 6 (ML)" in text
    assert "| Scalar (loadings, intercepts equal) | 140.11 | 118 |" in text  # lavaan: 140.113
    assert "invariance failed" not in " ".join(warnings)  # not read as a cross-group ladder
    assert warnings == [
        "ds, over sessions 1, 3, 6, MLR: longitudinal invariance skipped: no rows at waves [6]"
    ]


def test_config_schema_validates_the_longitudinal_block():
    import yaml
    from snakemake.utils import validate

    root = Path(__file__).parents[1]
    schema = str(root / "workflow" / "schemas" / "config.schema.yaml")
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    long = config["cfa"]["invariance"]["longitudinal"]
    assert long["waves"] == [1, 3, 6] and long["datasets"] == []  # off in the demo
    validate(config, schema=schema)
    del config["cfa"]["invariance"]["longitudinal"]
    validate(config, schema=schema)
    assert config["cfa"]["invariance"]["longitudinal"] == {"waves": [], "datasets": []}
    config["cfa"]["invariance"]["longitudinal"] = {"waves": [1, 3], "sessions": [2]}
    with pytest.raises(Exception, match="sessions"):
        validate(config, schema=schema)
