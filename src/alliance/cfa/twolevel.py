"""Two-level CFA of an ingested dataset: sessions (level 1) within patients (level 2).

Rule ``cfa_twolevel`` (:func:`run_dataset`) takes one rater's item rows of every session of the
ingested items table (a row per patient x session), the configured instrument model
(``cfa.invariance.model``) for the within-patient (session-to-session) variation and, for the
between-patient variation, either one general factor (``between: one_factor``) or the same
factors (``between: same``), and fits them by ML or MLR with
:func:`alliance.sem.twolevel_output.fit_twolevel` (lavaan's ``cfa(..., cluster =
"patient_id")``). Two-level FIML is not implemented: a session with a missing item answer is
left out (listwise) and counted. Ordinal two-level models, which lavaan cannot fit by ML
either, are fitted by Bayes (:mod:`alliance.bayes.twolevel_cfa`, rule ``bsem_twolevel``).
Patient identifiers define the clusters only: nothing written holds one.

May import: the library (this is a stage entry: the workflow's script calls it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.sem.syntax import model_variables, parse_syntax
from alliance.sem.twolevel_output import fit_twolevel

__all__ = ["BETWEEN_MODELS", "run_dataset", "twolevel_syntax", "twolevel_table", "write_table"]

#: The between-patient models: one general factor, or the within model's factors again.
BETWEEN_MODELS = ("one_factor", "same")
CLUSTER = "patient_id"


def _rename(syntax: str, names: list[str], suffix: str) -> str:
    """``syntax`` with each latent variable ``f`` written ``f{suffix}`` (whole names only)."""
    for name in sorted(names, key=len, reverse=True):
        syntax = re.sub(rf"(?<![A-Za-z0-9_.]){re.escape(name)}(?![A-Za-z0-9_.])", name + suffix,
                        syntax)  # fmt: skip
    return syntax


def twolevel_syntax(syntax: str, between: str = "one_factor") -> str:
    """The two-level model of a single-level instrument model.

    Level 1 is ``syntax`` with its factors renamed ``<factor>_w``; level 2 is one factor
    ``general_b`` measured by every item (``between = "one_factor"``) or ``syntax`` again
    with the factors renamed ``<factor>_b`` (``"same"``).

    Raises
    ------
    ValueError
        For an unknown ``between`` or a model that cannot be parsed.
    """
    if between not in BETWEEN_MODELS:
        raise ValueError(f"cfa.twolevel.between must be one of {BETWEEN_MODELS}, got {between!r}")
    ov, lv = model_variables(parse_syntax(syntax))
    within = _rename(syntax, lv, "_w")
    if between == "same":
        level2 = _rename(syntax, lv, "_b")
    else:
        level2 = "general_b =~ " + " + ".join(ov)
    return f"level: 1\n{within.strip()}\nlevel: 2\n{level2.strip()}\n"


def _session_rows(
    items: pd.DataFrame, names: list[str], rater: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rater's complete session rows of the model's items and the counts."""
    rows = items[items["rater"].astype(str) == rater] if "rater" in items else items
    missing = [v for v in names if v not in rows.columns]
    if missing:
        raise ValueError(f"items of the model are not in the items table: {missing}")
    frame = rows[[CLUSTER, *names]].copy()
    frame[names] = frame[names].astype(float)
    complete = frame.dropna(subset=names)
    sizes = complete.groupby(CLUSTER).size()
    info = {
        "rater": rater,
        "sessions": int(len(complete)),
        "sessions_incomplete_dropped": int(len(frame) - len(complete)),
        "patients": int(len(sizes)),
        "patients_with_2_or_more_sessions": int((sizes >= 2).sum()),
        "sessions_per_patient": {
            "min": int(sizes.min()) if len(sizes) else 0,
            "max": int(sizes.max()) if len(sizes) else 0,
            "mean": float(sizes.mean()) if len(sizes) else 0.0,
        },
    }
    if not len(complete):
        raise ValueError(f"no complete session rows of rater {rater!r}")
    return complete.reset_index(drop=True), info


def run_dataset(
    ingest_dir: str | Path,
    model: str,
    estimator: str,
    rater: str = "client",
    between: str = "one_factor",
    dataset_name: str | None = None,
) -> dict[str, Any]:
    """Rule ``cfa_twolevel``: one dataset's two-level CFA, or why it was skipped.

    Parameters
    ----------
    ingest_dir
        The dataset's ingest folder.
    model
        A built-in model name or a ``.lav`` file (:func:`alliance.cfa.stage.model_syntax`):
        the within-patient model.
    estimator
        ``"ML"`` or ``"MLR"``.
    rater
        Whose ratings.
    between
        ``"one_factor"`` or ``"same"`` (see :func:`twolevel_syntax`).
    dataset_name
        The name in the output (default: the folder's parent).

    Returns
    -------
    dict
        ``dataset, model_name, estimator, rater, between, syntax, state`` (``fitted`` or
        ``skipped`` with its ``reason``), ``data`` (counts) and the fit's JSON
        (:func:`alliance.sem.twolevel_output.fit_twolevel`). Data that cannot support the
        model (no patient with two sessions, a singular sample) are skipped with the reason;
        they never stop the run.
    """
    from alliance.cfa.stage import model_syntax
    from alliance.data.tidy import read_ingested

    name = dataset_name or Path(ingest_dir).parent.name
    head: dict[str, Any] = {"dataset": name, "model_name": model, "estimator": estimator,
                            "rater": rater, "between": between}  # fmt: skip
    try:
        items, instrument, _ = read_ingested(ingest_dir)
        syntax, model_name = model_syntax(model, instrument)
        head["model_name"] = model_name
        two = twolevel_syntax(syntax, between)
        head["syntax"] = two
        ov, _ = model_variables(parse_syntax(syntax))
        frame, info = _session_rows(items, ov, rater)
        head["data"] = info
        if info["patients_with_2_or_more_sessions"] < 2:
            raise ValueError(
                f"{info['patients_with_2_or_more_sessions']} patients with two or more complete "
                "sessions: no within-patient variation to model"
            )
        result = fit_twolevel(frame, two, CLUSTER, estimator=estimator)
    except ValueError as exc:
        return {**head, "state": "skipped", "reason": str(exc)}
    return {**head, "state": "fitted", **result}


def twolevel_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row of fit by level: sessions, patients, chi-square, CFI, TLI, RMSEA, SRMR by level.

    With MLR the scaled chi-square and its scaling factor; an inadmissible fit shows its
    issues instead of fit indices.
    """
    fit = result.get("fit") or {}
    data = result.get("data") or {}
    row: dict[str, Any] = {
        "Model": f"{result.get('model_name')} within, "
        + ("one general factor" if result.get("between") == "one_factor" else "same factors")
        + " between",
        "Estimator": result.get("estimator"),
        "Sessions": data.get("sessions"),
        "Patients": data.get("patients"),
    }
    if not fit:
        issues = (result.get("status") or {}).get("issues") or [result.get("reason")]
        row["Not admissible"] = "; ".join(str(i) for i in issues)
    else:
        scaled = "chisq.scaled" in fit
        row["chi2"] = fit["chisq.scaled" if scaled else "chisq"]
        row["df"] = fit["df"]
        row["p"] = fit["pvalue.scaled" if scaled else "pvalue"]
        if scaled:
            row["Scaling factor"] = fit["chisq.scaling.factor"]
        labels = {"cfi": "CFI", "tli": "TLI", "rmsea": "RMSEA", "srmr_within": "SRMR within",
                  "srmr_between": "SRMR between"}  # fmt: skip
        for key, label in labels.items():
            value = fit.get(f"{key}.scaled" if scaled and key in ("cfi", "tli", "rmsea") else key)
            row[label] = value
    table = pd.DataFrame([row])
    table.attrs["title"] = f"Two-level CFA, sessions within patients ({result.get('estimator')})"
    table.attrs["note"] = (
        "Level 1: session-to-session variation within patients; level 2: differences between "
        "patients. Items treated as continuous (ML/MLR, as lavaan's cfa(..., cluster =)); "
        "sessions with a missing answer left out "
        f"({data.get('sessions_incomplete_dropped', 0)}). "
        + (
            "MLR: Yuan-Bentler scaled chi-square; CFI, TLI and RMSEA from it. "
            if "chisq.scaled" in fit
            else ""
        )  # fmt: skip
        + "Ordinal items at two levels: the two-level Bayesian CFA (alliance bsem --twolevel)."
    )
    return table


def write_table(result: dict[str, Any], path_stem: str | Path) -> None:
    """The fit table as CSV and Markdown, or the reason the fit was skipped.

    The CSV keeps full precision (formula-safe writer); the Markdown rounds to 3 decimals and
    carries the table's title and note.
    """
    from alliance.tables import write_csv, write_csv_and_markdown

    Path(path_stem).parent.mkdir(parents=True, exist_ok=True)
    if result.get("state") == "skipped":
        skipped = {"Model": result.get("model_name"), "Skipped": result.get("reason")}
        write_csv(pd.DataFrame([skipped]), Path(f"{path_stem}.csv"), index=False)
        Path(f"{path_stem}.md").write_text(f"Skipped: {result.get('reason')}\n")
        return
    table = twolevel_table(result)
    write_csv_and_markdown(
        table, Path(f"{path_stem}.csv"), table.attrs["title"], table.attrs["note"], digits=3
    )
