"""The multivariate normal: log-likelihoods, scores and information (lavaan's lav_mvnorm*).

Functions of a mean vector, a covariance matrix and (incomplete) data that every normal-theory
part of :mod:`alliance.sem` shares: missing-data patterns, the log-likelihood from per-pattern
statistics, the saturated model by EM, casewise scores, expected and observed information and
the derivatives of the discrepancy by the moments.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "casewise_scores",
    "em_saturated",
    "expected_information",
    "moment_gradient",
    "normal_observed_information",
    "pattern_logl",
    "pattern_stats",
    "missing_patterns",
    "saturated_jacobian",
]

LOG2PI = float(np.log(2 * np.pi))


def missing_patterns(x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Missing-data patterns: (observed column mask, row indices)."""
    obs = ~np.isnan(x)
    keys, inverse = np.unique(obs, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    return [(keys[k].astype(bool), np.flatnonzero(inverse == k)) for k in range(len(keys))]


def saturated_jacobian(p: int, meanstructure: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian of the saturated model (free means and the ``vech`` of Sigma).

    Returns ``dsig`` (q, p, p) and ``dmu`` (q, p) with ``q = p + p(p+1)/2`` (means first)
    or ``p(p+1)/2``.
    """
    rows, cols = np.tril_indices(p)
    k0 = p if meanstructure else 0
    q = k0 + len(rows)
    dsig = np.zeros((q, p, p))
    dmu = np.zeros((q, p))
    if meanstructure:
        dmu[np.arange(p), np.arange(p)] = 1.0
    for k, (i, j) in enumerate(zip(rows, cols, strict=True)):
        dsig[k0 + k, i, j] = 1.0
        dsig[k0 + k, j, i] = 1.0
    return dsig, dmu


def expected_information(
    sigma: np.ndarray, dsig: np.ndarray, dmu: np.ndarray | None = None
) -> np.ndarray:
    """Per-observation expected (Fisher) information of a normal model.

    ``I_kl = 0.5 tr(Sigma^-1 dSigma_k Sigma^-1 dSigma_l) + dmu_k' Sigma^-1 dmu_l``.
    """
    si = np.linalg.inv(sigma)
    q = dsig.shape[0]
    a = np.matmul(si[None], dsig)  # Sigma^-1 dSigma_k
    info = 0.5 * (a.reshape(q, -1) @ a.transpose(0, 2, 1).reshape(q, -1).T)
    if dmu is not None:
        info += dmu @ si @ dmu.T
    return 0.5 * (info + info.T)


def _pattern_residuals(
    x: np.ndarray,
    patterns: list[tuple[np.ndarray, np.ndarray]],
    mu: np.ndarray,
    sigma: np.ndarray,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per missing-data pattern: observed columns, rows, ``Sigma_oo^-1`` and ``z``.

    ``z = (y_o - mu_o) Sigma_oo^-1`` are the whitened residuals of the pattern's rows.
    """
    for obs, idx in patterns:
        o = np.flatnonzero(obs)
        if len(o) == 0:
            continue
        si = np.linalg.inv(sigma[np.ix_(o, o)])
        yield o, idx, si, (x[np.ix_(idx, o)] - mu[o]) @ si


def normal_observed_information(
    x: np.ndarray,
    patterns: list[tuple[np.ndarray, np.ndarray]],
    mu: np.ndarray,
    sigma: np.ndarray,
    dsig: np.ndarray,
    dmu: np.ndarray | None,
) -> np.ndarray:
    """Per-observation observed information of a normal model linear in its parameters.

    Summed over missing-data patterns (case ``i``, observed part ``o``, ``z = Sigma_oo^-1
    e_i``): ``I_mumu = Sigma_oo^-1``, ``I_mu,k = Sigma_oo^-1 dSigma_k z`` and ``I_kl =
    -0.5 tr(Sigma^-1 dSigma_k Sigma^-1 dSigma_l) + z' dSigma_k Sigma^-1 dSigma_l z``, divided
    by ``n``. At the saturated ML (EM) estimates this is lavaan's unstructured observed h1
    information; with a structured model's Jacobian it is the first term of the model's
    observed information (see
    :func:`alliance.sem.information.observed_information_blocks`).
    """
    q = dsig.shape[0]
    info = np.zeros((q, q))
    for o, idx, si, z in _pattern_residuals(x, patterns, mu, sigma):
        zz = z.T @ z
        ds = dsig[:, o][:, :, o]
        k = len(o)
        a = np.matmul(si[None], ds)  # Si dS_k
        a_t = a.transpose(0, 2, 1).reshape(q, -1)
        info += -0.5 * len(idx) * (a.reshape(q, -1) @ a_t.T)
        b = np.matmul(ds, si[None])  # dS_k Si
        c = np.matmul(ds, zz[None])  # dS_k Z
        info += b.reshape(q, -1) @ c.transpose(0, 2, 1).reshape(q, -1).T
        if dmu is not None:
            dm = dmu[:, o]
            info += len(idx) * dm @ si @ dm.T
            zsum = z.sum(axis=0)
            cross = dm @ (a.reshape(q * k, k) @ zsum).reshape(q, k).T  # dmu_k' Si dS_l zsum
            info += cross + cross.T
    info /= x.shape[0]
    return 0.5 * (info + info.T)


def moment_gradient(
    x: np.ndarray, patterns: list[tuple[np.ndarray, np.ndarray]], mu: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives of ``-logl_g / n_g`` by the entries of Sigma and by mu (missing allowed)."""
    p = sigma.shape[0]
    gs = np.zeros((p, p))
    gm = np.zeros(p)
    for o, idx, si, z in _pattern_residuals(x, patterns, mu, sigma):
        gs[np.ix_(o, o)] += 0.5 * (len(idx) * si - z.T @ z)
        gm[o] += -z.sum(axis=0)
    return gs / x.shape[0], gm / x.shape[0]


def casewise_scores(
    X: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    dsig: np.ndarray,
    dmu: np.ndarray | None,
    patterns: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Casewise scores ``d log L_i / d x`` of the multivariate normal (missing values allowed).

    For case ``i`` with observed part ``o``: ``z = Sigma_oo^-1 (y_o - mu_o)`` and
    ``s_ik = dmu_k,o' z + 0.5 (z' dSigma_k,oo z - tr(Sigma_oo^-1 dSigma_k,oo))``.

    Returns
    -------
    ndarray, shape (n, q)
    """
    n = X.shape[0]
    q = dsig.shape[0]
    if patterns is None:
        patterns = missing_patterns(X)
    out = np.zeros((n, q))
    for obs, idx in patterns:
        o = np.flatnonzero(obs)
        if len(o) == 0:
            continue
        s_oo = sigma[np.ix_(o, o)]
        si = np.linalg.inv(s_oo)
        e = X[np.ix_(idx, o)] - mu[o]
        z = e @ si
        ds = dsig[:, o][:, :, o]
        zz = (z[:, :, None] * z[:, None, :]).reshape(len(idx), -1)
        quad = zz @ ds.reshape(q, -1).T
        tr = ds.reshape(q, -1) @ si.ravel()
        out[idx] = 0.5 * (quad - tr[None, :])
        if dmu is not None:
            out[idx] += z @ dmu[:, o].T
    return out


def pattern_stats(x: np.ndarray, patterns: list[tuple[np.ndarray, np.ndarray]]) -> list[Any]:
    """Per pattern: observed indices, n, mean and scatter (about the pattern mean) of the rows."""
    out = []
    for obs, idx in patterns:
        o = np.flatnonzero(obs)
        if len(o) == 0:
            continue
        y = x[np.ix_(idx, o)]
        ybar = y.mean(axis=0)
        e = y - ybar
        out.append((o, len(idx), ybar, e.T @ e))
    return out


def pattern_logl(pstats: list[Any], mu: np.ndarray, sigma: np.ndarray) -> float:
    """Normal log-likelihood summed over cases, from per-pattern sufficient statistics."""
    total = 0.0
    for o, n, ybar, scat in pstats:
        s = sigma[np.ix_(o, o)]
        sign, logdet = np.linalg.slogdet(s)
        if sign <= 0:
            return -np.inf
        si = np.linalg.inv(s)
        d = ybar - mu[o]
        w = scat + n * np.outer(d, d)
        total += -0.5 * (n * (len(o) * LOG2PI + logdet) + np.sum(si * w))
    return float(total)


def em_saturated(
    x: np.ndarray,
    patterns: list[tuple[np.ndarray, np.ndarray]],
    max_iter: int = 5000,
    tol: float = 1e-11,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """ML mean vector and covariance matrix of incomplete normal data by the EM algorithm.

    Returns ``(mu, sigma, logl, iterations)``; starts from the available-case means and
    variances.

    References
    ----------
    Dempster, A. P., Laird, N. M., & Rubin, D. B. (1977). Maximum likelihood from
    incomplete data via the EM algorithm. JRSS B, 39(1), 1-38.
    Little, R. J. A., & Rubin, D. B. (2002). Statistical analysis with missing data (2nd
    ed.), ch. 8. Wiley.
    """
    n, p = x.shape
    mu = np.nanmean(x, axis=0)
    sigma = np.diag(np.nanvar(x, axis=0))
    pstats = pattern_stats(x, patterns)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported below
        t1 = np.zeros(p)
        t2 = np.zeros((p, p))
        for o, npat, ybar, scat in pstats:
            m = np.setdiff1d(np.arange(p), o)
            if len(m) == 0:
                t1 += npat * ybar
                t2 += scat + npat * np.outer(ybar, ybar)
                continue
            soo = sigma[np.ix_(o, o)]
            smo = sigma[np.ix_(m, o)]
            b = np.linalg.solve(soo, smo.T).T  # regression of missing on observed
            cond = sigma[np.ix_(m, m)] - b @ smo.T
            # expected sufficient statistics for the rows of this pattern
            yo_sum = npat * ybar
            yoyo = scat + npat * np.outer(ybar, ybar)
            ym_sum = npat * (mu[m] - b @ mu[o]) + b @ yo_sum
            c0 = mu[m] - b @ mu[o]
            ymyo = np.outer(c0, yo_sum) + b @ yoyo
            ymym = (
                npat * cond
                + npat * np.outer(c0, c0)
                + np.outer(c0, yo_sum) @ b.T
                + b @ np.outer(yo_sum, c0)
                + b @ yoyo @ b.T
            )
            t1[o] += yo_sum
            t1[m] += ym_sum
            t2[np.ix_(o, o)] += yoyo
            t2[np.ix_(m, o)] += ymyo
            t2[np.ix_(o, m)] += ymyo.T
            t2[np.ix_(m, m)] += ymym
        mu_new = t1 / n
        sigma_new = t2 / n - np.outer(mu_new, mu_new)
        sigma_new = 0.5 * (sigma_new + sigma_new.T)
        delta = max(np.max(np.abs(mu_new - mu)), np.max(np.abs(sigma_new - sigma)))
        mu, sigma = mu_new, sigma_new
        if delta < tol:
            break
    return mu, sigma, pattern_logl(pstats, mu, sigma), iterations
