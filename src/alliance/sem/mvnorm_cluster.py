"""The two-level normal: cluster statistics, log-likelihood, scores (lav_mvnorm_cluster).

Observations ``y_ij`` (row ``i`` of cluster ``j``, ``n_j`` rows) split into a between-cluster
part ``mu + b_j`` and a within-cluster part ``w_ij`` with ``b_j ~ N(0, Sigma_B)`` and
``w_ij ~ N(0, Sigma_W)`` independent; cluster-level variables ``z_j`` (between-only: one value
per cluster) are jointly normal with the ``b_j``; within-only variables have no between part
(their rows of ``Sigma_B`` are 0). The log-likelihood of complete data depends on the data only
through the pooled within-cluster cross-products and the cluster vectors ``v_j = (ybar_j,
z_j)`` (Muthen 1990, 1994; Lee & Poon 1998; for unbalanced clusters McDonald & Goldstein 1989,
Yuan & Hayashi 2005), as lavaan's ``lav_mvnorm_cluster_loglik_samplestats_2l`` computes it:

``logL = -(N p_y + J p_z)/2 log(2 pi) - (N-J)/2 [log|Sigma_W| + tr(Sigma_W^-1 S_PW)]
- 1/2 sum_j [p_y log n_j + log|Omega_j| + (v_j - mu)' Omega_j^-1 (v_j - mu)]``,

``Omega_j = Sigma_B + diag(Sigma_W / n_j, 0)`` the covariance of ``v_j`` and ``S_PW`` the pooled
within-cluster covariance of the level-1 variables (divisor ``N - J``); without cluster-level
variables ``n_j Omega_j = Sigma_W + n_j Sigma_B``. Clusters of the same size share one inverse.
Here: the statistics, the log-likelihood, its derivatives by the moments (total and per
cluster: the casewise scores of a cluster) and the saturated two-level model by EM (Raudenbush
1995) as lavaan 0.6-14 runs it, optionally polished to the maximum by Newton steps. Complete data
only: two-level FIML is not implemented.

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

from collections.abc import Callable, Sequence
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
        The variables, in the order of the matrices: the ``p_y`` level-1 variables first (those
        of the within model, including within-only ones), then the between-only variables.
    p_y
        The number of level-1 variables.
    between_index
        Positions in ``ov`` of the variables of the between model (all but the within-only).
    cluster
        The cluster column's name; ``labels`` the clusters in order of first appearance.
    nobs, nclusters
        ``N`` rows and ``J`` clusters.
    sizes
        ``n_j`` per cluster.
    means
        Cluster vectors ``v_j``: the cluster means of the level-1 variables, then the values
        of the between-only variables, ``(J, p)``.
    within_ss
        Per cluster the cross-products of the level-1 variables about their cluster mean,
        ``(J, p_y, p_y)``.
    s_pw
        Pooled within-cluster covariance, ``sum_j within_ss_j / (N - J)``.
    size_values, size_groups
        The distinct cluster sizes and, per size, the clusters of that size.
    """

    ov: list[str]
    p_y: int
    between_index: np.ndarray
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

    @property
    def p_z(self) -> int:
        """Number of between-only variables."""
        return len(self.ov) - self.p_y


@dataclass(frozen=True)
class Moments2L:
    """Two-level moments in :class:`ClusterStats` order.

    ``mu`` the means (``p``), ``sigma_w`` the within covariance of the level-1 variables
    (``p_y x p_y``), ``sigma_b`` the between covariance of all variables (``p x p``; the rows of
    within-only variables 0).
    """

    mu: np.ndarray
    sigma_w: np.ndarray
    sigma_b: np.ndarray


@dataclass(frozen=True)
class Saturated:
    """The saturated two-level model: its ``moments``, ``logl`` and how the EM ended."""

    moments: Moments2L
    logl: float
    em_iterations: int
    em_converged: bool


def cluster_stats(
    data: pd.DataFrame,
    ov: list[str],
    cluster: str,
    between_only: Sequence[str] = (),
    within_only: Sequence[str] = (),
) -> ClusterStats:
    """Two-level sample statistics of complete data.

    Parameters
    ----------
    data
        One row per level-1 unit (e.g. a session), the variables and ``cluster``.
    ov
        The level-1 variables (of the within model; with ``within_only`` among them).
    cluster
        The column naming the level-2 unit (e.g. the patient).
    between_only
        Cluster-level variables (of the between model only): one value per cluster.
    within_only
        Level-1 variables without a between part (of the within model only).

    Raises
    ------
    ValueError
        For a missing cluster column or label, a variable that is absent, not numeric or has
        missing values (two-level FIML is not implemented), a between-only variable that
        varies within a cluster, a level-1 variable that does not vary within clusters, fewer
        than two clusters, or no cluster with two or more rows (no within-cluster variance).
    """
    if cluster not in data.columns:
        raise ValueError(
            f"cluster column {cluster!r} is not in the data; columns: {list(data.columns)}"
        )
    names = list(ov) + list(between_only)
    missing = [v for v in names if v not in data.columns]
    if missing:
        raise ValueError(f"variables of the model are not in the data: {missing}")
    if data[cluster].isna().any():
        raise ValueError(
            f"cluster column {cluster!r} has {int(data[cluster].isna().sum())} missing labels"
        )
    values = data[names]
    for v in names:
        if not pd.api.types.is_numeric_dtype(values[v]):
            raise ValueError(f"variable {v!r} must be numeric, got dtype {values[v].dtype}")
    y = values.to_numpy(dtype=float)
    if not np.isfinite(y).all():
        bad = [v for v in names if not np.isfinite(values[v].to_numpy(dtype=float)).all()]
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
    p_y = len(ov)
    sizes = np.bincount(codes, minlength=nclusters)
    if n - nclusters < 1:
        raise ValueError(
            f"every cluster of {cluster!r} has one row: no within-cluster variation to model"
        )
    sums = np.zeros((nclusters, p))
    np.add.at(sums, codes, y)
    means = sums / sizes[:, None]
    dev = y - means[codes]
    for k, v in enumerate(between_only):
        spread = np.abs(dev[:, p_y + k])
        if spread.max() > 1e-8 * max(1.0, float(np.abs(y[:, p_y + k]).max())):
            row = int(np.argmax(spread))
            raise ValueError(
                f"between-only variable {v!r} varies within cluster {labels[codes[row]]!r} of "
                f"{cluster!r} (row {row + 1}): a level-2 variable has one value per cluster"
            )
    dev = dev[:, :p_y]
    within_ss = np.zeros((nclusters, p_y, p_y))
    np.add.at(within_ss, codes, dev[:, :, None] * dev[:, None, :])
    s_pw = within_ss.sum(axis=0) / (n - nclusters)
    flat = [v for k, v in enumerate(ov) if s_pw[k, k] <= 1e-12 * max(1.0, float(y[:, k].var()))]
    if flat:
        raise ValueError(
            f"level-1 variables with no variation within the clusters of {cluster!r}: {flat}; "
            "a variable with one value per cluster belongs in the level 2 block only"
        )
    size_values = np.unique(sizes)
    groups = [np.flatnonzero(sizes == s) for s in size_values]
    unknown = sorted(set(within_only) - set(ov))
    if unknown:
        raise ValueError(f"within-only variables must be level-1 variables, got {unknown}")
    between_index = np.array([i for i, v in enumerate(names) if v not in set(within_only)])
    return ClusterStats(
        ov=names,
        p_y=p_y,
        between_index=between_index,
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


def _omega(stats: ClusterStats, m: Moments2L, n: float) -> np.ndarray:
    """``Omega = Sigma_B + diag(Sigma_W / n, 0)``: the covariance of a cluster vector."""
    out = m.sigma_b.copy()
    py = stats.p_y
    out[:py, :py] += m.sigma_w / n
    return out


def loglik(stats: ClusterStats, m: Moments2L) -> float:
    """The two-level normal log-likelihood of the data (``-inf`` if a matrix is not PD)."""
    py = stats.p_y
    try:
        w_inv, w_logdet = _inv_logdet(m.sigma_w)
        total = (
            -0.5 * (stats.nobs - stats.nclusters) * (w_logdet + float(np.sum(w_inv * stats.s_pw)))
        )
        for n, idx in zip(stats.size_values, stats.size_groups, strict=True):
            o_inv, o_logdet = _inv_logdet(_omega(stats, m, n))
            d = stats.means[idx] - m.mu
            total -= 0.5 * (len(idx) * (py * np.log(n) + o_logdet) + float(np.sum((d @ o_inv) * d)))
    except np.linalg.LinAlgError:
        return float("-inf")
    constant = (stats.nobs * py + stats.nclusters * stats.p_z) * LOG2PI
    return float(total - 0.5 * constant)


def moment_gradient(stats: ClusterStats, m: Moments2L) -> Moments2L:
    """Derivatives of :func:`loglik` by ``mu``, ``Sigma_W`` and ``Sigma_B`` (elementwise).

    The matrix derivatives treat the entries as unconstrained (symmetric results); chained
    with a Jacobian that sets both ``(i, j)`` and ``(j, i)`` they give the derivative by a
    covariance parameter.
    """
    py = stats.p_y
    w_inv, _ = _inv_logdet(m.sigma_w)
    g_w = -0.5 * (stats.nobs - stats.nclusters) * (w_inv - w_inv @ stats.s_pw @ w_inv)
    g_b = np.zeros_like(m.sigma_b)
    g_mu = np.zeros(stats.p)
    for n, idx in zip(stats.size_values, stats.size_groups, strict=True):
        o_inv, _ = _inv_logdet(_omega(stats, m, n))
        d = stats.means[idx] - m.mu
        part = -0.5 * (len(idx) * o_inv - o_inv @ (d.T @ d) @ o_inv)
        g_b += part
        g_w += part[:py, :py] / n
        g_mu += o_inv @ d.sum(axis=0)
    return Moments2L(g_mu, 0.5 * (g_w + g_w.T), 0.5 * (g_b + g_b.T))


def cluster_scores(stats: ClusterStats, m: Moments2L) -> Moments2L:
    """Per-cluster derivatives of the log-likelihood (the clusters' scores), stacked.

    Returns ``mu`` ``(J, p)``, ``sigma_w`` ``(J, p_y, p_y)`` and ``sigma_b`` ``(J, p, p)``;
    their sums over clusters equal :func:`moment_gradient`. Their cross-products are the
    first-order (meat) information of the cluster-robust sandwich (lavaan's
    ``lav_mvnorm_cluster_information_firstorder``).
    """
    py = stats.p_y
    w_inv, _ = _inv_logdet(m.sigma_w)
    j, p = stats.nclusters, stats.p
    g_mu = np.zeros((j, p))
    g_w = np.zeros((j, py, py))
    g_b = np.zeros((j, p, p))
    within = np.einsum("ab,jbc,cd->jad", w_inv, stats.within_ss, w_inv)
    for n, idx in zip(stats.size_values, stats.size_groups, strict=True):
        o_inv, _ = _inv_logdet(_omega(stats, m, n))
        od = (stats.means[idx] - m.mu) @ o_inv  # (c, p)
        part = -0.5 * o_inv[None] + 0.5 * od[:, :, None] * od[:, None, :]
        g_b[idx] = part
        g_w[idx] = -0.5 * (n - 1) * w_inv[None] + 0.5 * within[idx] + part[:, :py, :py] / n
        g_mu[idx] = od
    return Moments2L(g_mu, g_w, g_b)


# --------------------------------------------------------------------------- saturated model


def _tril(p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = np.tril_indices(p)
    return rows, cols, np.where(rows == cols, 1.0, 2.0)


def pack_saturated(stats: ClusterStats, m: Moments2L) -> np.ndarray:
    """The saturated parameters ``(mu, vech(Sigma_W), vech(Sigma_B))`` of moments ``m``.

    ``Sigma_B`` over the between model's variables only (:attr:`ClusterStats.between_index`).
    """
    rw, cw, _ = _tril(stats.p_y)
    b = stats.between_index
    sb = m.sigma_b[np.ix_(b, b)]
    rb, cb, _ = _tril(len(b))
    return np.concatenate([m.mu, m.sigma_w[rw, cw], sb[rb, cb]])


def unpack_saturated(stats: ClusterStats, theta: np.ndarray) -> Moments2L:
    """The moments of saturated parameters (inverse of :func:`pack_saturated`)."""
    p, py = stats.p, stats.p_y
    b = stats.between_index
    rw, cw, _ = _tril(py)
    rb, cb, _ = _tril(len(b))
    k = len(rw)
    sw = np.zeros((py, py))
    sw[rw, cw] = theta[p : p + k]
    sw = sw + np.tril(sw, -1).T
    small = np.zeros((len(b), len(b)))
    small[rb, cb] = theta[p + k :]
    small = small + np.tril(small, -1).T
    sb = np.zeros((p, p))
    sb[np.ix_(b, b)] = small
    return Moments2L(theta[:p].copy(), sw, sb)


def saturated_gradient(stats: ClusterStats, m: Moments2L) -> np.ndarray:
    """Gradient of :func:`loglik` by the saturated parameters (:func:`pack_saturated`)."""
    g = moment_gradient(stats, m)
    rw, cw, ow = _tril(stats.p_y)
    b = stats.between_index
    rb, cb, ob = _tril(len(b))
    gb = g.sigma_b[np.ix_(b, b)]
    return np.concatenate([g.mu, ow * g.sigma_w[rw, cw], ob * gb[rb, cb]])


def saturated_scores(stats: ClusterStats, m: Moments2L) -> np.ndarray:
    """Per-cluster scores by the saturated parameters, ``(J, q)``."""
    g = cluster_scores(stats, m)
    rw, cw, ow = _tril(stats.p_y)
    b = stats.between_index
    rb, cb, ob = _tril(len(b))
    gb = g.sigma_b[:, b][:, :, b]
    return np.hstack([g.mu, ow * g.sigma_w[:, rw, cw], ob * gb[:, rb, cb]])


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
    """The saturated two-level model (free means, ``Sigma_W`` and ``Sigma_B``) by ML.

    ``method="lavaan"`` (the default, for parity): EM as lavaan 0.6-14's
    ``lav_mvnorm_cluster_em_sat`` does it - the between parts of the clusters (with their
    mean) are the missing data, separate within and between means, the start ``Sigma_W =
    Sigma_B = I`` (0 for within-only variables) and means 0, the between-only variables'
    moments fixed at their sample values (divisor ``J``), and a stop as soon as an iteration
    raises the log-likelihood by less than ``tol`` (1e-4). That stop leaves the
    log-likelihood slightly below its maximum (0.006 on the 150 x 6 reference data), which
    enters lavaan's chi-square; we match lavaan there. ``method="exact"``: the same EM, then
    Newton steps on the exact log-likelihood until its gradient vanishes (the maximum
    itself). In a balanced design without cluster-level or within-only variables the maximum
    is in closed form (Muthen 1994): ``mu`` the grand mean, ``Sigma_W = S_PW``, ``Sigma_B =
    (S_B - S_PW) / n`` with ``S_B`` ``n`` times the covariance of the cluster means (divisor
    ``J``), when PD.

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
    theta = pack_saturated(stats, m)

    def grad(t: np.ndarray) -> np.ndarray:
        return saturated_gradient(stats, unpack_saturated(stats, t))

    for _ in range(20):
        g = grad(theta)
        if np.max(np.abs(g)) < 1e-9 * stats.nobs:
            break
        step = np.linalg.solve(numeric_hessian(grad, theta), g)
        base = loglik(stats, unpack_saturated(stats, theta))
        new, shrink = theta - step, 1.0
        while loglik(stats, unpack_saturated(stats, new)) < base and shrink > 1e-4:
            shrink /= 2
            new = theta - shrink * step
        theta = new
    m = unpack_saturated(stats, theta)
    return Saturated(m, loglik(stats, m), iterations, converged)


def _em_moments(
    stats: ClusterStats,
    sw: np.ndarray,
    sb: np.ndarray,
    syz: np.ndarray,
    szz: np.ndarray,
    mu_w: np.ndarray,
    mu_b: np.ndarray,
    mu_z: np.ndarray,
) -> Moments2L:
    """The model moments of the EM's state: within-only rows of ``Sigma_B`` and means 0."""
    py = stats.p_y
    within_only = np.setdiff1d(np.arange(py), stats.between_index)
    mu_y = mu_w + mu_b
    mu_y[within_only] = mu_w[within_only]
    full = np.zeros((stats.p, stats.p))
    full[:py, :py] = sb
    full[:py, py:] = syz
    full[py:, :py] = syz.T
    full[py:, py:] = szz
    full[within_only, :] = 0.0
    full[:, within_only] = 0.0
    return Moments2L(np.concatenate([mu_y, mu_z]), sw, full)


def _em_saturated(stats: ClusterStats, tol: float, max_iter: int) -> tuple[Moments2L, int, bool]:
    """EM for the saturated model (Raudenbush 1995), started and stopped as lavaan 0.6-14.

    The between part ``v_j = mu_B + b_j`` of each cluster is missing; given the current
    moments and the cluster vector it is normal (the conditional mean and covariance of the
    joint normal of ``v_j`` and ``(z_j, ybar_j)``); the M-step takes the within and between
    moments of the completed data. The between-only variables' mean and covariance stay at
    their sample values, as lavaan's ``lav_mvnorm_cluster_em_sat``. As there, the EM's own
    between covariance keeps rows for within-only variables; the log-likelihood that decides
    the stop, and the moments returned, set them to 0.
    """
    py, pz, n_obs, n_cl = stats.p_y, stats.p_z, stats.nobs, stats.nclusters
    within_only = np.setdiff1d(np.arange(py), stats.between_index)
    ybar_all = stats.means[:, :py]
    z_all = stats.means[:, py:]
    y1y1 = stats.within_ss.sum(axis=0) + (ybar_all * stats.sizes[:, None]).T @ ybar_all
    mu_z = z_all.mean(axis=0)
    zc = z_all - mu_z
    szz = zc.T @ zc / n_cl
    sw = np.eye(py)
    sb = np.eye(py)
    sb[within_only, within_only] = 0.0
    syz = np.zeros((py, pz))
    mu_w, mu_b = np.zeros(py), np.zeros(py)
    # the start as lavaan evaluates it: identity between covariance (0 for within-only)
    last = loglik(stats, _em_moments(stats, sw, sb, syz, np.eye(pz), mu_w, mu_b, np.zeros(pz)))
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        mu = np.concatenate([mu_z, mu_w + mu_b])
        sigma_1 = np.hstack([syz, sb])  # Cov(between part of y, (z, ybar))
        cw2 = np.zeros((py, py))
        cb = np.zeros((py, py))
        zy = np.zeros((pz, py))
        mw = np.zeros(py)
        mb = np.zeros(py)
        for n, idx in zip(stats.size_values, stats.size_groups, strict=True):
            ybar = ybar_all[idx]
            bj = np.hstack([z_all[idx], ybar])
            omega = np.block([[szz, syz.T], [syz, (sw + n * sb) / n]])
            k = sigma_1 @ np.linalg.inv(omega)
            ev = (bj - mu) @ k.T + mu_b
            covv = len(idx) * (sb - k @ sigma_1.T)
            evv = 0.5 * (covv + covv.T) + ev.T @ ev
            mw += n * (ybar - ev).sum(axis=0)
            mb += ev.sum(axis=0)
            cw2 += n * (evv - ybar.T @ ev - ev.T @ ybar)
            cb += evv
            zy += z_all[idx].T @ ev
        mu_w, mu_b = mw / n_obs, mb / n_cl
        sw = (y1y1 + cw2) / n_obs - np.outer(mu_w, mu_w)
        sb = cb / n_cl - np.outer(mu_b, mu_b)
        sw, sb = 0.5 * (sw + sw.T), 0.5 * (sb + sb.T)
        syz = (zy / n_cl - np.outer(mu_z, mu_b)).T
        now = loglik(stats, _em_moments(stats, sw, sb, syz, szz, mu_w, mu_b, mu_z))
        if not np.isfinite(now):  # a covariance matrix left the PD cone: not converged
            break
        if now - last < tol:
            converged = True
            break
        last = now
    return _em_moments(stats, sw, sb, syz, szz, mu_w, mu_b, mu_z), iterations, converged
