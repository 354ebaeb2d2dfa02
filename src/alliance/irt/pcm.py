r"""The Rasch partial credit model by conditional maximum likelihood, as eRm's ``PCM``.

For item :math:`i` with categories :math:`0..m_i` and person location :math:`\theta`,

.. math::

    P(X_i = h \mid \theta) \propto \exp(h\theta + \beta_{ih}), \quad \beta_{i0} = 0,

with eRm's *easiness* parameters :math:`\beta_{ih}` and the item-category *thresholds*
:math:`\delta_{ih} = -(\beta_{ih} - \beta_{i,h-1})`, the locations where categories
:math:`h-1` and :math:`h` are equally likely (Masters 1982; Andrich's thresholds). The raw
score is sufficient for :math:`\theta`, so the item parameters are estimated from the
likelihood conditional on each person's raw score, free of the person distribution
(Andersen 1973):

.. math::

    \log L_c = \sum_v \Big[\sum_i \beta_{i x_{vi}} - \log \gamma_{r_v}\Big], \qquad
    \gamma_r = \sum_{x: \sum_i x_i = r} \exp\Big(\sum_i \beta_{i x_i}\Big),

the :math:`\gamma_r` (generalised elementary symmetric functions) from the product of the item
polynomials :math:`\sum_h e^{\beta_{ih}} z^h`. A person who missed items enters with the
:math:`\gamma` of the items they answered (eRm's missing-data groups). Persons with an extreme
raw score (0 or the maximum) carry no information and add nothing. Normalisation as eRm's
default (``sum0 = TRUE``): the :math:`\beta` sum to zero. Standard errors: the inverse of the
observed information (the negative Hessian of :math:`\log L_c` by central differences of its
analytic gradient) in the free parameters, carried to :math:`\beta` and :math:`\delta` by
their linear maps (eRm: ``W solve(hessian) W'``).

Thresholds are *disordered* when :math:`\delta_{i,h+1} \le \delta_{ih}`: category :math:`h`
is nowhere the most likely answer (Andrich 2013), the pattern reported for middle categories
of the WAI in Rasch analyses (Hatcher & Gillaspy 2006).

Person locations: maximum likelihood with the item parameters fixed, for every non-extreme
raw score of each missing-data pattern; extreme scores by eRm's spline: a natural cubic
interpolating spline through the (raw score, location) pairs of the scores observed in the
pattern, extended linearly to the extreme score (``splines::interpSpline``; at least 4
distinct scores, otherwise None). Item fit: outfit and infit mean squares of the standardised
residuals of the non-extreme persons and their Wilson-Hilferty t (Wright & Masters 1982), as
eRm's ``itemfit``; with missing answers the sums run over the persons who answered the item.

References
----------
Andersen, E. B. (1973). Conditional inference for multiple-choice questionnaires. British
Journal of Mathematical and Statistical Psychology, 26(1), 31-44.
Masters, G. N. (1982). A Rasch model for partial credit scoring. Psychometrika, 47(2),
149-174.
Wright, B. D., & Masters, G. N. (1982). Rating scale analysis. MESA Press.
Andrich, D. (2013). An expanded derivation of the threshold structure of the polytomous Rasch
model that dispels any "threshold disorder controversy". Educational and Psychological
Measurement, 73(1), 78-124.
Hatcher, R. L., & Gillaspy, J. A. (2006). Development and validation of a revised short
version of the Working Alliance Inventory. Psychotherapy Research, 16(1), 12-25.
Mair, P., & Hatzinger, R. (2007). Extended Rasch modeling: The eRm package for the
application of IRT models in R. Journal of Statistical Software, 20(9).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize

from alliance.irt.responses import Responses

__all__ = ["category_probabilities", "fit_pcm", "item_fit", "person_parameters"]


def _poly(beta_items: list[np.ndarray]) -> np.ndarray:
    """Coefficients of prod_i sum_h exp(beta_ih) z^h (index r = raw score)."""
    out = np.ones(1)
    for b in beta_items:
        out = np.convolve(out, np.exp(np.concatenate([[0.0], b])))
    return out


class _Conditional:
    """The conditional log-likelihood of the PCM, by missing-data pattern."""

    def __init__(self, responses: Responses) -> None:
        self.m = np.asarray(responses.n_categories) - 1  # highest category per item
        self.start = np.concatenate([[0], np.cumsum(self.m)])[:-1]
        self.n_beta = int(self.m.sum())
        codes = responses.codes
        obs = responses.observed
        self.groups = []
        keys, inverse = np.unique(obs, axis=0, return_inverse=True)
        for g, key in enumerate(keys):
            rows = codes[inverse.ravel() == g]
            items = np.flatnonzero(key)
            raw = rows[:, items].sum(axis=1)
            counts = np.bincount(raw, minlength=int(self.m[items].sum()) + 1)
            # category counts per item (h = 1..m_i)
            cat = np.zeros(self.n_beta)
            for i in items:
                for h in range(1, self.m[i] + 1):
                    cat[self.start[i] + h - 1] = np.sum(rows[:, i] == h)
            self.groups.append((items, counts, cat))

    def split(self, beta: np.ndarray) -> list[np.ndarray]:
        return [beta[s : s + m] for s, m in zip(self.start, self.m, strict=True)]

    def value_and_gradient(self, beta: np.ndarray) -> tuple[float, np.ndarray]:
        per_item = self.split(beta)
        ll = 0.0
        grad = np.zeros(self.n_beta)
        for items, counts, cat in self.groups:
            gamma = _poly([per_item[i] for i in items])
            used = counts > 0
            ll += float(cat @ beta - counts[used] @ np.log(gamma[used]))
            grad += cat
            for i in items:
                rest = _poly([per_item[k] for k in items if k != i])
                for h in range(1, self.m[i] + 1):
                    # P(X_i = h | r) = exp(beta_ih) gamma^(-i)_{r-h} / gamma_r
                    r = np.arange(h, h + rest.size)
                    keep = r < gamma.size
                    r = r[keep]
                    p = np.exp(per_item[i][h - 1]) * rest[: r.size] / gamma[r]
                    grad[self.start[i] + h - 1] -= counts[r] @ p
        return ll, grad


def _hessian(model: _Conditional, beta: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Central differences of the analytic gradient in the free parameters, symmetrised."""
    idx = np.flatnonzero(free)
    hess = np.empty((idx.size, idx.size))
    for row, i in enumerate(idx):
        h = 1e-5 * max(1.0, abs(beta[i]))
        up, down = beta.copy(), beta.copy()
        up[i] += h
        down[i] -= h
        hess[row] = (model.value_and_gradient(up)[1] - model.value_and_gradient(down)[1])[idx]
        hess[row] /= 2 * h
    return (hess + hess.T) / 2


def _start(responses: Responses, model: _Conditional) -> np.ndarray:
    """Starting values: the log odds of adjacent categories, cumulated per item."""
    start = []
    for j, m in enumerate(model.m):
        col = responses.codes[:, j]
        col = col[col >= 0]
        freq = np.array([np.sum(col == h) for h in range(m + 1)], dtype=float) + 0.5
        start.append(np.cumsum(np.log(freq[1:] / freq[:-1])))
    return np.concatenate(start)


def _newton_polish(
    model: _Conditional, beta: np.ndarray, free: np.ndarray, steps: int = 3
) -> np.ndarray:
    """Newton steps in the free parameters from the BFGS solution to the maximum.

    BFGS stops within about 1e-6 of the maximum, at a point that depends on the last bits of
    every gradient (two machines differed by up to 1.2e-6); the conditional log-likelihood is
    concave, and one Newton step from there leaves about 1e-12, so the thresholds agree across
    machines far within ``alliance verify``'s 1e-6. A step is kept only while it raises the
    log-likelihood.
    """
    idx = np.flatnonzero(free)
    ll, grad = model.value_and_gradient(beta)
    hess = _hessian(model, beta, free)  # once: near the maximum it changes too little to matter
    for _ in range(steps):
        try:
            step = np.linalg.solve(hess, -grad[idx])
        except np.linalg.LinAlgError:
            return beta
        trial = beta.copy()
        trial[idx] += step
        ll_trial, grad_trial = model.value_and_gradient(trial)
        if not (np.all(np.isfinite(trial)) and ll_trial >= ll - 1e-12 * max(1.0, abs(ll))):
            return beta
        beta, ll, grad = trial, ll_trial, grad_trial
        if np.max(np.abs(step)) < 1e-12:
            break
    return beta


def category_probabilities(beta_item: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``P(X = h | theta)``, h = 0..m, shape (len(theta), m + 1)."""
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    h = np.arange(beta_item.size + 1)
    logits = h[None, :] * theta[:, None] + np.concatenate([[0.0], beta_item])[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def fit_pcm(responses: Responses, gtol: float = 1e-7) -> dict[str, Any]:
    """Fit the partial credit model by conditional maximum likelihood (eRm's ``PCM``).

    Parameters
    ----------
    responses
        :func:`alliance.irt.responses.response_codes` (categories 0..m_i per item; empty
        categories already merged).
    gtol
        The largest absolute gradient entry of the conditional log-likelihood per
        respondent accepted as converged.

    Returns
    -------
    dict
        ``status`` (``converged``, ``not_converged``, ``not_identified``), ``loglik`` (the
        conditional log-likelihood, eRm's ``loglik``), ``n_parameters`` (eRm's ``npar``),
        ``beta`` and ``se_beta`` (eRm's ``betapar``, ``se.beta``: item order, categories
        1..m_i), and per item in ``items``: ``thresholds``, ``se_thresholds``, ``location``
        (their mean, eRm's ``Location``), ``ordered`` and the ``disordered`` pairs
        (1-based threshold numbers ``[h, h + 1]`` with delta_{h+1} <= delta_h).
    """
    model = _Conditional(responses)
    n = responses.codes.shape[0]
    sizes = np.concatenate([np.arange(1, m + 1) for m in model.m]).astype(float)
    # identification while fitting: beta of item 1, category 1 fixed at 0
    free = np.ones(model.n_beta, dtype=bool)
    free[0] = False

    def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
        beta = np.concatenate([[0.0], u])
        ll, grad = model.value_and_gradient(beta)
        return -ll / n, -grad[1:] / n

    b0 = _start(responses, model)
    b0 = b0 - sizes * b0[0] / sizes[0]
    res = optimize.minimize(
        objective, b0[1:], jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 1000}
    )
    raw = _newton_polish(model, np.concatenate([[0.0], res.x]), free)
    ll, grad = model.value_and_gradient(raw)
    max_grad = float(np.max(np.abs(grad[1:])))
    status = "converged" if max_grad / n <= gtol else "not_converged"
    # eRm's sum0 normalisation: shift theta by c (beta_ih + h c) so that sum(beta) = 0
    shift = -raw.sum() / sizes.sum()
    beta = raw + sizes * shift
    # d beta / d free: the shift is linear in the free parameters
    jac = np.eye(model.n_beta)[:, free] - np.outer(sizes, np.ones(free.sum())) / sizes.sum()
    cov = None
    if status == "converged":
        info = -_hessian(model, raw, free)
        eig = np.linalg.eigvalsh(info)
        if eig.min() <= 1e-10 * max(1.0, eig.max()):
            status = "not_identified"
        else:
            cov = jac @ np.linalg.inv(info) @ jac.T
    # thresholds delta_ih = -(beta_ih - beta_i,h-1): a linear map T of beta
    tmat = np.zeros((model.n_beta, model.n_beta))
    for s, m in zip(model.start, model.m, strict=True):
        for h in range(m):
            tmat[s + h, s + h] = -1.0
            if h > 0:
                tmat[s + h, s + h - 1] = 1.0
    delta = tmat @ beta
    se_delta = np.sqrt(np.diag(tmat @ cov @ tmat.T)) if cov is not None else None
    se_beta = np.sqrt(np.diag(cov)) if cov is not None else None
    items = []
    for j, (s, m) in enumerate(zip(model.start, model.m, strict=True)):
        d = delta[s : s + m]
        pairs = [[h + 1, h + 2] for h in range(m - 1) if d[h + 1] <= d[h]]
        items.append(
            {
                "item": responses.items[j],
                "n": int(responses.observed[:, j].sum()),
                "n_categories": int(m + 1),
                "location": float(d.mean()),
                "thresholds": d.tolist(),
                "se_thresholds": None if se_delta is None else se_delta[s : s + m].tolist(),
                "ordered": not pairs,
                "disordered": pairs,
            }
        )
    extreme = _extreme(responses, model.m)
    return {
        "model": "Rasch partial credit model (Masters 1982)",
        "estimator": "conditional maximum likelihood (as eRm::PCM)",
        "normalisation": "sum of all beta (item-category easiness) parameters = 0 (eRm sum0)",
        "thresholds": "delta_ih = -(beta_ih - beta_i,h-1), beta_i0 = 0 (eRm::thresholds)",
        "se_method": (
            "observed information: negative Hessian of the conditional log-likelihood by "
            "central differences of its analytic gradient, mapped to beta and thresholds"
        ),
        "status": status,
        "iterations": int(res.nit),
        "loglik": ll,
        "n_parameters": int(free.sum()),
        "n_respondents": int(n),
        "n_extreme": int(extreme.sum()),
        "max_abs_gradient": max_grad,
        "beta": beta.tolist(),
        "se_beta": None if se_beta is None else se_beta.tolist(),
        "items": items,
    }


def _extreme(responses: Responses, m: np.ndarray) -> np.ndarray:
    obs = responses.observed
    raw = np.where(obs, responses.codes, 0).sum(axis=1)
    top = (obs * m[None, :]).sum(axis=1)
    return (raw == 0) | (raw == top)


def _betas(fit: dict[str, Any], responses: Responses) -> list[np.ndarray]:
    m = np.asarray(responses.n_categories) - 1
    start = np.concatenate([[0], np.cumsum(m)])[:-1]
    beta = np.asarray(fit["beta"], dtype=float)
    return [beta[s : s + k] for s, k in zip(start, m, strict=True)]


def _moments(betas: list[np.ndarray], theta: np.ndarray, items: np.ndarray):
    """Expected score and variance of the items at each theta, summed over ``items``."""
    mean = np.zeros(theta.size)
    var = np.zeros(theta.size)
    for i in items:
        p = category_probabilities(betas[i], theta)
        h = np.arange(p.shape[1])
        e = p @ h
        mean += e
        var += p @ h**2 - e**2
    return mean, var


def _natural_spline_at(x: np.ndarray, y: np.ndarray, at: float) -> float:
    """The natural cubic interpolating spline through (x, y) at ``at``, linear beyond the ends.

    As ``splines::interpSpline`` and its ``predict`` method, which eRm uses.
    """
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(x, y, bc_type="natural", extrapolate=False)
    end = x[0] if at < x[0] else x[-1]
    return float(spline(end) + spline(end, 1) * (at - end))


def person_parameters(fit: dict[str, Any], responses: Responses) -> dict[str, np.ndarray]:
    """Person locations by ML with the item parameters fixed (eRm's ``person.parameter``).

    Returns
    -------
    dict
        ``theta`` (NaN where not estimable), ``se`` (NaN for extreme scores), ``raw_score``,
        ``extreme`` (booleans) and ``interpolated`` (an extreme score placed by the spline).
    """
    betas = _betas(fit, responses)
    m = np.asarray(responses.n_categories) - 1
    obs = responses.observed
    raw = np.where(obs, responses.codes, 0).sum(axis=1)
    extreme = _extreme(responses, m)
    n = raw.size
    theta = np.full(n, np.nan)
    se = np.full(n, np.nan)
    keys, inverse = np.unique(obs, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    for g, key in enumerate(keys):
        items = np.flatnonzero(key)
        rows = np.flatnonzero((inverse == g) & ~extreme)
        if rows.size:
            scores = np.unique(raw[rows])
            t = np.zeros(scores.size)
            for _ in range(100):  # Newton on sum E[X_i | theta] = r
                e, v = _moments(betas, t, items)
                step = (scores - e) / v
                t += np.clip(step, -1.0, 1.0)
                if np.max(np.abs(step)) < 1e-12:
                    break
            _, v = _moments(betas, t, items)
            lookup = dict(zip(scores.tolist(), t, strict=True))
            theta[rows] = [lookup[r] for r in raw[rows]]
            se[rows] = [1.0 / np.sqrt(v[list(scores).index(r)]) for r in raw[rows]]
            ends = np.flatnonzero((inverse == g) & extreme)
            if ends.size and scores.size >= 4:
                for r in np.unique(raw[ends]):
                    theta[ends[raw[ends] == r]] = _natural_spline_at(scores, t, float(r))
    interpolated = extreme & ~np.isnan(theta)
    return {
        "theta": theta,
        "se": se,
        "raw_score": raw,
        "extreme": extreme,
        "interpolated": interpolated,
    }


def _wilson_hilferty(msq: float, q: float) -> float:
    """The t of a mean square with standard deviation ``q`` (cube-root transformation)."""
    return float((msq ** (1 / 3) - 1) * (3 / q) + q / 3)


def item_fit(
    fit: dict[str, Any], responses: Responses, persons: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    r"""Outfit and infit mean squares and their t (Wilson-Hilferty), as eRm's ``itemfit``.

    Over the persons with a non-extreme score: standardised residuals
    :math:`z = (x - E) / \sqrt{V}`; outfit = mean of :math:`z^2`, infit = :math:`\sum (x -
    E)^2 / \sum V`; the t statistics from the variances of the mean squares (with the
    fourth central moments C), :math:`t = (MSQ^{1/3} - 1)(3/q) + q/3` (Wright & Masters 1982).
    """
    betas = _betas(fit, responses)
    keep = ~persons["extreme"]
    theta = persons["theta"][keep]
    codes = responses.codes[keep]
    obs = responses.observed[keep]
    out = []
    for j, item in enumerate(responses.items):
        p = category_probabilities(betas[j], theta)
        h = np.arange(p.shape[1])
        e = p @ h
        v = p @ h**2 - e**2
        c = ((h[None, :] - e[:, None]) ** 4 * p).sum(axis=1)
        o = obs[:, j]
        x, e, v, c = codes[o, j], e[o], v[o], c[o]
        n = x.size
        z2 = (x - e) ** 2 / v
        outfit = z2.mean()
        q_out = np.sqrt(np.sum(c / v**2) / n**2 - 1.0 / n)
        infit = np.sum((x - e) ** 2) / v.sum()
        q_in = np.sqrt(np.sum(c - v**2) / v.sum() ** 2)
        out.append(
            {
                "item": item,
                "n": int(n),
                "outfit_msq": float(outfit),
                "outfit_t": _wilson_hilferty(outfit, q_out),
                "infit_msq": float(infit),
                "infit_t": _wilson_hilferty(infit, q_in),
            }
        )
    return out
