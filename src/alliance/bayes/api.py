"""One call per dataset and model: inputs, sampling, diagnostics, idata, summary and status."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from alliance.bayes.data import (
    InsufficientData,
    ModelData,
    dataset_instrument,
    load_tables,
    patient_data,
    session_data,
)
from alliance.bayes.diagnostics import (
    SUMMARY_COLUMNS,
    check,
    compare_loo,
    effects,
    loo,
    population_summary,
    prior_predictive_check,
    summarize,
)
from alliance.bayes.models import DEFAULT_PRIORS, KEY_PARAMETERS, MODELS, build_model
from alliance.bayes.sampling import add_predictive, prior_predictive, sample, sampler_settings
from alliance.jsonio import write_json

if TYPE_CHECKING:
    from alliance.data.instruments import Instrument

__all__ = [
    "FIT_MODELS",
    "PRIOR_DRAWS",
    "build_data",
    "effects",
    "fit_model",
    "fit_model_or_error",
    "not_fitted",
    "plot_saved_fit",
]

#: Models :func:`fit_model` accepts (``outcome`` also fits ``outcome_null`` for LOO).
FIT_MODELS = ("outcome", "therapist", "session", "latent")

#: Prior predictive draws per fit (the check and its figure; Gabry et al. 2019).
PRIOR_DRAWS = 500


def build_data(
    source: str | Path | Mapping[str, pd.DataFrame],
    model: str,
    alliance_session: int = 3,
    rater: str = "client",
    score: str = "total_mean",
    measure: str = "phq9",
    lower_is_better: bool = True,
    instrument: str | Path | Instrument | None = None,
) -> ModelData:
    """Build the inputs of ``model`` from a dataset folder or tables (see :mod:`.data`).

    ``instrument`` is the latent model's alliance instrument; by default the one the dataset
    was ingested with (its ingest report: the codebook's, a user's instrument file included),
    the WAI-SR for tables.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    tables = load_tables(source)
    options = {
        "rater": rater,
        "score": score,
        "measure": measure,
        "lower_is_better": lower_is_better,
    }
    if MODELS[model][1] == "session":
        return session_data(tables, **options)
    if MODELS[model][1] == "latent":
        from alliance.bayes.latent import latent_data

        if instrument is None:
            instrument = dataset_instrument(source) or "wai_sr"
        return latent_data(
            tables, alliance_session=alliance_session, instrument=instrument, **options
        )
    return patient_data(tables, alliance_session=alliance_session, **options)


def fit_model(
    source: str | Path | Mapping[str, pd.DataFrame],
    model: str = "outcome",
    priors: Mapping[str, float] | None = None,
    sampler: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    *,
    alliance_session: int = 3,
    rater: str = "client",
    score: str = "total_mean",
    measure: str = "phq9",
    lower_is_better: bool = True,
    thresholds: Mapping[str, float] | None = None,
    figures: bool = True,
    refit: bool = False,
) -> dict[str, Any]:
    """Fit one Bayesian alliance-outcome model to one dataset and write its outputs.

    Parameters
    ----------
    source
        A dataset's results folder (``results/{dataset}`` with ``ingest/`` and ``scores/``),
        or the tables (:func:`alliance.bayes.data.load_tables`).
    model
        ``"outcome"`` (patient level; also fits the model without alliance and compares both
        by PSIS-LOO), ``"therapist"`` (within/between therapist) or ``"session"`` (lagged,
        within patient). See :mod:`alliance.bayes.models`.
    priors
        Prior scales on the standardized scale by kind (``intercept``, ``slope``, ``sigma``,
        ``tau``) or parameter name; defaults :data:`alliance.bayes.models.DEFAULT_PRIORS`.
    sampler
        Sampler settings; defaults :data:`alliance.bayes.sampling.DEFAULT_SAMPLER`.
    out_dir
        Folder for ``idata.nc`` (posterior, sample stats, log likelihood, posterior
        predictive, observed data), ``summary.csv`` (:data:`.diagnostics.SUMMARY_COLUMNS`,
        every population-level parameter; per-patient ones, labelled by patient ID, stay in
        ``idata.nc``: :func:`.diagnostics.population_summary`), ``diagnostics.json`` (the
        returned dict), for ``outcome`` also ``loo_compare.csv``, and with ``figures`` the
        figures of :mod:`alliance.bayes.plots` under ``figures/``. Nothing is written when
        None.
    alliance_session, rater, score, measure, lower_is_better
        Data rules (:func:`alliance.bayes.data.patient_data`).
    thresholds
        Overrides of :data:`alliance.bayes.diagnostics.THRESHOLDS`.
    figures
        Draw the figures (needs ``out_dir``; a model that was not fitted gets one figure that
        says why).
    refit
        A prior-sensitivity refit: only the posterior, its summary and diagnostics (the
        sensitivity table compares summaries). No comparison model, predictive checks, LOO,
        ``idata.nc`` or figures.

    Returns
    -------
    dict
        ``model``, ``status`` (``"pass"``/``"fail"``, or ``"skipped"`` with a ``reason`` when
        the data cannot support the model: :func:`not_fitted`), ``diagnostics`` (:func:`.check`),
        ``effects`` (key effects: mean, median, 90%/95% intervals, ``p_expected``), ``loo``
        (and ``loo_comparison`` for ``outcome``), ``data`` (rules, counts), ``scales``,
        ``priors``, ``sampler`` and ``timing``.

    Raises
    ------
    ValueError
        For an unknown model or invalid settings.

    """
    if model not in FIT_MODELS:
        raise ValueError(f"model must be one of {FIT_MODELS}, got {model!r}")
    settings = sampler_settings(sampler)
    start = time.perf_counter()
    try:
        data = build_data(
            source,
            model,
            alliance_session=alliance_session,
            rater=rater,
            score=score,
            measure=measure,
            lower_is_better=lower_is_better,
        )
        pm_model = build_model(model, data, priors)
    except InsufficientData as exc:
        return not_fitted(model, "skipped", str(exc), out_dir, figures=figures and not refit)
    # a refit's log likelihood would go unused (no LOO)
    idata, timing = sample(pm_model, settings, log_likelihood=not refit)
    if not refit:
        add_predictive(idata, pm_model, settings["seed"])
        prior = prior_predictive(pm_model, draws=PRIOR_DRAWS, seed=settings["seed"])
        idata.extend(prior, join="left")
    table = summarize(idata)
    diagnostics = check(idata, thresholds=thresholds, table=table)
    result: dict[str, Any] = {
        "model": model,
        "status": diagnostics["status"],
        "diagnostics": diagnostics,
        "effects": effects(idata, KEY_PARAMETERS[model], lower_is_better),
        "data": data.info,
        "scales": data.scales,
        "priors": {**DEFAULT_PRIORS, **(dict(priors) if priors else {})},
        "sampler": settings,
        "timing": {model: timing},
    }
    if not refit:
        observed = next(iter(idata.observed_data.data_vars))
        result["loo"] = loo(idata)
        result["prior_predictive"] = prior_predictive_check(
            idata, idata.observed_data[observed].to_numpy(), observed
        )
    comparison = None
    if refit:
        pass
    elif model == "outcome":
        null_idata, null_timing = sample(build_model("outcome_null", data, priors), settings)
        null_check = check(null_idata, thresholds=thresholds)
        comparison = compare_loo({"outcome": idata, "outcome_null": null_idata})
        result["loo_comparison"] = comparison.to_dict(orient="records")
        result["null_model"] = {"status": null_check["status"], "failures": null_check["failures"]}
        result["timing"]["outcome_null"] = null_timing
        if null_check["status"] == "fail":
            result["status"] = "fail"
    if model == "latent" and not refit:
        # side by side with the plug-in score model on the same patients and outcome
        from alliance.bayes.latent import attenuation

        plug_idata, plug_timing = sample(build_model("outcome", data, priors), settings)
        plug_check = check(plug_idata, thresholds=thresholds)
        result["plugin"] = {
            "status": plug_check["status"],
            "failures": plug_check["failures"],
            "effects": effects(plug_idata, KEY_PARAMETERS["outcome"], lower_is_better),
        }
        result["attenuation"] = attenuation(idata, plug_idata).to_dict(orient="records")
        result["timing"]["outcome"] = plug_timing
    result["timing"]["total_s"] = round(time.perf_counter() - start, 3)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if not refit:
            # Uncompressed: draws are random floats, zlib saved 5% of the session model's
            # 211 MB and took 6.8 of its 7 s of writing (uncompressed: 0.6 s; 2 cores)
            idata.to_netcdf(str(out / "idata.nc"), compress=False)
        from alliance.tables import write_csv, write_csv_and_markdown

        write_csv_and_markdown(
            population_summary(idata, table),
            out / "summary.csv",
            f"Posterior summary: {model} model",
            note=(
                "Mean, SD, median and 95% equal-tailed interval of each parameter, the Monte "
                "Carlo standard error of each, R-hat, bulk and tail ESS. Per-patient "
                "parameters (random effects) are in idata.nc only."
            ),
        )
        if comparison is not None:
            write_csv(comparison, out / "loo_compare.csv", index=False)
        if "attenuation" in result:
            write_csv_and_markdown(
                pd.DataFrame(result["attenuation"]),
                out / "attenuation.csv",
                "Latent vs plug-in alliance: attenuation by measurement error",
                note="The same patients and outcome; plug-in = item-mean score in the outcome "
                "model, latent = the items' common factor in one model.",
            )
        if figures and not refit:
            from alliance.bayes.plots import plot_fit

            result["figures"] = [
                str(p.relative_to(out)) for p in plot_fit(idata, model, data, out / "figures")
            ]
        write_json(out / "diagnostics.json", result)
    result["idata"] = idata
    return result


def not_fitted(
    model: str,
    status: str,
    reason: str,
    out_dir: str | Path | None = None,
    detail: str | None = None,
    figures: bool = False,
) -> dict[str, Any]:
    """The result of a model that was not fitted, written as :func:`fit_model`'s files.

    ``status`` is ``"skipped"`` (the data cannot support the model, for example fewer than 20
    lagged session rows when no two consecutive sessions were rated) or ``"error"`` (an
    unexpected failure, :func:`fit_model_or_error`). With ``out_dir``, writes ``summary.csv``
    (the columns, no rows) and ``summary.md`` (with the reason), ``diagnostics.json`` (the
    returned dict) and ``idata.nc`` (an InferenceData without groups whose attributes hold the
    status and the reason), so that every file the workflow expects exists and the summary
    shows the status per dataset. With ``figures``, ``figures/not_estimated.png`` (and
    ``.pdf``) states the status and the reason.

    Returns
    -------
    dict
        ``model``, ``status``, ``reason``, empty ``diagnostics`` and ``effects``, and
        ``traceback`` when ``detail`` is given.
    """
    import arviz as az

    from alliance.tables import write_csv_and_markdown

    if status not in ("skipped", "error"):
        raise ValueError(f"status must be 'skipped' or 'error', got {status!r}")
    result: dict[str, Any] = {
        "model": model,
        "status": status,
        "reason": reason,
        "diagnostics": {},
        "effects": {},
    }
    if detail:
        result["traceback"] = detail
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_csv_and_markdown(
            pd.DataFrame(columns=SUMMARY_COLUMNS),
            out / "summary.csv",
            f"Posterior summary: {model} model ({status})",
            note=f"Not estimated: {reason}",
        )
        write_json(out / "diagnostics.json", result)
        az.InferenceData(attrs={"status": status, "reason": reason}).to_netcdf(
            str(out / "idata.nc")
        )
        if figures:
            from alliance.figures import placeholder_figure

            stem = out / "figures" / "not_estimated"
            stem.parent.mkdir(parents=True, exist_ok=True)
            placeholder_figure(f"Bayesian {model} model", f"{status}: {reason}", stem)
    return result


def fit_model_or_error(
    source: str | Path | Mapping[str, pd.DataFrame],
    model: str,
    out_dir: str | Path,
    **options: Any,
) -> dict[str, Any]:
    """:func:`fit_model` for one dataset of a run: an unexpected error becomes its status.

    A model the data cannot support is ``skipped`` by :func:`fit_model`; any other exception
    (a sampler crash, a bug) is recorded by :func:`not_fitted` as ``status: error`` with the
    exception as the reason and its traceback, instead of stopping the run: the results
    summary then shows it for this dataset and the other datasets' results stand.
    ``options`` are :func:`fit_model`'s keywords.
    """
    try:
        return fit_model(source, model, out_dir=out_dir, **options)
    except Exception as exc:  # noqa: BLE001 - recorded as the fit's status, the run goes on
        reason = f"{type(exc).__name__}: {exc}"
        figures = bool(options.get("figures", True)) and not options.get("refit", False)
        return not_fitted(
            model, "error", reason, out_dir, traceback.format_exc(limit=8), figures=figures
        )


def plot_saved_fit(
    source: str | Path | Mapping[str, pd.DataFrame],
    idata_path: str | Path,
    model: str,
    out_dir: str | Path,
    *,
    alliance_session: int = 3,
    rater: str = "client",
    score: str = "total_mean",
    measure: str = "phq9",
    lower_is_better: bool = True,
) -> list[Path]:
    """Draw the figures of a fit written by :func:`fit_model` (its ``idata.nc``).

    The data are rebuilt with the same rules as the fit (the therapist figure needs the
    patients' therapists and alliance); figures as :func:`alliance.bayes.plots.plot_fit`. A
    fit that was not estimated (:func:`not_fitted`: skipped or error) gets one figure,
    ``not_estimated.png`` (and ``.pdf``), stating its status and reason.

    Raises
    ------
    ValueError
        For an unknown model.

    """
    import arviz as az

    from alliance.bayes.plots import plot_fit

    if model not in FIT_MODELS:
        raise ValueError(f"model must be one of {FIT_MODELS}, got {model!r}")
    idata = az.from_netcdf(str(idata_path))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "posterior" not in idata.groups():  # skipped or error (:func:`not_fitted`)
        from alliance.figures import placeholder_figure

        attrs = getattr(idata, "attrs", None) or {}
        reason = f"{attrs.get('status', 'not fitted')}: {attrs.get('reason', 'no posterior')}"
        placeholder_figure(f"Bayesian {model} model", reason, out / "not_estimated")
        return [out / "not_estimated.png", out / "not_estimated.pdf"]
    data = build_data(
        source,
        model,
        alliance_session=alliance_session,
        rater=rater,
        score=score,
        measure=measure,
        lower_is_better=lower_is_better,
    )
    return plot_fit(idata, model, data, out)
