"""The pooling stage: gather each dataset's effect and published effects, pool, plot."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd


def gather_effects(
    dataset_effects: Mapping[str, str | Path], published: Mapping[str, str | Path]
) -> tuple[pd.DataFrame, list[str]]:
    """One table (study, r, n, source) of the datasets' effects and the published effects.

    A dataset whose effect could not be computed is left out and named in the notes.
    """
    rows, notes = [], []
    for name, path in dataset_effects.items():
        effect = json.loads(Path(path).read_text())
        if effect.get("r") is None:
            notes.append(f"{name}: no effect ({effect.get('status')}); left out of the pooling")
            continue
        rows.append({"study": name, "r": effect["r"], "n": int(effect["n"]), "source": "dataset"})
    for name, path in published.items():
        table = pd.read_parquet(path)
        table = table.drop(columns=["source_row"], errors="ignore").assign(
            source=f"published:{name}"
        )
        rows += table.to_dict(orient="records")
    return pd.DataFrame(rows), notes


def pooling_table(effects: pd.DataFrame, cluster: str | None) -> pd.DataFrame:
    """The gathered effects ready for pooling: correlations only, clusters filled in.

    With ``cluster`` (a column of the published effects), a dataset's own effect, which has
    no cluster, is a cluster of its own (labelled by its name).

    Raises
    ------
    ValueError
        If a published table holds ``yi``, ``vi`` (the workflow pools correlations) or the
        cluster column is in no published table.

    """
    if {"yi", "vi"} & set(effects.columns):
        raise ValueError(
            "the workflow pools the datasets' correlations with published correlations "
            "(study, r, n); a published table with yi, vi can be pooled on its own with "
            "`alliance meta`"
        )
    if cluster is None:
        return effects
    if cluster not in effects.columns:
        raise ValueError(
            f"meta.cluster: column {cluster!r} is not in the published effects, got "
            f"{sorted(effects.columns)}"
        )
    out = effects.copy()
    out[cluster] = out[cluster].where(out[cluster].notna(), out["study"])
    return out


def run_meta(
    dataset_effects: Mapping[str, str | Path],
    published: Mapping[str, str | Path],
    out_dir: str | Path,
    settings: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Pool every effect by REML (and Bayesian random effects), write JSON, tables and figures.

    ``settings`` is the config's ``meta`` block: ``method``, ``moderator`` (one, z tests),
    ``moderators`` (several at once, Knapp-Hartung), ``cluster`` (a column of the published
    effects: three-level model; each dataset's own effect is its own cluster), ``robust``,
    ``selection`` and ``steps`` (:func:`alliance.meta.analysis.pool_effects`).

    Writes ``meta.json`` (``pooled_z``, ``pooled_r``, ``heterogeneity``, ..., ``bayes``),
    ``studies.csv``, ``leave_one_out.csv`` and the forest and funnel plots (PNG and PDF).
    """
    from alliance.jsonio import jsonable, write_json
    from alliance.meta.analysis import pool_effects
    from alliance.meta.bayes import pool_effects_bayes
    from alliance.meta.plots import forest_plot, funnel_plot

    effects, notes = gather_effects(dataset_effects, published)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    moderator = settings.get("moderator")
    moderators = list(settings.get("moderators") or [])
    cluster = settings.get("cluster")
    effects = pooling_table(effects, cluster)
    result = pool_effects(
        effects,
        moderator=moderator,
        method=settings.get("method", "REML"),
        cluster=cluster,
        robust=bool(settings.get("robust", False)),
        selection=settings.get("selection"),
        steps=tuple(settings.get("steps") or (0.025,)),
        moderators=moderators or None,
    )
    bayes_settings = dict(settings.get("bayes", {}))
    result["bayes"] = pool_effects_bayes(effects[["study", "r", "n"]], seed=seed, **bayes_settings)
    result["notes"] = notes
    result["effects"] = effects.to_dict(orient="records")
    result = jsonable(result)
    write_json(out / "meta.json", result)
    from alliance.tables import write_csv, write_csv_and_markdown

    write_csv_and_markdown(
        pd.DataFrame(result["studies"]),
        out / "studies.csv",
        "Studies in the meta-analysis",
        note="r with 95% CI, Fisher z, sampling variance 1/(n - 3) and random-effects weight.",
    )
    if result.get("leave_one_out") is not None:
        write_csv(pd.DataFrame(result["leave_one_out"]), out / "leave_one_out.csv", index=False)
    forest_plot(result, out / "forest", bayes=result["bayes"], size="double")
    funnel_plot(result, out / "funnel")
    return result
