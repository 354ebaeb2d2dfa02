"""The IRT stage: item answers in, GRM or Rasch PCM fits, tables and figures out.

``alliance irt`` and rule ``irt`` call :func:`run_irt`. The data are one row per respondent:
an ingested dataset's ratings of one rater at one session (as the CFA's sample,
:func:`alliance.cfa.stage.read_cfa_data`) or a CSV/Parquet/SPSS file. The items are fitted
per factor of the instrument by default (``by="factor"``): both models assume one trait, and
the WAI-SR measures three correlated ones (Bond, Task, Goal; Goal and Task correlate about .9),
so one unidimensional model of all 12 items would absorb the Bond-vs-Goal/Task split into its
discriminations and item fit. ``by="none"`` fits the chosen items as one scale (the
two-factor view of Falkenstrom et al. 2015 can be fitted by listing the Goal and Task items).
A scale whose data cannot support the model (an item with one category, no convergence, a
singular information matrix) is reported with its status and reason and gets no table row
values, no curve, no map point; the other scales go on. Nothing written holds a patient
identifier or a person's score: persons appear only as a histogram of locations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance.irt.grm import eap_scores, fit_grm, information_curves
from alliance.irt.pcm import fit_pcm, item_fit, person_parameters
from alliance.irt.responses import response_codes
from alliance.jsonio import write_json
from alliance.tables import write_csv_and_markdown

__all__ = ["MODELS", "item_table", "run_irt"]

MODELS = ("grm", "pcm")
#: Bins of the persons' location histograms (the threshold map's upper panel).
EDGES = np.linspace(-5.0, 5.0, 51)


def _read(source: str | Path, session: int | None, rater: str | None):
    from alliance.cfa.stage import read_cfa_data

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    return read_cfa_data(path, session=session, rater=rater)


def _scales(instrument: Any, items: Sequence[str] | None, by: str) -> list[tuple[str, list[str]]]:
    if by not in ("factor", "none"):
        raise ValueError(f"--by must be 'factor' or 'none', got {by!r}")
    if items:
        chosen = [str(i) for i in items]
        if instrument is None or by == "none":
            return [("items", chosen)]
        out = [
            (f, [i for i in members if i in chosen]) for f, members in instrument.factors.items()
        ]
        return [(f, m) for f, m in out if m]
    if instrument is None:
        raise ValueError("a data file needs --items or --instrument to name the item columns")
    if by == "none":
        return [("all items", list(instrument.items))]
    return [(f, list(m)) for f, m in instrument.factors.items()]


def _histogram(values: np.ndarray) -> list[int]:
    finite = values[np.isfinite(values)]
    return np.histogram(np.clip(finite, EDGES[0], EDGES[-1]), EDGES)[0].tolist()


def _fit_scale(
    model: str, data: pd.DataFrame, items: list[str], scale: Sequence[int], source: str
) -> dict[str, Any]:
    responses = response_codes(data, items, scale, source=source)
    out: dict[str, Any] = {"coding": responses.to_dict()}
    if model == "grm":
        fit = fit_grm(responses)
        out["fit"] = {k: v for k, v in fit.items() if k != "params"}
        if fit["status"] == "converged":
            eap, sd = eap_scores(fit, responses)
            curves = information_curves(fit, np.linspace(-4, 4, 33))
            out["persons"] = {
                "score": "EAP (posterior mean), N(0, 1) prior",
                "n": int(eap.size),
                "mean": float(eap.mean()),
                "sd": float(eap.std(ddof=1)),
                "mean_posterior_sd": float(sd.mean()),
                # marginal reliability: var(EAP) / (var(EAP) + mean posterior variance)
                "marginal_reliability": float(eap.var() / (eap.var() + np.mean(sd**2))),
                "histogram": _histogram(eap),
            }
            out["information"] = {
                "theta": curves["theta"].tolist(),
                "items": {k: v.tolist() for k, v in curves["items"].items()},
                "test": curves["test"].tolist(),
            }
    else:
        fit = fit_pcm(responses)
        out["fit"] = fit
        if fit["status"] == "converged":
            persons = person_parameters(fit, responses)
            fits = {r["item"]: r for r in item_fit(fit, responses, persons)}
            for row in fit["items"]:
                extra = fits[row["item"]]
                row.update({k: v for k, v in extra.items() if k not in ("item", "n")})
                row["n_fit"] = extra["n"]  # the non-extreme persons who answered it
            theta = persons["theta"]
            out["persons"] = {
                "score": "ML location (extreme scores: eRm's spline)",
                "n": int(theta.size),
                "n_extreme": int(persons["extreme"].sum()),
                "mean": float(np.nanmean(theta)),
                "sd": float(np.nanstd(theta, ddof=1)),
                "histogram": _histogram(theta),
            }
    for row, cats in zip(out["fit"]["items"], responses.categories, strict=True):
        row["categories"] = [list(c) for c in cats]
    return out


def item_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per item: scale, status, parameters with SEs, threshold order, fit (PCM)."""
    rows = []
    for scale in result["scales"]:
        fit = scale["fit"]
        usable = fit.get("status") == "converged"
        for item in fit.get("items", []) or [{"item": i} for i in scale["items"]]:
            row: dict[str, Any] = {"scale": scale["name"], "item": item["item"]}
            row["status"] = fit.get("status", "skipped")
            if usable and result["model_key"] == "grm":
                row["a"] = item["a"]
                row["se_a"] = item["se_a"]
                for k, (b, se) in enumerate(zip(item["b"], item["se_b"] or [], strict=False)):
                    row[f"b{k + 1}"] = b
                    row[f"se_b{k + 1}"] = se
            elif usable:
                row["location"] = item["location"]
                for k, (t, se) in enumerate(
                    zip(item["thresholds"], item["se_thresholds"] or [], strict=False)
                ):
                    row[f"threshold{k + 1}"] = t
                    row[f"se_threshold{k + 1}"] = se
                for key in ("infit_msq", "infit_t", "outfit_msq", "outfit_t"):
                    row[key] = item.get(key)
            if usable:
                row["ordered"] = item["ordered"]
                row["disordered"] = "; ".join(
                    f"{a}>{b}" for a, b in item.get("disordered", [])
                ) or ("" if item["ordered"] else "b not increasing")
            rows.append(row)
    return pd.DataFrame(rows)


def run_irt(
    source: str | Path,
    model: str,
    out_dir: str | Path,
    *,
    items: Sequence[str] | None = None,
    instrument: str | None = None,
    by: str = "factor",
    session: int | None = 3,
    rater: str | None = "client",
    scale: Sequence[int] | None = None,
    dataset_name: str | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """Fit ``model`` (``grm`` or ``pcm``) to the items of ``source`` and write the results.

    Writes into ``out_dir``: ``irt.json`` (the sample, per scale the coding with its
    collapse notes, the fit or the reason it failed, the persons' summary and, for the GRM,
    information curves), ``items.csv``/``items.md`` (:func:`item_table`) and, with
    ``figures``, ``category_curves.png``/``.pdf`` and ``threshold_map.png``/``.pdf``.

    Parameters
    ----------
    source
        An ingest folder (``results/site_a/ingest``) or a ``.csv``/``.parquet``/``.sav`` file
        with one row per respondent.
    out_dir
        The folder written.
    model
        ``grm`` (Samejima's graded response model, marginal ML, logistic metric) or ``pcm``
        (Rasch partial credit model, conditional ML as eRm).
    items, instrument, by
        The item columns (default: the instrument's), the instrument (a built-in name or a
        YAML path; an ingest folder brings its own) and ``factor`` (one model per factor) or
        ``none`` (one model of all the items).
    session, rater
        For an ingest folder: whose ratings at which session form the sample.
    scale
        The response categories, e.g. ``range(1, 6)`` (default: the instrument's; without an
        instrument, every whole number from the lowest to the highest answer).
    dataset_name
        Named in the JSON, tables and figure titles (default: the source's file name).
    figures
        Draw the category curves and the threshold map.

    Raises
    ------
    ValueError, OSError
        Bad input: a missing file or column, an off-scale value (file, column, row, value), an
        unknown model.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    data, inst, sample = _read(source, session, rater)
    if instrument is not None:
        from alliance.data.instruments import load_instrument

        inst = load_instrument(instrument)
    name = dataset_name or Path(source).name
    if inst is not None and inst.continuous and scale is None:
        raise ValueError(
            f"{name}: item response models are models of ordered categories; instrument "
            f"{inst.name!r} has a continuous scale (step {inst.scale_step:g})"
        )
    if scale is not None:
        scale = [int(v) for v in scale]
    elif inst is not None:
        scale = list(inst.categories)
    else:
        cols = [c for c in (items or []) if c in data.columns]
        values = pd.to_numeric(data[cols].melt()["value"], errors="coerce").dropna()
        whole = values[values == values.round()]
        if whole.empty:
            raise ValueError(f"{name}: no whole-number answers in the items {list(items or [])}")
        scale = list(range(int(whole.min()), int(whole.max()) + 1))
    result: dict[str, Any] = {
        "dataset": name,
        "model_key": model,
        "by": by,
        "instrument": None if inst is None else inst.name,
        "scale_categories": scale,
        "sample": sample,
        "scales": [],
    }
    if inst is not None and by == "factor":
        result["dimensionality"] = (
            f"one model per factor of {inst.name} ({', '.join(inst.factors)}): the models "
            "assume one trait and the instrument measures correlated factors"
        )
    for label, members in _scales(inst, items, by):
        entry: dict[str, Any] = {"name": label, "items": members}
        try:
            entry.update(_fit_scale(model, data, members, scale, name))
        except ValueError as err:
            if "not found" in str(err) or "not a category" in str(err):
                raise  # bad input stops the command
            entry["fit"] = {"status": "skipped", "reason": str(err), "items": []}
        if entry["fit"].get("status") not in ("converged", "skipped"):
            entry["fit"]["reason"] = f"fit status {entry['fit']['status']}: no SEs, no figure"
        result["scales"].append(entry)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "irt.json", result)
    kind = "graded response model" if model == "grm" else "Rasch partial credit model"
    notes = [n for s in result["scales"] for n in s.get("coding", {}).get("notes", [])]
    write_csv_and_markdown(
        item_table(result),
        out / "items.csv",
        title=f"{name}: {kind}, item parameters",
        note="; ".join(notes) or None,
    )
    if figures:
        from alliance.irt.plots import category_curves_figure, threshold_map_figure

        label = f"{name}: {kind}"
        category_curves_figure(result, out / "category_curves", title=label)
        threshold_map_figure(result, out / "threshold_map", title=label)
    return result
