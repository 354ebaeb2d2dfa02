"""The CFA stage of the pipeline: a dataset and estimator at a time; a failed model is a status."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.data.instruments import Instrument
from alliance.data.tidy import read_ingested
from alliance.describe.items import one_row_per_patient
from alliance.tables import write_csv

log = logging.getLogger(__name__)

ESTIMATORS = ("ML", "MLR", "WLSMV")
DEFAULT_MISSING = {"ML": "fiml", "MLR": "fiml", "WLSMV": "pairwise"}


def model_syntax(model: str, instrument: Instrument) -> tuple[str, str]:
    """The lavaan syntax of a built-in model name or of a ``.lav`` file, and its label.

    Raises
    ------
    ValueError
        If ``model`` is neither a built-in model of the instrument nor an existing file; for
        a built-in model the instrument's key cannot have, the message says why.
    """
    from alliance.sem.syntax import builtin_models

    builtins = builtin_models(instrument)
    if model in builtins:
        return builtins[model], model
    path = Path(model)
    if path.suffix == ".lav" and path.is_file():
        return path.read_text(), path.stem
    not_of_key = _not_a_model_of(model, instrument)
    if not_of_key:  # a built-in model of other instruments (correlated for a one-factor key)
        raise ValueError(not_of_key)
    raise ValueError(
        f"unknown CFA model {model!r}: not a built-in model of {instrument.name} "
        f"({', '.join(builtins)}) and not an existing .lav file"
    )


def _not_a_model_of(model: str, instrument: Instrument | None) -> str | None:
    """Why a built-in model name is not a model of this instrument's key (None if it is)."""
    from alliance.sem.syntax import BUILTIN_MODEL_NEEDS, builtin_models

    if instrument is None or model not in BUILTIN_MODEL_NEEDS:
        return None
    available = builtin_models(instrument)
    if model in available:
        return None
    return (
        f"{model} needs {BUILTIN_MODEL_NEEDS[model]}; the {instrument.name} key has "
        f"{len(instrument.factors)} factor(s) ({', '.join(instrument.factors)}), so its "
        f"models are {', '.join(available)}"
    )


def esem_rotation(
    name: str,
    syntax: str,
    instrument: Instrument | None,
    esem: dict[str, Any] | None = None,
) -> Any:
    """The rotation of a model's ``efa()`` blocks (``None`` for a model without them).

    ``esem`` is the config's ``cfa.esem`` (``rotation``: geomin, oblimin or target; ``starts``,
    ``seed``, ``se``); the target comes from the instrument's key, and the built-in
    ``bifactor_esem`` is always rotated orthogonally to it
    (:func:`alliance.sem.esem.model_rotation`).
    """
    from alliance.sem.esem import model_rotation
    from alliance.sem.syntax import efa_sets, parse_syntax

    if not efa_sets(parse_syntax(syntax)):
        return None
    esem = dict(esem or {})
    key = {} if instrument is None else {f: list(v) for f, v in instrument.factors.items()}
    options = {k: esem[k] for k in ("seed", "starts", "se") if k in esem}
    return model_rotation(name, key, esem.get("rotation", "geomin"), **options)


def read_cfa_data(
    source: str | Path, session: int | None = 3, rater: str | None = "client"
) -> tuple[pd.DataFrame, Instrument | None, dict[str, Any]]:
    """Data for a CFA: an ingested dataset folder (one row per patient) or a data file.

    Parameters
    ----------
    source
        An ingest output folder (``results/site_a/ingest``), or a ``.csv``, ``.parquet`` or
        ``.sav`` file with one row per respondent.
    session, rater
        For an ingested dataset: whose ratings, at which session, form the sample.

    Returns
    -------
    data, instrument, sample
        The rows, the instrument (None for a plain file) and how the rows were selected.
    """
    path = Path(source)
    if path.is_dir():
        items, instrument, _ = read_ingested(path)
        rows, sample = one_row_per_patient(items, instrument, session=session, rater=rater)
        return rows.reset_index(drop=True), instrument, sample
    if path.suffix == ".csv":
        data = pd.read_csv(path)
    elif path.suffix == ".parquet":
        data = pd.read_parquet(path)
    elif path.suffix == ".sav":
        import pyreadstat

        data, _ = pyreadstat.read_sav(str(path))
    else:
        raise ValueError(f"CFA data must be an ingest folder or .csv/.parquet/.sav, got {path}")
    return data, None, {"rule": f"every row of {path.name}", "n_rows": len(data)}


#: Grouping columns that vary within a patient. Their invariance sample keeps one row per
#: patient and level (for ``rater``: each rater's ratings of the configured session) instead of
#: one row per patient.
WITHIN_PATIENT_GROUPS = ("rater",)

DEPENDENCE_NOTE = (
    "the groups are not independent samples: the same patients appear in several groups "
    "(for rater: the client's and the therapist's ratings of the same session). The ladder "
    "treats them as independent groups, as multi-group rater-invariance studies commonly do, "
    "so its chi-square tests and standard errors assume independence they do not have (with "
    "positively correlated ratings, tests of rater differences tend to be conservative). A "
    "single-group model with both raters' items in one row (one factor set per rater, "
    "correlated residuals of the same item) would respect the pairing"
)


def invariance_sample(
    source: str | Path,
    group: str,
    session: int | None = 3,
    rater: str | None = "client",
) -> tuple[pd.DataFrame, Instrument | None, dict[str, Any]]:
    """The sample of an invariance ladder across ``group``.

    For a grouping column that is constant within a patient (``dataset``, ``site``,
    ``language``) this is :func:`read_cfa_data`: one row per patient, ``rater``'s ratings at
    ``session``. For a column that varies within a patient (:data:`WITHIN_PATIENT_GROUPS`,
    i.e. ``rater``) in an ingested dataset, each level gets its own one-row-per-patient
    selection (:func:`alliance.describe.items.one_row_per_patient` with that rater at ``session``),
    and the selections are stacked: one row per patient x rater. ``rater`` (the configured
    rater) comes first and is the reference group, the other levels follow in sorted order.

    Parameters
    ----------
    source
        An ingest output folder or a data file (see :func:`read_cfa_data`).
    group
        The grouping column of the ladder.
    session, rater
        The session whose ratings form the sample, and the reference rater.

    Returns
    -------
    data, instrument, sample
        The rows, the instrument (None for a plain file) and how the rows were selected; for
        a within-patient grouping, ``sample`` has ``per_group`` (each level's selection),
        ``n_patients_all_groups`` (patients in every group) and ``note`` (the dependence
        between the groups, :data:`DEPENDENCE_NOTE`).

    Raises
    ------
    ValueError
        If a within-patient grouping column is missing or has fewer than two levels.
    """
    path = Path(source)
    if group not in WITHIN_PATIENT_GROUPS or not path.is_dir():
        return read_cfa_data(source, session=session, rater=rater)
    items, instrument, _ = read_ingested(path)
    if group not in items.columns:
        raise ValueError(f"grouping column {group!r} is not in the item table of {path}")
    levels = sorted(str(v) for v in items[group].dropna().unique())
    if rater in levels:
        levels = [rater] + [v for v in levels if v != rater]
    if len(levels) < 2:
        raise ValueError(
            f"invariance across {group!r} needs at least two {group}s in {path}, got {levels}"
        )
    parts, per_group = [], {}
    for level in levels:
        rows, sample = one_row_per_patient(items, instrument, session=session, rater=level)
        parts.append(rows)
        per_group[level] = sample
    data = pd.concat(parts, ignore_index=True)
    patient_sets = [set(p["patient_id"]) for p in parts]
    sample = {
        "rule": (
            f"one row per patient and {group}: each {group}'s ratings at session {session} "
            f"({', '.join(levels)}; {levels[0]} is the reference group)"
        ),
        "n_rows_used": int(len(data)),
        "n_patients": int(data["patient_id"].nunique()),
        "n_patients_all_groups": int(len(set.intersection(*patient_sets))),
        "per_group": per_group,
        "note": DEPENDENCE_NOTE,
    }
    return data, instrument, sample


def run_cfa(
    source: str | Path,
    model: str,
    estimator: str,
    missing: str | None = None,
    session: int | None = 3,
    rater: str | None = "client",
    group: str | None = None,
    std_lv: bool = False,
    esem: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit one CFA; any failure becomes ``status: error`` in the result instead of an exception.

    ``std_lv`` (config ``cfa.std.lv``) identifies the factors by unit variances instead of
    marker indicators (lavaan's ``std.lv``); ``esem`` (config ``cfa.esem``) the rotation of a
    model with ``efa()`` blocks (:func:`esem_rotation`).

    Returns
    -------
    dict
        The :func:`alliance.sem.api.fit_cfa` result plus ``model_name``, ``sample`` and
        ``elapsed_s``; on failure ``{"status": {"ok": False, "error": ...}}`` with the same keys.
    """
    from alliance.sem.api import fit_cfa

    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    missing = missing or DEFAULT_MISSING[estimator]
    data, instrument, sample = read_cfa_data(source, session=session, rater=rater)
    started = time.perf_counter()
    skipped = _not_a_model_of(model, instrument)
    if skipped:
        log.info("CFA %s / %s skipped: %s", model, estimator, skipped)
        return {
            "converged": False,
            "status": {"ok": False, "skipped": True, "reason": skipped},
            "model_name": model,
            "estimator": estimator,
            "missing": missing,
            "sample": sample,
            "elapsed_s": 0.0,
        }
    try:
        if instrument is None:
            syntax, name = Path(model).read_text(), Path(model).stem
        else:
            syntax, name = model_syntax(model, instrument)
        kwargs: dict[str, Any] = {"estimator": estimator, "missing": missing, "group": group}
        kwargs["std_lv"] = std_lv
        if estimator == "WLSMV":
            kwargs["ordered"] = True
        kwargs["rotation"] = esem_rotation(name, syntax, instrument, esem)
        result = fit_cfa(data, syntax, **kwargs)
    except Exception as exc:  # noqa: BLE001 - one failed model must not stop the others
        log.error("CFA %s / %s failed: %s", model, estimator, exc)
        result = {
            "converged": False,
            "status": {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=5),
            },
        }
        name = Path(model).stem
    result["model_name"] = name
    result["estimator"] = estimator
    result["missing"] = missing
    result["sample"] = sample
    result["elapsed_s"] = round(time.perf_counter() - started, 3)
    return result


def run_cfa_models(
    source: str | Path,
    models: Mapping[str, str],
    estimator: str,
    out_dir: str | Path,
    **options: Any,
) -> dict[str, bool]:
    """Fit each of ``models`` with one estimator and write ``{out_dir}/{name}_{estimator}.json``.

    One process fits every competing model of a dataset: a fit takes well under a second, a
    Python process with the SEM engine about two to start, so the workflow runs one job per
    dataset and estimator rather than one per model. Each model is fitted by :func:`run_cfa`,
    whose failure is written as that model's status and never stops the others.

    Parameters
    ----------
    source
        The dataset's ingest folder (as :func:`run_cfa`).
    models
        Name in the file name -> built-in model name or path of a ``.lav`` file (config
        ``cfa.models`` and ``cfa.model_files``).
    estimator
        ML, MLR or WLSMV.
    out_dir
        Folder of the fit files.
    options
        Passed to :func:`run_cfa` (missing, session, rater, std_lv, esem).

    Returns
    -------
    dict
        Name -> whether the fit converged.
    """
    from alliance.jsonio import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    converged = {}
    for name, model in models.items():
        result = run_cfa(source, model, estimator, **options)
        write_json(out / f"{name}_{estimator}.json", result)
        converged[name] = bool(result.get("converged"))
        log.info(
            "%s / %s: converged %s in %s s",
            name,
            estimator,
            converged[name],
            result.get("elapsed_s"),
        )
    return converged


# (restricted, general) pairs of the built-in models that are nested. With three first-order
# factors the second-order model is just-identified at the structural level and equals the
# correlated-factors model; it is nested in the bifactor model (Yung, Thissen & McLeod 1999).
NESTED_PAIRS = (
    ("one_factor", "two_factor"),
    ("two_factor", "correlated"),
    ("one_factor", "correlated"),
    ("second_order", "bifactor"),
)


def _raw_fit(
    data: pd.DataFrame, syntax: str, estimator: str, missing: str, std_lv: bool = False
) -> Any:
    """The internal fit object a difference test needs."""
    from alliance.sem.api import fit_model

    ordered = True if estimator == "WLSMV" else None
    return fit_model(data, syntax, estimator, missing, std_lv=std_lv, ordered=ordered)


def nested_tests(
    source: str | Path,
    models: list[str],
    estimator: str,
    missing: str | None = None,
    session: int | None = 3,
    rater: str | None = "client",
    pairs: tuple[tuple[str, str], ...] = NESTED_PAIRS,
    std_lv: bool = False,
) -> list[dict[str, Any]]:
    """Chi-square difference tests of the nested pairs among ``models``.

    ML: the likelihood-ratio difference; MLR: the Satorra-Bentler (2001) scaled difference;
    WLSMV: the scaled-shifted difference of Satorra (2000) (lavaan's ``lavTestLRT`` defaults).
    A pair whose models fail to fit gets an ``error``, a pair with a model that does not
    converge ``not_tested``, instead of a test. Callers pass only admissible models
    (:func:`compare` does).
    """
    from alliance.sem.teststats import lrt_table

    missing = missing or DEFAULT_MISSING[estimator]
    data, instrument, _ = read_cfa_data(source, session=session, rater=rater)
    fits: dict[str, Any] = {}
    tests = []
    for restricted, general in pairs:
        if restricted not in models or general not in models:
            continue
        row: dict[str, Any] = {"restricted": restricted, "general": general}
        try:
            for name in (restricted, general):
                if name not in fits:
                    syntax = model_syntax(name, instrument)[0]
                    fits[name] = _raw_fit(data, syntax, estimator, missing, std_lv)
            r0, r1 = fits[restricted], fits[general]
            stuck = [n for n, r in ((restricted, r0), (general, r1)) if not r.converged]
            if stuck:
                row["not_tested"] = "; ".join(f"{n} did not converge" for n in stuck)
                tests.append(row)
                continue
            lrt = lrt_table([r1, r0], [general, restricted])["table"][1]
            methods = {
                "ML": "likelihood-ratio difference",
                "MLR": "Satorra-Bentler (2001) scaled difference",
                "WLSMV": "scaled-shifted difference (Satorra 2000)",
            }
            row |= {
                "chisq_diff": lrt["Chisq_diff"],
                "df_diff": lrt["Df_diff"],
                "pvalue": lrt["Pr_gt_Chisq"],
                "method": methods[estimator],
            }
            if lrt.get("note"):
                row["note"] = lrt["note"]
        except Exception as exc:  # noqa: BLE001 - a failed pair must not stop the table
            row["error"] = f"{type(exc).__name__}: {exc}"
        tests.append(row)
    return tests


def compare(
    fit_files: dict[str, str | Path],
    source: str | Path,
    estimator: str,
    missing: str | None = None,
    session: int | None = 3,
    rater: str | None = "client",
    std_lv: bool = False,
) -> dict[str, Any]:
    """Model comparison of one dataset and estimator from its per-model fit files.

    Only fits that converged and are admissible (:func:`alliance.cfa.tables.fit_status`)
    are tested; a nested pair with another fit gets ``not_tested`` with the reason instead
    of a test.

    Returns
    -------
    dict
        ``results`` (model -> fit result), ``tests`` (nested-pair difference tests with delta
        CFI / RMSEA / SRMR, or ``not_tested``), ``estimator``.
    """
    from alliance.cfa.tables import fit_status, model_label

    results = {name: json.loads(Path(p).read_text()) for name, p in fit_files.items()}
    status = {m: fit_status(r) for m, r in results.items()}
    usable = [m for m in results if status[m][0]]
    done = {
        (t["restricted"], t["general"]): t
        for t in nested_tests(source, usable, estimator, missing, session, rater, std_lv=std_lv)
    }
    tests = []
    for restricted, general in NESTED_PAIRS:
        if restricted not in results or general not in results:
            continue
        if (restricted, general) in done:
            tests.append(done[(restricted, general)])
            continue
        why = [
            f"{model_label(m)}: {status[m][1]}" for m in (restricted, general) if m not in usable
        ]
        tests.append({"restricted": restricted, "general": general, "not_tested": "; ".join(why)})
    robust = estimator != "ML"
    for test in tests:
        if "chisq_diff" not in test:
            continue
        fr, fg = results[test["restricted"]]["fit"], results[test["general"]]["fit"]
        names = ("cfi", "rmsea", "srmr") + (("cfi.robust", "rmsea.robust") if robust else ())
        test["deltas"] = {
            n: (fr[n] - fg[n]) if fr.get(n) is not None and fg.get(n) is not None else None
            for n in names
        }
    keys = ("fit", "converged", "status", "reliability", "model_name", "ntotal", "meta")
    summary = {name: {k: r.get(k) for k in keys} for name, r in results.items()}
    return {"estimator": estimator, "results": summary, "tests": tests}


def run_invariance(
    source: str | Path,
    model: str,
    group: str,
    estimator: str,
    missing: str | None = None,
    session: int | None = 3,
    rater: str | None = "client",
    parameterization: str = "delta",
    collapse_empty_categories: bool = True,
    std_lv: bool = False,
) -> dict[str, Any]:
    """The invariance ladder of ``model`` across ``group``; a failure becomes a status.

    The sample is :func:`invariance_sample`: one row per patient, or, across raters, one row
    per patient x rater (with the dependence between the groups stated in ``notes``).
    ``parameterization`` is WLSMV's scaling of the latent responses: ``"theta"`` fits the
    strict step too, ``"delta"`` (lavaan's default) stops at scalar; ML/MLR ignore it.
    ``collapse_empty_categories`` (WLSMV; config ``cfa.invariance.collapse_empty_categories``,
    on by default): a category of an item that has no responses in some group (a small
    site) is merged with an adjacent category of that item in every group, and the merges
    are listed in ``collapsed_categories`` and ``notes``; off, the ladder stops there (as
    lavaan does) and the status carries the error.
    """
    from alliance.sem.api import invariance_ladder

    missing = missing or DEFAULT_MISSING[estimator]
    try:
        data, instrument, sample = invariance_sample(source, group, session=session, rater=rater)
    except ValueError as exc:
        return {
            "status": {"ok": False, "error": f"ValueError: {exc}"},
            "model_name": model,
            "group": group,
            "estimator": estimator,
            "missing": missing,
            "sample": {},
        }
    skipped = _not_a_model_of(model, instrument)
    if skipped:
        log.info("invariance of %s across %s skipped: %s", model, group, skipped)
        return {
            "status": {"ok": False, "skipped": True, "reason": skipped, "error": skipped},
            "model_name": model,
            "group": group,
            "estimator": estimator,
            "missing": missing,
            "sample": sample,
        }
    try:
        if group not in data.columns:
            raise ValueError(f"grouping column {group!r} is not in the data ({list(data.columns)})")
        syntax, name = model_syntax(model, instrument)
        kwargs: dict[str, Any] = {"ordered": True} if estimator == "WLSMV" else {}
        kwargs["std_lv"] = std_lv
        if estimator == "WLSMV":
            kwargs["parameterization"] = parameterization
            kwargs["collapse_empty_categories"] = collapse_empty_categories
        ladder = invariance_ladder(
            data, syntax, group, estimator=estimator, missing=missing, **kwargs
        )
        ladder["status"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        ladder = {"status": {"ok": False, "error": f"{type(exc).__name__}: {exc}"}}
        name = model
    ladder |= {"model_name": name, "group": group, "estimator": estimator, "missing": missing}
    ladder["sample"] = sample
    if sample.get("note"):
        ladder["notes"] = [*ladder.get("notes", []), sample["note"]]
    return ladder


def write_cfa_report(
    fit_files: dict[str, str | Path],
    comparison_file: str | Path,
    estimator: str,
    instrument: Instrument,
    tables_dir: str | Path,
    figures_dir: str | Path,
    diagram_model: str = "correlated",
) -> dict[str, Any]:
    """Tables (CSV + Markdown) and figures of one dataset's CFA under one estimator.

    Writes ``fit_{estimator}``, ``loadings_{estimator}``, ``reliability_{estimator}`` and
    ``bifactor_{estimator}`` (bifactor indices) tables
    and the ``cfa_loadings``, ``cfa_fit`` and ``cfa_path`` figures (``_{estimator}``).
    """
    from alliance.cfa.plots import fit_comparison_plot, loading_heatmap, path_diagram
    from alliance.cfa.tables import (
        bifactor_table,
        fit_comparison_table,
        loadings_long,
        loadings_table,
        reliability_table,
    )
    from alliance.tables import write_table

    results = {name: json.loads(Path(p).read_text()) for name, p in fit_files.items()}
    comparison = json.loads(Path(comparison_file).read_text())
    tables, figures = Path(tables_dir), Path(figures_dir)
    tables.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    fitted = {k: v for k, v in results.items() if v.get("standardized")}
    write_table(fit_comparison_table(results, estimator), tables / f"fit_{estimator}")
    write_table(loadings_table(fitted), tables / f"loadings_{estimator}")
    write_table(reliability_table(fitted), tables / f"reliability_{estimator}")
    write_table(bifactor_table(fitted), tables / f"bifactor_{estimator}")
    write_csv(
        pd.DataFrame(comparison["tests"]).drop(columns=["deltas"], errors="ignore"),
        tables / f"nested_tests_{estimator}.csv",
        index=False,
    )
    loading_heatmap(
        loadings_long(fitted, instrument.factors), instrument, figures / f"cfa_loadings_{estimator}"
    )
    fit_comparison_plot(results, estimator, figures / f"cfa_fit_{estimator}")
    diagram = path_diagram(
        results.get(diagram_model, {}), figures / f"cfa_path_{estimator}", title=None
    )
    return {"diagram": diagram.get("status"), "models": sorted(results)}


def write_invariance_report(
    ladder_file: str | Path, estimator: str, tables_dir: str | Path, figures_dir: str | Path
) -> None:
    """The invariance table (CSV + Markdown) and the deltas figure of one ladder."""
    from alliance.cfa.plots import invariance_deltas_plot
    from alliance.cfa.tables import invariance_table
    from alliance.tables import write_table

    ladder = json.loads(Path(ladder_file).read_text())
    stem = Path(ladder_file).stem
    Path(tables_dir).mkdir(parents=True, exist_ok=True)
    Path(figures_dir).mkdir(parents=True, exist_ok=True)
    if not ladder.get("status", {}).get("ok"):
        write_csv(
            pd.DataFrame([{"status": ladder.get("status", {}).get("error", "failed")}]),
            Path(tables_dir) / f"{stem}.csv",
            index=False,
        )
        from alliance.cfa.plots import _placeholder

        _placeholder(Path(figures_dir) / stem, f"invariance failed: {ladder['status']}")
        return
    write_table(
        invariance_table(ladder, estimator, group=ladder.get("group")), Path(tables_dir) / stem
    )
    invariance_deltas_plot(ladder, Path(figures_dir) / stem, estimator=estimator)
