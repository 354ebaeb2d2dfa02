"""Data with empty categories in some groups, and their collapsed versions (issue 6).

Writes, next to this file, for each case a raw CSV (categories without responses in some
group), the collapsed CSV made by ``alliance.sem.categories.collapse_empty_categories`` (the
data lavaan is run on by ``make_collapse.R``) and the merge records (JSON):

- ``wai_empty``: wai_sr_sim.csv (two sites) with three items edited in one site: wai_03 has
  no 1 in site B (lowest category), wai_05 no 2 in site B (an inner category), wai_07 neither
  1 nor 2 in site A (two merges in a row).
- ``sites5_empty``: the pooled sample of five simulated sites (``simulate_sites(5, seed =
  20261125)``, the bench's pooled data: client ratings of session 3), where many items have
  no 1 in a small site.
- ``wai_listwise_empty``: wai_sr_sim_missing.csv (one group) where the rows answering 1 to
  wai_03 lack wai_01, so listwise deletion leaves category 1 of wai_03 empty.

Run from the repository root:  .venv/bin/python tests/data/lavaan/collapse/make_data.py
then:  Rscript tests/data/lavaan/collapse/make_collapse.R  (tests never call R)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

from alliance.sem.categories import collapse_empty_categories
from alliance.sem.model import ModelSpec

HERE = Path(__file__).parent
LAVAAN = HERE.parent
ITEMS = [f"wai_{i:02d}" for i in range(1, 13)]
#: the items in the model's order (the order in which the WLSMV fit collapses them)
MODEL_ITEMS = ModelSpec.from_syntax((LAVAAN / "wai_sr_sim" / "wai_sr.lav").read_text()).ov


def write(name: str, raw: pd.DataFrame, group: str | None, missing: str) -> None:
    collapsed, records = collapse_empty_categories(raw, MODEL_ITEMS, group, missing)
    raw.to_csv(HERE / f"{name}.csv", index=False)
    collapsed.to_csv(HERE / f"{name}_collapsed.csv", index=False)
    (HERE / f"{name}_collapsed.json").write_text(json.dumps(records, indent=1) + "\n")
    print(f"{name}: {len(raw)} rows, {len(records)} merges")


def wai_empty() -> pd.DataFrame:
    data = pd.read_csv(LAVAAN / "wai_sr_sim" / "wai_sr_sim.csv")
    b, a = data["site"] == "B", data["site"] == "A"
    data.loc[b & (data["wai_03"] == 1), "wai_03"] = 2
    data.loc[b & (data["wai_05"] == 2), "wai_05"] = 3
    data.loc[a & data["wai_07"].isin([1, 2]), "wai_07"] = 3
    return data


def sites5_empty() -> pd.DataFrame:
    from alliance.cfa.stage import invariance_sample
    from alliance.data.ingest import ingest_to
    from alliance.data.pool import pool_to
    from alliance.simulate.sites import simulate_sites

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "sites5"
        simulate_sites(5, project, seed=20261125, inject_errors=False)
        dirs = {}
        for codebook in sorted((project / "config" / "codebooks").glob("*.yaml")):
            out = project / "results" / codebook.stem / "ingest"
            ingest_to(codebook, out)
            dirs[codebook.stem] = out
        pooled = project / "results" / "pooled" / "ingest"
        pool_to(dirs, pooled)
        data, _, _ = invariance_sample(pooled, "dataset", session=3, rater="client")
    out = data[["dataset", *ITEMS]].copy()
    out[ITEMS] = out[ITEMS].astype("float64")
    return out


def wai_listwise_empty() -> pd.DataFrame:
    data = pd.read_csv(LAVAAN / "wai_sr_sim" / "wai_sr_sim_missing.csv")
    data.loc[data["wai_03"] == 1, "wai_01"] = float("nan")
    return data


if __name__ == "__main__":
    write("wai_empty", wai_empty(), "site", "listwise")
    write("sites5_empty", sites5_empty(), "dataset", "pairwise")
    write("wai_listwise_empty", wai_listwise_empty(), None, "listwise")
