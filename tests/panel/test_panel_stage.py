"""The panel stage and `alliance riclpm`: reading, checking, shaping, writing; lavaan parity.

The fit itself is checked against lavaan in tests/sem/test_sem_panel.py; here the command line
must give lavaan's numbers from the long table (the same reference), bad input must stop with
one line naming file, line, column and value (exit 2), and the workflow entry must write its
outputs, skip a dataset the model cannot be fitted to with the reason, and hold no patient ID.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.cli import main
from alliance.panel.data import auto_waves, long_panel, session_panel, wide_panel
from alliance.panel.stage import run_panel
from alliance.panel.tables import effects_table

LAVAAN = Path(__file__).parents[1] / "data" / "lavaan" / "riclpm"
PANEL = LAVAAN / "panel_long.csv"
REL = 1e-4


def _reference() -> dict:
    return json.loads((LAVAAN / "lavaan_riclpm.json").read_text())


def _riclpm(tmp_path: Path, *extra: str, data: Path = PANEL) -> int:
    cols = ["--x", "alliance", "--y", "symptoms", "--id", "patient", "--time", "session"]
    return main(["riclpm", str(data), *cols, *extra, "--out", str(tmp_path / "out.json")])


def test_cli_reproduces_lavaan_from_the_long_table(tmp_path, capsys):
    assert _riclpm(tmp_path, "--estimator", "MLR", "--constrain-lags") == 0
    out = json.loads((tmp_path / "out.json").read_text())
    ref = _reference()["cases"]["mlr_fiml_equal"]
    assert out["ntotal"] == ref["nobs"] == 400
    for name in ("chisq", "df", "chisq.scaled", "cfi.robust", "rmsea.robust", "srmr"):
        assert out["fit"][name] == pytest.approx(ref["fit"][name], rel=REL, abs=REL), name
    lavaan = {(r["lhs"], r["rhs"]): r for r in ref["parameters"] if r["op"] == "~"}
    for row in out["effects"]["cross_x_to_y"]["waves"]:
        r = lavaan[(row["lhs"], row["rhs"])]
        assert row["est"] == pytest.approx(r["est"], rel=REL)
        assert row["se"] == pytest.approx(r["se"], rel=REL)
    wald = _reference()["wald"]["mlr"]
    assert out["equal_lags"]["wald"]["stat"] == pytest.approx(wald["stat"], rel=REL)
    assert out["data"]["waves"] == [1, 2, 3, 4, 5] and out["data"]["patients"] == 400
    assert out["data"]["observed"]["5"] == {"x": 321, "y": 310}
    text = (tmp_path / "out.json").read_text()
    assert "P001" not in text  # no patient identifier in the output
    printed = capsys.readouterr().out
    assert "alliance -> symptoms: -1.257" in printed and "Wald chi2(12) = 13.39" in printed


def test_cli_waves_subset_and_detrend(tmp_path):
    assert _riclpm(tmp_path, "--waves", "2,3,4", "--detrend") == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["meta"]["waves"] == [2, 3, 4] and out["meta"]["detrend"] is True
    long = pd.read_csv(PANEL)
    assert out["data"]["rows_outside_waves"] == long["session"].isin([1, 5]).sum() == 723
    assert "Tx =~ 0*x2 + 1*x3 + 2*x4" in out["meta"]["model"]


def _bad(tmp_path: Path, edit) -> Path:
    frame = pd.read_csv(PANEL, dtype=str)
    edit(frame)
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda f: f.loc.__setitem__((6, "symptoms"), "4,2"),
            "bad.csv: line 8, column 'symptoms': a score must be a number, got '4,2'",
        ),
        (
            lambda f: f.loc.__setitem__((3, "session"), "2.5"),
            "bad.csv: line 5, column 'session': a wave must be a whole number >= 0, got '2.5'",
        ),
        (
            lambda f: f.loc.__setitem__((10, "patient"), None),
            "bad.csv: line 12, column 'patient': missing patient id",
        ),
        (
            lambda f: f.loc.__setitem__((1, "session"), "1"),
            "bad.csv: line 3 repeats the patient and wave of line 2 (column 'session' = 1): "
            "one row per patient and wave",
        ),
        (
            lambda f: f.loc.__setitem__((0, "alliance"), "inf"),
            "bad.csv: line 2, column 'alliance': a score must be a number, got 'inf'",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, edit, message):
    assert _riclpm(tmp_path, data=_bad(tmp_path, edit)) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"alliance riclpm: error: {message}"
    assert not (tmp_path / "out.json").exists()


def test_bad_options_exit_2(tmp_path, capsys):
    assert _riclpm(tmp_path, "--waves", "1,2") == 2
    assert "at least 3 waves" in capsys.readouterr().err
    assert _riclpm(tmp_path, "--waves", "1,x,3") == 2
    assert "--waves takes whole numbers" in capsys.readouterr().err
    assert _riclpm(tmp_path, "--waves", "1,2,9") == 2
    assert "wave 9 has no x and no y scores" in capsys.readouterr().err
    assert _riclpm(tmp_path, data=tmp_path / "absent.csv") == 2
    assert "absent.csv: No such file" in capsys.readouterr().err
    bad = ["riclpm", str(PANEL), "--x", "alliance", "--y", "nope", "--id", "patient"]
    assert main([*bad, "--time", "session", "--out", str(tmp_path / "o.json")]) == 2
    assert "no column 'nope' (--y)" in capsys.readouterr().err


def test_wide_panel_keeps_missing_waves_and_drops_empty_patients():
    long = pd.DataFrame(
        {
            "id": ["a", "a", "b", "b", "b", "c"],
            "wave": [1, 3, 1, 2, 3, 7],
            "x": [1.0, 2.0, 3.0, 4.0, np.nan, 5.0],
            "y": [0.5, np.nan, 1.5, 2.5, 3.5, 4.0],
        }
    )
    wide, info = wide_panel(long, [1, 2, 3])
    assert list(wide.columns) == ["x1", "x2", "x3", "y1", "y2", "y3"]
    assert info["patients"] == 2 and info["patients_without_scores"] == 1  # c: only wave 7
    assert info["rows_outside_waves"] == 1
    assert wide.loc[0, "x3"] == 2.0 and np.isnan(wide.loc[0, "x2"]) and np.isnan(wide.loc[0, "y3"])
    assert wide.loc[1, "y2"] == 2.5


def test_long_panel_checks_columns():
    frame = pd.DataFrame({"p": ["a"], "t": [1], "v": [2.0]})
    with pytest.raises(ValueError, match="must differ"):
        long_panel(frame, id_col="p", time_col="t", x_col="v", y_col="v")


def _tables(long: pd.DataFrame) -> dict[str, pd.DataFrame]:
    scores = pd.DataFrame(
        {
            "patient_id": long["patient"],
            "session": long["session"],
            "rater": "client",
            "total_mean": long["alliance"],
        }
    )
    outcomes = pd.DataFrame(
        {
            "patient_id": long["patient"],
            "session": long["session"],
            "timepoint": "session",
            "measure": "phq9",
            "value": long["symptoms"],
        }
    )
    return {"scores": scores, "outcomes": outcomes}


def test_run_panel_writes_fit_table_and_figure(tmp_path):
    tables = _tables(pd.read_csv(PANEL))
    settings = {"estimator": "ML", "constrain_lags": False}
    result = run_panel(tables, tmp_path, settings, dataset_name="sim")
    assert result["state"] == "fitted" and result["data"]["waves"] == [1, 2, 3, 4, 5]
    ref = _reference()["cases"]["ml_fiml_free"]
    assert result["fit"]["chisq"] == pytest.approx(ref["fit"]["chisq"], rel=REL)
    written = json.loads((tmp_path / "riclpm.json").read_text())
    assert written["state"] == "fitted" and "P001" not in (tmp_path / "riclpm.json").read_text()
    table = pd.read_csv(tmp_path / "effects.csv")
    assert len(table) == 2 * 4 * 4  # two models x four effects x four lags
    assert table["model"].iloc[0] == "free_lags"
    assert (tmp_path / "effects.md").is_file()
    assert (tmp_path / "lagged_paths.png").stat().st_size > 10_000
    assert (tmp_path / "lagged_paths.pdf").is_file()


def test_run_panel_skips_too_few_waves_with_reason(tmp_path):
    long = pd.read_csv(PANEL)
    tables = _tables(long[long["session"] <= 2])
    result = run_panel(tables, tmp_path, {}, dataset_name="short")
    assert result["state"] == "skipped"
    assert result["reason"].startswith("fewer than 3 consecutive sessions with at least 30")
    assert json.loads((tmp_path / "riclpm.json").read_text())["state"] == "skipped"
    assert effects_table(result).empty and (tmp_path / "effects.csv").is_file()
    assert (tmp_path / "lagged_paths.png").is_file()


def test_auto_waves_takes_the_first_consecutive_run():
    long = session_panel(_tables(pd.read_csv(PANEL)))
    waves, counts = auto_waves(long, min_patients=310)
    assert counts == {"1": 377, "2": 359, "3": 334, "4": 317, "5": 308}
    assert waves == [1, 2, 3, 4]
    assert auto_waves(long, min_patients=10, max_waves=3)[0] == [1, 2, 3]


def test_wave_without_scores_is_refused():
    long = pd.DataFrame(
        {"id": ["a", "a", "a"], "wave": [1, 2, 3], "x": [1.0, np.nan, 2.0], "y": [1.0, 2.0, 3.0]}
    )
    with pytest.raises(ValueError, match="wave 2 has no x scores"):
        wide_panel(long)


def test_summary_section_and_methods(tmp_path):
    from alliance.panel.summary import panel_methods
    from alliance.report.summary import panel_section

    tables = _tables(pd.read_csv(PANEL))
    fitted = run_panel(tables, tmp_path / "sim" / "panel", {"estimator": "ML"})
    long = pd.read_csv(PANEL)
    short = long[long["session"] <= 2]
    run_panel(_tables(short), tmp_path / "short" / "panel", {})
    text, warnings = panel_section(tmp_path, ["sim", "short", "absent"])
    assert warnings == []
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) == 3  # header, two datasets
    r = fitted["effects"]["cross_x_to_y"]["waves"][0]
    assert f"{r['est']:.2f} [{r['ci.lower']:.2f}, {r['ci.upper']:.2f}]" in lines[1]
    sd = long["alliance"].std(ddof=1)
    assert fitted["scales"]["x_sd"] == pytest.approx(sd)
    assert f"{r['est'] * sd:.2f} [" in lines[1] and "(-)" in lines[1]  # no session model
    assert "skipped: fewer than 3 consecutive sessions" in lines[2] and "nan" not in lines[2]
    assert "How this differs from the session model" in text and "Hamaker" in text
    methods = panel_methods({"panel": {"enabled": True, "settings": {"waves": [1, 2, 3]}}})
    assert "sessions 1, 2, 3" in methods and "MLR (Huber-White" in methods
    assert "held equal over the sessions" in methods
    assert panel_methods({"panel": {"enabled": False}}) == ""


def test_unusable_fit_is_a_warning_without_numbers(tmp_path, rng):
    from alliance.report.summary import panel_section

    e, f = rng.standard_normal((60, 6)), rng.standard_normal((60, 6))
    x, y = e[:, 1:] - e[:, :-1], f[:, 1:] - 0.9 * f[:, :-1]
    ids = np.repeat([f"P{i}" for i in range(60)], 5)
    waves = np.tile(np.arange(1, 6), 60)
    long = pd.DataFrame(
        {"patient": ids, "session": waves, "alliance": x.ravel(), "symptoms": y.ravel()}
    )
    result = run_panel(_tables(long), tmp_path / "bad" / "panel", {"estimator": "ML"})
    assert result["state"] == "not_usable"
    assert "negative variances (Heywood case)" in result["reason"]
    table = pd.read_csv(tmp_path / "bad" / "panel" / "effects.csv")
    assert table["se"].isna().all() and not table["usable"].any()
    text, warnings = panel_section(tmp_path, ["bad"])
    assert warnings and "not usable: negative variances" in warnings[0]
    assert "not usable" in text and "chi2" not in text
