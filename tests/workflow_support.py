"""Helpers of the workflow tests: run Snakemake on a project, write a small project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    return subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
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


def srs_export(
    rng: np.random.Generator, patients: int = 80, sessions: tuple[int, ...] = (1, 2, 3, 4)
) -> pd.DataFrame:
    """A long export of the Session Rating Scale (four 0-10 lines read to 0.1, one factor;
    about 1 in 6 answers at the top of the line, as in routine data) and PHQ-9, 6 therapists;
    the alliance lowers the post-treatment PHQ-9 (the last session's row)."""
    rows = []
    for p in range(patients):
        level = rng.normal(0, 1)
        for s in sessions:
            state = level + rng.normal(0, 0.5)
            lines = np.clip(np.round(8.0 + 1.2 * state + rng.normal(0, 0.7, 4), 1), 0, 10)
            row = {"pid": f"s{p}", "tid": f"t{p % 6}", "session": s, "site": "V"}
            row |= {f"srs{k + 1}": float(v) for k, v in enumerate(lines)}
            row["phq"] = int(np.clip(round(14 - 2.5 * level + rng.normal(0, 3)), 0, 27))
            rows.append(row)
    return pd.DataFrame(rows).astype(object)


def srs_project(tmp_path: Path, rng: np.random.Generator) -> Path:
    """A config with one dataset of the Session Rating Scale (continuous items, ``srs_export``)
    beside the small project's WAI-SR clinic, each its own instrument (no pooling, no MASEM)."""
    small_project(tmp_path, rng)
    srs_export(rng).to_csv(tmp_path / "data" / "vas.csv", index=False)
    codebooks = tmp_path / "config" / "codebooks"
    doc = yaml.safe_load((codebooks / "clinic.yaml").read_text())  # same export layout
    doc |= {
        "dataset": "vas",
        "file": "../../data/vas.csv",
        "instrument": "srs",
        "items": {"pattern": "srs{number}"},
    }
    (codebooks / "vas.yaml").write_text(yaml.safe_dump(doc))
    config = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    config["datasets"]["vas"] = {"codebook": "config/codebooks/vas.yaml"}
    config["pool"] = {"enabled": False}
    config.setdefault("meta", {}).setdefault("masem", {})["enabled"] = False
    config["cfa"]["estimators"] = ["WLSMV", "MLR"]
    config["bayes"]["models"] = ["outcome", "latent"]
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


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


def demo_project(folder: Path) -> None:
    """The demo's config and data in ``folder``: the project ``make demo`` runs."""
    import shutil

    for name in ("config", "data"):
        shutil.copytree(ROOT / name, folder / name)


def deterministic_demo_project(folder: Path) -> None:
    """The demo's config and data in ``folder``, the sampling stages switched off (Bayesian
    models, Bayesian process models and pooling)."""
    demo_project(folder)
    config = yaml.safe_load((folder / "config" / "config.yaml").read_text())
    config["bayes"]["enabled"] = False
    config["process_bayes"]["enabled"] = False
    config["meta"]["enabled"] = False
    (folder / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def targets_of(project: Path, folders: tuple[str, ...]) -> list[str]:
    """One output of every job of the workflow in ``project`` that writes under ``results/F/``
    for a folder F of ``folders`` (from a dry run, so always the workflow's own rules), and of
    every ingest and scoring job: the targets of a run that analyses only those datasets."""
    result = run_snakemake(project, "--cores", "1", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    targets = []
    for line in result.stdout.splitlines():
        if not line.startswith("    output: "):
            continue
        outputs = line.removeprefix("    output: ").split(", ")
        parts = [o.split("/") + ["", ""] for o in outputs]
        if all(p[1] in folders for p in parts) or all(p[2] in ("ingest", "scores") for p in parts):
            targets.append(outputs[0])
    return targets


def manifest_problems(results: Path) -> pd.DataFrame:
    """The committed demo manifest's numbers in the files of ``results`` that do not match
    (checks that more than 10,000 numbers were compared)."""
    import json

    from alliance.verify import verify

    manifest = json.loads((ROOT / "verification" / "demo_manifest.json").read_text())
    checked = verify(results, manifest)
    produced = {p.relative_to(results).as_posix() for p in results.rglob("*")}
    checked = checked[checked["file"].isin(produced)]
    assert len(checked) > 10_000
    return checked[checked["status"].isin(["mismatch", "missing"])]
