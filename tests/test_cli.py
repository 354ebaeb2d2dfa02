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


def test_each_stage_builds_its_own_subcommands():
    """One small parser builder per stage (alliance.cli.<stage>), in the order of the workflow."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    builders = {name: p.get_default("func").__module__ for name, p in sub.choices.items()}
    assert builders == {
        "simulate": "alliance.cli.simulate",
        "ingest": "alliance.cli.data",
        "codebook": "alliance.cli.codebook",
        "score": "alliance.cli.describe",
        "describe": "alliance.cli.describe",
        "cfa": "alliance.cli.cfa",
        "invariance-long": "alliance.cli.longinv",
        "bayes": "alliance.cli.bayes",
        "bsem": "alliance.cli.bsem",
        "process": "alliance.cli.process",
        "process-bayes": "alliance.cli.process",
        "riclpm": "alliance.cli.panel",
        "irt": "alliance.cli.irt",
        "meta": "alliance.cli.meta",
        "masem": "alliance.cli.meta",
        "verify": "alliance.cli.verify",
    }
    assert list(builders) == list(sub.choices)


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "--help"])
    assert exit_info.value.code == 0
    assert "quarantine.csv" in capsys.readouterr().out


def _tiny_export(tmp_path, answers=("4",)):
    """A long CSV with one row of twelve items per entry of ``answers``, and its codebook."""
    rows = "".join(f"{chr(97 + k)},1," + ",".join([a] * 12) + "\n" for k, a in enumerate(answers))
    (tmp_path / "x.csv").write_text("id,s," + ",".join(f"w{i}" for i in range(1, 13)) + "\n" + rows)
    codebook = {
        "dataset": "x",
        "file": "x.csv",
        "format": "csv",
        "ids": {"patient": "id", "session": "s"},
        "instrument": "wai_sr",
        "items": {"pattern": "w{number}"},
    }
    (tmp_path / "cb.yaml").write_text(yaml.safe_dump(codebook))
    return tmp_path / "cb.yaml"


def test_ingest_command(tmp_path, capsys):
    _tiny_export(tmp_path, answers=("4", "9"))
    assert main(["ingest", str(tmp_path / "cb.yaml"), "--out", str(tmp_path / "out")]) == 0
    # a row of bad answers is an attended session: its 12 cells are quarantined, the row kept
    out = capsys.readouterr().out
    assert "2 rows in, 2 kept, 0 quarantined; 12 cells of 1 kept rows quarantined" in out
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert report["reasons"] == {"out_of_range": 1}
    assert report["cell_reasons"] == {"out_of_range": 12}
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


def test_input_errors_are_one_line_exit_2(tmp_path, capsys):
    codebook = _tiny_export(tmp_path)
    # --out naming an existing file
    assert main(["ingest", str(codebook), "--out", str(codebook)]) == 2
    assert "--out" in capsys.readouterr().err
    # a codebook path that is a directory
    assert main(["ingest", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert f"{tmp_path}: is a directory" in capsys.readouterr().err
    # a file: that is a symlink loop
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    text = codebook.read_text().replace("file: x.csv", "file: loop_a")
    (tmp_path / "loop.yaml").write_text(text)
    assert main(["ingest", str(tmp_path / "loop.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "loop.yaml: key 'file' names 'loop_a'" in err
    assert "Traceback" not in err and err.count("\n") == 1
    # an OSError names the path: an output folder that cannot be made
    assert main(["ingest", str(codebook), "--out", str(codebook / "sub")]) == 2
    assert f"{codebook / 'sub'}" in capsys.readouterr().err


def test_debug_shows_the_traceback_of_an_input_error(tmp_path, monkeypatch):
    from alliance.data.ingest import IngestError

    (tmp_path / "empty.csv").write_text("")
    codebook = _tiny_export(tmp_path)
    codebook.write_text(codebook.read_text().replace("file: x.csv", "file: empty.csv"))
    with pytest.raises(IngestError, match="empty.csv is empty"):
        main(["--debug", "ingest", str(codebook), "--out", str(tmp_path / "o")])
    monkeypatch.setenv("ALLIANCE_DEBUG", "1")
    with pytest.raises(IngestError, match="empty.csv is empty"):
        main(["ingest", str(codebook), "--out", str(tmp_path / "o")])


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    import alliance.data.ingest

    def broken(*args, **kwargs):
        raise KeyError("a bug, not bad input")

    monkeypatch.setattr(alliance.data.ingest, "ingest_to", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["ingest", str(_tiny_export(tmp_path)), "--out", str(tmp_path / "o")])


def test_closed_output_pipe_ends_quietly(tmp_path):
    import subprocess
    import sys

    codebook = _tiny_export(tmp_path)
    code = "from alliance.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "ingest", str(codebook), "--out", str(tmp_path / "o")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # as `| head -0`: the reader is gone before anything is written
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait() == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_cfa_command_rejects_inf_in_the_data(tmp_path, capsys):
    from pathlib import Path

    data = Path(__file__).parent / "data" / "lavaan" / "wai_sr_sim" / "wai_sr_sim.csv"
    lines = data.read_text().splitlines()
    fields = lines[5].split(",")
    fields[3] = "inf"  # wai_02 of data row 5
    lines[5] = ",".join(fields)
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "m.lav").write_text("f =~ wai_01 + wai_02 + wai_03 + wai_04\n")
    for estimator in ("WLSMV", "MLR"):
        args = ["cfa", str(tmp_path / "d.csv"), "--model", str(tmp_path / "m.lav")]
        code = main([*args, "--estimator", estimator, "--out", str(tmp_path / "f.json")])
        assert code == 2
        err = capsys.readouterr().err
        assert "'wai_02' holds 1 infinite value(s) (first in data row 5" in err


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


def _process_dataset(root, seed=7, n_patients=150, planned=8, b_dropout=-1.0):
    """A results folder (ingest/, scores/) with a known dropout hazard, client ratings only.

    Each session's client alliance is 4 + 0.5 (u + v) + 0.5 a with therapist u ~ N(0, .4^2),
    patient v ~ N(0, .6^2) and session a ~ N(0, 1); after session t < planned the
    patient leaves with logit h = -2.2 + b_dropout * a (the rating of the session just attended).
    Returns the folder and the number of patients who left before the planned end.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    therapist = rng.normal(0, 0.4, 10)
    scores, outcomes, dropouts = [], [], 0
    for p in range(n_patients):
        level = rng.normal(0, 0.6) + therapist[p % 10]
        for s in range(1, planned + 1):
            a = rng.normal()
            total = 4.0 + 0.5 * level + 0.5 * a
            row = {"patient_id": f"P{p:03d}", "therapist_id": f"T{p % 10}", "session": s}
            row |= {"rater": "client", "site": "X"}
            row |= {m: total for m in ("task_mean", "goal_mean", "bond_mean", "total_mean")}
            scores.append(row)
            outcomes.append(
                {
                    "patient_id": f"P{p:03d}",
                    "session": s,
                    "timepoint": "session",
                    "measure": "phq9",
                    "value": float(np.clip(rng.normal(14 - s, 4), 0, 27)),
                }
            )
            if s < planned and rng.random() < 1 / (1 + np.exp(2.2 - b_dropout * a)):
                dropouts += 1
                break
    (root / "ingest").mkdir(parents=True)
    (root / "scores").mkdir()
    frame = pd.DataFrame(scores)
    frame["session"] = frame["session"].astype("Int64")
    frame.to_parquet(root / "scores" / "scores.parquet")
    outcome = pd.DataFrame(outcomes)
    outcome["session"] = outcome["session"].astype("Int64")
    outcome.to_parquet(root / "ingest" / "outcomes.parquet")
    return root, dropouts


def test_process_command_reports_the_numbers_it_writes(tmp_path, capsys):
    from alliance.process.ruptures import detect_ruptures

    dataset, dropouts = _process_dataset(tmp_path / "clinic")
    out = dataset / "process"
    assert main(["process", str(dataset), "--out", str(out), "--planned-sessions", "8"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    pp = summary["person_period"]
    assert (pp["dropouts"], pp["patients"], pp["planned_sessions"]) == (dropouts, 150, 8)
    assert f"dropout: {dropouts} of 150 patients before session 8" in printed
    # one client rater: agreement is skipped with the reason, not an error
    assert summary["agreement"]["status"] == "skipped"
    assert "agreement: skipped (no therapist ratings" in printed
    # the rupture counts are those of the detector on the same scores
    import pandas as pd

    direct = detect_ruptures(pd.read_parquet(dataset / "scores" / "scores.parquet"))
    episodes = pd.read_csv(out / "ruptures_episodes.csv")
    assert len(episodes) == len(direct["episodes"]) == summary["ruptures"]["episodes"]
    assert f"ruptures: {len(episodes)} episodes in" in printed
    # no items, so no alpha: the shares of the observed scores (true variances .04 / .09 /
    # .25: shares therapist .10, patient .24, session .66)
    variance = summary["variance_components"]
    assert variance["status"] in ("ok", "warning") and variance["corrected_shares"] is None
    shares = variance["shares"]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["session"] == pytest.approx(0.66, abs=0.1)
    assert f"patient {shares['patient']:.3f}, session {shares['session']:.3f}" in printed


def test_process_bayes_command_matches_maximum_likelihood(tmp_path, capsys):
    import numpy as np
    import pandas as pd
    import statsmodels.api as sm

    dataset, _ = _process_dataset(tmp_path / "clinic")
    assert main(["process", str(dataset), "--out", str(dataset / "process")]) == 0
    out = tmp_path / "bayes"
    args = ["process-bayes", str(dataset), "--out", str(out), "--models", "dropout"]
    args += ["rater_outcome", "--draws", "2000", "--tune", "1000", "--seed", "5"]
    code = main(args)
    printed = capsys.readouterr().out
    assert code == 0, printed
    effects = json.loads((out / "dropout" / "effects.json").read_text())["effects"]
    # the same rows by maximum likelihood: session dummies, current alliance, symptoms
    pp = pd.read_parquet(dataset / "process" / "person_period.parquet")
    rows = pp[pp["at_risk"]].dropna(subset=["alliance_z", "symptoms"])
    x = pd.get_dummies(rows["session"].astype(int), prefix="s", dtype=float)
    x["alliance"] = rows["alliance_z"].to_numpy()
    x["symptoms"] = ((rows["symptoms"] - rows["symptoms"].mean()) / rows["symptoms"].std()).values
    mle = sm.Logit(rows["event"].to_numpy(), x.to_numpy()).fit(disp=0)
    b_mle = mle.params[list(x.columns).index("alliance")]
    assert effects["b_alliance"]["mean"] == pytest.approx(b_mle, abs=0.1)
    # the generating log-odds per SD of alliance (-1.0) lies in the 95% interval
    assert effects["b_alliance"]["eti95_low"] < -1.0 < effects["b_alliance"]["eti95_high"]
    odds = effects["or_alliance"]
    assert odds["mean"] == pytest.approx(np.exp(b_mle), abs=0.08)
    assert (
        f"or_alliance = {odds['mean']:.3f} [{odds['eti95_low']:.3f}, {odds['eti95_high']:.3f}], "
        "P(OR < 1) = 1.000"
    ) in printed
    # no second rater: skipped with the reason, in the output and the table
    assert "rater_outcome: skipped (no second rater" in printed
    keys = pd.read_csv(out / "key_effects.csv").set_index("model")
    assert keys.loc["rater_outcome", "status"] == "skipped"
    assert keys.loc["dropout", "mean"] == pytest.approx(odds["mean"])
    assert (out / "figures" / "survival.png").is_file()


def test_bayes_command_offers_every_model_the_library_fits():
    from alliance.bayes.api import FIT_MODELS

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    model = next(a for a in sub.choices["bayes"]._actions if a.dest == "model")
    assert set(model.choices) == set(FIT_MODELS)
