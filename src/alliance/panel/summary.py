"""The summary's section "Alliance and symptoms within patients" and its methods sentences.

Read from ``results/{dataset}/panel/riclpm.json`` (rule ``panel``) and, for the comparison,
the Bayesian session model's ``bayes/session_x1/diagnostics.json`` and the Bayesian dynamic
panel model's ``panel/bayes/summary.json`` (rule ``panel_bayes``) when they were fitted. The
report (:func:`alliance.report.write_summary`) renders the table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["DIFFERENCE", "LEAD", "REFERENCES", "panel_methods", "panel_rows"]

REFERENCES = (
    "Hamaker, Kuiper & Grasman 2015 (Psychological Methods 20:102); Mulder & Hamaker 2021 "
    "(Structural Equation Modeling 28:638); Falkenstrom et al. 2017 (Journal of Consulting "
    "and Clinical Psychology 85:537)"
)

#: What the table's columns hold (printed above it).
LEAD = (
    "Random-intercept cross-lagged panel model per dataset (results/{dataset}/panel/). "
    "Effects in outcome units per unit of the predictor with 95% CIs (equal-lags model: one "
    "estimate; free lags: the range over the lags) and the within-person standardized values "
    "per lag; per SD of alliance: outcome points per SD of the session alliance score, beside "
    "the Bayesian session model's b_within_points (90% interval) where it was fitted; where "
    "the Bayesian dynamic panel model was fitted (panel.bayes), its alliance -> next symptoms "
    "effect in the same unit (90% interval)."
)

#: How the RI-CLPM differs from the Bayesian session model (printed under the table).
DIFFERENCE = (
    "How this differs from the session model (Bayesian models above): the session model "
    "regresses next-session symptoms on the patient-mean-centred alliance, current symptoms "
    "and the patient's mean alliance (Falkenstrom et al. 2013, 2017), one direction, with the "
    "observed patient mean standing in for the stable level. The RI-CLPM estimates both "
    "directions at once (alliance -> next symptoms and symptoms -> next alliance), separates "
    "the stable between-patient levels as latent random intercepts and gives each session its "
    "own variances and innovation covariance; missing sessions enter by FIML. Both give the "
    "alliance effect per SD of the session alliance (the session model's b_within_points, "
    "beside the RI-CLPM's estimate times the SD of the alliance score over patient-sessions). "
    "Neither models patient-specific trends: symptom trajectories that differ between patients "
    "show up as autoregression and can bias the lagged effects (Falkenstrom et al. 2017). The "
    "Bayesian dynamic panel model (Asparouhov, Hamaker & Muthen 2018) does: it centres on "
    "latent patient means, gives each patient their own symptom slope and uses every session, "
    "integrating missed sessions out."
)


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "NA"
    return f"{value:.{digits}f}"


def _p(p: float | None) -> str:
    if p is None:
        return "NA"
    return "< .001" if p < 0.001 else f"= {p:.3f}".replace("0.", ".", 1)


def _effect(result: Mapping[str, Any], key: str, digits: int = 2) -> str:
    """``est [low, high]`` of an equal-lags effect, or the range of the free per-lag ones."""
    rows = result["effects"][key]["waves"]
    if result["meta"]["constrain_lags"]:
        r = rows[0]
        stds = [q["std.all"] for q in rows if q["std.all"] is not None]
        std = f"; std {_num(min(stds))} to {_num(max(stds))}" if stds else ""
        return (
            f"{_num(r['est'], digits)} [{_num(r['ci.lower'], digits)}, "
            f"{_num(r['ci.upper'], digits)}], p {_p(r['pvalue'])}{std}"
        )
    ests = [q["est"] for q in rows]
    return f"{_num(min(ests), digits)} to {_num(max(ests), digits)} over {len(rows)} lags"


def _session_model(results: Path, name: str) -> str:
    diag = _read(results / name / "bayes" / "session_x1" / "diagnostics.json") or {}
    e = (diag.get("effects") or {}).get("b_within_points")
    if not e or diag.get("status") in ("skipped", "error"):
        return "-"
    return f"{e['mean']:.2f} [{e['eti90_low']:.2f}, {e['eti90_high']:.2f}] (90%)"


def _bayes_panel(results: Path, name: str, warnings: list[str]) -> str | None:
    """The Bayesian dynamic panel's alliance -> next symptoms effect (None: not fitted)."""
    result = _read(results / name / "panel" / "bayes" / "summary.json")
    if result is None:
        return None
    status = result.get("status")
    if status != "pass":
        reason = result.get("reason") or "; ".join(
            (result.get("diagnostics") or {}).get("failures", [])
        )
        if status != "skipped":
            warnings.append(f"{name}: the Bayesian dynamic panel model {status}: {reason}")
        return f"{status}: {reason}"
    e = result["effects"]["b_cross_points"]
    return f"{e['mean']:.2f} [{e['eti90_low']:.2f}, {e['eti90_high']:.2f}] (90%)"


def panel_rows(results: Path, datasets: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """One row per dataset with a ``panel/riclpm.json``, and the warnings.

    Columns: dataset, sessions, patients, model, the cross-lagged effects (estimate [95% CI],
    p, standardized range), the alliance effect per SD of the alliance score beside the
    session model's, the test of equal lags, the fit and the state, and (rule ``panel_bayes``)
    the Bayesian dynamic panel model's alliance effect per SD with its 90% interval. A fit that
    is not usable is a warning; a skipped dataset (too few sessions with both measures) is
    not.
    """
    rows, warnings = [], []
    for name in datasets:
        result = _read(results / name / "panel" / "riclpm.json")
        if result is None:
            continue
        state = result.get("state")
        row: dict[str, Any] = {"Dataset": name}
        if state == "skipped":
            row["State"] = f"skipped: {result.get('reason')}"
            rows.append(row)
            continue
        meta, data = result["meta"], result["data"]
        row["Sessions"] = f"{data['waves'][0]}-{data['waves'][-1]} ({len(data['waves'])})"
        row["Patients"] = data["patients"]
        row["Model"] = (
            f"{meta['estimator']}, {'equal' if meta['constrain_lags'] else 'free'} lags"
            + (", detrended" if meta["detrend"] else "")
        )
        if state != "fitted":
            row["State"] = f"not usable: {result.get('reason')}"
            warnings.append(f"{name}: the RI-CLPM is not usable: {result.get('reason')}")
            rows.append(row)
            continue
        row["Alliance -> next symptoms"] = _effect(result, "cross_x_to_y")
        row["Symptoms -> next alliance"] = _effect(result, "cross_y_to_x", 3)
        sd = (result.get("scales") or {}).get("x_sd")
        if meta["constrain_lags"] and sd:
            r = result["effects"]["cross_x_to_y"]["waves"][0]
            row["Per SD of alliance (session model)"] = (
                f"{_num(r['est'] * sd)} [{_num(r['ci.lower'] * sd)}, {_num(r['ci.upper'] * sd)}]"
                f" ({_session_model(results, name)})"
            )
        tests = result.get("equal_lags") or {}
        wald = tests.get("wald")
        row["Equal lags (Wald)"] = (
            f"chi2({wald['df']}) = {_num(wald['stat'])}, p {_p(wald['pvalue'])}" if wald else "NA"
        )
        fit = result.get("fit") or {}
        robust = meta["estimator"] == "MLR"
        cfi = fit.get("cfi.robust" if robust else "cfi")
        rmsea = fit.get("rmsea.robust" if robust else "rmsea")
        row["Fit"] = f"CFI {_num(cfi, 3)}, RMSEA {_num(rmsea, 3)}"
        row["State"] = "fitted"
        bayes = _bayes_panel(results, name, warnings)
        if bayes is not None:
            row["Bayesian dynamic panel, per SD of alliance"] = bayes
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.astype(object).where(frame.notna(), "-"), warnings


def panel_methods(config: Mapping[str, Any]) -> str:
    """The RI-CLPM sentences of the methods paragraph (empty when the stage is off)."""
    panel = config.get("panel") or {}
    if not panel.get("enabled", False):
        return ""
    from alliance.panel.data import PANEL_DEFAULTS

    s = {**PANEL_DEFAULTS, **(panel.get("settings") or {})}
    waves = (
        f"sessions {', '.join(map(str, s['waves']))}"
        if s["waves"]
        else f"the consecutive sessions from the first in which at least {s['min_patients']} "
        "patients had both measures"
    )
    est = {"MLR": "MLR (Huber-White standard errors, Yuan-Bentler scaled tests)"}.get(
        s["estimator"], s["estimator"]
    )
    return (
        f"Within-patient dynamics of the {s['rater']} alliance ({s['score']}) and "
        f"{s['measure']} over {waves} were estimated by the random-intercept cross-lagged "
        "panel model (RI-CLPM; Hamaker, Kuiper & Grasman 2015), written as Mulder and Hamaker "
        "(2021) write it for lavaan: random intercepts for the stable between-patient levels, "
        "within-patient deviations per session with autoregressive and cross-lagged paths, "
        "their covariances per session, "
        + ("a linear trend of the means" if s["detrend"] else "free means per session")
        + f"; {est} with FIML for missing sessions. The lags were "
        + ("held equal over the sessions" if s["constrain_lags"] else "free per session")
        + " in the reported model; a Wald and a likelihood-ratio test compared the models with "
        "free and equal lags. The engine matches lavaan 0.6-14 (estimates, standard errors, fit "
        "measures and tests within 1e-4 relative on a simulated panel)."
    )
