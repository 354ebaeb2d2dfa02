"""Model comparison: fit side by side, deltas of fit indices, tests of nested pairs, ICs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alliance.sem.estimate import FitResult
from alliance.sem.fitmeasures import fit_measures
from alliance.sem.teststats import lrt_table
from alliance.sem.validity import admissibility

__all__ = ["DELTA_NAMES", "ROBUST_DELTA_NAMES", "compare_models", "delta_fit"]

DELTA_NAMES = ("cfi", "tli", "rmsea", "srmr")
ROBUST_DELTA_NAMES = ("cfi.scaled", "rmsea.scaled", "cfi.robust", "rmsea.robust")


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
            names_d = DELTA_NAMES + (ROBUST_DELTA_NAMES if ra.estimator != "ML" else ())
            tests.append(
                {
                    "general": general,
                    "restricted": restricted,
                    "chisq_diff": row["Chisq_diff"],
                    "df_diff": row["Df_diff"],
                    "pvalue": row["Pr_gt_Chisq"],
                    "method": lrt["method"],
                    "deltas": delta_fit(measures[general], measures[restricted], names_d),
                    "aic_diff": delta_fit(measures[general], measures[restricted], ("aic",))["aic"],
                    "bic_diff": delta_fit(measures[general], measures[restricted], ("bic",))["bic"],
                }
            )
    return {"fit": table, "tests": tests}
