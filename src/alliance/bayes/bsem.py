"""Bayesian SEM (BSEM): a CFA with small-variance priors on cross-loadings, residual correlations.

Muthén & Asparouhov (2012) replace the exact zeros of a CFA (no cross-loadings, no residual
correlations) by approximate zeros: normal priors with a small variance (0.01: 95% of the
prior within +-0.2 on the standardized scale). Falkenström et al. (2015) fitted the WAI-SR
this way after every ML model had failed "because of the assumption of exactly zero residual
correlations".

Design
------
*Metric.* The items are standardized (z-scores), every factor has unit variance
(``std.lv``), so loadings and cross-loadings are on the standardized metric in which the
prior variance is stated; target loadings are positive (``HalfNormal(1)``), which fixes the
sign of each factor.

*Continuous items: marginal likelihood.* Factors are integrated out: the centred items are
multivariate normal with ``Sigma = Lambda Phi Lambda' + D R D`` (``D`` the residual SDs,
``R`` the residual correlation matrix), the normal-theory likelihood that ML maximizes, so
with exact zeros (``R = I``, no cross-loadings) and ``n`` large the posterior concentrates
at the ML estimates (Bernstein-von Mises). No per-patient parameter: each gradient costs a
p x p Cholesky factor and one solve.

*Residual correlations: an LKJ prior whose marginal variance is the prior variance.*
``Theta = D R D`` stays positive definite by construction when ``R`` is a correlation matrix.
Under ``R ~ LKJ(eta)`` of dimension ``p`` each correlation is ``2B - 1`` with
``B ~ Beta(eta - 1 + p/2, eta - 1 + p/2)`` (Lewandowski, Kurowicka & Joe 2009), whose
variance is ``1 / (2 eta + p - 1)``. Choosing ``eta = (1/v + 1 - p) / 2`` gives every
residual correlation the prior variance ``v`` exactly (mean 0), the role Muthén & Asparouhov
give the degrees of freedom of their inverse-Wishart prior on ``Theta``; unlike the
inverse-Wishart, the residual variances keep their own prior. The LKJ is sampled through its
canonical partial correlations (independent Beta variables). The LKJ cannot be more diffuse
than ``eta -> 0``, so ``v < 1 / (p - 1)`` is required (0.09 for 12 items).

*Factor correlations* ``Phi ~ LKJ(2)``; *residual SDs* ``HalfNormal(1)``.

*Ordinal items (probit with thresholds).* The latent responses ``x*`` of each answer are
parameters constrained to their category's interval (``tau_{c-1} < x* <= tau_c``; data
augmentation, Albert & Chib 1993), and ``x*`` has the structure above with residual
variances 1 (lavaan's and Mplus's theta parameterization, where the loadings and their
priors live: no Heywood boundary to cross), rescaled to unit variances (the delta scale of
the thresholds and of the standardized loadings WLSMV reports). The prior variance of the
cross-loadings is on the theta scale: a standardized cross-loading is the theta-scale one
divided by ``sqrt(1 + common variance) > 1``, so its prior is somewhat tighter. Against the
alternative of per-patient factor scores, the augmentation keeps the residual correlations
in one multivariate normal density (with factor scores as parameters, correlated residuals
would still couple the items). Measured (BSEM of 12 five-point items, 600 respondents, 2
cores, bench/bsem_speed.py): 2 x 2,000 draws at target acceptance .95 (63 leapfrog steps per
draw) sample in 86-97 s and pass the diagnostics; a gradient costs 477 us, most of it the
7,200 latent responses (:func:`_latent_responses`), which make the ordinal fit several times
slower than the continuous one.

*Fit: posterior predictive p-value (PPP).* At each posterior draw the chi-square discrepancy
``f(S, Sigma) = n (log|Sigma| + tr(Sigma^-1 S) - log|S| - p)`` (the likelihood-ratio
statistic of the model against the unrestricted covariance matrix) of the observed data is
compared with that of data replicated from the draw's ``Sigma`` (a Wishart draw of the
replicated covariance matrix, ``n - 1`` degrees of freedom as for the centred observed
items); PPP is the share of draws where the replicate's discrepancy is at least the
observed one, reported with the 95% interval of the difference observed - replicated
(Asparouhov & Muthén 2010; Muthén & Asparouhov 2012). A PPP near 0.5 and an interval
covering 0 mean good fit; PPP < 0.05 a misfit. For ordinal items the observed ``S`` is the
covariance of each draw's latent responses.

Imports nothing from the package.

References
----------
Albert, J. H., & Chib, S. (1993). Bayesian analysis of binary and polychotomous response data.
Journal of the American Statistical Association, 88(422), 669-679.
Asparouhov, T., & Muthén, B. (2010). Bayesian analysis of latent variable models using Mplus.
Technical report, Muthén & Muthén.
Falkenström, F., Hatcher, R. L., & Holmqvist, R. (2015). Confirmatory factor analysis of the
patient version of the Working Alliance Inventory-Short Form Revised. Assessment, 22(5),
581-593.
Lewandowski, D., Kurowicka, D., & Joe, H. (2009). Generating random correlation matrices based
on vines and extended onion method. Journal of Multivariate Analysis, 100, 1989-2001.
Muthén, B., & Asparouhov, T. (2012). Bayesian structural equation modeling: A more flexible
representation of substantive theory. Psychological Methods, 17(3), 313-335.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    import pymc as pm

__all__ = [
    "BSEM_DEFAULTS",
    "SBC_PARAMETERS",
    "bsem_sbc",
    "Measurement",
    "bsem_model",
    "bsem_parameters",
    "chi_square_discrepancy",
    "lkj_eta_for_variance",
    "posterior_predictive_fit",
    "residual_correlation_table",
]

#: Settings of a BSEM fit (config key ``bsem``): ``prior_variance`` of the cross-loadings and
#: residual correlations (Muthén & Asparouhov 2012: 0.01), ``residual_size``: the size a
#: residual correlation must reach to be listed as large (besides a 95% interval excluding 0),
#: ``lkj_eta_factors``: the LKJ shape of the factor correlations.
BSEM_DEFAULTS: dict[str, float] = {
    "prior_variance": 0.01,
    "residual_size": 0.1,
    "lkj_eta_factors": 2.0,
}


@dataclass(frozen=True)
class Measurement:
    """The factor structure of a CFA: which items each factor is meant to measure.

    ``factors`` maps each factor to its target items; ``items`` are the model's items in order
    (every item of some factor). Loadings of an item on the other factors are cross-loadings.
    """

    factors: dict[str, list[str]]
    items: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.factors:
            raise ValueError("a measurement model needs at least one factor, got none")
        items: list[str] = []
        for name, members in self.factors.items():
            if not members:
                raise ValueError(f"factor {name!r} has no items")
            items += [i for i in members if i not in items]
        if not self.items:
            object.__setattr__(self, "items", items)
        elif sorted(self.items) != sorted(items):
            raise ValueError(f"items {self.items!r} are not those of the factors, got {items!r}")

    @property
    def target(self) -> np.ndarray:
        """Boolean (item x factor) matrix: True where the model has a loading."""
        out = np.zeros((len(self.items), len(self.factors)), dtype=bool)
        for k, members in enumerate(self.factors.values()):
            for item in members:
                out[self.items.index(item), k] = True
        return out


def lkj_eta_for_variance(variance: float, dim: int) -> float:
    """The LKJ shape whose marginal correlations have variance ``variance`` in dimension ``dim``.

    Each correlation of an LKJ(eta) matrix of dimension ``dim`` is ``2B - 1`` with
    ``B ~ Beta(eta - 1 + dim/2, eta - 1 + dim/2)``, of variance ``1 / (2 eta + dim - 1)``
    (Lewandowski, Kurowicka & Joe 2009), so ``eta = (1/variance + 1 - dim) / 2``.

    Raises
    ------
    ValueError
        If ``variance`` is not in ``(0, 1/(dim - 1))`` (an LKJ is at most that diffuse).
    """
    if not isinstance(variance, int | float) or isinstance(variance, bool):
        raise ValueError(f"prior_variance must be a number, got {variance!r}")
    limit = 1.0 / (dim - 1) if dim > 1 else math.inf
    if not 0 < variance < limit:
        raise ValueError(
            f"prior_variance of residual correlations among {dim} items must lie in "
            f"(0, {limit:.4g}), got {variance!r}"
        )
    return (1.0 / variance + 1.0 - dim) / 2.0


def _terms(measurement: Measurement) -> tuple[list[str], list[str]]:
    """Labels ``factor=~item`` of the target loadings and of the cross-loadings."""
    target = measurement.target
    names = list(measurement.factors)
    main, cross = [], []
    for j, item in enumerate(measurement.items):
        for k, factor in enumerate(names):
            (main if target[j, k] else cross).append(f"{factor}=~{item}")
    return main, cross


def _pairs(names: Sequence[str]) -> list[str]:
    return [f"{names[a]}~~{names[b]}" for a in range(len(names)) for b in range(a)]


def _vine_cholesky(cpc: Any, dim: int) -> Any:
    """Cholesky factor of a correlation matrix from its canonical partial correlations.

    ``cpc`` holds the partial correlations of the lower triangle in row-major order (that of
    ``np.tril_indices(dim, -1)``). With ``C`` that strictly lower triangular matrix, row ``i``
    of the factor is ``L[i, j] = C[i, j] sqrt(prod_{k<j} (1 - C[i, k]^2))`` and ``L[i, i] =
    sqrt(prod_{k<i} (1 - C[i, k]^2))`` (Lewandowski, Kurowicka & Joe 2009, section 3.2): the
    same map as :func:`alliance.bayes.latent._cpc_cholesky`, which builds it element by
    element (kept there: the demo's latent model, 4 x 4, keeps its bit-identical draws), here
    as whole-matrix operations through cumulative sums of ``log(1 - C^2)``. For the 66
    residual correlations of 12 items: 42 us per log density and gradient against 72 us, and
    a graph PyTensor rewrites and numba compiles in 0.4 s instead of 5.3 s (equal to 1e-14).
    """
    import pytensor.tensor as pt

    rows, cols = np.tril_indices(dim, -1)
    partial = pt.set_subtensor(pt.zeros((dim, dim))[rows, cols], cpc)
    log_rest = pt.log1p(-(partial**2))
    before = pt.cumsum(log_rest, axis=1) - log_rest  # sum over k < j
    return partial * pt.exp(0.5 * before) + pt.diag(pt.exp(0.5 * pt.sum(log_rest, axis=1)))


def _lkj(name: str, eta: float, dim: int, pair_dim: str) -> Any:
    """Correlation matrix ~ LKJ(eta) through its canonical partial correlations."""
    import pymc as pm

    betas = np.asarray([eta + (dim - 2 - j) / 2 for i in range(dim) for j in range(i)])
    cpc_raw = pm.Beta(name, alpha=betas, beta=betas, dims=pair_dim)
    chol = _vine_cholesky(2.0 * cpc_raw - 1.0, dim)
    return chol @ chol.T


def _standardize(frame: pd.DataFrame, items: Sequence[str]) -> np.ndarray:
    missing = [i for i in items if i not in frame.columns]
    if missing:
        raise ValueError(f"the data lack the model's items, got missing {missing}")
    values = frame[list(items)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    sd = values.std(axis=0, ddof=1)
    if not np.all(sd > 0):
        bad = [i for i, s in zip(items, sd, strict=True) if not s > 0]
        raise ValueError(f"every item needs variation, got constant items {bad}")
    return (values - values.mean(axis=0)) / sd


def _ordinal_codes(frame: pd.DataFrame, items: Sequence[str]) -> tuple[np.ndarray, int]:
    """Answers as category codes 0..K-1 per item (the observed values in order)."""
    missing = [i for i in items if i not in frame.columns]
    if missing:
        raise ValueError(f"the data lack the model's items, got missing {missing}")
    codes = np.empty((len(frame), len(items)), dtype=np.int64)
    n_cat = 0
    for j, item in enumerate(items):
        values = pd.to_numeric(frame[item], errors="coerce").to_numpy(float)
        levels = np.unique(values)
        if levels.size < 2:
            raise ValueError(f"ordered item {item!r} needs two categories, got {levels.tolist()}")
        if np.any(levels != np.round(levels)):
            raise ValueError(f"ordered item {item!r} needs whole-number answers, got {levels[:5]}")
        codes[:, j] = np.searchsorted(levels, values)
        n_cat = max(n_cat, levels.size)
    return codes, n_cat


def bsem_model(
    data: pd.DataFrame,
    measurement: Measurement,
    prior_variance: float | None = 0.01,
    ordered: bool = False,
    lkj_eta_factors: float = BSEM_DEFAULTS["lkj_eta_factors"],
    standardize: bool = True,
) -> pm.Model:
    """The BSEM of ``measurement`` for the items in ``data`` (see the module docstring).

    Parameters
    ----------
    data
        One row per respondent, the items as numeric columns, no missing answers (listwise
        deletion is the caller's, reported there).
    measurement
        Factors and their target items.
    prior_variance
        Variance of the normal priors of the cross-loadings and of the residual correlations
        (standardized metric); ``None``: the exact-zero CFA (no cross-loadings, ``R = I``).
    ordered
        Items are ordinal (probit with thresholds) instead of continuous.
    lkj_eta_factors
        LKJ shape of the factor correlations.
    standardize
        Continuous items are z-scored (the default); ``False``: used as given, with mean 0
        assumed (simulation-based calibration, where the data come from the model itself).

    Returns
    -------
    pymc.Model
        Free parameters ``loading`` (target, dims ``main``), ``cross_loading`` (dims
        ``cross``), ``theta_sd`` (continuous) or thresholds ``tau`` (ordinal), the
        canonical partial correlations of ``Phi`` and ``R``; deterministic
        ``std_loading`` (every loading, standardized as lavaan's ``std.all``),
        ``factor_correlation``, ``residual_correlation`` and ``std_residual_variance``.

    Raises
    ------
    ValueError
        For missing answers, items not in ``data``, constant items, or a prior variance an
        LKJ prior cannot reach (:func:`lkj_eta_for_variance`).

    """
    import pymc as pm
    import pytensor.tensor as pt

    items = measurement.items
    factors = list(measurement.factors)
    p, n_fac = len(items), len(factors)
    values = data[items].apply(pd.to_numeric, errors="coerce") if set(items) <= set(data) else None
    if values is None:
        raise ValueError(
            f"the data lack the model's items, got missing {sorted(set(items) - set(data))}"
        )
    if values.isna().any().any():
        bad = values.columns[values.isna().any()].tolist()
        raise ValueError(f"BSEM needs complete answers (drop incomplete rows), got NaN in {bad}")
    eta_resid = None if prior_variance is None else lkj_eta_for_variance(prior_variance, p)
    target = measurement.target
    main, cross = _terms(measurement)
    main_idx = np.nonzero(target)
    cross_idx = np.nonzero(~target)
    coords: dict[str, list[str]] = {
        "item": list(items),
        "main": main,
        "term": main,
        "factor_pair": _pairs(factors),
        "item_pair": _pairs(items),
        "item_var": [f"{i}~~{i}" for i in items],
        "item_col": list(items),
    }
    if ordered:
        codes, n_cat = _ordinal_codes(values, items)
        coords["cut"] = [f"t{c}" for c in range(1, n_cat)]
        coords["gap"] = [f"t{c}" for c in range(2, n_cat)]
    if prior_variance is not None and cross:
        coords["cross"] = cross
        coords["term"] = main + cross
    rows = np.concatenate([main_idx[0], cross_idx[0]]) if "cross" in coords else main_idx[0]
    cols = np.concatenate([main_idx[1], cross_idx[1]]) if "cross" in coords else main_idx[1]
    with pm.Model(coords=coords) as model:
        lam_main = pm.HalfNormal("loading", 1.0, dims="main")
        lam = pt.zeros((p, n_fac))
        lam = pt.set_subtensor(lam[main_idx], lam_main)
        if "cross" in coords:
            lam_cross = pm.Normal(
                "cross_loading", 0.0, math.sqrt(float(prior_variance)), dims="cross"
            )
            lam = pt.set_subtensor(lam[cross_idx], lam_cross)
        phi = (
            _lkj("phi_cpc", float(lkj_eta_factors), n_fac, "factor_pair")
            if n_fac > 1
            else pt.ones((1, 1))
        )
        resid_corr = (
            _lkj("resid_cpc", float(eta_resid), p, "item_pair")
            if eta_resid is not None
            else pt.eye(p)
        )
        common = lam @ phi @ lam.T
        if ordered:
            # latent responses: residual variances 1 (theta parameterization), then scaled to
            # unit variances (delta), the scale of the thresholds; no Heywood boundary
            theta_sd = pt.ones(p)
            sigma_theta = common + resid_corr
            sd = pt.sqrt(pt.diag(sigma_theta))
            sigma = sigma_theta / (sd[:, None] * sd[None, :])
            x_star = _latent_responses(codes, n_cat)
            # normal log density of all latent responses through their cross-product (p x p
            # algebra per evaluation instead of a solve per respondent)
            n_obs = codes.shape[0]
            chol = pt.linalg.cholesky(sigma)
            cross_product = x_star.T @ x_star
            pm.Potential(
                "x_star_loglik",
                -0.5 * n_obs * (p * math.log(2 * math.pi) + 2 * pt.log(pt.diag(chol)).sum())
                - 0.5 * pt.sum(pt.linalg.inv(sigma) * cross_product),
            )
            centred = x_star - x_star.mean(axis=0, keepdims=True)
            pm.Deterministic("latent_cov", centred.T @ centred / n_obs, dims=("item", "item_col"))
        else:
            theta_sd = pm.HalfNormal("theta_sd", 1.0, dims="item")
            sigma = common + theta_sd[:, None] * resid_corr * theta_sd[None, :]
            sd = pt.sqrt(pt.diag(sigma))
            x_obs = _standardize(values, items) if standardize else values.to_numpy(float)
            x_data = pm.Data("x_obs", x_obs)
            pm.MvNormal("x", mu=pt.zeros(p), cov=sigma, observed=x_data)
        pm.Deterministic("implied_cov", sigma, dims=("item", "item_col"))
        pm.Deterministic("std_loading", (lam / sd[:, None])[rows, cols], dims="term")
        tri = np.tril_indices(n_fac, -1)
        if n_fac > 1:
            pm.Deterministic("factor_correlation", phi[tri], dims="factor_pair")
        if eta_resid is not None:
            pm.Deterministic(
                "residual_correlation", resid_corr[np.tril_indices(p, -1)], dims="item_pair"
            )
        pm.Deterministic("std_residual_variance", theta_sd**2 / sd**2, dims="item_var")
    return model


def _latent_responses(codes: np.ndarray, n_cat: int) -> Any:
    """Ordinal items: thresholds and the latent responses within their categories' intervals.

    The answers of the lowest and highest category of each item and those in between are
    three groups, each transformed on its own: an answer costs one transcendental function of
    its own kind, the interval ends are gathered from the thresholds, and the log-Jacobian of
    the middle answers' widths is one term per item and category (count x log gap). Measured
    on 12 five-point items x 600 answers (numba, 1 core): 224 us per log density and gradient
    of this part against 768 us when every answer computed all three transforms and its
    interval ends by one-hot sums over the categories; same values to 1e-12.
    """
    import pymc as pm
    import pytensor.tensor as pt

    n, p = codes.shape
    # thresholds per item: first free, gaps positive; items with fewer categories keep the
    # unused upper thresholds (no answer lies above them; their prior alone)
    tau_first = pm.Normal("tau_first", 0.0, 2.0, dims="item")
    gaps = pm.HalfNormal("tau_gap", 2.0, dims=("item", "gap"))
    tau = pt.concatenate([tau_first[:, None], tau_first[:, None] + pt.cumsum(gaps, axis=1)], 1)
    pm.Deterministic("tau", tau, dims=("item", "cut"))
    # x* on its category's interval from an unconstrained z (Jacobians in a Potential): the
    # lowest category x* = tau_1 - exp(z), the highest x* = tau_last + exp(z), a middle one
    # x* = tau_{c-1} + gap_c logistic(z). A bounded map for the open-ended categories would
    # pile the draws against a far bound where the normal density has no mass.
    flat_codes = codes.reshape(-1)
    item = np.tile(np.arange(p), n)
    top = np.flatnonzero(flat_codes == codes.max(axis=0)[item])
    bottom = np.flatnonzero(flat_codes == 0)
    middle = np.setdiff1d(np.arange(n * p), np.concatenate([top, bottom]))
    n_cut = n_cat - 1
    tau_flat = tau.reshape((-1,))
    z = pm.Flat("x_star_raw", shape=(n, p))
    z_flat = z.reshape((-1,))
    z_middle = z_flat[middle]
    lower = tau_flat[item[middle] * n_cut + flat_codes[middle] - 1]
    upper = tau_flat[item[middle] * n_cut + flat_codes[middle]]
    x_flat = pt.zeros(n * p)
    x_flat = pt.set_subtensor(
        x_flat[top], tau_flat[item[top] * n_cut + flat_codes[top] - 1] + pt.exp(z_flat[top])
    )
    x_flat = pt.set_subtensor(
        x_flat[bottom], tau_flat[item[bottom] * n_cut] - pt.exp(z_flat[bottom])
    )
    x_flat = pt.set_subtensor(x_flat[middle], lower + (upper - lower) * pt.sigmoid(z_middle))
    # log-Jacobian: z for the open-ended categories; log gap + log logistic(z) + log(1 -
    # logistic(z)) = log gap + z - 2 softplus(z) for the middle ones, the log gaps counted once
    # per item and category
    gap_count = np.zeros((p, max(n_cat - 2, 0)))
    np.add.at(gap_count, (item[middle], flat_codes[middle] - 1), 1.0)
    log_jac = (
        pt.sum(z_flat[top])
        + pt.sum(z_flat[bottom])
        + pt.sum(z_middle - 2.0 * pt.softplus(z_middle))
        + pt.sum(pt.as_tensor(gap_count) * pt.log(gaps))
    )
    pm.Potential("x_star_jacobian", log_jac)
    return x_flat.reshape((n, p))


def bsem_parameters(model: pm.Model) -> list[str]:
    """The posterior variables judged by the diagnostics and summarized (no per-answer ones)."""
    names = ["loading", "cross_loading", "theta_sd", "tau", "std_loading"]
    names += ["factor_correlation", "residual_correlation", "std_residual_variance"]
    present = {v.name for v in model.free_RVs} | {v.name for v in model.deterministics}
    return [n for n in names if n in present]


def _draws(idata: az.InferenceData, name: str) -> np.ndarray:
    """A posterior variable's draws, chains stacked: ``(draws, ...)``."""
    values = np.asarray(idata.posterior[name])
    return values.reshape(-1, *values.shape[2:])


def chi_square_discrepancy(sample_cov: np.ndarray, sigma: np.ndarray, n: int) -> np.ndarray:
    """Likelihood-ratio chi-square ``n (log|Sigma| + tr(Sigma^-1 S) - log|S| - p)`` per matrix.

    ``sample_cov`` and ``sigma`` are ``(..., p, p)``; ``S`` has divisor ``n`` (the ML
    discrepancy of Jöreskog 1969, times ``n`` as lavaan's test statistic).

    References
    ----------
    Jöreskog, K. G. (1969). A general approach to confirmatory maximum likelihood factor
    analysis. Psychometrika, 34, 183-202.
    """
    p = sigma.shape[-1]
    _, logdet_sigma = np.linalg.slogdet(sigma)
    _, logdet_s = np.linalg.slogdet(sample_cov)
    trace = np.trace(np.linalg.solve(sigma, sample_cov), axis1=-2, axis2=-1)
    return n * (logdet_sigma + trace - logdet_s - p)


def posterior_predictive_fit(
    idata: az.InferenceData, n_obs: int, seed: int, max_draws: int = 2000
) -> dict[str, Any]:
    """PPP of the chi-square discrepancy and the 95% interval of observed - replicated.

    Parameters
    ----------
    idata
        A :func:`bsem_model` fit: ``implied_cov`` per draw, and the standardized items in
        ``observed_data`` (continuous) or the latent responses' covariance ``latent_cov`` per
        draw (ordinal: the realized discrepancy of the draw's latent responses).
    n_obs
        Number of respondents.
    seed
        Seed of the replicated data.
    max_draws
        At most this many posterior draws (evenly thinned) are used.

    Returns
    -------
    dict
        ``ppp``, ``diff_eti95`` ([low, high] of f(observed) - f(replicated)),
        ``chi2_observed_mean``, ``chi2_replicated_mean`` and ``draws``.

    References
    ----------
    Asparouhov, T., & Muthén, B. (2010). Bayesian analysis of latent variable models using
    Mplus. Technical report, Muthén & Muthén.
    Gelman, A., Meng, X.-L., & Stern, H. (1996). Posterior predictive assessment of model
    fitness via realized discrepancies. Statistica Sinica, 6, 733-807.
    """
    from scipy.stats import wishart

    sigma = _draws(idata, "implied_cov")
    keep = np.unique(np.linspace(0, sigma.shape[0] - 1, min(max_draws, sigma.shape[0])).round())
    keep = keep.astype(int)
    sigma = sigma[keep]
    if "latent_cov" in idata.posterior:
        s_obs = _draws(idata, "latent_cov")[keep]
        n = int(n_obs)
    else:
        x = np.asarray(idata.observed_data["x"])
        n = x.shape[0]
        s_obs = np.broadcast_to(np.cov(x, rowvar=False, bias=True), sigma.shape)
    rng = np.random.default_rng(seed)
    s_rep = np.stack([wishart.rvs(df=n - 1, scale=s, random_state=rng) / n for s in sigma])
    f_obs = chi_square_discrepancy(s_obs, sigma, n)
    f_rep = chi_square_discrepancy(s_rep, sigma, n)
    diff = f_obs - f_rep
    return {
        "ppp": float(np.mean(f_rep >= f_obs)),
        "diff_eti95": [float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))],
        "chi2_observed_mean": float(f_obs.mean()),
        "chi2_replicated_mean": float(f_rep.mean()),
        "draws": int(sigma.shape[0]),
    }


def residual_correlation_table(
    summary: pd.DataFrame, size: float = BSEM_DEFAULTS["residual_size"]
) -> pd.DataFrame:
    """The residual correlations from a summary, flagged when their 95% interval excludes 0.

    Columns ``pair``, ``mean``, ``eti95_low``, ``eti95_high``, ``excludes_zero``, ``large``
    (interval excludes 0 and ``|mean| >= size``), sorted by ``|mean|`` descending.
    """
    if not isinstance(size, int | float) or isinstance(size, bool) or not 0 <= size < 1:
        raise ValueError(f"residual_size must lie in [0, 1), got {size!r}")
    rows = summary[summary["parameter"].str.startswith("residual_correlation[")].copy()
    rows["pair"] = rows["parameter"].str.slice(len("residual_correlation["), -1)
    rows["excludes_zero"] = (rows["eti95_low"] > 0) | (rows["eti95_high"] < 0)
    rows["large"] = rows["excludes_zero"] & (rows["mean"].abs() >= size)
    rows = rows.reindex(rows["mean"].abs().sort_values(ascending=False).index)
    cols = ["pair", "mean", "sd", "eti95_low", "eti95_high", "excludes_zero", "large"]
    return rows[cols].reset_index(drop=True)


#: Parameters of the SBC of a BSEM (first element of each): a target loading, a cross-loading,
#: a residual SD, a factor correlation, a residual correlation and a standardized loading.
SBC_PARAMETERS = (
    "loading",
    "cross_loading",
    "theta_sd",
    "factor_correlation",
    "residual_correlation",
    "std_loading",
)


def bsem_sbc(
    n_reps: int,
    n_obs: int,
    measurement: Measurement,
    seed: int,
    *,
    prior_variance: float = 0.01,
    draws: int = 500,
    tune: int = 500,
    thin: int = 5,
    bins: int = 10,
    alpha: float = 0.01,
    cores: int = 2,
) -> dict[str, Any]:
    """Simulation-based calibration of the continuous BSEM (Talts et al. 2018).

    Each replication draws the parameters from the model's prior, simulates ``n_obs``
    respondents from the implied covariance matrix (mean 0), fits the model (compiled once;
    nutpie's ``with_data`` swaps in each dataset; the items used as given,
    ``standardize=False``, so that the fitted model is exactly the generating one) and
    records the rank of the true value of the first element of each of
    :data:`SBC_PARAMETERS` among the thinned draws. Uniform ranks (tested per parameter by
    :func:`alliance.bayes.calibration.rank_uniformity`, flagged at ``p < alpha``) mean the
    sampler recovers the posterior.

    Returns
    -------
    dict
        ``ranks`` (one row per replication), ``tests``, ``n_draws``, ``calibrated``,
        ``divergences`` (total), ``seconds``.

    References
    ----------
    Talts, S., Betancourt, M., Simpson, D., Vehtari, A., & Gelman, A. (2018). Validating
    Bayesian inference algorithms with simulation-based calibration. arXiv:1804.06788.
    """
    import time

    import nutpie
    import pymc as pm
    from threadpoolctl import threadpool_limits

    from alliance.bayes.calibration import rank_tests
    from alliance.bayes.nutpie_callbacks import compile_for_nutpie
    from alliance.bayes.sampling import reproducible_numba_compilation

    start = time.perf_counter()
    p = len(measurement.items)
    rng = np.random.default_rng(seed)
    dummy = pd.DataFrame(rng.normal(size=(n_obs, p)), columns=measurement.items)
    model = bsem_model(dummy, measurement, prior_variance=prior_variance, standardize=False)
    prior = pm.sample_prior_predictive(draws=n_reps, model=model, random_seed=seed).prior
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        with reproducible_numba_compilation():
            compiled = compile_for_nutpie(model)
        for r in range(n_reps):
            truth = {n: np.asarray(prior[n][0, r]).ravel()[0] for n in SBC_PARAMETERS}
            sigma = np.asarray(prior["implied_cov"][0, r])
            x = rng.multivariate_normal(np.zeros(p), sigma, size=n_obs)
            idata = nutpie.sample(
                compiled.with_data(x_obs=x),
                draws=draws,
                tune=tune,
                chains=2,
                cores=cores,
                seed=int(rng.integers(2**31)),
                target_accept=0.95,
                save_warmup=False,
                progress_bar=False,
            )
            row: dict[str, Any] = {"rep": r}
            row["divergences"] = int(np.asarray(idata.sample_stats["diverging"]).sum())
            for name in SBC_PARAMETERS:
                values = np.asarray(idata.posterior[name])[:, ::thin, 0].ravel()
                row[f"rank_{name}"] = int((values < truth[name]).sum())
                row[f"true_{name}"] = float(truth[name])
            row["n_draws"] = int(values.size)
            rows.append(row)
    ranks = pd.DataFrame(rows)
    tests, n_draws = rank_tests(ranks, SBC_PARAMETERS, bins, alpha)
    return {
        "ranks": ranks,
        "tests": tests,
        "n_draws": n_draws,
        "calibrated": all(t["uniform"] for t in tests.values()),
        "divergences": int(ranks["divergences"].sum()),
        "seconds": round(time.perf_counter() - start, 2),
    }
