"""Bayesian two-level CFA (sessions within patients), continuous or ordinal (probit) items.

Sessions are nested in patients: each item answer is a patient part ``b_j`` plus a session
part ``w_ij``, with a factor model at each level (Muthén 1994),
``Sigma_W = Lambda_W Phi_W Lambda_W' + Theta_W`` for the session parts and
``Sigma_B = Lambda_B Phi_B Lambda_B' + Theta_B`` for the patient parts. lavaan fits the
continuous case by ML (:mod:`alliance.sem.twolevel`) but not ordinal items at two levels
(lavaan issue #225); Mplus does it by Bayes. This is the Bayesian version of both, in the
machinery of :mod:`alliance.bayes.bsem`.

Design
------
*Likelihood: exact, through each patient's mean and deviations.* A patient's ``n`` sessions
stacked have covariance ``I_n (x) Sigma_W + 1 1' (x) Sigma_B``. An orthogonal (Helmert)
rotation of the sessions splits them into ``sqrt(n)`` times the patient's mean, with
covariance ``Sigma_W + n Sigma_B`` about ``sqrt(n) mu``, and ``n - 1`` contrasts, independent,
each with covariance ``Sigma_W`` (the rotation has Jacobian 1). Summed over patients:

``log L = -(N - J)/2 (p log 2 pi + log|Sigma_W|) - tr(Sigma_W^-1 S_PW) / 2
          - sum_n [J_n/2 (p log 2 pi + log|Sigma_W + n Sigma_B|)
                   + n/2 tr((Sigma_W + n Sigma_B)^-1 sum_{j: n_j = n} (m_j - mu)(m_j - mu)')]``

with ``S_PW`` the pooled within-patient scatter, ``m_j`` the patient means, ``J_n`` the number
of patients with ``n`` sessions: one Cholesky factor per distinct cluster size, no per-patient
parameter for continuous items (the same density as ML's, Muthén 1994; equals the stacked
multivariate normal exactly, a test checks it).

*Metric and identification.* Continuous items are z-scored on their total SD; every factor
has unit variance at its level; target loadings are positive (``HalfNormal(1)``), residual SDs
``HalfNormal(1)`` at both levels, factor correlations ``LKJ(2)`` at each level, intercepts
(between level, as lavaan puts the means) ``Normal(0, 1)``. No cross-loadings or residual
correlations (exact zeros): the model of the ML fit, so that its posterior concentrates at
the ML estimates on a large sample. Standardized (lavaan's ``std.all``) values are per level,
each by that level's implied SDs.

*Ordinal items.* The latent responses ``x*`` of every answer are parameters within their
category's interval (data augmentation, Albert & Chib 1993; as in
:func:`alliance.bayes.bsem.bsem_model`) and follow the two-level structure above with the
within-level residual variances fixed at 1 and ``mu = 0`` (the theta parameterization Mplus
uses for two-level categorical models; the thresholds carry the item locations). Their
patient means and within scatter enter the same density, now as functions of the parameters.
The intraclass correlation of each item is that of its latent response.

*Cost.* Continuous: ``p x p`` algebra per distinct cluster size. Ordinal: ``N p`` latent
responses (600 sessions of 12 items: 7,200 parameters), several times slower.

May import: :mod:`alliance.bayes.bsem` (the factor structure, LKJ and latent responses).

References
----------
Albert, J. H., & Chib, S. (1993). Bayesian analysis of binary and polychotomous response data.
Journal of the American Statistical Association, 88(422), 669-679.
Asparouhov, T., & Muthén, B. (2010). Bayesian analysis of latent variable models using Mplus.
Technical report, Muthén & Muthén.
Muthén, B. O. (1994). Multilevel covariance structure analysis. Sociological Methods &
Research, 22(3), 376-398.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alliance.bayes.bsem import (
    BSEM_DEFAULTS,
    Measurement,
    _latent_responses,
    _lkj,
    _ordinal_codes,
    _pairs,
    _terms,
)

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

__all__ = [
    "ClusterLayout",
    "cluster_layout",
    "twolevel_cfa_model",
    "twolevel_loglik",
    "twolevel_parameters",
]

LEVELS = ("within", "between")


@dataclass(frozen=True)
class ClusterLayout:
    """Rows sorted by cluster: ``order`` (row indices), ``sizes`` and ``ends`` per cluster.

    ``ends[j]`` is the index (in sorted order) of cluster ``j``'s last row; ``groups`` maps
    each distinct cluster size to the clusters of that size.
    """

    order: np.ndarray
    sizes: np.ndarray
    ends: np.ndarray
    groups: dict[int, np.ndarray]

    @property
    def n(self) -> int:
        """Number of rows (level-1 units)."""
        return int(self.sizes.sum())

    @property
    def n_clusters(self) -> int:
        """Number of clusters (level-2 units)."""
        return len(self.sizes)


def cluster_layout(cluster: pd.Series | np.ndarray) -> ClusterLayout:
    """The sorted layout of the rows by their cluster (first appearance order of clusters).

    Raises
    ------
    ValueError
        For missing cluster values or fewer than two clusters.
    """
    ids = pd.Series(np.asarray(cluster, dtype=object))
    if ids.isna().any():
        raise ValueError(
            f"every row needs its cluster, got {int(ids.isna().sum())} missing at rows "
            f"{ids.index[ids.isna()].tolist()[:5]}"
        )
    codes, uniques = pd.factorize(ids)
    if len(uniques) < 2:
        raise ValueError(f"a two-level model needs at least two clusters, got {len(uniques)}")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    ends = np.cumsum(sizes) - 1
    groups = {int(n): np.flatnonzero(sizes == n) for n in np.unique(sizes)}
    return ClusterLayout(order=order, sizes=sizes, ends=ends, groups=groups)


def twolevel_loglik(
    x: Any, mu: Any, sigma_w: Any, sigma_b: Any, layout: ClusterLayout, backend: Any = np
) -> Any:
    """Log density of rows ``x`` (sorted by cluster) under the two-level normal model.

    Works on NumPy arrays (``backend=np``) and on PyTensor tensors
    (``backend=pytensor.tensor``): see the module docstring for the formula.
    """
    be = backend
    n, p = layout.n, x.shape[1]
    n_clusters = layout.n_clusters
    csum = be.cumsum(x, axis=0)
    at_end = csum[layout.ends]
    sums = be.concatenate([at_end[:1], at_end[1:] - at_end[:-1]], axis=0)
    means = sums / layout.sizes[:, None].astype(float)
    # pooled within scatter: sum_i x_i x_i' - sum_j n_j m_j m_j'
    scatter_w = x.T @ x - sums.T @ means
    log2pi = math.log(2.0 * math.pi)

    def _logdet_and_inv(s: Any) -> tuple[Any, Any]:
        if be is np:
            chol = np.linalg.cholesky(s)
            return 2.0 * np.log(np.diag(chol)).sum(), np.linalg.inv(s)
        import pytensor.tensor as pt

        chol = pt.linalg.cholesky(s)
        return 2.0 * pt.log(pt.diag(chol)).sum(), pt.linalg.inv(s)

    logdet_w, inv_w = _logdet_and_inv(sigma_w)
    total = -0.5 * (n - n_clusters) * (p * log2pi + logdet_w) - 0.5 * (inv_w * scatter_w).sum()
    resid = means - mu[None, :]
    for size, members in layout.groups.items():
        r = resid[members]
        logdet, inv = _logdet_and_inv(sigma_w + size * sigma_b)
        total = total - 0.5 * len(members) * (p * log2pi + logdet)
        total = total - 0.5 * size * (inv * (r.T @ r)).sum()
    return total


def _loadings(name: str, measurement: Measurement, items: list[str]) -> Any:
    """Loading matrix (items x factors) with positive target loadings ``HalfNormal(1)``."""
    import pymc as pm
    import pytensor.tensor as pt

    target = np.zeros((len(items), len(measurement.factors)), dtype=bool)
    own = measurement.target
    for j, item in enumerate(measurement.items):
        target[items.index(item)] = own[j]
    free = pm.HalfNormal(name, 1.0, dims=f"main_{name.rsplit('_', 1)[-1]}")
    return pt.set_subtensor(pt.zeros(target.shape)[np.nonzero(target)], free), target


def _main_labels(measurement: Measurement, items: list[str]) -> list[str]:
    """``factor=~item`` labels of the target loadings in (item, factor) row-major order."""
    labels = dict.fromkeys(_terms(measurement)[0])
    order = []
    for item in items:
        for factor in measurement.factors:
            if f"{factor}=~{item}" in labels:
                order.append(f"{factor}=~{item}")
    return order


def twolevel_cfa_model(
    data: pd.DataFrame,
    within: Measurement,
    between: Measurement,
    cluster: str,
    ordered: bool = False,
    lkj_eta_factors: float = BSEM_DEFAULTS["lkj_eta_factors"],
) -> pm.Model:
    """The Bayesian two-level CFA of the items in ``data`` (see the module docstring).

    Parameters
    ----------
    data
        One row per level-1 unit (session) with the items and the ``cluster`` column; no
        missing answers (listwise deletion is the caller's, reported there).
    within, between
        Factor structures of the session and the patient parts, over the same items.
    cluster
        The column naming the level-2 units (patients).
    ordered
        Items are ordinal (probit with thresholds) instead of continuous.
    lkj_eta_factors
        LKJ shape of the factor correlations at each level.

    Returns
    -------
    pymc.Model
        Free ``loading_within``, ``loading_between``, ``theta_between_sd`` (and for
        continuous items ``theta_within_sd`` and ``intercept``; for ordinal ones thresholds
        ``tau``), the LKJ variables; deterministic ``std_loading_within``,
        ``std_loading_between``, ``factor_correlation_within`` / ``_between``, ``icc`` and
        ``std_residual_variance_within`` / ``_between``.

    Raises
    ------
    ValueError
        For missing answers or cluster values, items not in ``data``, levels over different
        items, constant items or fewer than two clusters.
    """
    import pymc as pm
    import pytensor.tensor as pt

    items = list(within.items)
    if sorted(between.items) != sorted(items):
        raise ValueError(
            f"both levels must measure the same items, got within {items} and between "
            f"{between.items}"
        )
    if cluster not in data.columns:
        raise ValueError(f"the data lack the cluster column, got columns {list(data.columns)}")
    missing = [i for i in items if i not in data.columns]
    if missing:
        raise ValueError(f"the data lack the model's items, got missing {missing}")
    values = data[items].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any():
        bad = values.columns[values.isna().any()].tolist()
        raise ValueError(
            f"a two-level BSEM needs complete answers (drop incomplete rows), got NaN in {bad}"
        )
    layout = cluster_layout(data[cluster].to_numpy())
    p = len(items)
    coords: dict[str, list[str]] = {
        "item": items,
        "main_within": _main_labels(within, items),
        "main_between": _main_labels(between, items),
        "factor_pair_within": _pairs(list(within.factors)),
        "factor_pair_between": _pairs(list(between.factors)),
        "item_var": [f"{i}~~{i}" for i in items],
    }
    if ordered:
        codes, n_cat = _ordinal_codes(values, items)
        codes = codes[layout.order]
        coords["cut"] = [f"t{c}" for c in range(1, n_cat)]
        coords["gap"] = [f"t{c}" for c in range(2, n_cat)]
    else:
        sd = values.to_numpy(float).std(axis=0, ddof=1)
        if not np.all(sd > 0):
            bad = [i for i, s in zip(items, sd, strict=True) if not s > 0]
            raise ValueError(f"every item needs variation, got constant items {bad}")
        z = (values.to_numpy(float) - values.to_numpy(float).mean(axis=0)) / sd
    with pm.Model(coords=coords) as model:
        implied = {}
        lam_std = {}
        for level, measurement in zip(LEVELS, (within, between), strict=True):
            lam, target = _loadings(f"loading_{level}", measurement, items)
            n_fac = len(measurement.factors)
            phi = (
                _lkj(f"phi_{level}_cpc", float(lkj_eta_factors), n_fac, f"factor_pair_{level}")
                if n_fac > 1
                else pt.ones((1, 1))
            )
            if n_fac > 1:
                pm.Deterministic(
                    f"factor_correlation_{level}",
                    phi[np.tril_indices(n_fac, -1)],
                    dims=f"factor_pair_{level}",
                )
            if level == "within" and ordered:
                theta = pt.ones(p)
            else:
                theta = pm.HalfNormal(f"theta_{level}_sd", 1.0, dims="item") ** 2
            sigma = lam @ phi @ lam.T + pt.diag(theta)
            implied[level] = sigma
            sd_level = pt.sqrt(pt.diag(sigma))
            lam_std[level] = (lam / sd_level[:, None])[np.nonzero(target)]
            pm.Deterministic(f"std_loading_{level}", lam_std[level], dims=f"main_{level}")
            pm.Deterministic(f"std_residual_variance_{level}", theta / sd_level**2, dims="item_var")
        var_w, var_b = pt.diag(implied["within"]), pt.diag(implied["between"])
        pm.Deterministic("icc", var_b / (var_w + var_b), dims="item")
        if ordered:
            x = _latent_responses(codes, n_cat)
            mu = pt.zeros(p)
        else:
            x = pt.as_tensor(z[layout.order])
            mu = pm.Normal("intercept", 0.0, 1.0, dims="item")
        pm.Potential(
            "twolevel_loglik",
            twolevel_loglik(x, mu, implied["within"], implied["between"], layout, backend=pt),
        )
    return model


def twolevel_parameters(model: pm.Model) -> list[str]:
    """The posterior variables judged by the diagnostics and summarized (no per-answer ones)."""
    names = [f"{kind}_{level}" for kind in ("loading", "std_loading") for level in LEVELS]
    names += ["theta_within_sd", "theta_between_sd", "intercept", "tau", "icc"]
    names += [f"factor_correlation_{level}" for level in LEVELS]
    names += [f"std_residual_variance_{level}" for level in LEVELS]
    present = {v.name for v in model.free_RVs} | {v.name for v in model.deterministics}
    return [n for n in names if n in present]
