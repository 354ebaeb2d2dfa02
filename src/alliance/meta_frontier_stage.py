"""The MASEM and one-stage IPD stages: read the datasets' results, run, write JSON and tables.

:func:`run_masem` pools the item datasets' correlation matrices (:mod:`alliance.meta_masem`)
into ``results/meta/masem/``; :func:`run_ipd` fits the one-stage model
(:mod:`alliance.meta_ipd`) beside the two-stage pooled correlation into ``results/meta/ipd/``.
A dataset the analysis cannot use is left out with its reason, and an analysis the data
cannot support is written with ``status: skipped`` and the reason, never failing the run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: Stage-2 models fitted by default (the CFA stage's names).
DEFAULT_MASEM_MODELS = ("one_factor", "two_factor", "correlated", "bifactor")
#: Sampler settings of the one-stage model over ``bayes.sampler``: with 2 x 2,000 draws the
#: therapist SD's tail ESS on the demo was 408, at the 400 threshold; sampling is a few
#: seconds of the fit (compiling the model takes most of it), so twice the draws.
IPD_SAMPLER = {"draws": 4000}


def _write_json(result: dict[str, Any], path: Path) -> None:
    from alliance.meta import jsonable

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(result), indent=1, sort_keys=True, allow_nan=False))


# --------------------------------------------------------------------------- MASEM


def item_correlations(
    sources: Mapping[str, str | Path], session: int = 3, rater: str = "client"
) -> dict[str, Any]:
    """Each item dataset's Pearson item correlation matrix (one row per patient, complete rows).

    The sample of the CFA (:func:`alliance.cfa_stage.read_cfa_data`: the ``rater``'s ratings
    at ``session``). Datasets whose instrument has other items than the first dataset's, or
    with too few complete rows, are left out with the reason.

    Returns
    -------
    dict
        ``instrument`` (of the first dataset), ``variables``, ``datasets`` (names),
        ``matrices``, ``n``, ``excluded`` (name -> reason), ``samples`` (name -> the row
        selection).
    """
    from alliance.cfa_stage import read_cfa_data
    from alliance.meta_masem import correlation_matrix

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
    import numpy as np

    from alliance.instruments import load_instrument

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
        :func:`alliance.meta_masem.masem`'s result with ``status`` (``ok`` or ``skipped``
        with ``reason``), ``datasets``, ``excluded``, ``samples``, ``models`` (syntax) and
        ``notes``. Files: ``masem.json``; ``correlations.csv`` (pooled correlations, SEs,
        tau2 and I2 per pair), ``fit.csv`` (stage 2 per method and model), ``parameters.csv``
        and ``comparisons.csv``, each with a ``.md`` beside it.

    Raises
    ------
    ValueError
        For an unknown ``acov`` or model, or bad matrices.
    """
    from alliance.cfa_stage import NESTED_PAIRS, model_syntax
    from alliance.meta_masem import ACOV_METHODS, METHODS, masem

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
        _write_json(result, out / "masem.json")
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
    _write_json(result, out / "masem.json")
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


# --------------------------------------------------------------------------- one-stage IPD


def run_ipd(
    sources: Mapping[str, str | Path],
    effect_files: Mapping[str, str | Path],
    out_dir: str | Path,
    *,
    alliance_session: int = 3,
    measure: str = "phq9",
    priors: Mapping[str, float] | None = None,
    sampler: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The one-stage IPD model beside the two-stage pooled r; writes ``ipd.json``, ``summary.csv``.

    Parameters
    ----------
    sources
        Dataset name -> its results folder (``results/{dataset}`` with ``ingest/`` and
        ``scores/``).
    effect_files
        Dataset name -> its ``effects/effect.json`` (the two-stage inputs).
    out_dir
        ``results/meta/ipd``.
    alliance_session, measure
        As the per-dataset effects (config ``meta``).
    priors, sampler
        config ``bayes.priors``; ``bayes.sampler`` updated with :data:`IPD_SAMPLER` and
        ``meta.ipd.sampler``.

    Returns
    -------
    dict
        ``status`` (``pass``/``fail``, or ``skipped`` with ``reason``), ``bayes`` (the
        one-stage fit, :func:`alliance.meta_ipd.fit_ipd` without its table; under ``bayes``,
        as in ``meta.json``, so that ``alliance verify`` judges its diagnostics by their
        thresholds), ``two_stage``
        (:func:`alliance.meta_ipd.two_stage`), ``excluded``. ``summary.csv`` holds the
        posterior summary of the population-level parameters (no patient identifier: none
        is in the model).
    """
    from alliance.bayes.data import InsufficientData
    from alliance.bayes.diagnostics import SUMMARY_COLUMNS
    from alliance.meta_ipd import combine_sites, fit_ipd, site_frames, two_stage
    from alliance.tables import write_csv_and_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    effects = {name: json.loads(Path(p).read_text()) for name, p in effect_files.items()}
    result: dict[str, Any] = {"two_stage": two_stage(effects)}
    frames, excluded = site_frames(sources, alliance_session=alliance_session, measure=measure)
    result["excluded"] = excluded
    try:
        data = combine_sites(frames)
    except InsufficientData as exc:
        result |= {"status": "skipped", "reason": str(exc)}
        table = pd.DataFrame(columns=SUMMARY_COLUMNS)
    else:
        fit = fit_ipd(data, priors=priors, sampler={**(sampler or {})})
        table = fit.pop("summary")
        # numbers of the draws without their Monte Carlo error stay out of ipd.json (alliance
        # verify compares it); the posterior summary with MCSEs is summary.csv
        for key in ("bfmi", "max_mcse_mean"):
            fit["diagnostics"].pop(key, None)
        result |= {"status": fit["status"], "bayes": fit}
    _write_json(result, out / "ipd.json")
    note = (
        "Posterior of the one-stage model: standardized outcome on alliance and baseline "
        "(z-scores within site), site intercepts, baseline slopes and residual SDs, "
        "site-varying alliance slopes b_site = mu_b + tau_b eta, therapist intercepts (SD "
        "tau_u); r_pooled is the partial correlation mu_b implies."
    )
    write_csv_and_markdown(
        table,
        out / "summary.csv",
        "One-stage IPD model: posterior summary",
        note=f"Not estimated: {result['reason']}" if result["status"] == "skipped" else note,
    )
    return result


def ipd_sampler(bayes_sampler: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict:
    """``bayes.sampler`` updated with :data:`IPD_SAMPLER` and the config's ``meta.ipd.sampler``."""
    return {**dict(bayes_sampler), **IPD_SAMPLER, **dict(override or {})}


# --------------------------------------------------------------------------- summary


def ipd_summary_rows(results: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Rows of the results summary's meta-analysis table for ``meta/ipd/ipd.json``.

    The two-stage pooled r of the item datasets and the one-stage model's pooled r, slope and
    between-site SD of the slope, side by side; and warnings for a failed or skipped fit.
    """
    from alliance.report import _apa, _interval

    ipd = _read(results / "meta" / "ipd" / "ipd.json")
    if ipd is None:
        return [], []
    rows, warnings = [], []
    two = ipd.get("two_stage") or {}
    if two.get("status") == "ok":
        r = two["pooled_r"]
        rows.append(
            (
                f"IPD two-stage: pooled r of the {two['k']} item datasets [95% CI]; tau (z)",
                f"{_apa(r['estimate'], 3)} {_interval(r['ci.lb'], r['ci.ub'])}; "
                f"{_apa(two['tau'], 3)}",
            )
        )
    if ipd.get("status") == "skipped":
        rows.append(("IPD one-stage model", f"not estimated: {ipd.get('reason')}"))
        return rows, warnings
    fit = ipd.get("bayes") or {}
    eff = fit.get("effects") or {}
    r, mu, tau = eff.get("r_pooled_improvement"), eff.get("mu_b"), eff.get("tau_b")
    if r and mu and tau:
        sites = len((fit.get("data") or {}).get("sites") or {})
        rows.append(
            (
                f"IPD one-stage (Bayesian, {sites} sites): pooled r [95% ETI]",
                f"{_apa(r['mean'], 3)} {_interval(r['eti95_low'], r['eti95_high'])} "
                f"(diagnostics {fit.get('status')})",
            )
        )
        rows.append(
            (
                "IPD one-stage: alliance slope mu_b; between-site SD tau_b [95% ETI]",
                f"{_apa(mu['mean'], 3)} {_interval(mu['eti95_low'], mu['eti95_high'])}; "
                f"{_apa(tau['mean'], 3)} {_interval(tau['eti95_low'], tau['eti95_high'])}",
            )
        )
    if fit.get("status") != "pass":
        failures = (fit.get("diagnostics") or {}).get("failures") or [str(fit.get("status"))]
        warnings.append(
            "meta-analysis: the one-stage IPD model failed its diagnostics: " + "; ".join(failures)
        )
    return rows, warnings


def masem_summary(results: Path) -> tuple[str, list[str]]:
    """The results summary's MASEM paragraph: stage-2 fit per model and the nested tests."""
    from alliance.report import _apa, _fmt, _p, markdown_table

    masem = _read(results / "meta" / "masem" / "masem.json")
    if masem is None:
        return "", []
    if masem.get("status") != "ok":
        return f"MASEM not run: {masem.get('reason')}.", []
    warnings = [f"MASEM: {n}" for n in masem.get("notes") or []]
    rows = []
    for method, s2 in masem["stage2"].items():
        for model in masem.get("model_order") or s2["models"]:
            if model not in s2["models"]:
                continue
            fit = s2["models"][model]
            m = fit.get("fit")
            if m is None:
                rows.append([method, model, fit["status"], "", "", "", "", "", ""])
                continue
            rows.append(
                [
                    method,
                    model,
                    fit["status"],
                    f"{_fmt(m['chisq'])} ({m['df']})",
                    _p(m["pvalue"]).replace("= ", ""),
                    _apa(m["cfi"], 3),
                    _apa(m["rmsea"], 3),
                    _apa(m["srmr"], 3),
                    _fmt(m["bic"], 1),
                ]
            )
    table = pd.DataFrame(
        rows,
        columns=["Stage 1", "Model", "Status", "chisq (df)", "p", "CFI", "RMSEA", "SRMR", "BIC"],
    )
    tests = []
    for method, s2 in masem["stage2"].items():
        for t in s2["comparisons"]:
            if "chisq_diff" in t:
                tests.append(
                    f"{t['restricted']} vs {t['general']} ({method}): chisq_diff({t['df_diff']}) = "
                    f"{_fmt(t['chisq_diff'])}, p {_p(t['pvalue'])}"
                )
    het = (masem["stage1"].get("random") or {}).get("heterogeneity") or {}
    tau = [t for t in het.get("tau2") or [] if t is not None]
    lead = (
        f"MASEM (two-stage SEM, Cheung & Chan 2005) over the item correlations of "
        f"{len(masem['datasets'])} datasets (N = {masem['ntotal']:,}): "
    )
    fixed_fit = (masem["stage1"].get("fixed") or {}).get("fit") or {}
    if fixed_fit:
        lead += (
            f"homogeneity of the matrices chisq({fixed_fit['df']}) = {_fmt(fixed_fit['chisq'])}, "
            f"p {_p(fixed_fit['pvalue'])}"
        )
    if tau:
        median_tau = _apa(float(np.median(np.sqrt(tau))), 3)
        lead += f"; random effects: median tau = {median_tau} per correlation"
    note = (
        "Stage 2 fits the competing models to the pooled matrix by WLS with its asymptotic "
        "covariance. The sampling covariances are normal-theory: skewed item answers make the "
        "correlations vary more than they assume, which inflates the chi-square tests. Tables: "
        "results/meta/masem/fit.csv, parameters.csv, comparisons.csv, correlations.csv."
    )
    text = lead + ".\n\n" + markdown_table(table)
    if tests:
        text += "\n\nNested models: " + "; ".join(tests) + "."
    return text + f"\n\n*Note.* {note}", warnings


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None
