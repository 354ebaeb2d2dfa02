import json
import math

import pytest

from alliance.verify import Tolerance, build_manifest, kind_of, numbers_in, verify


def test_tolerance():
    tol = Tolerance(absolute=1e-6, relative=1e-4)
    assert tol.matches(100.0, 100.009)
    assert not tol.matches(100.0, 100.02)
    assert tol.matches(0.0, 5e-7)
    assert tol.matches(math.nan, math.nan)
    assert not tol.matches(1.0, math.nan)
    assert not Tolerance(0.0, 0.0).matches(3.0, 3.0000001)


@pytest.mark.parametrize(
    ("file", "key", "kind"),
    [
        ("a/ingest/ingest_report.json", "rows_in", "count"),
        ("a/ingest/ingest_report.json", "reasons/out_of_range", "count"),
        ("a/describe/summary.json", "bartlett/p", "p_value"),
        ("a/describe/summary.json", "kmo/overall", "estimate"),
        ("a/bayes/outcome/summary.csv", "b_alliance/mean", "monte_carlo"),
    ],
)
def test_kind_of(file, key, kind):
    assert kind_of(file, key) == kind


def test_numbers_and_verdicts(tmp_path):
    (tmp_path / "a" / "ingest").mkdir(parents=True)
    report = {"rows_in": 10, "file": "/x/y.csv", "kmo": {"overall": 0.8}, "flag": True}
    (tmp_path / "a" / "ingest" / "ingest_report.json").write_text(json.dumps(report))
    (tmp_path / "a" / "describe").mkdir()
    (tmp_path / "a" / "describe" / "reliability.csv").write_text("scale,raw_alpha\ntask,0.81\n")
    assert numbers_in(tmp_path / "a" / "ingest" / "ingest_report.json") == {
        "rows_in": 10.0,
        "kmo/overall": 0.8,
    }
    manifest = build_manifest(tmp_path)
    assert set(manifest["values"]) == {
        "a/ingest/ingest_report.json::rows_in",
        "a/ingest/ingest_report.json::kmo/overall",
        "a/describe/reliability.csv::task/raw_alpha",
    }
    assert (verify(tmp_path, manifest)["status"] == "match").all()
    report["rows_in"] = 11
    (tmp_path / "a" / "ingest" / "ingest_report.json").write_text(json.dumps(report))
    (tmp_path / "a" / "describe" / "reliability.csv").unlink()
    checked = verify(tmp_path, manifest).set_index("key")
    assert checked.loc["rows_in", "status"] == "mismatch"
    assert checked.loc["task/raw_alpha", "status"] == "missing"
    assert checked.loc["kmo/overall", "status"] == "match"
