"""Selection models for publication bias (step function and beta), as metafor's ``selmodel``.

A selection model says how likely a study is to be published given its one-sided p value
``p_i = 1 - Phi(y_i / sqrt(v_i))`` (metafor's default ``alternative = "greater"``): the
weight function ``w(p)`` multiplies the random-effects density of the observed effect, and the
likelihood of study ``i`` is ``w(p_i) phi(y_i; mu, v_i + tau^2) / A_i`` with
``A_i = E[w(p)]`` under the random-effects model. The parameters are estimated by maximum
likelihood, and the likelihood-ratio test against the random-effects model without selection
(``delta`` at its null value) tests for selection.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import integrate, optimize, stats

#: Weight function types.
TYPES = ("step", "beta")

#: metafor's bounds for ``delta`` (beyond them the likelihood is flat in practice).
_DELTA_BOUNDS = {"step": (0.0, 100.0), "beta": (1e-5, 100.0)}
#: R's ``integrate`` default tolerances (``rel.tol = abs.tol = eps^0.25``), used by metafor.
_INT_TOL = float(np.finfo(float).eps ** 0.25)
_PVAL_MIN_BETA = 1e-5


def _ml_fit(y: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """Maximum-likelihood random-effects model: ``(mu, tau2, loglik)``."""

    def neg(tau2: float) -> float:
        w = 1 / (v + tau2)
        mu = float(np.sum(w * y) / np.sum(w))
        return -float(np.sum(stats.norm.logpdf(y, mu, np.sqrt(v + tau2))))

    hi = max(10.0, 100 * float(np.var(y)))
    res = optimize.minimize_scalar(
        neg, bounds=(0.0, hi), method="bounded", options={"xatol": 1e-13, "maxiter": 2000}
    )
    tau2 = float(res.x)
    if neg(0.0) <= res.fun:
        tau2 = 0.0
    w = 1 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    return mu, tau2, -neg(tau2)


def _step_weights(p: np.ndarray, delta: np.ndarray, steps: np.ndarray) -> np.ndarray:
    return delta[np.searchsorted(steps, p, side="left")]


def _loglik(
    mu: float,
    tau2: float,
    delta: np.ndarray,
    y: np.ndarray,
    v: np.ndarray,
    kind: str,
    steps: np.ndarray,
    pvals: np.ndarray,
) -> float:
    """Log-likelihood of the selection model (metafor's ``.selmodel.ll.stepfun`` / ``.cont``)."""
    s = np.sqrt(v + tau2)
    if kind == "step":
        # Bounds on y of each p-value interval: p <= a  <=>  y >= z_{1-a} sqrt(v).
        cuts = stats.norm.isf(steps[:-1])[None, :] * np.sqrt(v)[:, None]  # k x (N-1)
        upper = stats.norm.sf(cuts, mu, s[:, None])  # P(p <= steps[j])
        probs = np.diff(np.column_stack([np.zeros(y.size), upper, np.ones(y.size)]), axis=1)
        a = probs @ delta
        w = _step_weights(pvals, delta, steps)
    else:
        sd_v = np.sqrt(v)
        d1, d2 = float(delta[0]) - 1, float(delta[1]) - 1
        lo_p, hi_p = _PVAL_MIN_BETA, 1 - _PVAL_MIN_BETA

        def wfun(p: Any) -> Any:
            p = np.clip(p, lo_p, hi_p)
            return p**d1 * (1 - p) ** d2

        a = np.empty(y.size)
        root2 = math.sqrt(2.0)
        norm_c = 1 / math.sqrt(2 * math.pi)
        for i in range(y.size):
            sd_i, s_i = float(sd_v[i]) * root2, float(s[i])

            def integrand(t: float, sd_i: float = sd_i, s_i: float = s_i) -> float:
                p = 0.5 * math.erfc(t / sd_i)  # one-sided p value of an effect t
                p = lo_p if p < lo_p else hi_p if p > hi_p else p
                z = (t - mu) / s_i
                return p**d1 * (1 - p) ** d2 * math.exp(-0.5 * z * z) * norm_c / s_i

            a[i] = integrate.quad(
                integrand, -np.inf, np.inf, epsabs=_INT_TOL, epsrel=_INT_TOL, limit=100
            )[0]
        w = wfun(pvals)
    return float(np.sum(np.log(w) + stats.norm.logpdf(y, mu, s) - np.log(a)))


def _hessian(f: Any, x: np.ndarray) -> np.ndarray:
    """Hessian by central differences with Richardson extrapolation.

    As ``numDeriv::hessian``: initial step ``0.1 |x|`` (``1e-4`` at 0), 6 halvings.
    """
    n = x.size
    h0 = np.where(np.abs(x) < 1e-12, 1e-4, 0.1 * np.abs(x))
    r = 6
    out = np.zeros((n, n))
    f0 = f(x)
    for i in range(n):
        for j in range(i + 1):
            est = np.zeros(r)
            for m in range(r):
                hi, hj = h0[i] / 2**m, h0[j] / 2**m
                if i == j:
                    e = np.zeros(n)
                    e[i] = hi
                    est[m] = (f(x + e) - 2 * f0 + f(x - e)) / hi**2
                else:
                    ei, ej = np.zeros(n), np.zeros(n)
                    ei[i], ej[j] = hi, hj
                    est[m] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                        4 * hi * hj
                    )
            for k in range(1, r):  # Richardson extrapolation, error O(h^2) per level
                est[: r - k] = (4**k * est[1 : r - k + 1] - est[: r - k]) / (4**k - 1)
            out[i, j] = out[j, i] = est[0]
    return out


def selection_model(
    yi: Any, vi: Any, kind: str = "step", steps: Any = (0.025,), level: float = 0.95
) -> dict[str, Any]:
    """Fit a step-function or beta selection model to an intercept-only random-effects model.

    ``kind="step"`` is metafor's ``selmodel(res, type = "stepfun", steps = c(steps, 1))``
    (Vevea & Hedges 1995): one weight per p-value interval, the first fixed at 1; ``delta`` is
    the relative likelihood of publication of the other intervals. ``kind="beta"`` is
    ``selmodel(res, type = "beta")`` (Citkowicz & Vevea 2017): ``w(p) = p^(d1 - 1)
    (1 - p)^(d2 - 1)``, with p values clipped to [1e-5, 1 - 1e-5] as metafor does.

    Parameters
    ----------
    yi, vi
        Effects and sampling variances.
    kind
        ``"step"`` or ``"beta"``.
    steps
        Interval cut points for ``kind="step"`` (1 is added), ignored for ``"beta"``.
    level
        Confidence level of the Wald interval of the adjusted estimate.

    Returns
    -------
    dict
        ``type``, ``steps``, ``estimate`` (adjusted mean), ``se``, ``zval``, ``pval``,
        ``ci.lb``, ``ci.ub``, ``tau2``, ``se.tau2`` (None when tau2 is at 0), ``delta`` (a
        list; the first step weight is 1), ``se.delta`` (None for fixed values), ``logLik``,
        ``logLik0`` (random-effects ML model), ``LRT``, ``LRT_df``, ``lrt_pvalue``,
        ``interval_counts`` (step: studies per p-value interval) and ``status`` (``ok``, or
        ``delta_at_bound`` when an estimate sits at its bound, as metafor warns).

    Raises
    ------
    ValueError
        For an unknown kind, bad steps or fewer studies than parameters.

    Notes
    -----
    The maximum is found with tight tolerances, so the estimates are the exact maximum
    likelihood ones; metafor's default ``optim`` BFGS run stops at a relative change of
    1e-8 in the log-likelihood, which leaves its estimates about 1e-4 (relative) from the
    maximum (``tests/data/metafor/metafor_multilevel.json`` holds both runs). Standard errors
    come from the observed information (numerical Hessian in ``mu``, ``tau2`` and the free
    ``delta``), as metafor's; tau2 is held fixed there when it is below ``min(v/10, 1e-4)``
    and a step weight below 1e-4 likewise.

    References
    ----------
    Vevea, J. L., & Hedges, L. V. (1995). A general linear model for estimating effect size
    in the presence of publication bias. *Psychometrika*, 60(3), 419-435.
    Citkowicz, M., & Vevea, J. L. (2017). A parsimonious weight function for modeling
    publication bias. *Psychological Methods*, 22(1), 28-41.
    Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package. *Journal
    of Statistical Software*, 36(3), 1-48.

    """
    if kind not in TYPES:
        raise ValueError(f"kind must be one of {TYPES}, got {kind!r}")
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    if kind == "step":
        cut = np.unique(np.asarray(steps, dtype=float))
        if cut.size == 0 or np.any((cut <= 0) | (cut > 1)):
            raise ValueError(f"steps must lie in (0, 1], got {list(np.asarray(steps))}")
        cut = cut if cut[-1] == 1 else np.append(cut, 1.0)
        n_delta = cut.size
        free = np.arange(1, n_delta)  # the first weight is fixed at 1
        delta_start = np.linspace(1, 0.8, n_delta)
    else:
        cut = np.array([0.0, 1.0])
        n_delta = 2
        free = np.arange(2)
        delta_start = np.array([1.0, 1.0])
    n_par = 2 + free.size
    if y.size < n_par:
        raise ValueError(f"the selection model has {n_par} parameters, got {y.size} studies")
    pvals = stats.norm.sf(y / np.sqrt(v))
    if kind == "beta":
        pvals = np.clip(pvals, _PVAL_MIN_BETA, 1 - _PVAL_MIN_BETA)
    lo, hi = _DELTA_BOUNDS[kind]

    def unpack(theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        delta = np.ones(n_delta)
        delta[free] = lo + (hi - lo) / (1 + np.exp(-theta[2:]))
        tau2 = math.exp(theta[1]) if theta[1] > -700 else 0.0
        return float(theta[0]), tau2, delta

    def objective(theta: np.ndarray) -> float:
        mu, tau2, delta = unpack(theta)
        val = _loglik(mu, tau2, delta, y, v, kind, cut, pvals)
        return -val if math.isfinite(val) else 1e300

    mu0, tau2_0, ll0 = _ml_fit(y, v)
    theta0 = np.concatenate(
        [
            [mu0, math.log(tau2_0 + 1e-3)],
            np.log((delta_start[free] - lo) / (hi - delta_start[free])),
        ]
    )
    res = optimize.minimize(
        objective, theta0, method="BFGS", options={"gtol": 1e-8, "maxiter": 2000}
    )
    mu, tau2, delta = unpack(res.x)
    if tau2 < 10 * np.finfo(float).eps:
        tau2 = 0.0
    loglik = -float(res.fun)

    # Observed information in the untransformed parameters (mu, tau2, free deltas).
    tau2_free = tau2 >= min(float(np.min(v)) / 10, 1e-4)
    delta_free = [j for j in free if not (kind == "step" and delta[j] < 1e-4)]

    def negll(par: np.ndarray) -> float:
        d = delta.copy()
        t2 = par[1] if tau2_free else tau2
        pos = 2 if tau2_free else 1
        d[delta_free] = par[pos:]
        return -_loglik(par[0], max(t2, 0.0), d, y, v, kind, cut, pvals)

    x_hes = np.concatenate([[mu], [tau2] if tau2_free else [], delta[delta_free]])
    se_mu = se_tau2 = None
    se_delta: list[float | None] = [None] * n_delta
    try:
        cov = np.linalg.inv(_hessian(negll, x_hes))
        diag = np.diag(cov)
        if np.all(diag > 0):
            se_mu = math.sqrt(diag[0])
            pos = 1
            if tau2_free:
                se_tau2 = math.sqrt(diag[1])
                pos = 2
            for j, d_var in zip(delta_free, diag[pos:], strict=True):
                se_delta[j] = math.sqrt(d_var)
    except np.linalg.LinAlgError:
        pass
    crit = float(stats.norm.ppf(1 - (1 - level) / 2))
    lrt = max(0.0, -2 * (ll0 - loglik))
    lrt_df = int(free.size)
    at_bound = any(delta[j] <= lo + _INT_TOL or delta[j] >= hi - 100 * _INT_TOL for j in free)
    out: dict[str, Any] = {
        "type": "stepfun" if kind == "step" else "beta",
        "steps": [float(c) for c in cut] if kind == "step" else None,
        "estimate": mu,
        "se": se_mu,
        "zval": mu / se_mu if se_mu else None,
        "pval": float(2 * stats.norm.sf(abs(mu / se_mu))) if se_mu else None,
        "ci.lb": mu - crit * se_mu if se_mu else None,
        "ci.ub": mu + crit * se_mu if se_mu else None,
        "tau2": tau2,
        "se.tau2": se_tau2,
        "delta": [float(d) for d in delta],
        "se.delta": se_delta,
        "logLik": loglik,
        "logLik0": ll0,
        "LRT": lrt,
        "LRT_df": lrt_df,
        "lrt_pvalue": float(stats.chi2.sf(lrt, lrt_df)),
        "status": "delta_at_bound" if at_bound else "ok",
    }
    if kind == "step":
        counts = np.bincount(np.searchsorted(cut, pvals, side="left"), minlength=n_delta)
        out["interval_counts"] = [
            {"step": f"{a:g} < p <= {b:g}", "k": int(c)}
            for a, b, c in zip(np.concatenate([[0.0], cut[:-1]]), cut, counts, strict=True)
        ]
    return out
