"""APA-style tables of CFA results: model fit, loadings, reliability, measurement invariance.

Every table builder takes the result dicts of :func:`alliance.cfa_stage.run_cfa` (or
:func:`alliance.sem.api.fit_cfa`) or an invariance ladder and returns a
:class:`pandas.DataFrame`. By default the cells are display strings in APA style (no leading
zero for values bounded by 1, a true minus sign, ``< .001`` for small p values, an em dash for
values that are not defined); with ``numeric=True`` the same rows hold the unrounded numbers,
for CSV files and for the figures of :mod:`alliance.cfa_plots`. The table's title and note
(which variant of an index is shown, the cutoffs, abbreviations) travel in ``df.attrs``
(``"title"``, ``"note"``) and are written by :func:`to_markdown` / :func:`write_table`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.tables import md_cell, write_csv

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
    """Which variant of CFI/TLI/RMSEA a table shows: ``""`` (ML), ``".robust"`` or ``".scaled"``.

    For MLR and WLSMV the robust indices (Brosseau-Liard & Savalei 2014; Savalei 2021) when
    every fit that has indices reports them, else the scaled ones, else the standard ones. One
    variant for the whole table, so the rows are comparable.
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


def fit_comparison_table(
    results: Mapping[str, dict[str, Any]],
    estimator: str | None = None,
    numeric: bool = False,
) -> pd.DataFrame:
    """Fit of competing models: one row per model, APA style.

    Columns: model, npar, df, the chi-square (for MLR/WLSMV the unscaled statistic and the
    scaled one with its p, each labelled), CFI, TLI, RMSEA with its 90% CI, SRMR (for MLR and
    WLSMV the robust CFI/TLI/RMSEA when every model reports them, else the scaled ones; the
    column names say which), AIC and BIC when defined (ML, MLR), whether the model converged
    and is admissible, and which indices miss the Hu & Bentler (1999) cutoffs
    (:data:`CUTOFFS`). A model that failed to fit keeps its row, with the error in the note.

    Parameters
    ----------
    results
        Model name (``one_factor``, ``two_factor``, ``correlated``, ``bifactor``,
        ``second_order`` or any other) -> result dict (``fit``, ``converged``, ``status``).
    estimator
        ``"ML"``, ``"MLR"`` or ``"WLSMV"``; by default read from the results.
    numeric
        Unrounded numbers with machine column names (lavaan's ``fitMeasures`` names of the
        variant shown, e.g. ``cfi.robust``) instead of display strings.

    Returns
    -------
    pandas.DataFrame
        One row per model in the order of :data:`MODEL_LABELS`, then any others;
        ``attrs["title"]``, ``attrs["note"]`` and ``attrs["indices"]`` (the fitMeasures names
        of the CFI, TLI, RMSEA shown).

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
    fits = {m: (results[m].get("fit") or {}) for m in names}
    suffix = index_variant(list(fits.values()), est)
    indices = {k: k + suffix for k in ("cfi", "tli", "rmsea")}
    with_ic = any(not _missing(f.get("aic")) for f in fits.values())

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for m in names:
        r, fit = results[m], fits[m]
        converged = bool(r.get("converged")) and bool(fit)
        admissible, _issues = _admissibility(r) if fit else (None, [])
        if not fit:
            err = (r.get("status") or {}).get("error") or "no fit"
            failures.append(f"{model_label(m)}: {err}")
        shown = {
            "cfi": fit.get(indices["cfi"]),
            "tli": fit.get(indices["tli"]),
            "rmsea": fit.get(indices["rmsea"]),
            "srmr": fit.get("srmr"),
        }
        lo, hi = _rmsea_ci(fit, suffix)
        row: dict[str, Any] = {
            "model": m,
            "label": model_label(m),
            "npar": fit.get("npar"),
            "df": fit.get("df"),
            "chisq": fit.get("chisq"),
            "pvalue": fit.get("pvalue"),
        }
        if robust:
            row |= {
                "chisq.scaled": fit.get("chisq.scaled"),
                "pvalue.scaled": fit.get("pvalue.scaled"),
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
            row |= {"aic": fit.get("aic"), "bic": fit.get("bic")}
        row |= {
            "converged": converged,
            "admissible": admissible,
            "fails_cutoffs": ", ".join(fails_cutoffs(shown)) if fit else None,
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
    if robust:
        note.append(
            f"Estimator {est}: {CHI2} is the unscaled statistic; the scaled {CHI2} is the "
            f"{_SCALED_CHI2.get(est, 'scaled ' + CHI2)} and its p value tests exact fit."
        )
        if suffix == ".robust":
            note.append(
                f"CFI, TLI and RMSEA are the robust versions ({_ROBUST_SOURCES.get(est, '')})."
            )
        elif suffix == ".scaled":
            note.append(
                "CFI, TLI and RMSEA are the scaled versions (robust versions not available "
                "for every model)."
            )
    if with_ic:
        note.append("AIC and BIC: lower values indicate better fit.")
    note.append(cutoff_note(est) + " Misses lists the indices outside these cutoffs.")
    if "correlated" in names and "second_order" in names:
        note.append(
            "With three first-order factors the second-order model is just-identified at the "
            "structural level and has the same fit as the correlated-factors model."
        )
    if failures:
        note.append("Not estimated: " + "; ".join(failures) + ".")
    attrs = {"title": title, "note": " ".join(note), "indices": indices, "estimator": est}
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
    out["Admissible"] = numbers["admissible"].map(_yes_no)
    out["Misses cutoffs"] = numbers["fails_cutoffs"].map(
        lambda v: DASH if v is None else (v or "None")
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


def _loading_rows(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    std = result.get("standardized") or []
    latent = _latent_names(result)
    out = []
    general_bifactor = name == "bifactor" or _is_bifactor(result)
    for r in std:
        if r.get("op") != "=~":
            continue
        if "group" in r and r["group"] not in (None, 1, "1"):
            continue
        is_item = r["rhs"] not in latent
        if is_item:
            role = "item"
            if general_bifactor:
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


def loadings_long(results: Mapping[str, dict[str, Any]]) -> pd.DataFrame:
    """Every standardized loading (std.all) of every model: one row per model, factor, item.

    Columns ``model``, ``factor``, ``item``, ``role`` (``item``; ``general``/``specific`` in a
    bifactor model; ``second_order`` for a factor loading on a higher-order factor),
    ``est.std``, ``se``, ``ci.lower``, ``ci.upper``, ``pvalue``. For a multi-group result the
    first group is used.
    """
    rows = []
    for m in _model_order(list(results)):
        rows += _loading_rows(m, results[m])
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
    long = loadings_long(results)
    title = "Standardized factor loadings of the competing models"
    note = (
        "Standardized loadings (std.all) with standard errors in parentheses. "
        "Bifactor: loadings on the general factor and on the item's specific factor."
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


# --------------------------------------------------------------------------- writers


def _md_cell(value: Any) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return md_cell(text)


def to_markdown(df: pd.DataFrame, title: str | None = None, note: str | None = None) -> str:
    """A GitHub/pandoc pipe table with the title above and ``*Note.* ...`` below.

    ``title`` and ``note`` default to ``df.attrs["title"]`` / ``df.attrs["note"]``. Text
    columns are left-aligned, the others right-aligned.
    """
    title = df.attrs.get("title") if title is None else title
    note = df.attrs.get("note") if note is None else note
    header = [_md_cell(c) for c in df.columns]
    left = [
        c in ("Model", "Step", "Factor", "Item", "Decision", "Criterion")
        or str(c).startswith(("Release", "Misses"))
        for c in df.columns
    ]
    align = [":--" if lf else "--:" for lf in left]
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join(align) + " |")
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if note:
        lines += ["", f"*Note.* {note}"]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Write ``{path_stem}.csv`` (the cells as they are) and ``{path_stem}.md`` (with note).

    The CSV is UTF-8 without the index; the title and note go to the Markdown file only.

    Returns
    -------
    list of pathlib.Path
        The two files written.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv = stem.with_name(stem.name + ".csv")
    md = stem.with_name(stem.name + ".md")
    write_csv(df, csv, index=False, lineterminator="\n")
    md.write_text(to_markdown(df), encoding="utf-8")
    return [csv, md]
