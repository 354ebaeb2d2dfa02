"""Two-level CFA by ML and MLR: the within and between models, estimation, SEs, tests (lavaan).

A two-level model is written as lavaan writes it: a ``level: 1`` block (the within-cluster
model for the within-cluster parts of the items, e.g. sessions within a patient) and a
``level: 2`` block (the between-cluster model for the cluster parts, e.g. patients). Each
block is an ordinary CFA (:class:`~alliance.sem.model.ModelSpec`); as lavaan does for
two-level models, the mean structure is on the between level (item intercepts free, latent
means 0) and the within intercepts and latent means are fixed at 0. The likelihood is the
two-level normal of :mod:`alliance.sem.mvnorm_cluster` (Muthen 1994; Yuan & Hayashi 2005).

Estimates maximize it (quasi-Newton, then Newton steps); standard errors come from the
observed information, the numerical Hessian of the analytic gradient (lavaan's default
``information = "observed"`` for two-level ML). MLR: the cluster-robust sandwich with the
clusters' scores as the meat (Huber-White; lavaan's ``se = "robust.huber.white"``) and the
Yuan-Bentler scaled chi-square (lavaan's ``test = "yuan.bentler.mplus"``: the trace of the
saturated model's ``A1^-1 B1`` at its own estimates less that of the model, over ``df``; Yuan &
Bentler 2000). The chi-square compares with the saturated two-level model (lavaan 0.6-14's EM);
the baseline for CFI/TLI (:func:`baseline_twolevel`) has free variances (and between means) at
both levels and no covariances. The fit measures are in
:mod:`alliance.sem.twolevel_fitmeasures`.

Variables of one level only are lavaan's within-only variables (their mean at level 1, no
between part) and between-only variables (one value per cluster, jointly normal with the
cluster parts of the others). Scope: continuous, complete data; equality labels within a
level (not across levels); no defined parameters or inequality constraints. Ordinal two-level
models (which lavaan cannot fit by ML either): :mod:`alliance.bayes.twolevel_cfa`.

References
----------
Muthen, B. O. (1994). Multilevel covariance structure analysis. Sociological Methods &
Research, 22(3), 376-398.
Yuan, K.-H., & Bentler, P. M. (2000). Three likelihood-based methods for mean and covariance
structure analysis with nonnormal missing data. Sociological Methodology, 30(1), 165-200.
Yuan, K.-H., & Hayashi, K. (2005). On Muthen's maximum likelihood for two-level covariance
structure models. Psychometrika, 70(1), 147-167.
Rosseel, Y. (2021). Evaluating the observed log-likelihood function in two-level structural
equation modeling with missing data: From formulas to R code. Psych, 3(2), 197-232.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from threadpoolctl import threadpool_limits

from alliance.sem.model import ModelSpec, start_values
from alliance.sem.mvnorm_cluster import (
    ClusterStats,
    Moments2L,
    cluster_scores,
    cluster_stats,
    loglik,
    moment_gradient,
    numeric_hessian,
    pack_saturated,
    saturated,
    saturated_gradient,
    saturated_scores,
    unpack_saturated,
)
from alliance.sem.partable import number_free
from alliance.sem.syntax import parse_syntax, split_levels

__all__ = [
    "TWOLEVEL_ESTIMATORS",
    "TwoLevelFit",
    "TwoLevelModel",
    "baseline_twolevel",
    "estimate_twolevel",
]

TWOLEVEL_ESTIMATORS = ("ML", "MLR")
LEVELS = (1, 2)


@dataclass
class TwoLevelModel:
    """The within (level 1) and between (level 2) CFA models of a two-level model.

    Attributes
    ----------
    syntax
        The model text with its ``level:`` blocks.
    within, between
        The two levels' models; the within model's intercepts of variables at both levels and
        its latent means are fixed at 0 (the means are at level 2).
    ov
        All variables in the order of :class:`~alliance.sem.mvnorm_cluster.ClusterStats`: the
        within model's (lavaan's order: first appearance in the level-1 block), then the
        between-only ones.
    within_only, between_only
        Variables of one level's model only (lavaan's within-only variables, with their mean
        at level 1 and no between part; between-only variables, one value per cluster).
    """

    syntax: str
    within: ModelSpec
    between: ModelSpec
    ov: list[str]
    within_only: list[str]
    between_only: list[str]

    @classmethod
    def from_syntax(cls, model: str, std_lv: bool = False) -> TwoLevelModel:
        """Build both levels' parameter tables (lavaan's defaults for two-level models).

        Raises
        ------
        ValueError
            For syntax errors (:func:`~alliance.sem.syntax.split_levels`), a label used at both
            levels, defined parameters, inequality constraints, thresholds, or intercepts /
            means written at level 1 for variables of both levels or factors.
        """
        blocks = split_levels(model)
        statements = {level: parse_syntax(text) for level, text in blocks.items()}
        for level, stmts in statements.items():
            for s in stmts:
                if s.op in (":=", "<", ">", "|"):
                    raise ValueError(
                        f"line {s.line}: {s.op!r} is not supported in a two-level model "
                        f"(level {level}), got {s.lhs} {s.op} {s.rhs}"
                    )
        within = ModelSpec.from_syntax(blocks[1], std_lv=std_lv, meanstructure=True)
        between = ModelSpec.from_syntax(blocks[2], std_lv=std_lv, meanstructure=True)
        within_only = [v for v in within.ov if v not in between.ov]
        between_only = [v for v in between.ov if v not in within.ov]
        for s in statements[1]:
            if s.op == "~1" and s.lhs not in within_only:
                raise ValueError(
                    f"line {s.line}: {s.lhs} ~ 1 at level 1: in a two-level model the means "
                    "of variables at both levels and of factors are at level 2 (fixed at 0 "
                    "within)"
                )
        _means_at_level_2(within, within_only)
        labels_w = {r.label for r in within.table if r.label}
        labels_b = {r.label for r in between.table if r.label}
        shared = sorted(labels_w & labels_b)
        if shared:
            raise ValueError(
                f"labels used at both levels (equality across levels is not supported): {shared}"
            )
        return cls(model, within, between, within.ov + between_only, within_only, between_only)

    @classmethod
    def independence(cls, model: TwoLevelModel) -> TwoLevelModel:
        """The baseline of ``model``: free variances at both levels and means, no covariances."""
        within = ModelSpec.independence(model.within.ov, meanstructure=True)
        _means_at_level_2(within, model.within_only)
        between = ModelSpec.independence(model.between.ov, meanstructure=True)
        return cls("", within, between, list(model.ov), model.within_only, model.between_only)

    @property
    def npar(self) -> int:
        """Free parameters of both levels."""
        return self.within.npar + self.between.npar

    @property
    def between_positions(self) -> np.ndarray:
        """Positions in :attr:`ov` of the between model's variables (its order)."""
        return np.array([self.ov.index(v) for v in self.between.ov])

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The within and between parts of the free vector."""
        return x[: self.within.npar], x[self.within.npar :]

    def moments(self, x: np.ndarray) -> Moments2L:
        """Implied means (within plus between), ``Sigma_W`` and ``Sigma_B`` (``ov`` order)."""
        xw, xb = self.split(x)
        iw = self.within.implied(xw, 1)[0]
        ib = self.between.implied(xb, 1)[0]
        p, py, q = len(self.ov), len(self.within.ov), self.between_positions
        mu = np.zeros(p)
        mu[:py] = iw.mu
        mu[q] += ib.mu
        sigma_b = np.zeros((p, p))
        sigma_b[np.ix_(q, q)] = ib.sigma
        return Moments2L(mu, iw.sigma, sigma_b)

    def jacobians(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``d mu``, ``d Sigma_W`` and ``d Sigma_B`` by the free parameters (rows)."""
        xw, xb = self.split(x)
        p, py, kw, k = len(self.ov), len(self.within.ov), self.within.npar, self.npar
        dsw, dmw, _ = self.within.jacobian(xw, 1)
        dsb, dmb, _ = self.between.jacobian(xb, 1)
        q = self.between_positions
        dmu = np.zeros((k, p))
        dmu[:kw, :py] = dmw
        dmu[kw:, q] = dmb
        d_w = np.zeros((k, py, py))
        d_w[:kw] = dsw
        d_b = np.zeros((k, p, p))
        d_b[kw:, q[:, None], q[None, :]] = dsb
        return dmu, d_w, d_b

    def rows(self) -> list[tuple[int, Any, int]]:
        """``(level, row, free index in x or 0)`` for every row, level 1 first (lavaan's order)."""
        out = [(1, r, r.free) for r in self.within.table]
        out += [(2, r, r.free + self.within.npar if r.free else 0) for r in self.between.table]
        return out

    def row_values(self, x: np.ndarray) -> np.ndarray:
        """Every row's value (fixed values, estimates) in :meth:`rows` order."""
        xw, xb = self.split(x)
        return np.concatenate([self.within.row_values(xw), self.between.row_values(xb)])


def _means_at_level_2(within: ModelSpec, within_only: list[str]) -> None:
    """Fix the within intercepts (but of within-only variables) and latent means at 0."""
    for r in within.table:
        if r.op == "~1" and r.lhs not in within_only:
            r.free, r.value = 0, 0.0
    number_free(within.table)
    within.invalidate()


@dataclass
class TwoLevelFit:
    """A fitted two-level model.

    Attributes
    ----------
    model, stats
        The model and the data's cluster statistics.
    estimator
        ``"ML"`` or ``"MLR"``.
    x
        Estimates; ``vcov`` their covariance matrix (``None`` when the information matrix is
        singular); ``information`` the observed information (minus the Hessian of the
        log-likelihood).
    converged, iterations, message
        Optimizer report.
    logl, h1_logl
        Log-likelihood of the model and of the saturated two-level model; ``h1`` its moments.
    chisq, df
        Likelihood-ratio test against the saturated model.
    scaled
        MLR: ``chisq.scaled``, ``chisq.scaling.factor`` and the traces behind them.
    warnings
        Problems met on the way (never raised).
    """

    model: TwoLevelModel
    stats: ClusterStats
    estimator: str
    x: np.ndarray
    converged: bool
    iterations: int
    message: str
    logl: float
    h1: Moments2L
    h1_logl: float
    chisq: float
    df: int
    information: np.ndarray | None = None
    vcov: np.ndarray | None = None
    scaled: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def se(self) -> np.ndarray | None:
        """Standard errors of ``x`` (``None`` without ``vcov``)."""
        if self.vcov is None:
            return None
        return np.sqrt(np.maximum(np.diag(self.vcov), 0.0))


# --------------------------------------------------------------------------- estimation


def _gradient(model: TwoLevelModel, stats: ClusterStats, x: np.ndarray) -> np.ndarray:
    """Gradient of the log-likelihood by the free parameters."""
    g = moment_gradient(stats, model.moments(x))
    dmu, d_w, d_b = model.jacobians(x)
    return (
        dmu @ g.mu + np.einsum("kab,ab->k", d_w, g.sigma_w) + np.einsum("kab,ab->k", d_b, g.sigma_b)
    )


def _scores(model: TwoLevelModel, stats: ClusterStats, x: np.ndarray) -> np.ndarray:
    """The clusters' scores by the free parameters, ``(J, npar)``."""
    g = cluster_scores(stats, model.moments(x))
    dmu, d_w, d_b = model.jacobians(x)
    return (
        g.mu @ dmu.T
        + np.einsum("jab,kab->jk", g.sigma_w, d_w)
        + np.einsum("jab,kab->jk", g.sigma_b, d_b)
    )


def _start(model: TwoLevelModel, h1: Moments2L) -> np.ndarray:
    """Starting values from the saturated moments of each level (see ``start_values``)."""
    q = model.between_positions
    py = len(model.within.ov)
    xw = start_values(model.within, [h1.sigma_w], [h1.mu[:py]])
    xb = start_values(model.between, [h1.sigma_b[np.ix_(q, q)]], [h1.mu[q]])
    return np.concatenate([xw, xb])


def _maximize(
    model: TwoLevelModel, stats: ClusterStats, x0: np.ndarray, max_iter: int = 2000
) -> tuple[np.ndarray, bool, int, str, np.ndarray | None]:
    """Quasi-Newton (BFGS) on ``-logL / N``, then Newton steps with the numerical Hessian.

    Returns the estimates, convergence, iterations, the optimizer's message and the Hessian
    of the log-likelihood at the estimates (``None`` if not finite).
    """
    n = stats.nobs

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        ll = loglik(stats, model.moments(x))
        if not np.isfinite(ll):
            return float("inf"), np.zeros_like(x)
        return -ll / n, -_gradient(model, stats, x) / n

    res = optimize.minimize(
        fun, x0, jac=True, method="BFGS", options={"maxiter": max_iter, "gtol": 1e-7}
    )
    x = np.asarray(res.x, dtype=float)
    iterations = int(res.nit)

    def grad(z: np.ndarray) -> np.ndarray:
        return _gradient(model, stats, z)

    hess: np.ndarray | None = None
    for _ in range(8):
        hess = numeric_hessian(grad, x)
        if not np.all(np.isfinite(hess)):
            return x, False, iterations, "the Hessian is not finite", None
        g = grad(x)
        if np.max(np.abs(g)) < 1e-7 * n:
            break
        try:
            step = np.linalg.solve(hess, g)
        except np.linalg.LinAlgError:
            break
        base = loglik(stats, model.moments(x))
        shrink = 1.0
        while shrink > 1e-3:
            new = x - shrink * step
            if loglik(stats, model.moments(new)) >= base - 1e-10:
                x = new
                break
            shrink /= 2
        iterations += 1
    g = grad(x)
    converged = bool(np.max(np.abs(g)) < 1e-4 * n)
    message = "converged" if converged else f"gradient not zero (max |g| {np.max(np.abs(g)):.3g})"
    return x, converged, iterations, message, hess


def estimate_twolevel(
    data: pd.DataFrame,
    model: str | TwoLevelModel,
    cluster: str,
    estimator: str = "ML",
    std_lv: bool = False,
) -> TwoLevelFit:
    """Fit a two-level CFA by ML or MLR (as lavaan's ``cfa(..., cluster = cluster)``).

    Parameters
    ----------
    data
        One row per level-1 unit with the items and the ``cluster`` column.
    model
        lavaan syntax with ``level: 1`` and ``level: 2`` blocks (or a built model).
    cluster
        The column naming the clusters.
    estimator
        ``"ML"`` or ``"MLR"`` (robust SEs and the Yuan-Bentler scaled test).
    std_lv
        Identify factors by unit variances instead of marker loadings.

    Returns
    -------
    TwoLevelFit
        Estimation problems (non-convergence, a singular information matrix) are in its
        ``converged`` and ``warnings``, never raised.

    Raises
    ------
    ValueError
        For an unknown estimator, a bad model (see :meth:`TwoLevelModel.from_syntax`) or data
        (see :func:`~alliance.sem.mvnorm_cluster.cluster_stats`).
    """
    est = str(estimator).upper()
    if est not in TWOLEVEL_ESTIMATORS:
        raise ValueError(
            f"two-level estimator must be one of {TWOLEVEL_ESTIMATORS}, got {estimator!r}"
        )
    spec = model if isinstance(model, TwoLevelModel) else TwoLevelModel.from_syntax(model, std_lv)
    stats = cluster_stats(
        data, spec.within.ov, cluster, spec.between_only, within_only=spec.within_only
    )
    # small matrices: one BLAS thread is faster than several (and leaves the other core free)
    with threadpool_limits(limits=1, user_api="blas"):
        sat = saturated(stats)
        fit = _fit(spec, stats, est, sat.moments, sat.logl)
    if not sat.em_converged:
        fit.warnings.append(
            f"the saturated model's EM did not stop within {sat.em_iterations} iterations: "
            "its log-likelihood (and the chi-square) may be off"
        )
    return fit


def _fit(
    spec: TwoLevelModel, stats: ClusterStats, est: str, h1: Moments2L, h1_logl: float
) -> TwoLevelFit:
    p, py, pb = stats.p, stats.p_y, len(stats.between_index)
    df = int(p + py * (py + 1) // 2 + pb * (pb + 1) // 2 - spec.npar)
    x, converged, iterations, message, hess = _maximize(spec, stats, _start(spec, h1))
    logl = loglik(stats, spec.moments(x))
    fit = TwoLevelFit(
        model=spec,
        stats=stats,
        estimator=est,
        x=x,
        converged=converged,
        iterations=iterations,
        message=message,
        logl=logl,
        h1=h1,
        h1_logl=h1_logl,
        chisq=float(2 * (h1_logl - logl)),
        df=df,
    )
    if not converged:
        fit.warnings.append(f"the optimizer did not converge: {message}")
    if hess is None:
        return fit
    info = -hess
    fit.information = info
    try:
        eig = np.linalg.eigvalsh(info)
        if eig.min() <= 1e-10 * max(eig.max(), 1.0):
            raise np.linalg.LinAlgError(f"smallest eigenvalue {eig.min():.3g}")
        info_inv = np.linalg.inv(info)
    except np.linalg.LinAlgError as err:
        fit.warnings.append(f"the information matrix is not positive definite ({err}): no SEs")
        return fit
    if est == "ML":
        fit.vcov = info_inv
        return fit
    scores = _scores(spec, stats, x)
    meat = scores.T @ scores
    fit.vcov = info_inv @ meat @ info_inv
    fit.scaled = _yuan_bentler(stats, h1, info_inv, meat, df, fit.chisq)
    return fit


def _yuan_bentler(
    stats: ClusterStats,
    m: Moments2L,
    info_inv: np.ndarray,
    meat: np.ndarray,
    df: int,
    chisq: float,
) -> dict[str, float]:
    """The Yuan-Bentler (Mplus) scaled test (lavaan's ``yuan.bentler.mplus``).

    ``c = [tr(A1^-1 B1) - tr(A0^-1 B0)] / df``: ``A1``/``B1`` the observed and first-order
    information of the saturated model at its estimates ``m`` (lavaan's mplus variant
    always takes the unstructured h1 information), ``A0``/``B0`` those of the model.
    """
    theta = pack_saturated(stats, m)
    a1 = -numeric_hessian(lambda t: saturated_gradient(stats, unpack_saturated(stats, t)), theta)
    s1 = saturated_scores(stats, m)
    b1 = s1.T @ s1
    trace_h1 = float(np.trace(np.linalg.solve(a1, b1)))
    trace_h0 = float(np.sum(info_inv * meat))
    out = {"trace_h1": trace_h1, "trace_h0": trace_h0}
    if df > 0:
        c = (trace_h1 - trace_h0) / df
        out["chisq.scaling.factor"] = c
        out["chisq.scaled"] = chisq / c
    return out


def baseline_twolevel(fit: TwoLevelFit) -> TwoLevelFit:
    """The baseline (independence) model fitted to the same data and saturated model."""
    spec = TwoLevelModel.independence(fit.model)
    return _fit(spec, fit.stats, fit.estimator, fit.h1, fit.h1_logl)
