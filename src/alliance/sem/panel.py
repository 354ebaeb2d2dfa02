"""Random-intercept cross-lagged panel models (RI-CLPM): lavaan model syntax, fitted by the engine.

The RI-CLPM (Hamaker, Kuiper & Grasman 2015) splits each repeated measure into a stable
between-person part (a random intercept with loadings 1 on every wave) and within-person
deviations at each wave (a latent variable per wave with loading 1 on its observed score,
whose residual variance is fixed to 0). The within-person deviations follow a first-order
cross-lagged model: autoregressive paths (``wx_t ~ wx_{t-1}``, ``wy_t ~ wy_{t-1}``) and
cross-lagged paths (``wy_t ~ wx_{t-1}``: x predicts y; ``wx_t ~ wy_{t-1}``: y predicts x),
with covariances of the wave-1 deviations and of the later innovations, and a covariance of
the two random intercepts. :func:`riclpm_syntax` writes that model as Mulder & Hamaker (2021)
do for lavaan, every parameter spelled out, so the same text fitted by ``lavaan()`` (or by
:func:`fit_riclpm`) gives the same parameter table; :func:`fit_riclpm` fits it with ML or MLR
(FIML for missing waves), reports the lagged effects and their standardized (within-person)
values, and tests whether each lag is equal over the waves (Wald and likelihood-ratio).

Only :mod:`alliance.sem` is imported: the stage (:mod:`alliance.panel`) reads files and
draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from alliance.sem.estimate import FitResult
from alliance.sem.fitmeasures import fit_block, fit_measures
from alliance.sem.fitting import check_args, fit_model
from alliance.sem.model import ModelSpec
from alliance.sem.output import clean, fit_meta, result_dict
from alliance.sem.samplestats import prepare_sample
from alliance.sem.solution import parameter_rows
from alliance.sem.standardize import standardized_rows
from alliance.sem.teststats import lrt_table, wald_test
from alliance.sem.validity import admissibility

__all__ = [
    "EFFECTS",
    "effect_rows",
    "equal_lag_constraints",
    "fit_riclpm",
    "riclpm_syntax",
    "wave_names",
]

#: The four lagged effects: name -> (label stem, outcome prefix, predictor prefix).
EFFECTS = {
    "autoregressive_x": ("ax", "wx", "wx"),
    "autoregressive_y": ("ay", "wy", "wy"),
    "cross_x_to_y": ("cxy", "wy", "wx"),
    "cross_y_to_x": ("cyx", "wx", "wy"),
}

#: Fewest waves: with two waves the RI-CLPM is not identified.
MIN_WAVES = 3


def _check_waves(waves: Sequence[int]) -> list[int]:
    out = [int(w) for w in waves]
    if any(w != v for w, v in zip(out, waves, strict=True)) or any(w < 0 for w in out):
        raise ValueError(f"waves must be non-negative whole numbers, got {list(waves)!r}")
    if len(out) < MIN_WAVES:
        raise ValueError(
            f"an RI-CLPM needs at least {MIN_WAVES} waves (with two it is not identified), "
            f"got {out!r}"
        )
    if sorted(set(out)) != out:
        raise ValueError(f"waves must be increasing and distinct, got {out!r}")
    return out


def wave_names(waves: Sequence[int]) -> tuple[list[str], list[str]]:
    """The observed variable names of the syntax: ``x{wave}`` and ``y{wave}``."""
    ws = _check_waves(waves)
    return [f"x{w}" for w in ws], [f"y{w}" for w in ws]


def riclpm_syntax(
    waves: Sequence[int], *, constrain_lags: bool = False, detrend: bool = False
) -> str:
    """The lavaan syntax of the RI-CLPM for observed scores ``x{wave}`` and ``y{wave}``.

    Parameters
    ----------
    waves
        The measurement occasions, increasing (e.g. ``[1, 2, 3, 4, 5]``); at least three.
    constrain_lags
        Hold each lagged effect equal over the waves (one label per effect: ``ax``, ``ay``,
        ``cxy``, ``cyx``); otherwise each wave's effect is free and labelled by the wave it
        predicts (``ax2``, ``cxy2``, ...).
    detrend
        Replace the free observed means by a linear trend over time in each variable: the
        intercepts are fixed to 0, the random intercepts get free means (the level at the
        first wave) and a slope factor ``Tx`` (``Ty``) with loadings ``wave - first wave``,
        variance 0 and a free mean carries the trend (Falkenstrom et al. 2017 on
        detrending). Without it the observed means are free at every wave.

    Returns
    -------
    str
        The model text, every parameter written out (lavaan's ``lavaan()`` adds nothing to
        it; the engine's defaults add nothing either, as every default is overridden).

    References
    ----------
    Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the
    cross-lagged panel model. Psychological Methods, 20(1), 102-116.
    Mulder, J. D., & Hamaker, E. L. (2021). Three extensions of the random intercept
    cross-lagged panel model. Structural Equation Modeling, 28(4), 638-648.
    Falkenstrom, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic
    models of individual change in psychotherapy process research. Journal of Consulting and
    Clinical Psychology, 85(6), 537-549.
    """
    ws = _check_waves(waves)
    xs, ys = wave_names(ws)
    lines = ["# between-person: random intercepts (loadings 1)"]
    lines.append("RIx =~ " + " + ".join(f"1*{v}" for v in xs))
    lines.append("RIy =~ " + " + ".join(f"1*{v}" for v in ys))
    lines.append("# within-person deviations at each wave")
    for w in ws:
        lines.append(f"wx{w} =~ 1*x{w}")
        lines.append(f"wy{w} =~ 1*y{w}")
    lines.append("# lagged effects (autoregressive ax, ay; cross-lagged cxy: x -> y, cyx: y -> x)")
    for prev, w in zip(ws[:-1], ws[1:], strict=True):
        s = "" if constrain_lags else str(w)
        lines.append(f"wx{w} ~ ax{s}*wx{prev} + cyx{s}*wy{prev}")
        lines.append(f"wy{w} ~ cxy{s}*wx{prev} + ay{s}*wy{prev}")
    lines.append("# within-person covariances: wave 1, then the innovations")
    lines += [f"wx{w} ~~ wy{w}" for w in ws]
    lines.append("# (residual) variances of the within-person deviations")
    for w in ws:
        lines += [f"wx{w} ~~ wx{w}", f"wy{w} ~~ wy{w}"]
    lines.append("# random intercepts: variances and covariance")
    lines += ["RIx ~~ RIx", "RIy ~~ RIy", "RIx ~~ RIy"]
    exo = ["RIx", "RIy", f"wx{ws[0]}", f"wy{ws[0]}"]
    if detrend:
        exo += ["Tx", "Ty"]
    lines.append("# no covariance between the random intercepts and the wave-1 deviations")
    lines += [
        f"{a} ~~ 0*{b}"
        for i, a in enumerate(exo)
        for b in exo[i + 1 :]
        if (a, b) not in (("RIx", "RIy"), (f"wx{ws[0]}", f"wy{ws[0]}"))
    ]
    lines.append("# observed scores: no measurement error beyond the within-person part")
    for w in ws:
        lines += [f"x{w} ~~ 0*x{w}", f"y{w} ~~ 0*y{w}"]
    if detrend:
        lines.append("# linear trend of the means: level (RI means) + slope x (wave - first)")
        for name, obs in (("Tx", xs), ("Ty", ys)):
            terms = [f"{w - ws[0]:g}*{v}" for w, v in zip(ws, obs, strict=True)]
            lines.append(f"{name} =~ " + " + ".join(terms))
        lines += ["Tx ~~ 0*Tx", "Ty ~~ 0*Ty", "RIx ~ 1", "RIy ~ 1", "Tx ~ 1", "Ty ~ 1"]
        lines += [f"{v} ~ 0*1" for v in xs + ys]
    return "\n".join(lines) + "\n"


def equal_lag_constraints(waves: Sequence[int]) -> list[str]:
    """Wald-test constraints of the free model: each lag equal over the waves.

    ``ax2 == ax3``, ``ax3 == ax4``, ... for each of the four effects (lavaan
    ``lavTestWald(fit, constraints)``); ``4 (T - 2)`` constraints for ``T`` waves.
    """
    ws = _check_waves(waves)
    out = []
    for stem, _, _ in EFFECTS.values():
        out += [f"{stem}{a} == {stem}{b}" for a, b in zip(ws[1:-1], ws[2:], strict=True)]
    return out


def effect_rows(
    result: FitResult,
    waves: Sequence[int],
    parameters: list[dict[str, Any]],
    standardized: list[dict[str, Any]],
) -> dict[str, Any]:
    """The four lagged effects per wave, unstandardized and standardized (within-person).

    Parameters
    ----------
    result
        The fitted RI-CLPM.
    waves
        Its waves.
    parameters, standardized
        Its ``parameterEstimates``/``standardizedSolution`` rows.

    Returns
    -------
    dict
        For each of :data:`EFFECTS`: ``label`` (one label when held equal over the waves),
        ``equal_over_waves`` and ``waves``: one row per lag with ``from``, ``to``, ``lhs``,
        ``rhs``, ``est``, ``se``, ``z``, ``pvalue``, ``ci.lower``, ``ci.upper`` and the
        standardized ``std.all``, ``std.se``, ``std.ci.lower``, ``std.ci.upper`` (the path in
        SDs of the within-person deviations at those waves).
    """
    ws = _check_waves(waves)
    est = {(r["lhs"], r["rhs"]): r for r in parameters if r["op"] == "~"}
    std = {(r["lhs"], r["rhs"]): r for r in standardized if r["op"] == "~"}
    out: dict[str, Any] = {}
    for name, (_, lhs_p, rhs_p) in EFFECTS.items():
        rows = []
        labels = []
        for prev, w in zip(ws[:-1], ws[1:], strict=True):
            key = (f"{lhs_p}{w}", f"{rhs_p}{prev}")
            p, s = est[key], std[key]
            labels.append(p.get("label", ""))
            row = {"from": prev, "to": w, "lhs": key[0], "rhs": key[1]}
            row.update({k: p[k] for k in ("est", "se", "z", "pvalue", "ci.lower", "ci.upper")})
            row.update(
                {
                    "std.all": s["est.std"],
                    "std.se": s["se"],
                    "std.ci.lower": s["ci.lower"],
                    "std.ci.upper": s["ci.upper"],
                }
            )
            rows.append(row)
        equal = len(set(labels)) == 1 and len(ws) > 2
        out[name] = {
            "label": labels[0] if equal else None,
            "equal_over_waves": equal,
            "outcome": lhs_p[1],
            "predictor": rhs_p[1],
            "waves": rows,
        }
    return out


def _sample_frame(data: pd.DataFrame, waves: list[int]) -> pd.DataFrame:
    xs, ys = wave_names(waves)
    missing = [c for c in xs + ys if c not in data.columns]
    if missing:
        raise ValueError(f"the panel data lack the wave columns {missing}")
    return data[xs + ys]


def fit_riclpm(
    data: pd.DataFrame,
    waves: Sequence[int],
    estimator: str = "ML",
    missing: str = "fiml",
    *,
    constrain_lags: bool = False,
    detrend: bool = False,
    level: float = 0.95,
) -> dict[str, Any]:
    """Fit the RI-CLPM, report the lagged effects and test whether the lags are equal.

    Both the model with free lags and the one with each lag equal over the waves are fitted
    (the test of equal lags needs both); the one asked for is reported in lavaan's layout.

    Parameters
    ----------
    data
        One row per person, columns ``x{wave}`` and ``y{wave}`` (see :func:`wave_names`);
        missing waves as NaN.
    waves
        The waves, increasing; at least three.
    estimator
        ``"ML"`` (expected-information SEs with complete data, observed with FIML) or
        ``"MLR"`` (Huber-White SEs, Yuan-Bentler scaled test, Satorra-Bentler scaled
        difference test).
    missing
        ``"fiml"`` (lavaan ``missing = "ml"``: every person with at least one observed score)
        or ``"listwise"``.
    constrain_lags
        Report the model with each lag held equal over the waves.
    detrend
        Linear trend of the means instead of free means (see :func:`riclpm_syntax`).
    level
        Confidence level of the intervals.

    Returns
    -------
    dict
        The lavaan-layout blocks of the reported model (``meta`` with the syntax, the
        lavaan call and the waves; ``converged``, ``nobs``, ``ntotal``, ``fit``,
        ``fit_all``, ``parameters``, ``standardized``, ``status``), ``effects``
        (:func:`effect_rows`), ``equal_lags`` (``wald``: lavTestWald of
        :func:`equal_lag_constraints` on the free model; ``lrt``: lavTestLRT of the free
        and the constrained model), ``usable`` (converged and admissible) and
        ``other_model`` (the model not asked for: ``constrain_lags``, ``usable``,
        ``status``, ``fit`` and ``effects``). A fit that is not usable keeps its estimates
        for diagnosis but gets no fit indices, no tests and no inference on its effects
        (its reasons are in ``status.issues``).

    Raises
    ------
    ValueError
        For bad input: fewer than three waves, wave columns absent or non-numeric, an
        estimator other than ML/MLR, fewer people than free parameters.

    References
    ----------
    Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the
    cross-lagged panel model. Psychological Methods, 20(1), 102-116.
    Mulder, J. D., & Hamaker, E. L. (2021). Three extensions of the random intercept
    cross-lagged panel model. Structural Equation Modeling, 28(4), 638-648.
    Satorra, A., & Bentler, P. M. (2001). A scaled difference chi-square test statistic for
    moment structure analysis. Psychometrika, 66(4), 507-514.
    """
    est, miss = check_args(estimator, missing)
    if est not in ("ML", "MLR"):
        raise ValueError(f"the RI-CLPM is fitted by ML or MLR, got estimator {estimator!r}")
    ws = _check_waves(waves)
    frame = _sample_frame(data, ws)
    syntax = {c: riclpm_syntax(ws, constrain_lags=c, detrend=detrend) for c in (False, True)}
    specs = {c: ModelSpec.from_syntax(s, meanstructure=True) for c, s in syntax.items()}
    sample = prepare_sample(frame, specs[False].ov, missing=miss)
    fits = {c: fit_model(frame, specs[c], est, miss, sample=sample) for c in (False, True)}
    main = fits[constrain_lags]
    meta = fit_meta(main, syntax[constrain_lags], miss, None)
    meta["lavaan_call"] = (
        f'lavaan(model, data, estimator = "{est}", missing = '
        f'"{"ml" if miss == "fiml" else "listwise"}", meanstructure = TRUE, int.ov.free = TRUE)'
    )
    meta.update(waves=ws, constrain_lags=bool(constrain_lags), detrend=bool(detrend))
    if sample.n_dropped:
        meta["notes"].append(
            f"{sample.n_dropped} rows without any observed score dropped ({miss})"
            if miss == "fiml"
            else f"{sample.n_dropped} rows dropped ({miss})"
        )
    with threadpool_limits(limits=1, user_api="blas"):
        out = result_dict(main, meta=meta, details=False, level=level)
        status = {c: clean(admissibility(f)) for c, f in fits.items()}
        usable = {c: bool(f.converged and status[c]["admissible"]) for c, f in fits.items()}
        out["status"] = status[constrain_lags]
        out["usable"] = usable[constrain_lags]
        out["effects"] = clean(effect_rows(main, ws, out["parameters"], out["standardized"]))
        other = fits[not constrain_lags]
        measures = {constrain_lags: out["fit_all"], not constrain_lags: fit_measures(other)}
        out["other_model"] = {
            "constrain_lags": not constrain_lags,
            "usable": usable[not constrain_lags],
            "status": status[not constrain_lags],
            "fit": clean(fit_block(other, measures[not constrain_lags])),
            "effects": clean(
                effect_rows(
                    other, ws, parameter_rows(other, level), standardized_rows(other, level)
                )
            ),
        }
        out["equal_lags"] = _equal_lag_tests(fits, usable, measures, ws)
    for block, ok in ((out, out["usable"]), (out["other_model"], out["other_model"]["usable"])):
        if not ok:
            _strip_inference(block)
    if not (usable[False] and usable[True]):
        out["equal_lags"]["lrt"] = None
        out["equal_lags"]["lrt_reason"] = "a model of the comparison is not usable (its status)"
    if not usable[False]:
        out["equal_lags"]["wald"] = None
        out["equal_lags"]["wald_reason"] = "the model with free lags is not usable (its status)"
    return out


def _equal_lag_tests(
    fits: dict[bool, FitResult],
    usable: dict[bool, bool],
    measures: dict[bool, dict[str, Any]],
    waves: list[int],
) -> dict[str, Any]:
    """Wald test on the free model and LR test free vs constrained (only usable fits)."""
    constraints = equal_lag_constraints(waves)
    out: dict[str, Any] = {"constraints": constraints, "wald": None, "lrt": None}
    if usable[False] and fits[False].cov is not None:
        out["wald"] = clean(wald_test(fits[False], constraints))
    if usable[False] and usable[True]:
        lrt = lrt_table(
            [fits[False], fits[True]],
            ["free_lags", "equal_lags"],
            [measures[False], measures[True]],
        )
        out["lrt"] = clean(lrt)
    return out


def _strip_inference(block: dict[str, Any]) -> None:
    """An unusable fit: no fit indices and no tests or intervals on its effects."""
    block["fit"] = {}
    if "fit_all" in block:
        block["fit_all"] = {}
    for effect in block["effects"].values():
        for row in effect["waves"]:
            for key in ("se", "z", "pvalue", "ci.lower", "ci.upper"):
                row[key] = None
            for key in ("std.se", "std.ci.lower", "std.ci.upper"):
                row[key] = None
