"""End-to-end: an edited instrument reruns what reads it; an irregular clinic is skipped
with its reason, and no patient ID leaves its folder."""

import json
import re
import shutil
import zipfile

import arviz as az
import pytest
import yaml
from workflow_support import ROOT, clinic_export, run_snakemake, small_project


@pytest.mark.e2e
def test_editing_a_custom_instrument_reruns_what_reads_it(tmp_path, rng):
    """A codebook's own instrument file is an input of ingest, scores, description and CFA."""
    project = small_project(tmp_path, rng)
    instrument = project / "config" / "instruments" / "my_wai.yaml"
    instrument.parent.mkdir()
    shutil.copy(ROOT / "src" / "alliance" / "data" / "instruments" / "wai_sr.yaml", instrument)
    book = project / "config" / "codebooks" / "clinic.yaml"
    doc = yaml.safe_load(book.read_text())
    doc["instrument"] = "../instruments/my_wai.yaml"
    book.write_text(yaml.safe_dump(doc))
    target = "results/clinic/scores/scores.parquet"
    done = run_snakemake(project, target, "--cores", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    plan = run_snakemake(project, "--cores", "1", "--dry-run", "--forceall")
    for rule in ("ingest_items", "score", "describe", "cfa_fit", "cfa_report"):
        block = plan.stdout.split(f"rule {rule}:")[1].split("\n\n")[0]
        assert "config/instruments/my_wai.yaml" in block, rule
    instrument.write_text(instrument.read_text() + "\n# edited\n")
    again = run_snakemake(project, target, "--cores", "1", "--dry-run")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rule ingest_items:" in again.stdout and "rule score:" in again.stdout
    assert "Updated input files: config/instruments/my_wai.yaml" in again.stdout


PATIENT_ID = re.compile(r"(?:PAT|IRR)\d{4}")
PLANTED_HEADER = "<script>alert('header')</script>"
PLANTED_FORMULA = '=HYPERLINK("http://example.org/?leak","open")'


@pytest.mark.e2e
def test_irregular_clinic_is_skipped_and_no_patient_id_leaves_its_folder(tmp_path, rng):
    """Two clinics: one rated sessions 1, 3, 6 (the session model cannot be fitted there).

    The run completes: the irregular clinic's session model is skipped with its reason, the
    other clinic's is fitted, and the summary lists both. No patient ID appears in the
    summaries, the Markdown tables or Snakemake's report; a header planted in the export is
    escaped in summary.html and a planted formula is quoted in quarantine.csv.
    """
    (tmp_path / "config" / "codebooks").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    regular = clinic_export(rng, patients=40, sessions=(1, 2, 3, 4), patient_id="PAT{:04d}")
    regular[PLANTED_HEADER] = 1  # a column the codebook does not name: an ingest warning
    regular.loc[5, "item4"] = PLANTED_FORMULA  # non-numeric answer: quarantined
    regular.to_csv(tmp_path / "data" / "regular.csv", index=False)
    irregular = clinic_export(rng, patients=30, sessions=(1, 3, 6), patient_id="IRR{:04d}")
    irregular.to_csv(tmp_path / "data" / "irregular.csv", index=False)
    names = ("regular", "irregular")
    for name in names:
        doc = {
            "dataset": name,
            "file": f"../../data/{name}.csv",
            "format": "csv",
            "ids": {"patient": "pid", "therapist": "tid", "session": "session"},
            "instrument": "wai_sr",
            "items": {"pattern": "item{number}"},
            "outcomes": [{"measure": "phq9", "column": "phq", "min": 0, "max": 27}],
        }
        (tmp_path / "config" / "codebooks" / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    config = {
        "datasets": {n: {"codebook": f"config/codebooks/{n}.yaml"} for n in names},
        "seed": 5,
        "pool": {"enabled": False},
        "describe": {"session": 1, "parallel_iterations": 10},
        "cfa": {"enabled": False},
        "meta": {"enabled": False},
        "process_bayes": {"enabled": False},
        "bayes": {
            "models": ["session"],
            "alliance_session": 1,
            "sensitivity_scales": [1],
            "sampler": {"backend": "pymc", "chains": 2, "draws": 100, "tune": 100, "cores": 1},
        },
    }
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "results"

    def diagnostics(name):
        return json.loads((out / name / "bayes" / "session_x1" / "diagnostics.json").read_text())

    skipped = diagnostics("irregular")
    assert skipped["status"] == "skipped"
    assert "fewer than 20 lagged session rows" in skipped["reason"]
    fitted = diagnostics("regular")
    assert fitted["status"] in ("pass", "fail")  # 100 draws: the status, not the numbers
    summary = (out / "summary.md").read_text()
    assert "| irregular | session |" in summary
    assert "skipped: fewer than 20 lagged session rows" in summary
    assert (out / "irregular" / "bayes" / "session_x1" / "figures" / "not_estimated.png").is_file()

    # per-patient random effects stay in idata.nc, out of the summaries
    idata = az.from_netcdf(out / "regular" / "bayes" / "session_x1" / "idata.nc")
    assert "PAT0001" in idata.posterior["v_raw"].coords["patient"].values
    shown = [out / "summary.md", out / "summary.html"] + sorted(out.rglob("*.md"))
    shown += sorted(out.glob("*/bayes/*/summary.csv")) + sorted(out.glob("*/bayes/*/*.json"))
    for path in shown:
        assert not PATIENT_ID.search(path.read_text()), path

    # the report: every embedded file, none with a patient ID
    report = run_snakemake(tmp_path, "--report", str(tmp_path / "report.zip"), "--cores", "1")
    assert report.returncode == 0, report.stderr[-3000:]
    with zipfile.ZipFile(tmp_path / "report.zip") as archive:
        names = archive.namelist()
        assert any(n.endswith("summary.md") for n in names)
        assert not any(n.endswith("quarantine.csv") for n in names)
        for name in names:
            text = archive.read(name).decode("utf-8", errors="ignore")
            assert not PATIENT_ID.search(text), name

    # data never runs: the planted header is text in summary.html, the formula a quoted cell
    page = (out / "summary.html").read_text()
    assert "&lt;script&gt;alert(" in page and "<script" not in page
    quarantine = (out / "regular" / "ingest" / "quarantine.csv").read_text()
    assert f"'{PLANTED_FORMULA}".replace('"', '""') in quarantine
