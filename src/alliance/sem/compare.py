"""Model comparison: chi-square difference tests (plain and Satorra-Bentler 2001), deltas, ICs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from alliance.sem.estimate import FitResult
from alliance.sem.fit import fit_measures

__all__ = ["compare_models", "delta_fit", "lrt_table", "sb2001_difference"]

DELTA_NAMES = ("cfi", "tli", "rmsea", "srmr")
ROBUST_DELTA_NAMES = ("cfi.scaled", "rmsea.scaled", "cfi.robust", "rmsea.robust")


def sb2001_difference(
    t0: float, df0: int, c0: float, t1: float, df1: int, c1: float
) -> tuple[float, float]:
    """Satorra-Bentler (2001) scaled difference of two nested scaled tests.

    ``cd = (df0 c0 - df1 c1) / (df0 - df1)``, ``T = (T0 - T1) / cd`` with the unscaled
    statistics ``T`` and scaling factors ``c`` (model 0 is the more restricted).

    Returns
    -------
    (statistic, cd)

    References
    ----------
    Satorra, A., & Bentler, P. M. (2001). A scaled difference chi-square test statistic for
    moment structure analysis. Psychometrika, 66(4), 507-514.
    """
    cd = (df0 * c0 - df1 * c1) / (df0 - df1)
    return (t0 - t1) / cd, cd


def lrt_table(
    results: Sequence[FitResult], names: Sequence[str], measures: Sequence[dict] | None = None
) -> dict[str, Any]:
    """Chi-square difference tests as lavaan ``lavTestLRT()``, models sorted by df.

    Each model is tested against the previous (less restricted) one.

    ML: ``Chisq_diff = chisq_1 - chisq_0``; MLR: the Satorra-Bentler (2001) scaled difference
    (lavaan's default ``method = "satorra.bentler.2001"``). ``RMSEA`` is the RMSEA of the
    difference test, ``sqrt(max(0, (Chisq_diff - Df_diff) / (N Df_diff))) sqrt(G)``.

    Returns
    -------
    dict
        ``{"table": [rows with model, Df, AIC, BIC, Chisq, Chisq_diff, RMSEA, Df_diff,
        Pr_gt_Chisq], "method": ...}``; for MLR rows also carry ``scaling_factor_diff``.
    """
    if len(results) != len(names):
        raise ValueError(f"got {len(results)} results for {len(names)} names")
    if measures is None:
        measures = [fit_measures(r) for r in results]
    order = sorted(range(len(results)), key=lambda i: (results[i].df, i))
    scaled = all(r.estimator == "MLR" for r in results)
    rows = []
    prev = None
    for i in order:
        r, fm = results[i], measures[i]
        row: dict[str, Any] = {
            "model": names[i],
            "Df": r.df,
            "AIC": fm.get("aic"),
            "BIC": fm.get("bic"),
            "Chisq": r.chisq,
            "Chisq_diff": None,
            "RMSEA": None,
            "Df_diff": None,
            "Pr_gt_Chisq": None,
        }
        if prev is not None:
            p, pfm = results[prev], measures[prev]
            ddf = r.df - p.df
            if ddf <= 0:
                row["note"] = "models have the same df: no test"
            else:
                if scaled:
                    diff, cd = sb2001_difference(
                        r.chisq, r.df, fm["chisq.scaling.factor"],
                        p.chisq, p.df, pfm["chisq.scaling.factor"],
                    )  # fmt: skip
                    row["scaling_factor_diff"] = cd
                    if cd < 0:
                        row["note"] = "negative scaling factor of the difference"
                else:
                    diff = r.chisq - p.chisq
                n = r.ntotal
                g = r.spec.ngroups
                row["Chisq_diff"] = diff
                row["Df_diff"] = ddf
                row["RMSEA"] = float(np.sqrt(max(0.0, (diff - ddf) / (n * ddf))) * np.sqrt(g))
                row["Pr_gt_Chisq"] = float(special.chdtrc(ddf, diff))
        rows.append(row)
        prev = i
    method = (
        "Scaled Chi-Squared Difference Test (method = satorra.bentler.2001)"
        if scaled
        else "Chi-Squared Difference Test"
    )
    return {"table": rows, "method": method}


def delta_fit(
    base: dict[str, Any], other: dict[str, Any], names: Sequence[str] = DELTA_NAMES
) -> dict[str, float | None]:
    """``other - base`` for each fit measure (e.g. metric minus configural)."""
    out: dict[str, float | None] = {}
    for name in names:
        a, b = base.get(name), other.get(name)
        out[name] = None if a is None or b is None else float(b - a)
    return out


def compare_models(results: dict[str, FitResult]) -> dict[str, Any]:
    """One table across competing models: fit, AIC/BIC, and tests for nested pairs.

    Nested pairs are those with the same observed variables and data where one model has
    more degrees of freedom; the likelihood-ratio test (scaled for MLR) is reported for
    every such pair, leaving it to the reader to judge nesting (e.g. the bifactor model
    does not nest the two-factor model). Delta CFI/RMSEA/SRMR are ``restricted - general``.
    A pair with a model that did not converge or is inadmissible (a Heywood case, a latent
    covariance matrix that is not positive definite; :func:`alliance.sem.validity.
    admissibility`) is not tested: its row has ``not_tested`` with the reason.

    Returns
    -------
    dict
        ``{"fit": {name: {npar, df, chisq, ..., aic, bic, converged, admissible}},
        "tests": [...]}``.
    """
    from alliance.sem.validity import admissibility

    names = list(results)
    status = {k: admissibility(v) for k, v in results.items()}
    measures = {k: fit_measures(v) for k, v in results.items()}
    keys = (
        "npar", "df", "chisq", "pvalue", "chisq.scaled", "cfi", "tli", "rmsea", "srmr",
        "cfi.robust", "tli.robust", "rmsea.robust", "aic", "bic", "bic2",
    )  # fmt: skip
    table = {
        k: {m: measures[k].get(m) for m in keys if m in measures[k]}
        | {"converged": v.converged, "admissible": status[k]["admissible"]}
        for k, v in results.items()
    }
    tests = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ra, rb = results[a], results[b]
            if set(ra.spec.ov) != set(rb.spec.ov) or ra.ntotal != rb.ntotal or ra.df == rb.df:
                continue
            general, restricted = (a, b) if ra.df < rb.df else (b, a)
            bad = [m for m in (restricted, general) if not status[m]["admissible"]]
            if bad:
                why = "; ".join(f"{m}: {', '.join(status[m]['issues'])}" for m in bad)
                tests.append({"general": general, "restricted": restricted, "not_tested": why})
                continue
            lrt = lrt_table([results[general], results[restricted]], [general, restricted],
                            [measures[general], measures[restricted]])  # fmt: skip
            row = lrt["table"][1]
            names_d = DELTA_NAMES + (ROBUST_DELTA_NAMES if ra.estimator == "MLR" else ())
            tests.append(
                {
                    "general": general,
                    "restricted": restricted,
                    "chisq_diff": row["Chisq_diff"],
                    "df_diff": row["Df_diff"],
                    "pvalue": row["Pr_gt_Chisq"],
                    "method": lrt["method"],
                    "deltas": delta_fit(measures[general], measures[restricted], names_d),
                    "aic_diff": measures[restricted]["aic"] - measures[general]["aic"],
                    "bic_diff": measures[restricted]["bic"] - measures[general]["bic"],
                }
            )
    return {"fit": table, "tests": tests}
