"""Estimation: ML, FIML and DWLS behind one fit result (lavaan's lav_model_estimate and _vcov).

One :class:`FitResult` for every estimator: ``"ML"`` (normal-theory ML; expected-information
SEs), ``"MLR"`` (ML with Huber-White SEs) and ``"WLSMV"`` (diagonally weighted least squares on
the statistics of :class:`alliance.sem.samplestats.WLSStats`: polychoric correlations and
thresholds of ordered items, or covariances of continuous ones; robust "sandwich" SEs). Missing
data by FIML (ML/MLR) or in the sample statistics (listwise; pairwise for ordered items). The
test statistics are :mod:`alliance.sem.teststats`; fit measures :mod:`alliance.sem.fitmeasures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from alliance.sem.blocks import BlockLowRank, GroupSum, Layout, condition_number
from alliance.sem.information import (
    dwls_information_blocks,
    expected_information_blocks,
    model_scores,
    observed_information_blocks,
    wls_implied,
    wls_jacobian,
)
from alliance.sem.model import ModelSpec, start_values
from alliance.sem.mvnorm import LOG2PI, pattern_stats
from alliance.sem.samplestats import SampleStats, fill_h1, saturated_logl

__all__ = [
    "ESTIMATORS",
    "DWLSObjective",
    "FIMLObjective",
    "FitResult",
    "MLObjective",
    "estimate",
    "evaluate",
    "fmin_gradient",
    "ndat",
    "not_identified",
    "objective",
]

#: Estimators understood by :func:`estimate`.
ESTIMATORS = ("ML", "MLR", "WLSMV")


# --------------------------------------------------------------------------- results


@dataclass
class FitResult:
    """Everything downstream modules need about one fitted model, whatever the estimator.

    Attributes
    ----------
    spec, sample
        Model and data.
    x
        Estimates (free vector).
    estimator, missing
        ``"ML"``, ``"MLR"`` or ``"WLSMV"``; ``"listwise"``, ``"fiml"`` or ``"pairwise"``.
    converged, iterations, message
        Optimizer report.
    fmin
        lavaan's ``fmin``: ``chisq / (2N)``.
    chisq, df
        The standard test statistic (likelihood ratio, or the DWLS statistic
        ``sum_g (N_g - 1) F_g``) and its degrees of freedom.
    logl, unrestricted_logl
        Log-likelihoods of the model and of the saturated model (``nan`` for WLSMV).
    cov
        Covariance matrix of ``x`` as group blocks plus a low-rank part
        (:class:`alliance.sem.blocks.BlockLowRank`; ``None`` if the information matrix is
        singular or the model is not identified); :attr:`vcov` is the dense ``q x q`` matrix.
    information
        Per-observation information used for the (non-robust) SEs; ``E`` in the sandwich,
        as group blocks (:class:`alliance.sem.blocks.GroupSum`).
    warnings
        Problems found on the way (never raised).
    notes
        Remarks for the output's ``meta.notes`` (e.g. why a robust index is not defined).
    not_identified
        The status issue of a model with more free parameters than sample statistics
        (``df < 0``; :func:`alliance.sem.validity.not_identified`), else ``None``.
    active_bounds
        Indices of the free parameters held at an inequality bound (SE 0, as lavaan).
    extra
        Estimator-specific intermediate results (``E_inv``, scores, Jacobians, tests).
    """

    spec: ModelSpec
    sample: SampleStats
    x: np.ndarray
    estimator: str
    missing: str
    converged: bool
    iterations: int
    message: str
    fmin: float
    chisq: float
    df: int
    logl: float
    unrestricted_logl: float
    cov: BlockLowRank | None = None
    information: GroupSum | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_identified: str | None = None
    active_bounds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def vcov(self) -> np.ndarray | None:
        """Dense covariance matrix of ``x`` (``q x q``; ``None`` if unavailable).

        Built from :attr:`cov` on each call: with many groups prefer ``cov`` (its
        ``diag()``, ``local(g)``, ``sub(idx)``).
        """
        return None if self.cov is None else self.cov.dense()

    @vcov.setter
    def vcov(self, value: np.ndarray | None) -> None:
        if value is None:
            self.cov = None
            return
        value = np.asarray(value, dtype=float)
        q = value.shape[0]
        if value.shape != (q, q):
            raise ValueError(f"vcov must be a square matrix, got shape {value.shape}")
        layout = Layout.from_local(q, [np.arange(q)])
        self.cov = BlockLowRank(layout, [value], np.zeros((q, 0)), np.zeros((0, 0)))

    @property
    def npar(self) -> int:
        """Number of free parameters."""
        return self.spec.npar

    @property
    def ntotal(self) -> int:
        """Number of observations used."""
        return self.sample.ntotal

    @property
    def nobs(self) -> list[int]:
        """Observations used per group."""
        return [g.n for g in self.sample.groups]

    @property
    def categorical(self) -> bool:
        """True for ordered items (polychoric statistics)."""
        return bool(self.sample.ordered)

    @property
    def se(self) -> np.ndarray:
        """Standard errors of ``x`` (nan if unavailable)."""
        if self.cov is None:
            return np.full(self.npar, np.nan)
        d = self.cov.diag()
        return np.sqrt(np.where(d >= 0, d, np.nan))

    def implied(self) -> list[Any]:
        """Implied moments per group at the estimates."""
        return self.spec.implied(self.x)


def ndat(spec: ModelSpec, sample: SampleStats | None = None) -> int:
    """Number of sample statistics.

    Normal theory: ``p(p+1)/2`` (+ ``p`` with means) per group; (D)WLS: the length of each
    group's statistics (thresholds and correlations of ordered items).
    """
    if sample is not None and all(g.wls is not None for g in sample.groups):
        return int(sum(len(g.wls.obs) for g in sample.groups))  # type: ignore[union-attr]
    p = spec.p
    per = p * (p + 1) // 2 + (p if spec.meanstructure else 0)
    return per * spec.ngroups


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


# --------------------------------------------------------------------------- objectives


class MLObjective:
    """lavaan's ML discrepancy for complete data, summed over groups with weights n_g / N.

    ``F(x) = sum_g (n_g/N) [log|Sigma_g| + tr(S_g Sigma_g^-1) - log|S_g| - p
    + (ybar_g - mu_g)' Sigma_g^-1 (ybar_g - mu_g)]`` (the mean term only with a mean
    structure); lavaan's ``fmin`` is ``F / 2`` and the test statistic ``chisq = N F``.
    """

    def __init__(self, spec: ModelSpec, sample: SampleStats) -> None:
        self.spec = spec
        self.sample = sample
        n = sample.ntotal
        self.w = [g.n / n for g in sample.groups]
        self.logdet_s = [np.linalg.slogdet(g.cov)[1] for g in sample.groups]

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and analytic gradient; ``inf`` when an implied matrix is not positive definite."""
        spec = self.spec
        total = 0.0
        grad = np.zeros(spec.npar)
        p = spec.p
        for gi, g in enumerate(self.sample.groups):
            imp = spec.implied(x, gi + 1)[0]
            try:
                chol = np.linalg.cholesky(imp.sigma)
            except np.linalg.LinAlgError:
                return np.inf, np.zeros(spec.npar)
            logdet = 2.0 * np.log(np.diag(chol)).sum()
            si = np.linalg.inv(imp.sigma)
            w = g.cov
            val = logdet + np.trace(g.cov @ si) - self.logdet_s[gi] - p
            g_mu = None
            if spec.meanstructure:
                d = g.mean - imp.mu
                val += d @ si @ d
                w = g.cov + np.outer(d, d)
                g_mu = -2.0 * (si @ d)
            g_sigma = si - si @ w @ si
            total += self.w[gi] * val
            idx = spec.group_free(gi + 1)
            grad[idx] += self.w[gi] * spec.chain(x, gi + 1, g_sigma, g_mu, local=True)
        return float(total), grad


class FIMLObjective:
    """``-2 logL / N`` of the casewise (FIML) likelihood, with its analytic gradient.

    Per pattern with observed variables ``o``: ``-2 log L_p = n_p (p_o log 2 pi +
    log|Sigma_oo|) + tr(Sigma_oo^-1 W_p)``, ``W_p = sum_i (y_io - mu_o)(y_io - mu_o)'``.

    References
    ----------
    Arbuckle, J. L. (1996). Full information estimation in the presence of incomplete data.
    In G. A. Marcoulides & R. E. Schumacker (Eds.), Advanced structural equation modeling
    (pp. 243-277). Erlbaum.
    """

    def __init__(self, spec: ModelSpec, sample: SampleStats) -> None:
        if not spec.meanstructure:
            raise ValueError("FIML needs a mean structure (meanstructure=True)")
        self.spec = spec
        self.sample = sample
        self.n = sample.ntotal
        self.pstats = [pattern_stats(g.X, g.patterns) for g in sample.groups]

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient; ``inf`` if an implied covariance block is not positive definite."""
        spec = self.spec
        p = spec.p
        total = 0.0
        grad = np.zeros(spec.npar)
        for gi, pst in enumerate(self.pstats):
            imp = spec.implied(x, gi + 1)[0]
            gs = np.zeros((p, p))
            gm = np.zeros(p)
            for o, n, ybar, scat in pst:
                s = imp.sigma[np.ix_(o, o)]
                try:
                    chol = np.linalg.cholesky(s)
                except np.linalg.LinAlgError:
                    return np.inf, np.zeros(spec.npar)
                logdet = 2.0 * np.log(np.diag(chol)).sum()
                si = np.linalg.inv(s)
                d = ybar - imp.mu[o]
                w = scat + n * np.outer(d, d)
                total += n * (len(o) * LOG2PI + logdet) + np.sum(si * w)
                gs[np.ix_(o, o)] += n * si - si @ w @ si
                gm[o] += -2.0 * n * (si @ d)
            idx = spec.group_free(gi + 1)
            grad[idx] += spec.chain(x, gi + 1, gs / self.n, gm / self.n, local=True)
        return float(total / self.n), grad


class DWLSObjective:
    """lavaan's DWLS discrepancy ``F = sum_g (N_g - 1)/N (s_g - sigma_g)' W_g (s_g - sigma_g)``.

    ``s_g`` are the sample statistics of group ``g`` (:class:`alliance.sem.samplestats.WLSStats`),
    ``sigma_g`` the implied ones and ``W_g`` the inverse diagonal of Gamma (Muthen, du Toit &
    Spisic 1997). lavaan scales each group's discrepancy by ``(N_g - 1)/N_g``
    (lav_model_objective), so ``chisq = N F = sum_g (N_g - 1) F_g`` and ``fmin = F / 2``.
    """

    def __init__(self, spec: ModelSpec, sample: SampleStats) -> None:
        self.spec = spec
        self.sample = sample
        self.n = sample.ntotal
        self.wls = [g.wls for g in sample.groups]
        if any(w is None for w in self.wls):
            raise ValueError("DWLS needs the WLS statistics of every group (WLSMV)")
        self.sw = [np.sqrt((g.n - 1.0) * g.wls.v_diag) for g in sample.groups]  # type: ignore[union-attr]
        self.layout = Layout.of(spec)

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """``sqrt((N_g - 1) W_g) (s_g - sigma_g)`` of all groups, stacked."""
        parts = []
        for gi, (w, sw) in enumerate(zip(self.wls, self.sw, strict=True)):
            parts.append(sw * (w.obs - wls_implied(self.spec, x, gi + 1, w)))
        return np.concatenate(parts)

    def normal_equations(self, x: np.ndarray, r: np.ndarray) -> tuple[GroupSum, np.ndarray]:
        """``J'J`` (group blocks) and ``J'r`` of the residuals ``r`` at ``x``."""
        blocks, grad, pos = [], np.zeros(len(x)), 0
        for gi, (w, sw, idx) in enumerate(zip(self.wls, self.sw, self.layout.local, strict=True)):
            jd = sw[:, None] * wls_jacobian(self.spec, x, gi + 1, w)  # minus the Jacobian
            blocks.append(jd.T @ jd)
            grad[idx] -= jd.T @ r[pos : pos + len(sw)]
            pos += len(sw)
        return GroupSum(self.layout, blocks), grad

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Value ``F`` and gradient ``-(2/N) sum_g (N_g - 1) Delta_g' W_g (s_g - sigma_g)``."""
        r = self.residuals(x)
        _, grad = self.normal_equations(x, r)
        return float(r @ r) / self.n, 2.0 * grad / self.n


def objective(spec: ModelSpec, sample: SampleStats, estimator: str) -> Any:
    """The discrepancy the estimator minimizes (value, gradient): ML, FIML or DWLS."""
    if estimator == "WLSMV":
        return DWLSObjective(spec, sample)
    if sample.missing == "fiml":
        fill_h1(sample)
        return FIMLObjective(spec, sample)
    return MLObjective(spec, sample)


def fmin_gradient(spec: ModelSpec, x: np.ndarray, result: FitResult) -> np.ndarray:
    """Gradient of lavaan's ``fmin`` by ``x`` for the estimator of ``result``.

    ``spec`` is any model on the same data, e.g. the model extended by candidate parameters.
    """
    return 0.5 * objective(spec, result.sample, result.estimator)(x)[1]


# --------------------------------------------------------------------------- estimation


def estimate(
    spec: ModelSpec,
    sample: SampleStats,
    estimator: str = "ML",
    x0: np.ndarray | None = None,
    max_iter: int = 2000,
) -> FitResult:
    """Fit a model by ML (complete data or FIML) or DWLS and compute standard errors.

    ML with complete data minimizes lavaan's discrepancy (see :class:`MLObjective`); with
    ``sample.missing == "fiml"`` the casewise likelihood (:class:`FIMLObjective`): Fisher
    scoring (L-BFGS-B if it stalls), then Newton steps. Standard errors: ML complete data,
    the expected information; ML with FIML, the observed information (Hessian); MLR, the
    Huber-White sandwich ``E^-1 B E^-1 / N`` with ``E`` the observed information and ``B`` the
    cross-product of casewise scores (lavaan 0.6 defaults). WLSMV minimizes the DWLS
    discrepancy (:class:`DWLSObjective`) by Levenberg-Marquardt; SEs are the sandwich
    ``E^-1 (sum_g f_g Delta' W Gamma W Delta) E^-1 / (N - G)`` with ``E = sum_g f_g Delta' W
    Delta`` (lavaan ``se = "robust.sem"``). With inequality constraints (``label > value``)
    an estimate outside its bound is refitted with the bounds (projected Newton); a parameter
    held at its bound gets SE 0 and the others their SEs given it, as lavaan.

    Parameters
    ----------
    spec, sample
        Model and data (see :mod:`alliance.sem.samplestats`).
    estimator
        ``"ML"``, ``"MLR"`` or ``"WLSMV"``.
    x0
        Starting values (default: :func:`alliance.sem.model.start_values`).
    max_iter
        Iteration limit of the optimizer.

    Returns
    -------
    FitResult
        Never raises for estimation problems: non-convergence and singular information
        matrices are recorded in ``converged`` and ``warnings``. A model with more free
        parameters than sample statistics is estimated, as lavaan does, but gets no standard
        errors under WLSMV (``not_identified``).

    References
    ----------
    Joreskog, K. G. (1969). A general approach to confirmatory maximum likelihood factor
    analysis. Psychometrika, 34(2), 183-202.
    Muthen, B., du Toit, S. H. C., & Spisic, D. (1997). Robust inference using weighted least
    squares and quadratic estimating equations in latent variable modeling with categorical
    and continuous outcomes. Unpublished manuscript.
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36.
    """
    estimator = estimator.upper()
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if spec.ordered and estimator != "WLSMV":
        raise ValueError(f"ordered indicators need the WLSMV estimator, got {estimator!r}")
    if list(sample.ov) != list(spec.ov):
        raise ValueError(f"sample variables {sample.ov} differ from the model's {spec.ov}")
    if len(sample.groups) != spec.ngroups:
        raise ValueError(
            f"the model has {spec.ngroups} groups but the data have {len(sample.groups)}"
        )
    # the matrices are small: one BLAS thread is much faster than several competing ones
    with threadpool_limits(limits=1, user_api="blas"):
        if estimator == "WLSMV":
            return _estimate_dwls(spec, sample, x0)
        return _estimate_ml(spec, sample, estimator, x0, max_iter)


def _estimate_ml(
    spec: ModelSpec,
    sample: SampleStats,
    estimator: str,
    x0: np.ndarray | None,
    max_iter: int,
) -> FitResult:
    fiml = sample.missing == "fiml"
    n = sample.ntotal
    warnings: list[str] = []
    if n <= spec.npar:
        warnings.append(f"fewer observations ({n}) than free parameters ({spec.npar})")
    fun = objective(spec, sample, estimator)
    if x0 is None:
        x0 = start_values(spec, [g.cov for g in sample.groups], [g.mean for g in sample.groups])
    x0 = np.asarray(x0, dtype=float)
    if not np.isfinite(fun(x0)[0]):
        x0 = _safe_start(spec, sample)

    def hess_expected(xx: np.ndarray) -> GroupSum:
        return expected_information_blocks(spec, xx, sample).scaled(2.0)

    x, ok, nit, msg = _fisher_scoring(fun, hess_expected, x0, min(max_iter, FISHER_MAX_ITER))
    if not ok and nit < max_iter:
        x, ok2, nit2, msg = _minimize(fun, x, max_iter - nit)
        nit += nit2
        x, _ = _polish(fun, hess_expected, x, steps=20)
        ok = ok2
    if fiml:

        def hess(xx: np.ndarray) -> GroupSum:
            return observed_information_blocks(spec, xx, sample).scaled(2.0)

        x, gmax = _polish(fun, hess, x, steps=1)
    else:
        hess = hess_expected
        x, gmax = _polish(fun, hess_expected, x, steps=2)
    x, gmax, active = _respect_bounds(spec, fun, hess, x, gmax)
    converged = bool(np.isfinite(fun(x)[0]) and gmax < 1e-5 and nit <= max_iter)
    if not converged:
        warnings.append(f"the optimizer did not converge ({msg}; max |gradient| {gmax:.2g})")
    return _finish(spec, sample, estimator, x, fun, converged, nit, msg, warnings, active)


def _estimate_dwls(spec: ModelSpec, sample: SampleStats, x0: np.ndarray | None) -> FitResult:
    fun = DWLSObjective(spec, sample)
    if x0 is None:
        x0 = _dwls_start(spec, sample)
    x, resid, converged, nfev = _levenberg_marquardt(fun, x0)
    msg = "converged" if converged else "Levenberg-Marquardt did not converge"

    def hess(xx: np.ndarray) -> GroupSum:
        return fun.normal_equations(xx, fun.residuals(xx))[0].scaled(2.0 / fun.n)

    gmax = float(np.max(np.abs(fun(x)[1]), initial=0.0))
    x, gmax, active = _respect_bounds(spec, fun, hess, x, gmax)
    warnings = [] if converged else [f"the optimizer did not converge ({msg})"]
    return _finish(spec, sample, "WLSMV", x, fun, converged, nfev, msg, warnings, active)


def _dwls_start(spec: ModelSpec, sample: SampleStats) -> np.ndarray:
    """Starting values of a DWLS fit.

    :func:`start_values` on the sample moments (polychoric correlations of ordered items),
    sample thresholds, scale factors 1 and intercepts of ordered items 0.
    """
    x0 = start_values(spec, [g.cov for g in sample.groups], [g.mean for g in sample.groups])
    seen: set[int] = set()
    for g in range(1, spec.ngroups + 1):
        ordinal = sample.groups[g - 1].ordinal
        if ordinal is None:
            continue
        th = ordinal.th_vector
        for r in spec.rows(g):
            if not r.free or r.free in seen:
                continue
            if r.op == "|":
                x0[r.free - 1] = th[r.row]
                seen.add(r.free)
            elif r.op == "~*~":
                x0[r.free - 1] = 1.0
                seen.add(r.free)
            elif r.op == "~1":
                x0[r.free - 1] = 0.0
                seen.add(r.free)
    return x0


def evaluate(spec: ModelSpec, sample: SampleStats, estimator: str, x: np.ndarray) -> FitResult:
    """A :class:`FitResult` at given parameter values, without optimizing (e.g. baselines)."""
    estimator = estimator.upper()
    fun = objective(spec, sample, estimator)
    with threadpool_limits(limits=1, user_api="blas"):
        return _finish(spec, sample, estimator, np.asarray(x, float), fun, True, 0, "", [])


def _finish(
    spec: ModelSpec,
    sample: SampleStats,
    estimator: str,
    x: np.ndarray,
    fun: Any,
    converged: bool,
    nit: int,
    msg: str,
    warnings: list[str],
    active: np.ndarray | None = None,
) -> FitResult:
    n = sample.ntotal
    fval = fun(x)[0]
    if estimator == "WLSMV":
        chisq = n * fval
        logl = h1 = float("nan")
    elif sample.missing == "fiml":
        logl = -0.5 * n * fval
        h1 = sample.h1_logl
        chisq = 2.0 * (h1 - logl)
    else:
        chisq = n * fval
        h1 = saturated_logl(sample)
        logl = h1 - 0.5 * chisq
    df = ndat(spec, sample if estimator == "WLSMV" else None) - spec.npar
    result = FitResult(
        spec=spec,
        sample=sample,
        x=x,
        estimator=estimator,
        missing=sample.missing,
        converged=converged,
        iterations=nit,
        message=msg,
        fmin=float(chisq / (2 * n)),
        chisq=float(chisq),
        df=int(df),
        logl=float(logl),
        unrestricted_logl=float(h1),
        warnings=warnings,
        active_bounds=np.zeros(0, dtype=int) if active is None else active,
    )
    if df < 0:  # as lavaan: estimated, but no test or fit indices
        result.not_identified = not_identified(spec.npar, df)
    if estimator == "WLSMV":
        if df < 0:  # and, under WLSMV, no standard errors
            return result
        _dwls_standard_errors(result)
    else:
        _standard_errors(result)
    return result


# --------------------------------------------------------------------------- optimizers


#: Fisher scoring iterations before the quasi-Newton fallback. Identified, admissible models
#: converge in well under 100; a model drifting toward a boundary (a Heywood case, an
#: empirically under-identified bifactor ESEM) crawls linearly, and with FIML each iteration
#: costs a pass over every missing-data pattern: the demo's bifactor ESEM under MLR spent 70 s
#: in 2,000 scoring iterations and ends where L-BFGS ends after 300 (10 s).
FISHER_MAX_ITER = 300


def _minimize(fun: Any, x0: np.ndarray, max_iter: int) -> tuple[np.ndarray, bool, int, str]:
    res = optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "maxfun": 4 * max_iter, "ftol": 1e-15, "gtol": 1e-9},
    )
    ok = bool(res.success) or "REL_REDUCTION_OF_F" in str(res.message)
    return np.asarray(res.x, dtype=float), ok, int(res.nit), str(res.message)


def _polish(fun: Any, hess: Any, x: np.ndarray, steps: int = 6) -> tuple[np.ndarray, float]:
    """Newton/Fisher-scoring steps with step halving from ``x``; returns (x, gradient norm)."""
    f, g = fun(x)
    for _ in range(steps):
        if np.max(np.abs(g)) < 1e-10:
            break
        try:
            step = hess(x).solve(g)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-4:
            xn = x - t * step
            fn, gn = fun(xn)
            if np.isfinite(fn) and fn <= f + 1e-14:
                x, f, g = xn, fn, gn
                break
            t /= 2
        else:
            break
    return x, float(np.max(np.abs(g))) if len(g) else 0.0


def _fisher_scoring(
    fun: Any, hess: Any, x: np.ndarray, max_iter: int, gtol: float = 1e-9
) -> tuple[np.ndarray, bool, int, str]:
    """Fisher scoring with step halving and Levenberg-Marquardt damping.

    ``x <- x - (H + lambda I)^-1 g`` with ``H`` twice the expected information (the expected
    Hessian of the ML discrepancy); the step is halved until the discrepancy decreases.
    """
    f, g = fun(x)
    if not np.isfinite(f):
        return x, False, 0, "non-finite objective at the starting values"
    lam = 0.0
    for it in range(1, max_iter + 1):
        if np.max(np.abs(g)) < gtol:
            return x, True, it - 1, "converged (max |gradient| below tolerance)"
        try:
            h = hess(x)
            step = h.plus_diag(lam * np.maximum(h.diag(), 1e-8)).solve(g)
        except np.linalg.LinAlgError:
            lam = max(10 * lam, 1e-3)
            continue
        t = 1.0
        improved = False
        while t > 1e-6:
            xn = x - t * step
            fn, gn = fun(xn)
            if np.isfinite(fn) and fn <= f + 1e-13 * max(1.0, abs(f)):
                improved = True
                break
            t /= 2
        if not improved:
            if lam > 1e6:
                return x, False, it, "no descent step found"
            lam = max(10 * lam, 1e-3)
            continue
        lam = lam / 10 if lam > 1e-8 else 0.0
        converged = abs(f - fn) < 1e-15 * max(1.0, abs(f)) and np.max(np.abs(gn)) < 1e-6
        x, f, g = xn, fn, gn
        if converged:
            return x, True, it, "converged (no further decrease)"
    return x, bool(np.max(np.abs(g)) < gtol), max_iter, "iteration limit reached"


def _levenberg_marquardt(
    fun: DWLSObjective, x0: np.ndarray, max_nfev: int = 2000, tol: float = 1e-12
) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """Minimise the DWLS residual sum of squares by Levenberg-Marquardt, group by group.

    The Jacobian of group ``g``'s residuals involves only its own parameters
    (``spec.group_free(g)``), so the normal equations ``(J'J + lambda diag(J'J)) step = -J'r``
    are a :class:`alliance.sem.blocks.GroupSum` solved by block elimination: the cost per
    iteration grows linearly with the number of groups (a dense least-squares solver, such as
    MINPACK's, grows with its cube). Marquardt's (1963) scaling of the damping by the
    diagonal; a step is taken when it lowers the discrepancy. Stops when the relative
    decrease and the relative step are below ``tol``, or the gradient vanishes, as MINPACK's
    ``ftol``/``xtol``/``gtol`` (Moré 1978).

    Returns
    -------
    x, residuals, converged, nfev

    References
    ----------
    Marquardt, D. W. (1963). An algorithm for least-squares estimation of nonlinear
    parameters. Journal of the Society for Industrial and Applied Mathematics, 11(2),
    431-441.
    Moré, J. J. (1978). The Levenberg-Marquardt algorithm: Implementation and theory. In
    G. A. Watson (Ed.), Numerical Analysis (Lecture Notes in Mathematics 630, pp. 105-116).
    Springer.
    """
    x = np.asarray(x0, dtype=float).copy()
    r = fun.residuals(x)
    cost = float(r @ r)
    nfev, lam, converged = 1, 1e-3, False
    if not np.isfinite(cost):
        return x, r, False, nfev
    jtj, grad = fun.normal_equations(x, r)
    while nfev < max_nfev:
        if np.max(np.abs(grad), initial=0.0) <= tol * max(cost, 1e-300):
            converged = True
            break
        diag = np.maximum(jtj.diag(), 1e-12)
        try:
            step = jtj.plus_diag(lam * diag).solve(-grad)
        except np.linalg.LinAlgError:
            lam *= 10.0
            if lam > 1e16:
                break
            continue
        x_new = x + step
        r_new = fun.residuals(x_new)
        nfev += 1
        cost_new = float(r_new @ r_new)
        if np.isfinite(cost_new) and cost_new <= cost:
            small_step = np.linalg.norm(step) <= tol * (np.linalg.norm(x) + tol)
            small_drop = cost - cost_new <= tol * cost
            x, r = x_new, r_new
            done = small_step or (small_drop and lam <= 1e-3)
            cost = cost_new
            lam = max(lam / 10.0, 1e-12)
            jtj, grad = fun.normal_equations(x, r)
            if done:
                converged = True
                break
        else:
            lam *= 10.0
            if lam > 1e16:
                break
    return x, r, converged, nfev


def _respect_bounds(
    spec: ModelSpec, fun: Any, hess: Any, x: np.ndarray, gmax: float
) -> tuple[np.ndarray, float, np.ndarray]:
    """Refit with the inequality constraints if an estimate is outside its bound.

    Projected Newton (Bertsekas 1982): parameters at a bound whose gradient points outwards
    stay there; Newton steps on the others are projected back into the bounds. Returns the
    estimates, the largest gradient of the parameters not held at a bound, and the indices of
    those that are.

    References
    ----------
    Bertsekas, D. P. (1982). Projected Newton methods for optimization problems with simple
    constraints. SIAM Journal on Control and Optimization, 20(2), 221-246.
    """
    none = np.zeros(0, dtype=int)
    if not spec.bounds:
        return x, gmax, none
    lower, upper = spec.bound_arrays()
    if np.all((x >= lower) & (x <= upper)):
        return x, gmax, none
    x = np.clip(x, lower, upper)
    f, g = fun(x)
    eps = 1e-10
    active = np.zeros(len(x), dtype=bool)
    for _ in range(200):
        active = ((x <= lower + eps) & (g > 0)) | ((x >= upper - eps) & (g < 0))
        free = ~active
        if np.max(np.abs(g[free]), initial=0.0) < 1e-10:
            break
        h = hess(x).dense()[np.ix_(free, free)]
        try:
            step = np.linalg.solve(h, g[free])
        except np.linalg.LinAlgError:
            step = g[free]
        t, moved = 1.0, False
        while t > 1e-8:
            xn = x.copy()
            xn[free] = x[free] - t * step
            xn = np.clip(xn, lower, upper)
            fn, gn = fun(xn)
            if np.isfinite(fn) and fn <= f + 1e-15 * max(1.0, abs(f)):
                moved = True
                break
            t /= 2
        if not moved:
            break
        x, f, g = xn, fn, gn
    return x, float(np.max(np.abs(g[~active]), initial=0.0)), np.flatnonzero(active)


def _safe_start(spec: ModelSpec, sample: SampleStats) -> np.ndarray:
    """Very plain starting values: loadings 1, variances half the observed, covariances 0."""
    x = np.zeros(spec.npar)
    covs = [g.cov for g in sample.groups]
    for r in spec.table:
        if not r.free:
            continue
        s = covs[r.group - 1]
        if r.op == "=~":
            x[r.free - 1] = 1.0
        elif r.op == "~~" and r.lhs == r.rhs:
            if r.lhs in spec.ov:
                i = spec.ov.index(r.lhs)
                x[r.free - 1] = 0.5 * s[i, i]
            else:
                x[r.free - 1] = 0.05
        elif r.op == "~1" and r.lhs in spec.ov:
            x[r.free - 1] = sample.groups[r.group - 1].mean[spec.ov.index(r.lhs)]
    return x


# --------------------------------------------------------------------------- standard errors


def _inverse(info: GroupSum, active: np.ndarray) -> BlockLowRank:
    """``info^-1`` by group blocks, or without the parameters held at a bound.

    With active bounds: the inverse of the rest, zero rows and columns for those (lavaan's
    inverse with the active constraints).
    """
    if not len(active):
        return info.inverse()
    dense = info.dense()
    keep = np.setdiff1d(np.arange(info.q), active)
    out = np.zeros_like(dense)
    out[np.ix_(keep, keep)] = np.linalg.inv(dense[np.ix_(keep, keep)])
    return BlockLowRank.from_dense(info.layout, out)


def _check_cov(result: FitResult) -> None:
    cov = result.cov
    assert cov is not None
    finite = all(np.all(np.isfinite(b)) for b in cov.own_blocks) and bool(
        np.all(np.isfinite(cov.lr)) and np.all(np.isfinite(cov.core))
    )
    if not finite or np.any(cov.diag() < -1e-15):
        result.warnings.append("the covariance matrix of the estimates is not positive definite")


def _standard_errors(result: FitResult) -> None:
    """Covariance matrix of the ML/MLR estimates, kept as group blocks (:mod:`.blocks`).

    ML: ``E^-1 / N``; MLR: ``E^-1 B0 E^-1 / N`` with ``B0 = sum_g S_g' S_g / N`` from the
    casewise scores ``S_g`` of each group on its own parameters. ``extra`` keeps ``E_inv``
    and, for MLR, ``B0_group`` (per group, ``S_g' S_g / n_g`` on ``spec.group_free(g)``).
    """
    spec, sample, x = result.spec, result.sample, result.x
    n = sample.ntotal
    fiml = result.missing == "fiml"
    try:
        if fiml or result.estimator == "MLR":
            # observed information: Hessian of -logl/N (= F/2 for complete data)
            info = observed_information_blocks(spec, x, sample)
        else:
            info = expected_information_blocks(spec, x, sample)
        result.information = info
        e_inv = _inverse(info, result.active_bounds)
        if not len(result.active_bounds) and condition_number(info, e_inv) > 1e14:
            raise np.linalg.LinAlgError("information matrix is (nearly) singular")
    except np.linalg.LinAlgError as err:
        result.warnings.append(f"standard errors unavailable: {err}")
        result.cov = None
        return
    if result.estimator == "MLR":
        scores = model_scores(spec, x, sample, local=True)
        b0 = GroupSum(info.layout, [sc.T @ sc / n for sc in scores])
        result.extra["B0_group"] = [sc.T @ sc / sc.shape[0] for sc in scores]
        result.cov = e_inv.sandwich(b0).scaled(1.0 / n)
    else:
        result.cov = e_inv.scaled(1.0 / n)
    result.extra["E_inv"] = e_inv
    _check_cov(result)


def _dwls_standard_errors(result: FitResult) -> None:
    """Robust ("robust.sem") covariance matrix of the DWLS estimates, by group blocks.

    ``E^-1 (sum_g f_g Delta_g' W_g Gamma_g W_g Delta_g) E^-1 / (N - G)`` with ``E = sum_g f_g
    Delta_g' W_g Delta_g``; lavaan divides by ``N - G`` for (D)WLS (lav_model_vcov). ``extra``
    keeps ``E_inv`` and the groups' local Jacobians ``deltas``.
    """
    spec, sample, x = result.spec, result.sample, result.x
    layout = Layout.of(spec)
    deltas = [wls_jacobian(spec, x, gi + 1, g.wls) for gi, g in enumerate(sample.groups)]  # type: ignore[arg-type]
    result.extra["deltas"] = deltas
    e = dwls_information_blocks(spec, x, sample)
    result.information = e
    try:
        e_inv = _inverse(e, result.active_bounds)
    except np.linalg.LinAlgError as err:
        result.warnings.append(f"standard errors unavailable: {err}")
        result.cov = None
        return
    meat = []
    for f, d, g in zip(sample.fg, deltas, sample.groups, strict=True):
        w = g.wls.v_diag  # type: ignore[union-attr]
        meat.append(f * (d.T * w) @ g.wls.gamma @ (w[:, None] * d))  # type: ignore[union-attr]
    result.extra["E_inv"] = e_inv
    result.cov = e_inv.sandwich(GroupSum(layout, meat)).scaled(1.0 / (sample.ntotal - spec.ngroups))
    _check_cov(result)
