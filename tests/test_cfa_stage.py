import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.cfa.stage import compare, model_syntax, run_cfa, run_invariance
from alliance.cli import main
from alliance.data.instruments import load_instrument
from alliance.jsonio import write_json

LAVAAN = Path(__file__).parent / "data" / "lavaan"


def test_cli_cfa_reproduces_lavaan_ml(tmp_path, capsys):
    folder = LAVAAN / "holzinger1939"
    reference = json.loads((folder / "lavaan_ml.json").read_text())
    out = tmp_path / "fit.json"
    args = [
        "cfa",
        str(folder / "holzinger1939.csv"),
        "--model",
        str(folder / "holzinger.lav"),
        "--estimator",
        "ML",
        "--missing",
        "listwise",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["fit"]["chisq"] == pytest.approx(reference["fit"]["chisq"], abs=0.01)
    for key in ("cfi", "tli", "rmsea", "rmsea.ci.upper", "srmr"):
        assert result["fit"][key] == pytest.approx(reference["fit"][key], abs=1e-3)
    assert "ML: chisq = 85.306" in capsys.readouterr().out


def write_ingested(tmp_path, rng, n=300, factor_corr=None):
    """An ingest folder of WAI-SR answers: one factor, or with ``factor_corr`` Bordin's three
    factors correlated that much (one-factor data make the three-factor models inadmissible:
    their factor correlations exceed 1)."""
    folder = tmp_path / "ingest"
    folder.mkdir()
    wai = load_instrument("wai_sr")
    if factor_corr is None:
        eta = rng.normal(size=(n, 1))
        owner = dict.fromkeys(wai.items, 0)
    else:
        phi = np.full((3, 3), factor_corr) + (1 - factor_corr) * np.eye(3)
        eta = rng.multivariate_normal(np.zeros(3), phi, size=n)
        owner = {i: k for k, items in enumerate(wai.factors.values()) for i in items}
    rows = pd.DataFrame(
        {
            item: (3 + 0.9 * eta[:, owner[item]] + rng.normal(0, 0.7, n)).round().clip(1, 5)
            for item in wai.items
        }
    )
    rows.insert(0, "patient_id", [f"p{i}" for i in range(n)])
    rows.insert(1, "therapist_id", "t")
    rows.insert(2, "session", 3)
    rows.insert(3, "rater", "client")
    rows.insert(4, "source_row", range(1, n + 1))
    rows["group"] = ["a", "b"] * (n // 2)
    rows.astype({i: "Float64" for i in wai.items}).to_parquet(folder / "items.parquet")
    report = {"dataset": "x", "kind": "items", "instrument": "wai_sr"}
    (folder / "ingest_report.json").write_text(json.dumps(report))
    return folder


def test_failures_are_statuses_not_crashes(tmp_path, rng):
    folder = write_ingested(tmp_path, rng)
    lav = tmp_path / "bad.lav"
    lav.write_text("f =~ wai_01 + not_an_item\n")
    result = run_cfa(folder, str(lav), "MLR")
    assert result["status"]["ok"] is False
    assert "not_an_item" in result["status"]["error"]
    write_json(tmp_path / "bad.json", result)  # still writable
    ladder = run_invariance(folder, "correlated", "no_such_column", "MLR")
    assert ladder["status"]["ok"] is False
    assert "no_such_column" in ladder["status"]["error"]


def test_unknown_model_name():
    with pytest.raises(ValueError, match=r"unknown CFA model 'threeish'"):
        model_syntax("threeish", load_instrument("wai_sr"))


def write_ml_fits(tmp_path, folder, models):
    """The ML (listwise) fit file of each model, as the cfa_fit rule writes them."""
    files = {}
    for model in models:
        files[model] = tmp_path / f"{model}.json"
        write_json(files[model], run_cfa(folder, model, "ML", missing="listwise"))
    return files


def test_comparison_tests_only_nested_pairs(tmp_path, rng):
    folder = write_ingested(tmp_path, rng, factor_corr=0.6)
    files = write_ml_fits(tmp_path, folder, ("one_factor", "correlated", "bifactor"))
    result = compare(files, folder, "ML", missing="listwise")
    pairs = [(t["restricted"], t["general"]) for t in result["tests"]]
    assert pairs == [("one_factor", "correlated")]  # bifactor does not nest correlated here
    test = result["tests"][0]
    fits = result["results"]
    diff = fits["one_factor"]["fit"]["chisq"] - fits["correlated"]["fit"]["chisq"]
    assert test["chisq_diff"] == pytest.approx(diff, abs=1e-8)
    assert test["df_diff"] == 3


def test_comparison_does_not_test_fits_that_did_not_converge(tmp_path, rng):
    from small_samples import not_converged_fit

    from alliance.cfa.stage import read_cfa_data

    folder = write_ingested(tmp_path, rng, factor_corr=0.6)
    files = write_ml_fits(tmp_path, folder, ("one_factor", "correlated", "second_order"))
    rows, _, _ = read_cfa_data(folder)
    # the bifactor fit is stopped after 3 iterations, before it converged (small_samples)
    bifactor = not_converged_fit(rows, "bifactor", estimator="ML", missing="listwise")
    assert bifactor["converged"] is False and "chisq" not in bifactor["fit"]
    files["bifactor"] = tmp_path / "bifactor.json"
    write_json(files["bifactor"], bifactor)
    result = compare(files, folder, "ML", missing="listwise")
    tests = {(t["restricted"], t["general"]): t for t in result["tests"]}
    assert set(tests) == {("one_factor", "correlated"), ("second_order", "bifactor")}
    skipped = tests[("second_order", "bifactor")]
    assert skipped["not_tested"] == "Bifactor: not converged"
    assert "chisq_diff" not in skipped and "deltas" not in skipped
    assert tests[("one_factor", "correlated")]["df_diff"] == 3
    assert result["results"]["bifactor"]["ntotal"] == 300  # N travels to the summary
