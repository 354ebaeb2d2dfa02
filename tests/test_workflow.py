"""End-to-end: the Snakemake workflow on a small project in a temporary folder."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
import yaml

from alliance.verify import build_manifest, verify

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    return subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def clinic_export(
    rng: np.random.Generator,
    patients: int = 60,
    sessions: tuple[int, ...] = (1, 2, 3),
    patient_id: str = "p{}",
) -> pd.DataFrame:
    """A long export: 3-factor WAI-SR items and PHQ-9 per patient x session, 6 therapists."""
    loadings = np.array([0.8] * 12)
    factor_of = [0, 0, 2, 1, 2, 1, 2, 1, 2, 0, 1, 0]  # task, goal, bond per item (WAI-SR key)
    corr = np.array([[1, 0.9, 0.7], [0.9, 1, 0.7], [0.7, 0.7, 1]])
    rows = []
    for p in range(patients):
        eta = rng.multivariate_normal(np.zeros(3), corr)
        for s in sessions:
            latent = loadings * eta[factor_of] + rng.normal(0, 0.6, 12)
            answers = np.clip(np.round(3 + latent), 1, 5).astype(int)
            row = {"pid": patient_id.format(p), "tid": f"t{p % 6}", "session": s, "site": "X"}
            row |= {f"item{k + 1}": int(a) for k, a in enumerate(answers)}
            row["phq"] = int(rng.integers(0, 28))
            rows.append(row)
    return pd.DataFrame(rows).astype(object)


def small_project(tmp_path: Path, rng: np.random.Generator) -> Path:
    """A config with one long CSV dataset (60 patients, 3 sessions, 3-factor items) and effects."""
    (tmp_path / "config" / "codebooks").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    frame = clinic_export(rng)
    frame.loc[4, "item2"] = 6  # planted: out of range
    frame.loc[7, "item9"] = -99  # planted: missing code
    frame.to_csv(tmp_path / "data" / "clinic.csv", index=False)
    pd.DataFrame({"study": ["a", "b", "c"], "r": [0.2, 0.3, 0.25], "n": [50, 80, 120]}).to_csv(
        tmp_path / "data" / "published.csv", index=False
    )
    codebooks = {
        "clinic": {
            "dataset": "clinic",
            "file": "../../data/clinic.csv",
            "format": "csv",
            "ids": {"patient": "pid", "therapist": "tid", "session": "session"},
            "groups": ["site"],
            "instrument": "wai_sr",
            "items": {"pattern": "item{number}"},
            "missing_codes": [-99],
            "outcomes": [{"measure": "phq9", "column": "phq", "min": 0, "max": 27}],
        },
        "published": {
            "dataset": "published",
            "kind": "effects",
            "file": "../../data/published.csv",
            "format": "csv",
            "effects": {"study": "study", "r": "r", "n": "n"},
        },
    }
    for name, doc in codebooks.items():
        (tmp_path / "config" / "codebooks" / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    config = {
        "datasets": {n: {"codebook": f"config/codebooks/{n}.yaml"} for n in codebooks},
        "seed": 7,
        "describe": {"session": 2, "rater": "client", "parallel_iterations": 20},
        "meta": {"alliance_session": 2, "bayes": {"chains": 2, "draws": 500, "tune": 500}},
        "cfa": {
            "models": ["one_factor", "correlated"],
            "estimators": ["MLR"],
            "session": 2,
            "invariance": {"groups": {}},
        },
        "bayes": {
            "models": ["outcome"],
            "alliance_session": 2,
            "sensitivity_scales": [1],
            "sampler": {"chains": 2, "draws": 500, "tune": 500},
        },
        # no dropout and no second rater in this project: both models are skipped with a
        # reason (no sampling), which is what the end-to-end test checks
        "process_bayes": {"models": ["dropout", "rater_outcome"]},
    }
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


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
    # data, measurement, CFA, Bayes, process, Bayesian process models, meta-analysis, checklist
    assert (out / "summary.html").read_text().count("<table>") == 8
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
    assert {"cfa_fit_correlated_MLR.tsv", "bayes_outcome_x1.tsv"} <= {Path(f).name for f in timed}

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


def test_invalid_config_is_named(tmp_path, rng):
    project = small_project(tmp_path, rng)
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["describe"]["session"] = 0
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(project, "--cores", "1", "--dry-run")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "instance['describe']['session']" in output
    assert "minimum" in output


def test_demo_dag_dry_run_and_lint():
    # --forceall lists every job whether or not results/ exists here
    result = run_snakemake(ROOT, "--cores", "2", "--dry-run", "--forceall")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("site_a", "site_b", "site_c", "published"):
        assert f"results/{name}/ingest/ingest_report.json" in result.stdout
    # every stage of every item dataset, the Bayesian process models included
    for rule in ("process", "process_bayes"):
        assert f"rule {rule}:" in result.stdout
    for name in ("site_a", "site_b", "site_c"):
        for path in ("process/summary.json", "process/bayes/key_effects.csv"):
            assert f"results/{name}/{path}" in result.stdout
    lint = run_snakemake(ROOT, "--lint", "--cores", "1")
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]


def test_slurm_profile_dry_run(tmp_path):
    result = run_snakemake(
        ROOT,
        "--workflow-profile",
        str(ROOT / "workflow/profiles/slurm"),
        "--dry-run",
        "--forceall",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ingest_items" in result.stdout


# Snakemake with its S3 storage plugin talking to moto's in-process S3 instead of a bucket: the
# inputs the workflow reads from storage (config/ and data/) are uploaded first, then the CLI runs
# in the same process. argv: the snakemake arguments.
S3_FAKE_RUN = """
import os, sys
import boto3
from moto import mock_aws
import snakemake.cli

with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="alliance-test")
    for folder in ("config", "data"):
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                s3.upload_file(path, "alliance-test", "run/" + path)
    sys.argv = ["snakemake", *sys.argv[1:]]
    snakemake.cli.main()
"""


def test_kubernetes_profile_dry_run(tmp_path):
    """The Kubernetes profile's dry run, offline.

    The Kubernetes executor implies no shared file system, so Snakemake needs the profile's
    default storage (S3) even for a dry run: it checks every input in the bucket. moto stands in
    for the bucket; no cluster is contacted in a dry run (KUBECONFIG points nowhere).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKEMAKE", "AWS_"))}
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "KUBECONFIG": str(tmp_path / "none"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            S3_FAKE_RUN,
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(ROOT),
            "--workflow-profile",
            str(ROOT / "workflow/profiles/kubernetes"),
            "--default-storage-prefix",
            "s3://alliance-test/run",
            "--dry-run",
            "--forceall",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ingest_items" in result.stdout
    # inputs come from the bucket, outputs go to it; package sources (instruments) stay local
    assert "s3://alliance-test/run/data/demo/site_a.csv (retrieve from storage)" in result.stdout
    assert "s3://alliance-test/run/results/summary.md (send to storage)" in result.stdout
    assert "src/alliance/instruments/wai_sr.yaml" in result.stdout
    assert "s3://alliance-test/run/src/" not in result.stdout
    assert "s3://alliance-test/run//" not in result.stdout  # no absolute path became a key


def test_formatting_is_clean():
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent))
    files = [str(ROOT / "Snakefile"), str(ROOT / "workflow" / "rules")]
    check = subprocess.run([snakefmt, "--check", *files], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [ruff, *args, "src", "tests", "scripts"], capture_output=True, text=True, cwd=ROOT
        )
        assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.e2e
def test_demo_rerun_matches_committed_manifest(tmp_path):
    """A reviewer's rerun of the demo from a copy of the project reproduces the manifest.

    The sampling stages (Bayesian models, Bayesian process models and pooling) are switched off
    to keep the suite short; `make verify` after `make demo` checks them too.
    """
    for name in ("config", "data"):
        shutil.copytree(ROOT / name, tmp_path / name)
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["bayes"]["enabled"] = False
    config["process_bayes"]["enabled"] = False
    config["meta"]["enabled"] = False
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((ROOT / "verification" / "demo_manifest.json").read_text())
    checked = verify(tmp_path / "results", manifest)
    produced = {
        p.relative_to(tmp_path / "results").as_posix() for p in (tmp_path / "results").rglob("*")
    }
    checked = checked[checked["file"].isin(produced)]
    assert len(checked) > 10_000
    bad = checked[checked["status"].isin(["mismatch", "missing"])]
    assert bad.empty, bad.head(20).to_string()


def test_fresh_clone_never_regenerates_the_demo_data(tmp_path):
    """The first run of a fresh clone uses the committed demo data and codebooks as they are.

    In a fresh clone the files are as old as the checkout and the generator's script may be
    newer; the demo data must not be scheduled for regeneration (which would overwrite a user's
    edits to them) unless asked for (`make demo-data`).
    """
    for name in ("config", "data"):
        shutil.copytree(ROOT / name, tmp_path / name)
    for path in [*(tmp_path / "data").rglob("*"), *(tmp_path / "config").rglob("*")]:
        os.utime(path, (1_000_000_000, 1_000_000_000))  # older than every script
    result = run_snakemake(tmp_path, "--cores", "2", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule ingest_items:" in result.stdout
    assert "simulate_demo" not in result.stdout
    # asked for, it runs (and writes the exports and codebooks beside the truth files)
    asked = run_snakemake(
        tmp_path, "simulate_demo", "--forcerun", "simulate_demo", "--cores", "1", "--dry-run"
    )
    assert asked.returncode == 0, asked.stderr[-3000:]
    assert "rule simulate_demo:" in asked.stdout


@pytest.mark.e2e
def test_editing_a_custom_instrument_reruns_what_reads_it(tmp_path, rng):
    """A codebook's own instrument file is an input of ingest, scores, description and CFA."""
    project = small_project(tmp_path, rng)
    instrument = project / "config" / "instruments" / "my_wai.yaml"
    instrument.parent.mkdir()
    shutil.copy(ROOT / "src" / "alliance" / "instruments" / "wai_sr.yaml", instrument)
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


def test_bayes_models_per_dataset(tmp_path, rng):
    project = small_project(tmp_path, rng)
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    config["bayes"]["models_by_dataset"] = {"clinic": ["session", "therapist"]}
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    plan = run_snakemake(project, "--cores", "1", "--dry-run", "--forceall")
    assert plan.returncode == 0, plan.stderr[-3000:]
    fits = set(re.findall(r"results/clinic/bayes/(\w+)_x1/summary\.csv", plan.stdout))
    assert fits == {"session", "therapist"}  # in place of bayes.models: [outcome]
    config["bayes"]["models_by_dataset"] = {"elsewhere": ["outcome"]}
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    wrong = run_snakemake(project, "--cores", "1", "--dry-run")
    assert wrong.returncode != 0
    assert "'bayes.models_by_dataset' names ['elsewhere']" in wrong.stdout + wrong.stderr


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
