"""A reviewer's rerun of the demo reproduces the committed manifest (deterministic stages)."""

import json
import shutil

import pytest
import yaml
from workflow_support import ROOT, run_snakemake

from alliance.verify import verify


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
