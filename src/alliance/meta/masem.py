"""Meta-analytic structural equation modelling: Cheung's two-stage SEM (TSSEM) on item correlations.

Stage 1 pools the item correlation matrices of several samples into one matrix with its
asymptotic covariance:

* **fixed effects** (:func:`pool_fixed`): the multi-group model ``Sigma_g = D_g P D_g`` with one
  correlation matrix ``P`` for every sample and free standard deviations ``D_g`` per sample,
  fitted by maximum likelihood (metaSEM's ``tssem1FEM``; Cheung & Chan 2005). Its
  likelihood-ratio chi-square tests the homogeneity of the correlation matrices; the inverse
  expected information gives the asymptotic covariance of the pooled correlations. A variable
  a sample did not measure is left out of that sample's model (its row and column are NaN).
* **random effects** (:func:`pool_random`): the multivariate random-effects meta-analysis of
  the correlation vectors ``r_g ~ N(rho, V_g + T)`` with known sampling covariances ``V_g``
  (normal theory, from the sample-size weighted mean correlation matrix: metaSEM's
  ``acov = "weighted"``) and a diagonal ``T`` (one heterogeneity variance ``tau^2`` per
  correlation: metaSEM's ``RE.type = "Diag"``), by maximum likelihood (metaSEM's
  ``tssem1REM``); missing correlations are left out of a sample's vector.

Stage 2 (:func:`fit_stage2`) fits each competing model to the pooled matrix by WLS with the
inverse of its asymptotic covariance (:func:`alliance.sem.wls.fit_correlation_structure`):
standardized loadings, factor correlations, the chi-square test, CFI, TLI, RMSEA, SRMR and
metaSEM's information criteria, and chi-square difference tests of the nested pairs
(:func:`compare_stage2`). :func:`masem` runs both stages for both pooling models.

References
----------
Cheung, M. W.-L., & Chan, W. (2005). Meta-analytic structural equation modeling: A two-stage
approach. Psychological Methods, 10(1), 40-64.
Cheung, M. W.-L. (2015). Meta-analysis: A structural equation modeling approach. Wiley.
Olkin, I., & Siotani, M. (1976). Asymptotic distribution of functions of a correlation matrix.
In S. Ikeda (Ed.), Essays in probability and statistics (pp. 235-251). Shinko Tsusho.
Steiger, J. H. (1998). A note on multiple sample extensions of the RMSEA fit index. Structural
Equation Modeling, 5(4), 411-419.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.sem.fitmeasures import cfi, rmsea, rmsea_ci, tli
from alliance.sem.samplestats import lower_pairs
from alliance.sem.teststats import chisq_pvalue

__all__ = [
    "ACOV_METHODS",
    "METHODS",
    "acov_correlations",
    "compare_stage2",
    "correlation_matrix",
    "fit_stage2",
    "masem",
    "pair_labels",
    "pool_fixed",
    "pool_random",
    "unvechs",
    "vechs",
]

#: Stage-1 pooling models.
METHODS = ("fixed", "random")
#: Which correlation matrix the sampling covariances ``V_g`` of the random-effects model are
#: computed from: each sample's own (``individual``) or the mean matrix, unweighted or weighted
#: by sample size (metaSEM's ``acov``; ``weighted`` is Cheung's recommendation, less biased
#: than ``individual``: Hafdahl 2007).
ACOV_METHODS = ("weighted", "unweighted", "individual")

_TOL = 1e-10


# --------------------------------------------------------------------------- matrices


def vechs(matrix: np.ndarray) -> np.ndarray:
    """The elements below the diagonal, column by column (lavaan's and metaSEM's ``vechs``)."""
    m = np.asarray(matrix, dtype=float)
    pairs = lower_pairs(m.shape[0], diagonal=False)
    return m[pairs[:, 0], pairs[:, 1]]


def unvechs(values: np.ndarray, p: int) -> np.ndarray:
    """The symmetric ``p x p`` matrix with unit diagonal whose :func:`vechs` is ``values``."""
    pairs = lower_pairs(p, diagonal=False)
    values = np.asarray(values, dtype=float)
    if values.shape != (len(pairs),):
        raise ValueError(f"{p} variables have {len(pairs)} correlations, got {values.shape}")
    out = np.eye(p)
    out[pairs[:, 0], pairs[:, 1]] = values
    out[pairs[:, 1], pairs[:, 0]] = values
    return out


def pair_labels(variables: Sequence[str]) -> list[str]:
    """``"b~~a"`` labels of the correlations in :func:`vechs` order."""
    return [f"{variables[i]}~~{variables[j]}" for i, j in lower_pairs(len(variables), False)]


def correlation_matrix(data: pd.DataFrame, variables: Sequence[str]) -> tuple[np.ndarray, int]:
    """The Pearson correlation matrix of ``variables`` over the complete rows, and their number.

    Listwise deletion: every correlation of the matrix comes from the same respondents, as the
    stage-1 models assume (a matrix with pairwise-deleted elements has no single sample size).

    Raises
    ------
    ValueError
        For a variable not in the data or not numeric, fewer complete rows than variables
        plus one, or a variable without variance.
    """
    absent = [v for v in variables if v not in data.columns]
    if absent:
        raise ValueError(f"variables not in the data: {absent}")
    try:
        x = data[list(variables)].apply(pd.to_numeric, errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as err:
        raise ValueError(f"the variables must be numeric: {err}") from err
    x = x[np.all(np.isfinite(x), axis=1)]
    if x.shape[0] <= len(variables):
        raise ValueError(
            f"{x.shape[0]} complete rows for {len(variables)} variables: a correlation matrix "
            "needs more complete rows than variables"
        )
    sd = x.std(axis=0)
    flat = [v for v, s in zip(variables, sd, strict=True) if not s > 0]
    if flat:
        raise ValueError(f"variables without variance in the complete rows: {flat}")
    return np.corrcoef(x, rowvar=False), int(x.shape[0])


def acov_correlations(cor: np.ndarray, n: float) -> np.ndarray:
    """Normal-theory asymptotic covariance matrix of the correlations of a sample of size ``n``.

    ``n Cov(r_ij, r_kl) = 1/2 r_ij r_kl (r_ik^2 + r_il^2 + r_jk^2 + r_jl^2) + r_ik r_jl +
    r_il r_jk - r_ij r_ik r_il - r_ij r_jk r_jl - r_ik r_jk r_kl - r_il r_jl r_kl``
    (Olkin & Siotani 1976), in :func:`vechs` order, divided by ``n`` (the inverse expected
    information of the correlations under normality, as lavaan's and metaSEM's ``asyCov``).

    Parameters
    ----------
    cor
        A ``p x p`` correlation matrix (the population value the covariance is evaluated at).
    n
        The sample size.
    """
    r = np.asarray(cor, dtype=float)
    if not n > 0:
        raise ValueError(f"n must be positive, got {n!r}")
    pairs = lower_pairs(r.shape[0], diagonal=False)
    i, j = pairs[:, 0][:, None], pairs[:, 1][:, None]
    k, m = pairs[:, 0][None, :], pairs[:, 1][None, :]
    rij, rkl = r[i, j], r[k, m]
    rik, ril, rjk, rjl = r[i, k], r[i, m], r[j, k], r[j, m]
    out = (
        0.5 * rij * rkl * (rik**2 + ril**2 + rjk**2 + rjl**2)
        + rik * rjl
        + ril * rjk
        - rij * rik * ril
        - rij * rjk * rjl
        - rik * rjk * rkl
        - ril * rjl * rkl
    )
    return out / float(n)


def _prepare(
    matrices: Sequence[np.ndarray],
    n: Sequence[int],
    variables: Sequence[str],
    studies: Sequence[str] | None,
    complete: bool,
) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], list[str]]:
    """Check the samples: correlation matrices (NaN where not measured) and sizes.

    A variable a sample did not measure has NaN in its row and column (diagonal included).
    With ``complete`` every correlation among the measured variables must be given (the
    fixed-effects model); otherwise single correlations may be NaN too (a sample that
    reported only some of them: the random-effects model leaves them out).

    Returns the matrices scaled to correlations, the sizes, each sample's measured variables
    and the sample labels.
    """
    p = len(variables)
    if len(set(variables)) != p or p < 2:
        raise ValueError(f"at least two distinct variable names are needed, got {list(variables)}")
    if len(matrices) != len(n):
        raise ValueError(f"one sample size per matrix: {len(matrices)} matrices, {len(n)} sizes")
    if len(matrices) < 2:
        raise ValueError(f"pooling needs at least two correlation matrices, got {len(matrices)}")
    labels = _study_labels(studies, len(matrices))
    out, measured = [], []
    sizes = np.zeros(len(n), dtype=int)
    for lab, mat, size in zip(labels, matrices, n, strict=True):
        m = np.asarray(mat, dtype=float)
        if m.shape != (p, p):
            raise ValueError(f"sample {lab!r}: the matrix must be {p} x {p}, got {m.shape}")
        obs = np.flatnonzero(np.isfinite(np.diag(m)))
        sub = m[np.ix_(obs, obs)]
        given = np.isfinite(sub)
        if len(obs) < 2 or (complete and not given.all()):
            raise ValueError(
                f"sample {lab!r}: the fixed-effects model needs every correlation among the "
                "measured variables (a variable not measured has NaN in its row and column; "
                "single missing correlations need the random-effects model)"
                if complete
                else f"sample {lab!r}: fewer than two measured variables"
            )
        if not (
            np.array_equal(given, given.T) and np.allclose(sub[given], sub.T[given], atol=1e-10)
        ):
            raise ValueError(f"sample {lab!r}: the matrix is not symmetric")
        if np.any(np.diag(sub) <= 0):
            raise ValueError(f"sample {lab!r}: a variance is not positive, got {np.diag(sub)}")
        sd = np.sqrt(np.diag(sub))
        sub = sub / np.outer(sd, sd)
        if np.any(np.abs(sub[given & ~np.eye(len(obs), dtype=bool)]) >= 1):
            raise ValueError(f"sample {lab!r}: a correlation is not between -1 and 1")
        if given.all() and np.min(np.linalg.eigvalsh(sub)) <= 0:
            raise ValueError(f"sample {lab!r}: the matrix is not positive definite")
        if isinstance(size, bool) or not float(size).is_integer() or size <= len(obs):
            raise ValueError(
                f"sample {lab!r}: n must be a whole number above its {len(obs)} variables, "
                f"got {size!r}"
            )
        full = np.full((p, p), np.nan)
        full[np.ix_(obs, obs)] = sub
        out.append(full)
        measured.append(obs)
        sizes[len(measured) - 1] = int(size)
    seen = np.zeros(p * (p - 1) // 2, dtype=bool)
    for m in out:
        seen |= np.isfinite(vechs(m))
    if not seen.all():
        missing = [lab for lab, s in zip(pair_labels(variables), seen, strict=True) if not s]
        raise ValueError(f"no sample gives the correlation of {missing}: cannot pool it")
    return out, sizes, measured, labels


def _json_matrix(m: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if np.isfinite(v) else None for v in row] for row in np.asarray(m)]


# --------------------------------------------------------------------------- stage 1: fixed


def _fem_parts(
    theta: np.ndarray, mats: list[np.ndarray], measured: list[np.ndarray], p: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per sample: Sigma_g, its derivatives (q_g, p_g, p_g), their parameter indices, S_g."""
    pairs = lower_pairs(p, diagonal=False)
    k = len(pairs)
    rho = unvechs(theta[:k], p)
    pos = {(int(a), int(b)): c for c, (a, b) in enumerate(pairs)}
    out, start = [], k
    for obs, mat in zip(measured, mats, strict=True):
        pg = len(obs)
        d = theta[start : start + pg]
        sub = rho[np.ix_(obs, obs)]
        sigma = sub * np.outer(d, d)
        local = lower_pairs(pg, diagonal=False)
        npar = len(local) + pg
        deriv = np.zeros((npar, pg, pg))
        index = np.zeros(npar, dtype=int)
        for c, (a, b) in enumerate(local):
            deriv[c, a, b] = deriv[c, b, a] = d[a] * d[b]
            index[c] = pos[(int(obs[a]), int(obs[b]))]
        for a in range(pg):
            c = len(local) + a
            deriv[c, a, :] += sub[a, :] * d
            deriv[c, :, a] += sub[:, a] * d
            index[c] = start + a
        out.append((sigma, deriv, index, mat[np.ix_(obs, obs)]))
        start += pg
    return out


def _fem_objective(
    theta: np.ndarray,
    mats: list[np.ndarray],
    measured: list[np.ndarray],
    n: np.ndarray,
    p: int,
) -> tuple[float, np.ndarray, np.ndarray]:
    """``f = 1/2 sum_g n_g (log|Sigma_g| + tr(S_g Sigma_g^-1))``, its gradient, expected info."""
    q = len(theta)
    f, grad, info = 0.0, np.zeros(q), np.zeros((q, q))
    for (sigma, deriv, index, s), ng in zip(_fem_parts(theta, mats, measured, p), n, strict=True):
        try:
            chol = np.linalg.cholesky(sigma)
        except np.linalg.LinAlgError:
            return math.inf, grad, info
        si = np.linalg.inv(sigma)
        f += 0.5 * ng * (2.0 * np.log(np.diag(chol)).sum() + np.sum(s * si))
        b = si @ (sigma - s) @ si
        grad[index] += 0.5 * ng * np.einsum("ab,kab->k", b, deriv)
        m = np.einsum("ab,kbc->kac", si, deriv)
        info[np.ix_(index, index)] += 0.5 * ng * np.einsum("kab,lba->kl", m, m)
    return float(f), grad, info


def _fem_fit(
    mats: list[np.ndarray], measured: list[np.ndarray], n: np.ndarray, p: int, max_iter: int
) -> tuple[np.ndarray, np.ndarray, float, bool, int]:
    k = p * (p - 1) // 2
    num, den = np.zeros(k), np.zeros(k)
    for mat, ng in zip(mats, n, strict=True):
        v = vechs(mat)
        ok = np.isfinite(v)
        num[ok] += ng * v[ok]
        den[ok] += ng
    theta = np.concatenate([num / den, np.ones(sum(len(o) for o in measured))])
    f, grad, info = _fem_objective(theta, mats, measured, n, p)
    if not math.isfinite(f):  # the weighted mean matrix is not positive definite
        theta[:k] = 0.0
        f, grad, info = _fem_objective(theta, mats, measured, n, p)
    converged, iterations = False, 0
    while iterations < max_iter:
        iterations += 1
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-8:
            new = theta - t * step
            f_new, g_new, i_new = _fem_objective(new, mats, measured, n, p)
            if math.isfinite(f_new) and f_new <= f + 1e-12 * max(1.0, abs(f)):
                break
            t /= 2
        else:
            break
        theta, f, grad, info = new, f_new, g_new, i_new
        if np.max(np.abs(t * step)) < _TOL or np.max(np.abs(grad)) < 1e-9:
            converged = bool(np.max(np.abs(grad)) < 1e-6)
            break
    return theta, info, f, converged, iterations


def pool_fixed(
    matrices: Sequence[np.ndarray],
    n: Sequence[int],
    variables: Sequence[str],
    studies: Sequence[str] | None = None,
    max_iter: int = 200,
) -> dict[str, Any]:
    """Stage 1, fixed effects: one correlation matrix for every sample (metaSEM ``tssem1FEM``).

    The multi-group model ``Sigma_g = D_g P D_g`` (equal correlations ``P``, free standard
    deviations ``D_g`` per sample) is fitted by maximum likelihood with lavaan's normal
    likelihood (``sum_g n_g F_ML,g``; lavaan's multi-group model with the correlations held
    equal gives the same estimates, standard errors and chi-square). Fisher scoring with step
    halving, from the sample-size weighted mean correlations.

    Parameters
    ----------
    matrices
        One ``p x p`` correlation (or covariance) matrix per sample, rows in ``variables``
        order; a variable a sample did not measure has NaN in its row and column.
    n
        Sample sizes.
    variables
        Variable names.
    studies
        Sample labels (default ``"1"``, ``"2"``, ...).
    max_iter
        Iteration limit.

    Returns
    -------
    dict
        ``method``, ``status`` (``"ok"`` or ``"not converged"``), ``converged``,
        ``iterations``, ``variables``, ``pooled`` (matrix), ``se`` (matrix of standard errors,
        NaN as None), ``acov`` (asymptotic covariance of the pooled correlations in
        :func:`vechs` order), ``correlations`` (one row per pair: ``parameter``, ``b~~a``,
        ``estimate``, ``se``),
        ``fit`` (the homogeneity test and fit indices: ``chisq, df, pvalue, baseline.chisq,
        baseline.df, cfi, tli, rmsea`` (with Steiger's sqrt(G) multi-group factor, as lavaan),
        ``rmsea.ci.lower/upper, srmr`` (lavaan's Bentler SRMR, averaged over samples weighted
        by n)), ``ntotal`` and ``samples``.

    Raises
    ------
    ValueError
        For bad matrices or sizes, fewer than two samples, or a pair of variables that no
        sample measured together.

    References
    ----------
    Cheung, M. W.-L., & Chan, W. (2005). Meta-analytic structural equation modeling: A
    two-stage approach. Psychological Methods, 10(1), 40-64.
    """
    mats, sizes, measured, labels = _prepare(matrices, n, variables, studies, complete=True)
    p, k = len(variables), len(variables) * (len(variables) - 1) // 2
    theta, info, f, converged, iterations = _fem_fit(mats, measured, sizes, p, max_iter)
    try:
        vcov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        vcov = np.full_like(info, np.nan)
        converged = False
    acov = 0.5 * (vcov[:k, :k] + vcov[:k, :k].T)
    se = np.sqrt(np.where(np.diag(acov) > 0, np.diag(acov), np.nan))
    pooled = unvechs(theta[:k], p)
    # homogeneity test: the model against each sample's own correlation matrix
    chisq, x2_null, srmr_sum = 0.0, 0.0, 0.0
    for (sigma, _d, _i, s), ng in zip(_fem_parts(theta, mats, measured, p), sizes, strict=True):
        pg = s.shape[0]
        logdet_s = np.linalg.slogdet(s)[1]
        chisq += ng * (
            np.linalg.slogdet(sigma)[1] + np.trace(np.linalg.solve(sigma, s)) - logdet_s - pg
        )
        x2_null += ng * -logdet_s
        sd = np.sqrt(np.diag(s))
        res = (s - sigma) / np.outer(sd, sd)
        srmr_sum += ng * math.sqrt(np.mean(res[np.tril_indices(pg)] ** 2))
    df = sum(len(o) * (len(o) - 1) // 2 for o in measured) - k
    df_null = sum(len(o) * (len(o) - 1) // 2 for o in measured)
    ntotal, groups = int(sizes.sum()), len(mats)
    low, high = rmsea_ci(chisq, df, ntotal, g=groups)
    fit = {
        "chisq": float(chisq),
        "df": int(df),
        "pvalue": chisq_pvalue(chisq, df),
        "baseline.chisq": float(x2_null),
        "baseline.df": int(df_null),
        "cfi": cfi(chisq, df, x2_null, df_null),
        "tli": tli(chisq, df, x2_null, df_null),
        "rmsea": rmsea(chisq, df, ntotal, g=groups),
        "rmsea.ci.lower": low,
        "rmsea.ci.upper": high,
        "srmr": srmr_sum / ntotal,
    }
    return {
        "method": "fixed",
        "status": "ok" if converged else "not converged",
        "converged": bool(converged),
        "iterations": int(iterations),
        "variables": list(variables),
        "pooled": pooled,
        "se": unvechs(se, p) - np.eye(p) + np.diag(np.full(p, np.nan)),
        "acov": acov,
        "correlations": _pair_rows(variables, theta[:k], se),
        "fit": fit,
        "ntotal": ntotal,
        "samples": _sample_rows(labels, sizes, measured),
    }


def _study_labels(studies: Sequence[str] | None, k: int) -> list[str]:
    labels = [str(s) for s in studies] if studies is not None else [str(g + 1) for g in range(k)]
    if len(labels) != k or len(set(labels)) != k:
        raise ValueError(f"one distinct label per matrix ({k}), got {labels}")
    return labels


def _sample_rows(
    labels: Sequence[str], sizes: np.ndarray, measured: list[np.ndarray]
) -> list[dict[str, Any]]:
    return [
        {"study": lab, "n": int(s), "n_variables": len(o)}
        for lab, s, o in zip(labels, sizes, measured, strict=True)
    ]


def _pair_rows(
    variables: Sequence[str], est: np.ndarray, se: np.ndarray, **extra: np.ndarray
) -> list[dict[str, Any]]:
    rows = []
    for c, label in enumerate(pair_labels(variables)):
        row = {"parameter": label, "estimate": float(est[c]), "se": _num(se[c])}
        row |= {key: _num(values[c]) for key, values in extra.items()}
        rows.append(row)
    return rows


def _num(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- stage 1: random


def _sampling_covariances(mats: list[np.ndarray], sizes: np.ndarray, acov: str) -> list[np.ndarray]:
    """``V_g`` of every sample's full correlation vector (metaSEM's ``asyCov``)."""
    if acov not in ACOV_METHODS:
        raise ValueError(f"acov must be one of {ACOV_METHODS}, got {acov!r}")
    if acov == "individual":
        base = [np.nan_to_num(m, nan=0.0) + np.diag(np.isnan(np.diag(m))) for m in mats]
    else:
        weights = sizes if acov == "weighted" else np.ones(len(mats))
        num = sum(w * np.nan_to_num(m, nan=0.0) for w, m in zip(weights, mats, strict=True))
        den = sum(w * np.isfinite(m) for w, m in zip(weights, mats, strict=True))
        mean = num / den
        base = [mean] * len(mats)
    return [acov_correlations(b, s) for b, s in zip(base, sizes, strict=True)]


def _rem_loglik(
    tau2: np.ndarray, ys: list[np.ndarray], vs: list[np.ndarray], idx: list[np.ndarray], k: int
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``-2 log L`` (ML, mu profiled out, constants dropped) and what the fit needs.

    Returns the value, its gradient by ``tau^2``, the GLS ``mu``, the information of ``mu``
    (``sum_g X_g' W_g X_g``) and the expected Hessian of ``-2 log L`` by ``tau^2``
    (``sum_g W_g * W_g``, elementwise: ``tr(W E_k W E_l)``).
    """
    ws = []
    xtwx, xtwy, hess = np.zeros((k, k)), np.zeros(k), np.zeros((k, k))
    logdet = 0.0
    for y, v, ix in zip(ys, vs, idx, strict=True):
        c = v + np.diag(tau2[ix])
        try:
            chol = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            return math.inf, np.zeros(k), np.zeros(k), xtwx, hess
        w = np.linalg.inv(c)
        ws.append(w)
        logdet += 2.0 * np.log(np.diag(chol)).sum()
        xtwx[np.ix_(ix, ix)] += w
        xtwy[ix] += w @ y
        hess[np.ix_(ix, ix)] += w * w
    mu = np.linalg.solve(xtwx, xtwy)
    value, grad = logdet, np.zeros(k)
    for y, w, ix in zip(ys, ws, idx, strict=True):
        we = w @ (y - mu[ix])
        value += float((y - mu[ix]) @ we)
        grad[ix] += np.diag(w) - we**2
    return value, grad, mu, xtwx, hess


def _rem_fit(
    start: np.ndarray,
    ys: list[np.ndarray],
    vs: list[np.ndarray],
    idx: list[np.ndarray],
    k: int,
    max_iter: int = 500,
) -> tuple[np.ndarray, bool, int]:
    """ML estimates of the ``tau^2`` by projected Fisher scoring (bounds at 0).

    A ``tau^2`` at 0 whose gradient points outwards stays there; Fisher-scoring steps on
    the others are projected back onto the bounds, with step halving (Bertsekas 1982). Stops
    when the projected gradient of ``-2 log L`` is below 1e-8 or no step lowers it.
    """
    tau = np.maximum(np.asarray(start, dtype=float), 0.0)
    f, g, _m, _x, h = _rem_loglik(tau, ys, vs, idx, k)
    if not math.isfinite(f):
        tau = np.zeros(k)
        f, g, _m, _x, h = _rem_loglik(tau, ys, vs, idx, k)
    iterations, decrement = 0, math.inf
    while iterations < max_iter:
        free = ~((tau <= 0) & (g > 0))
        hf = h[np.ix_(free, free)]
        try:
            step = np.linalg.solve(hf, g[free]) if free.any() else np.zeros(0)
        except np.linalg.LinAlgError:
            break
        decrement = float(g[free] @ step)  # the decrease of -2 log L a full step predicts
        if decrement < 1e-12:
            break
        iterations += 1
        t = 1.0
        while t > 1e-12:
            new = tau.copy()
            new[free] = np.maximum(tau[free] - t * step, 0.0)
            f_new, g_new, _m, _x, h_new = _rem_loglik(new, ys, vs, idx, k)
            if math.isfinite(f_new) and f_new <= f:
                break
            t /= 2
        else:
            break
        tau, f, g, h = new, f_new, g_new, h_new
    return tau, bool(decrement < 1e-8), iterations


def _per_pair(
    ys: list[np.ndarray], vs: list[np.ndarray], idx: list[np.ndarray], k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per correlation: the samples' values and sampling variances."""
    values: list[list[float]] = [[] for _ in range(k)]
    variances: list[list[float]] = [[] for _ in range(k)]
    for y, v, ix in zip(ys, vs, idx, strict=True):
        for pos, c in enumerate(ix):
            values[c].append(float(y[pos]))
            variances[c].append(float(v[pos, pos]))
    return [(np.array(a), np.array(b)) for a, b in zip(values, variances, strict=True)]


def _i2(tau2: float, variances: np.ndarray) -> float:
    """``tau^2 / (tau^2 + v~)`` with Higgins & Thompson's typical sampling variance ``v~``."""
    w = 1.0 / variances
    if len(w) < 2:
        return float("nan")
    typical = (len(w) - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum())
    return float(tau2 / (tau2 + typical))


def pool_random(
    matrices: Sequence[np.ndarray],
    n: Sequence[int],
    variables: Sequence[str],
    studies: Sequence[str] | None = None,
    acov: str = "weighted",
) -> dict[str, Any]:
    """Stage 1, random effects: multivariate meta-analysis of the correlations (``tssem1REM``).

    ``r_g ~ N(rho, V_g + T)``, ``T = diag(tau^2)`` (one heterogeneity variance per correlation,
    metaSEM's ``RE.type = "Diag"``), by maximum likelihood (metaSEM's ``meta()`` default;
    metafor's ``rma.mv(yi, V, mods = ~ 0 + pair, random = ~ pair | study, struct = "DIAG",
    method = "ML")`` is the same model). ``rho`` is profiled out (its GLS estimate given
    ``T``), the ``tau^2`` by projected Fisher scoring with bounds at 0 (a ``tau^2`` may be
    estimated as 0, as with metaSEM's lower bound); the asymptotic covariance
    of the pooled correlations is ``(sum_g V*_g^-1)^-1`` with ``V*_g = V_g + T`` (the inverse
    expected information). Heterogeneity per correlation: ``tau^2``, ``tau`` and
    ``I^2 = tau^2 / (tau^2 + v~)`` with Higgins & Thompson's typical sampling variance ``v~``
    of that correlation (metaSEM's ``I2q``); the homogeneity statistic ``Q = sum_g (r_g -
    rho_FE)' V_g^-1 (r_g - rho_FE)`` (GLS fixed-effect estimate ``rho_FE``) on
    ``sum_g k_g - k`` degrees of freedom.

    Parameters
    ----------
    matrices, n, variables, studies
        As :func:`pool_fixed`.
    acov
        The correlation matrix the sampling covariances are computed at (see
        :data:`ACOV_METHODS`).

    Returns
    -------
    dict
        ``method``, ``status``, ``converged``, ``variables``, ``pooled``, ``se``, ``acov``,
        ``correlations`` (``parameter, estimate, se, tau2, tau, I2``), ``heterogeneity``
        (``Q, Q.df, Q.pvalue``, ``tau2`` and ``I2`` lists), ``loglik``, ``acov_method``,
        ``ntotal``, ``samples``.

    Raises
    ------
    ValueError
        As :func:`pool_fixed`, or for an unknown ``acov``.

    References
    ----------
    Cheung, M. W.-L. (2015). Meta-analysis: A structural equation modeling approach. Wiley
    (chapter 7).
    Hafdahl, A. R. (2007). Combining correlation matrices: Simulation analysis of improved
    fixed-effects methods. Journal of Educational and Behavioral Statistics, 32(2), 180-205.
    Higgins, J. P. T., & Thompson, S. G. (2002). Quantifying heterogeneity in a
    meta-analysis. Statistics in Medicine, 21(11), 1539-1558.
    """
    mats, sizes, measured, labels = _prepare(matrices, n, variables, studies, complete=False)
    p, k = len(variables), len(variables) * (len(variables) - 1) // 2
    full_v = _sampling_covariances(mats, sizes, acov)
    ys, vs, idx = [], [], []
    for m, v in zip(mats, full_v, strict=True):
        y = vechs(m)
        ix = np.flatnonzero(np.isfinite(y))
        ys.append(y[ix])
        vs.append(v[np.ix_(ix, ix)])
        idx.append(ix)
    # fixed-effect GLS estimate and the homogeneity statistic Q
    q_value, _g, mu_fe, _i, _h = _rem_loglik(np.zeros(k), ys, vs, idx, k)
    logdet_v = sum(np.linalg.slogdet(v)[1] for v in vs)
    q_stat = q_value - logdet_v
    q_df = sum(len(ix) for ix in idx) - k
    # start: the moment estimate of each tau^2 (spread of r beyond the mean sampling variance)
    per_pair = _per_pair(ys, vs, idx, k)
    start = np.array(
        [max(float(np.var(r, ddof=1) - v.mean()), 0.0) if len(r) > 1 else 0.0 for r, v in per_pair]
    )

    tau2, converged, iterations = _rem_fit(start, ys, vs, idx, k)
    value, _g, mu, info, _h = _rem_loglik(tau2, ys, vs, idx, k)
    try:
        acov_mu = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        acov_mu, converged = np.full((k, k), np.nan), False
    se = np.sqrt(np.where(np.diag(acov_mu) > 0, np.diag(acov_mu), np.nan))
    i2 = np.array([_i2(t, v) for t, (_r, v) in zip(tau2, per_pair, strict=True)])
    n_obs = sum(len(ix) for ix in idx)
    return {
        "method": "random",
        "status": "ok" if converged else "not converged",
        "converged": converged,
        "iterations": int(iterations),
        "variables": list(variables),
        "pooled": unvechs(mu, p),
        "se": unvechs(se, p) - np.eye(p) + np.diag(np.full(p, np.nan)),
        "acov": 0.5 * (acov_mu + acov_mu.T),
        "correlations": _pair_rows(variables, mu, se, tau2=tau2, tau=np.sqrt(tau2), I2=i2),
        "heterogeneity": {
            "Q": float(q_stat),
            "Q.df": int(q_df),
            "Q.pvalue": chisq_pvalue(q_stat, q_df),
            "tau2": [float(t) for t in tau2],
            "I2": [_num(v) for v in i2],
            "fixed_effect": [float(v) for v in mu_fe],
        },
        "loglik": float(-0.5 * (value + n_obs * math.log(2 * math.pi))),
        "acov_method": acov,
        "ntotal": int(sizes.sum()),
        "samples": _sample_rows(labels, sizes, measured),
    }


# --------------------------------------------------------------------------- stage 2


def fit_stage2(
    stage1: Mapping[str, Any], models: Mapping[str, str], level: float = 0.95
) -> dict[str, dict[str, Any]]:
    """Stage 2: each model fitted to the pooled matrix by WLS with its asymptotic covariance.

    :func:`alliance.sem.wls.fit_correlation_structure` (metaSEM's ``tssem2``): loadings are
    standardized loadings and factor covariances correlations. A model that does not
    converge, is not identified or is inadmissible (a negative residual variance: a Heywood
    case; a factor correlation matrix that is not positive definite; no standard errors) is
    kept with its ``status`` and ``issues`` but gets no fit indices (``fit`` is None).

    Parameters
    ----------
    stage1
        A result of :func:`pool_fixed` or :func:`pool_random` (``pooled``, ``acov``,
        ``ntotal``, ``variables``).
    models
        Model name -> lavaan syntax.
    level
        Confidence level of the parameter intervals.

    Returns
    -------
    dict
        Model name -> ``status`` (``"ok"``, ``"inadmissible"``, ``"not converged"``,
        ``"not identified"`` or ``"error"``), ``issues``, ``fit``
        (:func:`alliance.sem.wls.correlation_fit_measures`), ``parameters`` (lavaan's
        ``parameterEstimates`` columns; computed residual variances have no SE).
    """
    from alliance.sem.solution import parameter_rows
    from alliance.sem.validity import admissibility
    from alliance.sem.wls import correlation_fit_measures, fit_correlation_structure

    out: dict[str, dict[str, Any]] = {}
    for name, syntax in models.items():
        try:
            result = fit_correlation_structure(
                syntax, stage1["pooled"], stage1["acov"], int(stage1["ntotal"]),
                stage1["variables"],
            )  # fmt: skip
        except (ValueError, np.linalg.LinAlgError) as err:
            out[name] = {"status": "error", "issues": [str(err)], "fit": None, "parameters": []}
            continue
        status = admissibility(result)
        issues = list(status["issues"])
        if result.not_identified:
            state = "not identified"
            issues.insert(0, result.not_identified)
        elif not result.converged:
            state = "not converged"
        elif not status["admissible"]:
            state = "inadmissible"
        else:
            state = "ok"
        rows = parameter_rows(result, level=level)
        for row in rows:  # residual variances are computed (1 - communality), not estimated
            if row["op"] == "~~" and row["lhs"] == row["rhs"] and row["lhs"] in result.spec.ov:
                row.update(dict.fromkeys(("se", "z", "pvalue", "ci.lower", "ci.upper")))
        keep = [r for r in rows if r["free"] or (r["op"] == "~~" and r["lhs"] in result.spec.ov)]
        out[name] = {
            "status": state,
            "issues": issues,
            "converged": bool(result.converged),
            "fit": correlation_fit_measures(result) if state == "ok" else None,
            "parameters": keep,
        }
    return out


def compare_stage2(
    fits: Mapping[str, Mapping[str, Any]], pairs: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Chi-square difference tests of nested stage-2 models, with the changes in fit indices.

    With the inverse asymptotic covariance as weight the WLS statistic is asymptotically
    chi-square, and so is the difference between a model and a more general one it is nested
    in (Browne 1984): ``chisq_diff = chisq_restricted - chisq_general`` on ``df_diff``
    degrees of freedom. A pair with a model without fit indices is ``not_tested``.

    Parameters
    ----------
    fits
        :func:`fit_stage2`'s result.
    pairs
        ``(restricted, general)`` names of nested pairs; pairs with a model not fitted are
        left out.
    """
    tests = []
    for restricted, general in pairs:
        if restricted not in fits or general not in fits:
            continue
        row: dict[str, Any] = {"restricted": restricted, "general": general}
        fr, fg = fits[restricted].get("fit"), fits[general].get("fit")
        if fr is None or fg is None:
            why = [
                f"{m}: {fits[m]['status']}" for m in (restricted, general) if not fits[m].get("fit")
            ]
            row["not_tested"] = "; ".join(why)
            tests.append(row)
            continue
        diff, ddf = fr["chisq"] - fg["chisq"], fr["df"] - fg["df"]
        row |= {
            "chisq_diff": float(diff),
            "df_diff": int(ddf),
            "pvalue": chisq_pvalue(max(diff, 0.0), ddf),
            "deltas": {
                k: float(fr[k] - fg[k]) for k in ("cfi", "tli", "rmsea", "srmr", "aic", "bic")
            },
        }
        tests.append(row)
    return tests


def masem(
    matrices: Sequence[np.ndarray],
    n: Sequence[int],
    variables: Sequence[str],
    models: Mapping[str, str],
    studies: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS,
    pairs: Sequence[tuple[str, str]] = (),
    acov: str = "weighted",
) -> dict[str, Any]:
    """Both stages of TSSEM for the fixed- and random-effects pooling (see the module).

    Parameters
    ----------
    matrices, n, variables, studies
        The samples' correlation matrices (see :func:`pool_fixed`).
    models
        Model name -> lavaan syntax of the competing models fitted in stage 2.
    methods
        Stage-1 pooling models among :data:`METHODS`.
    pairs
        ``(restricted, general)`` nested pairs to test in stage 2.
    acov
        Sampling covariances of the random-effects model (:data:`ACOV_METHODS`).

    Returns
    -------
    dict
        ``variables``, ``samples``, ``ntotal``, ``stage1`` (method -> :func:`pool_fixed` /
        :func:`pool_random` result, matrices as nested lists), ``stage2`` (method ->
        ``models`` (:func:`fit_stage2`) and ``comparisons`` (:func:`compare_stage2`)), or a
        ``skipped`` reason where stage 1 did not converge or its pooled matrix or asymptotic
        covariance is not positive definite.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be among {METHODS}, got {list(methods)}")
    out: dict[str, Any] = {"variables": list(variables), "stage1": {}, "stage2": {}}
    for method in methods:
        if method == "fixed":
            s1 = pool_fixed(matrices, n, variables, studies)
        else:
            s1 = pool_random(matrices, n, variables, studies, acov=acov)
        out["samples"], out["ntotal"] = s1["samples"], s1["ntotal"]
        reason = _stage2_obstacle(s1)
        if reason:
            out["stage2"][method] = {"skipped": reason, "models": {}, "comparisons": []}
        else:
            fits = fit_stage2(s1, models)
            out["stage2"][method] = {"models": fits, "comparisons": compare_stage2(fits, pairs)}
        s1 = dict(s1)
        s1.pop("se")  # the SEs are in the correlations' rows
        for key in ("pooled", "acov"):
            s1[key] = _json_matrix(s1[key])
        out["stage1"][method] = s1
    return out


def _stage2_obstacle(stage1: Mapping[str, Any]) -> str | None:
    """Why stage 2 cannot use a stage-1 result, or None."""
    if not stage1["converged"]:
        return f"stage 1 ({stage1['method']} effects) did not converge"
    if np.min(np.linalg.eigvalsh(stage1["pooled"])) <= 0:
        return (
            f"the pooled correlation matrix ({stage1['method']} effects) is not positive definite"
        )
    acov = stage1["acov"]
    if not np.all(np.isfinite(acov)) or np.min(np.linalg.eigvalsh(acov)) <= 0:
        return (
            f"the asymptotic covariance of the pooled correlations ({stage1['method']} effects) "
            "is not positive definite"
        )
    return None
