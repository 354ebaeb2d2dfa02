"""Random-effects meta-analysis of correlations: Fisher z, REML/DL pooling, diagnostics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

#: Methods for the between-study variance tau^2.
METHODS = ("REML", "DL")

#: metafor's defaults: Fisher scoring stops when tau^2 changes by at most this much, and the
#: Q-profile root finder (R's ``uniroot``) uses this tolerance.
REML_THRESHOLD = 1e-5
QPROFILE_TOL = float(np.finfo(float).eps ** 0.25)


def fisher_z(r: Any) -> np.ndarray:
    """Fisher's r-to-z transformation, ``z = atanh(r)``.

    Parameters
    ----------
    r
        Correlation(s), strictly between -1 and 1.

    Returns
    -------
    numpy.ndarray
        The z values (a 0-d array for a scalar input).

    Raises
    ------
    ValueError
        If a correlation is not finite or lies outside (-1, 1).

    References
    ----------
    Fisher, R. A. (1921). On the "probable error" of a coefficient of correlation deduced from
    a small sample. *Metron*, 1, 3-32.

    """
    arr = np.asarray(r, dtype=float)
    bad = arr[~np.isfinite(arr) | (np.abs(arr) >= 1)]
    if bad.size:
        raise ValueError(f"correlations must lie strictly between -1 and 1, got {bad.tolist()}")
    return np.arctanh(arr)


def fisher_z_variance(n: Any) -> np.ndarray:
    """Large-sample sampling variance of Fisher's z, ``1 / (n - 3)``.

    Raises
    ------
    ValueError
        If a sample size is not a finite number above 3.

    """
    arr = np.asarray(n, dtype=float)
    bad = arr[~np.isfinite(arr) | (arr <= 3)]
    if bad.size:
        raise ValueError(f"sample sizes must be greater than 3, got {bad.tolist()}")
    return 1.0 / (arr - 3.0)


def _zcrit(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(stats.norm.ppf(1 - (1 - level) / 2))


def _check_inputs(yi: Any, vi: Any, mods: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.shape != v.shape:
        raise ValueError(f"yi and vi must have the same length, got {y.size} and {v.size}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        raise ValueError(f"yi and vi must be finite, got yi={y.tolist()} vi={v.tolist()}")
    if np.any(v <= 0):
        raise ValueError(f"sampling variances must be positive, got {v.tolist()}")
    if mods is None:
        x = np.ones((y.size, 1))
    else:
        m = np.asarray(mods, dtype=float)
        m = m.reshape(y.size, -1)
        x = np.column_stack([np.ones(y.size), m])
    k, p = x.shape
    if k < p + 1:
        raise ValueError(f"need more studies than coefficients ({p}), got k = {k}")
    if np.linalg.matrix_rank(x) < p:
        raise ValueError(f"the design matrix is rank deficient (rank < {p}); check the moderator")
    return y, v, x


def _proj(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``P = W - W X (X'WX)^-1 X'W`` and ``(X'WX)^-1`` for diagonal weights ``w``."""
    xw = x * w[:, None]
    inv = np.linalg.inv(x.T @ xw)
    return np.diag(w) - xw @ inv @ xw.T, inv


def _tau2_dl(y: np.ndarray, v: np.ndarray, x: np.ndarray) -> float:
    """DerSimonian-Laird moment estimate (generalised to meta-regression), truncated at 0."""
    k, p = x.shape
    p0, _ = _proj(x, 1 / v)
    q = float(y @ p0 @ y)
    return max(0.0, (q - (k - p)) / float(np.trace(p0)))


def _tau2_reml(
    y: np.ndarray, v: np.ndarray, x: np.ndarray, threshold: float, maxiter: int
) -> tuple[float, int]:
    """REML estimate of tau^2 by Fisher scoring, following metafor's ``rma.uni``.

    Start at the Hedges (HE) moment estimate truncated at 0; update
    ``tau2 += (y'PPy - tr P) / tr(PP)`` (Viechtbauer 2005), halving a step that would make
    tau2 negative; stop when the change is at most ``threshold``. As metafor does, tau2 is
    set to 0 when the restricted likelihood at 0 is larger (a stuck iteration).
    """
    k, p = x.shape
    xtx_inv = np.linalg.inv(x.T @ x)
    p_ols = np.eye(k) - x @ xtx_inv @ x.T
    tau2 = max(0.0, (float(y @ p_ols @ y) - float(np.trace(p_ols * v))) / (k - p))
    change = threshold + 1
    iterations = 0
    while change > threshold:
        iterations += 1
        if iterations > maxiter:
            raise RuntimeError(
                f"REML Fisher scoring did not converge in {maxiter} iterations, got tau2 = {tau2}"
            )
        old = tau2
        pm, _ = _proj(x, 1 / (v + tau2))
        py = pm @ y
        adj = (float(py @ py) - float(np.trace(pm))) / float(np.sum(pm * pm))
        while tau2 + adj < 0:
            adj /= 2
        tau2 = tau2 + adj
        change = abs(old - tau2)
    if tau2 > threshold and _reml_loglik(0.0, y, v, x) - _reml_loglik(tau2, y, v, x) > QPROFILE_TOL:
        tau2 = 0.0
    return max(0.0, tau2), iterations


def _reml_loglik(tau2: float, y: np.ndarray, v: np.ndarray, x: np.ndarray) -> float:
    """Restricted log-likelihood without metafor's constant ``+ log|X'X| / 2``."""
    k, p = x.shape
    w = 1 / (v + tau2)
    xtwx = x.T @ (x * w[:, None])
    beta = np.linalg.solve(xtwx, x.T @ (w * y))
    rss = float(np.sum(w * (y - x @ beta) ** 2))
    return (
        -0.5 * (k - p) * math.log(2 * math.pi)
        - 0.5 * float(np.sum(np.log(v + tau2)))
        - 0.5 * float(np.linalg.slogdet(xtwx)[1])
        - 0.5 * rss
    )


@dataclass(frozen=True)
class RmaFit:
    """A fitted random-effects (or mixed-effects) model; attributes mirror metafor's ``rma``.

    ``beta``, ``se``, ``zval``, ``pval``, ``ci_lb`` and ``ci_ub`` are per coefficient
    (intercept first); ``vb`` is their covariance matrix; ``I2`` is in percent.
    """

    method: str
    level: float
    yi: np.ndarray
    vi: np.ndarray
    x: np.ndarray
    coef_names: list[str]
    beta: np.ndarray
    vb: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    tau2: float
    se_tau2: float
    QE: float
    QE_df: int
    QE_p: float
    QM: float
    QM_df: int
    QM_p: float
    I2: float
    H2: float
    vt: float
    weights: np.ndarray
    loglik: float
    iterations: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of studies."""
        return int(self.yi.size)

    @property
    def p(self) -> int:
        """Number of coefficients."""
        return int(self.x.shape[1])

    @property
    def weight_pct(self) -> np.ndarray:
        """Study weights ``1 / (v_i + tau^2)`` in percent of their sum."""
        return 100 * self.weights / self.weights.sum()

    def fitstats(self) -> dict[str, float]:
        """Log-likelihood, deviance, AIC, BIC and AICc as metafor's ``fitstats``.

        For REML the restricted log-likelihood includes metafor's ``+ log|X'X| / 2`` term,
        and the parameter count is ``p + 1`` (coefficients and tau^2).
        """
        k, p = self.k, self.p
        n_par = p + 1
        n_eff = k - p if self.method == "REML" else k
        ll = self.loglik
        dev = -2 * ll
        return {
            "logLik": ll,
            "deviance": dev,
            "AIC": dev + 2 * n_par,
            "BIC": dev + n_par * math.log(n_eff),
            "AICc": dev + 2 * n_par * max(n_eff, n_par + 2) / (max(n_eff, n_par + 2) - n_par - 1),
        }

    def predict(self, level: float | None = None) -> dict[str, float]:
        """Pooled estimate with confidence and prediction interval (intercept-only models).

        The prediction interval is ``b +/- z_{1-a/2} sqrt(SE^2 + tau^2)``: metafor's default
        for ``test="z"`` uses the normal quantile, not the t(k-2) quantile of Riley et al.
        (2011) or Higgins, Thompson & Spiegelhalter (2009).
        """
        if self.p != 1:
            raise ValueError(f"predict() needs an intercept-only model, got {self.p} coefficients")
        crit = _zcrit(self.level if level is None else level)
        b, se = float(self.beta[0]), float(self.se[0])
        half_pi = crit * math.sqrt(se**2 + self.tau2)
        return {
            "estimate": b,
            "se": se,
            "ci.lb": b - crit * se,
            "ci.ub": b + crit * se,
            "pi.lb": b - half_pi,
            "pi.ub": b + half_pi,
        }


def rma(
    yi: Any,
    vi: Any,
    mods: Any = None,
    method: str = "REML",
    level: float = 0.95,
    coef_names: list[str] | None = None,
    threshold: float = REML_THRESHOLD,
    maxiter: int = 100,
) -> RmaFit:
    """Fit a random-effects (``mods=None``) or mixed-effects meta-regression model.

    The model is ``y_i = x_i' beta + u_i + e_i`` with ``u_i ~ N(0, tau^2)`` and
    ``e_i ~ N(0, v_i)``; ``beta`` is estimated by weighted least squares with weights
    ``1 / (v_i + tau^2)`` and Wald-type z tests and confidence intervals (metafor's
    ``rma(yi, vi, mods, method, test="z")``).

    Parameters
    ----------
    yi, vi
        Effect sizes and their sampling variances.
    mods
        Moderator values, a vector or a k x m matrix (an intercept is added), or None.
    method
        ``"REML"`` (restricted maximum likelihood, Viechtbauer 2005) or ``"DL"``
        (DerSimonian & Laird 1986, generalised to meta-regression).
    level
        Confidence level of the intervals.
    coef_names
        Names of the coefficients (default ``intrcpt``, ``mod1``, ...).
    threshold, maxiter
        Convergence threshold on the change in tau^2 and the iteration limit of the REML
        Fisher scoring (metafor's ``control`` defaults, so estimates agree with metafor to
        far better than ``threshold``; lower it to approach the exact optimum).

    Returns
    -------
    RmaFit
        Coefficients, tau^2 with its standard error, the Q test for residual heterogeneity
        (``QE``), the omnibus test of the moderators (``QM``), I^2 (%) and H^2 computed with
        the "typical" within-study variance (Higgins & Thompson 2002), and the weights.

    Raises
    ------
    ValueError
        For an unknown method, inputs of unequal length, non-positive variances, too few
        studies or a rank-deficient design.

    References
    ----------
    DerSimonian, R., & Laird, N. (1986). Meta-analysis in clinical trials. *Controlled
    Clinical Trials*, 7(3), 177-188.
    Viechtbauer, W. (2005). Bias and efficiency of meta-analytic variance estimators in the
    random-effects model. *Journal of Educational and Behavioral Statistics*, 30(3), 261-293.
    Higgins, J. P. T., & Thompson, S. G. (2002). Quantifying heterogeneity in a
    meta-analysis. *Statistics in Medicine*, 21(11), 1539-1558.
    Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package. *Journal
    of Statistical Software*, 36(3), 1-48.

    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    crit = _zcrit(level)
    y, v, x = _check_inputs(yi, vi, mods)
    k, p = x.shape
    names = coef_names or ["intrcpt"] + [f"mod{j}" for j in range(1, p)]
    if len(names) != p:
        raise ValueError(f"coef_names must have {p} names, got {names}")

    if method == "REML":
        tau2, iterations = _tau2_reml(y, v, x, threshold, maxiter)
    else:
        tau2, iterations = _tau2_dl(y, v, x), 0

    # Fixed-effects quantities: residual heterogeneity Q and the typical within-study variance.
    p0, _ = _proj(x, 1 / v)
    qe = float(y @ p0 @ y)
    tr_p0 = float(np.trace(p0))
    vt = (k - p) / tr_p0
    i2 = 100 * tau2 / (vt + tau2)
    h2 = tau2 / vt + 1

    w = 1 / (v + tau2)
    pm, vb = _proj(x, w)
    beta = vb @ (x.T @ (w * y))
    se = np.sqrt(np.diag(vb))
    zval = beta / se
    pval = 2 * stats.norm.sf(np.abs(zval))

    if method == "REML":
        se_tau2 = math.sqrt(2 / float(np.sum(pm * pm)))
    else:
        t0 = tau2
        se_tau2 = math.sqrt(
            (2 * (k - p) + 4 * t0 * tr_p0 + 2 * t0**2 * float(np.sum(p0 * p0))) / tr_p0**2
        )

    if p > 1:
        b1 = beta[1:]
        qm = float(b1 @ np.linalg.solve(vb[1:, 1:], b1))
        qm_p = float(stats.chi2.sf(qm, p - 1))
    else:
        qm = float(zval[0] ** 2)
        qm_p = float(pval[0])

    resid = y - x @ beta
    rss = float(np.sum(w * resid**2))
    if method == "REML":
        _, logdet_xwx = np.linalg.slogdet(x.T @ (x * w[:, None]))
        _, logdet_xx = np.linalg.slogdet(x.T @ x)
        loglik = (
            -0.5 * (k - p) * math.log(2 * math.pi)
            + 0.5 * logdet_xx
            - 0.5 * float(np.sum(np.log(v + tau2)))
            - 0.5 * logdet_xwx
            - 0.5 * rss
        )
    else:
        loglik = -0.5 * k * math.log(2 * math.pi) - 0.5 * float(np.sum(np.log(v + tau2))) - rss / 2

    return RmaFit(
        method=method,
        level=level,
        yi=y,
        vi=v,
        x=x,
        coef_names=list(names),
        beta=beta,
        vb=vb,
        se=se,
        zval=zval,
        pval=pval,
        ci_lb=beta - crit * se,
        ci_ub=beta + crit * se,
        tau2=float(tau2),
        se_tau2=se_tau2,
        QE=qe,
        QE_df=k - p,
        QE_p=float(stats.chi2.sf(qe, k - p)),
        QM=qm,
        QM_df=max(p - 1, 1),
        QM_p=qm_p,
        I2=float(i2),
        H2=float(h2),
        vt=float(vt),
        weights=w,
        loglik=float(loglik),
        iterations=iterations,
    )


def _generalised_q(tau2: float, y: np.ndarray, v: np.ndarray, x: np.ndarray) -> float:
    pm, _ = _proj(x, 1 / (v + tau2))
    return float(y @ pm @ y)


def _zeroin(f: Any, lo: float, hi: float, tol: float, maxiter: int = 1000) -> float:
    """Brent's (1973) root finder in the form of R's ``uniroot`` (netlib ``zeroin``).

    Used instead of :func:`scipy.optimize.brentq` because the two take different steps, and
    with metafor's loose tolerance the Q-profile bounds would differ in the fifth digit.
    """
    eps = float(np.finfo(float).eps)
    a, b = lo, hi
    fa, fb = f(a), f(b)
    if fa == 0:
        return a
    if fb == 0:
        return b
    c, fc = a, fa
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):  # make b the best approximation
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * eps * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:  # linear interpolation
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:  # inverse quadratic interpolation
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < 0.75 * cb * q - abs(tol_act * q) / 2 and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    raise RuntimeError(f"root finder did not converge in {maxiter} iterations, got {b}")


def tau2_confint(
    fit: RmaFit, level: float | None = None, tol: float = QPROFILE_TOL
) -> dict[str, dict[str, float]]:
    """Q-profile confidence intervals for tau^2, tau, I^2 (%) and H^2.

    The bounds are the values of tau^2 at which the generalised Q statistic
    ``Q(tau^2) = sum w_i (y_i - x_i' b(tau^2))^2``, ``w_i = 1 / (v_i + tau^2)``, equals the
    upper and lower ``(1 - level) / 2`` quantiles of chi^2 with ``k - p`` degrees of freedom
    (Viechtbauer 2007). As in metafor's ``confint``, roots are searched on
    ``[0, max(100, 10 tau^2)]`` by Brent's (1973) method as R's ``uniroot`` implements it,
    with tolerance ``tol``; a bound that falls below 0 is set to 0 and one beyond the search
    interval to its end. The I^2 and H^2 bounds follow from the tau^2 bounds by the maps
    used for the estimates.

    Parameters
    ----------
    fit
        A fitted model from :func:`rma`.
    level
        Confidence level (default: the model's).
    tol
        Root-finding tolerance on tau^2 (metafor's default ``.Machine$double.eps^0.25``, so
        the bounds agree with metafor; they are accurate to about ``tol``).

    References
    ----------
    Brent, R. P. (1973). *Algorithms for minimization without derivatives*. Prentice-Hall.
    Viechtbauer, W. (2007). Confidence intervals for the amount of heterogeneity in
    meta-analysis. *Statistics in Medicine*, 26(1), 37-52.

    """
    lvl = fit.level if level is None else level
    _zcrit(lvl)
    y, v, x = fit.yi, fit.vi, fit.x
    df = fit.k - fit.p
    crit_hi = float(stats.chi2.ppf(1 - (1 - lvl) / 2, df))  # Q at the lower tau2 bound
    crit_lo = float(stats.chi2.ppf((1 - lvl) / 2, df))  # Q at the upper tau2 bound
    lo, hi = 0.0, max(100.0, 10 * fit.tau2)

    def solve(target: float) -> float:
        if _generalised_q(lo, y, v, x) < target:
            return lo
        if _generalised_q(hi, y, v, x) > target:
            return hi
        return _zeroin(lambda t: _generalised_q(t, y, v, x) - target, lo, hi, tol)

    lb, ub = solve(crit_hi), solve(crit_lo)

    def trio(f: Any) -> dict[str, float]:
        return {"estimate": f(fit.tau2), "ci.lb": f(lb), "ci.ub": f(ub)}

    return {
        "tau2": trio(float),
        "tau": trio(math.sqrt),
        "I2": trio(lambda t: 100 * t / (fit.vt + t)),
        "H2": trio(lambda t: t / fit.vt + 1),
    }


def leave_one_out(
    yi: Any, vi: Any, labels: list[str] | None = None, method: str = "REML", level: float = 0.95
) -> pd.DataFrame:
    """Refit the random-effects model with each study left out in turn (metafor ``leave1out``).

    Returns
    -------
    pandas.DataFrame
        One row per omitted study: ``study``, ``estimate`` (z), ``se``, ``zval``, ``pval``,
        ``ci.lb``, ``ci.ub``, ``Q``, ``Qp``, ``tau2``, ``I2``, ``H2``, and the pooled
        correlation ``r`` with ``r.ci.lb``/``r.ci.ub`` (tanh of the z values).

    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    if y.size < 3:
        raise ValueError(f"leave-one-out needs at least 3 studies, got {y.size}")
    names = [str(s) for s in labels] if labels is not None else [str(i + 1) for i in range(y.size)]
    rows = []
    for i in range(y.size):
        keep = np.arange(y.size) != i
        f = rma(y[keep], v[keep], method=method, level=level)
        rows.append(
            {
                "study": names[i],
                "estimate": float(f.beta[0]),
                "se": float(f.se[0]),
                "zval": float(f.zval[0]),
                "pval": float(f.pval[0]),
                "ci.lb": float(f.ci_lb[0]),
                "ci.ub": float(f.ci_ub[0]),
                "Q": f.QE,
                "Qp": f.QE_p,
                "tau2": f.tau2,
                "I2": f.I2,
                "H2": f.H2,
                "r": math.tanh(f.beta[0]),
                "r.ci.lb": math.tanh(f.ci_lb[0]),
                "r.ci.ub": math.tanh(f.ci_ub[0]),
            }
        )
    return pd.DataFrame(rows)


def egger_test(
    yi: Any, vi: Any, model: str = "rma", method: str = "REML", level: float = 0.95
) -> dict[str, Any]:
    """Regression test for funnel-plot asymmetry with the standard error as predictor.

    ``model="rma"`` (metafor ``regtest`` default, ``predictor="sei"``): the mixed-effects
    model ``y_i = b0 + b1 sqrt(v_i) + u_i + e_i`` fitted by ``method``; the test is the Wald
    z test of ``b1``. ``model="lm"``: the classic test of Egger et al. (1997), the weighted
    least-squares regression of ``y_i`` on ``sqrt(v_i)`` with weights ``1 / v_i`` and a
    multiplicative dispersion, tested by t with ``k - 2`` degrees of freedom; it is
    algebraically the same as regressing the standard normal deviate ``y_i / se_i`` on the
    precision ``1 / se_i`` and testing the intercept. In both, ``b0`` is the "limit
    estimate": the effect expected in a study with a standard error of 0.

    Returns
    -------
    dict
        ``model``, ``predictor``, ``k``, ``slope`` (b1), ``slope_se``, ``statistic`` (z or
        t), ``df`` (None for z), ``pval``, ``limit_estimate`` with ``limit_ci.lb`` and
        ``limit_ci.ub``, and ``tau2`` (residual, ``model="rma"``).

    References
    ----------
    Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in meta-analysis
    detected by a simple, graphical test. *BMJ*, 315(7109), 629-634.
    Sterne, J. A. C., & Egger, M. (2005). Regression methods to detect publication and other
    bias in meta-analysis. In H. R. Rothstein et al. (Eds.), *Publication bias in
    meta-analysis* (pp. 99-110). Wiley.

    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    if y.size < 3:
        raise ValueError(f"Egger's test needs at least 3 studies, got {y.size}")
    sei = np.sqrt(v)
    out: dict[str, Any] = {"model": model, "predictor": "sei", "k": int(y.size)}
    if model == "rma":
        f = rma(y, v, mods=sei, method=method, level=level, coef_names=["intrcpt", "sei"])
        out.update(
            slope=float(f.beta[1]),
            slope_se=float(f.se[1]),
            statistic=float(f.zval[1]),
            df=None,
            pval=float(f.pval[1]),
            limit_estimate=float(f.beta[0]),
            **{"limit_ci.lb": float(f.ci_lb[0]), "limit_ci.ub": float(f.ci_ub[0])},
            tau2=f.tau2,
        )
        return out
    if model != "lm":
        raise ValueError(f"model must be 'rma' or 'lm', got {model!r}")
    x = np.column_stack([np.ones(y.size), sei])
    w = 1 / v
    xtwx_inv = np.linalg.inv(x.T @ (x * w[:, None]))
    b = xtwx_inv @ (x.T @ (w * y))
    df = y.size - 2
    sigma2 = float(np.sum(w * (y - x @ b) ** 2)) / df
    se = np.sqrt(np.diag(xtwx_inv) * sigma2)
    t = b / se
    tcrit = float(stats.t.ppf(1 - (1 - level) / 2, df))
    out.update(
        slope=float(b[1]),
        slope_se=float(se[1]),
        statistic=float(t[1]),
        df=int(df),
        pval=float(2 * stats.t.sf(abs(t[1]), df)),
        limit_estimate=float(b[0]),
        **{"limit_ci.lb": float(b[0] - tcrit * se[0]), "limit_ci.ub": float(b[0] + tcrit * se[0])},
        tau2=None,
    )
    return out


def moderator_design(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Design columns for one moderator: numeric as is, else treatment-coded dummies.

    A categorical moderator gets one 0/1 column per level except the first in sorted order
    (the reference level), as R's default ``contr.treatment`` does for a factor.

    Raises
    ------
    ValueError
        If the moderator has missing values or a single level.

    """
    if values.isna().any():
        rows = values[values.isna()].index.tolist()
        raise ValueError(f"moderator {values.name!r} has missing values in rows {rows}")
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(str)
    if pd.api.types.is_numeric_dtype(values):
        arr = values.to_numpy(dtype=float)
        if np.ptp(arr) == 0:
            raise ValueError(f"moderator {values.name!r} is constant, got {arr[0]}")
        return arr[:, None], [str(values.name)]
    levels = sorted(values.astype(str).unique())
    if len(levels) < 2:
        raise ValueError(f"moderator {values.name!r} needs at least 2 levels, got {levels}")
    strs = values.astype(str).to_numpy()
    cols = np.column_stack([(strs == lvl).astype(float) for lvl in levels[1:]])
    return cols, [f"{values.name}{lvl}" for lvl in levels[1:]]


def meta_regression(
    yi: Any, vi: Any, moderator: pd.Series, method: str = "REML", level: float = 0.95
) -> dict[str, Any]:
    """Mixed-effects meta-regression on one moderator (metafor ``rma(yi, vi, mods = ~ mod)``).

    Returns
    -------
    dict
        ``moderator``, ``k``, ``coefficients`` (rows with ``term``, ``estimate``, ``se``,
        ``zval``, ``pval``, ``ci.lb``, ``ci.ub``), ``QM``, ``QM_df``, ``QM_pval`` (omnibus test
        of the moderator coefficients), ``QE``, ``QE_df``, ``QE_pval`` (residual
        heterogeneity), ``tau2`` and ``se.tau2`` (residual), ``I2``, ``H2`` (residual) and
        ``R2`` (% of tau^2 accounted for, ``max(0, 100 (tau2_RE - tau2_ME) / tau2_RE)``).

    """
    x, names = moderator_design(moderator)
    f = rma(yi, vi, mods=x, method=method, level=level, coef_names=["intrcpt", *names])
    f0 = rma(yi, vi, method=method, level=level)
    r2 = 0.0 if f0.tau2 <= 0 else max(0.0, 100 * (f0.tau2 - f.tau2) / f0.tau2)
    coefs = [
        {
            "term": name,
            "estimate": float(f.beta[j]),
            "se": float(f.se[j]),
            "zval": float(f.zval[j]),
            "pval": float(f.pval[j]),
            "ci.lb": float(f.ci_lb[j]),
            "ci.ub": float(f.ci_ub[j]),
        }
        for j, name in enumerate(f.coef_names)
    ]
    return {
        "moderator": str(moderator.name),
        "method": method,
        "k": f.k,
        "coefficients": coefs,
        "QM": f.QM,
        "QM_df": f.QM_df,
        "QM_pval": f.QM_p,
        "QE": f.QE,
        "QE_df": f.QE_df,
        "QE_pval": f.QE_p,
        "tau2": f.tau2,
        "se.tau2": f.se_tau2,
        "I2": f.I2,
        "H2": f.H2,
        "R2": r2,
    }


def _summary(fit: RmaFit) -> dict[str, Any]:
    pz = fit.predict()
    pooled_z = {
        "estimate": pz["estimate"],
        "se": pz["se"],
        "zval": float(fit.zval[0]),
        "pval": float(fit.pval[0]),
        "ci.lb": pz["ci.lb"],
        "ci.ub": pz["ci.ub"],
        "pi.lb": pz["pi.lb"],
        "pi.ub": pz["pi.ub"],
    }
    pooled_r = {key: math.tanh(pz[key]) for key in ("estimate", "ci.lb", "ci.ub", "pi.lb", "pi.ub")}
    het = {
        "tau2": fit.tau2,
        "se.tau2": fit.se_tau2,
        "tau": math.sqrt(fit.tau2),
        "I2": fit.I2,
        "H2": fit.H2,
        "Q": fit.QE,
        "Q_df": fit.QE_df,
        "Q_pval": fit.QE_p,
    }
    return {"pooled_z": pooled_z, "pooled_r": pooled_r, "heterogeneity": het}


def effect_measure(effects: pd.DataFrame) -> str:
    """``"ZCOR"`` for a table of correlations (``r``, ``n``), ``"GEN"`` for ``yi``, ``vi``.

    Raises
    ------
    ValueError
        If the table has neither pair of columns.

    """
    cols = set(effects.columns)
    for pair, measure in ((("r", "n"), "ZCOR"), (("yi", "vi"), "GEN")):
        if set(pair) <= cols:
            return measure
        if set(pair) & cols:
            missing = [c for c in pair if c not in cols]
            raise ValueError(
                f"effects need columns study, {', '.join(pair)}; missing {missing} "
                f"(got {sorted(cols)})"
            )
    raise ValueError(
        f"effects need columns study, r, n or study, yi, vi; got {list(effects.columns)}"
    )


def validate_effects(effects: pd.DataFrame, cluster: str | None = None) -> pd.DataFrame:
    """Check a study-level effects table and return a clean copy.

    Two layouts: ``study, r, n`` (correlations, pooled on Fisher's z) or ``study, yi, vi``
    (any effect size with its sampling variance, pooled on its own scale); either with an
    optional ``cluster`` column (a three-level model's outer level) and moderator columns.

    Raises
    ------
    ValueError
        If a column is missing, fewer than 2 studies are given, an ``r`` is outside (-1, 1),
        an ``n`` is not a number above 3, a ``yi`` is not finite, a ``vi`` is not positive, or
        a cluster label is missing; the message names the studies.

    """
    if "study" not in effects.columns:
        raise ValueError(f"effects need a study column, got {list(effects.columns)}")
    measure = effect_measure(effects)
    if len(effects) < 2:
        raise ValueError(f"pooling needs at least 2 studies, got {len(effects)}")
    out = effects.reset_index(drop=True).copy()
    out["study"] = out["study"].astype(str)
    if measure == "ZCOR":
        out["r"] = pd.to_numeric(out["r"], errors="coerce").astype(float)
        out["n"] = pd.to_numeric(out["n"], errors="coerce").astype(float)
        bad_r = out.loc[~(out["r"].abs() < 1), "study"].tolist()
        if bad_r:
            raise ValueError(f"r must lie strictly between -1 and 1, got bad values for {bad_r}")
        bad_n = out.loc[~(out["n"] > 3), "study"].tolist()
        if bad_n:
            raise ValueError(f"n must be greater than 3, got bad values for {bad_n}")
    else:
        out["yi"] = pd.to_numeric(out["yi"], errors="coerce").astype(float)
        out["vi"] = pd.to_numeric(out["vi"], errors="coerce").astype(float)
        bad_y = out.loc[~np.isfinite(out["yi"]), "study"].tolist()
        if bad_y:
            raise ValueError(f"yi must be a finite number, got bad values for {bad_y}")
        bad_v = out.loc[~(out["vi"] > 0) | ~np.isfinite(out["vi"]), "study"].tolist()
        if bad_v:
            raise ValueError(f"vi must be a positive number, got bad values for {bad_v}")
    if cluster is not None:
        if cluster not in out.columns:
            raise ValueError(
                f"cluster column {cluster!r} not in effects, got columns {list(out.columns)}"
            )
        missing = out.loc[out[cluster].isna(), "study"].tolist()
        if missing:
            raise ValueError(f"cluster column {cluster!r} is empty for studies {missing}")
        out[cluster] = out[cluster].astype(str)
    return out
