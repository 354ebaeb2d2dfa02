"""The two-level normal: cluster statistics, log-likelihood, scores (lav_mvnorm_cluster).

Observations ``y_ij`` (row ``i`` of cluster ``j``, ``n_j`` rows) split into a between-cluster
part ``mu + b_j`` and a within-cluster part ``w_ij`` with ``b_j ~ N(0, Sigma_B)`` and
``w_ij ~ N(0, Sigma_W)`` independent. The log-likelihood of complete data depends on the
data only through the pooled within-cluster cross-products and the cluster means (Muthen
1990, 1994; Lee & Poon 1998; for unbalanced clusters McDonald & Goldstein 1989, Yuan &
Hayashi 2005), which lavaan's ``lav_mvnorm_cluster_loglik_samplestats_2l`` uses:

``logL = -N p/2 log(2 pi) - (N-J)/2 [log|Sigma_W| + tr(Sigma_W^-1 S_PW)]
- 1/2 sum_j [log|Sigma_j| + n_j (ybar_j - mu)' Sigma_j^-1 (ybar_j - mu)]``,
``Sigma_j = Sigma_W + n_j Sigma_B``,

with ``S_PW`` the pooled within-cluster covariance (divisor ``N - J``). Clusters of the same
size share one inverse. Here: the statistics, the log-likelihood, its derivatives by the
moments (total and per cluster: the casewise scores of a cluster) and the saturated two-level
model (unrestricted ``mu``, ``Sigma_W``, ``Sigma_B``) by EM (Raudenbush 1995) polished by
Newton steps. Complete data only: two-level FIML is not implemented.

References
----------
Lee, S.-Y., & Poon, W.-Y. (1998). Analysis of two-level structural equation models via EM type
algorithms. Statistica Sinica, 8, 749-766.
McDonald, R. P., & Goldstein, H. (1989). Balanced versus unbalanced designs for linear
structural relations in two-level data. British Journal of Mathematical and Statistical
Psychology, 42(2), 215-232.
Muthen, B. O. (1994). Multilevel covariance structure analysis. Sociological Methods &
Research, 22(3), 376-398.
Raudenbush, S. W. (1995). Maximum likelihood estimation for unbalanced multilevel covariance
structure models via the EM algorithm. British Journal of Mathematical and Statistical
Psychology, 48(2), 359-370.
Yuan, K.-H., & Hayashi, K. (2005). On Muthen's maximum likelihood for two-level covariance
structure models. Psychometrika, 70(1), 147-167.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alliance.sem.mvnorm import LOG2PI

__all__ = [
    "ClusterStats",
    "Moments2L",
    "Saturated",
    "cluster_scores",
    "cluster_stats",
    "loglik",
    "moment_gradient",
    "numeric_hessian",
    "pack_saturated",
    "saturated",
    "saturated_gradient",
    "saturated_scores",
    "unpack_saturated",
]


@dataclass(frozen=True)
class ClusterStats:
    """Sample statistics of complete two-level data.

    Attributes
    ----------
    ov
        The variables, in the order of the matrices.
    cluster
        The cluster column's name; ``labels`` the clusters in order of first appearance.
    nobs, nclusters
        ``N`` rows and ``J`` clusters.
    sizes
        ``n_j`` per cluster.
    means
        Cluster means, ``(J, p)``.
    within_ss
        Per cluster the cross-products about its own mean, ``(J, p, p)``.
    s_pw
        Pooled within-cluster covariance, ``sum_j within_ss_j / (N - J)``.
    size_values, size_groups
        The distinct cluster sizes and, per size, the clusters of that size.
    """

    ov: list[str]
    cluster: str
    labels: list[str]
    nobs: int
    nclusters: int
    sizes: np.ndarray
    means: np.ndarray
    within_ss: np.ndarray
    s_pw: np.ndarray
    size_values: np.ndarray
    size_groups: list[np.ndarray]

    @property
    def p(self) -> int:
        """Number of variables."""
        return len(self.ov)


@dataclass(frozen=True)
class Saturated:
    """The saturated two-level model: its ``moments``, ``logl`` and how the EM ended."""

    moments: Moments2L
    logl: float
    em_iterations: int
    em_converged: bool


@dataclass(frozen=True)
class Moments2L:
    """Two-level moments: mean ``mu``, within ``sigma_w`` and between ``sigma_b`` covariances."""

    mu: np.ndarray
    sigma_w: np.ndarray
    sigma_b: np.ndarray


def cluster_stats(data: pd.DataFrame, ov: list[str], cluster: str) -> ClusterStats:
    """Two-level sample statistics of complete data.

    Parameters
    ----------
    data
        One row per level-1 unit (e.g. a session), the variables ``ov`` and ``cluster``.
    ov
        The variables.
    cluster
        The column naming the level-2 unit (e.g. the patient).

    Raises
    ------
    ValueError
        For a missing or empty cluster column, a missing cluster label, a variable that is
        absent, not numeric or has missing values (two-level FIML is not implemented), fewer
        than two clusters, or no cluster with two or more rows (no within-cluster variance).
    """
    if cluster not in data.columns:
        raise ValueError(
            f"cluster column {cluster!r} is not in the data; columns: {list(data.columns)}"
        )
    missing = [v for v in ov if v not in data.columns]
    if missing:
        raise ValueError(f"variables of the model are not in the data: {missing}")
    if data[cluster].isna().any():
        raise ValueError(
            f"cluster column {cluster!r} has {int(data[cluster].isna().sum())} missing labels"
        )
    values = data[ov]
    for v in ov:
        if not pd.api.types.is_numeric_dtype(values[v]):
            raise ValueError(f"variable {v!r} must be numeric, got dtype {values[v].dtype}")
    y = values.to_numpy(dtype=float)
    if not np.isfinite(y).all():
        bad = [v for v in ov if not np.isfinite(values[v].to_numpy(dtype=float)).all()]
        raise ValueError(
            f"two-level models need complete data (two-level FIML is not implemented); "
            f"variables with missing or infinite values: {bad}"
        )
    codes, labels = pd.factorize(data[cluster], sort=False)
    nclusters = len(labels)
    if nclusters < 2:
        raise ValueError(
            f"a two-level model needs two or more clusters in {cluster!r}, got {nclusters}"
        )
    n, p = y.shape
    sizes = np.bincount(codes, minlength=nclusters)
    if n - nclusters < 1:
        raise ValueError(
            f"every cluster of {cluster!r} has one row: no within-cluster variation to model"
        )
    sums = np.zeros((nclusters, p))
    np.add.at(sums, codes, y)
    means = sums / sizes[:, None]
    dev = y - means[codes]
    within_ss = np.zeros((nclusters, p, p))
    np.add.at(within_ss, codes, dev[:, :, None] * dev[:, None, :])
    s_pw = within_ss.sum(axis=0) / (n - nclusters)
    size_values = np.unique(sizes)
    groups = [np.flatnonzero(sizes == s) for s in size_values]
    return ClusterStats(
        ov=list(ov),
        cluster=cluster,
        labels=[str(v) for v in labels],
        nobs=int(n),
        nclusters=int(nclusters),
        sizes=sizes,
        means=means,
        within_ss=within_ss,
        s_pw=0.5 * (s_pw + s_pw.T),
        size_values=size_values,
        size_groups=groups,
    )


def _inv_logdet(s: np.ndarray) -> tuple[np.ndarray, float]:
    """Inverse and log-determinant of a symmetric positive-definite matrix (Cholesky)."""
    c = np.linalg.cholesky(s)
    ci = np.linalg.inv(c)
    return ci.T @ ci, float(2.0 * np.log(np.diag(c)).sum())


def loglik(stats: ClusterStats, m: Moments2L) -> float:
    """The two-level normal log-likelihood of the data (``-inf`` if a matrix is not PD)."""
    try:
        w_inv, w_logdet = _inv_logdet(m.sigma_w)
        total = (
            -0.5 * (stats.nobs - stats.nclusters) * (w_logdet + float(np.sum(w_inv * stats.s_pw)))
        )
        for n, idx in zip(stats.size_values, stats.size_groups, strict=True):
            s_inv, s_logdet = _inv_logdet(m.sigma_w + n * m.sigma_b)
            d = stats.means[idx] - m.mu
            total -= 0.5 * (len(idx) * s_logdet + n * float(np.sum((d @ s_inv) * d)))
    except np.linalg.LinAlgError:
        return float("-inf")
    return float(total - 0.5 * stats.nobs * stats.p * LOG2PI)


def moment_gradient(stats: ClusterStats, m: Moments2L) -> Moments2L:
    """Derivatives of :func:`loglik` by ``mu``, ``Sigma_W`` and ``Sigma_B`` (elementwise).

    The matrix derivatives treat the entries as unconstrained (symmetric results); chained
    with a Jacobian that sets both ``(i, j)`` and ``(j, i)`` they give the derivative by a
    covariance parameter.
    """
    w_inv, _ = _inv_logdet(m.sigma_w)
    g_w = -0.5 * (stats.nobs - stats.nclusters) * (w_inv - w_inv @ stats.s_pw @ w_inv)
    g_b = np.zeros_like(g_w)
    g_mu = np.zeros(stats.p)
    for n, idx in zip(stats.size_values, stats.size_groups, strict=True):
        s_inv, _ = _inv_logdet(m.sigma_w + n * m.sigma_b)
        d = stats.means[idx] - m.mu
        a = d.T @ d
        part = -0.5 * (len(idx) * s_inv - n * s_inv @ a @ s_inv)
        g_w += part
        g_b += n * part
        g_mu += n * s_inv @ d.sum(axis=0)
    return Moments2L(g_mu, 0.5 * (g_w + g_w.T), 0.5 * (g_b + g_b.T))


def cluster_scores(stats: ClusterStats, m: Moments2L) -> Moments2L:
    """Per-cluster derivatives of the log-likelihood (the clusters' scores), stacked.

    Returns ``mu`` ``(J, p)``, ``sigma_w`` and ``sigma_b`` ``(J, p, p)``; their sums over
    clusters equal :func:`moment_gradient`. Their cross-products are the first-order
    (meat) information of the cluster-robust sandwich (lavaan's
    ``lav_mvnorm_cluster_information_firstorder``).
    """
    w_inv, _ = _inv_logdet(m.sigma_w)
    j, p = stats.nclusters, stats.p
    g_mu = np.zeros((j, p))
    g_w = np.zeros((j, p, p))
    g_b = np.zeros((j, p, p))
    within = np.einsum("ab,jbc,cd->jad", w_inv, stats.within_ss, w_inv)
    for n, idx in zip(stats.size_values, stats.size_groups, strict=True):
        s_inv, _ = _inv_logdet(m.sigma_w + n * m.sigma_b)
        d = stats.means[idx] - m.mu
        sd = d @ s_inv  # (c, p)
        part = -0.5 * s_inv[None] + 0.5 * n * sd[:, :, None] * sd[:, None, :]
        g_w[idx] = -0.5 * (n - 1) * w_inv[None] + 0.5 * within[idx] + part
        g_b[idx] = n * part
        g_mu[idx] = n * sd
    return Moments2L(g_mu, g_w, g_b)


def pack_saturated(m: Moments2L) -> np.ndarray:
    """The saturated parameters ``(mu, vech(Sigma_W), vech(Sigma_B))`` of moments ``m``."""
    rows, cols = np.tril_indices(len(m.mu))
    return np.concatenate([m.mu, m.sigma_w[rows, cols], m.sigma_b[rows, cols]])


def unpack_saturated(theta: np.ndarray, p: int) -> Moments2L:
    """The moments of saturated parameters (inverse of :func:`pack_saturated`)."""
    rows, cols = np.tril_indices(p)
    k = len(rows)
    sw = np.zeros((p, p))
    sb = np.zeros((p, p))
    sw[rows, cols] = theta[p : p + k]
    sb[rows, cols] = theta[p + k :]
    sw = sw + np.tril(sw, -1).T
    sb = sb + np.tril(sb, -1).T
    return Moments2L(theta[:p].copy(), sw, sb)


def saturated_gradient(stats: ClusterStats, m: Moments2L) -> np.ndarray:
    """Gradient of :func:`loglik` by the saturated parameters ``(mu, vech W, vech B)``."""
    g = moment_gradient(stats, m)
    rows, cols = np.tril_indices(stats.p)
    off = np.where(rows == cols, 1.0, 2.0)
    return np.concatenate([g.mu, off * g.sigma_w[rows, cols], off * g.sigma_b[rows, cols]])


def saturated_scores(stats: ClusterStats, m: Moments2L) -> np.ndarray:
    """Per-cluster scores by the saturated parameters, ``(J, p + p(p+1))``."""
    g = cluster_scores(stats, m)
    rows, cols = np.tril_indices(stats.p)
    off = np.where(rows == cols, 1.0, 2.0)
    return np.hstack([g.mu, off * g.sigma_w[:, rows, cols], off * g.sigma_b[:, rows, cols]])


def numeric_hessian(
    grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray, step: float = 1e-5
) -> np.ndarray:
    """Central-difference Hessian of an analytic gradient ``grad(x)`` (symmetrized).

    lavaan's observed information for two-level ML is likewise the numerical derivative of
    the analytic gradient (``lav_model_hessian``).
    """
    q = len(x)
    h = np.zeros((q, q))
    for k in range(q):
        e = np.zeros(q)
        e[k] = step * max(1.0, abs(x[k]))
        h[:, k] = (grad(x + e) - grad(x - e)) / (2 * e[k])
    return 0.5 * (h + h.T)


def saturated(
    stats: ClusterStats, method: str = "lavaan", tol: float = 1e-4, max_iter: int = 5000
) -> Saturated:
    """The saturated two-level model (free ``mu``, ``Sigma_W``, ``Sigma_B``) by ML.

    ``method="lavaan"`` (the default, for parity): EM as lavaan 0.6-14's
    ``lav_mvnorm_cluster_em_sat`` does it - the cluster effects (with their mean) are the
    missing data, separate within and between means, the start ``Sigma_W = Sigma_B = I`` and
    means 0, and a stop as soon as an iteration raises the log-likelihood by less than ``tol``
    (1e-4). That stop leaves the log-likelihood slightly below its maximum (0.006 on the
    150 x 6 reference data), which enters lavaan's chi-square; we match lavaan there.
    ``method="exact"``: the same EM, then Newton steps on the exact log-likelihood until its
    gradient vanishes (the maximum itself). In a balanced design the maximum is in closed form
    (Muthen 1994): ``mu`` the grand mean, ``Sigma_W = S_PW``, ``Sigma_B = (S_B - S_PW) / n``
    with ``S_B`` ``n`` times the covariance of the cluster means (divisor ``J``), when PD.

    Returns
    -------
    Saturated
        The estimates, the log-likelihood there (lavaan's ``unrestricted.logl``) and whether
        the EM stopped by its criterion within ``max_iter`` iterations.

    Raises
    ------
    ValueError
        For an unknown ``method``.
    """
    if method not in ("lavaan", "exact"):
        raise ValueError(f"method must be 'lavaan' or 'exact', got {method!r}")
    m, iterations, converged = _em_saturated(stats, tol, max_iter)
    if method == "lavaan":
        return Saturated(m, loglik(stats, m), iterations, converged)
    p = stats.p
    theta = pack_saturated(m)

    def grad(t: np.ndarray) -> np.ndarray:
        return saturated_gradient(stats, unpack_saturated(t, p))

    for _ in range(20):
        g = grad(theta)
        if np.max(np.abs(g)) < 1e-9 * stats.nobs:
            break
        step = np.linalg.solve(numeric_hessian(grad, theta), g)
        new, shrink = theta - step, 1.0
        while (
            loglik(stats, unpack_saturated(new, p)) < loglik(stats, unpack_saturated(theta, p))
            and shrink > 1e-4
        ):
            shrink /= 2
            new = theta - shrink * step
        theta = new
    m = unpack_saturated(theta, p)
    return Saturated(m, loglik(stats, m), iterations, converged)


def _em_saturated(stats: ClusterStats, tol: float, max_iter: int) -> tuple[Moments2L, int, bool]:
    """EM for the saturated model (Raudenbush 1995), started and stopped as lavaan 0.6-14.

    The between part ``v_j = mu_B + b_j`` of each cluster is missing; given the current
    moments it is normal with mean ``mu_B + Sigma_B Omega_j^-1 (ybar_j - mu)`` and covariance
    ``Sigma_B - Sigma_B Omega_j^-1 Sigma_B`` (``Omega_j = Sigma_B + Sigma_W / n_j``); the
    M-step takes the within and between moments of the completed data.
    """
    p, n_obs, n_cl = stats.p, stats.nobs, stats.nclusters
    y1y1 = stats.within_ss.sum(axis=0) + (stats.means * stats.sizes[:, None]).T @ stats.means
    sw, sb = np.eye(p), np.eye(p)
    mu_w, mu_b = np.zeros(p), np.zeros(p)
    last = loglik(stats, Moments2L(mu_w + mu_b, sw, sb))
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        mu = mu_w + mu_b
        cw2 = np.zeros((p, p))
        cb = np.zeros((p, p))
        mw = np.zeros(p)
        mb = np.zeros(p)
        for n, idx in zip(stats.size_values, stats.size_groups, strict=True):
            ybar = stats.means[idx]
            k = sb @ np.linalg.inv((sw + n * sb) / n)
            ev = (ybar - mu) @ k.T + mu_b
            covv = len(idx) * (sb - k @ sb)
            evv = 0.5 * (covv + covv.T) + ev.T @ ev
            mw += n * (ybar - ev).sum(axis=0)
            mb += ev.sum(axis=0)
            cw2 += n * (evv - ybar.T @ ev - ev.T @ ybar)
            cb += evv
        mu_w, mu_b = mw / n_obs, mb / n_cl
        sw = (y1y1 + cw2) / n_obs - np.outer(mu_w, mu_w)
        sb = cb / n_cl - np.outer(mu_b, mu_b)
        sw, sb = 0.5 * (sw + sw.T), 0.5 * (sb + sb.T)
        now = loglik(stats, Moments2L(mu_w + mu_b, sw, sb))
        if now - last < tol:
            converged = True
            break
        last = now
    return Moments2L(mu_w + mu_b, sw, sb), iterations, converged
