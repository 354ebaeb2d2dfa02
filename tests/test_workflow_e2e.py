"""End-to-end: the Snakemake workflow on a small project in a temporary folder."""

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from workflow_support import run_snakemake, small_project

from alliance.verify import build_manifest, verify


@pytest.mark.e2e
def test_pipeline_end_to_end(tmp_path, rng):
    project = small_project(tmp_path, rng)
    result = run_snakemake(project, "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    out = project / "results"

    report = json.loads((out / "clinic" / "ingest" / "ingest_report.json").read_text())
    # the out-of-range answer quarantines its cell; the session's row is kept
    assert (report["rows_in"], report["rows_kept"], report["rows_quarantined"]) == (180, 180, 0)
    assert report["cells_quarantined"] == 1
    assert report["missing_codes_seen"] == {"-99": 1}
    quarantine = pd.read_csv(out / "clinic" / "ingest" / "quarantine.csv")
    assert quarantine[["row", "column", "reason"]].values.tolist() == [[5, "item2", "out_of_range"]]

    raw = pd.read_csv(project / "data" / "clinic.csv")
    scores = pd.read_parquet(out / "clinic" / "scores" / "scores.parquet")
    first = scores[(scores["patient_id"] == "p0") & (scores["session"] == 1)].iloc[0]
    bond = raw.loc[0, ["item3", "item5", "item7", "item9"]].astype(float).mean()
    assert first["bond_mean"] == pytest.approx(bond, abs=1e-12)

    summary = json.loads((out / "clinic" / "describe" / "summary.json").read_text())
    text = json.dumps(summary)
    assert "60" in text  # one row per patient at session 2
    reliability = pd.read_csv(out / "clinic" / "describe" / "reliability.csv")
    assert len(reliability) >= 3
    for fig in ("item_responses", "missingness"):
        for ext in ("png", "pdf"):
            path = out / "clinic" / "figures" / f"{fig}.{ext}"
            assert path.stat().st_size > 1000
    assert (out / "clinic" / "figures" / "item_responses.png").read_bytes()[:4] == b"\x89PNG"
    assert pd.read_parquet(out / "published" / "ingest" / "effects.parquet")["n"].tolist() == [
        50,
        80,
        120,
    ]
    summary = (out / "summary.md").read_text()
    # the summary's ingest table: the row with the bad answer is kept, its cell quarantined
    # (item non-response 2 of 2,160 cells: the -99 and the quarantined cell)
    row = "| clinic | csv (long) | 180 | 180 | 0 | none | 1 cell in 1 kept row | out_of_range 1 |"
    assert f"{row} 60 | 6 | 0.1% |" in summary
    assert "client ratings of session 2" in summary  # the methods paragraph follows the config
    # data, measurement, CFA, Bayes, process, Bayesian process models, within-patient panel,
    # item response models, meta-analysis, checklist
    assert (out / "summary.html").read_text().count("<table>") == 10
    meta = json.loads((out / "meta" / "meta.json").read_text())
    assert [e["study"] for e in meta["effects"]] == ["clinic", "a", "b", "c"]
    effect = json.loads((out / "clinic" / "effects" / "effect.json").read_text())
    assert meta["effects"][0]["r"] == effect["r"]
    assert meta["bayes"]["diagnostics"]["status"] in {"pass", "fail"}
    provenance = json.loads((out / "provenance.json").read_text())
    hashed = {Path(i["path"]).name: i["sha256"] for i in provenance["inputs"]}
    assert (
        hashed["clinic.csv"]
        == hashlib.sha256((project / "data" / "clinic.csv").read_bytes()).hexdigest()
    )
    comparison = json.loads((out / "clinic" / "cfa" / "comparison_MLR.json").read_text())
    test = comparison["tests"][0]
    assert (test["restricted"], test["general"], test["df_diff"]) == ("one_factor", "correlated", 3)
    assert (out / "clinic" / "cfa" / "tables" / "fit_MLR.md").is_file()
    diagnostics = json.loads(
        (out / "clinic" / "bayes" / "outcome_x1" / "diagnostics.json").read_text()
    )
    assert diagnostics["status"] in {"pass", "fail"}
    assert "## Alliance and outcome (Bayesian models)" in summary
    process = json.loads((out / "clinic" / "process" / "summary.json").read_text())
    assert "therapist" in json.dumps(process)  # no second rater: a skip reason, not an error
    process_bayes = json.loads((out / "clinic" / "process" / "bayes" / "summary.json").read_text())
    assert {m: r["status"] for m, r in process_bayes["models"].items()} == {
        "dropout": "skipped",
        "rater_outcome": "skipped",
    }
    assert "no second rater" in process_bayes["models"]["rater_outcome"]["reason"]
    assert (out / "clinic" / "process" / "bayes" / "figures" / "survival.png").is_file()
    assert "## Alliance as a process" in summary
    assert "rater_outcome | skipped: no second rater" in summary
    for rule in ("ingest", "score", "describe"):
        assert (out / "clinic" / "benchmarks" / f"{rule}.tsv").is_file()
    # provenance times every job of the run, and every timing it lists was written
    timed = {b["file"] for b in provenance["benchmarks"] if not b["missing"]}
    written = {str(f.relative_to(project)) for f in out.glob("**/benchmarks/*.tsv")}
    assert len(timed) == len(provenance["benchmarks"])
    assert timed == written
    assert {"cfa_fit_MLR.tsv", "bayes_outcome_x1.tsv"} <= {Path(f).name for f in timed}

    # a second run has nothing to do
    again = run_snakemake(project, "--cores", "2", "--dry-run")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr

    # a reviewer's check: the rerun matches its manifest; one changed answer is caught
    manifest = build_manifest(out)
    assert (verify(out, manifest)["status"] == "match").all()
    raw.loc[31, "item3"] = 1 if raw.loc[31, "item3"] != 1 else 5  # patient p10, session 2
    raw.to_csv(project / "data" / "clinic.csv", index=False)
    rerun = run_snakemake(project, "--cores", "2")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    checked = verify(out, manifest)
    mismatched = checked[checked["status"] == "mismatch"]
    assert "clinic/describe/reliability.csv" in set(mismatched["file"])
    assert "clinic/ingest/ingest_report.json" not in set(mismatched["file"])  # same counts
