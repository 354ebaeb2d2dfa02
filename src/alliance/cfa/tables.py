"""APA-style tables of CFA results: model fit, loadings, reliability, measurement invariance.

Every table builder takes the result dicts of :func:`alliance.cfa.stage.run_cfa` (or
:func:`alliance.sem.api.fit_cfa`) or an invariance ladder and returns a
:class:`pandas.DataFrame`. By default the cells are display strings in APA style (no leading
zero for values bounded by 1, a true minus sign, ``< .001`` for small p values, an em dash for
values that are not defined); with ``numeric=True`` the same rows hold the unrounded numbers,
for CSV files and for the figures of :mod:`alliance.cfa.plots`. The table's title and note
(which variant of an index is shown, the cutoffs, abbreviations) travel in ``df.attrs``
(``"title"``, ``"note"``) and are written by :func:`alliance.tables.write_table`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

MINUS = "\u2212"
DASH = "\u2014"
CHI2 = "\u03c7\u00b2"
DELTA = "\u0394"

#: Readable names of the built-in models, in the order tables and figures show them.
MODEL_LABELS: dict[str, str] = {
    "one_factor": "One factor",
    "two_factor": "Two factors (Bond vs Goal+Task)",
    "correlated": "Three correlated factors (Bordin)",
    "bifactor": "Bifactor",
    "second_order": "Second order",
    "esem": "ESEM (three rotated factors)",
    "bifactor_esem": "Bifactor ESEM",
}

#: Readable names of the built-in factors.
FACTOR_LABELS: dict[str, str] = {
    "task": "Task",
    "goal": "Goal",
    "bond": "Bond",
    "goal_task": "Goal+Task",
    "general": "General",
}

#: Hu & Bentler (1999) cutoffs for "good" fit: (direction, value).
CUTOFFS: dict[str, tuple[str, float]] = {
    "cfi": (">=", 0.95),
    "tli": (">=", 0.95),
    "rmsea": ("<=", 0.06),
    "srmr": ("<=", 0.08),
}

HU_BENTLER = "Hu, L., & Bentler, P. M. (1999)"

#: A sample is small for a model with fewer cases per free parameter than the minimum of
#: Bentler & Chou (1987) for normal-theory ML (ML, MLR) ...
CASES_PER_PARAMETER = 5
#: ... or, with WLSMV (whose free parameters include every threshold), fewer cases than this
#: (Flora & Curran 2004).
MIN_N_WLSMV = 200

#: Order of the invariance steps.
STEPS = ("configural", "metric", "scalar", "strict")

_ROBUST_SOURCES = {
    "MLR": "Brosseau-Liard, Savalei, & Li, 2012; Brosseau-Liard & Savalei, 2014",
    "WLSMV": "Savalei, 2021",
}

_SCALED_CHI2 = {
    "MLR": f"Yuan{chr(0x2013)}Bentler scaled {CHI2}",
    "WLSMV": f"mean- and variance-adjusted (scaled-shifted) {CHI2}",
}


# --------------------------------------------------------------------------- formatting


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def fmt_num(value: Any, digits: int = 2, leading_zero: bool = True) -> str:
    """A number in APA style: ``digits`` decimals, a true minus sign, optional leading zero.

    ``leading_zero=False`` is for values that cannot exceed 1 in absolute value
    (correlations, loadings, CFI, RMSEA, proportions): ``0.953 -> ".953"``. Values that are
    not defined (None, NaN) give an em dash.
    """
    if _missing(value):
        return DASH
    v = float(value)
    text = f"{abs(v):.{digits}f}"
    if not leading_zero and text.startswith("0"):
        text = text[1:]
    negative = v < 0 and float(text) != 0
    return (MINUS if negative else "") + text


def fmt_bounded(value: Any, digits: int = 3) -> str:
    """A value bounded by 1 (CFI, RMSEA, SRMR, a loading): no leading zero."""
    return fmt_num(value, digits, leading_zero=False)


def fmt_p(value: Any) -> str:
    """A p value in APA style: three decimals without leading zero, ``< .001`` below that."""
    if _missing(value):
        return DASH
    p = float(value)
    if p < 0.001:
        return "< .001"
    return fmt_bounded(p, 3)


def fmt_int(value: Any) -> str:
    """A count (df, number of parameters)."""
    if _missing(value):
        return DASH
    return f"{round(float(value)):d}"


def fmt_ci(est: Any, lower: Any, upper: Any, digits: int = 3) -> str:
    """``.049 [.033, .065]`` (bounded values)."""
    if _missing(est):
        return DASH
    if _missing(lower) or _missing(upper):
        return fmt_bounded(est, digits)
    return (
        f"{fmt_bounded(est, digits)} [{fmt_bounded(lower, digits)}, {fmt_bounded(upper, digits)}]"
    )


def model_label(name: str) -> str:
    """The readable name of a model (``"bifactor"`` -> ``"Bifactor"``)."""
    if name in MODEL_LABELS:
        return MODEL_LABELS[name]
    return name.replace("_", " ").strip().capitalize()


def factor_label(name: str) -> str:
    """The readable name of a factor (``"goal_task"`` -> ``"Goal+Task"``)."""
    if name in FACTOR_LABELS:
        return FACTOR_LABELS[name]
    return name.replace("_", " ").strip().capitalize()


def _model_order(names: list[str]) -> list[str]:
    known = [m for m in MODEL_LABELS if m in names]
    return known + [m for m in names if m not in MODEL_LABELS]


# --------------------------------------------------------------------------- fit indices


def _estimator_of(results: Mapping[str, dict[str, Any]], estimator: str | None) -> str:
    if estimator:
        return estimator.upper()
    for r in results.values():
        est = r.get("estimator") or (r.get("meta") or {}).get("estimator")
        if est:
            return str(est).upper()
    return "ML"


def index_variant(fits: list[dict[str, Any]], estimator: str) -> str:
    """The CFI/RMSEA variant of an invariance ladder: ``""``, ``".robust"`` or ``".scaled"``.

    For MLR and WLSMV the robust indices (Brosseau-Liard & Savalei 2014; Savalei 2021) when
    every step that has indices reports them, else the scaled ones, else the standard ones
    (the robust ones are not defined once thresholds are held equal): one variant for every
    step, so the deltas compare like with like. The fit comparison table does not fall back:
    it always shows the robust indices for MLR and WLSMV (see :func:`fit_comparison_table`).
    """
    if estimator.upper() == "ML":
        return ""
    usable = [f for f in fits if f and not _missing(f.get("cfi"))]
    for suffix in (".robust", ".scaled"):
        keys = ("cfi", "tli", "rmsea")
        if usable and all(not _missing(f.get(k + suffix)) for f in usable for k in keys):
            return suffix
    return ""


def _variant_name(suffix: str) -> str:
    return {"": "", ".robust": "Robust ", ".scaled": "Scaled "}[suffix]


def _rmsea_ci(fit: dict[str, Any], suffix: str) -> tuple[Any, Any]:
    return fit.get("rmsea.ci.lower" + suffix), fit.get("rmsea.ci.upper" + suffix)


def fails_cutoffs(values: Mapping[str, Any], digits: int = 3) -> list[str]:
    """The indices in ``values`` (``cfi``, ``tli``, ``rmsea``, ``srmr``) that miss Hu & Bentler.

    The comparison uses each value rounded to ``digits`` decimals, as the tables show it, so a
    displayed ``.950`` passes ``CFI >= .95``. Missing values are not flagged.
    """
    failed = []
    for key, (direction, cut) in CUTOFFS.items():
        v = values.get(key)
        if _missing(v):
            continue
        shown = round(float(v), digits)
        ok = shown >= cut if direction == ">=" else shown <= cut
        if not ok:
            failed.append(key.upper())
    return failed


def _cutoff_text() -> str:
    sym = {">=": "\u2265", "<=": "\u2264"}
    return ", ".join(f"{k.upper()} {sym[d]} {fmt_bounded(v, 2)}" for k, (d, v) in CUTOFFS.items())


def cutoff_note(estimator: str) -> str:
    """The table/figure note on the Hu & Bentler (1999) cutoffs for ``estimator``."""
    text = f"Cutoffs for good fit (Hu & Bentler, 1999): {_cutoff_text()}."
    if estimator.upper() != "ML":
        text += (
            " These cutoffs were derived for maximum likelihood (ML) estimation with "
            f"continuous, normally distributed data; with {estimator.upper()} they are a rough "
            "guide, not a test (Xia & Yang, 2019)."
        )
    return text


def _admissibility(result: dict[str, Any]) -> tuple[bool | None, list[str]]:
    """Admissibility from the result's status, or from its estimates when it has none."""
    status = result.get("status") or {}
    if "admissible" in status:
        return bool(status["admissible"]), list(status.get("issues") or [])
    std = result.get("standardized") or []
    params = result.get("parameters") or []
    if not std and not params:
        return None, []
    issues = []
    latent = {r["lhs"] for r in params if r.get("op") == "=~"}
    for r in std:
        v = r.get("est.std")
        if r.get("op") == "=~" and not _missing(v) and abs(float(v)) > 1:
            issues.append(f"standardized loading above 1: {r['lhs']} =~ {r['rhs']}")
    for r in params:
        v = r.get("est")
        if r.get("op") == "~~" and r.get("lhs") == r.get("rhs") and not _missing(v):
            if float(v) < 0:
                kind = "latent" if r["lhs"] in latent else "residual"
                issues.append(f"negative {kind} variance: {r['lhs']}")
    return not issues, issues


def _yes_no(value: bool | None) -> str:
    if value is None:
        return DASH
    return "Yes" if value else "No"


def _variable_of(term: str) -> str:
    """The variable of a ``lhs~~rhs`` or ``lhs=~rhs`` term (``"task=~wai_01"`` -> ``wai_01``)."""
    text = term.split(" (group", 1)[0]
    for op in ("~~", "=~"):
        if op in text:
            return text.split(op, 1)[1].strip()
    return text.strip()


def fit_status(result: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether a fit may be reported and its status in words.

    A fit is usable (fit indices, a point on a fit figure, a nested test) only when it has
    fit measures, converged and is admissible: no negative variance or standardized loading
    above 1 (a Heywood case), a positive-definite latent covariance matrix and standard
    errors (Kolenikov & Bollen 2012). The status reads ``admissible``, ``not converged``,
    ``Heywood case in wai_01``, ``non-PD latent covariances``, ``no standard errors``,
    ``not estimated`` (the fit failed) or ``admissibility not checked`` (a result without
    ``status`` or estimates, which stays usable).

    Parameters
    ----------
    result
        A fit result (``fit``, ``converged``, ``status`` with the keys of
        :func:`alliance.sem.validity.admissibility`).

    Returns
    -------
    usable, status
        ``usable`` is False for a failed, non-converged or inadmissible fit.

    References
    ----------
    Kolenikov, S., & Bollen, K. A. (2012). Testing negative error variances: Is a Heywood
    case a symptom of misspecification? *Sociological Methods & Research, 41*(1), 124-167.
    """
    status = result.get("status") or {}
    if status.get("skipped"):
        return False, "not a model of the instrument"
    if not result.get("fit"):
        return False, "not estimated"
    if result.get("converged") is False or status.get("converged") is False:
        return False, "not converged"
    admissible, issues = _admissibility(dict(result))
    if admissible is None:
        return True, "admissibility not checked"
    if admissible:
        return True, "admissible"
    parts: list[str] = []
    if "negative_variances" in status:
        heywood = [*status["negative_variances"], *(status.get("std_loadings_above_1") or [])]
    else:  # no detailed status: the issues found by _admissibility from the estimates
        heywood = [
            i.split(": ", 1)[1]
            for i in issues
            if i.startswith(("negative", "standardized loading above 1")) and ": " in i
        ]
    names = list(dict.fromkeys(_variable_of(t) for t in heywood))
    if names:
        parts.append("Heywood case in " + ", ".join(names))
    if status.get("lv_cov_not_pd"):
        parts.append("non-PD latent covariances")
    if status.get("se_available") is False:
        parts.append("no standard errors")
    known = ("did not converge", "negative", "standardized loading", "latent covariance",
             "standard errors unavailable")  # fmt: skip
    parts += [i for i in issues if not i.startswith(known)]
    return False, "; ".join(parts) or "inadmissible"


def _robust_missing_note(label: str, result: Mapping[str, Any], missing: list[str]) -> str:
    """Why the robust indices of a usable fit are not shown (the fit's own note when it has one)."""
    names = ", ".join(k.upper() for k in missing)
    notes = [str(n) for n in ((result.get("meta") or {}).get("notes") or [])]
    reason = next((n for n in notes if n.lower().startswith("robust")), None)
    if reason is not None:
        reason = reason.split(": ", 1)[1] if ": " in reason else reason
    else:
        reason = "the fit reports no value and no reason"
    return f"robust {names} not defined for {label}: {reason}"


def sample_size(result: Mapping[str, Any]) -> int | None:
    """The number of observations a fit used (``ntotal``), or None when not recorded."""
    for n in (result.get("ntotal"), (result.get("fit") or {}).get("ntotal")):
        if not _missing(n):
            return int(n)
    nobs = result.get("nobs")
    return int(sum(nobs)) if isinstance(nobs, list) and nobs else None


def small_sample_note(n: int | None, npar: Mapping[str, Any], estimator: str) -> str | None:
    """A note when ``n`` is small for the models, else None.

    Small: fewer than :data:`CASES_PER_PARAMETER` cases per free parameter for ML and MLR
    (Bentler & Chou 1987), or fewer than :data:`MIN_N_WLSMV` cases for WLSMV (whose free
    parameters include every threshold; Flora & Curran 2004).

    Parameters
    ----------
    n
        The sample size.
    npar
        Model label -> number of free parameters.
    estimator
        ``"ML"``, ``"MLR"`` or ``"WLSMV"``.

    References
    ----------
    Bentler, P. M., & Chou, C.-P. (1987). Practical issues in structural modeling.
    *Sociological Methods & Research, 16*(1), 78-117.
    Flora, D. B., & Curran, P. J. (2004). An empirical evaluation of alternative methods of
    estimation for confirmatory factor analysis with ordinal data. *Psychological Methods,
    9*(4), 466-491.
    """
    if n is None:
        return None
    if estimator.upper() == "WLSMV":
        if n >= MIN_N_WLSMV:
            return None
        return (
            f"Small sample: N = {n} is below {MIN_N_WLSMV}, a common minimum for WLSMV with "
            "ordinal items (Flora & Curran, 2004); estimates, the scaled test and the fit "
            "indices are unstable."
        )
    small = {m: int(k) for m, k in npar.items() if not _missing(k) and n < CASES_PER_PARAMETER * k}
    if not small:
        return None
    models = ", ".join(f"{m} ({k})" for m, k in small.items())
    return (
        f"Small sample: N = {n} gives fewer than {CASES_PER_PARAMETER} cases per free "
        f"parameter (Bentler & Chou, 1987) for {models}; estimates, the scaled test and the "
        "fit indices are unstable."
    )


def rmsea_note(
    rows: list[Mapping[str, Any]], n: int | None, small: bool, alpha: float = 0.05
) -> str | None:
    """Explain a test that does not reject exact fit beside an RMSEA that misses its cutoff.

    With small N (or few degrees of freedom) the RMSEA is unreliable: its sampling
    distribution is wide and it often points to poor fit for a correctly specified model
    (Kenny, Kaniskan & McCoach 2015); the chi-square test has little power there. A note is
    returned when the sample is ``small`` or a row shows that disagreement.

    Parameters
    ----------
    rows
        Rows with ``label``, ``df``, ``p`` (the p value of the test shown) and ``rmsea``.
    n
        The sample size.
    small
        Whether the sample is small for the models (:func:`small_sample_note`).
    alpha
        The level at which the test rejects exact fit.

    References
    ----------
    Kenny, D. A., Kaniskan, B., & McCoach, D. B. (2015). The performance of RMSEA in models
    with small degrees of freedom. *Sociological Methods & Research, 44*(3), 486-507.
    """
    cut = CUTOFFS["rmsea"][1]
    odd = [
        r
        for r in rows
        if not _missing(r["p"])
        and not _missing(r["rmsea"])
        and float(r["p"]) >= alpha
        and round(float(r["rmsea"]), 3) > cut
    ]
    if not odd and not small:
        return None
    text = (
        "RMSEA is unreliable at small N and small df: its sampling variability is large and "
        "it can indicate poor fit for a correctly specified model (Kenny, Kaniskan, & "
        "McCoach, 2015); read it with its 90% CI."
    )
    if odd:
        cases = "; ".join(
            f"{r['label']}: p = {fmt_p(r['p'])}, RMSEA = {fmt_bounded(r['rmsea'])}, "
            f"df = {fmt_int(r['df'])}"
            for r in odd
        )
        text = (
            f"The {CHI2} test does not reject exact fit while the RMSEA misses its cutoff "
            f"({cases}{'' if n is None else f'; N = {n}'}). " + text
        )
    return text


def fit_comparison_table(
    results: Mapping[str, dict[str, Any]],
    estimator: str | None = None,
    numeric: bool = False,
) -> pd.DataFrame:
    """Fit of competing models: one row per model, APA style.

    Columns: model, npar, df, the chi-square (for MLR/WLSMV the unscaled statistic and the
    scaled one with its p, each labelled), CFI, TLI, RMSEA with its 90% CI, SRMR (for MLR and
    WLSMV always the robust CFI/TLI/RMSEA; a model without them shows a dash and the note
    says why), AIC and BIC when defined (ML, MLR), whether the model converged, its status
    (:func:`fit_status`: admissible, not converged, Heywood case in an item, non-PD latent
    covariances) and which indices miss the Hu & Bentler (1999) cutoffs (:data:`CUTOFFS`).
    A model that failed, did not converge or is inadmissible keeps its row, npar and df,
    but gets no fit statistics (a dash), so it has no place on a fit axis either. The note
    names the sample size when it is small for the models (:func:`small_sample_note`) and
    explains a chi-square test that does not reject exact fit beside an RMSEA that misses
    its cutoff (:func:`rmsea_note`).

    Parameters
    ----------
    results
        Model name (``one_factor``, ``two_factor``, ``correlated``, ``bifactor``,
        ``second_order`` or any other) -> result dict (``fit``, ``converged``, ``status``,
        optionally ``ntotal`` and ``meta``).
    estimator
        ``"ML"``, ``"MLR"`` or ``"WLSMV"``; by default read from the results.
    numeric
        Unrounded numbers with machine column names (lavaan's ``fitMeasures`` names of the
        variant shown, e.g. ``cfi.robust``) instead of display strings.

    Returns
    -------
    pandas.DataFrame
        One row per model in the order of :data:`MODEL_LABELS`, then any others;
        ``attrs["title"]``, ``attrs["note"]``, ``attrs["indices"]`` (the fitMeasures names
        of the CFI, TLI, RMSEA shown), ``attrs["estimator"]`` and ``attrs["n"]``.

    References
    ----------
    Brosseau-Liard, P. E., & Savalei, V. (2014). Adjusting incremental fit indices for
    nonnormality. *Multivariate Behavioral Research, 49*(5), 460-470.
    Hu, L., & Bentler, P. M. (1999). Cutoff criteria for fit indexes in covariance structure
    analysis. *Structural Equation Modeling, 6*(1), 1-55.
    Savalei, V. (2021). Improving fit indices in structural equation modeling with categorical
    data. *Multivariate Behavioral Research, 56*(3), 390-407.

    """
    est = _estimator_of(results, estimator)
    robust = est != "ML"
    names = _model_order(list(results))
    suffix = ".robust" if robust else ""
    indices = {k: k + suffix for k in ("cfi", "tli", "rmsea")}
    status = {m: fit_status(results[m]) for m in names}
    fits = {m: (results[m].get("fit") or {}) for m in names}
    shown_fits = {m: (fits[m] if status[m][0] else {}) for m in names}
    with_ic = any(not _missing(f.get("aic")) for f in fits.values())
    sizes = [n for n in (sample_size(results[m]) for m in names if status[m][0]) if n]
    n = max(sizes) if sizes else None

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    robust_na: list[str] = []
    for m in names:
        r, fit, shown_fit = results[m], fits[m], shown_fits[m]
        usable, state = status[m]
        converged = bool(r.get("converged")) and bool(fit)
        admissible, _issues = _admissibility(r) if fit else (None, [])
        if not fit:
            err = (r.get("status") or {}).get("error") or "no fit"
            failures.append(f"{model_label(m)}: {err}")
        shown = {
            "cfi": shown_fit.get(indices["cfi"]),
            "tli": shown_fit.get(indices["tli"]),
            "rmsea": shown_fit.get(indices["rmsea"]),
            "srmr": shown_fit.get("srmr"),
        }
        if usable and robust:
            missing = [k for k in ("cfi", "tli", "rmsea") if _missing(shown[k])]
            if missing:
                robust_na.append(_robust_missing_note(model_label(m), r, missing))
        lo, hi = _rmsea_ci(shown_fit, suffix)
        row: dict[str, Any] = {
            "model": m,
            "label": model_label(m),
            "npar": fit.get("npar"),
            "df": fit.get("df"),
            "chisq": shown_fit.get("chisq"),
            "pvalue": shown_fit.get("pvalue"),
        }
        if robust:
            row |= {
                "chisq.scaled": shown_fit.get("chisq.scaled"),
                "pvalue.scaled": shown_fit.get("pvalue.scaled"),
            }
        row |= {
            indices["cfi"]: shown["cfi"],
            indices["tli"]: shown["tli"],
            indices["rmsea"]: shown["rmsea"],
            f"rmsea.ci.lower{suffix}": lo,
            f"rmsea.ci.upper{suffix}": hi,
            "srmr": shown["srmr"],
        }
        if with_ic:
            row |= {"aic": shown_fit.get("aic"), "bic": shown_fit.get("bic")}
        row |= {
            "converged": converged,
            "admissible": admissible,
            "usable": usable,
            "status": state,
            "fails_cutoffs": ", ".join(fails_cutoffs(shown)) if usable else None,
        }
        rows.append(row)
    numbers = pd.DataFrame(rows)

    variant = _variant_name(suffix)
    title = f"Fit of the competing CFA models ({est})"
    note = [
        f"npar = number of free parameters; CFI = comparative fit index; TLI = Tucker{chr(0x2013)}"
        "Lewis index; RMSEA = root mean square error of approximation with its 90% confidence "
        "interval; SRMR = standardized root mean square residual."
    ]
    if n is not None:
        note.append(f"N = {n}.")
    if robust:
        note.append(
            f"Estimator {est}: {CHI2} is the unscaled statistic; the scaled {CHI2} is the "
            f"{_SCALED_CHI2.get(est, 'scaled ' + CHI2)} and its p value tests exact fit."
        )
        note.append(f"CFI, TLI and RMSEA are the robust versions ({_ROBUST_SOURCES.get(est, '')}).")
        if robust_na:
            note.append(
                "A dash where a robust index is not defined: "
                + "; ".join(robust_na)
                + " (the scaled and standard indices are not shown in its place)."
            )
    if with_ic:
        note.append("AIC and BIC: lower values indicate better fit.")
    note.append(cutoff_note(est) + " Misses lists the indices outside these cutoffs.")
    unusable = [f"{model_label(m)} ({status[m][1]})" for m in names if not status[m][0] and fits[m]]
    if unusable:
        note.append(
            "No fit statistics for a model that did not converge or whose solution is not "
            "admissible (Heywood case: a negative variance or a standardized loading above 1; "
            "a latent covariance matrix that is not positive definite): they do not describe "
            "a proper solution (Kolenikov & Bollen, 2012): " + "; ".join(unusable) + "."
        )
    if "correlated" in names and "second_order" in names:
        note.append(
            "With three first-order factors the second-order model is just-identified at the "
            "structural level and has the same fit as the correlated-factors model."
        )
    if failures:
        note.append("Not estimated: " + "; ".join(failures) + ".")
    small = small_sample_note(
        n, {model_label(m): fits[m].get("npar") for m in names if status[m][0]}, est
    )
    if small:
        note.append(small)
    test_p = "pvalue.scaled" if robust else "pvalue"
    explained = rmsea_note(
        [
            {"label": r["label"], "df": r["df"], "p": r[test_p], "rmsea": r[indices["rmsea"]]}
            for r in rows
            if r["usable"]
        ],
        n,
        small is not None,
    )
    if explained:
        note.append(explained)
    attrs = {"title": title, "note": " ".join(note), "indices": indices, "estimator": est, "n": n}
    if numeric:
        numbers.attrs.update(attrs)
        return numbers

    chi_label = f"{CHI2}" if not robust else f"{CHI2} (unscaled)"
    out = pd.DataFrame({"Model": numbers["label"]})
    out["npar"] = numbers["npar"].map(fmt_int)
    out["df"] = numbers["df"].map(fmt_int)
    out[chi_label] = numbers["chisq"].map(fmt_num)
    if robust:
        out[f"Scaled {CHI2}"] = numbers["chisq.scaled"].map(fmt_num)
        out["p (scaled)"] = numbers["pvalue.scaled"].map(fmt_p)
    else:
        out["p"] = numbers["pvalue"].map(fmt_p)
    out[f"{variant}CFI"] = numbers[indices["cfi"]].map(fmt_bounded)
    out[f"{variant}TLI"] = numbers[indices["tli"]].map(fmt_bounded)
    out[f"{variant}RMSEA [90% CI]"] = [
        fmt_ci(e, lo, hi)
        for e, lo, hi in zip(
            numbers[indices["rmsea"]],
            numbers[f"rmsea.ci.lower{suffix}"],
            numbers[f"rmsea.ci.upper{suffix}"],
            strict=True,
        )
    ]
    out["SRMR"] = numbers["srmr"].map(fmt_bounded)
    if with_ic:
        out["AIC"] = numbers["aic"].map(fmt_num)
        out["BIC"] = numbers["bic"].map(fmt_num)
    out["Converged"] = numbers["converged"].map(_yes_no)
    out["Status"] = numbers["status"]
    out["Misses cutoffs"] = numbers["fails_cutoffs"].map(
        lambda v: v or "None" if isinstance(v, str) else DASH
    )
    out.attrs.update(attrs)
    return out


# --------------------------------------------------------------------------- loadings


def _latent_names(result: dict[str, Any]) -> set[str]:
    rows = result.get("standardized") or result.get("parameters") or []
    return {r["lhs"] for r in rows if r.get("op") == "=~"}


def _item_groups(
    results: Mapping[str, dict[str, Any]], factor_map: Mapping[str, Any] | None
) -> dict[str, str]:
    """Item -> the first-order factor it belongs to (for grouping rows)."""
    if factor_map is not None:
        return {i: f for f, items in factor_map.items() for i in items}
    # the model with the most first-order factors and simple structure defines the groups
    best: dict[str, str] = {}
    for name in ["correlated", *results]:
        r = results.get(name)
        if not r or not r.get("standardized"):
            continue
        latent = _latent_names(r)
        groups: dict[str, str] = {}
        multiple = False
        for row in r["standardized"]:
            if row.get("op") == "=~" and row["rhs"] not in latent:
                if row["rhs"] in groups:
                    multiple = True
                groups[row["rhs"]] = row["lhs"]
        if not multiple and len(set(groups.values())) > len(set(best.values())):
            best = groups
    return best


def _esem_role(factor: str, item: str, result: dict[str, Any], groups: dict[str, str]) -> str:
    """Role of an ESEM loading in the loadings table.

    On the general factor, on the item's own (key) factor (``item``, or ``specific`` beside a
    general factor), or a cross-loading (``cross``).
    """
    general = (result.get("reliability") or {}).get("general_factor")
    if factor == general:
        return "general"
    if groups.get(item) == factor:
        return "specific" if general else "item"
    return "cross"


def _loading_rows(
    name: str, result: dict[str, Any], groups: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    std = result.get("standardized") or []
    latent = _latent_names(result)
    out = []
    general_bifactor = name == "bifactor" or _is_bifactor(result)
    esem = bool((result.get("meta") or {}).get("rotation"))
    for r in std:
        if r.get("op") != "=~":
            continue
        if "group" in r and r["group"] not in (None, 1, "1"):
            continue
        is_item = r["rhs"] not in latent
        if is_item:
            role = "item"
            if esem:
                role = _esem_role(r["lhs"], r["rhs"], result, groups or {})
            elif general_bifactor:
                role = "general" if r["lhs"] == _general_factor(result) else "specific"
        else:
            role = "second_order"
        out.append(
            {
                "model": name,
                "factor": r["lhs"],
                "item": r["rhs"],
                "role": role,
                "est.std": r.get("est.std"),
                "se": r.get("se"),
                "ci.lower": r.get("ci.lower"),
                "ci.upper": r.get("ci.upper"),
                "pvalue": r.get("pvalue"),
            }
        )
    return out


def _general_factor(result: dict[str, Any]) -> str | None:
    """The factor with the most item loadings when every item loads on it and one other."""
    std = result.get("standardized") or []
    latent = _latent_names(result)
    per_factor: dict[str, set[str]] = {}
    per_item: dict[str, int] = {}
    for r in std:
        if r.get("op") == "=~" and r["rhs"] not in latent:
            per_factor.setdefault(r["lhs"], set()).add(r["rhs"])
            per_item[r["rhs"]] = per_item.get(r["rhs"], 0) + 1
    if not per_factor or len(per_factor) < 2:
        return None
    general = max(per_factor, key=lambda f: len(per_factor[f]))
    if per_factor[general] == set(per_item) and all(n == 2 for n in per_item.values()):
        return general
    return None


def _is_bifactor(result: dict[str, Any]) -> bool:
    return _general_factor(result) is not None


def loadings_long(
    results: Mapping[str, dict[str, Any]], factor_map: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Every standardized loading (std.all) of every model: one row per model, factor, item.

    Columns ``model``, ``factor``, ``item``, ``role`` (``item``; ``general``/``specific`` in a
    bifactor model; ``second_order`` for a factor loading on a higher-order factor; in an
    ESEM model ``cross`` for a loading on a factor other than the item's own, by
    ``factor_map`` or the correlated-factors model), ``est.std``, ``se``, ``ci.lower``,
    ``ci.upper``, ``pvalue``. For a multi-group result the first group is used.
    """
    rows = []
    groups = _item_groups(results, factor_map)
    for m in _model_order(list(results)):
        rows += _loading_rows(m, results[m], groups)
    cols = ["model", "factor", "item", "role", "est.std", "se", "ci.lower", "ci.upper", "pvalue"]
    return pd.DataFrame(rows, columns=cols)


def loading_columns(long: pd.DataFrame) -> list[tuple[str, str]]:
    """The (model, role) columns of the item x model loading grid, in display order."""
    cols = []
    for m in _model_order(list(dict.fromkeys(long["model"]))):
        roles = [
            r
            for r in ("item", "general", "specific")
            if ((long.model == m) & (long.role == r)).any()
        ]
        cols += [(m, r) for r in roles]
    return cols


def column_label(model: str, role: str, short: bool = False) -> str:
    """Display name of a loading-grid column, e.g. "Bifactor: general"."""
    base = model_label(model)
    if short:
        base = {
            "one_factor": "One factor",
            "two_factor": "Two factors",
            "correlated": "Three factors",
            "bifactor": "Bifactor",
            "second_order": "Second order",
        }.get(model, base)
    return base if role == "item" else f"{base}: {role}"


def loadings_table(
    results: Mapping[str, dict[str, Any]],
    factor_map: Mapping[str, Any] | None = None,
    numeric: bool = False,
) -> pd.DataFrame:
    """Standardized loadings (std.all) with SEs: items (grouped by factor) x models.

    A cell reads ``.77 (.03)``: the loading and its standard error. The bifactor model has two
    columns (loadings on the general and on the specific factor); a second-order model's
    loadings of the first-order factors on the general factor form extra rows at the bottom.
    The factor an item loads on in each model is in ``numeric=True`` output (the long table
    of :func:`loadings_long`).

    Parameters
    ----------
    results
        Model name -> result dict.
    factor_map
        Factor -> items, to group the rows (for example ``instrument.factors``); by default the
        groups of the correlated-factors model.
    numeric
        Return :func:`loadings_long` (one row per model, factor, item; unrounded).

    Returns
    -------
    pandas.DataFrame
        Columns ``Factor``, ``Item`` and one per model (and bifactor role), with
        ``attrs["title"]`` and ``attrs["note"]``.

    """
    long = loadings_long(results, factor_map)
    title = "Standardized factor loadings of the competing models"
    note = (
        "Standardized loadings (std.all) with standard errors in parentheses. "
        "Bifactor: loadings on the general factor and on the item's specific factor."
    )
    if any((r.get("meta") or {}).get("rotation") for r in results.values()):
        note += (
            " ESEM: rotated loadings on the item's own factor (and the general factor); the "
            "cross-loadings are in the numeric table (role 'cross')."
        )
    failed = [model_label(m) for m, r in results.items() if not r.get("standardized")]
    if failed:
        note += " No estimates (did not converge): " + ", ".join(failed) + "."
    if numeric:
        long.attrs.update({"title": title, "note": note})
        return long
    groups = _item_groups(results, factor_map)
    item_rows = long[long.role != "second_order"]
    present = list(dict.fromkeys(item_rows["item"]))
    order = [i for f in dict.fromkeys(groups.values()) for i in groups if groups[i] == f]
    items = [i for i in order if i in present] + [i for i in present if i not in order]
    columns = loading_columns(long[long.role != "second_order"]) if len(long) else []

    def cell(sub: pd.DataFrame) -> str:
        if sub.empty:
            return ""
        r = sub.iloc[0]
        se = r["se"]
        text = fmt_num(r["est.std"], 2, leading_zero=False)
        return text if _missing(se) else f"{text} ({fmt_num(se, 2, leading_zero=False)})"

    rows = []
    for i in items:
        row = {"Factor": factor_label(groups[i]) if i in groups else "", "Item": i}
        for m, role in columns:
            row[column_label(m, role)] = cell(
                item_rows[(item_rows.model == m) & (item_rows.item == i) & (item_rows.role == role)]
            )
        rows.append(row)
    second = long[long.role == "second_order"]
    for _, r in second.iterrows():
        row = {
            "Factor": "Second-order loadings",
            "Item": f"{factor_label(r['item'])} on {factor_label(r['factor'])}",
        }
        for m, role in columns:
            row[column_label(m, role)] = (
                cell(second[(second.model == m) & (second.index == r.name)])
                if m == r["model"]
                else ""
            )
        rows.append(row)
    out = pd.DataFrame(rows, columns=["Factor", "Item"] + [column_label(m, r) for m, r in columns])
    out.attrs.update({"title": title, "note": note})
    return out


# --------------------------------------------------------------------------- reliability


def reliability_table(results: Mapping[str, dict[str, Any]], numeric: bool = False) -> pd.DataFrame:
    """Reliability per factor and model: omega, observed-variance omega, alpha, AVE.

    Only models whose result has a ``reliability`` block (the ML/MLR fits) appear; the note
    names the others.

    Returns
    -------
    pandas.DataFrame
        Columns ``Model``, ``Factor``, ``ω``, ``ω (observed variance)``, ``α``, ``AVE``
        (``model``, ``factor``, ``omega``, ``omega_obs_var``, ``alpha``, ``ave`` with
        ``numeric=True``).

    """
    rows = []
    skipped = []
    note_source = ""
    for m in _model_order(list(results)):
        rel = results[m].get("reliability")
        if not rel:
            skipped.append(model_label(m))
            continue
        note_source = note_source or rel.get("reliability_note", "")
        omega = rel.get("omega") or {}
        factors = list(omega) or list(rel.get("alpha") or {})
        if _is_bifactor(results[m]):
            g = _general_factor(results[m])
            factors = [g] + [f for f in factors if f != g] if g in factors else factors
        for f in factors:
            rows.append(
                {
                    "model": m,
                    "factor": f,
                    "omega": omega.get(f),
                    "omega_obs_var": (rel.get("omega_obs_var") or {}).get(f),
                    "alpha": (rel.get("alpha") or {}).get(f),
                    "ave": (rel.get("avevar") or {}).get(f),
                }
            )
    numbers = pd.DataFrame(
        rows, columns=["model", "factor", "omega", "omega_obs_var", "alpha", "ave"]
    )
    note = (
        "ω = (Σλ)²ψ over the model-implied variance of the factor's sum score; ω (observed "
        "variance) divides by the observed variance of the sum score; α = Cronbach's alpha; "
        "AVE = average variance extracted."
    )
    if any(_is_bifactor(results[m]) for m in results if results[m].get("reliability")):
        note += (
            " In the bifactor model ω of the general factor is omega-hierarchical and ω of a "
            "specific factor is omega-hierarchical-subscale (the variance it explains beyond "
            "the general factor)."
        )
    if skipped:
        note += " Not available for: " + ", ".join(skipped) + "."
    attrs = {
        "title": "Reliability and average variance extracted",
        "note": note,
        "source_note": note_source,
    }
    if numeric:
        numbers.attrs.update(attrs)
        return numbers
    out = pd.DataFrame(
        {
            "Model": numbers["model"].map(model_label),
            "Factor": numbers["factor"].map(factor_label),
            "\u03c9": numbers["omega"].map(fmt_bounded),
            "\u03c9 (observed variance)": numbers["omega_obs_var"].map(fmt_bounded),
            "\u03b1": numbers["alpha"].map(fmt_bounded),
            "AVE": numbers["ave"].map(fmt_bounded),
        }
    )
    out.attrs.update(attrs)
    return out


def bifactor_table(results: Mapping[str, dict[str, Any]], numeric: bool = False) -> pd.DataFrame:
    """Bifactor indices of the bifactor models (CFA and ESEM): one row per model and factor.

    The general factor's row holds omega_total, omega_h, ECV, PUC and H; each specific
    factor's row omega_hs and H (Rodriguez, Reise & Haviland 2016). The note says how to read
    them (``alliance.sem.bifactor.BIFACTOR_NOTE``).

    Returns
    -------
    pandas.DataFrame
        Columns ``Model``, ``Factor``, ``ωT``, ``ωH / ωHS``, ``ECV``, ``PUC``, ``H`` (``model``,
        ``factor``, ``omega_total``, ``omega_h``, ``ecv``, ``puc``, ``h`` with ``numeric``).
    """
    rows = []
    note = ""
    unavailable = []
    for m in _model_order(list(results)):
        rel = results[m].get("reliability") or {}
        g = rel.get("general_factor")
        if rel.get("bifactor_unavailable"):
            unavailable.append(f"{model_label(m)} ({rel['bifactor_unavailable']})")
        if not g:
            continue
        note = rel.get("bifactor_note", note)
        h = rel.get("h") or {}
        rows.append(
            {
                "model": m,
                "factor": g,
                "omega_total": rel.get("omega_total"),
                "omega_h": rel.get("omega_h"),
                "ecv": rel.get("ecv"),
                "puc": rel.get("puc"),
                "h": h.get(g),
            }
        )
        for f, value in (rel.get("omega_hs") or {}).items():
            rows.append({"model": m, "factor": f, "omega_h": value, "h": h.get(f)})
    cols = ["model", "factor", "omega_total", "omega_h", "ecv", "puc", "h"]
    numbers = pd.DataFrame(rows, columns=cols)
    attrs = {
        "title": "Bifactor indices",
        "note": "ωH of a specific factor is ωHS (omega hierarchical subscale). "
        + (note or "No admissible bifactor fit.")
        + ("" if not unavailable else " Not available: " + "; ".join(unavailable) + "."),
    }
    if numeric:
        numbers.attrs.update(attrs)
        return numbers
    out = pd.DataFrame(
        {
            "Model": numbers["model"].map(model_label),
            "Factor": numbers["factor"].map(factor_label),
            "\u03c9T": numbers["omega_total"].map(fmt_bounded),
            "\u03c9H / \u03c9HS": numbers["omega_h"].map(fmt_bounded),
            "ECV": numbers["ecv"].map(fmt_bounded),
            "PUC": numbers["puc"].map(fmt_bounded),
            "H": numbers["h"].map(fmt_bounded),
        }
    )
    out.attrs.update(attrs)
    return out


# --------------------------------------------------------------------------- invariance


def ladder_estimator(ladder: dict[str, Any], estimator: str | None = None) -> str:
    """The estimator of an invariance ladder: given, or read from the ladder."""
    if estimator:
        return estimator.upper()
    if ladder.get("estimator"):
        return str(ladder["estimator"]).upper()
    for step in STEPS:
        meta = (ladder.get(step) or {}).get("meta") or {}
        if meta.get("estimator"):
            return str(meta["estimator"]).upper()
    method = str((ladder.get("lrt") or {}).get("method", "")).lower()
    if "satorra.bentler" in method:
        return "MLR"
    if "satorra.2000" in method or "shifted" in method:
        return "WLSMV"
    return "ML"


def ladder_steps(ladder: dict[str, Any]) -> list[str]:
    """The steps of the ladder that were fitted, in order."""
    return [s for s in STEPS if isinstance(ladder.get(s), dict) and "fit" in ladder[s]]


def invariance_indices(ladder: dict[str, Any], estimator: str | None = None) -> dict[str, str]:
    """The fitMeasures names of the CFI and RMSEA used for the ladder's deltas and decisions.

    The indices the ladder's own decisions used when it has decisions; otherwise one variant
    (robust, else scaled, else standard) available at every step.
    """
    for dec in (ladder.get("decisions") or {}).values():
        if isinstance(dec, dict) and dec.get("indices"):
            return {"cfi": dec["indices"]["cfi"], "rmsea": dec["indices"]["rmsea"], "srmr": "srmr"}
    est = ladder_estimator(ladder, estimator)
    fits = [ladder[s]["fit"] for s in ladder_steps(ladder)]
    suffix = index_variant(fits, est)
    return {"cfi": "cfi" + suffix, "rmsea": "rmsea" + suffix, "srmr": "srmr"}


def _lrt_rows(ladder: dict[str, Any]) -> dict[str, dict[str, Any]]:
    table = (ladder.get("lrt") or {}).get("table") or []
    return {r.get("model"): r for r in table}


def invariance_deltas(ladder: dict[str, Any], estimator: str | None = None) -> pd.DataFrame:
    """Changes in CFI, RMSEA and SRMR by step with the Chen (2007) decision (numeric).

    Returns
    -------
    pandas.DataFrame
        One row per constrained step: ``step``, ``delta_cfi``, ``delta_rmsea``,
        ``delta_srmr``, the cutoffs ``cut_cfi``, ``cut_rmsea``, ``cut_srmr``, ``invariant``
        and ``decision_source`` (``ladder`` when the ladder carried the decision, ``computed``
        when it was derived here from the deltas with
        :func:`alliance.sem.invariance.chen_decision`); ``attrs["indices"]``.
    """
    from alliance.sem.invariance import chen_decision

    idx = invariance_indices(ladder, estimator)
    steps = ladder_steps(ladder)
    rows = []
    decisions = ladder.get("decisions") or {}
    for prev, step in zip(steps, steps[1:], strict=False):
        f0, f1 = ladder[prev]["fit"], ladder[step]["fit"]

        def delta(key: str, f0: dict = f0, f1: dict = f1) -> float | None:
            a, b = f1.get(key), f0.get(key)
            return None if _missing(a) or _missing(b) else float(a) - float(b)

        d = {"cfi": delta(idx["cfi"]), "rmsea": delta(idx["rmsea"]), "srmr": delta("srmr")}
        given = decisions.get(step)
        if isinstance(given, dict) and "invariant" in given:
            dec, source = given, "ladder"
        else:
            dec, source = chen_decision(step, d), "computed"
        cut = dec.get("cutoffs") or {}
        rows.append(
            {
                "step": step,
                "previous": prev,
                "delta_cfi": d["cfi"],
                "delta_rmsea": d["rmsea"],
                "delta_srmr": d["srmr"],
                "cut_cfi": cut.get("delta_cfi"),
                "cut_rmsea": cut.get("delta_rmsea"),
                "cut_srmr": cut.get("delta_srmr"),
                "invariant": dec.get("invariant"),
                "decision_source": source,
            }
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "step",
            "previous",
            "delta_cfi",
            "delta_rmsea",
            "delta_srmr",
            "cut_cfi",
            "cut_rmsea",
            "cut_srmr",
            "invariant",
            "decision_source",
        ],
    )
    out.attrs["indices"] = idx
    return out


def _step_label(step: str, block: dict[str, Any]) -> str:
    equal = list(block.get("group.equal") or [])
    if step == "configural" or not equal:
        return step.capitalize()
    return f"{step.capitalize()} ({', '.join(equal)} equal)"


def _param_label(c: dict[str, Any]) -> str:
    lhs, op, rhs = c.get("lhs", ""), c.get("op", ""), c.get("rhs", "")
    if op == "~1":
        text = f"intercept of {lhs}"
    elif op == "=~":
        text = f"loading {lhs} =~ {rhs}"
    elif op == "|":
        text = f"threshold {lhs}|{rhs}"
    elif op == "~~":
        text = f"residual variance of {lhs}" if lhs == rhs else f"covariance {lhs} ~~ {rhs}"
    else:
        text = c.get("parameter") or f"{lhs} {op} {rhs}"
    group = c.get("group_label") or c.get("group")
    return f"{text} in {group}" if group is not None else text


def partial_candidates(ladder: dict[str, Any], step: str, top: int = 3) -> list[dict[str, Any]]:
    """The ``top`` parameters of ``step`` whose release improves fit most (largest score test)."""
    cands = list(((ladder.get("partial") or {}).get(step)) or [])
    cands.sort(key=lambda c: -(c.get("X2") or 0))
    return cands[:top]


def invariance_table(
    ladder: dict[str, Any],
    estimator: str | None = None,
    numeric: bool = False,
    top_candidates: int = 3,
    group: str | None = None,
) -> pd.DataFrame:
    """The measurement-invariance ladder, APA style: one row per step.

    Columns: step (with the parameters held equal), chi-square (the scaled statistic for MLR
    and WLSMV), df, CFI, RMSEA, SRMR (the variant the decisions use: robust for MLR when
    available, else scaled), the difference test against the previous step (lavaan's
    ``lavTestLRT``: scaled difference for MLR, scaled-shifted for WLSMV), delta CFI / RMSEA /
    SRMR, the decision by Chen (2007) with the criterion, and, when the ladder has score tests
    for partial invariance, the parameters whose release would improve fit most.

    Parameters
    ----------
    ladder
        The invariance result (``configural``, ``metric``, ``scalar``, ``strict`` with ``fit``;
        ``lrt``; ``deltas``; optional ``decisions``, ``partial``, ``notes``).
    estimator
        ``"ML"``, ``"MLR"`` or ``"WLSMV"``; by default read from the ladder.
    numeric
        Unrounded numbers with machine column names.
    top_candidates
        How many release candidates to list per step.
    group
        The grouping column, for the title; by default read from the ladder.

    References
    ----------
    Chen, F. F. (2007). Sensitivity of goodness of fit indexes to lack of measurement
    invariance. *Structural Equation Modeling, 14*(3), 464-504.

    """
    est = ladder_estimator(ladder, estimator)
    robust = est != "ML"
    idx = invariance_indices(ladder, est)
    steps = ladder_steps(ladder)
    deltas = invariance_deltas(ladder, est).set_index("step")
    lrt = _lrt_rows(ladder)
    rows = []
    for step in steps:
        block = ladder[step]
        fit = block["fit"]
        t = lrt.get(step) or {}
        d = deltas.loc[step] if step in deltas.index else None
        cands = partial_candidates(ladder, step, top_candidates)
        rows.append(
            {
                "step": step,
                "label": _step_label(step, block),
                "chisq": fit.get("chisq.scaled") if robust else fit.get("chisq"),
                "df": fit.get("df.scaled") if robust and fit.get("df.scaled") else fit.get("df"),
                "pvalue": fit.get("pvalue.scaled") if robust else fit.get("pvalue"),
                idx["cfi"]: fit.get(idx["cfi"]),
                idx["rmsea"]: fit.get(idx["rmsea"]),
                "srmr": fit.get("srmr"),
                "chisq_diff": t.get("Chisq_diff"),
                "df_diff": t.get("Df_diff"),
                "pvalue_diff": t.get("Pr_gt_Chisq"),
                "delta_cfi": None if d is None else d["delta_cfi"],
                "delta_rmsea": None if d is None else d["delta_rmsea"],
                "delta_srmr": None if d is None else d["delta_srmr"],
                "invariant": None if d is None else d["invariant"],
                "decision_source": None if d is None else d["decision_source"],
                "cut_srmr": None if d is None else d["cut_srmr"],
                "candidates": "; ".join(
                    f"{_param_label(c)} ({CHI2}(1) = {fmt_num(c.get('X2'))}, p = "
                    f"{fmt_p(c.get('pvalue')).replace('< ', '<')})"
                    for c in cands
                )
                if cands
                else None,
            }
        )
    numbers = pd.DataFrame(rows)
    variant = {"": "", ".robust": "robust ", ".scaled": "scaled "}
    cfi_v = idx["cfi"].removeprefix("cfi")
    group = (
        group
        or ladder.get("group")
        or ((ladder.get("configural") or {}).get("meta") or {}).get("group")
    )
    labels = (ladder.get("configural") or {}).get("group_labels") or []
    title = f"Measurement invariance across {group or 'groups'} ({est})"
    note = []
    if labels:
        nobs = (ladder.get("configural") or {}).get("nobs") or []
        groups = ", ".join(
            f"{g} (n = {n})" for g, n in zip(labels, nobs, strict=False)
        ) or ", ".join(labels)
        note.append(f"Groups: {groups}.")
    method = (ladder.get("lrt") or {}).get("method")
    if robust:
        note.append(
            f"{CHI2} is the {_SCALED_CHI2.get(est, 'scaled ' + CHI2)}; "
            f"CFI and RMSEA are the {variant[cfi_v] or 'standard '}versions."
        )
    if method:
        note.append(f"{DELTA}{CHI2}: {method}, against the previous step.")
    note.append(
        f"{DELTA} = more constrained step minus the previous step. Decision by Chen (2007): "
        f"not invariant if {DELTA}CFI \u2264 {MINUS}.010 together with {DELTA}RMSEA \u2265 .015 "
        f"or {DELTA}SRMR \u2265 .030 (metric) / \u2265 .010 (scalar, strict)."
    )
    if (numbers.get("decision_source") == "computed").any():
        note.append(
            "The ladder carried no decisions; they were derived here from the deltas shown."
        )
    if numbers["candidates"].notna().any():
        note.append(
            "Release candidates: the equality constraints whose release improves fit most "
            f"(score tests, {CHI2} with 1 df), for partial invariance."
        )
    for n in ladder.get("notes") or []:
        note.append(str(n)[0].upper() + str(n)[1:] + ("" if str(n).endswith(".") else "."))
    attrs = {"title": title, "note": " ".join(note), "indices": idx, "estimator": est}
    if numeric:
        numbers.attrs.update(attrs)
        return numbers

    vname = variant[cfi_v].capitalize()
    chi_label = f"Scaled {CHI2}" if robust else CHI2

    def decision(row: pd.Series) -> str:
        if row["step"] == "configural":
            return "Baseline"
        if row["invariant"] is None or _missing(row["invariant"]):
            return "Undecided (index missing)"
        return "Invariant" if row["invariant"] else "Not invariant"

    def criterion(row: pd.Series) -> str:
        if row["step"] == "configural":
            return DASH
        return (
            f"Chen (2007): {DELTA}CFI \u2264 {MINUS}.010 with {DELTA}RMSEA \u2265 .015 or "
            f"{DELTA}SRMR \u2265 {fmt_bounded(row['cut_srmr'])}"
        )

    out = pd.DataFrame({"Step": numbers["label"]})
    out[chi_label] = numbers["chisq"].map(fmt_num)
    out["df"] = numbers["df"].map(fmt_int)
    out[f"{vname}CFI"] = numbers[idx["cfi"]].map(fmt_bounded)
    out[f"{vname}RMSEA"] = numbers[idx["rmsea"]].map(fmt_bounded)
    out["SRMR"] = numbers["srmr"].map(fmt_bounded)
    out[f"{DELTA}{CHI2}"] = numbers["chisq_diff"].map(fmt_num)
    out[f"{DELTA}df"] = numbers["df_diff"].map(fmt_int)
    out["p"] = numbers["pvalue_diff"].map(fmt_p)
    out[f"{DELTA}CFI"] = numbers["delta_cfi"].map(fmt_bounded)
    out[f"{DELTA}RMSEA"] = numbers["delta_rmsea"].map(fmt_bounded)
    out[f"{DELTA}SRMR"] = numbers["delta_srmr"].map(fmt_bounded)
    out["Decision"] = numbers.apply(decision, axis=1)
    out["Criterion"] = numbers.apply(criterion, axis=1)
    if numbers["candidates"].notna().any():
        out["Release candidates"] = numbers["candidates"].map(lambda v: v or DASH)
    out.attrs.update(attrs)
    return out


def longitudinal_table(result: dict[str, Any], numeric: bool = False) -> pd.DataFrame:
    """The longitudinal invariance ladder in the cross-group table's layout (one row per step).

    ``result`` is :func:`alliance.sem.longitudinal.longitudinal_ladder`'s: its steps are laid
    out as the cross-group ladder's blocks (fit, parameters held equal over the waves) and
    passed to :func:`invariance_table`, so both read alike; a step without fit (not
    converged, inadmissible or failed) is left out, with its reason in the note.
    """
    view: dict[str, Any] = {k: v for k, v in result.items() if k != "steps"}
    skipped = []
    for step in result.get("steps") or []:
        if step.get("fit"):
            view[step["name"]] = {"fit": step["fit"], "group.equal": step.get("long.equal", [])}
        else:
            reason = step.get("error") or "; ".join((step.get("status") or {}).get("issues", []))
            skipped.append(f"{step['name']} step not reported: {reason}")
    view["notes"] = [*(result.get("notes") or []), *skipped]
    waves = ", ".join(str(w) for w in result.get("waves") or [])
    if not any(s in view for s in STEPS):
        out = pd.DataFrame({"Step": [s.split(" step not reported: ")[0] for s in skipped],
                            "Not reported": [s.split(": ", 1)[1] for s in skipped]})  # fmt: skip
        out.attrs["title"] = f"Longitudinal measurement invariance over sessions {waves}"
        out.attrs["note"] = "No step has an admissible solution: no fit, no tests."
        return out
    table = invariance_table(view, result.get("estimator"), numeric=numeric,
                             group=f"sessions {waves}")  # fmt: skip
    table.attrs["title"] = table.attrs["title"].replace(
        "Measurement invariance across", "Longitudinal measurement invariance over"
    )
    return table
