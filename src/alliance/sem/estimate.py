"""Maximum-likelihood CFA estimation, information matrices, SEs and the standardized solution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from alliance.sem.blocks import BlockLowRank, GroupSum, Layout, condition_number
from alliance.sem.model import ModelSpec, start_values

__all__ = [
    "FitResult",
    "GroupData",
    "SampleStats",
    "casewise_scores",
    "estimate",
    "evaluate",
    "expected_information",
    "expected_information_blocks",
    "normal_observed_information",
    "observed_information",
    "observed_information_blocks",
    "parameter_rows",
    "prepare_sample",
    "saturated_jacobian",
    "standardized_rows",
]


# --------------------------------------------------------------------------- data


@dataclass
class GroupData:
    """One group's data and sample moments (covariance with divisor N, as lavaan).

    ``X`` holds the rows used (listwise: complete cases; FIML: every row with at least one
    observed value, NaN for missing). ``mean``/``cov`` are the sample moments (complete data)
    or the saturated (EM) estimates (FIML, filled by :mod:`alliance.sem.fiml`).
    """

    label: str
    X: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    patterns: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def complete(self) -> bool:
        """True when there is no missing value."""
        return len(self.patterns) <= 1 and not np.isnan(self.X).any()


@dataclass
class SampleStats:
    """The data of all groups, in ``ov`` order."""

    ov: list[str]
    groups: list[GroupData]
    missing: str = "listwise"
    n_dropped: int = 0
    h1_logl: float = float("nan")

    @property
    def ntotal(self) -> int:
        """Total number of rows used."""
        return sum(g.n for g in self.groups)

    @property
    def group_labels(self) -> list[str]:
        """Labels of the groups."""
        return [g.label for g in self.groups]


def _patterns(x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Missing-data patterns: (observed column mask, row indices)."""
    obs = ~np.isnan(x)
    keys, inverse = np.unique(obs, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    return [(keys[k].astype(bool), np.flatnonzero(inverse == k)) for k in range(len(keys))]


def require_finite(data: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise if a model variable holds ``inf`` or ``-inf`` (a CSV reader parses ``inf``).

    An infinite value is no answer: as an ordered item it would become an extra category,
    as a continuous one it would make every moment infinite.

    Raises
    ------
    ValueError
        Naming the variable, the first data row (1-based) and the count.
    """
    for col in columns:
        if col not in data.columns:
            continue
        values = pd.to_numeric(data[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad = np.flatnonzero(np.isinf(values))
        if bad.size:
            raise ValueError(
                f"model variable {col!r} holds {bad.size} infinite value(s) (first in data row "
                f"{bad[0] + 1}: {float(values[bad[0]])!r}); inf is no answer: remove or recode it"
            )


def prepare_sample(
    data: pd.DataFrame,
    ov: Sequence[str],
    group: str | None = None,
    missing: str = "listwise",
    group_labels: Sequence[str] | None = None,
) -> SampleStats:
    """Select the model's variables and split the rows by group.

    Parameters
    ----------
    data
        One row per respondent.
    ov
        Observed variables, in model order.
    group
        Optional grouping column; groups are ordered by first appearance (as lavaan) unless
        ``group_labels`` is given.
    missing
        ``"listwise"`` (drop rows with any missing value on ``ov``) or ``"fiml"`` (keep rows
        with at least one observed value).
    group_labels
        Explicit group order.

    Returns
    -------
    SampleStats

    Raises
    ------
    ValueError
        If variables are absent or non-numeric, the group column is absent, has one level or
        an empty group, or a group has fewer rows than variables.
    """
    if missing not in ("listwise", "fiml"):
        raise ValueError(f"missing must be 'listwise' or 'fiml', got {missing!r}")
    absent = [v for v in ov if v not in data.columns]
    if absent:
        raise ValueError(f"model variables not in the data: {absent}")
    require_finite(data, ov)
    try:
        values = data[list(ov)].apply(pd.to_numeric, errors="raise").astype(float).to_numpy()
    except (ValueError, TypeError) as err:
        raise ValueError(f"model variables must be numeric: {err}") from err
    if group is not None:
        if group not in data.columns:
            raise ValueError(f"group column {group!r} not in the data")
        gcol = data[group]
        keep_g = gcol.notna().to_numpy()
        glab = gcol.astype(str).to_numpy()
        labels = (
            [str(v) for v in group_labels]
            if group_labels is not None
            else list(dict.fromkeys(glab[keep_g]))
        )
        if len(labels) < 2:
            raise ValueError(f"group column {group!r} needs at least 2 levels, got {labels}")
    else:
        keep_g = np.ones(len(data), dtype=bool)
        glab = np.full(len(data), "1", dtype=object)
        labels = ["1"]
    groups: list[GroupData] = []
    dropped = 0
    for lab in labels:
        rows = values[keep_g & (glab == lab)]
        if missing == "listwise":
            ok = ~np.isnan(rows).any(axis=1)
        else:
            ok = ~np.isnan(rows).all(axis=1)
        dropped += int((~ok).sum())
        rows = rows[ok]
        if rows.shape[0] == 0:
            raise ValueError(f"group {lab!r} has no usable rows")
        if rows.shape[0] <= len(ov) and missing == "listwise":
            raise ValueError(
                f"group {lab!r} has {rows.shape[0]} complete rows for {len(ov)} variables"
            )
        if missing == "listwise":
            mean = rows.mean(axis=0)
            cov = np.cov(rows, rowvar=False, bias=True)
        else:
            mean = np.nanmean(rows, axis=0)
            cov = np.diag(np.nanvar(rows, axis=0))
        sd = np.sqrt(np.diag(np.atleast_2d(cov)))
        const = [v for v, s in zip(ov, sd, strict=True) if not s > 0]
        if const:
            raise ValueError(f"variables without variance in group {lab!r}: {const}")
        groups.append(GroupData(lab, rows, mean, np.atleast_2d(cov), _patterns(rows)))
    return SampleStats(ov=list(ov), groups=groups, missing=missing, n_dropped=dropped)


# --------------------------------------------------------------------------- moments helpers


def saturated_jacobian(p: int, meanstructure: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian of the saturated model (free means and the ``vech`` of Sigma).

    Returns ``dsig`` (q, p, p) and ``dmu`` (q, p) with ``q = p + p(p+1)/2`` (means first)
    or ``p(p+1)/2``.
    """
    rows, cols = np.tril_indices(p)
    k0 = p if meanstructure else 0
    q = k0 + len(rows)
    dsig = np.zeros((q, p, p))
    dmu = np.zeros((q, p))
    if meanstructure:
        dmu[np.arange(p), np.arange(p)] = 1.0
    for k, (i, j) in enumerate(zip(rows, cols, strict=True)):
        dsig[k0 + k, i, j] = 1.0
        dsig[k0 + k, j, i] = 1.0
    return dsig, dmu


def expected_information(
    sigma: np.ndarray, dsig: np.ndarray, dmu: np.ndarray | None = None
) -> np.ndarray:
    """Per-observation expected (Fisher) information of a normal model.

    ``I_kl = 0.5 tr(Sigma^-1 dSigma_k Sigma^-1 dSigma_l) + dmu_k' Sigma^-1 dmu_l``.
    """
    si = np.linalg.inv(sigma)
    q = dsig.shape[0]
    a = np.matmul(si[None], dsig)  # Sigma^-1 dSigma_k
    info = 0.5 * (a.reshape(q, -1) @ a.transpose(0, 2, 1).reshape(q, -1).T)
    if dmu is not None:
        info += dmu @ si @ dmu.T
    return 0.5 * (info + info.T)


def normal_observed_information(
    g: GroupData, mu: np.ndarray, sigma: np.ndarray, dsig: np.ndarray, dmu: np.ndarray | None
) -> np.ndarray:
    """Per-observation observed information of a normal model linear in its parameters.

    Summed over missing-data patterns (case ``i``, observed part ``o``, ``z = Sigma_oo^-1
    e_i``): ``I_mumu = Sigma_oo^-1``, ``I_mu,k = Sigma_oo^-1 dSigma_k z`` and ``I_kl =
    -0.5 tr(Sigma^-1 dSigma_k Sigma^-1 dSigma_l) + z' dSigma_k Sigma^-1 dSigma_l z``, divided
    by ``n``. At the saturated ML (EM) estimates this is lavaan's unstructured observed h1
    information; with a structured model's Jacobian it is the first term of the model's
    observed information (see :func:`observed_information`).
    """
    q = dsig.shape[0]
    info = np.zeros((q, q))
    for obs, idx in g.patterns:
        o = np.flatnonzero(obs)
        if len(o) == 0:
            continue
        si = np.linalg.inv(sigma[np.ix_(o, o)])
        e = g.X[np.ix_(idx, o)] - mu[o]
        z = e @ si
        zz = z.T @ z
        ds = dsig[:, o][:, :, o]
        k = len(o)
        a = np.matmul(si[None], ds)  # Si dS_k
        a_t = a.transpose(0, 2, 1).reshape(q, -1)
        info += -0.5 * len(idx) * (a.reshape(q, -1) @ a_t.T)
        b = np.matmul(ds, si[None])  # dS_k Si
        c = np.matmul(ds, zz[None])  # dS_k Z
        info += b.reshape(q, -1) @ c.transpose(0, 2, 1).reshape(q, -1).T
        if dmu is not None:
            dm = dmu[:, o]
            info += len(idx) * dm @ si @ dm.T
            zsum = z.sum(axis=0)
            cross = dm @ (a.reshape(q * k, k) @ zsum).reshape(q, k).T  # dmu_k' Si dS_l zsum
            info += cross + cross.T
    info /= g.n
    return 0.5 * (info + info.T)


def observed_information(spec: ModelSpec, x: np.ndarray, sample: SampleStats) -> np.ndarray:
    """Per-observation observed information (Hessian of ``-logl/N``) of the model, dense.

    See :func:`observed_information_blocks` (this is its ``q x q`` matrix).
    """
    return observed_information_blocks(spec, x, sample).dense()


def observed_information_blocks(spec: ModelSpec, x: np.ndarray, sample: SampleStats) -> GroupSum:
    """Per-observation observed information (Hessian of ``-logl/N``), one block per group.

    ``H = sum_g (n_g/N) Delta_g' H1_g Delta_g + sum_g sum_ij (df/dSigma_ij) d2Sigma_ij/dx dx'
    (+ the mean term)``: the first term from :func:`normal_observed_information` at the
    implied moments, the second by central differences of ``Delta(x)' G`` with the moment
    gradient ``G`` held fixed (cheap: no pass over the data). Group ``g`` contributes only
    on its own parameters (``spec.group_free(g)``), so the work grows linearly with the
    number of groups (see :mod:`alliance.sem.blocks`).
    """
    n = sample.ntotal
    ms = spec.meanstructure
    layout = Layout.of(spec)
    blocks = []
    for gi, g in enumerate(sample.groups):
        idx = layout.local[gi]
        q = len(idx)
        imp = spec.implied(x, gi + 1)[0]
        dsig, dmu, _ = spec.jacobian(x, gi + 1, local=True)
        mu = imp.mu if ms else g.mean
        info = (g.n / n) * normal_observed_information(g, mu, imp.sigma, dsig, dmu if ms else None)
        gs, gm = _moment_gradient(g, mu, imp.sigma)
        gs, gm = gs * (g.n / n), gm * (g.n / n)
        xe = np.array(x, dtype=float)  # perturbed in place, one entry at a time
        for j, k in enumerate(idx):
            h = 1e-6 * max(1.0, abs(x[k]))
            xe[k] = x[k] + h
            up = spec.chain(xe, gi + 1, gs, gm if ms else None, local=True)
            xe[k] = x[k] - h
            dn = spec.chain(xe, gi + 1, gs, gm if ms else None, local=True)
            xe[k] = x[k]
            info[:, j] += (up - dn) / (2 * h)
        blocks.append(0.5 * (info + info.T) if q else info)
    return GroupSum(layout, blocks)


def _moment_gradient(
    g: GroupData, mu: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives of ``-logl_g / n_g`` by the entries of Sigma and by mu (missing allowed)."""
    p = sigma.shape[0]
    gs = np.zeros((p, p))
    gm = np.zeros(p)
    for obs, idx in g.patterns:
        o = np.flatnonzero(obs)
        if len(o) == 0:
            continue
        si = np.linalg.inv(sigma[np.ix_(o, o)])
        e = g.X[np.ix_(idx, o)] - mu[o]
        z = e @ si
        gs[np.ix_(o, o)] += 0.5 * (len(idx) * si - z.T @ z)
        gm[o] += -z.sum(axis=0)
    return gs / g.n, gm / g.n


def casewise_scores(
    X: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    dsig: np.ndarray,
    dmu: np.ndarray | None,
    patterns: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Casewise scores ``d log L_i / d x`` of the multivariate normal (missing values allowed).

    For case ``i`` with observed part ``o``: ``z = Sigma_oo^-1 (y_o - mu_o)`` and
    ``s_ik = dmu_k,o' z + 0.5 (z' dSigma_k,oo z - tr(Sigma_oo^-1 dSigma_k,oo))``.

    Returns
    -------
    ndarray, shape (n, q)
    """
    n = X.shape[0]
    q = dsig.shape[0]
    if patterns is None:
        patterns = _patterns(X)
    out = np.zeros((n, q))
    for obs, idx in patterns:
        o = np.flatnonzero(obs)
        if len(o) == 0:
            continue
        s_oo = sigma[np.ix_(o, o)]
        si = np.linalg.inv(s_oo)
        e = X[np.ix_(idx, o)] - mu[o]
        z = e @ si
        ds = dsig[:, o][:, :, o]
        zz = (z[:, :, None] * z[:, None, :]).reshape(len(idx), -1)
        quad = zz @ ds.reshape(q, -1).T
        tr = ds.reshape(q, -1) @ si.ravel()
        out[idx] = 0.5 * (quad - tr[None, :])
        if dmu is not None:
            out[idx] += z @ dmu[:, o].T
    return out


# --------------------------------------------------------------------------- objective


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


# --------------------------------------------------------------------------- results


@dataclass
class FitResult:
    """Everything downstream modules need about one fitted model.

    Attributes
    ----------
    spec, sample
        Model and data.
    x
        Estimates (free vector).
    estimator, missing
        ``"ML"``/``"MLR"``; ``"listwise"``/``"fiml"``.
    converged, iterations, message
        Optimizer report.
    fmin
        lavaan's ``fmin``: ``chisq / (2N)`` (half the ML discrepancy).
    chisq, df
        Likelihood-ratio test against the saturated model.
    logl, unrestricted_logl
        Log-likelihoods of the model and of the saturated model.
    cov
        Covariance matrix of ``x`` as group blocks plus a low-rank part
        (:class:`alliance.sem.blocks.BlockLowRank`; ``None`` if the information matrix is
        singular); :attr:`vcov` is the dense ``q x q`` matrix.
    information
        Per-observation information used for the (non-robust) SEs; ``E`` in the sandwich,
        as group blocks (:class:`alliance.sem.blocks.GroupSum`).
    warnings
        Problems found on the way (never raised).
    extra
        Estimator-specific results (robust test, scores, ...).
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
    def se(self) -> np.ndarray:
        """Standard errors of ``x`` (nan if unavailable)."""
        if self.cov is None:
            return np.full(self.npar, np.nan)
        d = self.cov.diag()
        return np.sqrt(np.where(d >= 0, d, np.nan))

    def implied(self) -> list[Any]:
        """Implied moments per group at the estimates."""
        return self.spec.implied(self.x)


def ndat(spec: ModelSpec) -> int:
    """Number of sample statistics: ``p(p+1)/2`` (+ ``p`` with means) per group."""
    p = spec.p
    per = p * (p + 1) // 2 + (p if spec.meanstructure else 0)
    return per * spec.ngroups


def _sat_logl(sample: SampleStats) -> float:
    out = 0.0
    for g in sample.groups:
        p = g.cov.shape[0]
        out += -0.5 * g.n * (p * np.log(2 * np.pi) + np.linalg.slogdet(g.cov)[1] + p)
    return float(out)


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


def numeric_hessian(grad: Any, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central-difference Hessian of an analytic gradient (symmetrized)."""
    q = len(x)
    out = np.zeros((q, q))
    for k in range(q):
        e = np.zeros(q)
        e[k] = h
        out[:, k] = (grad(x + e) - grad(x - e)) / (2 * h)
    return 0.5 * (out + out.T)


def model_expected_information(spec: ModelSpec, x: np.ndarray, sample: SampleStats) -> np.ndarray:
    """Per-observation expected information ``sum_g (n_g/N) Delta_g' W_g Delta_g``, dense."""
    return expected_information_blocks(spec, x, sample).dense()


def expected_information_blocks(spec: ModelSpec, x: np.ndarray, sample: SampleStats) -> GroupSum:
    """Per-observation expected information ``sum_g (n_g/N) Delta_g' W_g Delta_g`` by group.

    Each group's block is on its own parameters (``spec.group_free(g)``); see
    :mod:`alliance.sem.blocks`.
    """
    n = sample.ntotal
    layout = Layout.of(spec)
    blocks = []
    for gi, g in enumerate(sample.groups):
        imp = spec.implied(x, gi + 1)[0]
        dsig, dmu, _ = spec.jacobian(x, gi + 1, local=True)
        blocks.append(
            (g.n / n) * expected_information(imp.sigma, dsig, dmu if spec.meanstructure else None)
        )
    return GroupSum(layout, blocks)


def model_scores(
    spec: ModelSpec, x: np.ndarray, sample: SampleStats, local: bool = False
) -> list[np.ndarray]:
    """Casewise scores of every group at ``x`` (means from the model, or the sample means).

    With ``local`` each group's scores have one column per parameter of that group
    (``spec.group_free(g)``) instead of ``npar`` columns.
    """
    out = []
    for gi, g in enumerate(sample.groups):
        imp = spec.implied(x, gi + 1)[0]
        dsig, dmu, _ = spec.jacobian(x, gi + 1, local=local)
        mu = imp.mu if spec.meanstructure else g.mean
        out.append(
            casewise_scores(
                g.X, mu, imp.sigma, dsig, dmu if spec.meanstructure else None, g.patterns
            )
        )
    return out


def estimate(
    spec: ModelSpec,
    sample: SampleStats,
    estimator: str = "ML",
    x0: np.ndarray | None = None,
    max_iter: int = 2000,
) -> FitResult:
    """Fit a CFA by maximum likelihood (complete data or FIML) and compute standard errors.

    ML with complete data minimizes lavaan's discrepancy (see :class:`MLObjective`); with
    ``sample.missing == "fiml"`` the casewise (FIML) likelihood of
    :mod:`alliance.sem.fiml`. L-BFGS-B with the analytic gradient, then Fisher-scoring
    (complete data) or Newton steps (FIML) to tighten convergence. Standard errors: ML
    complete data, the expected information; ML with FIML, the observed information
    (Hessian); MLR, the Huber-White sandwich ``E^-1 B E^-1 / N`` with ``E`` the observed
    information and ``B`` the cross-product of casewise scores (lavaan 0.6 defaults).

    Parameters
    ----------
    spec, sample
        Model and data (see :func:`prepare_sample`).
    estimator
        ``"ML"`` or ``"MLR"``.
    x0
        Starting values (default: :func:`alliance.sem.model.start_values`).
    max_iter
        Iteration limit of the optimizer.

    Returns
    -------
    FitResult
        Never raises for estimation problems: non-convergence and singular information
        matrices are recorded in ``converged`` and ``warnings``.

    References
    ----------
    Joreskog, K. G. (1969). A general approach to confirmatory maximum likelihood factor
    analysis. Psychometrika, 34(2), 183-202.
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36.
    """
    estimator = estimator.upper()
    if estimator not in ("ML", "MLR"):
        raise ValueError(f"estimator must be 'ML' or 'MLR', got {estimator!r}")
    if spec.ordered:
        raise ValueError(f"ordered indicators need the WLSMV estimator, got {estimator!r}")
    if list(sample.ov) != list(spec.ov):
        raise ValueError(f"sample variables {sample.ov} differ from the model's {spec.ov}")
    if len(sample.groups) != spec.ngroups:
        raise ValueError(
            f"the model has {spec.ngroups} groups but the data have {len(sample.groups)}"
        )
    fiml = sample.missing == "fiml"
    n = sample.ntotal
    warnings: list[str] = []
    if n <= spec.npar:
        warnings.append(f"fewer observations ({n}) than free parameters ({spec.npar})")
    if fiml:
        from alliance.sem import fiml as fiml_mod

        fiml_mod.fill_h1(sample)
        fun: Any = fiml_mod.FIMLObjective(spec, sample)
    else:
        fun = MLObjective(spec, sample)
    if x0 is None:
        x0 = start_values(spec, [g.cov for g in sample.groups], [g.mean for g in sample.groups])
    with threadpool_limits(limits=1, user_api="blas"):
        x0 = np.asarray(x0, dtype=float)
        if not np.isfinite(fun(x0)[0]):
            x0 = _safe_start(spec, sample)

        def hess_expected(xx: np.ndarray) -> GroupSum:
            return expected_information_blocks(spec, xx, sample).scaled(2.0)

        x, ok, nit, msg = _fisher_scoring(fun, hess_expected, x0, max_iter)
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
            x, gmax = _polish(fun, hess_expected, x, steps=2)
        converged = bool(np.isfinite(fun(x)[0]) and gmax < 1e-5 and nit <= max_iter)
        if not converged:
            warnings.append(f"the optimizer did not converge ({msg}; max |gradient| {gmax:.2g})")
        return _finish(spec, sample, estimator, x, fun, converged, nit, msg, warnings)


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


def evaluate(spec: ModelSpec, sample: SampleStats, estimator: str, x: np.ndarray) -> FitResult:
    """A :class:`FitResult` at given parameter values, without optimizing (e.g. baselines)."""
    estimator = estimator.upper()
    if sample.missing == "fiml":
        from alliance.sem import fiml as fiml_mod

        fiml_mod.fill_h1(sample)
        fun: Any = fiml_mod.FIMLObjective(spec, sample)
    else:
        fun = MLObjective(spec, sample)
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
) -> FitResult:
    n = sample.ntotal
    fval = fun(x)[0]
    if sample.missing == "fiml":
        logl = -0.5 * n * fval
        h1 = sample.h1_logl
        chisq = 2.0 * (h1 - logl)
    else:
        chisq = n * fval
        h1 = _sat_logl(sample)
        logl = h1 - 0.5 * chisq
    df = ndat(spec) - spec.npar
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
    )
    _standard_errors(result, fun)
    return result


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


def _standard_errors(result: FitResult, fun: Any) -> None:
    """Covariance matrix of the estimates, kept as group blocks (:mod:`alliance.sem.blocks`).

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
        e_inv = info.inverse()
        if condition_number(info, e_inv) > 1e14:
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
    cov = result.cov
    finite = all(np.all(np.isfinite(b)) for b in cov.own_blocks) and bool(
        np.all(np.isfinite(cov.lr)) and np.all(np.isfinite(cov.core))
    )
    if not finite or np.any(cov.diag() < 0):
        result.warnings.append("the covariance matrix of the estimates is not positive definite")


# --------------------------------------------------------------------------- tables

_Z975 = float(special.ndtri(0.975))


def _num(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def parameter_rows(result: FitResult, level: float = 0.95) -> list[dict[str, Any]]:
    """Lavaan ``parameterEstimates()`` rows: lhs, op, rhs, (group, label), est, se, z, ...

    Fixed rows have ``se = 0`` and ``z``/``pvalue`` null; Wald z tests and normal-theory
    confidence intervals ``est +- z_{(1+level)/2} se`` for free rows.
    """
    spec = result.spec.with_values(result.x)
    se = result.se
    crit = float(special.ndtri(0.5 + level / 2))
    multi = spec.ngroups > 1
    rows = []
    for r in spec.table:
        est = float(r.value)
        row: dict[str, Any] = {"lhs": r.lhs, "op": r.op, "rhs": r.rhs}
        if multi:
            row.update({"block": r.group, "group": r.group, "label": r.label})
        elif r.label:
            row["label"] = r.label
        if r.free:
            s = float(se[r.free - 1])
            z = est / s if s > 0 else np.nan
            pv = 2 * special.ndtr(-abs(z)) if np.isfinite(z) else np.nan
            row.update(
                est=est,
                se=_num(s),
                z=_num(z),
                pvalue=_num(pv),
                **{"ci.lower": _num(est - crit * s), "ci.upper": _num(est + crit * s)},
            )
        else:
            row.update(est=est, se=0.0, z=None, pvalue=None, **{"ci.lower": est, "ci.upper": est})
        row["free"] = bool(r.free)
        rows.append(row)
    return rows


def standardize(spec: ModelSpec, x: np.ndarray) -> np.ndarray:
    """``std.all`` value of every table row (lavaan ``standardizedSolution``).

    Loadings ``lambda_ij sd(eta_j) / sd(y_i)``; higher-order loadings likewise with latent
    total variances; (residual) variances divided by the total variance; covariances
    between residuals (observed) or disturbances (endogenous latent) divided by the
    residual standard deviations, other latent covariances by the total ones; intercepts
    and means divided by the total standard deviation; thresholds by ``sd(y*)``.
    """
    out = np.zeros(len(spec.table))
    for g, ks in _table_positions(spec).items():
        out[ks] = _standardize_group(spec, x, g, ks)
    return out


def _table_positions(spec: ModelSpec) -> dict[int, np.ndarray]:
    """Positions in ``spec.table`` of each group's rows."""
    pos: dict[int, list[int]] = {}
    for k, r in enumerate(spec.table):
        pos.setdefault(r.group, []).append(k)
    return {g: np.array(v, dtype=int) for g, v in pos.items()}


_MATRIX_ATTR = {
    "lambda": "lambda_",
    "beta": "beta",
    "theta": "theta",
    "psi": "psi",
    "nu": "nu",
    "alpha": "alpha",
    "tau": "tau",
    "delta": "delta",
}


def _standardize_group(spec: ModelSpec, x: np.ndarray, g: int, ks: np.ndarray) -> np.ndarray:
    """``std.all`` values of the table rows ``ks``, all of group ``g`` (see :func:`standardize`)."""
    out = np.zeros(len(ks))
    oi = {v: i for i, v in enumerate(spec.ov)}
    li = {v: i for i, v in enumerate(spec.lv)}
    mt = spec.matrices(x, g)
    ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
    a = ib @ mt.psi @ ib.T
    c = mt.lambda_ @ ib
    sig = c @ mt.psi @ c.T + mt.theta
    sd_lv, sd_ov = np.sqrt(np.abs(np.diag(a))), np.sqrt(np.abs(np.diag(sig)))
    for j, k in enumerate(ks):
        r = spec.table[k]
        mat = getattr(mt, _MATRIX_ATTR[r.mat])
        val = mat[r.row, r.col] if mat.ndim == 2 else mat[r.row]
        if r.op == "=~":
            if r.rhs in oi:
                out[j] = val * sd_lv[li[r.lhs]] / sd_ov[oi[r.rhs]]
            else:
                out[j] = val * sd_lv[li[r.lhs]] / sd_lv[li[r.rhs]]
        elif r.op == "~":
            out[j] = val * sd_lv[li[r.rhs]] / sd_lv[li[r.lhs]]
        elif r.op == "~~":
            if r.lhs == r.rhs:
                tot = sd_ov[oi[r.lhs]] ** 2 if r.lhs in oi else sd_lv[li[r.lhs]] ** 2
                out[j] = val / tot
            elif r.mat == "theta":
                d1, d2 = mt.theta[oi[r.lhs], oi[r.lhs]], mt.theta[oi[r.rhs], oi[r.rhs]]
                out[j] = val / np.sqrt(d1 * d2) if d1 > 0 and d2 > 0 else np.nan
            else:
                i, i2 = li[r.lhs], li[r.rhs]
                endo = np.any(mt.beta[i] != 0) or np.any(mt.beta[i2] != 0)
                if endo:
                    d1, d2 = mt.psi[i, i], mt.psi[i2, i2]
                else:
                    d1, d2 = sd_lv[i] ** 2, sd_lv[i2] ** 2
                out[j] = val / np.sqrt(d1 * d2) if d1 > 0 and d2 > 0 else np.nan
        elif r.op == "~1":
            out[j] = val / (sd_ov[oi[r.lhs]] if r.lhs in oi else sd_lv[li[r.lhs]])
        elif r.op == "|":
            out[j] = val / sd_ov[oi[r.lhs]]
        else:
            out[j] = val
    return out


def standardized_rows(result: FitResult, level: float = 0.95) -> list[dict[str, Any]]:
    """Lavaan ``standardizedSolution(type = "std.all")`` rows with delta-method SEs.

    The Jacobian of the standardized values by ``x`` is taken by central differences; the
    SE of each row is ``sqrt(J V J')``. The rows of group ``g`` depend only on that group's
    parameters (``spec.group_free(g)``), so the Jacobian and ``V`` are taken group by group.
    """
    spec, x = result.spec, result.x
    est = standardize(spec, x)
    cov = result.cov
    se = np.full(len(est), np.nan)
    for g, ks in _table_positions(spec).items():
        idx = spec.group_free(g)
        jac = np.zeros((len(ks), len(idx)))
        xe = np.array(x, dtype=float)  # perturbed in place, one entry at a time
        for j, k in enumerate(idx):
            h = 1e-6 * max(1.0, abs(x[k]))
            xe[k] = x[k] + h
            up = _standardize_group(spec, xe, g, ks)
            xe[k] = x[k] - h
            jac[:, j] = (up - _standardize_group(spec, xe, g, ks)) / (2 * h)
            xe[k] = x[k]
        if cov is not None:
            var = np.einsum("ik,kl,il->i", jac, cov.sub(idx), jac)
            se[ks] = np.sqrt(np.where(var > 1e-20, var, 0.0))
    crit = float(special.ndtri(0.5 + level / 2))
    multi = spec.ngroups > 1
    rows = []
    for k, r in enumerate(spec.table):
        s = float(se[k])
        v = float(est[k])
        row: dict[str, Any] = {"lhs": r.lhs, "op": r.op, "rhs": r.rhs}
        if multi:
            row.update({"group": r.group, "label": r.label})
        elif r.label:
            row["label"] = r.label
        if s > 0:
            z = v / s
            row.update(
                {
                    "est.std": v,
                    "se": s,
                    "z": z,
                    "pvalue": float(2 * special.ndtr(-abs(z))),
                    "ci.lower": v - crit * s,
                    "ci.upper": v + crit * s,
                }
            )
        else:
            row.update(
                {
                    "est.std": _num(v),
                    "se": 0.0 if np.isfinite(s) else None,
                    "z": None,
                    "pvalue": None,
                    "ci.lower": _num(v),
                    "ci.upper": _num(v),
                }
            )
        rows.append(row)
    return rows
