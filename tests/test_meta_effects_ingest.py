"""Published effects as study, yi, vi with a cluster column: ingest and codebook schema."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from alliance.data.codebook import load_codebook
from alliance.data.ingest import ingest


def write(tmp_path, table: pd.DataFrame, effects: dict) -> object:
    table.to_csv(tmp_path / "eff.csv", index=False)
    doc = {
        "dataset": "pub",
        "kind": "effects",
        "file": "eff.csv",
        "format": "csv",
        "effects": effects,
    }
    (tmp_path / "cb.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path / "cb.yaml"


def test_yi_vi_effects_with_cluster(tmp_path) -> None:
    table = pd.DataFrame(
        {
            "Paper": ["P1", "P1", "P2", "", "P3", "P3", "P3"],
            "Effect": ["a", "b", "a", "c", "a", "b", "a"],
            "g": ["0.3", "0.5", "x", "0.2", "-0.1", "0.4", "-0.1"],
            "var_g": ["0.02", "0.03", "0.04", "0.05", "0", "0.01", "0.06"],
            "year": [2001, 2001, 2005, 2007, 2010, 2010, 2010],
        }
    )
    path = write(
        tmp_path,
        table,
        {"study": "Effect", "yi": "g", "vi": "var_g", "cluster": "Paper", "moderators": ["year"]},
    )
    result = ingest(path)
    assert result.report["rows_in"] == 7
    assert (
        result.report["rows_in"] == result.report["rows_kept"] + result.report["rows_quarantined"]
    )
    assert result.report["reasons"] == {"invalid_yi": 1, "invalid_vi": 1, "missing_cluster": 1}
    kept = result.effects
    assert list(kept.columns[:4]) == ["study", "yi", "vi", "Paper"]
    assert kept[["study", "Paper"]].values.tolist() == [
        ["a", "P1"],
        ["b", "P1"],
        ["b", "P3"],
        ["a", "P3"],
    ]
    assert kept["yi"].tolist() == [0.3, 0.5, 0.4, -0.1]


def test_effects_codebook_needs_r_n_or_yi_vi(tmp_path) -> None:
    table = pd.DataFrame({"s": ["A"], "r": [0.2], "n": [50], "yi": [0.2]})
    path = write(tmp_path, table, {"study": "s", "r": "r", "yi": "yi"})
    with pytest.raises(ValueError, match="effects"):
        load_codebook(path)
