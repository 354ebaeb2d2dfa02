import json

import pytest
import yaml

from alliance.cli import build_parser, main


def test_every_subcommand_documents_every_option():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"simulate", "ingest", "score", "describe"} <= set(sub.choices)
    for name, subparser in sub.choices.items():
        assert subparser.description, name
        for action in subparser._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.dest} has no help"


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "--help"])
    assert exit_info.value.code == 0
    assert "quarantine.csv" in capsys.readouterr().out


def test_ingest_command(tmp_path, capsys):
    (tmp_path / "x.csv").write_text(
        "id,s," + ",".join(f"w{i}" for i in range(1, 13)) + "\n"
        "a,1," + ",".join(["4"] * 12) + "\n"
        "b,1," + ",".join(["9"] * 12) + "\n"
    )
    codebook = {
        "dataset": "x",
        "file": "x.csv",
        "format": "csv",
        "ids": {"patient": "id", "session": "s"},
        "instrument": "wai_sr",
        "items": {"pattern": "w{number}"},
    }
    (tmp_path / "cb.yaml").write_text(yaml.safe_dump(codebook))
    assert main(["ingest", str(tmp_path / "cb.yaml"), "--out", str(tmp_path / "out")]) == 0
    assert "2 rows in, 1 kept, 1 quarantined" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert report["reasons"] == {"out_of_range": 1}
    # --strict turns the quarantine into an error, printed without a traceback
    code = main(["ingest", str(tmp_path / "cb.yaml"), "--out", str(tmp_path / "o2"), "--strict"])
    assert code == 2
    assert "row 2, column 'w1'" in capsys.readouterr().err


def test_bad_codebook_is_an_error_message(tmp_path, capsys):
    (tmp_path / "cb.yaml").write_text("dataset: x\nformat: csv\n")
    assert main(["ingest", str(tmp_path / "cb.yaml"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cb.yaml" in err
    assert "'file' is a required property" in err


def test_meta_command_reproduces_metafor(tmp_path, capsys):
    from pathlib import Path

    data = Path(__file__).parent / "data" / "metafor"
    reference = json.loads((data / "metafor_reml.json").read_text())
    out = tmp_path / "meta.json"
    assert main(["meta", str(data / "effects.csv"), "--out", str(out), "--no-bayes"]) == 0
    result = json.loads(out.read_text())
    for key in ("estimate", "se", "ci.lb", "ci.ub"):
        assert result["pooled_z"][key] == pytest.approx(reference["pooled_z"][key], abs=1e-4)
    assert result["heterogeneity"]["tau2"] == pytest.approx(
        reference["heterogeneity"]["tau2"], abs=1e-4
    )
    assert "pooled r = " in capsys.readouterr().out
