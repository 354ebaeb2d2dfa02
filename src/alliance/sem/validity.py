"""Reliability (omega, alpha), AVE, HTMT, factor correlations, residuals, MIs and admissibility."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from alliance.sem.estimate import FitResult, model_expected_information, standardized_rows
from alliance.sem.model import ModelSpec, Par

__all__ = [
    "admissibility",
    "factor_correlations",
    "htmt",
    "mark_not_identified",
    "modification_indices",
    "not_identified",
    "reliability",
    "residual_correlations",
    "score_tests",
]

RELIABILITY_NOTE = (
    "omega = (sum lambda)^2 psi / model-implied variance of the factor's sum score "
    "(= (sum lambda)^2 / ((sum lambda)^2 + sum theta) for simple structure; semTools "
    "compRelSEM(obs.var=FALSE)); omega_obs_var divides by the observed variance of the sum "
    "score (compRelSEM default); alpha = Cronbach's alpha from the (saturated) sample "
    "covariance matrix; avevar = sum lambda^2 psi / sum of model-implied item variances."
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


def reliability(result: FitResult) -> dict[str, Any]:
    """Reliability per first-order factor: omega, omega_obs_var, alpha and AVE (avevar).

    Layout as the reference files: ``{"omega": {factor: value}, ...}`` for one group and a
    list of ``{"group": label, factor: value}`` rows per measure for several groups.

    References
    ----------
    McDonald, R. P. (1999). Test theory: A unified treatment. Erlbaum.
    Fornell, C., & Larcker, D. F. (1981). Evaluating structural equation models with
    unobservable variables and measurement error. Journal of Marketing Research, 18(1),
    39-50.
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests.
    Psychometrika, 16(3), 297-334.
    """
    spec = result.spec
    per = [
        _group_reliability(spec, result.x, g + 1, result.sample.groups[g].cov)
        for g in range(spec.ngroups)
    ]
    out: dict[str, Any] = {}
    if spec.ngroups == 1:
        out.update(per[0])
    else:
        for key in ("omega", "omega_obs_var", "alpha", "avevar"):
            out[key] = [{"group": lab, **per[g][key]} for g, lab in enumerate(spec.group_labels)]
    out["reliability_note"] = RELIABILITY_NOTE
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


def factor_correlations(result: FitResult, std_rows: list[dict] | None = None) -> list[dict]:
    """Correlations between latent variables (std.all of ``~~`` rows) with SEs and 95% CIs."""
    spec = result.spec
    rows = std_rows if std_rows is not None else standardized_rows(result)
    out = []
    for r, s in zip(spec.table, rows, strict=True):
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
    FIML the observed moments are the EM estimates.
    """
    out = []
    for g, imp, lab in zip(
        result.sample.groups, result.spec.implied(result.x), result.spec.group_labels, strict=True
    ):
        sd = np.sqrt(np.diag(g.cov))
        sdi = np.sqrt(np.abs(np.diag(imp.sigma)))
        res = g.cov / np.outer(sd, sd) - imp.sigma / np.outer(sdi, sdi)
        out.append(
            {
                "group": lab,
                "variables": list(result.spec.ov),
                "matrix": [[float(v) for v in row] for row in res],
            }
        )
    return out


def _candidates(spec: ModelSpec) -> list[Par]:
    """Parameters lavaan's ``modindices`` considers: fixed rows and absent loadings/covariances."""
    cands: list[Par] = []
    for g in range(1, spec.ngroups + 1):
        have = {(r.lhs, r.op, r.rhs) for r in spec.rows(g)}
        have |= {(r.rhs, r.op, r.lhs) for r in spec.rows(g) if r.op == "~~"}
        first_order = spec.first_order()
        for f in spec.lv:
            for v in spec.ov:
                if (f, "=~", v) not in have and f in first_order:
                    cands.append(Par(0, f, "=~", v, g, 0, 0.0, mat="lambda",
                                     row=spec.ov.index(v), col=spec.lv.index(f)))  # fmt: skip
        for i, v in enumerate(spec.ov):
            for w in spec.ov[i + 1 :]:
                if (v, "~~", w) not in have:
                    r, c = sorted((spec.ov.index(v), spec.ov.index(w)), reverse=True)
                    cands.append(Par(0, v, "~~", w, g, 0, 0.0, mat="theta", row=r, col=c))
        for r in spec.rows(g):
            # fixed, non-identifying rows: zero covariances between factors (e.g. bifactor)
            if (
                not r.free
                and r.op == "~~"
                and r.lhs != r.rhs
                and r.lhs in spec.lv
                and not r.computed
            ):
                cands.append(Par(0, r.lhs, "~~", r.rhs, g, 0, r.value, mat="psi",
                                 row=r.row, col=r.col))  # fmt: skip
    return cands


def modification_indices(result: FitResult, top: int | None = 10) -> list[dict[str, Any]]:
    """Score tests (modification indices) for fixed parameters, largest first.

    For each candidate parameter ``j`` added to the model at value 0 (or its fixed value):
    ``mi = N g_j^2 / V_j`` with ``g_j`` the derivative of lavaan's ``fmin`` by the parameter
    and ``V_j = I_jj - I_jF I_FF^-1 I_Fj`` from the expected information of the extended
    model; ``epc = -g_j / V_j`` (the expected parameter change) and ``sepc.all`` its
    standardized value. Candidates: cross-loadings, residual covariances and fixed
    factor covariances (as lavaan's ``modindices``, without equality constraints). For
    models with equality constraints, see :func:`alliance.sem.invariance.release_tests`.

    References
    ----------
    Sorbom, D. (1989). Model modification. Psychometrika, 54(3), 371-384.
    Saris, W. E., Satorra, A., & Sorbom, D. (1987). The detection and correction of
    specification errors in structural equation models. Sociological Methodology, 17,
    105-129.
    """
    spec = result.spec
    cands = _candidates(spec)
    if not cands or result.vcov is None:
        return []
    ext = spec.copy()
    q = spec.npar
    for k, c in enumerate(cands):
        c.free = q + k + 1
        c.id = len(ext.table) + 1
        ext.table.append(c)
    ext.invalidate()
    x_ext = np.concatenate([result.x, np.array([c.value for c in cands])])
    rows = score_tests(result, ext, x_ext, cands)
    rows = [r for r in rows if r["mi"] is not None and np.isfinite(r["mi"])]
    rows.sort(key=lambda r: -r["mi"])
    return rows[:top] if top else rows


def score_tests(
    result: FitResult, ext: ModelSpec, x_ext: np.ndarray, cands: list[Par]
) -> list[dict[str, Any]]:
    """Univariate score tests for the parameters ``x_ext[q:]`` of an extended model.

    ``ext`` is the fitted model with the candidates appended as free parameters
    ``q+1, ..., q+k`` (in the order of ``cands``); ``x_ext`` holds the estimates followed by
    the candidates' current values. Returns one row per candidate with ``mi``, ``epc``,
    ``sepc.all`` and the chi-square(1) ``pvalue``.
    """
    spec = result.spec
    q = spec.npar
    grad = _fmin_gradient(ext, x_ext, result)
    info = model_expected_information(ext, x_ext, result.sample)
    i_ff = info[:q, :q]
    i_fe = info[:q, q:]
    try:
        v = np.diag(info[q:, q:]) - np.einsum("ij,ij->j", i_fe, np.linalg.solve(i_ff, i_fe))
    except np.linalg.LinAlgError:
        return []
    n = result.ntotal
    g = grad[q:]
    ok = v > 1e-10 * np.maximum(1.0, np.abs(np.diag(info[q:, q:])))
    safe_v = np.where(ok, v, 1.0)
    mi = np.where(ok, n * g**2 / safe_v, np.nan)
    epc = np.where(ok, -g / safe_v, np.nan)
    sds = {}
    for gi in range(1, spec.ngroups + 1):
        mt = spec.matrices(result.x, gi)
        ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
        a = ib @ mt.psi @ ib.T
        c = mt.lambda_ @ ib
        sig = c @ mt.psi @ c.T + mt.theta
        sds[gi] = (np.sqrt(np.abs(np.diag(a))), np.sqrt(np.abs(np.diag(sig))), mt)
    rows = []
    for k, c in enumerate(cands):
        sd_lv, sd_ov, mt = sds[c.group]
        if c.mat == "lambda":
            scale = sd_lv[c.col] / sd_ov[c.row]
        elif c.mat == "theta" and c.row != c.col:
            t1, t2 = mt.theta[c.row, c.row], mt.theta[c.col, c.col]
            scale = 1 / np.sqrt(t1 * t2) if t1 > 0 and t2 > 0 else np.nan
        elif c.mat == "theta":
            scale = 1 / sd_ov[c.row] ** 2
        elif c.mat == "psi":
            scale = 1 / (sd_lv[c.row] * sd_lv[c.col])
        elif c.mat == "nu":
            scale = 1 / sd_ov[c.row]
        elif c.mat == "alpha":
            scale = 1 / sd_lv[c.row]
        else:
            scale = np.nan
        row = {
            "lhs": c.lhs,
            "op": c.op,
            "rhs": c.rhs,
            "mi": float(mi[k]),
            "epc": float(epc[k]),
            "sepc.all": float(epc[k] * scale),
            "pvalue": float(special.chdtrc(1, mi[k])) if np.isfinite(mi[k]) else None,
        }
        if spec.ngroups > 1:
            row["group"] = c.group
        rows.append(row)
    return rows


def _fmin_gradient(spec: ModelSpec, x: np.ndarray, result: FitResult) -> np.ndarray:
    """Gradient of lavaan's ``fmin`` (``-logl/N`` up to a constant) by ``x``."""
    if result.missing == "fiml":
        from alliance.sem.fiml import FIMLObjective

        return 0.5 * FIMLObjective(spec, result.sample)(x)[1]
    from alliance.sem.estimate import MLObjective

    return 0.5 * MLObjective(spec, result.sample)(x)[1]


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
                if np.min(np.linalg.eigvalsh(0.5 * (a + a.T))) <= 0:
                    not_pd.append(spec.group_labels[g - 1])
        out["lv_cov_not_pd"] = not_pd
        out["se_available"] = result.vcov is not None
        if not result.converged:
            issues.append("did not converge")
        if neg:
            issues.append(f"negative variances (Heywood case): {', '.join(neg)}")
        if big:
            issues.append(f"standardized loadings above 1: {', '.join(big)}")
        if not_pd:
            issues.append(f"latent covariance matrix not positive definite in {not_pd}")
        if result.vcov is None:
            issues.append("standard errors unavailable (singular information matrix)")
    except Exception as err:  # noqa: BLE001 - the status must never raise
        issues.append(f"admissibility checks failed: {err}")
    out["warnings"] = list(result.warnings)
    out["issues"] = issues
    out["admissible"] = not issues
    return out


def not_identified(npar: int, df: float) -> str:
    """The status issue of a model with more free parameters than sample statistics.

    With ``df < 0`` the parameters cannot all be determined from the data: the estimates are
    one of many solutions, without standard errors, test or fit indices (lavaan fits such a
    model and warns that the information matrix cannot be inverted).
    """
    return (
        f"not identified: {npar} free parameters for {npar + df:g} sample statistics "
        f"(df = {df:g}); no fit indices"
    )


def mark_not_identified(status: dict[str, Any], issue: str) -> dict[str, Any]:
    """Put ``issue`` first in an :func:`admissibility` status; not identified, inadmissible."""
    status["issues"].insert(0, issue)
    status["admissible"] = False
    status["identified"] = False
    return status


def score_rows(
    spec: ModelSpec,
    x: np.ndarray,
    cands: list[Par],
    grad: np.ndarray,
    info: np.ndarray,
    n: int,
) -> list[dict[str, Any]]:
    """Univariate score tests from a gradient and an information matrix (any estimator).

    The estimator-free core of :func:`score_tests`: ``grad`` and ``info`` belong to the
    extended model whose last ``len(cands)`` free parameters are the candidates (the first
    ``spec.npar`` are the fitted model's, at ``x``). ``mi = n g_j^2 / V_j`` with
    ``V_j = I_jj - I_jF I_FF^-1 I_Fj``; ``epc = -g_j / V_j``; ``sepc.all`` scales the EPC by
    the model-implied standard deviations (latent-response ones for ordered items). Used by
    :mod:`alliance.sem.wlsmv` with the DWLS gradient and information.
    """
    q = spec.npar
    i_ff = info[:q, :q]
    i_fe = info[:q, q:]
    try:
        v = np.diag(info[q:, q:]) - np.einsum("ij,ij->j", i_fe, np.linalg.solve(i_ff, i_fe))
    except np.linalg.LinAlgError:
        return []
    g = grad[q:]
    # lavaan: V below .Machine$double.eps^(1/3) gives NA
    ok = v > np.finfo(float).eps ** (1 / 3)
    safe_v = np.where(ok, v, 1.0)
    mi = np.where(ok, n * g**2 / safe_v, np.nan)
    epc = np.where(ok, -g / safe_v, np.nan)
    sds = {}
    for gi in range(1, spec.ngroups + 1):
        mt = spec.matrices(x, gi)
        ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
        a = ib @ mt.psi @ ib.T
        c = mt.lambda_ @ ib
        sig = c @ mt.psi @ c.T + mt.theta
        sds[gi] = (np.sqrt(np.abs(np.diag(a))), np.sqrt(np.abs(np.diag(sig))), mt)
    rows = []
    for k, c in enumerate(cands):
        sd_lv, sd_ov, mt = sds[c.group]
        if c.mat == "lambda":
            scale = sd_lv[c.col] / sd_ov[c.row]
        elif c.mat == "theta" and c.row != c.col:
            t1, t2 = mt.theta[c.row, c.row], mt.theta[c.col, c.col]
            scale = 1 / np.sqrt(t1 * t2) if t1 > 0 and t2 > 0 else np.nan
        elif c.mat == "psi" and c.row != c.col:
            scale = 1 / (sd_lv[c.row] * sd_lv[c.col])
        else:
            scale = np.nan
        row = {
            "lhs": c.lhs,
            "op": c.op,
            "rhs": c.rhs,
            "mi": float(mi[k]),
            "epc": float(epc[k]),
            "sepc.all": float(epc[k] * scale),
            "pvalue": float(special.chdtrc(1, mi[k])) if np.isfinite(mi[k]) else None,
        }
        if spec.ngroups > 1:
            row["group"] = c.group
        rows.append(row)
    return rows
