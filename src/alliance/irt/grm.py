r"""Samejima's graded response model by marginal maximum likelihood.

For item :math:`j` with categories :math:`0..K_j-1` and a latent trait
:math:`\theta \sim N(0, 1)`,

.. math::

    P(X_j \ge k \mid \theta) = F(a_j \theta + d_{jk}) = F(a_j(\theta - b_{jk})),
    \quad k = 1..K_j-1, \quad d_{j1} > d_{j2} > \dots,

and :math:`P(X_j = k) = P(X_j \ge k) - P(X_j \ge k+1)`. Conventions (those of ``mirt``):
the *intercept form* :math:`(a, d)` is estimated, the *threshold form* is
:math:`b_{jk} = -d_{jk}/a_j` (the trait at which :math:`P(X \ge k) = 1/2`); the link
:math:`F` is the logistic function without a scaling constant (``link="logistic"``, D = 1)
or the standard normal distribution function (``link="probit"``, the normal ogive).

Relation to the ordinal factor model (WLSMV, delta parameterization, standardized loading
:math:`\lambda_j`, thresholds :math:`\tau_{jk}` of the latent response with variance 1): the
normal-ogive GRM is the same model with

.. math::

    a_j = \lambda_j / \sqrt{1 - \lambda_j^2}, \quad d_{jk} = -\tau_{jk} / \sqrt{1-\lambda_j^2},
    \quad b_{jk} = \tau_{jk} / \lambda_j,

and the logistic GRM approximates it with :math:`a^{logistic} \approx 1.702\,a^{probit}`,
:math:`d^{logistic} \approx 1.702\,d^{probit}` (:data:`LOGISTIC_SCALE`; Camilli 1994) while
:math:`b` is unchanged (Takane & de Leeuw 1987; Forero & Maydeu-Olivares 2009).

Estimation: the marginal log-likelihood over rectangular quadrature (:data:`QUADRATURE`
points on [-6, 6], weights of the N(0, 1) density, normalised; mirt's default grid) is
maximised by L-BFGS with its analytic gradient (the Fisher identity: the gradient of the
expected complete-data log-likelihood at the posterior weights), the intercepts kept ordered
by a log-gap parameterization. Missing responses add nothing to a person's likelihood (FIML
under missingness at random). Standard errors come from the **observed information**: the
negative Hessian of the marginal log-likelihood in :math:`(a, d)`, by central differences of
the analytic gradient; the SEs of :math:`b` by the delta method. Scores are expected a
posteriori (EAP) with posterior SDs over the same grid (Bock & Mislevy 1982).

References
----------
Samejima, F. (1969). Estimation of latent ability using a response pattern of graded scores.
Psychometrika Monograph Supplement, 17.
Bock, R. D., & Aitkin, M. (1981). Marginal maximum likelihood estimation of item parameters:
Application of an EM algorithm. Psychometrika, 46(4), 443-459.
Bock, R. D., & Mislevy, R. J. (1982). Adaptive EAP estimation of ability in a microcomputer
environment. Applied Psychological Measurement, 6(4), 431-444.
Takane, Y., & de Leeuw, J. (1987). On the relationship between item response theory and
factor analysis of discretized variables. Psychometrika, 52(3), 393-408.
Camilli, G. (1994). Origin of the scaling constant d = 1.7 in item response theory. Journal of
Educational and Behavioral Statistics, 19(3), 293-295.
Forero, C. G., & Maydeu-Olivares, A. (2009). Estimation of IRT graded response models:
Limited versus full information methods. Psychological Methods, 14(3), 275-299.
Chalmers, R. P. (2012). mirt: A multidimensional item response theory package for the R
environment. Journal of Statistical Software, 48(6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from alliance.irt.responses import MISSING, Responses

__all__ = [
    "LOGISTIC_SCALE",
    "QUADRATURE",
    "category_probabilities",
    "eap_scores",
    "fit_grm",
    "item_information",
    "ordinal_factor_to_grm",
]

#: The scaling constant that makes the logistic link approximate the normal ogive.
LOGISTIC_SCALE = 1.702
#: Number of rectangular quadrature points on [-6, 6].
QUADRATURE = 61
LINKS = ("logistic", "probit")


def _cdf_pdf(x: np.ndarray, link: str) -> tuple[np.ndarray, np.ndarray]:
    if link == "logistic":
        p = special.expit(x)
        return p, p * (1.0 - p)
    if link == "probit":
        return special.ndtr(x), stats.norm.pdf(x)
    raise ValueError(f"link must be one of {LINKS}, got {link!r}")


def _cumulative(a: float, d: np.ndarray, theta: np.ndarray, link: str):
    """``P*`` and its density, shape (K+1, Q): rows k = 0..K with P*_0 = 1, P*_K = 0."""
    z = a * theta[None, :] + np.asarray(d, dtype=float)[:, None]
    p, f = _cdf_pdf(z, link)
    one = np.ones((1, theta.size))
    zero = np.zeros((1, theta.size))
    return np.vstack([one, p, zero]), np.vstack([zero, f, zero])


def category_probabilities(
    a: float, d: Sequence[float], theta: np.ndarray, link: str = "logistic"
) -> np.ndarray:
    """``P(X = k | theta)`` for k = 0..K-1, shape (K, len(theta))."""
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    star, _ = _cumulative(a, np.asarray(d, dtype=float), theta, link)
    return np.clip(star[:-1] - star[1:], 1e-300, None)


def item_information(
    a: float, d: Sequence[float], theta: np.ndarray, link: str = "logistic"
) -> np.ndarray:
    r"""Fisher information of one item at ``theta``: :math:`\sum_k P_k'(\theta)^2 / P_k(\theta)`.

    With :math:`P_k' = a\,(f_k - f_{k+1})`, :math:`f_k` the density of the link at
    :math:`a\theta + d_k` (Samejima 1969). The test information is the sum over items.
    """
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    star, dens = _cumulative(a, np.asarray(d, dtype=float), theta, link)
    prob = np.clip(star[:-1] - star[1:], 1e-300, None)
    deriv = a * (dens[:-1] - dens[1:])
    return (deriv**2 / prob).sum(axis=0)


def quadrature(n_points: int = QUADRATURE) -> tuple[np.ndarray, np.ndarray]:
    """Rectangular quadrature on [-6, 6]: points and N(0, 1) weights summing to 1."""
    if n_points < 41:
        raise ValueError(f"use at least 41 quadrature points, got {n_points!r}")
    nodes = np.linspace(-6.0, 6.0, n_points)
    weights = stats.norm.pdf(nodes)
    return nodes, weights / weights.sum()


class _Model:
    """The marginal log-likelihood of a response matrix and its gradient in (a, d)."""

    def __init__(self, responses: Responses, link: str, n_points: int) -> None:
        self.codes = responses.codes
        self.obs = responses.observed
        self.k = np.asarray(responses.n_categories)
        self.link = link
        self.nodes, self.weights = quadrature(n_points)
        self.log_w = np.log(self.weights)
        # position of each item's a in the flat vector; d follow it
        self.start = np.concatenate([[0], np.cumsum(self.k)])[:-1]
        self.n_par = int(self.k.sum())
        # one-hot of the answers of every item side by side, (n, sum K_j): a missing answer
        # is a row of zeros, so it adds nothing to the likelihood
        self.onehot = np.hstack(
            [
                (self.codes[:, j][:, None] == np.arange(kj)[None, :]).astype(float)
                for j, kj in enumerate(self.k)
            ]
        )

    def split(self, x: np.ndarray) -> list[tuple[float, np.ndarray]]:
        return [(float(x[s]), x[s + 1 : s + kj]) for s, kj in zip(self.start, self.k, strict=True)]

    def _posterior(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        logp = np.vstack(
            [np.log(category_probabilities(a, d, self.nodes, self.link)) for a, d in self.split(x)]
        )
        joint = self.onehot @ logp + self.log_w[None, :]
        top = joint.max(axis=1, keepdims=True)
        marg = np.log(np.exp(joint - top).sum(axis=1, keepdims=True)) + top
        post = np.exp(joint - marg)
        return float(marg.sum()), post

    def loglik(self, x: np.ndarray) -> float:
        return self._posterior(x)[0]

    def gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The log-likelihood and its gradient in (a, d) (the Fisher identity)."""
        ll, post = self._posterior(x)
        grad = np.zeros_like(x)
        th = self.nodes
        counts = self.onehot.T @ post  # expected counts per item category and node
        for j, (a, d) in enumerate(self.split(x)):
            s = self.start[j]
            r = counts[s : s + self.k[j]]
            star, dens = _cumulative(a, d, th, self.link)
            prob = np.clip(star[:-1] - star[1:], 1e-300, None)
            ratio = r / prob  # (K, Q)
            # d log P_k / d a = th (f_k - f_{k+1}) / P_k
            grad[s] = np.sum(ratio * (dens[:-1] - dens[1:]) * th[None, :])
            # d log P_k / d d_m = (f_m [m == k] - f_m [m == k + 1]) / P_k, m = 1..K-1
            for m in range(1, self.k[j]):
                grad[s + m] = np.sum((ratio[m] - ratio[m - 1]) * dens[m])
        return ll, grad


def _to_free(x: np.ndarray, model: _Model) -> np.ndarray:
    out = x.copy()
    for s, kj in zip(model.start, model.k, strict=True):
        d = x[s + 1 : s + kj]
        out[s + 2 : s + kj] = np.log(np.maximum(d[:-1] - d[1:], 1e-8))
    return out


def _from_free(u: np.ndarray, model: _Model) -> np.ndarray:
    out = u.copy()
    for s, kj in zip(model.start, model.k, strict=True):
        if kj > 2:
            out[s + 2 : s + kj] = u[s + 1] - np.cumsum(np.exp(u[s + 2 : s + kj]))
    return out


def _free_gradient(u: np.ndarray, grad: np.ndarray, model: _Model) -> np.ndarray:
    out = grad.copy()
    for s, kj in zip(model.start, model.k, strict=True):
        gd = grad[s + 1 : s + kj]
        # d_1 shifts every intercept; gap g_m (m >= 2) lowers d_m..d_{K-1}
        out[s + 1] = gd.sum()
        tail = np.cumsum(gd[::-1])[::-1]  # sum_{m' >= m} dL/dd_m'
        out[s + 2 : s + kj] = -np.exp(u[s + 2 : s + kj]) * tail[1:]
    return out


def _start(responses: Responses, link: str) -> np.ndarray:
    scale = 1.0 if link == "probit" else LOGISTIC_SCALE
    x = []
    for j, kj in enumerate(responses.n_categories):
        col = responses.codes[:, j]
        col = col[col != MISSING]
        above = np.array([(col >= k).mean() for k in range(1, kj)])
        above = np.clip(above, 0.5 / col.size, 1 - 0.5 / col.size)
        a = 1.0 * scale
        # marginal P(X >= k) = Phi(d / sqrt(1 + a^2)) on the probit scale
        d = special.ndtri(above) * np.sqrt(1.0 + 1.0) * scale
        x += [a, *d]
    return np.asarray(x, dtype=float)


def _hessian(model: _Model, x: np.ndarray) -> np.ndarray:
    """Central differences of the analytic gradient, symmetrised."""
    n = x.size
    hess = np.empty((n, n))
    for i in range(n):
        h = 1e-4 * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        hess[i] = (model.gradient(up)[1] - model.gradient(down)[1]) / (2 * h)
    return (hess + hess.T) / 2


def _newton_polish(model: _Model, x: np.ndarray, steps: int = 3) -> np.ndarray:
    """Newton steps from the quasi-Newton solution to the maximum, to machine precision.

    L-BFGS stops within about 1e-6 of the maximum, at a point that depends on the last bits
    of every gradient, so another CPU stopped elsewhere in that neighbourhood (measured: 1.2e-6
    between two machines). A Newton step (with the Hessian of the starting point, reused: its
    own error of about 1e-8 only slows convergence to a factor 1e-8 per step) leaves an error
    of about 1e-14 whatever the rounding, so the estimates agree across machines far within
    ``alliance verify``'s 1e-6. A step is kept only while it raises the log-likelihood
    and stays inside the model (increasing intercepts).
    """
    ll, grad = model.gradient(x)
    hess = _hessian(model, x)  # once: near the maximum it changes too little to matter
    for _ in range(steps):
        try:
            step = np.linalg.solve(hess, -grad)
        except np.linalg.LinAlgError:
            return x
        trial = x + step
        if not np.all(np.isfinite(trial)) or any(
            kj > 2 and np.any(np.diff(trial[s + 1 : s + kj]) >= 0)
            for s, kj in zip(model.start, model.k, strict=True)
        ):
            return x
        ll_trial, grad_trial = model.gradient(trial)
        if not ll_trial >= ll - 1e-12 * max(1.0, abs(ll)):
            return x
        x, ll, grad = trial, ll_trial, grad_trial
        if np.max(np.abs(step)) < 1e-12:
            break
    return x


def fit_grm(
    responses: Responses,
    link: str = "logistic",
    n_points: int = QUADRATURE,
    max_iter: int = 2000,
    gtol: float = 1e-6,
    se: bool = True,
) -> dict[str, Any]:
    """Fit the graded response model by marginal maximum likelihood.

    Parameters
    ----------
    responses
        :func:`alliance.irt.responses.response_codes`.
    link
        ``"logistic"`` (D = 1, mirt's metric) or ``"probit"`` (normal ogive).
    n_points
        Rectangular quadrature points on [-6, 6] (at least 41).
    max_iter, gtol
        L-BFGS iterations, and the largest absolute entry of the gradient of the mean
        log-likelihood per respondent accepted as converged.
    se
        Compute the observed information and standard errors (False: point estimates only,
        ``se_*`` None, and no check that the information is positive definite).

    Returns
    -------
    dict
        ``status`` (``converged``, ``not_converged`` or ``not_identified``: a non-positive
        definite information matrix; only a converged fit has standard errors),
        ``loglik``, ``n_parameters``, ``max_abs_gradient``, ``items`` (per item ``a``,
        ``se_a``, ``d`` and ``se_d``, ``b`` and ``se_b`` per threshold, thresholds
        ``ordered``), ``link``, ``quadrature``, ``se_method`` and ``params`` (the flat
        (a, d) vector, for :func:`eap_scores` and :func:`item_information`).
    """
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    model = _Model(responses, link, n_points)
    n = responses.codes.shape[0]

    def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
        x = _from_free(u, model)
        ll, grad = model.gradient(x)
        return -ll / n, -_free_gradient(u, grad, model) / n

    u0 = _to_free(_start(responses, link), model)
    res = optimize.minimize(
        objective,
        u0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": 1e-9, "ftol": 1e-14, "maxcor": 20},
    )
    x = _newton_polish(model, _from_free(res.x, model))
    ll, grad = model.gradient(x)
    max_grad = float(np.max(np.abs(grad)))
    status = "converged" if max_grad / n <= gtol else "not_converged"
    cov = None
    if status == "converged" and se:
        info = -_hessian(model, x)
        eig = np.linalg.eigvalsh(info)
        if eig.min() <= 1e-8 * max(1.0, eig.max()):
            status = "not_identified"
        else:
            cov = np.linalg.inv(info)
    items = []
    for j, (a, d) in enumerate(model.split(x)):
        s, kj = model.start[j], model.k[j]
        b = -d / a
        row: dict[str, Any] = {
            "item": responses.items[j],
            "n": int(responses.observed[:, j].sum()),
            "n_categories": int(kj),
            "a": a,
            "d": d.tolist(),
            "b": b.tolist(),
            "ordered": bool(np.all(np.diff(b) > 0)),
            "se_a": None,
            "se_d": None,
            "se_b": None,
        }
        if cov is not None:
            block = cov[s : s + kj, s : s + kj]
            row["se_a"] = float(np.sqrt(block[0, 0]))
            row["se_d"] = np.sqrt(np.diag(block)[1:]).tolist()
            se_b = []
            for m in range(1, kj):
                # b = -d/a: gradient (d/a^2, -1/a)
                g = np.array([d[m - 1] / a**2, -1.0 / a])
                sub = block[np.ix_([0, m], [0, m])]
                se_b.append(float(np.sqrt(g @ sub @ g)))
            row["se_b"] = se_b
        items.append(row)
    return {
        "model": "graded response model (Samejima 1969)",
        "estimator": "marginal maximum likelihood (L-BFGS on the quadrature likelihood)",
        "link": link,
        "metric": (
            "logistic, D = 1: P(X >= k) = 1 / (1 + exp(-(a theta + d_k))), b_k = -d_k / a"
            if link == "logistic"
            else "normal ogive: P(X >= k) = Phi(a theta + d_k), b_k = -d_k / a"
        ),
        "latent": "theta ~ N(0, 1)",
        "quadrature": {"type": "rectangular", "points": int(n_points), "range": [-6.0, 6.0]},
        "se_method": (
            "observed information: negative Hessian of the marginal log-likelihood by central "
            "differences of its analytic gradient; b by the delta method"
        ),
        "status": status,
        "iterations": int(res.nit),
        "loglik": ll,
        "n_parameters": int(x.size),
        "n_respondents": int(n),
        "max_abs_gradient": max_grad,
        "items": items,
        "params": x.tolist(),
    }


def _params(fit: dict[str, Any]) -> list[tuple[float, np.ndarray]]:
    return [(float(r["a"]), np.asarray(r["d"], dtype=float)) for r in fit["items"]]


def information_curves(
    fit: dict[str, Any], theta: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Item information on a grid of ``theta`` (default -4..4 by 0.05), and the test's sum."""
    grid = np.linspace(-4, 4, 161) if theta is None else np.asarray(theta, dtype=float)
    out = {
        r["item"]: item_information(a, d, grid, fit["link"])
        for r, (a, d) in zip(fit["items"], _params(fit), strict=True)
    }
    return {"theta": grid, "items": out, "test": np.sum(list(out.values()), axis=0)}


def eap_scores(
    fit: dict[str, Any], responses: Responses, n_points: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """EAP trait estimates and posterior SDs of each respondent (N(0, 1) prior).

    Missing responses are left out of a person's likelihood; a person's posterior is over the
    fit's quadrature grid.
    """
    nodes, weights = quadrature(n_points or fit["quadrature"]["points"])
    loglik = np.zeros((responses.codes.shape[0], nodes.size))
    for j, (a, d) in enumerate(_params(fit)):
        lp = np.log(category_probabilities(a, d, nodes, fit["link"]))
        rows = responses.observed[:, j]
        loglik[rows] += lp[responses.codes[rows, j]]
    joint = loglik + np.log(weights)[None, :]
    joint -= joint.max(axis=1, keepdims=True)
    post = np.exp(joint)
    post /= post.sum(axis=1, keepdims=True)
    mean = post @ nodes
    sd = np.sqrt(np.maximum(post @ nodes**2 - mean**2, 0.0))
    return mean, sd


def ordinal_factor_to_grm(
    loading: float, thresholds: Sequence[float], link: str = "logistic"
) -> dict[str, Any]:
    """GRM parameters implied by a standardized loading and thresholds (delta parameterization).

    ``a = lambda / sqrt(1 - lambda^2)``, ``d_k = -tau_k / sqrt(1 - lambda^2)`` on the probit
    scale, times :data:`LOGISTIC_SCALE` for ``link="logistic"``; ``b_k = tau_k / lambda``.
    """
    lam = float(loading)
    if not -1.0 < lam < 1.0:
        raise ValueError(f"a standardized loading must lie in (-1, 1), got {loading!r}")
    tau = np.asarray(thresholds, dtype=float)
    scale = LOGISTIC_SCALE if link == "logistic" else 1.0
    root = np.sqrt(1.0 - lam**2)
    return {"a": scale * lam / root, "d": (-scale * tau / root).tolist(), "b": (tau / lam).tolist()}
