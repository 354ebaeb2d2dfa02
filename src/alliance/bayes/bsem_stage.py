"""The ``bsem`` stage: a Bayesian SEM of one dataset's CFA model, its diagnostics, PPP and tables.

Reads the data as the CFA stage does (an ingest folder or a data file), takes the factor
structure from lavaan syntax (a built-in model of the instrument or a ``.lav`` file), fits
:func:`alliance.bayes.bsem.bsem_model` (or, for sessions within patients,
:func:`alliance.bayes.twolevel_cfa.twolevel_cfa_model`: :func:`run_bsem_twolevel`) and
writes ``summary.json`` (status, BARG diagnostics, PPP, settings, timing),
``parameters.csv`` (every posterior summary with MCSEs) and ``residual_correlations.csv``
(formula-safe, with ``.md`` beside them).

May import: everything (a stage entry): :mod:`alliance.bayes`, :mod:`alliance.sem` (the
syntax parser), :mod:`alliance.cfa.stage` (reading the data and the model).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.bayes.bsem import (
    BSEM_DEFAULTS,
    Measurement,
    bsem_model,
    bsem_parameters,
    posterior_predictive_fit,
    residual_correlation_table,
)
from alliance.bayes.diagnostics import check, summarize
from alliance.bayes.sampling import sample, sampler_settings
from alliance.jsonio import write_json
from alliance.tables import write_csv_and_markdown

log = logging.getLogger(__name__)

__all__ = [
    "measurement_from_syntax",
    "run_bsem",
    "run_bsem_twolevel",
    "twolevel_measurements",
]


def measurement_from_syntax(syntax: str) -> Measurement:
    """The factor structure of a CFA written in lavaan syntax (``=~`` statements).

    Factor covariances (``f1 ~~ f2``) are free in BSEM anyway and accepted; any other
    statement (fixed or labelled loadings, exploratory blocks, higher-order factors, residual
    covariances, regressions, thresholds, constraints) is not part of a BSEM's structure and
    is refused.

    Raises
    ------
    ValueError
        Naming the first statement BSEM cannot take, or when no factor is defined.
    """
    from alliance.sem.syntax import parse_syntax

    factors: dict[str, list[str]] = {}
    statements = parse_syntax(syntax)
    latent = {s.lhs for s in statements if s.op == "=~"}
    for s in statements:
        free = all(v is None for v in s.modifier.fixed) and not any(s.modifier.label)
        if s.op == "=~" and s.rhs in latent:
            raise ValueError(
                f"BSEM takes first-order factors only, got line {s.line}: a factor measured by "
                f"the factor {s.rhs!r} ({s.lhs} =~ {s.rhs})"
            )
        if s.op == "=~" and free and not s.efa:
            factors.setdefault(s.lhs, []).append(s.rhs)
        elif s.op == "~~" and s.lhs in latent and s.rhs in latent and s.lhs != s.rhs and free:
            continue
        else:
            raise ValueError(
                f"BSEM takes free loadings (f =~ items) and factor covariances only, got "
                f"line {s.line}: {s.lhs} {s.op} {s.rhs!r}"
            )
    if not factors:
        raise ValueError("BSEM needs at least one factor defined with '=~', got none")
    return Measurement(factors)


def run_bsem(
    source: str | Path,
    model: str,
    out_dir: str | Path,
    ordered: bool = False,
    prior_variance: float = BSEM_DEFAULTS["prior_variance"],
    residual_size: float = BSEM_DEFAULTS["residual_size"],
    sampler: Mapping[str, Any] | None = None,
    session: int | None = 3,
    rater: str | None = "client",
) -> dict[str, Any]:
    """Fit the BSEM of ``model`` to the data in ``source`` and write its outputs to ``out_dir``.

    Parameters
    ----------
    source
        An ingest folder (one row per patient at ``session``, ``rater``) or a ``.csv``,
        ``.parquet`` or ``.sav`` file (one row per respondent).
    model
        A built-in model name of the dataset's instrument or a ``.lav`` file.
    out_dir
        Output folder (created).
    ordered
        Ordinal items (probit with thresholds) instead of continuous.
    prior_variance
        Prior variance of the cross-loadings and residual correlations; 0: the exact-zero
        CFA (Muthén & Asparouhov 2012).
    residual_size
        Residual correlations whose 95% interval excludes 0 and whose posterior mean is at
        least this large are listed as ``large``.
    sampler
        :data:`alliance.bayes.sampling.DEFAULT_SAMPLER` overrides.
    session, rater
        Which ratings of an ingested dataset form the sample.

    Returns
    -------
    dict
        What ``summary.json`` holds: ``status`` (``pass``/``fail`` of the diagnostics, or
        ``skipped`` with ``reason`` when the data cannot support the model), ``diagnostics``,
        ``ppp``, ``large_residual_correlations``, ``n``, ``n_dropped``, ``settings``, ``timing``.

    References
    ----------
    Muthén, B., & Asparouhov, T. (2012). Bayesian structural equation modeling: A more
    flexible representation of substantive theory. Psychological Methods, 17(3), 313-335.
    """
    from alliance.cfa.stage import model_syntax, read_cfa_data

    if isinstance(prior_variance, bool) or not isinstance(prior_variance, int | float):
        raise ValueError(f"prior_variance must be a number >= 0, got {prior_variance!r}")
    if prior_variance < 0:
        raise ValueError(f"prior_variance must be a number >= 0, got {prior_variance!r}")
    settings = sampler_settings(sampler)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data, instrument, sample_rule = read_cfa_data(source, session=session, rater=rater)
    if instrument is None:
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"the model must be a .lav file for a plain data file, got {model!r}")
        syntax, name = path.read_text(), path.stem
    else:
        syntax, name = model_syntax(model, instrument)
    measurement = measurement_from_syntax(syntax)
    items = measurement.items
    missing = [i for i in items if i not in data.columns]
    if missing:
        raise ValueError(f"{source}: the data lack the model's items, got missing {missing}")
    complete = data[items].dropna()
    result: dict[str, Any] = {
        "model_name": name,
        "syntax": syntax,
        "ordered": bool(ordered),
        "prior_variance": float(prior_variance),
        "exact_zero": prior_variance == 0,
        "residual_size": float(residual_size),
        "sample": sample_rule,
        "n": len(complete),
        "n_dropped": len(data) - len(complete),
        "missing": "listwise",
        "items": items,
        "factors": measurement.factors,
        "settings": settings,
    }
    minimum = 2 * len(items) + 1
    if len(complete) < minimum:
        result |= {
            "status": "skipped",
            "reason": (
                f"{len(complete)} complete rows; BSEM of {len(items)} items needs at least "
                f"{minimum}"
            ),
        }
        write_json(out / "summary.json", result)
        return result
    started = time.perf_counter()
    pymc_model = bsem_model(
        complete,
        measurement,
        prior_variance=None if prior_variance == 0 else float(prior_variance),
        ordered=ordered,
    )
    idata, timing = sample(pymc_model, settings)
    names = bsem_parameters(pymc_model)
    table = summarize(idata, names)
    diagnostics = check(idata, names, table=table)
    ppp = posterior_predictive_fit(idata, len(complete), seed=int(settings["seed"]))
    write_csv_and_markdown(
        table,
        out / "parameters.csv",
        title=f"BSEM {name}: posterior summaries",
        note="Standardized metric (items z-scored, factor variances 1); MCSE of each number.",
    )
    large: list[dict[str, Any]] = []
    if prior_variance > 0:
        resid = residual_correlation_table(table, size=residual_size)
        write_csv_and_markdown(
            resid,
            out / "residual_correlations.csv",
            title=f"BSEM {name}: residual correlations",
            note=(
                f"large: 95% interval excludes 0 and |mean| >= {residual_size:g}; prior "
                f"variance {prior_variance:g}."
            ),
        )
        large = resid[resid["large"]].drop(columns=["excludes_zero", "large"]).to_dict("records")
    result |= {
        "status": diagnostics["status"],
        "diagnostics": diagnostics,
        "ppp": ppp,
        "large_residual_correlations": large,
        "timing": timing | {"stage_s": round(time.perf_counter() - started, 3)},
    }
    write_json(out / "summary.json", result)
    log.info("BSEM %s: %s, PPP %.3f", name, diagnostics["status"], ppp["ppp"])
    return result


def twolevel_measurements(syntax: str, between: str = "same") -> tuple[Measurement, Measurement]:
    """The within and between factor structures of a model in lavaan syntax.

    A model with ``level: 1`` and ``level: 2`` blocks gives each level its own structure; a
    single-level model is the within model and the between model follows ``between``
    (:func:`alliance.cfa.twolevel.twolevel_syntax`: the same factors, or one general factor).

    Raises
    ------
    ValueError
        For a statement a BSEM cannot take (:func:`measurement_from_syntax`) or levels over
        different items.
    """
    from alliance.cfa.twolevel import twolevel_syntax
    from alliance.sem.syntax import split_levels

    if not any(line.strip().startswith("level") for line in syntax.splitlines()):
        syntax = twolevel_syntax(syntax, between)
    blocks = split_levels(syntax)
    within, between_m = (measurement_from_syntax(blocks[k]) for k in (1, 2))
    if sorted(within.items) != sorted(between_m.items):
        raise ValueError(
            f"both levels must measure the same items, got within {within.items} and "
            f"between {between_m.items}"
        )
    return within, between_m


def _twolevel_rows(
    source: str | Path, items: list[str], cluster: str | None, rater: str
) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """Every session row (an ingest folder: one rater's) with the cluster column."""
    from alliance.cfa.stage import read_cfa_data
    from alliance.cfa.twolevel import CLUSTER
    from alliance.data.tidy import read_ingested

    path = Path(source)
    if path.is_dir():
        rows, _, _ = read_ingested(path)
        if "rater" in rows:
            rows = rows[rows["rater"].astype(str) == rater]
        cluster = cluster or CLUSTER
        rule = f"every session of rater {rater!r}, clustered by {cluster}"
    else:
        rows, _, _ = read_cfa_data(path)
        if cluster is None:
            raise ValueError(f"{path}: a two-level BSEM of a data file needs its cluster column")
        rule = f"every row of {path.name}, clustered by {cluster}"
    if cluster not in rows.columns:
        raise ValueError(f"{source}: the data lack the cluster column {cluster!r}")
    missing = [i for i in items if i not in rows.columns]
    if missing:
        raise ValueError(f"{source}: the data lack the model's items, got missing {missing}")
    frame = rows[[cluster, *items]].copy()
    frame[items] = frame[items].apply(pd.to_numeric, errors="coerce")
    complete = frame.dropna().reset_index(drop=True)
    sizes = complete.groupby(cluster).size()
    info = {
        "rule": rule,
        "sessions": len(complete),
        "sessions_incomplete_dropped": len(frame) - len(complete),
        "clusters": len(sizes),
        "clusters_with_2_or_more": int((sizes >= 2).sum()),
        "cluster_size": {"min": int(sizes.min()), "max": int(sizes.max())} if len(sizes) else {},
    }
    return complete, cluster, info


def run_bsem_twolevel(
    source: str | Path,
    model: str,
    out_dir: str | Path,
    ordered: bool = False,
    between: str = "same",
    cluster: str | None = None,
    sampler: Mapping[str, Any] | None = None,
    rater: str = "client",
) -> dict[str, Any]:
    """Fit the Bayesian two-level CFA of ``model`` (sessions within patients) and write it.

    Parameters
    ----------
    source
        An ingest folder (every session of ``rater``, clustered by patient) or a ``.csv``,
        ``.parquet`` or ``.sav`` file with one row per session and a ``cluster`` column.
    model
        A built-in model of the instrument or a ``.lav`` file, single-level (the within
        model; the between model from ``between``) or with ``level: 1`` / ``level: 2``.
    out_dir
        Output folder (created): ``summary.json`` and ``parameters.csv`` (``.md`` beside it).
    ordered
        Ordinal items (probit with thresholds) instead of continuous.
    between
        For a single-level model: ``"same"`` factors between patients or ``"one_factor"``.
    cluster
        The cluster column (default for an ingest folder: the patient).
    sampler
        :data:`alliance.bayes.sampling.DEFAULT_SAMPLER` overrides.
    rater
        Whose ratings, for an ingest folder.

    Returns
    -------
    dict
        What ``summary.json`` holds: ``status`` (``pass``/``fail`` of the diagnostics, or
        ``skipped`` with its ``reason``), ``diagnostics``, ``data`` (counts; no cluster
        identifier), ``items``, ``factors`` per level, ``settings``, ``timing``. No posterior
        predictive p-value yet (the between level's replicated statistic is not a Wishart
        draw with unequal cluster sizes).

    References
    ----------
    Muthén, B. O. (1994). Multilevel covariance structure analysis. Sociological Methods &
    Research, 22(3), 376-398.
    """
    from alliance.bayes.twolevel_cfa import twolevel_cfa_model, twolevel_parameters
    from alliance.cfa.stage import model_syntax
    from alliance.data.tidy import read_ingested

    settings = sampler_settings(sampler)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(source)
    if path.is_dir():
        _, instrument, _ = read_ingested(path)
        syntax, name = model_syntax(model, instrument)
    else:
        if not Path(model).is_file():
            raise ValueError(f"the model must be a .lav file for a plain data file, got {model!r}")
        syntax, name = Path(model).read_text(), Path(model).stem
    within, between_m = twolevel_measurements(syntax, between)
    frame, cluster, info = _twolevel_rows(source, within.items, cluster, rater)
    result: dict[str, Any] = {
        "model_name": name,
        "syntax": syntax,
        "levels": {"within": within.factors, "between": between_m.factors},
        "ordered": bool(ordered),
        "items": within.items,
        "data": info,
        "missing": "listwise (sessions with a missing answer)",
        "settings": settings,
        "ppp": None,
    }
    if info["clusters_with_2_or_more"] < 2 or info["sessions"] < 2 * len(within.items) + 1:
        result |= {
            "status": "skipped",
            "reason": (
                f"{info['sessions']} complete sessions, {info['clusters_with_2_or_more']} "
                "patients with two or more: too few for a two-level model of "
                f"{len(within.items)} items"
            ),
        }
        write_json(out / "summary.json", result)
        return result
    started = time.perf_counter()
    pymc_model = twolevel_cfa_model(frame, within, between_m, cluster, ordered=ordered)
    idata, timing = sample(pymc_model, settings)
    names = twolevel_parameters(pymc_model)
    table = summarize(idata, names)
    diagnostics = check(idata, names, table=table)
    write_csv_and_markdown(
        table,
        out / "parameters.csv",
        title=f"Two-level BSEM {name}: posterior summaries",
        note=(
            "Standardized metric per level (each level's implied SDs; factor variances 1); "
            "icc: between share of each item's (latent response) variance; MCSE of each number."
        ),
    )
    result |= {
        "status": diagnostics["status"],
        "diagnostics": diagnostics,
        "timing": timing | {"stage_s": round(time.perf_counter() - started, 3)},
    }
    write_json(out / "summary.json", result)
    log.info("two-level BSEM %s: %s", name, diagnostics["status"])
    return result
