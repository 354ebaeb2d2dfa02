"""Validity and reliability of a fitted model, whatever the estimator.

Reliability (omega, alpha, AVE; for ordered items semTools' categorical omega), HTMT, factor
and residual correlations, and the admissibility status of a solution (convergence, Heywood
cases, standardized loadings above 1, a latent covariance matrix that is not positive
definite, no standard errors, a model that is not identified).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from alliance.sem.estimate import FitResult, not_identified
from alliance.sem.model import ModelSpec
from alliance.sem.polychoric import bivariate_normal_cdf
from alliance.sem.standardize import standardized_rows

#: Machine epsilon (lavaan's ``.Machine$double.eps``).
EPS = float(np.finfo(float).eps)

__all__ = [
    "admissibility",
    "factor_correlations",
    "htmt",
    "htmt_block",
    "mark_not_identified",
    "not_identified",
    "omega_categorical",
    "reliability",
    "residual_correlations",
]

RELIABILITY_NOTE = (
    "omega = (sum lambda)^2 psi / model-implied variance of the factor's sum score "
    "(= (sum lambda)^2 / ((sum lambda)^2 + sum theta) for simple structure; semTools "
    "compRelSEM(obs.var=FALSE)); omega_obs_var divides by the observed variance of the sum "
    "score (compRelSEM default); alpha = Cronbach's alpha from the (saturated) sample "
    "covariance matrix; avevar = sum lambda^2 psi / sum of model-implied item variances."
)


RELIABILITY_NOTE_ORDERED = (
    "Ordered items (semTools 0.5-6 reliability() for categorical indicators): omega = "
    "Green & Yang (2009) categorical omega, the reliability of the sum of the observed item "
    "scores computed from the thresholds, with the model-implied item correlations as the "
    "total (= semTools omega = omega2, compRelSEM(ord.scale = TRUE)); omega2 the same with "
    "the fitted latent-response correlation matrix as total; omega_obs_var the same with the "
    "sample polychoric matrix as total (= semTools omega3); omega_latent = (sum lambda)^2 psi "
    "/ ((sum lambda)^2 psi + sum theta) on the latent-response (y*) scale, not the scale of the "
    "item scores; alpha = Cronbach's alpha of the raw item scores treated as numeric (complete "
    "cases of the factor's items; semTools gives NA with missing answers); alpha_ordinal = "
    "Zumbo et al. (2007) ordinal alpha from the sample polychoric correlations (semTools "
    "alpha.ord); avevar = sum lambda^2 psi / sum of latent-response variances (AVE on the "
    "polychoric scale)."
)


def _group_reliability(spec: ModelSpec, x: np.ndarray, group: int, cov: np.ndarray) -> dict:
    mt = spec.matrices(x, group)
    ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
    c = mt.lambda_ @ ib
    a = ib @ mt.psi @ ib.T
    sigma = c @ mt.psi @ c.T + mt.theta
    out: dict[str, dict[str, float]] = {
        k: {} for k in ("omega", "omega_obs_var", "alpha", "avevar")
    }
    for f in spec.first_order():
        items = spec.indicators(f)
        idx = [spec.ov.index(v) for v in items]
        j = spec.lv.index(f)
        lam = mt.lambda_[idx, j]
        common = lam.sum() ** 2 * a[j, j]
        implied_total = sigma[np.ix_(idx, idx)].sum()
        observed_total = cov[np.ix_(idx, idx)].sum()
        out["omega"][f] = float(common / implied_total)
        out["omega_obs_var"][f] = float(common / observed_total)
        k = len(idx)
        if k >= 2:
            out["alpha"][f] = float(
                k / (k - 1) * (1 - np.trace(cov[np.ix_(idx, idx)]) / observed_total)
            )
        else:
            out["alpha"][f] = float("nan")
        out["avevar"][f] = float(np.sum(lam**2) * a[j, j] / np.trace(sigma[np.ix_(idx, idx)]))
    return out


def _alpha(cov: np.ndarray) -> float:
    """Cronbach's alpha of a covariance (or correlation) matrix (semTools computeAlpha)."""
    k = cov.shape[0]
    if k < 2:
        return float("nan")
    return float(k / (k - 1) * (1.0 - np.trace(cov) / np.sum(cov)))


def omega_categorical(
    truevar: np.ndarray,
    thresholds: Sequence[np.ndarray],
    scales: np.ndarray,
    denom: np.ndarray,
) -> float:
    """Green & Yang (2009) reliability of a sum of ordered item scores (semTools omegaCat).

    Parameters
    ----------
    truevar : numpy.ndarray
        Common-factor part of the latent-response covariance, ``lambda psi lambda'`` (k x k).
    thresholds : sequence of numpy.ndarray
        The items' threshold parameters.
    scales : numpy.ndarray
        The items' scale factors (delta parameterization; 1 in a single group).
    denom : numpy.ndarray
        Total latent-response covariance (k x k); converted to correlations.

    Returns
    -------
    float
        ``sum_jj' sum_cc' [Phi2(t_jc, t_j'c', R_jj') - Phi(t_jc) Phi(t_j'c')]`` over the same
        sum with the correlations of ``denom``, ``R = D truevar D`` and thresholds ``t * D``.

    References
    ----------
    Green, S. B., & Yang, Y. (2009). Reliability of summed item scores using structural
    equation modeling: An alternative to coefficient alpha. Psychometrika, 74(1), 155-167.
    """
    r = truevar * np.outer(scales, scales)
    with np.errstate(invalid="ignore"):  # a Heywood case: nan, reported as unavailable
        sd = np.sqrt(np.diag(denom))
    den = denom / np.outer(sd, sd)
    ts = [np.asarray(t, dtype=float) * s for t, s in zip(thresholds, scales, strict=True)]
    # all (item, threshold) x (item, threshold) cells at once
    tt = np.concatenate(ts)
    item = np.repeat(np.arange(len(ts)), [len(t) for t in ts])
    a, b = np.meshgrid(tt, tt, indexing="ij")
    pairs = np.ix_(item, item)
    prod = float(np.sum(special.ndtr(tt)) ** 2)
    num = float(np.sum(bivariate_normal_cdf(a, b, np.clip(r[pairs], -1, 1)))) - prod
    tot = float(np.sum(bivariate_normal_cdf(a, b, np.clip(den[pairs], -1, 1)))) - prod
    return num / tot


def _ordered_reliability(result: FitResult, g: int) -> dict[str, dict]:
    spec = result.spec
    group = result.sample.groups[g - 1]
    mt = spec.matrices(result.x, g)
    ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
    a = ib @ mt.psi @ ib.T
    lam_all = mt.lambda_ @ ib
    truevar = lam_all @ mt.psi @ lam_all.T
    sigma_hat = spec.implied(result.x, g)[0].sigma
    names = ("omega", "omega2", "omega_obs_var", "omega_latent", "alpha", "alpha_ordinal")
    out: dict[str, dict[str, float]] = {k: {} for k in (*names, "avevar")}
    for f in spec.first_order():
        items = spec.indicators(f)
        idx = [spec.ov.index(v) for v in items]
        ix = np.ix_(idx, idx)
        j = spec.lv.index(f)
        lam = mt.lambda_[:, j]
        fac = np.outer(lam, lam) * a[j, j]
        ths = [
            np.array([mt.tau[t] for t, (v, _) in enumerate(spec.threshold_index) if v == item])
            for item in items
        ]
        scales = mt.delta[idx]
        theta = mt.theta[ix]
        try:
            out["omega"][f] = omega_categorical(fac[ix], ths, scales, fac[ix] + theta)
            out["omega2"][f] = omega_categorical(fac[ix], ths, scales, sigma_hat[ix])
            out["omega_obs_var"][f] = omega_categorical(fac[ix], ths, scales, group.cov[ix])
        except (ValueError, FloatingPointError, ZeroDivisionError):
            for k in ("omega", "omega2", "omega_obs_var"):
                out[k][f] = float("nan")
        common = lam[idx].sum() ** 2 * a[j, j]
        out["omega_latent"][f] = float(common / (common + theta.sum()))
        out["alpha_ordinal"][f] = _alpha(group.cov[ix])
        sub = group.X[:, idx]
        sub = sub[~np.isnan(sub).any(axis=1)]
        out["alpha"][f] = _alpha(np.cov(sub, rowvar=False)) if len(sub) > 1 else float("nan")
        trueitem = np.diag(truevar)[idx]
        if np.sum(np.abs(trueitem - np.diag(fac)[idx])) < 1e-5:
            out["avevar"][f] = float(np.sum(trueitem) / np.sum(trueitem + np.diag(theta)))
        else:  # cross-loadings: semTools gives NA
            out["avevar"][f] = float("nan")
    return out


def reliability(result: FitResult) -> dict[str, Any]:
    """Reliability per first-order factor, layout as the reference files.

    Continuous items: ``omega``, ``omega_obs_var``, ``alpha`` and ``avevar`` (AVE); ordered
    items (semTools 0.5-6 ``reliability()`` for categorical indicators): ``omega``
    (categorical, Green & Yang 2009), ``omega2``, ``omega_obs_var``, ``omega_latent``,
    ``alpha`` (raw scores), ``alpha_ordinal``, ``avevar``. Each is ``{factor: value}`` for one
    group and a list of ``{"group": label, factor: value}`` rows for several groups; plus
    ``reliability_note``.

    References
    ----------
    McDonald, R. P. (1999). Test theory: A unified treatment. Erlbaum.
    Fornell, C., & Larcker, D. F. (1981). Evaluating structural equation models with
    unobservable variables and measurement error. Journal of Marketing Research, 18(1),
    39-50.
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests.
    Psychometrika, 16(3), 297-334.
    Green, S. B., & Yang, Y. (2009). Reliability of summed item scores using structural
    equation modeling: An alternative to coefficient alpha. Psychometrika, 74(1), 155-167.
    Zumbo, B. D., Gadermann, A. M., & Zeisser, C. (2007). Ordinal versions of coefficients
    alpha and theta for Likert rating scales. Journal of Modern Applied Statistical
    Methods, 6(1), 21-29.
    """
    spec = result.spec
    if result.categorical:
        per = [_ordered_reliability(result, g + 1) for g in range(spec.ngroups)]
        note = RELIABILITY_NOTE_ORDERED
    else:
        per = [
            _group_reliability(spec, result.x, g + 1, result.sample.groups[g].cov)
            for g in range(spec.ngroups)
        ]
        note = RELIABILITY_NOTE
    out: dict[str, Any] = {}
    if spec.ngroups == 1:
        out.update(per[0])
    else:
        for key in per[0]:
            out[key] = [{"group": lab, **per[g][key]} for g, lab in enumerate(spec.group_labels)]
    out["reliability_note"] = note
    return out


def htmt(
    cov: np.ndarray, ov: list[str], factors: dict[str, list[str]], htmt2: bool = True
) -> dict[str, dict]:
    """Heterotrait-monotrait ratio of correlations (Henseler, Ringle & Sarstedt 2015).

    ``HTMT_ij`` = mean absolute correlation between the items of factors i and j divided by
    the geometric mean of the average absolute within-factor correlations. With ``htmt2``
    (the default, as ``semTools::htmt`` 0.5-6) all the means are geometric means (HTMT2,
    Roemer, Schuberth & Henseler 2021); otherwise arithmetic. Factors with one item give nan.

    References
    ----------
    Henseler, J., Ringle, C. M., & Sarstedt, M. (2015). A new criterion for assessing
    discriminant validity in variance-based structural equation modeling. Journal of the
    Academy of Marketing Science, 43(1), 115-135.
    Roemer, E., Schuberth, F., & Henseler, J. (2021). HTMT2 - an improved criterion for
    assessing discriminant validity in structural equation modeling. Industrial Management
    & Data Systems, 121(12), 2637-2650.
    """
    sd = np.sqrt(np.diag(cov))
    r = np.abs(cov / np.outer(sd, sd))

    def mean(values: np.ndarray) -> float:
        if values.size == 0:
            return float("nan")
        return float(np.exp(np.mean(np.log(values)))) if htmt2 else float(np.mean(values))

    names = list(factors)
    idx = {f: [ov.index(v) for v in factors[f]] for f in names}
    mono = {}
    for f in names:
        sub = r[np.ix_(idx[f], idx[f])]
        mono[f] = mean(sub[np.triu_indices(len(idx[f]), 1)])
    out: dict[str, dict] = {f: {} for f in names}
    for f1 in names:
        for f2 in names:
            if f1 == f2:
                out[f1][f2] = 1.0
                continue
            hetero = mean(r[np.ix_(idx[f1], idx[f2])].ravel())
            out[f1][f2] = float(hetero / np.sqrt(mono[f1] * mono[f2]))
    return out


def htmt_block(result: FitResult) -> dict[str, Any] | list[dict[str, Any]]:
    """HTMT2 of the first-order factors from the sample (polychoric) correlations, per group."""
    spec = result.spec
    fo = {f: spec.indicators(f) for f in spec.first_order()}
    per = [htmt(g.cov, spec.ov, fo) for g in result.sample.groups]
    if spec.ngroups == 1:
        return per[0]
    return [{"group": lab, **h} for lab, h in zip(spec.group_labels, per, strict=True)]


def factor_correlations(result: FitResult, std_rows: list[dict] | None = None) -> list[dict]:
    """Correlations between latent variables (std.all of ``~~`` rows) with SEs and 95% CIs."""
    spec = result.spec
    rows = std_rows if std_rows is not None else standardized_rows(result)
    out = []
    for r, s in zip(spec.table, rows[: len(spec.table)], strict=True):
        if r.op == "~~" and r.lhs != r.rhs and r.lhs in spec.lv and r.rhs in spec.lv:
            item = {
                "lhs": r.lhs,
                "rhs": r.rhs,
                "r": s["est.std"],
                "se": s["se"],
                "ci.lower": s["ci.lower"],
                "ci.upper": s["ci.upper"],
            }
            if spec.ngroups > 1:
                item["group"] = r.group
            out.append(item)
    return out


def residual_correlations(result: FitResult) -> list[dict[str, Any]]:
    """Observed minus implied correlations per group (lavaan ``residuals(type = "cor")``).

    Returns one ``{"group": label, "variables": [...], "matrix": [[...]]}`` per group; under
    FIML the observed moments are the EM estimates; for ordered items the observed are the
    polychoric correlations, and ``thresholds`` holds the sample minus the implied
    (standardized) thresholds (lavaan's ``$th``).
    """
    out = []
    spec = result.spec
    for g, imp, lab in zip(
        result.sample.groups, spec.implied(result.x), spec.group_labels, strict=True
    ):
        sd = np.sqrt(np.diag(g.cov))
        sdi = np.sqrt(np.abs(np.diag(imp.sigma)))
        res = g.cov / np.outer(sd, sd) - imp.sigma / np.outer(sdi, sdi)
        item: dict[str, Any] = {
            "group": lab,
            "variables": list(spec.ov),
            "matrix": [[float(v) for v in row] for row in res],
        }
        if g.ordinal is not None:
            st = g.ordinal
            item["thresholds"] = {
                n: float(v) for n, v in zip(st.th_names, st.th_vector - imp.tau, strict=True)
            }
        out.append(item)
    return out


def admissibility(result: FitResult, std_rows: list[dict] | None = None) -> dict[str, Any]:
    """Admissibility of a solution; never raises.

    Checks: convergence; negative (residual) variances (Heywood cases); standardized
    loadings above 1 in absolute value; a latent covariance matrix that is not positive
    definite; a singular information matrix (no standard errors); plus any warning raised
    on the way. ``admissible`` is true only when all checks pass.

    References
    ----------
    Kolenikov, S., & Bollen, K. A. (2012). Testing negative error variances: Is a Heywood
    case a symptom of misspecification? Sociological Methods & Research, 41(1), 124-167.
    """
    issues: list[str] = []
    out: dict[str, Any] = {"converged": bool(result.converged)}
    try:
        spec = result.spec.with_values(result.x)
        neg = [
            f"{r.lhs}~~{r.rhs}" + (f" (group {r.group})" if spec.ngroups > 1 else "")
            for r in spec.table
            if r.op == "~~" and r.lhs == r.rhs and r.value < 0
        ]
        out["negative_variances"] = neg
        rows = std_rows if std_rows is not None else standardized_rows(result)
        big = [
            f"{r['lhs']}=~{r['rhs']}"
            for r in rows
            if r["op"] == "=~" and r["est.std"] is not None and abs(r["est.std"]) > 1
        ]
        out["std_loadings_above_1"] = big
        not_pd = []
        for g in range(1, spec.ngroups + 1):
            mt = result.spec.matrices(result.x, g)
            if spec.m:
                ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
                a = ib @ mt.psi @ ib.T
                # lavaan's lav_object_post_check: an eigenvalue below -eps^(3/4) (a latent
                # variable fixed to variance 0, e.g. a fixed trend, is not a problem)
                if np.min(np.linalg.eigvalsh(0.5 * (a + a.T))) < -(EPS**0.75):
                    not_pd.append(spec.group_labels[g - 1])
        out["lv_cov_not_pd"] = not_pd
        out["se_available"] = result.cov is not None
        if not result.converged:
            issues.append("did not converge")
        if neg:
            issues.append(f"negative variances (Heywood case): {', '.join(neg)}")
        if big:
            issues.append(f"standardized loadings above 1: {', '.join(big)}")
        if not_pd:
            issues.append(f"latent covariance matrix not positive definite in {not_pd}")
        if result.cov is None and not result.not_identified:
            issues.append("standard errors unavailable (singular information matrix)")
    except Exception as err:  # noqa: BLE001 - the status must never raise
        issues.append(f"admissibility checks failed: {err}")
    out["warnings"] = list(result.warnings)
    out["issues"] = issues
    out["admissible"] = not issues
    return out


def mark_not_identified(status: dict[str, Any], issue: str) -> dict[str, Any]:
    """Put ``issue`` first in an :func:`admissibility` status; not identified, inadmissible."""
    status["issues"].insert(0, issue)
    status["admissible"] = False
    status["identified"] = False
    status["se_available"] = False
    return status
