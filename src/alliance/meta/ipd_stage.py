"""The one-stage IPD stage: the Bayesian multilevel model beside the two-stage pooled r.

:func:`run_ipd` (rule ``ipd``) fits :func:`alliance.meta.ipd.fit_ipd` to the patients of all
item datasets and writes ``results/meta/ipd/``: ``ipd.json`` and the posterior summary. A
dataset the model cannot use is left out with its reason, and a model the data cannot support
is written with ``status: skipped`` and the reason, never failing the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["IPD_SAMPLER", "ipd_sampler", "run_ipd"]

#: Sampler settings of the one-stage model over ``bayes.sampler``: with 2 x 2,000 draws the
#: therapist SD's tail ESS on the demo was 408, at the 400 threshold; sampling is a few
#: seconds of the fit (compiling the model takes most of it), so twice the draws.
IPD_SAMPLER = {"draws": 4000}


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
        one-stage fit, :func:`alliance.meta.ipd.fit_ipd` without its table; under ``bayes``,
        as in ``meta.json``, so that ``alliance verify`` judges its diagnostics by their
        thresholds), ``two_stage``
        (:func:`alliance.meta.ipd.two_stage`), ``excluded``. ``summary.csv`` holds the
        posterior summary of the population-level parameters (no patient identifier: none
        is in the model).
    """
    from alliance.bayes.data import InsufficientData
    from alliance.bayes.diagnostics import SUMMARY_COLUMNS
    from alliance.jsonio import write_json
    from alliance.meta.ipd import combine_sites, fit_ipd, site_frames, two_stage
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
    write_json(out / "ipd.json", result)
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
