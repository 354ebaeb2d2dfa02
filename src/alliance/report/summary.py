"""The results summary: the numbers a paper needs, a methods paragraph from the config, checks."""

from __future__ import annotations

import html
import json
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.data.ingest import CELL_REASONS
from alliance.data.instruments import Instrument
from alliance.data.tidy import ingested_instrument
from alliance.library_warnings import plain_warnings
from alliance.tables import md_cell, md_text

#: The packages the analyses ran on (the SEM engine is the project's own, alliance.sem, so its
#: version is the pipeline's: the commit in provenance.json).
KEY_PACKAGES = (
    "alliance-pipeline",
    "numpy",
    "scipy",
    "pandas",
    "factor_analyzer",
    "pymc",
    "pytensor",
    "nutpie",
    "arviz",
    "snakemake",
)


@dataclass(frozen=True)
class Check:
    """One reporting-standard item with whether the results meet it and the evidence."""

    standard: str
    item: str
    met: bool
    evidence: str


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(value: Any, digits: int = 2) -> str:
    """APA-style number: no leading zero for values bounded by 1 is the caller's choice."""
    if value is None or (isinstance(value, float) and value != value):
        return "NA"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _apa(value: float | None, digits: int = 2) -> str:
    """A statistic that cannot exceed 1 in APA style: ``.83`` rather than ``0.83``."""
    text = _fmt(value, digits)
    return text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table (GitHub-flavoured Markdown) of ``frame``, index dropped.

    Headers and cells are data: each passes :func:`alliance.tables.md_cell`.
    """
    header = "| " + " | ".join(map(md_cell, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(map(md_cell, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _reason_list(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _cells_in_rows(cells: int, rows: int) -> str:
    """``1 cell in 1 kept row``, ``12 cells in 3 kept rows``."""
    return f"{cells:,} cell{'s' * (cells != 1)} in {rows:,} kept row{'s' * (rows != 1)}"


def data_section(results: Path, datasets: Iterable[str]) -> tuple[str, list[str], pd.DataFrame]:
    """The ingest table and every ingest warning.

    Per dataset: rows in, kept, quarantined rows with their reasons (rows per reason), and the
    quarantined cells of kept rows (a bad answer, outcome score or covariate: the value set
    missing, the row kept) with the rows holding them and their reasons (cells per reason).
    """
    rows, warnings = [], []
    for name in datasets:
        report = _read_json(results / name / "ingest" / "ingest_report.json")
        if report is None:
            warnings.append(f"{name}: no ingest report (the dataset was not ingested)")
            continue
        by_row = report.get("row_reasons")
        if by_row is None:  # a report of an older ingest: reasons of either scope
            by_row = {k: v for k, v in report.get("reasons", {}).items() if k not in CELL_REASONS}
        row_reasons = _reason_list(by_row)
        cell_reasons = _reason_list(report.get("cell_reasons", {}))
        n_cells = report.get("cells_quarantined", 0)
        n_cell_rows = report.get("rows_with_quarantined_cells", 0)
        tidy = report.get("tidy", {})
        cells = report.get("item_cells")
        rows.append(
            {
                "Dataset": name,
                "Format": report.get("format", "")
                + (f" ({report['layout']})" if report.get("kind") == "items" else " (effects)"),
                "Rows in": _fmt(report["rows_in"]),
                "Kept": _fmt(report["rows_kept"]),
                "Quarantined rows": _fmt(report["rows_quarantined"]),
                "Row reasons": row_reasons,
                "Quarantined cells": _cells_in_rows(n_cells, n_cell_rows) if n_cells else "0",
                "Cell reasons": cell_reasons,
                "Patients (studies)": _fmt(tidy.get("patients", tidy.get("studies"))),
                "Therapists": _fmt(tidy.get("therapists")),
                "Item non-response": (
                    f"{100 * report.get('item_nonresponse', 0) / cells:.1f}%" if cells else "NA"
                ),
            }
        )
        warnings += [f"{name}: {w}" for w in report.get("warnings", [])]
        if report["rows_quarantined"]:
            warnings.append(
                f"{name}: {report['rows_quarantined']:,} of {report['rows_in']:,} rows were "
                f"quarantined ({row_reasons}); see results/{name}/ingest/quarantine.csv"
            )
        if n_cells:
            warnings.append(
                f"{name}: quarantined and set missing: {_cells_in_rows(n_cells, n_cell_rows)} "
                f"({cell_reasons}); see results/{name}/ingest/quarantine.csv"
            )
    table = pd.DataFrame(rows)
    text = markdown_table(table) if len(table) else "No dataset was ingested."
    return text, warnings, table


def measurement_section(results: Path, datasets: Iterable[str]) -> tuple[str, list[str]]:
    """Reliability, factorability and dimensionality per dataset."""
    rows, warnings = [], []
    for name in datasets:
        summary = _read_json(results / name / "describe" / "summary.json")
        if summary is None:
            continue
        alphas = {r["scale"]: r for r in summary.get("reliability", [])}
        kmo = summary.get("kmo", {})
        bart = summary.get("bartlett", {})
        pa = summary.get("parallel_analysis", {})
        efa = summary.get("efa", {})
        for step in ("kmo", "bartlett", "parallel_analysis", "efa"):
            if isinstance(summary.get(step), dict) and "error" in summary[step]:
                warnings.append(f"{name}: {step} failed: {summary[step]['error']}")
        efa_notes = efa.get("warnings", []) if isinstance(efa, dict) else []
        for w in plain_warnings(efa_notes, "The EFA", "its loadings and communalities"):
            warnings.append(f"{name}: EFA: {w}")
        row = {"Dataset": name, "n": _fmt(summary.get("sample", {}).get("n_obs"))}
        for scale, res in alphas.items():
            row[f"alpha {scale}"] = (
                f"{_apa(res['raw_alpha'])} [{_apa(res['feldt_lower'])}, {_apa(res['feldt_upper'])}]"
            )
        row["KMO"] = _apa(kmo.get("overall"))
        row["Bartlett chi2 (df)"] = f"{_fmt(bart.get('chi2'), 1)} ({_fmt(bart.get('df'))})"
        row["PA factors"] = _fmt(pa.get("n_factors"))
        extracted = efa.get("n_factors") if isinstance(efa, dict) else None
        flags = []
        if extracted is not None and pa.get("n_factors") not in (None, extracted):
            flags.append(f"PA suggests {pa['n_factors']}")
        heywood = sum("Heywood case" in w for w in efa_notes)
        if heywood:
            flags.append(f"{heywood} Heywood case{'s' if heywood > 1 else ''}")
        row["EFA factors"] = _fmt(extracted) + (f" ({'; '.join(flags)})" if flags else "")
        row["EFA RMSR"] = _apa(efa.get("rmsr"), 3) if isinstance(efa, dict) else "NA"
        rows.append(row)
    if not rows:
        return "No dataset was described.", warnings
    return markdown_table(pd.DataFrame(rows).fillna("")), warnings


MODEL_LABELS = {
    "one_factor": "One factor",
    "two_factor": "Two factors (Bond vs Goal+Task)",
    "correlated": "Three correlated factors (Bordin)",
    "second_order": "Second order",
    "bifactor": "Bifactor",
}


def _nested_test_text(test: dict[str, Any]) -> str:
    """One nested test: the difference test, or why the pair was not tested."""
    from alliance.cfa.tables import model_label

    pair = f"{model_label(test['restricted'])} vs {model_label(test['general'])}"
    if "not_tested" in test:
        return f"{pair}: not tested ({test['not_tested']})"
    if "error" in test:
        return f"{pair}: not tested ({test['error']})"
    return (
        f"{pair}: chi2({_fmt(int(test['df_diff']))}) = {_fmt(test['chisq_diff'])}, "
        f"p {_p(test['pvalue'])} ({test['method']})"
    )


def cfa_section(results: Path, datasets: Iterable[str]) -> tuple[str, list[str]]:
    """Model fit per dataset and estimator, nested tests, and the invariance decisions.

    The fit table is :func:`alliance.cfa.tables.fit_comparison_table` of the comparison's
    results, the table of ``cfa/tables/fit_{estimator}.md``, with its note: robust
    CFI/TLI/RMSEA for MLR and WLSMV (a dash, with the reason, where one is not defined), a
    status column, no fit statistics for a fit that did not converge or is inadmissible,
    and notes on small samples and on the RMSEA.
    """
    from alliance.cfa.tables import bifactor_table, fit_comparison_table, fit_status, model_label

    parts, warnings = [], []
    for name in datasets:
        for path in sorted((results / name / "cfa").glob("comparison_*.json")):
            comp = json.loads(path.read_text())
            est = comp["estimator"]
            status = {m: fit_status(r) for m, r in comp["results"].items()}
            for model, res in comp["results"].items():
                details = res.get("status") or {}
                if details.get("skipped"):
                    warnings.append(f"{name}: CFA {model} ({est}) skipped: {details['reason']}")
                elif not res.get("fit"):
                    warnings.append(
                        f"{name}: CFA {model} ({est}) failed: {details.get('error', 'no result')}"
                    )
                elif not status[model][0]:
                    issues = [i for i in details.get("issues", []) if i != "did not converge"]
                    if status[model][1] == "not converged":
                        what = "did not converge" + (
                            f" (at its last iterate: {', '.join(issues)})" if issues else ""
                        )
                    else:
                        what = f"is not admissible ({', '.join(issues) or status[model][1]})"
                    warnings.append(
                        f"{name}: CFA {model_label(model)} ({est}) {what}: no fit indices and "
                        "no nested test are reported for it"
                    )
            table = fit_comparison_table(comp["results"], est)
            parts.append(
                f"**{name}: {table.attrs['title']}**\n\n"
                + markdown_table(table)
                + f"\n\n*Note.* {table.attrs['note']}"
            )
            admissible = {m: r for m, r in comp["results"].items() if status[m][0]}
            bifactor = bifactor_table(admissible)
            if len(bifactor):
                parts.append(
                    f"**{name}: {bifactor.attrs['title']} ({est})**\n\n"
                    + markdown_table(bifactor)
                    + f"\n\n*Note.* {bifactor.attrs['note']}"
                )
            tests = []
            for test in comp["tests"]:
                bad = [m for m in (test["restricted"], test["general"]) if not status[m][0]]
                if bad and "not_tested" not in test:  # a comparison written before the check
                    why = "; ".join(f"{model_label(m)}: {status[m][1]}" for m in bad)
                    test = {**test, "not_tested": why}
                tests.append(_nested_test_text(test))
            if tests:
                parts.append("Nested tests: " + "; ".join(tests) + ".")
        for path in sorted((results / name / "cfa").glob("invariance_*.json")):
            if path.name.startswith("invariance_long_"):
                continue  # the longitudinal ladder: below
            ladder = json.loads(path.read_text())
            label = f"{name}, across {ladder.get('group')}, {ladder.get('estimator')}"
            if ladder.get("status", {}).get("skipped"):
                warnings.append(f"{label}: invariance skipped: {ladder['status']['reason']}")
                continue
            if not ladder.get("status", {}).get("ok"):
                warnings.append(f"{label}: invariance failed: {ladder['status'].get('error')}")
                continue
            steps = []
            for step, d in ladder.get("decisions", {}).items():
                verdict = "holds" if d.get("invariant") else "rejected"
                steps.append(
                    f"{step} {verdict} (delta CFI {_fmt(d.get('delta_cfi'), 3)}, delta RMSEA "
                    f"{_fmt(d.get('delta_rmsea'), 3)}, delta SRMR {_fmt(d.get('delta_srmr'), 3)})"
                )
            if not steps:
                lrt = ladder.get("lrt", {}).get("table", [])
                steps = [
                    f"{r['model']}: chi2 diff({_fmt(r['Df_diff'])}) = {_fmt(r['Chisq_diff'])}, "
                    f"p {_p(r['Pr_gt_Chisq'])}"
                    for r in lrt
                    if r.get("Chisq_diff") is not None
                ]
            parts.append(f"Invariance {label}: " + "; ".join(steps) + ".")
            collapsed = ladder.get("collapsed_categories") or []
            if collapsed:
                from alliance.sem.categories import merges_text

                parts.append(
                    f"Collapsed categories ({label}; no responses in some group, merged with "
                    f"an adjacent category in every group): {merges_text(collapsed)}."
                )
        long_parts, long_warnings = longitudinal_parts(results, name)
        parts += long_parts
        warnings += long_warnings
        two_parts, two_warnings = twolevel_parts(results, name)
        parts += two_parts
        warnings += two_warnings
    if not parts:
        return "No CFA was run.", warnings
    return "\n\n".join(parts), warnings


def longitudinal_parts(results: Path, name: str) -> tuple[list[str], list[str]]:
    """The longitudinal invariance ladders of one dataset (``cfa/invariance_long_*.json``).

    Per estimator: the table of :func:`alliance.cfa.tables.longitudinal_table` (the
    cross-group ladder's layout) with its note, or the reason the ladder was skipped; a step
    without an admissible solution is a warning.
    """
    from alliance.cfa.tables import longitudinal_table

    parts: list[str] = []
    warnings: list[str] = []
    for path in sorted((results / name / "cfa").glob("invariance_long_*.json")):
        result = json.loads(path.read_text())
        est = result.get("estimator")
        label = f"{name}, over sessions {', '.join(map(str, result.get('waves') or []))}, {est}"
        if result.get("state") == "skipped":
            warnings.append(f"{label}: longitudinal invariance skipped: {result.get('reason')}")
            parts.append(f"Longitudinal invariance {label}: skipped ({result.get('reason')}).")
            continue
        for step in result.get("steps") or []:
            if not step.get("fit"):
                why = step.get("error") or "; ".join((step.get("status") or {}).get("issues", []))
                warnings.append(
                    f"{label}: the {step['name']} step has no admissible solution ({why}): no "
                    "fit indices and no test are reported for it"
                )
        table = longitudinal_table(result)
        parts.append(
            f"**{name}: {table.attrs['title']}**\n\n"
            + markdown_table(table)
            + f"\n\n*Note.* {table.attrs['note']}"
        )
    return parts, warnings


def twolevel_parts(results: Path, name: str) -> tuple[list[str], list[str]]:
    """The two-level CFAs of one dataset (``cfa/twolevel_*.json``): sessions within patients.

    Per estimator: the table of :func:`alliance.cfa.twolevel.twolevel_table` with its note, or
    the reason it was skipped; an inadmissible fit (no fit indices) is a warning.
    """
    from alliance.cfa.twolevel import twolevel_table

    parts: list[str] = []
    warnings: list[str] = []
    for path in sorted((results / name / "cfa").glob("twolevel_*.json")):
        result = json.loads(path.read_text())
        label = f"{name}, two-level CFA, {result.get('estimator')}"
        if result.get("state") == "skipped":
            warnings.append(f"{label}: skipped: {result.get('reason')}")
            parts.append(f"Two-level CFA ({label}): skipped ({result.get('reason')}).")
            continue
        if not result.get("fit"):
            issues = "; ".join((result.get("status") or {}).get("issues", []))
            warnings.append(f"{label}: no admissible solution ({issues}): no fit indices")
        table = twolevel_table(result)
        shown = table.copy()
        for col in shown.columns:
            if pd.api.types.is_float_dtype(shown[col]):
                digits = 2 if col == "chi2" else 3
                shown[col] = shown[col].map(lambda v, d=digits: _fmt(v, d))
        if "p" in shown.columns:
            shown["p"] = table["p"].map(lambda v: "< .001" if v < 0.001 else _fmt(v, 3))
        parts.append(
            f"**{name}: {table.attrs['title']}**\n\n"
            + markdown_table(shown)
            + f"\n\n*Note.* {table.attrs['note']}"
        )
    return parts, warnings


BAYES_KEYS = {
    "outcome": ("r_partial_improvement", "b_alliance"),
    "therapist": ("b_within_points", "b_between_points", "contextual_points", "tau_u"),
    "session": ("b_within_points", "tau_v"),
    "latent": ("r_partial_latent_improvement", "b_latent", "reliability_score"),
}


def bayes_section(results: Path, datasets: Iterable[str]) -> tuple[str, list[str]]:
    """Key posterior effects with 90% intervals, diagnostics and prior predictive status.

    The latent model adds a table of the plug-in vs latent estimates (attenuation). A model
    the data cannot support is listed with ``skipped: reason`` (not a warning); one that could
    not be fitted with ``error: reason`` (a warning).
    """
    rows, attenuation, warnings = [], [], []
    for name in datasets:
        for path in sorted((results / name / "bayes").glob("*_x1/diagnostics.json")):
            diag = json.loads(path.read_text())
            model = diag.get("model", path.parent.name.split("_x")[0])
            status = diag.get("status")
            d = diag.get("diagnostics", {})
            if status == "error":
                warnings.append(
                    f"{name}: Bayesian {model} model could not be fitted: {diag.get('reason')}"
                )
            elif status not in ("pass", "skipped"):  # skipped: the data cannot support it
                warnings.append(
                    f"{name}: Bayesian {model} model failed its diagnostics: "
                    f"{'; '.join(d.get('failures', [])) or status}"
                )
            prior = diag.get("prior_predictive") or {}
            if prior.get("status") == "check":
                warnings.append(
                    f"{name}: the priors of the {model} model need a look (prior predictive "
                    f"check): {'; '.join(prior.get('reasons', []))}"
                )
            effects = diag.get("effects", {})
            shown = []
            for key in BAYES_KEYS.get(model, ()):
                e = effects.get(key)
                if e:
                    shown.append(
                        f"{key} {e['mean']:.2f} [{e['eti90_low']:.2f}, {e['eti90_high']:.2f}]"
                    )
            rows.append(
                {
                    "Dataset": name,
                    "Model": model,
                    "Key effects: mean [90% interval]": "; ".join(shown),
                    "Max R-hat": _fmt(d.get("max_r_hat"), 3),
                    "Min ESS (bulk/tail)": f"{_fmt(d.get('min_ess_bulk'), 0)} / "
                    f"{_fmt(d.get('min_ess_tail'), 0)}",
                    "Divergences": _fmt(d.get("divergences")),
                    "Prior predictive": prior.get("status", "not run"),
                    "Status": (
                        f"{status}: {diag.get('reason')}"
                        if status in ("skipped", "error")
                        else status
                    ),
                }
            )
            for row in diag.get("attenuation", []):
                interval = "{:.2f} [{:.2f}, {:.2f}]"
                attenuation.append(
                    {
                        "Dataset": name,
                        "Effect": row["effect"],
                        "Plug-in score": interval.format(
                            row["plugin_mean"], row["plugin_eti90_low"], row["plugin_eti90_high"]
                        ),
                        "Latent alliance": interval.format(
                            row["latent_mean"], row["latent_eti90_low"], row["latent_eti90_high"]
                        ),
                        "Plug-in / latent": _fmt(row["ratio"], 2),
                    }
                )
    if not rows:
        return "No Bayesian model was fitted.", warnings
    text = markdown_table(pd.DataFrame(rows))
    text += (
        "\n\nPrior predictive: 500 draws of the outcome from the priors; pass when the observed "
        "mean and SD lie within the central 99% of their prior predictive distributions and "
        "under 5% of replicated outcomes lie beyond +-10 SD (figures bayes/*/figures/"
        "prior_predictive.png; Gabry et al. 2019)."
    )
    if attenuation:
        text += (
            "\n\nMeasurement error: the plug-in item-mean score and the latent alliance (the "
            "items' common factors in one model with the outcome), same patients and outcome; "
            "mean [90% interval]. A ratio below 1 is the attenuation of the plug-in estimate.\n\n"
            + markdown_table(pd.DataFrame(attenuation))
        )
    return text, warnings


#: Short names of the key estimates of the Bayesian process models in the summary table.
PROCESS_LABELS = {
    "or_alliance": "dropout OR per SD of session alliance",
    "corrected_share_trait": "trait-like share",
    "corrected_share_session": "state-like share",
    "share_trait": "trait-like share (observed scores)",
    "share_session": "state-like share (observed scores)",
    "b_level": "early level -> outcome (z)",
    "b_growth": "growth -> outcome (z)",
    "level_minus_growth": "early level minus growth (absolute slopes)",
    "repaired_minus_unrepaired_points": "repaired - unrepaired rupture (points)",
    "b_repaired_points": "per repaired rupture (points)",
    "b_unrepaired_points": "per unrepaired rupture (points)",
    "d_repaired_minus_unrepaired": "dropout log-odds, repaired - unrepaired",
}


def _variance_warnings(vc: dict[str, Any]) -> list[str]:
    """The REML variance model's warnings in the project's words."""
    return plain_warnings(
        vc.get("warnings") or [],
        "the REML variance model",
        "the variance shares",
        converged=vc.get("converged"),
    )


def _process_cells(summary: dict[str, Any]) -> dict[str, str]:
    """The non-Bayesian process results of one dataset as table cells (or skip reasons)."""

    def skipped(part: dict[str, Any]) -> str | None:
        status, reason = part.get("status"), part.get("reason")
        if status in ("ok", "warning", None):
            return None
        return f"{status}: {reason}" if reason else str(status)

    ag = summary.get("agreement") or {}
    total = (ag.get("all_sessions") or {}).get("total_mean") or {}
    agreement = skipped(ag) or (
        f"ICC(2,1) {_apa(total.get('icc_a1'))}, r {_apa(total.get('pearson_r'))}; mean "
        f"difference {_fmt(total.get('mean_diff'))} [LoA {_fmt(total.get('loa_lower'))}, "
        f"{_fmt(total.get('loa_upper'))}]"
        if total
        else "NA"
    )
    rup = summary.get("ruptures") or {}
    ruptures = skipped(rup) or (
        f"{_fmt(rup.get('episodes'))} in {_fmt(rup.get('patients_with_rupture'))} of "
        f"{_fmt(rup.get('patients_eligible'))} patients ({_fmt(rup.get('repaired'))} repaired, "
        f"{_fmt(rup.get('unrepaired'))} unrepaired, {_fmt(rup.get('censored'))} censored)"
    )
    vc = summary.get("variance_components") or {}
    shares = vc.get("corrected_shares") or vc.get("shares") or {}
    if vc.get("status") == "not_converged":
        variance = "not reported: the REML variance model did not converge"
    else:
        variance = skipped(vc) or " / ".join(
            _apa(shares.get(k), 3) for k in ("therapist", "patient", "session")
        ) + (" (error-corrected)" if vc.get("corrected_shares") else "")
    if vc.get("status") == "warning":
        variance += f" ({'; '.join(_variance_warnings(vc))})"
    pp = summary.get("person_period") or {}
    share = pp.get("dropout_share")
    dropout = skipped(pp) or (
        f"{_fmt(pp.get('dropouts'))} of {_fmt(pp.get('patients'))}"
        + (f" ({100 * share:.0f}%)" if share is not None else "")
        + f" before session {_fmt(pp.get('planned_sessions'))}"
    )
    return {
        "Client-therapist agreement (total score)": agreement,
        "Rupture-repair episodes": ruptures,
        "Variance therapist / patient / session": variance,
        "Dropout": dropout,
    }


def _key_estimate(row: dict[str, Any]) -> str:
    label = PROCESS_LABELS.get(row["effect"])
    if label is None and row["effect"].startswith("b_"):
        label = f"{row['effect'][2:]} rating -> outcome (z)"
    if label is None and "_minus_" in row["effect"]:  # rater_outcome: only the probability
        return f"P({row['probability_of']}) = {_apa(row['probability'])}"
    text = f"{label or row['effect']} {_fmt(row['mean'])} [{_fmt(row['eti95_low'])}, "
    text += f"{_fmt(row['eti95_high'])}]"
    if row.get("probability") is not None and row.get("probability_of"):
        text += f", P({row['probability_of']}) = {_apa(row['probability'])}"
    return text


def process_section(results: Path, datasets: Iterable[str]) -> tuple[str, list[str]]:
    """Process analyses per dataset, then the Bayesian process models with their sources.

    The first table has the non-Bayesian results of ``process/summary.json`` (agreement,
    rupture-repair episodes, variance shares, dropout); the second one row per dataset and
    Bayesian process model (``process/bayes/summary.json``): the key estimates with 95%
    intervals and direction probabilities, the diagnostics and the status (with the reason
    for a model that was skipped or failed); then each model's operational definition and
    sources. A model that failed its diagnostics or could not be fitted is a warning; a
    skipped model (the data do not support it) is not.
    """
    rows, bayes_rows, definitions, warnings = [], [], {}, []
    for name in datasets:
        summary = _read_json(results / name / "process" / "summary.json")
        if summary is not None:
            rows.append({"Dataset": name, **_process_cells(summary)})
            vc = summary.get("variance_components") or {}
            if vc.get("status") in ("warning", "not_converged"):
                warnings += [f"{name}: {w[0].upper()}{w[1:]}" for w in _variance_warnings(vc)]
        bayes = _read_json(results / name / "process" / "bayes" / "summary.json")
        for model, res in ((bayes or {}).get("models") or {}).items():
            status = res.get("status")
            diag = res.get("diagnostics") or {}
            if status in ("skipped", "error"):
                shown_status = f"{status}: {res.get('reason')}"
            else:
                shown_status = status
            if status == "fail":
                warnings.append(
                    f"{name}: Bayesian process model {model} failed its diagnostics: "
                    f"{'; '.join(res.get('failures') or []) or status}"
                )
            elif status == "error":
                warnings.append(
                    f"{name}: Bayesian process model {model} could not be fitted: "
                    f"{res.get('reason')}"
                )
            keys = [k for k in res.get("key") or [] if k.get("effect")]
            ess = (
                f"{_fmt(diag.get('min_ess_bulk'), 0)} / {_fmt(diag.get('min_ess_tail'), 0)}"
                if diag.get("min_ess_bulk") is not None
                else "NA"
            )
            bayes_rows.append(
                {
                    "Dataset": name,
                    "Model": model,
                    "Status": shown_status,
                    "Key estimates: mean [95% interval]": "; ".join(map(_key_estimate, keys))
                    or "-",
                    "Max R-hat": _fmt(diag.get("max_r_hat"), 3),
                    "Min ESS (bulk/tail)": ess,
                    "Divergences": _fmt(diag.get("divergences")),
                }
            )
            if res.get("definition") and model not in definitions:
                definitions[model] = (res["definition"], res.get("references") or [])
    parts = []
    if rows:
        parts.append(markdown_table(pd.DataFrame(rows)))
    if bayes_rows:
        parts.append(
            "**Bayesian process models** (status pass: R-hat <= 1.01, bulk and tail ESS >= "
            "400, no divergences, worst over a model's stages; P: posterior probability of "
            "the stated direction)\n\n" + markdown_table(pd.DataFrame(bayes_rows))
        )
        parts.append(
            "Operational definitions and sources:\n\n"
            + "\n".join(
                f"- **{model}**: {text} Sources: {' '.join(refs)}"
                for model, (text, refs) in definitions.items()
            )
        )
    if not parts:
        return "No process analysis was run.", warnings
    return "\n\n".join(parts), warnings


def panel_section(results: Path, datasets: Iterable[str]) -> tuple[str, list[str]]:
    """The RI-CLPM per dataset (:func:`alliance.panel.summary.panel_rows`), how it differs."""
    from alliance.panel.summary import DIFFERENCE, LEAD, REFERENCES, panel_rows

    rows, warnings = panel_rows(results, datasets)
    if rows.empty:
        return "No RI-CLPM was fitted.", warnings
    parts = [LEAD, markdown_table(rows), f"{DIFFERENCE} Sources: {REFERENCES}."]
    return "\n\n".join(parts), warnings


def bsem_section(results: Path, datasets: Iterable[str]) -> tuple[str, list[str]]:
    """BSEM fits and two-level Bayesian CFAs per dataset (:mod:`alliance.bayes.bsem_summary`)."""
    from alliance.bayes.bsem_summary import LEAD, LEAD_TWOLEVEL, bsem_rows, twolevel_rows

    datasets = list(datasets)
    rows, warnings = bsem_rows(results, datasets)
    two, two_warnings = twolevel_rows(results, datasets)
    parts = []
    if not rows.empty:
        parts += ["### Bayesian SEM", LEAD, markdown_table(rows)]
    if not two.empty:
        parts += ["### Two-level Bayesian CFA", LEAD_TWOLEVEL, markdown_table(two)]
    return "\n\n".join(parts), warnings + two_warnings


def irt_section(results: Path, datasets: Iterable[str]) -> tuple[str, list[str]]:
    """Disordered thresholds and item fit per dataset (:func:`alliance.irt.summary.irt_rows`)."""
    from alliance.irt.summary import LEAD, irt_rows

    rows, warnings = irt_rows(results, datasets)
    if rows.empty:
        return "No item response model was fitted.", warnings
    return "\n\n".join([LEAD, markdown_table(rows)]), warnings


def _p(p: float | None) -> str:
    """A p-value in APA style: ``< .001`` or ``= .034``."""
    if p is None:
        return "NA"
    return "< .001" if p < 0.001 else f"= {_apa(p, 3)}"


def versions() -> dict[str, str]:
    """Python and the key packages' versions."""
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def continuous_scales(results: Path, datasets: Iterable[str]) -> dict[str, Instrument]:
    """The item datasets of a run rated on a continuous scale, with their instruments.

    Read from each dataset's ingest report (the instrument its answers were ingested with);
    a dataset with no ingest report, a published-effects table and a report that names no
    instrument (written before reports named it) are not among them.
    """
    found = {}
    for name in datasets:
        report = _read_json(results / name / "ingest" / "ingest_report.json")
        if report is None or report.get("kind") != "items" or not report.get("instrument"):
            continue
        instrument = ingested_instrument(results / name / "ingest")
        if instrument.continuous:
            found[name] = instrument
    return found


def methods_paragraph(
    config: dict[str, Any],
    software: dict[str, str],
    continuous: dict[str, Instrument] | None = None,
) -> str:
    """A methods paragraph written from the run's configuration and software versions.

    ``continuous`` names the datasets rated on a continuous scale (:func:`continuous_scales`):
    the paragraph says which analyses were not run for them (those that need ordered
    response categories), so that the estimators it names from the configuration are not
    read as fitted to every dataset.
    """
    describe = config.get("describe", {})
    scoring = config.get("scoring", {})
    share = scoring.get("min_answered_share", 0.75)
    parts = [
        "Raw exports were validated against a codebook per dataset: answers outside the "
        "response scale, non-numeric or between-category answers, missing or invalid IDs and "
        "sessions, out-of-range outcome scores and duplicated patient x session x rater records "
        "were quarantined with their reasons and counted (rows in = rows kept + rows "
        "quarantined); declared missing-value codes were treated as item non-response.",
        f"Subscale and total scores are the means of the answered items, computed when at least "
        f"{share:.0%} of a scale's items were answered (prorated sums are the mean times the "
        "number of items).",
        f"Item distributions, internal consistency (Cronbach's alpha with Feldt 95% confidence "
        f"intervals, computed as psych::alpha with pairwise-complete covariances), the "
        f"Kaiser-Meyer-Olkin measure, Bartlett's test of sphericity, Horn's parallel analysis "
        f"({describe.get('parallel_iterations', 100)} random data sets, 95th percentile, seed "
        f"{config.get('seed')}) and an exploratory factor analysis (minimum residual, oblimin "
        f"rotation) were computed on one row per patient: the {describe.get('rater', 'client')} "
        f"ratings of session {describe.get('session', 3)}, complete cases.",
        _continuous_methods(continuous or {}),
        _cfa_methods(config),
        _bayes_methods(config),
        _process_methods(config),
        _panel_methods(config),
        _irt_methods(config),
        _meta_methods(config),
        "Analyses used Python "
        + software["python"]
        + " with "
        + ", ".join(
            f"{k} {v}" for k, v in software.items() if k != "python" and v != "not installed"
        )
        + ".",
    ]
    return " ".join(p for p in parts if p)


def _continuous_methods(continuous: dict[str, Instrument]) -> str:
    """The sentence on datasets rated on a continuous scale (empty when there are none)."""
    if not continuous:
        return ""
    rated = "; ".join(
        f"{name} ({inst.name}, {inst.scale_min:g}-{inst.scale_max:g} in steps of "
        f"{inst.scale_step:g})"
        for name, inst in continuous.items()
    )
    return (
        f"Items rated on a continuous line ({rated}) have no ordered response categories: "
        "for these datasets the analyses that need them (the WLSMV CFA, the ordinal BSEM, "
        "the item response models and the latent Bayesian model) were not run, and their "
        "CFA used the maximum-likelihood estimators only."
    )


def _cfa_methods(config: dict[str, Any]) -> str:
    """The CFA sentences of the methods paragraph (empty when CFA is off)."""
    cfa = config.get("cfa", {})
    if not cfa.get("enabled", False):
        return ""
    names = {
        "WLSMV": "WLSMV (diagonally weighted least squares on polychoric correlations "
        "with robust standard errors and the mean- and variance-adjusted test)",
        "MLR": "MLR (maximum likelihood with Huber-White standard errors and the "
        "Yuan-Bentler scaled test)",
        "ML": "ML",
    }
    ests = [names[e] for e in cfa.get("estimators", [])]
    missing = cfa.get("missing", {})
    miss = ", ".join(f"{m} for {e}" for e, m in missing.items() if e in cfa.get("estimators", []))
    models = "; ".join(MODEL_LABELS.get(m, m) for m in cfa.get("models", []))
    groups = ", ".join(cfa.get("invariance", {}).get("groups", {}))
    return (
        f"Confirmatory factor analyses compared these models: {models} (marker-variable "
        f"identification) with {' and '.join(ests)}; missing data were handled by {miss}. "
        "Robust CFI, TLI and RMSEA are reported for the robust estimators (Brosseau-Liard & "
        "Savalei 2014; Savalei 2021); nested models were compared by scaled chi-square "
        "difference tests (Satorra-Bentler 2001 for MLR, Satorra 2000 scaled-shifted for WLSMV)."
        + (
            f" Measurement invariance across {groups} was tested by the configural, metric, "
            "scalar (thresholds for ordinal items) and strict ladder with Chen's (2007) criteria."
            if groups
            else ""
        )
        + (
            " For the ordinal (WLSMV) ladder the latent responses were scaled by the theta "
            "parameterization, so that the strict step could hold their residual variances "
            "equal (Millsap & Yun-Tein 2004)."
            if groups
            and "WLSMV" in cfa.get("estimators", [])
            and cfa.get("invariance", {}).get("parameterization") == "theta"
            else ""
        )
        + (
            " In the ordinal ladders, a category of an item that had no responses in some "
            "group was merged with an adjacent category of that item in every group, so that "
            "thresholds stayed comparable across groups (Rutkowski, Svetina & Liaw 2019); the "
            "merges are listed with each ladder."
            if groups
            and "WLSMV" in cfa.get("estimators", [])
            and cfa.get("invariance", {}).get("collapse_empty_categories", True)
            else ""
        )
        + (
            " Across raters, each patient contributed one row per rater (client and therapist "
            "ratings of the same session), so the rater groups are not independent samples; "
            "the multi-group tests ignore this pairing."
            if "rater" in cfa.get("invariance", {}).get("groups", {})
            else ""
        )
        + _longitudinal_methods(cfa)
        + _twolevel_methods(cfa)
    )


def _twolevel_methods(cfa: dict[str, Any]) -> str:
    """The sentence on the two-level CFA (empty when it is off)."""
    two = cfa.get("twolevel") or {}
    datasets = two.get("datasets") or []
    if not datasets:
        return ""
    between = (
        "one general factor"
        if two.get("between", "one_factor") == "one_factor"
        else "the same factors"
    )
    return (
        f" In {', '.join(datasets)}, a two-level CFA of every rated session (level 1) within "
        f"patients (level 2) described the session-to-session variation by the "
        f"{cfa.get('invariance', {}).get('model', 'correlated')} model and the differences "
        f"between patients by {between}, by ML/MLR on the items as continuous, with the SRMR "
        "of each level (Muthen 1994; lavaan's cfa(..., cluster =)); sessions with a missing "
        "answer were left out."
    )


def _longitudinal_methods(cfa: dict[str, Any]) -> str:
    """The sentence on longitudinal invariance (empty when it is off)."""
    long = cfa.get("invariance", {}).get("longitudinal") or {}
    waves, datasets = long.get("waves") or [], long.get("datasets") or []
    if len(waves) < 2 or not datasets:
        return ""
    return (
        f" Longitudinal measurement invariance over sessions {', '.join(map(str, waves))} "
        f"({', '.join(datasets)}) was tested with the model written once per session, the "
        "residuals of the same item correlated across sessions and factors identified by unit "
        "variances and zero means (semTools' measEq.syntax; Wu & Estabrook 2016 for ordinal "
        "items), by the configural, metric, scalar and strict (continuous items) steps with "
        "Chen's (2007) criteria; missed sessions by FIML (MLR) or pairwise deletion (WLSMV)."
    )


def _bayes_methods(config: dict[str, Any]) -> str:
    """The Bayesian-model sentences of the methods paragraph (empty when off)."""
    bayes = config.get("bayes", {})
    if not bayes.get("enabled", False):
        return ""
    pri = bayes.get("priors", {})
    smp = bayes.get("sampler", {})
    scales = [s for s in bayes.get("sensitivity_scales", []) if s != 1]
    models = ", ".join(bayes.get("models", []))
    by_dataset = bayes.get("models_by_dataset") or {}
    if by_dataset:
        models += "; " + "; ".join(
            f"{name}: {', '.join(chosen) or 'none'}" for name, chosen in by_dataset.items()
        )
    return (
        f"Bayesian models ({models}) related client alliance at "
        f"session {bayes.get('alliance_session', 3)} to {bayes.get('measure')} with "
        f"standardized variables and weakly informative priors (intercepts and slopes "
        f"Normal(0, {pri.get('slope', 1.0)}), residual SDs HalfNormal({pri.get('sigma', 1.0)}), "
        f"random-effect SDs HalfNormal({pri.get('tau', 0.5)})), sampled with NUTS "
        f"({smp.get('chains', 2)} chains, {smp.get('draws', 2000)} draws after "
        f"{smp.get('tune', 1000)} tuning steps, target acceptance "
        f"{smp.get('target_accept', 0.95)}); "
        "convergence required R-hat <= 1.01, bulk and tail ESS >= 400 and no divergences; "
        "each model's priors were checked by 500 prior predictive draws of the outcome "
        "(Gabry et al. 2019)"
        + (
            "; the latent model measured alliance by the WAI-SR items (three correlated "
            "factors, items treated as continuous, factors integrated out) in one model with "
            "the outcome, beside the plug-in item-mean score"
            if "latent" in bayes.get("models", [])
            else ""
        )
        + (
            f", and the outcome model was refitted with every prior scale multiplied by "
            f"{' and '.join(f'{x:g}' for x in scales)} (Kruschke 2021)."
            if scales
            else "."
        )
    )


def _process_methods(config: dict[str, Any]) -> str:
    """The process-analysis sentences of the methods paragraph (empty when both are off)."""
    process = config.get("process", {})
    pbayes = config.get("process_bayes", {})
    parts = []
    if process.get("enabled", False):
        settings = process.get("settings") or {}
        rup = settings.get("ruptures") or {}
        unit = {
            "sd": "times the patient's own SD of session scores",
            "fixed": "scale points",
            "rci": "times the reliable change criterion",
        }.get(rup.get("threshold_type", "sd"), "")
        parts.append(
            "Process analyses compared client and therapist ratings of the same sessions "
            "(ICC(2,1), ICC(3,1) and Bland-Altman limits of agreement), detected rupture-repair "
            f"episodes (a session at least {rup.get('threshold', 2.0):g} {unit} below the mean "
            f"of the previous {rup.get('baseline_sessions', 3)} sessions, repaired when a score "
            f"within {rup.get('repair_window', 2)} sessions returned to the earlier level; "
            "Stiles et al. 2004) and estimated therapist, patient and session shares of "
            "alliance variance by REML."
        )
    if pbayes.get("enabled", False):
        models = ", ".join(pbayes.get("models", []))
        parts.append(
            f"Bayesian process models ({models}) were sampled with the same sampler settings "
            "and convergence criteria; a model the data did not support was skipped with the "
            "reason stated (definitions and sources in the process section)."
        )
    return " ".join(parts)


def _irt_methods(config: dict[str, Any]) -> str:
    """The item response model sentences of the methods paragraph (empty when off)."""
    from alliance.irt.summary import irt_methods

    return irt_methods(config)


def _panel_methods(config: dict[str, Any]) -> str:
    """The RI-CLPM sentences of the methods paragraph (empty when the stage is off)."""
    from alliance.panel.summary import panel_methods

    return panel_methods(config)


def _meta_methods(config: dict[str, Any]) -> str:
    """The meta-analysis sentences of the methods paragraph (empty when pooling is off)."""
    meta = config.get("meta", {})
    if not meta.get("enabled", False):
        return ""
    bayes = meta.get("bayes", {})
    return (
        f"Each dataset's alliance-outcome association (partial correlation of session-"
        f"{meta.get('alliance_session', 3)} alliance with the last observed {meta.get('measure')} "
        "controlling for baseline) and the published effects were pooled on Fisher's z by a "
        f"random-effects model ({meta.get('method', 'REML')}, as metafor) and a Bayesian "
        f"random-effects model (mu ~ Normal(0, {bayes.get('prior_mu_sd', 1.0)}), tau ~ "
        f"{bayes.get('tau_prior', 'halfnormal')}({bayes.get('prior_tau_scale', 0.5)}); "
        f"{bayes.get('chains', 4)} chains of {bayes.get('draws', 1000)} draws after "
        f"{bayes.get('tune', 1000)} tuning steps, {bayes.get('sampler', 'nutpie')})."
    ) + _frontier_methods(meta)


def _frontier_methods(meta: dict[str, Any]) -> str:
    """The MASEM and one-stage IPD sentences of the methods paragraph (when enabled)."""
    text = ""
    masem = meta.get("masem") or {}
    if masem.get("enabled"):
        text += (
            " The item datasets' item correlation matrices were pooled by two-stage structural "
            "equation modelling (Cheung & Chan 2005; stage 1: "
            f"{' and '.join(masem.get('methods') or ['fixed', 'random'])} effects) and the "
            f"models {', '.join(masem.get('models') or [])} were fitted to the pooled matrix by "
            "WLS with its asymptotic covariance."
        )
    if (meta.get("ipd") or {}).get("enabled"):
        text += (
            " A one-stage Bayesian IPD model (patients in therapists in sites, site-varying "
            "alliance slopes) was fitted beside the two-stage pooled correlation."
        )
    return text


def _pct(value: Any) -> str:
    return "NA" if value is None else f"{value:.1f}%"


def _interval(low: Any, high: Any, digits: int = 3, apa: bool = True) -> str:
    show = _apa if apa else _fmt
    return f"[{show(low, digits)}, {show(high, digits)}]"


def _bias_rows(bias: dict[str, Any], scale: str, three_level: bool) -> list[tuple[str, str]]:
    """Rows of the small-study and publication-bias methods of ``meta.json``'s ``bias``."""
    rows: list[tuple[str, str]] = []
    if not bias:
        return rows
    egger = bias.get("egger") or {}
    if three_level and "z" in egger:
        rows.append(
            (
                "Egger's test (three-level, SE as moderator)",
                f"z = {_fmt(egger.get('z'))}, p {_p(egger.get('pvalue'))}",
            )
        )
    for key, label in (("pet", "PET (SE as moderator)"), ("peese", "PEESE (variance)")):
        b = bias.get(key) or {}
        if "estimate" in b:
            rows.append(
                (
                    f"{label}: effect at SE 0 ({scale}) [95% CI]",
                    f"{_fmt(b['estimate'], 3)} "
                    f"{_interval(b.get('ci.lb'), b.get('ci.ub'), apa=False)}",
                )
            )
        elif b:
            rows.append((label, f"not run ({b.get('reason')})"))
    if bias.get("pet_peese"):
        rows.append(("Conditional PET-PEESE uses", str(bias["pet_peese"])))
    indep = "; effects as independent" if three_level else ""
    tf = bias.get("trimfill") or {}
    if "k0" in tf:
        rows.append(
            (
                f"Trim-and-fill (L0{indep}): filled effects; adjusted estimate ({scale}) [95% CI]",
                f"{tf['k0']} on the {tf['side']}; {_fmt(tf['estimate'], 3)} "
                f"{_interval(tf.get('ci.lb'), tf.get('ci.ub'), apa=False)}",
            )
        )
    sel = bias.get("selection") or {}
    if "estimate" in sel:
        delta = ", ".join(_fmt(d, 2) for d in sel.get("delta") or [])
        steps = sel.get("steps")
        kind = f"step function at p = {', '.join(f'{x:g}' for x in steps)}" if steps else "beta"
        rows.append(
            (
                f"Selection model ({kind}{indep}): estimate ({scale}) [95% CI]; delta; LRT",
                f"{_fmt(sel['estimate'], 3)} "
                f"{_interval(sel.get('ci.lb'), sel.get('ci.ub'), apa=False)}"
                f"; delta = {delta}; chi2({sel.get('LRT_df')}) = {_fmt(sel.get('LRT'))}, "
                f"p {_p(sel.get('lrt_pvalue'))}",
            )
        )
    elif sel:
        rows.append(("Selection model", f"not run ({sel.get('reason')})"))
    return rows


def _moderator_rows(mods: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Rows of the multi-moderator meta-regression: the omnibus test, R2, each coefficient."""
    if not mods:
        return []
    df1, df2 = mods.get("QM_df") or [None, None]
    test = "Knapp-Hartung" if mods.get("test") == "knha" else "t"
    rows = [
        (
            f"Moderators ({', '.join(mods.get('moderators') or [])}; {test} tests)",
            f"F({df1}, {df2}) = {_fmt(mods.get('QM'))}, p {_p(mods.get('QM_pval'))}; "
            f"pseudo-R2 = {_pct(mods.get('R2'))}",
        )
    ]
    robust = {c.get("term"): c for c in mods.get("robust") or []}
    for c in mods.get("coefficients") or []:
        if c.get("term") == "intrcpt":
            continue
        text = (
            f"b = {_fmt(c.get('estimate'), 3)}, t({c.get('df')}) = {_fmt(c.get('statistic'))}, "
            f"p {_p(c.get('pval'))}"
        )
        rob = robust.get(c.get("term"))
        if rob:
            text += (
                f"; CR2 t({_fmt(rob.get('df'), 1)}) = {_fmt(rob.get('statistic'))}, "
                f"p {_p(rob.get('pvalue'))}"
            )
        rows.append((f"  {c.get('term')}", text))
    return rows


def meta_section(results: Path) -> tuple[str, list[str]]:
    """The meta-analysis of ``results/meta/meta.json``: pooled r, heterogeneity, Egger's test.

    One row per quantity, as :func:`alliance.meta.analysis.pool_effects` (metafor's ``rma``,
    ``confint`` and ``regtest``) and :func:`alliance.meta.bayes.pool_effects_bayes` wrote
    it: k; the pooled r with its 95% CI and the 95% prediction interval for a new study
    (Fisher z back-transformed); tau2 with its Q-profile 95% CI, tau; I2 with its CI; Cochran's
    Q; Egger's regression test (metafor's default mixed-effects version and the classic
    weighted regression) with the limit estimate; the Bayesian pooled r and tau. Nothing
    is recomputed. Notes of the pooling (datasets left out) become warnings.

    References
    ----------
    Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in meta-analysis
    detected by a simple, graphical test. *BMJ, 315*(7109), 629-634.
    Riley, R. D., Higgins, J. P. T., & Deeks, J. J. (2011). Interpretation of random effects
    meta-analyses. *BMJ, 342*, d549.
    """
    meta = _read_json(results / "meta" / "meta.json")
    if meta is None:
        return "No meta-analysis was run.", []
    warnings = [f"meta-analysis: {n}" for n in meta.get("notes") or []]
    het = meta.get("heterogeneity") or {}
    ci = meta.get("heterogeneity_ci") or {}
    info = meta.get("meta") or {}
    method = info.get("method", "REML")
    three_level = info.get("model") == "three-level"
    is_r = "pooled_r" in meta
    scale = "Fisher z" if is_r else "effect-size scale"
    rows = [("k (datasets and published studies)", _fmt(meta.get("k")))]
    if is_r:
        r = meta.get("pooled_r") or {}
        z = meta.get("pooled_z") or {}
        rows += [
            (
                "Pooled r [95% CI]",
                f"{_apa(r.get('estimate'), 3)} {_interval(r.get('ci.lb'), r.get('ci.ub'))} "
                f"(z = {_fmt(z.get('zval'))}, p {_p(z.get('pval'))})",
            ),
            ("95% prediction interval (r)", _interval(r.get("pi.lb"), r.get("pi.ub"))),
        ]
    else:
        e = meta.get("pooled") or {}
        rows += [
            (
                "Pooled effect [95% CI]",
                f"{_fmt(e.get('estimate'), 3)} "
                f"{_interval(e.get('ci.lb'), e.get('ci.ub'), apa=False)} "
                f"(z = {_fmt(e.get('zval'))}, p {_p(e.get('pval'))})",
            ),
            ("95% prediction interval", _interval(e.get("pi.lb"), e.get("pi.ub"), apa=False)),
        ]
    if three_level:
        rows.append(
            (
                "Model",
                f"three-level REML, effects in studies in {_fmt(het.get('n_clusters'))} "
                f"clusters ({info.get('cluster')}); metafor rma.mv",
            )
        )
        level_ci = {c.get("level"): c for c in ci.get("sigma2") or []}
        names = het.get("levels") or []
        for j, (name, label) in enumerate(
            zip(names, ("between clusters", "within clusters"), strict=False)
        ):
            c = level_ci.get(name) or {}
            bounds = f" {_interval(c.get('ci.lb'), c.get('ci.ub'), 4)}" if c else ""
            rows.append(
                (
                    f"sigma2 {label} ({scale}) [95% CI, profile likelihood]",
                    f"{_apa((het.get('sigma2') or [None, None])[j], 4)}{bounds}",
                )
            )
        i2 = het.get("I2") or [None, None]
        rows.append(
            (
                "I2 between clusters, within clusters (total)",
                f"{_pct(i2[0])}, {_pct(i2[1])} ({_pct(het.get('I2_total'))})",
            )
        )
    else:
        tau2_ci = ci.get("tau2") or {}
        i2_ci = ci.get("I2") or {}
        rows += [
            (
                f"tau2 ({scale}, {method}) [95% CI, Q-profile]",
                f"{_apa(het.get('tau2'), 4)}"
                + (
                    f" {_interval(tau2_ci.get('ci.lb'), tau2_ci.get('ci.ub'), 4)}"
                    if tau2_ci
                    else ""
                ),
            ),
            ("tau", _apa(het.get("tau"), 3)),
            (
                "I2 [95% CI]",
                _pct(het.get("I2"))
                + (f" [{_pct(i2_ci.get('ci.lb'))}, {_pct(i2_ci.get('ci.ub'))}]" if i2_ci else ""),
            ),
        ]
    rows.append(
        (
            "Cochran's Q",
            f"Q({_fmt(het.get('Q_df'))}) = {_fmt(het.get('Q'))}, p {_p(het.get('Q_pval'))}",
        )
    )
    robust = meta.get("robust")
    if robust:
        rows.append(
            (
                f"Cluster-robust test (CR2, Satterthwaite df; {_fmt(robust.get('clusters'))} "
                f"clusters by {robust.get('cluster_by')})",
                f"SE = {_fmt(robust.get('se'), 4)}, t({_fmt(robust.get('df'), 1)}) = "
                f"{_fmt(robust.get('statistic'))}, p {_p(robust.get('pvalue'))}",
            )
        )
    egger = meta.get("egger") or {}
    two = "two-level, " if three_level else ""
    for key, label, stat in (
        ("rma", f"Egger's test ({two}mixed-effects, SE as predictor; metafor regtest)", "z"),
        ("lm", f"Egger's test ({two}classic weighted regression)", "t"),
    ):
        e = egger.get(key)
        if not e:
            continue
        df = f"({_fmt(e['df'])})" if e.get("df") is not None else ""
        rows.append(
            (
                label,
                f"{stat}{df} = {_fmt(e.get('statistic'))}, p {_p(e.get('pval'))}; limit "
                f"estimate ({scale} at SE 0) {_fmt(e.get('limit_estimate'), 3)} "
                f"{_interval(e.get('limit_ci.lb'), e.get('limit_ci.ub'), apa=False)}",
            )
        )
    if not egger:
        rows.append(("Egger's test", "not run (fewer than 3 effects)"))
    rows += _bias_rows(meta.get("bias") or {}, scale, three_level)
    rows += _moderator_rows(meta.get("moderators"))
    bayes = meta.get("bayes") or {}
    if bayes.get("pooled_r"):
        br, bt = bayes["pooled_r"], bayes.get("tau") or {}
        status = (bayes.get("diagnostics") or {}).get("status", "NA")
        rows.append(
            (
                "Bayesian pooled r [95% ETI]; tau",
                f"{_apa(br.get('mean'), 3)} {_interval(br.get('eti.lb'), br.get('eti.ub'))}; "
                f"{_apa(bt.get('mean'), 3)} {_interval(bt.get('eti.lb'), bt.get('eti.ub'))} "
                f"(diagnostics {status})",
            )
        )
        if status != "pass":
            warnings.append(
                "meta-analysis: the Bayesian random-effects model failed its diagnostics: "
                + "; ".join((bayes.get("diagnostics") or {}).get("problems") or [status])
            )
    ipd_rows, ipd_warnings = ipd_summary_rows(results)  # one-stage IPD beside the two-stage
    rows += ipd_rows
    warnings += ipd_warnings
    table = pd.DataFrame(rows, columns=["Quantity", "Value"])
    model = (
        "Three-level random-effects model (effects in studies in clusters; Cheung 2014) "
        f"by REML on the {scale}"
        if three_level
        else f"Random-effects model on the {scale} ({method})"
    )
    note = (
        f"{model}{', back-transformed to r' if is_r else ''}; the prediction interval is where "
        "the effect of a new study is expected (Riley et al. 2011). Egger's test of "
        "funnel-plot asymmetry (Egger et al. 1997) has little power with few studies; PET, "
        "PEESE (Stanley & Doucouliagos 2014), trim-and-fill (Duval & Tweedie 2000) and "
        "selection models (Vevea & Hedges 1995) are sensitivity analyses, not corrections. "
        "Studies, weights and leave-one-out: results/meta/studies.csv, leave_one_out.csv; "
        "figures forest.png and funnel.png."
    )
    masem_md, masem_warnings = masem_summary(results)
    extra = f"\n\n{masem_md}" if masem_md else ""
    return markdown_table(table) + f"\n\n*Note.* {note}{extra}", warnings + masem_warnings


def ipd_summary_rows(results: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Rows of the results summary's meta-analysis table for ``meta/ipd/ipd.json``.

    The two-stage pooled r of the item datasets and the one-stage model's pooled r, slope and
    between-site SD of the slope, side by side; and warnings for a failed or skipped fit.
    """
    ipd = _read_json(results / "meta" / "ipd" / "ipd.json")
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
    import numpy as np

    masem = _read_json(results / "meta" / "masem" / "masem.json")
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


def reporting_checks(data: pd.DataFrame, results: Path, datasets: list[str]) -> list[Check]:
    """JARS-Quant, JARS-SEM and BARG items, each marked met or not with the evidence.

    References
    ----------
    Appelbaum, M., et al. (2018). Journal article reporting standards for quantitative research
    in psychology (JARS-Quant). *American Psychologist, 73*(1), 3-25 (with its module for
    structural equation modeling, here "JARS-SEM").
    Kruschke, J. K. (2021). Bayesian analysis reporting guidelines. *Nature Human Behaviour, 5*,
    1282-1291.
    """
    described = [d for d in datasets if (results / d / "describe" / "summary.json").is_file()]
    cfa_dirs = [
        results / d / "cfa" for d in [*datasets, "pooled"] if (results / d / "cfa").is_dir()
    ]
    comparisons = [p for d in cfa_dirs for p in d.glob("comparison_*.json")]
    ladders = [
        p
        for d in cfa_dirs
        for p in d.glob("invariance_*.json")
        if not p.name.startswith("invariance_long_")
    ]
    long_ladders = [
        p
        for d in cfa_dirs
        for p in d.glob("invariance_long_*.json")
        if json.loads(p.read_text()).get("state") == "fitted"
    ]
    bayes = [p for d in datasets for p in (results / d / "bayes").glob("*_x1/diagnostics.json")]
    bayes = [p for p in bayes if json.loads(p.read_text()).get("status") != "skipped"]
    bayes_pass = [p for p in bayes if json.loads(p.read_text()).get("status") == "pass"]
    sensitivity = [p for d in datasets for p in (results / d / "bayes").glob("sensitivity_*.csv")]
    ppc = [p for p in bayes if (p.parent / "figures" / "ppc.png").is_file()]
    prior_status = [
        (json.loads(p.read_text()).get("prior_predictive") or {}).get("status") for p in bayes
    ]
    prior_checked = [s for s in prior_status if s is not None]
    prior_passed = [s for s in prior_status if s == "pass"]
    none = "not produced by this run"

    def check(standard: str, item: str, met: bool, evidence: str) -> Check:
        return Check(standard, item, met, evidence if met else none)

    return [
        check(
            "JARS-Quant",
            "Flow of records from raw data to analysis",
            len(data) > 0,
            f"ingest table: rows in, kept, quarantined rows and cells with reasons, "
            f"{len(data)} datasets",
        ),
        check(
            "JARS-Quant",
            "Amount of missing data and how it was handled",
            len(data) > 0 and len(described) > 0,
            "item non-response per dataset; complete cases for EFA; FIML / pairwise in CFA; "
            "proration rule for scores",
        ),
        check(
            "JARS-Quant",
            "Reliability of the measures in this sample",
            len(described) > 0,
            f"alpha with Feldt CIs ({len(described)} datasets); omega and AVE per CFA model",
        ),
        check(
            "JARS-SEM",
            "Estimation method, its justification and software",
            bool(comparisons),
            "estimators and missing-data methods in the methods paragraph; versions listed",
        ),
        check(
            "JARS-SEM",
            "Fit statistics with the criteria used",
            bool(comparisons),
            f"{len(comparisons)} model comparisons with robust CFI/TLI/RMSEA (90% CI) and SRMR; "
            "cutoffs labelled as derived for ML",
        ),
        check(
            "JARS-SEM",
            "Competing models and nested tests",
            bool(comparisons),
            "one-factor, two-factor, three-factor, second-order, bifactor and (bifactor-)ESEM "
            "models with scaled difference tests and bifactor indices",
        ),
        check(
            "JARS-SEM",
            "Parameter estimates with standard errors (standardized solution)",
            bool(comparisons),
            "loadings tables with SEs per model (cfa/tables/loadings_*)",
        ),
        check(
            "JARS-SEM",
            "Measurement invariance across groups",
            bool(ladders),
            f"{len(ladders)} invariance ladders with Chen (2007) decisions",
        ),
        check(
            "JARS-SEM",
            "Measurement invariance over time (longitudinal)",
            bool(long_ladders),
            f"{len(long_ladders)} longitudinal invariance ladders over sessions "
            "(cfa.invariance.longitudinal)",
        ),
        check(
            "BARG",
            "Priors specified and justified",
            bool(bayes),
            "prior scales in the methods paragraph and config.yaml (weakly informative)",
        ),
        check(
            "BARG",
            "MCMC convergence and efficiency (R-hat, ESS, divergences)",
            bool(bayes) and len(bayes_pass) == len(bayes),
            f"{len(bayes_pass)} of {len(bayes)} fits pass R-hat <= 1.01, ESS >= 400, no "
            "divergences",
        ),
        check(
            "BARG",
            "Posterior predictive check",
            bool(ppc),
            f"posterior predictive overlays for {len(ppc)} fits (bayes/*/figures/ppc.png)",
        ),
        check(
            "BARG",
            "Prior sensitivity analysis",
            bool(sensitivity),
            f"{len(sensitivity)} tables of key estimates under halved and doubled prior scales",
        ),
        check(
            "BARG",
            "Prior predictive check",
            bool(prior_checked),
            f"{len(prior_checked)} of {len(bayes)} fits with a prior predictive check "
            f"({len(prior_passed)} pass; bayes/*/figures/prior_predictive.png)",
        ),
        check(
            "BARG",
            "Posterior of key effects with intervals",
            bool(bayes),
            "means with 90% intervals in this summary; 94% HDIs in bayes/*/summary.md",
        ),
    ]


def write_summary(results_dir: str | Path, config: dict[str, Any], out_md: str | Path) -> str:
    """Write ``summary.md``, ``summary.html`` and ``summary_tables.docx`` for every dataset.

    ``summary_tables.docx`` holds every table of the summary in APA layout
    (:mod:`alliance.report.docx`).

    Returns
    -------
    str
        The Markdown text.
    """
    results = Path(results_dir)
    datasets = list(config["datasets"])
    analysed = datasets + (["pooled"] if (results / "pooled").is_dir() else [])
    software = versions()
    data_md, data_warnings, data = data_section(results, datasets)
    meas_md, meas_warnings = measurement_section(results, analysed)
    cfa_md, cfa_warnings = cfa_section(results, analysed)
    bsem_md, bsem_warnings = bsem_section(results, datasets)
    if bsem_md:
        cfa_md = f"{cfa_md}\n\n{bsem_md}"
    bayes_md, bayes_warnings = bayes_section(results, datasets)
    process_md, process_warnings = process_section(results, datasets)
    panel_md, panel_warnings = panel_section(results, datasets)
    irt_md, irt_warnings = irt_section(results, datasets)
    meta_md, meta_warnings = meta_section(results)
    checks = reporting_checks(data, results, datasets)
    warnings = data_warnings + meas_warnings + cfa_warnings + bayes_warnings + process_warnings
    warnings += panel_warnings + irt_warnings + bsem_warnings
    warnings += meta_warnings
    check_rows = pd.DataFrame(
        [
            {
                "Standard": c.standard,
                "Item": c.item,
                "Met": "yes" if c.met else "no",
                "Evidence": c.evidence,
            }
            for c in checks
        ]
    )
    text = "\n\n".join(
        [
            "# Results summary",
            f"Datasets: {md_text(', '.join(datasets))}. Master seed: {config.get('seed')}. "
            "Provenance (input hashes, versions, commit) is in `results/provenance.json` when "
            "built.",
            "## Data",
            data_md,
            "## Measurement",
            meas_md,
            "## Confirmatory factor analysis",
            cfa_md,
            "## Alliance and outcome (Bayesian models)",
            bayes_md,
            "## Alliance as a process",
            process_md,
            "## Alliance and symptoms within patients",
            panel_md,
            "## Item response models",
            irt_md,
            "## Meta-analysis",
            meta_md,
            "## Methods",
            methods_paragraph(config, software, continuous_scales(results, datasets)),
            "## Reporting checklist",
            markdown_table(check_rows),
            "## Warnings and failed checks",
            "\n".join(f"- {md_text(w)}" for w in warnings) if warnings else "None.",
        ]
    )
    out = Path(out_md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    out.with_suffix(".html").write_text(markdown_to_html(text, title="Results summary"))
    from alliance.report.docx import write_summary_docx

    write_summary_docx(text, out.with_name("summary_tables.docx"))  # for the manuscript
    return text


def markdown_to_html(text: str, title: str) -> str:
    """A standalone HTML page of Markdown ``text`` (tables enabled), with all HTML escaped.

    Raw HTML in ``text`` (a column header reaching the summary through a warning) is shown as
    text, never passed to the page; links, images and autolinks are not rendered either (a
    data string cannot make the page fetch or point at an address). The title is escaped.
    """
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    renderer.disable(["link", "image", "autolink"])
    body = renderer.render(text)
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:1em 0}"
        "th,td{border-top:1px solid #999;border-bottom:1px solid #999;padding:.3em .6em;"
        "text-align:left}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )
