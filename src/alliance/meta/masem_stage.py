"""The MASEM stage: pool the item datasets' correlation matrices, fit the competing models.

:func:`run_masem` (rule ``masem`` and ``alliance masem``) reads each item dataset's item
correlations, runs the two stages (:func:`alliance.meta.masem.masem`) and writes
``results/meta/masem/``: ``masem.json`` and the tables. A dataset the analysis cannot use is
left out with its reason, and with fewer than two matrices the result is written with
``status: skipped`` and the reason, never failing the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_MASEM_MODELS", "item_correlations", "read_matrices", "run_masem"]

#: Stage-2 models fitted by default (the CFA stage's names).
DEFAULT_MASEM_MODELS = ("one_factor", "two_factor", "correlated", "bifactor")


def item_correlations(
    sources: Mapping[str, str | Path], session: int = 3, rater: str = "client"
) -> dict[str, Any]:
    """Each item dataset's Pearson item correlation matrix (one row per patient, complete rows).

    The sample of the CFA (:func:`alliance.cfa.stage.read_cfa_data`: the ``rater``'s ratings
    at ``session``). Datasets whose instrument has other items than the first dataset's, or
    with too few complete rows, are left out with the reason.

    Returns
    -------
    dict
        ``instrument`` (of the first dataset), ``variables``, ``datasets`` (names),
        ``matrices``, ``n``, ``excluded`` (name -> reason), ``samples`` (name -> the row
        selection).
    """
    from alliance.cfa.stage import read_cfa_data
    from alliance.meta.masem import correlation_matrix

    out: dict[str, Any] = {"instrument": None, "variables": [], "datasets": [], "matrices": []}
    out |= {"n": [], "excluded": {}, "samples": {}}
    for name, folder in sources.items():
        data, instrument, sample = read_cfa_data(folder, session=session, rater=rater)
        if out["instrument"] is None:
            out["instrument"] = instrument
            out["variables"] = list(instrument.items)
        elif list(instrument.items) != out["variables"]:
            out["excluded"][name] = (
                f"instrument {instrument.name} has other items than {out['instrument'].name}"
            )
            continue
        try:
            cor, n = correlation_matrix(data, out["variables"])
        except ValueError as err:
            out["excluded"][name] = str(err)
            continue
        out["datasets"].append(name)
        out["matrices"].append(cor)
        out["n"].append(n)
        out["samples"][name] = sample
    return out


def read_matrices(path: str | Path, instrument: str | None = None) -> dict[str, Any]:
    """Correlation matrices from a JSON file, in the form :func:`run_masem` takes.

    The file holds ``{"variables": [...], "studies": [{"study": ..., "n": ..., "R": [[...]]},
    ...]}``; ``null`` marks a correlation (or, on the diagonal, a variable) a study did not
    report. ``instrument`` (a built-in name or instrument file) is what built-in model names
    refer to; its items must be the variables.

    Raises
    ------
    ValueError
        For a file without ``variables`` and ``studies``, or an instrument whose items are not
        the variables.
    """
    from alliance.data.instruments import load_instrument

    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or "variables" not in doc or "studies" not in doc:
        raise ValueError(f"{path}: expected a JSON object with 'variables' and 'studies'")
    variables = [str(v) for v in doc["variables"]]
    matrices, n, names = [], [], []
    for k, study in enumerate(doc["studies"]):
        try:
            rows = [[np.nan if v is None else float(v) for v in row] for row in study["R"]]
            matrices.append(np.array(rows, dtype=float))
            n.append(study["n"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: study {k + 1} needs 'n' and a numeric 'R' ({err})") from err
        names.append(str(study.get("study", k + 1)))
    inst = load_instrument(instrument) if instrument else None
    if inst is not None and list(inst.items) != variables:
        raise ValueError(
            f"{path}: the variables {variables} are not the items of {inst.name} {list(inst.items)}"
        )
    return {
        "instrument": inst,
        "variables": variables,
        "datasets": names,
        "matrices": matrices,
        "n": n,
        "excluded": {},
        "samples": {},
        "sample_rule": f"correlation matrices of {Path(path).name}",
    }


def run_masem(
    sources: Mapping[str, str | Path] | None,
    out_dir: str | Path,
    settings: Mapping[str, Any] | None = None,
    session: int = 3,
    rater: str = "client",
    inputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """MASEM over the item datasets; writes ``masem.json`` and the tables to ``out_dir``.

    Parameters
    ----------
    sources
        Dataset name -> its ingest folder (:func:`item_correlations`), or None with
        ``inputs``.
    out_dir
        ``results/meta/masem``.
    settings
        config ``meta.masem``: ``models`` (stage-2 models: built-in names or ``.lav`` files,
        as ``cfa.models``), ``methods`` (``fixed``, ``random``), ``acov``.
    session, rater
        The sample (as the CFA's).
    inputs
        Correlation matrices given directly (:func:`read_matrices`) instead of ``sources``.

    Returns
    -------
    dict
        :func:`alliance.meta.masem.masem`'s result with ``status`` (``ok`` or ``skipped``
        with ``reason``), ``datasets``, ``excluded``, ``samples``, ``models`` (syntax) and
        ``notes``. Files: ``masem.json``; ``correlations.csv`` (pooled correlations, SEs,
        tau2 and I2 per pair), ``fit.csv`` (stage 2 per method and model), ``parameters.csv``
        and ``comparisons.csv``, each with a ``.md`` beside it.

    Raises
    ------
    ValueError
        For an unknown ``acov`` or model, or bad matrices.
    """
    from alliance.cfa.stage import NESTED_PAIRS, model_syntax
    from alliance.jsonio import write_json
    from alliance.meta.masem import ACOV_METHODS, METHODS, masem

    settings = dict(settings or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = list(settings.get("methods") or METHODS)
    acov = str(settings.get("acov", "weighted"))
    if acov not in ACOV_METHODS:
        raise ValueError(f"meta.masem.acov must be one of {ACOV_METHODS}, got {acov!r}")
    names = list(settings.get("models") or DEFAULT_MASEM_MODELS)
    if inputs is None:
        inputs = item_correlations(sources or {}, session=session, rater=rater)
        rule = (
            f"{rater} ratings at session {session}, one row per patient; Pearson correlations "
            "of the items over the complete rows"
        )
    else:
        rule = inputs.get("sample_rule", "correlation matrices given")
    base = {
        "datasets": inputs["datasets"],
        "excluded": inputs["excluded"],
        "samples": inputs["samples"],
        "sample_rule": rule,
    }
    if len(inputs["datasets"]) < 2:
        reason = f"MASEM needs at least two correlation matrices, got {len(inputs['datasets'])}"
        result = {"status": "skipped", "reason": reason, **base}
        write_json(out / "masem.json", result)
        _masem_tables(result, out)
        return result
    models = {}
    for name in names:  # a built-in name or a .lav file (labelled by its stem)
        if inputs["instrument"] is None:
            if not (Path(name).suffix == ".lav" and Path(name).is_file()):
                raise ValueError(f"model {name!r}: without an instrument, give a .lav file")
            syntax, label = Path(name).read_text(), Path(name).stem
        else:
            syntax, label = model_syntax(name, inputs["instrument"])
        models[label] = syntax
    result = masem(
        inputs["matrices"],
        inputs["n"],
        inputs["variables"],
        models,
        studies=inputs["datasets"],
        methods=methods,
        pairs=NESTED_PAIRS,
        acov=acov,
    )
    instrument = inputs["instrument"].name if inputs["instrument"] is not None else None
    result |= {"status": "ok", **base, "models": models, "instrument": instrument}
    result["model_order"] = list(models)  # the JSON's keys are sorted
    result["notes"] = _masem_notes(result)
    write_json(out / "masem.json", result)
    _masem_tables(result, out)
    return result


def _masem_notes(result: Mapping[str, Any]) -> list[str]:
    notes = [f"{name} left out: {why}" for name, why in result["excluded"].items()]
    for method, stage2 in result["stage2"].items():
        if stage2.get("skipped"):
            notes.append(f"stage 2 ({method} effects) not run: {stage2['skipped']}")
        for model, fit in stage2["models"].items():
            if fit["status"] != "ok":
                issues = "; ".join(fit["issues"]) or fit["status"]
                notes.append(f"stage 2 ({method} effects), {model}: {fit['status']} ({issues})")
    random = result["stage1"].get("random")
    if random and len(result["datasets"]) < 5:
        notes.append(
            f"random effects from {len(result['datasets'])} datasets: each correlation's tau2 "
            "is estimated from very few samples (often 0)"
        )
    return notes


def _masem_tables(result: Mapping[str, Any], out: Path) -> None:
    from alliance.tables import write_csv_and_markdown

    stage1 = result.get("stage1") or {}
    rows: dict[str, dict[str, Any]] = {}
    for method, s1 in stage1.items():
        for c in s1["correlations"]:
            row = rows.setdefault(c["parameter"], {"pair": c["parameter"]})
            row[f"r_{method}"] = c["estimate"]
            row[f"se_{method}"] = c["se"]
            if method == "random":
                row["tau2"], row["I2"] = c["tau2"], c["I2"]
    skipped = f"Not run: {result['reason']}" if result.get("status") == "skipped" else None
    write_csv_and_markdown(
        pd.DataFrame(list(rows.values()), columns=_columns(rows, ["pair"])),
        out / "correlations.csv",
        "MASEM stage 1: pooled item correlations",
        note=skipped
        or "Fixed effects: one correlation matrix for all datasets (multi-group ML, Cheung & "
        "Chan 2005); random effects: multivariate ML with one heterogeneity variance tau2 per "
        "correlation; I2 with Higgins & Thompson's typical sampling variance.",
    )
    fit_rows, par_rows, test_rows = [], [], []
    keys = ("chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr", "aic", "bic")
    for method, s2 in (result.get("stage2") or {}).items():
        for model, fit in s2["models"].items():
            measures = fit["fit"] or {}
            fit_rows.append(
                {"method": method, "model": model, "status": fit["status"]}
                | {k: measures.get(k) for k in keys}
            )
            for p in fit["parameters"]:
                par_rows.append(
                    {"method": method, "model": model}
                    | {
                        k: p.get(k)
                        for k in ("lhs", "op", "rhs", "est", "se", "ci.lower", "ci.upper")
                    }
                )
        for t in s2["comparisons"]:
            deltas = t.get("deltas") or {}
            test_rows.append(
                {
                    "method": method,
                    "restricted": t["restricted"],
                    "general": t["general"],
                    "chisq_diff": t.get("chisq_diff"),
                    "df_diff": t.get("df_diff"),
                    "pvalue": t.get("pvalue"),
                    "delta_cfi": deltas.get("cfi"),
                    "delta_rmsea": deltas.get("rmsea"),
                    "delta_aic": deltas.get("aic"),
                    "delta_bic": deltas.get("bic"),
                    "not_tested": t.get("not_tested"),
                }
            )
    fit_note = (
        "WLS on the pooled correlation matrix with the inverse of its asymptotic covariance "
        "(TSSEM stage 2; metaSEM's tssem2): chi-square test, CFI and TLI against the "
        "independence model, RMSEA with N = the total sample size, SRMR of the correlations, "
        "AIC = chisq - 2 df and BIC = chisq - log(N) df (metaSEM's). A model that did not "
        "converge or is inadmissible (Heywood case) has no fit indices."
    )
    write_csv_and_markdown(
        pd.DataFrame(fit_rows, columns=["method", "model", "status", *keys]),
        out / "fit.csv",
        "MASEM stage 2: fit of the competing models",
        note=skipped or fit_note,
    )
    write_csv_and_markdown(
        pd.DataFrame(
            par_rows,
            columns=["method", "model", "lhs", "op", "rhs", "est", "se", "ci.lower", "ci.upper"],
        ),
        out / "parameters.csv",
        "MASEM stage 2: standardized loadings and factor correlations",
        note=skipped
        or "Factors have unit variances; residual variances (~~ of an item) are 1 minus the "
        "communality, computed rather than estimated (no SE).",
    )
    write_csv_and_markdown(
        pd.DataFrame(
            test_rows,
            columns=[
                "method",
                "restricted",
                "general",
                "chisq_diff",
                "df_diff",
                "pvalue",
                "delta_cfi",
                "delta_rmsea",
                "delta_aic",
                "delta_bic",
                "not_tested",
            ],
        ),  # fmt: skip
        out / "comparisons.csv",
        "MASEM stage 2: nested model comparisons",
        note=skipped
        or "Chi-square difference of the restricted minus the general model (WLS with the "
        "optimal weight: asymptotically chi-square); deltas are restricted minus general.",
    )


def _columns(rows: Mapping[str, Mapping[str, Any]], first: Sequence[str]) -> list[str]:
    seen = list(first)
    for row in rows.values():
        seen += [k for k in row if k not in seen]
    return seen
