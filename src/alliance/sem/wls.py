"""WLS with a given weight matrix: a correlation structure fitted to a pooled correlation matrix.

The second stage of Cheung's two-stage structural equation modelling (TSSEM; Cheung & Chan
2005; metaSEM's ``wls()``/``tssem2()``): a model is fitted to a pooled correlation matrix ``r``
(its off-diagonal elements, lavaan's ``vechs`` order) by minimizing
``F = (r - rho(x))' V^-1 (r - rho(x))`` with ``V`` the asymptotic covariance matrix of ``r``
(from stage 1, already divided by the sample size). The model is a correlation structure
(:meth:`alliance.sem.model.ModelSpec.from_syntax` with ``correlation=True``): factors are
scaled by unit variances and the residual variances are computed so that the implied
variances are 1. ``F`` at the minimum is the test statistic (chi-square with
``p(p-1)/2 - npar`` degrees of freedom), and ``(Delta' V^-1 Delta)^-1`` the covariance matrix
of the estimates (the weight is the inverse of the statistics' covariance, so no sandwich).

The fit is a :class:`alliance.sem.estimate.FitResult` (estimator ``"WLS"``), so the solution,
standardized solution and admissibility checks of the engine apply to it.

References
----------
Browne, M. W. (1984). Asymptotically distribution-free methods for the analysis of covariance
structures. British Journal of Mathematical and Statistical Psychology, 37, 62-83.
Cheung, M. W.-L., & Chan, W. (2005). Meta-analytic structural equation modeling: A two-stage
approach. Psychological Methods, 10(1), 40-64.
Cheung, M. W.-L. (2015). Meta-analysis: A structural equation modeling approach. Wiley.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from alliance.sem.blocks import GroupSum, Layout
from alliance.sem.estimate import FitResult, _levenberg_marquardt, not_identified
from alliance.sem.fitmeasures import cfi, rmsea, rmsea_ci, tli
from alliance.sem.information import wls_implied, wls_jacobian
from alliance.sem.model import ModelSpec, start_values
from alliance.sem.samplestats import GroupData, SampleStats, WLSStats, lower_pairs
from alliance.sem.syntax import model_variables, parse_syntax
from alliance.sem.teststats import chisq_pvalue

__all__ = [
    "WLSObjective",
    "correlation_fit_measures",
    "correlation_sample",
    "fit_correlation_structure",
]


class WLSObjective:
    """``F(x) = (s - sigma(x))' W (s - sigma(x))`` with a full weight matrix ``W``.

    One group. The residuals are ``U (s - sigma)`` with ``W = U'U`` (Cholesky), so the
    Levenberg-Marquardt minimizer of :mod:`alliance.sem.estimate` applies unchanged; ``J'J``
    is ``Delta' W Delta``.
    """

    def __init__(self, spec: ModelSpec, sample: SampleStats) -> None:
        wls = sample.groups[0].wls
        if wls is None or wls.weight is None or len(sample.groups) != 1:
            raise ValueError("WLS with a given weight needs one group with its weight matrix")
        self.spec = spec
        self.wls = wls
        self.root = np.linalg.cholesky(wls.weight).T
        self.layout = Layout.of(spec)
        self.n = sample.ntotal

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """``U (s - sigma(x))``."""
        return self.root @ (self.wls.obs - wls_implied(self.spec, x, 1, self.wls))

    def normal_equations(self, x: np.ndarray, r: np.ndarray) -> tuple[GroupSum, np.ndarray]:
        """``J'J = Delta' W Delta`` and ``J'r`` of the residuals ``r`` at ``x``."""
        jd = self.root @ wls_jacobian(self.spec, x, 1, self.wls)  # minus the Jacobian
        grad = np.zeros(len(x))
        grad[self.layout.local[0]] = -(jd.T @ r)
        return GroupSum(self.layout, [jd.T @ jd]), grad

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Value ``F`` and its gradient."""
        r = self.residuals(x)
        return float(r @ r), 2.0 * self.normal_equations(x, r)[1]


def _check_inputs(
    cor: np.ndarray, acov: np.ndarray, nobs: int, variables: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    cor = np.asarray(cor, dtype=float)
    acov = np.asarray(acov, dtype=float)
    p = len(variables)
    if cor.shape != (p, p):
        raise ValueError(f"cor must be {p} x {p} (one row per variable), got shape {cor.shape}")
    if not np.all(np.isfinite(cor)) or not np.allclose(cor, cor.T, atol=1e-10):
        raise ValueError("cor must be a finite symmetric matrix")
    if not np.allclose(np.diag(cor), 1.0, atol=1e-8):
        raise ValueError(f"cor must have a unit diagonal, got {np.diag(cor).tolist()}")
    k = p * (p - 1) // 2
    if acov.shape != (k, k):
        raise ValueError(
            f"acov must be {k} x {k} (one row per correlation of {p} variables), got shape "
            f"{acov.shape}"
        )
    if not np.all(np.isfinite(acov)) or not np.allclose(acov, acov.T, atol=1e-12):
        raise ValueError("acov must be a finite symmetric matrix")
    if isinstance(nobs, bool) or not isinstance(nobs, int | np.integer) or nobs < 2:
        raise ValueError(f"nobs must be a whole number >= 2, got {nobs!r}")
    if len(set(variables)) != p:
        raise ValueError(f"variable names must be unique, got {list(variables)}")
    return cor, acov


def correlation_sample(
    cor: np.ndarray, acov: np.ndarray, nobs: int, variables: Sequence[str]
) -> SampleStats:
    """The sample statistics of a correlation structure: ``r``, its weight ``V^-1`` and ``N``.

    Parameters
    ----------
    cor
        The (pooled) correlation matrix, ``p x p`` with a unit diagonal.
    acov
        The asymptotic covariance matrix of its off-diagonal elements in lavaan's ``vechs``
        order (column by column below the diagonal: r21, r31, ..., r32, ...), not multiplied
        by ``nobs``.
    nobs
        The total sample size (for the RMSEA and the BIC; it does not enter the fit).
    variables
        The names of the rows of ``cor``.

    Raises
    ------
    ValueError
        For matrices of the wrong shape, not symmetric, without a unit diagonal, or an
        ``acov`` that is not positive definite.
    """
    cor, acov = _check_inputs(cor, acov, nobs, variables)
    p = len(variables)
    pairs = lower_pairs(p, diagonal=False)
    try:
        weight = np.linalg.inv(np.linalg.cholesky(acov))
    except np.linalg.LinAlgError as err:
        raise ValueError(f"acov is not positive definite ({err})") from err
    weight = weight.T @ weight
    wls = WLSStats(
        obs=cor[pairs[:, 0], pairs[:, 1]],
        gamma=nobs * acov,
        n_means=0,
        n_th=0,
        pair_index=pairs,
        weight=weight,
    )
    group = GroupData("1", np.zeros((0, p)), np.zeros(p), cor.copy(), wls=wls, nobs=int(nobs))
    return SampleStats(ov=list(variables), groups=[group], missing="listwise")


def fit_correlation_structure(
    model: str,
    cor: np.ndarray,
    acov: np.ndarray,
    nobs: int,
    variables: Sequence[str],
    *,
    orthogonal: bool = False,
    max_nfev: int = 2000,
) -> FitResult:
    """Fit a model to a correlation matrix by WLS with the inverse of its asymptotic covariance.

    MASEM's stage 2 (metaSEM's ``tssem2()``/``wls()`` with ``cor.analysis = TRUE``): the
    factors have unit variances (lavaan's ``std.lv``; loadings are standardized loadings and
    factor covariances correlations) and the residual variances are ``1 - communality``
    (:class:`WLSObjective`). The model may use a subset of ``variables``: the rows and
    columns of ``cor`` and ``acov`` of the others are dropped.

    Parameters
    ----------
    model
        lavaan syntax (``=~``, ``~~``, ``~`` between factors, labels, fixed values, ``==``).
    cor, acov, nobs, variables
        See :func:`correlation_sample`.
    orthogonal
        Fix the factor covariances at 0 (bifactor models).
    max_nfev
        Iteration limit of the minimizer.

    Returns
    -------
    FitResult
        Estimator ``"WLS"``; ``chisq`` is ``F`` at the minimum, ``df = p(p-1)/2 - npar``;
        ``cov`` is ``(Delta' V^-1 Delta)^-1``. Non-convergence and a singular information
        matrix are recorded in ``converged`` and ``warnings``, never raised.

    Raises
    ------
    ValueError
        For bad matrices (see :func:`correlation_sample`), a model variable not in
        ``variables``, or inequality constraints (not supported here).
    """
    ov, _ = model_variables(parse_syntax(model))
    absent = [v for v in ov if v not in variables]
    if absent:
        raise ValueError(f"model variables not in the correlation matrix: {absent}")
    cor, acov = _check_inputs(cor, acov, nobs, variables)
    index = [list(variables).index(v) for v in ov]
    full_pairs = {tuple(sorted(pq)): k for k, pq in enumerate(lower_pairs(len(variables), False))}
    sub = [full_pairs[tuple(sorted((index[i], index[j])))] for i, j in lower_pairs(len(ov), False)]
    sample = correlation_sample(cor[np.ix_(index, index)], acov[np.ix_(sub, sub)], nobs, list(ov))
    spec = ModelSpec.from_syntax(model, std_lv=True, correlation=True, orthogonal=orthogonal)
    if spec.bounds:
        raise ValueError("inequality constraints are not supported in a correlation structure")
    fun = WLSObjective(spec, sample)
    x0 = start_values(spec, [sample.groups[0].cov], [np.zeros(len(ov))])
    with threadpool_limits(limits=1, user_api="blas"):
        x, resid, converged, nfev = _levenberg_marquardt(fun, x0, max_nfev=max_nfev)
        chisq = float(resid @ resid)
        df = len(sample.groups[0].wls.obs) - spec.npar  # type: ignore[union-attr]
        warnings = [] if converged else ["the optimizer did not converge (Levenberg-Marquardt)"]
        result = FitResult(
            spec=spec,
            sample=sample,
            x=x,
            estimator="WLS",
            missing="listwise",
            converged=bool(converged and np.isfinite(chisq)),
            iterations=nfev,
            message="converged" if converged else "Levenberg-Marquardt did not converge",
            fmin=chisq / (2 * nobs),
            chisq=chisq,
            df=int(df),
            logl=float("nan"),
            unrestricted_logl=float("nan"),
            warnings=warnings,
        )
        if df < 0:
            result.not_identified = not_identified(spec.npar, df)
            return result
        info, _ = fun.normal_equations(x, resid)
        result.information = info
        try:
            cov = info.inverse()
            if not np.all(np.isfinite(cov.diag())) or np.any(cov.diag() < 0):
                raise np.linalg.LinAlgError("not positive definite")
            result.cov = cov
        except np.linalg.LinAlgError as err:
            result.warnings.append(f"standard errors unavailable: {err}")
    return result


def correlation_fit_measures(result: FitResult) -> dict[str, Any]:
    """Fit measures of a correlation structure fitted by :func:`fit_correlation_structure`.

    ``chisq`` = ``F`` with ``df``; the baseline (independence) model has all correlations 0:
    ``baseline.chisq = r' V^-1 r`` with ``p(p-1)/2`` df (metaSEM's ``indepModelChisq``);
    ``cfi``, ``tli`` from both; ``rmsea`` (with its 90% interval) as lavaan, with ``N`` in the
    denominator (metaSEM's ``summary.wls`` divides by ``N - 1``); ``srmr`` the root mean
    square of the residual correlations (off-diagonal, as metaSEM); ``aic = chisq - 2 df``
    and ``bic = chisq - log(N) df`` (metaSEM's information criteria of a WLS fit: smaller is
    better; differences between models are those of the usual AIC/BIC).

    Returns
    -------
    dict
        ``npar, df, chisq, pvalue, baseline.chisq, baseline.df, cfi, tli, rmsea,
        rmsea.ci.lower, rmsea.ci.upper, srmr, aic, bic, ntotal``.
    """
    wls = result.sample.groups[0].wls
    assert wls is not None and wls.weight is not None
    n = result.ntotal
    x2, df = result.chisq, result.df
    x2_null = float(wls.obs @ wls.weight @ wls.obs)
    df_null = len(wls.obs)
    resid = wls.obs - wls_implied(result.spec, result.x, 1, wls)
    low, high = rmsea_ci(x2, df, n)
    return {
        "npar": int(result.npar),
        "df": int(df),
        "chisq": x2,
        "pvalue": chisq_pvalue(x2, df),
        "baseline.chisq": x2_null,
        "baseline.df": int(df_null),
        "cfi": cfi(x2, df, x2_null, df_null),
        "tli": tli(x2, df, x2_null, df_null),
        "rmsea": rmsea(x2, df, n),
        "rmsea.ci.lower": low,
        "rmsea.ci.upper": high,
        "srmr": float(math.sqrt(np.mean(resid**2))),
        "aic": x2 - 2.0 * df,
        "bic": x2 - math.log(n) * df,
        "ntotal": int(n),
    }
