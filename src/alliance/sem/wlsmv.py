"""WLSMV confirmatory factor analysis (DWLS on polychoric correlations) of ordered items."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from alliance.sem.blocks import (
    BlockLowRank,
    GroupSum,
    Layout,
    condition_number,
    condition_number_op,
)
from alliance.sem.categories import COLLAPSE_NOTE, collapse_empty_categories, merges_text
from alliance.sem.estimate import require_finite
from alliance.sem.model import ModelSpec, start_values
from alliance.sem.polychoric import OrdinalStats, bivariate_normal_cdf, ordinal_stats

__all__ = [
    "WlsmvFit",
    "fit_wlsmv",
    "fit_wlsmv_invariance",
    "fit_wlsmv_model",
    "invariance_ladder",
    "lrt_scaled_shifted",
    "residual_release_tests",
]

_LEVELS = {
    "configural": (),
    "metric": ("loadings",),
    "scalar": ("loadings", "intercepts", "thresholds"),
    "strict": ("loadings", "intercepts", "thresholds", "residuals"),
}


def _clean(obj: Any) -> Any:
    """JSON-safe nested structure (numpy scalars to Python, non-finite floats to None)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _num(obj)
    return obj


def _num(value: float | None) -> float | None:
    """A JSON-safe float: None for missing or non-finite values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class WlsmvFit:
    """A fitted WLSMV model: estimates, robust covariance matrix and test statistics.

    Attributes
    ----------
    spec : ModelSpec
        The model (lavaan parameter table and LISREL mapping).
    stats : list of OrdinalStats
        Sample thresholds, polychoric correlations and Gamma per group.
    x : numpy.ndarray
        The free parameters at the DWLS solution.
    converged : bool
        Whether the optimiser reported convergence.
    cov : BlockLowRank or None
        Robust ("robust.sem") covariance matrix of ``x``, as group blocks plus a low-rank
        part (:mod:`alliance.sem.blocks`); :attr:`vcov` is the dense matrix.
    info_blocks : GroupSum or None
        The DWLS information ``sum_g f_g Delta_g' W_g Delta_g`` by group;
        :attr:`information` is the dense matrix.
    local_deltas : list of numpy.ndarray
        Per group, the Jacobian of its statistics by its own parameters
        (``spec.group_free(g)``); :attr:`deltas` has all ``npar`` columns.
    chisq, df : float, int
        The DWLS test statistic ``sum_g N_g (s_g - sigma_g)' W_g (s_g - sigma_g)`` and its df.
    missing : str
        ``"listwise"`` or ``"pairwise"``.
    group : str or None
        The grouping column (multi-group fits).
    """

    spec: ModelSpec
    stats: list[OrdinalStats]
    x: np.ndarray
    converged: bool
    iterations: int
    missing: str
    group: str | None
    cov: BlockLowRank | None = None
    chisq: float = float("nan")
    df: int = 0
    local_deltas: list[np.ndarray] = field(default_factory=list)
    info_blocks: GroupSum | None = None
    tests: dict[str, float] = field(default_factory=dict)
    fit: dict[str, float | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    robust_note: str | None = None
    #: the status issue when ``df < 0`` (:func:`alliance.sem.validity.not_identified`): then
    #: ``cov``, ``info_blocks`` and ``tests`` are unset and ``fit`` holds only npar and df
    not_identified: str | None = None

    # ------------------------------------------------------------------ dense views

    @property
    def vcov(self) -> np.ndarray:
        """Dense robust covariance matrix of ``x`` (``q x q``, built on each call)."""
        return np.zeros((0, 0)) if self.cov is None else self.cov.dense()

    @property
    def information(self) -> np.ndarray:
        """Dense DWLS information ``sum_g f_g Delta_g' W_g Delta_g`` (built on each call)."""
        return np.zeros((0, 0)) if self.info_blocks is None else self.info_blocks.dense()

    @property
    def deltas(self) -> list[np.ndarray]:
        """Per group, the Jacobian of its statistics by all ``npar`` parameters."""
        out = []
        for g, d in enumerate(self.local_deltas):
            full = np.zeros((d.shape[0], self.spec.npar))
            full[:, self.spec.group_free(g + 1)] = d
            out.append(full)
        return out

    # ------------------------------------------------------------------ basic quantities

    @property
    def nobs(self) -> list[int]:
        """Rows used per group."""
        return [s.nobs for s in self.stats]

    @property
    def ntotal(self) -> int:
        """Rows used in all groups."""
        return int(sum(self.nobs))

    @property
    def fg(self) -> np.ndarray:
        """Group shares N_g / N."""
        return np.asarray(self.nobs, dtype=float) / self.ntotal

    @property
    def weights(self) -> list[np.ndarray]:
        """Diagonal DWLS weights per group (inverse diagonal of Gamma)."""
        return [s.wls_v_diag for s in self.stats]

    def implied_stats(self, x: np.ndarray | None = None) -> list[np.ndarray]:
        """Implied (thresholds, correlations) per group at ``x`` (default: the estimates)."""
        return _implied(self.spec, self.stats, self.x if x is None else x)

    # ------------------------------------------------------------------ output

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """The result in the layout of the lavaan reference files (``cfa.R``).

        Parameters
        ----------
        level : float
            Confidence level of the intervals.

        Returns
        -------
        dict
            ``meta``, ``converged``, ``nobs``, ``ntotal``, ``fit``, ``parameters``,
            ``standardized`` (and ``group_labels`` for several groups); JSON-serialisable.
        """
        with threadpool_limits(limits=1, user_api="blas"):
            return self._to_dict(level)

    def _to_dict(self, level: float) -> dict[str, Any]:
        """Body of :meth:`to_dict`."""
        multi = self.spec.ngroups > 1
        out: dict[str, Any] = {
            "meta": {
                "estimator": "WLSMV",
                "lavaan_estimator": "DWLS",
                "test": "scaled.shifted",
                "se": "robust.sem",
                "parameterization": self.spec.parameterization,
                "missing": self.missing,
                "ordered": list(self.spec.ordered),
                "std.lv": bool(self.spec.std_lv),
                "group": self.group,
                "group.equal": list(self.spec.group_equal),
                "warnings": list(self.warnings),
            },
            "converged": bool(self.converged),
            "nobs": list(self.nobs),
            "ntotal": self.ntotal,
            "fit": {k: _num(v) for k, v in self.fit.items()},
            "parameters": parameter_rows(self, level, multi),
            "standardized": standardized_rows(self, level, multi),
        }
        if multi:
            out["group_labels"] = list(self.spec.group_labels)
        return out


# --------------------------------------------------------------------------- model pieces


def _implied(spec: ModelSpec, sts: list[OrdinalStats], x: np.ndarray) -> list[np.ndarray]:
    out = []
    for g, imp in enumerate(spec.implied(x)):
        pairs = sts[g].pair_index
        out.append(np.concatenate([imp.tau, imp.sigma[pairs[:, 0], pairs[:, 1]]]))
    return out


def _delta(
    spec: ModelSpec, sts: list[OrdinalStats], x: np.ndarray, local: bool = False
) -> list[np.ndarray]:
    """Jacobian d(implied thresholds, correlations) / dx per group, (nstat x npar).

    With ``local``, group ``g``'s Jacobian has one column per parameter of that group
    (``spec.group_free(g)``) instead of ``npar``.
    """
    out = []
    for g in range(spec.ngroups):
        dsig, _dmu, dtau = spec.jacobian(x, g + 1, local=local)
        pairs = sts[g].pair_index
        out.append(np.vstack([dtau.T, dsig[:, pairs[:, 0], pairs[:, 1]].T]))
    return out


def _prepare(
    data: pd.DataFrame,
    model: str,
    ordered: Sequence[str] | bool | None,
    missing: str,
    group: str | None,
    group_equal: Sequence[str],
    std_lv: bool,
    parameterization: str = "delta",
) -> tuple[ModelSpec, list[OrdinalStats], list[str]]:
    """Check the input, compute the sample statistics per group and build the model."""
    if missing not in ("listwise", "pairwise"):
        raise ValueError(f"missing must be 'listwise' or 'pairwise' for WLSMV, got {missing!r}")
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    base = ModelSpec.from_syntax(model, std_lv=std_lv)
    ov = list(base.ov)
    absent = [v for v in ov if v not in data.columns]
    if absent:
        raise ValueError(f"model variables not in the data: {absent}")
    if ordered is None or ordered is True:
        ordered = ov
    if isinstance(ordered, str) or not isinstance(ordered, Sequence):
        raise ValueError(f"ordered must be None, True or a list of item names, got {ordered!r}")
    ordered = list(ordered)
    unknown = sorted(set(ordered) - set(ov))
    if unknown:
        raise ValueError(f"ordered variables not in the model: {unknown}")
    if set(ordered) != set(ov):
        raise ValueError(
            "WLSMV here needs every observed indicator ordered (mixed continuous/ordinal "
            f"models are not supported), got continuous {sorted(set(ov) - set(ordered))}"
        )
    require_finite(data, ov)
    items = data[ov]
    levels = []
    for v in ov:
        values = pd.to_numeric(items[v], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        lev = np.unique(values[~np.isnan(values)])
        if lev.size < 2:
            raise ValueError(f"ordered item {v!r} needs at least two categories, got {lev.size}")
        levels.append(lev)
    if group is None:
        labels = ["1"]
        parts = [items]
    else:
        if group not in data.columns:
            raise ValueError(f"group column not in the data: {group!r}")
        keys = data[group]
        if keys.isna().any():
            raise ValueError(f"group column {group!r} has missing values, got {keys.isna().sum()}")
        labels = [str(v) for v in pd.unique(keys.astype(str))]
        if len(labels) < 2:
            raise ValueError(f"group column {group!r} needs at least two groups, got {labels}")
        parts = [items[keys.astype(str).to_numpy() == lab] for lab in labels]
    sts = []
    for lab, part in zip(labels, parts, strict=True):
        try:
            sts.append(ordinal_stats(part, missing=missing, gamma=True, levels=levels))
        except ValueError as err:
            where = "" if group is None else f" in group {lab!r}"
            hint = (
                " (collapse_empty_categories=True merges it with an adjacent category in "
                "every group)"
                if "empty categories" in str(err)
                else ""
            )
            raise ValueError(f"{err}{where}{hint}") from err
    spec = ModelSpec.from_syntax(
        model,
        std_lv=std_lv,
        ordered=ov,
        n_thresholds={v: lev.size - 1 for v, lev in zip(ov, levels, strict=True)},
        group_labels=labels if group is not None else None,
        group_equal=tuple(group_equal),
        parameterization=parameterization,
    )
    return spec, sts, labels


def _collapse(
    data: pd.DataFrame,
    model: str,
    ordered: Sequence[str] | bool | None,
    group: str | None,
    missing: str,
    std_lv: bool,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Collapse empty categories of the model's ordered items (see :mod:`.categories`)."""
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    ov = ModelSpec.from_syntax(model, std_lv=std_lv).ov
    if ordered is None or ordered is True:
        items = ov
    elif isinstance(ordered, str) or not isinstance(ordered, Sequence):
        raise ValueError(f"ordered must be None, True or a list of item names, got {ordered!r}")
    else:
        items = [v for v in ov if v in set(ordered)]
    items = [v for v in items if v in data.columns]
    require_finite(data, items)
    if missing not in ("listwise", "pairwise"):
        raise ValueError(f"missing must be 'listwise' or 'pairwise' for WLSMV, got {missing!r}")
    if group is not None and group not in data.columns:
        raise ValueError(f"group column not in the data: {group!r}")
    return collapse_empty_categories(data, items, group, missing)


def _start(spec: ModelSpec, sts: list[OrdinalStats]) -> np.ndarray:
    """Starting values: model.start_values on the polychoric matrices, sample thresholds."""
    x0 = start_values(spec, [s.cor for s in sts])
    seen: set[int] = set()
    for g in range(1, spec.ngroups + 1):
        th = sts[g - 1].th_vector
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


# --------------------------------------------------------------------------- estimation


def fit_wlsmv_model(
    data: pd.DataFrame,
    model: str,
    ordered: Sequence[str] | bool | None = None,
    missing: str = "listwise",
    group: str | None = None,
    group_equal: Sequence[str] = (),
    std_lv: bool = False,
    robust_fit: bool = True,
    parameterization: str = "delta",
) -> WlsmvFit:
    """Fit a CFA to ordered items by WLSMV and keep every intermediate quantity.

    Parameters
    ----------
    data : pandas.DataFrame
        The items (integer categories, NaN missing) and, for a multi-group fit, ``group``.
    model : str
        lavaan model syntax.
    ordered : sequence of str, optional
        The ordered items; default all observed variables of the model (all must be ordered).
    missing : {"listwise", "pairwise"}
        Missing-data handling of the sample statistics (lavaan's ``missing``).
    group : str, optional
        Grouping column for a multi-group model (groups in order of first appearance).
    group_equal : sequence of str
        lavaan's ``group.equal`` (e.g. ``("loadings", "intercepts", "thresholds")``).
    std_lv : bool
        Identify factors by unit variances instead of marker loadings.
    robust_fit : bool
        Compute the Savalei (2021) robust CFI/TLI/RMSEA.
    parameterization : {"delta", "theta"}
        lavaan's ``parameterization``: ``"delta"`` (default) scales each latent response y*
        to unit variance (scale factors ``~*~``, residual variances computed); ``"theta"``
        fixes the residual variances of y* to 1 (free in groups 2+ once thresholds are held
        equal) and computes the scale factors ``1 / sqrt(var(y*))``. The two are equivalent
        for one group and for the configural and scalar ladder steps, not for lavaan's
        metric step (scale factors versus residual variances fixed at 1 in every group), and
        only the theta parameterization can hold residual variances equal (strict).

    Returns
    -------
    WlsmvFit
        Use :meth:`WlsmvFit.to_dict` for the lavaan-style output. A model with more free
        parameters than sample statistics (df < 0) is estimated, as lavaan does, but gets no
        standard errors, test or fit indices: ``not_identified`` holds its status issue.

    Notes
    -----
    Estimation minimises the diagonally weighted least-squares discrepancy
    ``F = sum_g (N_g/N) (s_g - sigma_g)' W_g (s_g - sigma_g)`` between the sample
    thresholds and polychoric correlations ``s_g`` and their model-implied values (delta
    parameterization), with ``W_g`` the inverse diagonal of the asymptotic covariance matrix
    Gamma (Muthén, du Toit & Spisic 1997). Standard errors are the sandwich
    ``E^-1 (sum_g f_g Delta' W Gamma W Delta) E^-1 / (N - G)`` with ``E = sum_g f_g Delta' W Delta``
    (lavaan ``se = "robust.sem"``); the test statistic is ``T = N F`` and its mean-and-variance
    adjusted ("scaled-shifted") version ``a T + b`` with ``a = sqrt(df / tr((U Gamma)^2))`` and
    ``b = df - a tr(U Gamma)`` (Asparouhov & Muthén 2010). The robust CFI/TLI/RMSEA follow
    Savalei (2021) as implemented in lavaan 0.6-14 (see :func:`_robust_catml`); lavaan's
    conventions are kept: the discrepancy of group g is weighted by N_g - 1, RMSEA and the
    covariance matrix use N - G.

    References
    ----------
    Muthén, B. (1984). A general structural equation model with dichotomous, ordered
    categorical, and continuous latent variable indicators. Psychometrika, 49, 115-132.
    Muthén, B., du Toit, S. H. C., & Spisic, D. (1997). Robust inference using weighted least
    squares and quadratic estimating equations in latent variable modeling with categorical
    and continuous outcomes. Unpublished manuscript.
    Asparouhov, T., & Muthén, B. (2010). Simple second order chi-square correction. Mplus
    technical appendix.
    Satorra, A. (2000). Scaled and adjusted restricted tests in multi-sample analysis of
    moment structures. In Heijmans, Pollock & Satorra (Eds.), Innovations in Multivariate
    Statistical Analysis (pp. 233-247). Kluwer.
    Savalei, V. (2021). Improving fit indices in structural equation modeling with categorical
    data. Multivariate Behavioral Research, 56(3), 390-407.
    Millsap, R. E., & Yun-Tein, J. (2004). Assessing factorial invariance in ordered-categorical
    measures. Multivariate Behavioral Research, 39(3), 479-515.
    """
    # the matrices are small: one BLAS thread is much faster than several competing ones
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(
            data, model, ordered, missing, group, group_equal, std_lv, robust_fit,
            parameterization,
        )  # fmt: skip


def _fit(
    data: pd.DataFrame,
    model: str,
    ordered: Sequence[str] | bool | None,
    missing: str,
    group: str | None,
    group_equal: Sequence[str],
    std_lv: bool,
    robust_fit: bool,
    parameterization: str = "delta",
) -> WlsmvFit:
    """Body of :func:`fit_wlsmv_model`."""
    spec, sts, _labels = _prepare(
        data, model, ordered, missing, group, group_equal, std_lv, parameterization
    )
    obs = [s.wls_obs for s in sts]
    # lavaan scales each group's discrepancy by (N_g - 1) / N_g (lav_model_objective)
    sw = [np.sqrt((s.nobs - 1.0) * s.wls_v_diag) for s in sts]
    npar = spec.npar
    ndat = sum(len(o) for o in obs)
    df = int(ndat - npar)
    x0 = _start(spec, sts)
    x, resid, converged, nfev = _levenberg_marquardt(spec, sts, obs, sw, x0)
    fit = WlsmvFit(
        spec=spec,
        stats=sts,
        x=x,
        converged=converged,
        iterations=nfev,
        missing=missing,
        group=group,
    )
    fit.df = df
    fit.chisq = float(np.sum(resid**2))
    if df < 0:  # as lavaan: estimated, but no standard errors, test or fit indices
        from alliance.sem.api import FIT_NAMES, ROBUST_NAMES
        from alliance.sem.validity import not_identified

        fit.not_identified = not_identified(npar, df)
        fit.fit = {k: None for k in FIT_NAMES + ROBUST_NAMES} | {"npar": npar, "df": df}
        return fit
    _inference(fit)
    _fit_measures(fit, robust_fit)
    return fit


def _levenberg_marquardt(
    spec: ModelSpec,
    sts: list[OrdinalStats],
    obs: list[np.ndarray],
    sw: list[np.ndarray],
    x0: np.ndarray,
    max_nfev: int = 2000,
    tol: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """Minimise ``sum_g |sw_g (s_g - sigma_g(x))|^2`` by Levenberg-Marquardt, group by group.

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
    layout = Layout.of(spec)

    def resid(x: np.ndarray) -> np.ndarray:
        imp = _implied(spec, sts, x)
        return np.concatenate([w * (o - i) for w, o, i in zip(sw, obs, imp, strict=True)])

    def normal_equations(x: np.ndarray, r: np.ndarray) -> tuple[GroupSum, np.ndarray]:
        blocks, grad, pos = [], np.zeros(len(x)), 0
        for w, d, idx in zip(sw, _delta(spec, sts, x, local=True), layout.local, strict=True):
            jd = w[:, None] * d  # minus the Jacobian of the residuals
            blocks.append(jd.T @ jd)
            grad[idx] -= jd.T @ r[pos : pos + len(w)]
            pos += len(w)
        return GroupSum(layout, blocks), grad

    x = np.asarray(x0, dtype=float).copy()
    r = resid(x)
    cost = float(r @ r)
    nfev, lam, converged = 1, 1e-3, False
    if not np.isfinite(cost):
        return x, r, False, nfev
    jtj, grad = normal_equations(x, r)
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
        r_new = resid(x_new)
        nfev += 1
        cost_new = float(r_new @ r_new)
        if np.isfinite(cost_new) and cost_new <= cost:
            small_step = np.linalg.norm(step) <= tol * (np.linalg.norm(x) + tol)
            small_drop = cost - cost_new <= tol * cost
            x, r = x_new, r_new
            done = small_step or (small_drop and lam <= 1e-3)
            cost = cost_new
            lam = max(lam / 10.0, 1e-12)
            jtj, grad = normal_equations(x, r)
            if done:
                converged = True
                break
        else:
            lam *= 10.0
            if lam > 1e16:
                break
    return x, r, converged, nfev


def _inference(fit: WlsmvFit) -> None:
    """Robust covariance matrix and the scaled-shifted test statistic (group blocks)."""
    fg = fit.fg
    layout = Layout.of(fit.spec)
    deltas = _delta(fit.spec, fit.stats, fit.x, local=True)
    fit.local_deltas = deltas
    parts = list(zip(fg, deltas, fit.weights, fit.stats, strict=True))
    e = GroupSum(layout, [f * d.T @ (w[:, None] * d) for f, d, w, _ in parts])
    fit.info_blocks = e
    e_inv = e.inverse()
    meat = GroupSum(layout, [f * (d.T * w) @ s.gamma @ (w[:, None] * d) for f, d, w, s in parts])
    # lavaan divides the robust.sem sandwich by N - G for (D)WLS (lav_model_vcov)
    fit.cov = e_inv.sandwich(meat).scaled(1.0 / (fit.ntotal - fit.spec.ngroups))
    tr1, tr2 = _ugamma_traces(fg, deltas, fit.weights, [s.gamma for s in fit.stats], e_inv)
    fit.tests = _scaled_shifted(fit.chisq, fit.df, tr1, tr2)


def _ugamma_traces(
    fg: np.ndarray,
    deltas: list[np.ndarray],
    weights: list[np.ndarray],
    gammas: list[np.ndarray],
    e_inv: BlockLowRank,
) -> tuple[float, float]:
    """tr(U Gamma) and tr((U Gamma)^2) with U = V - V Delta E^-1 Delta' V (all groups stacked).

    ``V`` (the weights ``f_g W_g``) and ``Gamma`` (``Gamma_g / f_g``) are block diagonal by
    group and ``deltas`` are the groups' local Jacobians, so with ``P = sum_g Delta_g' V_g
    Gamma_g V_g Delta_g``: ``tr(U Gamma) = sum_g tr(V_g Gamma_g) - tr(E^-1 P)`` and
    ``tr((U Gamma)^2) = sum_g tr((V_g Gamma_g)^2) - 2 tr(E^-1 sum_g Delta_g' V_g Gamma_g V_g
    Gamma_g V_g Delta_g) + tr(E^-1 P E^-1 P)``: linear in the number of groups.
    """
    layout = e_inv.layout
    tr1 = tr2 = 0.0
    p_blocks, q_blocks = [], []
    for f, d, w, gm in zip(fg, deltas, weights, gammas, strict=True):
        v = f * w
        vg = v[:, None] * (gm / f)  # V_g Gamma_g
        tr1 += float(np.trace(vg))
        tr2 += float(np.sum(vg * vg.T))
        vd = v[:, None] * d
        gvd = (gm / f) @ vd  # Gamma_g V_g Delta_g
        p_blocks.append(vd.T @ gvd)
        q_blocks.append(gvd.T @ (v[:, None] * gvd))
    p_mat = GroupSum(layout, p_blocks)
    tr1 -= e_inv.trace_with(p_mat)
    tr2 += -2.0 * e_inv.trace_with(GroupSum(layout, q_blocks)) + e_inv.trace_pair(p_mat, p_mat)
    return tr1, tr2


def _scaled_shifted(chisq: float, df: int, tr1: float, tr2: float) -> dict[str, float]:
    """Asparouhov & Muthén (2010) mean-and-variance adjusted statistic ``a T + b``."""
    if df <= 0 or tr2 <= 0:
        return {
            "chisq.scaled": chisq,
            "chisq.scaling.factor": float("nan"),
            "shift": float("nan"),
            "trace.UGamma": tr1,
            "trace.UGamma2": tr2,
        }
    a = math.sqrt(df / tr2)
    shift = df - a * tr1
    return {
        "chisq.scaled": a * chisq + shift,
        "chisq.scaling.factor": 1.0 / a,
        "shift": shift,
        "trace.UGamma": tr1,
        "trace.UGamma2": tr2,
    }


# --------------------------------------------------------------------------- fit measures


def _cfi(x2: float, df: float, x2b: float, dfb: float, c: float = 1.0, cb: float = 1.0) -> float:
    t1 = max(x2 - c * df, 0.0)
    t2 = max(x2 - c * df, x2b - cb * dfb, 0.0)
    if math.isclose(t1, 0.0, abs_tol=1.5e-8) and math.isclose(t2, 0.0, abs_tol=1.5e-8):
        return 1.0
    return 1.0 - t1 / t2


def _tli(x2: float, df: float, x2b: float, dfb: float, c: float = 1.0, cb: float = 1.0) -> float:
    t1 = (x2 - c * df) * dfb
    t2 = (x2b - cb * dfb) * df
    if df > 0 and abs(t2) > 0:
        return 1.0 - t1 / t2
    return 1.0


def _rmsea(x2: float, df: float, n: float, g: int, c: float = 1.0) -> float:
    if df <= 0:
        return 0.0
    return math.sqrt(max(x2 / n / df - c / n, 0.0)) * math.sqrt(g)


def _pchisq(x: float, df: float, ncp: float) -> float:
    if ncp <= 0:
        return float(special.chdtr(df, x))
    return float(special.chndtr(x, df, ncp))


def _rmsea_ci(
    x2: float, df: float, n: float, g: int, c: float = 1.0, level: float = 0.90
) -> tuple[float, float]:
    """RMSEA confidence interval by inverting the noncentral chi-square (as lavaan)."""
    if not (math.isfinite(x2) and math.isfinite(df)) or df < 1:
        return 0.0, 0.0
    up, lo = 1.0 - (1.0 - level) / 2.0, (1.0 - level) / 2.0

    def f_low(lam: float) -> float:
        return _pchisq(x2, df, lam) - up

    def f_up(lam: float) -> float:
        return _pchisq(x2, df, lam) - lo

    if f_low(0.0) < 0:
        lower = 0.0
    else:
        lam = optimize.brentq(f_low, 0.0, x2, xtol=1e-10)
        lower = math.sqrt(c * lam / (n * df)) * math.sqrt(g)
    n_rmsea = max(n, 4.0 * x2)
    if f_up(n_rmsea) > 0 or f_up(0.0) < 0:
        upper = 0.0
    else:
        lam = optimize.brentq(f_up, 0.0, n_rmsea, xtol=1e-10)
        upper = math.sqrt(c * lam / (n * df)) * math.sqrt(g)
    return lower, upper


def _rmsea_pvalue(x2: float, df: float, n: float, g: int, h0: float = 0.05) -> float:
    if df <= 0:
        return float("nan")
    ncp = n * df * h0**2 / g
    return 1.0 - _pchisq(x2, df, ncp)


def _srmr(fit: WlsmvFit) -> tuple[float, float]:
    """SRMR (correlations only; lavaan's ``srmr`` for ordered data) and with thresholds."""
    imp = fit.implied_stats()
    nomean, total = [], []
    for s, i in zip(fit.stats, imp, strict=True):
        p = len(s.names)
        nth = len(s.th_vector)
        r = s.wls_obs - i
        rc, rt = r[nth:], r[:nth]
        nomean.append(math.sqrt(np.sum(rc**2) / (len(rc) + p)))
        total.append(math.sqrt((np.sum(rc**2) + np.sum(rt**2)) / (len(rc) + len(rt) + p)))
    fg = fit.fg
    return float(np.dot(fg, nomean)), float(np.dot(fg, total))


def _baseline(fit: WlsmvFit) -> dict[str, float]:
    """Independence model (free thresholds, zero correlations per group) and its scaled test."""
    x2b = 0.0
    dfb = 0
    tr1 = 0.0
    tr2 = 0.0
    for s in fit.stats:
        nth = len(s.th_vector)
        w = s.wls_v_diag[nth:]
        r = s.cor_vector
        x2b += (s.nobs - 1.0) * float(np.sum(w * r * r))
        dfb += len(r)
        wg = w[:, None] * s.gamma[nth:, nth:]
        tr1 += float(np.trace(wg))
        tr2 += float(np.sum(wg * wg.T))
    out = _scaled_shifted(x2b, dfb, tr1, tr2)
    out["chisq"] = x2b
    out["df"] = dfb
    return out


def _fit_measures(fit: WlsmvFit, robust_fit: bool) -> None:
    """The fit measures of lavaan's ``fitMeasures`` for WLSMV (the reference ``fit`` block)."""
    g = fit.spec.ngroups
    n1 = fit.ntotal - g  # lavaan uses N - G for DWLS
    x2, df = fit.chisq, fit.df
    x2s = fit.tests["chisq.scaled"]
    base = _baseline(fit)
    x2b, dfb, x2bs = base["chisq"], base["df"], base["chisq.scaled"]
    out: dict[str, float | None] = {
        "npar": fit.spec.npar,
        "ntotal": None,
        "chisq": x2,
        "df": df,
        "pvalue": float(special.chdtrc(df, x2)) if df > 0 else float("nan"),
        "cfi": _cfi(x2, df, x2b, dfb),
        "tli": _tli(x2, df, x2b, dfb),
        "rmsea": _rmsea(x2, df, n1, g),
    }
    lo, up = _rmsea_ci(x2, df, n1, g)
    out["rmsea.ci.lower"], out["rmsea.ci.upper"] = lo, up
    out["rmsea.pvalue"] = _rmsea_pvalue(x2, df, n1, g)
    srmr, srmr_bentler = _srmr(fit)
    out["srmr"] = srmr
    for k in ("logl", "unrestricted.logl", "aic", "bic", "bic2"):
        out[k] = None
    out["baseline.chisq"] = x2b
    out["baseline.df"] = dfb
    out["baseline.pvalue"] = float(special.chdtrc(dfb, x2b))
    out["chisq.scaled"] = x2s
    out["df.scaled"] = df
    out["pvalue.scaled"] = float(special.chdtrc(df, x2s)) if df > 0 else float("nan")
    out["chisq.scaling.factor"] = fit.tests["chisq.scaling.factor"]
    out["chisq.shift.parameter"] = fit.tests["shift"]
    out["baseline.chisq.scaled"] = x2bs
    out["baseline.df.scaled"] = dfb
    out["baseline.chisq.scaling.factor"] = base["chisq.scaling.factor"]
    out["cfi.scaled"] = _cfi(x2s, df, x2bs, dfb)
    out["tli.scaled"] = _tli(x2s, df, x2bs, dfb)
    out["rmsea.scaled"] = _rmsea(x2s, df, n1, g)
    lo, up = _rmsea_ci(x2s, df, n1, g)
    out["rmsea.ci.lower.scaled"], out["rmsea.ci.upper.scaled"] = lo, up
    rob = _robust_catml(fit) if robust_fit else None
    undefined = _robust_undefined(fit) if robust_fit else None
    if undefined is not None:
        fit.robust_note = f"robust CFI, TLI and RMSEA not defined: {undefined}"
    if rob is None:
        for k in ("cfi", "tli", "rmsea", "rmsea.ci.lower", "rmsea.ci.upper"):
            out[f"{k}.robust"] = None
    else:
        xx3, df3, c3, xx3b, df3b, c3b = rob
        out["cfi.robust"] = _cfi(xx3, df3, xx3b, df3b, c3, c3b)
        out["tli.robust"] = _tli(xx3, df3, xx3b, df3b, c3, c3b)
        out["rmsea.robust"] = _rmsea(xx3, df3, n1, g, c3)
        lo, up = _rmsea_ci(xx3 / c3, df3, n1, g, c3)
        out["rmsea.ci.lower.robust"], out["rmsea.ci.upper.robust"] = lo, up
    out["srmr_bentler"] = srmr_bentler
    fit.fit = out


def _robust_undefined(fit: WlsmvFit) -> str | None:
    """Why the Savalei (2021) robust indices are not defined for ``fit`` (None when they are).

    As lavaan 0.6-14, which returns NA: a free scale factor (thresholds held equal across
    groups, delta parameterization), thresholds held equal across groups, or a sample
    polychoric correlation matrix that is not positive definite (the catML discrepancy
    needs its log-determinant; with pairwise missing data or sparse categories in a small
    sample the pairwise polychorics need not form a positive-definite matrix).
    """
    spec = fit.spec
    if any(r.free and r.op == "~*~" for r in spec.table):
        return "scale factors are free (thresholds held equal across groups), as in lavaan"
    if spec.ngroups > 1 and "thresholds" in spec.group_equal:
        return "thresholds are held equal across groups, as in lavaan"
    for gi, s in enumerate(fit.stats):
        smallest = float(np.linalg.eigvalsh(s.cor).min())
        if smallest < np.sqrt(np.finfo(float).eps):
            where = f" of group {spec.group_labels[gi]}" if spec.ngroups > 1 else ""
            return (
                f"the sample polychoric correlation matrix{where} is not positive definite "
                f"(smallest eigenvalue {smallest:.3g}), so the catML statistic behind them "
                "cannot be computed (lavaan 0.6-14 also returns NA)"
            )
    return None


def _robust_catml(fit: WlsmvFit) -> tuple[float, float, float, float, float, float] | None:
    """Savalei (2021) robust statistic for CFI/TLI/RMSEA with categorical data.

    The model is evaluated with the normal-theory ML discrepancy on the polychoric
    correlations at the DWLS estimates ("catML"), and that statistic is corrected by
    ``c = tr(U' V U Gamma) / df`` with the DWLS residual projection ``U`` (lavaan's
    ``lav_fit_catml_dwls``). Returns ``None`` when lavaan 0.6-14 returns NA: when thresholds
    are held equal across groups (delta: a scale factor ``~*~`` is free; theta: also in the
    strict step, where no residual variance is free) or a correlation matrix is not positive
    definite (:func:`_robust_undefined` says which).
    """
    if _robust_undefined(fit) is not None:
        return None
    spec = fit.spec
    fg = fit.fg
    imp = spec.implied(fit.x)
    xx3 = 0.0
    xx3b = 0.0
    ks = 0.0
    tr_gamma = 0.0
    x_blocks, y1_blocks, y2_blocks = [], [], []
    for gi, s in enumerate(fit.stats):
        r = s.cor
        sigma = imp[gi].sigma
        p = r.shape[0]
        sinv = np.linalg.inv(sigma)
        _sgn, logdet_s = np.linalg.slogdet(sigma)
        _sgn, logdet_r = np.linalg.slogdet(r)
        f_ml = logdet_s - logdet_r + np.trace(r @ sinv) - p
        xx3 += s.nobs * f_ml
        xx3b += s.nobs * (-logdet_r)
        nth = len(s.th_vector)
        pairs = s.pair_index
        v = fg[gi] * _ml_cor_weight(sigma, pairs)
        w = fg[gi] * s.wls_v_diag[nth:]
        gam = s.gamma[nth:, nth:] / fg[gi]
        d = fit.local_deltas[gi][nth:]
        ks += float(np.sum(v * gam.T))  # tr(V Gamma)
        tr_gamma += float(np.trace(gam))
        vd, wd = v @ d, w[:, None] * d
        x_blocks.append(vd.T @ gam @ wd)
        y1_blocks.append(d.T @ vd)
        y2_blocks.append(wd.T @ gam @ wd)
    df3 = len(fit.stats) * len(fit.stats[0].pair_index) - _npar_no_th(spec)
    # tr(M' V M Gamma) with M = I - D E^-1 D' W, expanded by group (see _ugamma_traces)
    e_inv = fit.info_blocks.inverse()
    layout = e_inv.layout
    ks -= 2.0 * e_inv.trace_with(GroupSum(layout, x_blocks))
    ks += e_inv.trace_pair(GroupSum(layout, y1_blocks), GroupSum(layout, y2_blocks))
    c3 = ks / df3
    df3b = len(fit.stats) * len(fit.stats[0].pair_index)
    c3b = tr_gamma / df3b
    return xx3, float(df3), c3, xx3b, float(df3b), c3b


def _npar_no_th(spec: ModelSpec) -> int:
    """Free parameters other than thresholds, intercepts and scale factors."""
    frees = {r.free for r in spec.table if r.free and r.op not in ("|", "~1", "~*~")}
    return len(frees)


def _bdiag(blocks: list[np.ndarray]) -> np.ndarray:
    size = sum(b.shape[0] for b in blocks)
    out = np.zeros((size, size))
    pos = 0
    for b in blocks:
        k = b.shape[0]
        out[pos : pos + k, pos : pos + k] = b
        pos += k
    return out


def _ml_cor_weight(sigma: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Normal-theory ML weight for the off-diagonal correlations: 0.5 D' (S^-1 x S^-1) D."""
    sinv = np.linalg.inv(sigma)
    i, j = pairs[:, 0], pairs[:, 1]
    # d vec(Sigma) / d sigma_ij for i != j is e_i e_j' + e_j e_i'
    a = sinv[np.ix_(i, i)] * sinv[np.ix_(j, j)] + sinv[np.ix_(i, j)] * sinv[np.ix_(j, i)]
    return a


# --------------------------------------------------------------------------- output tables


def _std_values(spec: ModelSpec, x: np.ndarray) -> np.ndarray:
    """std.all of every row of the parameter table at ``x``."""
    out = np.zeros(len(spec.table))
    for g, ks in _table_positions(spec).items():
        out[ks] = _std_group(spec, x, g, ks)
    return out


def _table_positions(spec: ModelSpec) -> dict[int, np.ndarray]:
    """Positions in ``spec.table`` of each group's rows."""
    pos: dict[int, list[int]] = {}
    for k, r in enumerate(spec.table):
        pos.setdefault(r.group, []).append(k)
    return {g: np.array(v, dtype=int) for g, v in pos.items()}


def _std_group(spec: ModelSpec, x: np.ndarray, g: int, ks: np.ndarray) -> np.ndarray:
    """std.all of the table rows ``ks`` (all of group ``g``) at ``x``."""
    out = np.zeros(len(ks))
    mt = spec.matrices(x, g)
    ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
    c = mt.lambda_ @ ib
    a = ib @ mt.psi @ ib.T
    ov_var = np.einsum("ij,jk,ik->i", c, mt.psi, c) + np.diag(mt.theta)
    lv_sd, ov_sd = np.sqrt(np.diag(a)), np.sqrt(ov_var)
    oi = {v: i for i, v in enumerate(spec.ov)}
    li = {v: i for i, v in enumerate(spec.lv)}
    xs = np.asarray(x, dtype=float)
    for j, k in enumerate(ks):
        r = spec.table[k]
        est = xs[r.free - 1] if r.free else _fixed_value(spec, mt, r)
        if r.op == "=~":
            if r.rhs in oi:
                out[j] = est * lv_sd[li[r.lhs]] / ov_sd[oi[r.rhs]]
            else:
                out[j] = est * lv_sd[li[r.lhs]] / lv_sd[li[r.rhs]]
        elif r.op == "|":
            out[j] = est / ov_sd[oi[r.lhs]]
        elif r.op == "~~":
            if r.lhs in oi:
                out[j] = est / (ov_sd[oi[r.lhs]] * ov_sd[oi[r.rhs]])
            else:
                out[j] = est / (lv_sd[li[r.lhs]] * lv_sd[li[r.rhs]])
        elif r.op == "~1":
            sd = ov_sd[oi[r.lhs]] if r.lhs in oi else lv_sd[li[r.lhs]]
            out[j] = est / sd
        elif r.op == "~*~":
            out[j] = 1.0
        elif r.op == "~":
            out[j] = est * lv_sd[li[r.rhs]] / lv_sd[li[r.lhs]]
        else:
            out[j] = est
    return out


def _fixed_value(spec: ModelSpec, mt: Any, r: Any) -> float:
    """Value of a fixed or computed row from the group's matrices."""
    attr = {
        "lambda": "lambda_",
        "theta": "theta",
        "psi": "psi",
        "beta": "beta",
        "nu": "nu",
        "alpha": "alpha",
        "tau": "tau",
        "delta": "delta",
    }[r.mat]
    m = getattr(mt, attr)
    return float(m[r.row, r.col] if m.ndim == 2 else m[r.row])


def _row_est(fit: WlsmvFit) -> np.ndarray:
    out = np.zeros(len(fit.spec.table))
    mats = {g: fit.spec.matrices(fit.x, g) for g in range(1, fit.spec.ngroups + 1)}
    for k, r in enumerate(fit.spec.table):
        out[k] = fit.x[r.free - 1] if r.free else _fixed_value(fit.spec, mats[r.group], r)
    return out


#: The inference columns of a parameter row (None without standard errors).
INFERENCE_KEYS = ("se", "z", "pvalue", "ci.lower", "ci.upper")


def _inference_row(est: float, se: float, z_crit: float) -> dict[str, float | None]:
    if se > 1e-12 and math.isfinite(se):
        z = est / se
        return {
            "se": se,
            "z": z,
            "pvalue": math.erfc(abs(z) / math.sqrt(2.0)),
            "ci.lower": est - z_crit * se,
            "ci.upper": est + z_crit * se,
        }
    return {"se": 0.0, "z": None, "pvalue": None, "ci.lower": est, "ci.upper": est}


def parameter_rows(fit: WlsmvFit, level: float = 0.95, multi: bool = False) -> list[dict]:
    """Rows of lavaan's ``parameterEstimates()`` (``block``/``group``/``label`` if multi)."""
    z_crit = float(special.ndtri(0.5 + level / 2.0))
    # no covariance matrix (a model that is not identified): free parameters have no SEs
    se_all = None if fit.cov is None else np.sqrt(np.maximum(fit.cov.diag(), 0.0))
    est = _row_est(fit)
    rows = []
    for k, r in enumerate(fit.spec.table):
        row: dict[str, Any] = {"lhs": r.lhs, "op": r.op, "rhs": r.rhs}
        if multi:
            row.update({"block": r.group, "group": r.group, "label": r.label})
        row["est"] = float(est[k])
        if r.free and se_all is None:
            row.update(dict.fromkeys(INFERENCE_KEYS))
        else:
            se = float(se_all[r.free - 1]) if r.free else 0.0
            inference = _inference_row(float(est[k]), se, z_crit)
            row.update({k2: _num(v) for k2, v in inference.items()})
        row["free"] = bool(r.free)
        rows.append(row)
    return rows


def standardized_rows(fit: WlsmvFit, level: float = 0.95, multi: bool = False) -> list[dict]:
    """Rows of lavaan's ``standardizedSolution(type = "std.all")`` with delta-method SEs."""
    z_crit = float(special.ndtri(0.5 + level / 2.0))
    x = fit.x
    spec = fit.spec
    base = _std_values(spec, x)
    var = np.zeros(len(base))
    # not identified (no covariance matrix): no standard errors
    positions = {} if fit.cov is None else _table_positions(spec)
    # group g's rows depend only on its parameters: its Jacobian block and block of vcov
    for g, ks in positions.items():
        idx = spec.group_free(g)
        jac = np.zeros((len(ks), len(idx)))
        xe = np.array(x, dtype=float)
        for j, k in enumerate(idx):
            h = 1e-6 * max(1.0, abs(x[k]))
            xe[k] = x[k] + h
            up = _std_group(spec, xe, g, ks)
            xe[k] = x[k] - h
            jac[:, j] = (up - _std_group(spec, xe, g, ks)) / (2.0 * h)
            xe[k] = x[k]
        var[ks] = np.einsum("ij,jk,ik->i", jac, fit.cov.sub(idx), jac)
    rows = []
    for k, r in enumerate(fit.spec.table):
        row: dict[str, Any] = {"lhs": r.lhs, "op": r.op, "rhs": r.rhs}
        if multi:
            row.update({"group": r.group, "label": r.label})
        row["est.std"] = float(base[k])
        if fit.cov is None:
            row.update(dict.fromkeys(INFERENCE_KEYS))
            rows.append(row)
            continue
        se = math.sqrt(max(var[k], 0.0))
        if se < 1e-9:
            se = 0.0
        row.update({k2: _num(v) for k2, v in _inference_row(float(base[k]), se, z_crit).items()})
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- details

RELIABILITY_NOTE = (
    "Ordered items (semTools 0.5-6 reliability() for categorical indicators): omega = "
    "Green & Yang (2009) categorical omega, the reliability of the sum of the observed item "
    "scores computed from the thresholds, with the model-implied item correlations as the "
    "total (= semTools omega = omega2, compRelSEM(ord.scale = TRUE)); omega2 the same with "
    "the fitted latent-response correlation matrix as total; omega_obs_var the same with the "
    "sample polychoric matrix as total (= semTools omega3); omega_latent = (sum lambda)^2 psi "
    "/ ((sum lambda)^2 psi + sum theta) on the latent-response (y*) scale, not the scale of the "
    "item scores; alpha = Cronbach's alpha of the raw item scores treated as numeric (complete "
    "cases of the factor's items; semTools gives NA with missing answers); alpha_ordinal = "
    "Zumbo et al. (2007) ordinal alpha from the sample polychoric correlations (semTools "
    "alpha.ord); avevar = sum lambda^2 psi / sum of latent-response variances (AVE on the "
    "polychoric scale)."
)

MODINDICES_NOTE = (
    "modification indices under WLSMV are lavaan's modindices(): score tests with the DWLS "
    "expected information Delta' W Delta (not robust to non-normality of the polychoric "
    "estimates); treat them as a guide, not as chi-square tests"
)

SCORE_NOTE = (
    "partial invariance: univariate score tests for releasing each equality constraint, as "
    "lavaan's lavTestScore() with WLSMV (which falls back to the ordinary, non-robust score "
    "test with the DWLS information); largest X2 first"
)


def _alpha(cov: np.ndarray) -> float:
    """Cronbach's alpha of a covariance (or correlation) matrix (semTools computeAlpha)."""
    k = cov.shape[0]
    if k < 2:
        return float("nan")
    return float(k / (k - 1) * (1.0 - np.trace(cov) / np.sum(cov)))


def omega_categorical(
    truevar: np.ndarray,
    thresholds: Sequence[np.ndarray],
    scales: np.ndarray,
    denom: np.ndarray,
) -> float:
    """Green & Yang (2009) reliability of a sum of ordered item scores (semTools omegaCat).

    Parameters
    ----------
    truevar : numpy.ndarray
        Common-factor part of the latent-response covariance, ``lambda psi lambda'`` (k x k).
    thresholds : sequence of numpy.ndarray
        The items' threshold parameters.
    scales : numpy.ndarray
        The items' scale factors (delta parameterization; 1 in a single group).
    denom : numpy.ndarray
        Total latent-response covariance (k x k); converted to correlations.

    Returns
    -------
    float
        ``sum_jj' sum_cc' [Phi2(t_jc, t_j'c', R_jj') - Phi(t_jc) Phi(t_j'c')]`` over the same
        sum with the correlations of ``denom``, ``R = D truevar D`` and thresholds ``t * D``.

    References
    ----------
    Green, S. B., & Yang, Y. (2009). Reliability of summed item scores using structural
    equation modeling: An alternative to coefficient alpha. Psychometrika, 74(1), 155-167.
    """
    r = truevar * np.outer(scales, scales)
    sd = np.sqrt(np.diag(denom))
    den = denom / np.outer(sd, sd)
    ts = [np.asarray(t, dtype=float) * s for t, s in zip(thresholds, scales, strict=True)]
    # all (item, threshold) x (item, threshold) cells at once
    tt = np.concatenate(ts)
    item = np.repeat(np.arange(len(ts)), [len(t) for t in ts])
    a, b = np.meshgrid(tt, tt, indexing="ij")
    pairs = np.ix_(item, item)
    prod = float(np.sum(special.ndtr(tt)) ** 2)
    num = float(np.sum(bivariate_normal_cdf(a, b, np.clip(r[pairs], -1, 1)))) - prod
    tot = float(np.sum(bivariate_normal_cdf(a, b, np.clip(den[pairs], -1, 1)))) - prod
    return num / tot


def _group_frames(fit: WlsmvFit, data: pd.DataFrame | None) -> list[pd.DataFrame | None]:
    """The rows of ``data`` used by each group (listwise: complete on every item)."""
    if data is None:
        return [None] * fit.spec.ngroups
    items = data[list(fit.spec.ov)].apply(pd.to_numeric, errors="coerce")
    if fit.group is None:
        parts = [items]
    else:
        keys = data[fit.group].astype(str).to_numpy()
        parts = [items[keys == lab] for lab in fit.spec.group_labels]
    if fit.missing == "listwise":
        parts = [p.dropna() for p in parts]
    return parts


def _reliability_group(fit: WlsmvFit, g: int, raw: pd.DataFrame | None) -> dict[str, dict]:
    spec = fit.spec
    st = fit.stats[g - 1]
    mt = spec.matrices(fit.x, g)
    ib = np.linalg.inv(np.eye(spec.m) - mt.beta)
    a = ib @ mt.psi @ ib.T
    lam_all = mt.lambda_ @ ib
    truevar = lam_all @ mt.psi @ lam_all.T
    sigma_hat = spec.implied(fit.x, g)[0].sigma
    names = ("omega", "omega2", "omega_obs_var", "omega_latent", "alpha", "alpha_ordinal")
    out: dict[str, dict[str, float]] = {k: {} for k in (*names, "avevar")}
    for f in spec.first_order():
        items = spec.indicators(f)
        idx = [spec.ov.index(v) for v in items]
        ix = np.ix_(idx, idx)
        j = spec.lv.index(f)
        lam = mt.lambda_[:, j]
        fac = np.outer(lam, lam) * a[j, j]
        ths = [
            np.array([mt.tau[t] for t, (v, _) in enumerate(spec.threshold_index) if v == item])
            for item in items
        ]
        scales = mt.delta[idx]
        theta = mt.theta[ix]
        try:
            out["omega"][f] = omega_categorical(fac[ix], ths, scales, fac[ix] + theta)
            out["omega2"][f] = omega_categorical(fac[ix], ths, scales, sigma_hat[ix])
            out["omega_obs_var"][f] = omega_categorical(fac[ix], ths, scales, st.cor[ix])
        except (ValueError, FloatingPointError, ZeroDivisionError):
            for k in ("omega", "omega2", "omega_obs_var"):
                out[k][f] = float("nan")
        common = lam[idx].sum() ** 2 * a[j, j]
        out["omega_latent"][f] = float(common / (common + theta.sum()))
        out["alpha_ordinal"][f] = _alpha(st.cor[ix])
        if raw is not None:
            sub = raw[items].dropna()
            out["alpha"][f] = _alpha(np.cov(sub.to_numpy(dtype=float), rowvar=False))
        else:
            out["alpha"][f] = float("nan")
        trueitem = np.diag(truevar)[idx]
        if np.sum(np.abs(trueitem - np.diag(fac)[idx])) < 1e-5:
            out["avevar"][f] = float(np.sum(trueitem) / np.sum(trueitem + np.diag(theta)))
        else:  # cross-loadings: semTools gives NA
            out["avevar"][f] = float("nan")
    return out


def reliability(fit: WlsmvFit, data: pd.DataFrame | None = None) -> dict[str, Any]:
    """Reliability of each first-order factor of ordered items (semTools 0.5-6 style).

    Parameters
    ----------
    fit : WlsmvFit
        A fitted WLSMV model.
    data : pandas.DataFrame, optional
        The data it was fitted to (for the raw-score alpha; ``nan`` without it).

    Returns
    -------
    dict
        ``omega`` (categorical, Green & Yang 2009), ``omega2``, ``omega_obs_var``,
        ``omega_latent``, ``alpha`` (raw scores), ``alpha_ordinal``, ``avevar``: each
        ``{factor: value}`` (one group) or a list of ``{"group": label, factor: value}``;
        and ``reliability_note``.

    References
    ----------
    Green, S. B., & Yang, Y. (2009). Reliability of summed item scores using structural
    equation modeling: An alternative to coefficient alpha. Psychometrika, 74(1), 155-167.
    Zumbo, B. D., Gadermann, A. M., & Zeisser, C. (2007). Ordinal versions of coefficients
    alpha and theta for Likert rating scales. Journal of Modern Applied Statistical
    Methods, 6(1), 21-29.
    """
    frames = _group_frames(fit, data)
    per = [_reliability_group(fit, g + 1, frames[g]) for g in range(fit.spec.ngroups)]
    out: dict[str, Any] = {}
    if fit.spec.ngroups == 1:
        out.update(per[0])
    else:
        for k in per[0]:
            out[k] = [{"group": lab, **per[g][k]} for g, lab in enumerate(fit.spec.group_labels)]
    out["reliability_note"] = RELIABILITY_NOTE
    return out


def residual_correlations(fit: WlsmvFit) -> list[dict[str, Any]]:
    """Sample polychoric minus model-implied correlations (and thresholds) per group.

    As lavaan's ``residuals(fit, type = "cor")`` for ordered items: ``matrix`` is ``$cov``,
    ``thresholds`` is ``$th`` (sample minus implied standardized thresholds).
    """
    out = []
    for s, imp, lab in zip(fit.stats, fit.spec.implied(fit.x), fit.spec.group_labels, strict=True):
        sd = np.sqrt(np.abs(np.diag(imp.sigma)))
        res = s.cor - imp.sigma / np.outer(sd, sd)
        out.append(
            {
                "group": lab,
                "variables": list(s.names),
                "matrix": [[float(v) for v in row] for row in res],
                "thresholds": {
                    n: float(v) for n, v in zip(s.th_names, s.th_vector - imp.tau, strict=True)
                },
            }
        )
    return out


def _dwls_pieces(spec: ModelSpec, fit: WlsmvFit, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of lavaan's DWLS ``fmin`` and the expected information ``sum f_g D'WD``.

    lavaan scales each group's discrepancy by ``(N_g - 1) / N_g`` (as the test statistic), so
    the gradient is ``-sum_g f_g (N_g - 1) / N_g Delta_g' W_g (s_g - sigma_g)``
    (f_g = N_g / N); the information is not rescaled. Dense; see :func:`_dwls_blocks`.
    """
    grad, info = _dwls_blocks(spec, fit, x)
    return grad, info.dense()


def _dwls_blocks(spec: ModelSpec, fit: WlsmvFit, x: np.ndarray) -> tuple[np.ndarray, GroupSum]:
    """As :func:`_dwls_pieces`, with the information as one block per group (GroupSum)."""
    deltas = _delta(spec, fit.stats, x, local=True)
    imp = _implied(spec, fit.stats, x)
    layout = Layout.of(spec)
    grad = np.zeros(len(x))
    blocks = []
    parts = zip(fit.fg, deltas, fit.weights, fit.stats, imp, layout.local, strict=True)
    for f, d, w, s, i, idx in parts:
        grad[idx] -= f * (s.nobs - 1.0) / s.nobs * d.T @ (w * (s.wls_obs - i))
        blocks.append(f * d.T @ (w[:, None] * d))
    return grad, GroupSum(layout, blocks)


def modification_indices(fit: WlsmvFit, top: int | None = 10) -> list[dict[str, Any]]:
    """Modification indices of a WLSMV fit: score tests of the DWLS discrepancy (lavaan).

    Candidates as :func:`alliance.sem.validity.modification_indices` (cross-loadings,
    residual covariances of the latent responses, fixed factor covariances); ``mi = N g^2 /
    V`` with the DWLS gradient ``g`` and ``V`` from the expected information
    ``sum_g f_g Delta' W Delta`` of the extended model. Largest first.
    """
    from alliance.sem.validity import _candidates, score_rows

    spec = fit.spec
    cands = _candidates(spec)
    if not cands:
        return []
    ext = spec.copy()
    q = spec.npar
    for k, c in enumerate(cands):
        c.free = q + k + 1
        c.id = len(ext.table) + 1
        ext.table.append(c)
    ext.invalidate()
    x_ext = np.concatenate([fit.x, np.array([c.value for c in cands])])
    grad, info = _dwls_pieces(ext, fit, x_ext)
    rows = score_rows(spec, fit.x, cands, grad, info, fit.ntotal)
    rows = [r for r in rows if np.isfinite(r["mi"])]
    rows.sort(key=lambda r: -r["mi"])
    return rows[:top] if top else rows


def release_tests(fit: WlsmvFit, top: int | None = 10) -> list[dict[str, Any]]:
    """Score tests for releasing each across-group equality constraint (partial invariance).

    lavaan's ``lavTestScore()`` univariate tests for a WLSMV fit: in the unconstrained
    parameter space, with the DWLS gradient ``s`` and information ``I`` at the constrained
    estimates, releasing constraint ``r`` gives ``X2_r = N s' P_r s`` with ``P_r`` the
    upper-left block of the inverse of ``[[I, R_-r'], [R_-r, 0]]``. Like lavaan with
    ``se = "robust.sem"``, this is the ordinary (non-robust) score test. Largest first.
    """
    from alliance.sem.invariance import unconstrained_copy, univariate_score_tests

    spec = fit.spec
    free_rows = [r for r in spec.table if r.free]
    if len({r.free for r in free_rows}) == len(free_rows):
        return []
    ext, x_un, constraints = unconstrained_copy(spec, fit.x)
    grad, info = _dwls_blocks(ext, fit, x_un)
    return univariate_score_tests(grad, info, constraints, free_rows, spec, fit.ntotal, top)


def residual_release_tests(fit: WlsmvFit, top: int | None = 10) -> list[dict[str, Any]]:
    """Score tests for freeing each fixed residual variance of groups 2+ (partial strict).

    In the theta parameterization the strict step holds the latent responses' residual
    variances equal by fixing them to group 1's value 1 in every group, so they are not
    equality constraints that :func:`release_tests` could release. Freeing one of them in
    one group is a 1-df score test of the same kind: the modification index ``N g^2 / V`` with
    the DWLS gradient ``g`` and ``V = I_jj - I_jF I_FF^-1 I_Fj`` from the DWLS information
    (lavaan's ``modindices()`` rows ``y ~~ y`` of groups 2+). Rows as :func:`release_tests`
    (``X2`` = the modification index, ``epc`` the expected change), largest first; empty
    unless the fit is a theta-parameterization model with equal residuals.

    References
    ----------
    Sorbom, D. (1989). Model modification. Psychometrika, 54(3), 371-384.
    Millsap, R. E., & Yun-Tein, J. (2004). Assessing factorial invariance in ordered-categorical
    measures. Multivariate Behavioral Research, 39(3), 479-515.
    """
    from alliance.sem.validity import score_rows

    spec = fit.spec
    if spec.parameterization != "theta" or "residuals" not in spec.group_equal:
        return []
    ext = spec.copy()
    cands = [
        r
        for r in ext.table
        if r.group > 1 and r.op == "~~" and r.lhs == r.rhs and r.lhs in spec.ordered
        and not r.free and not r.computed
    ]  # fmt: skip
    if not cands:
        return []
    q = spec.npar
    for k, r in enumerate(cands):
        r.free = q + k + 1
    ext.invalidate()
    x_ext = np.concatenate([fit.x, np.array([r.value for r in cands])])
    grad, info = _dwls_pieces(ext, fit, x_ext)
    rows = []
    for c, sr in zip(cands, score_rows(spec, fit.x, cands, grad, info, fit.ntotal), strict=True):
        if not np.isfinite(sr["mi"]):
            continue
        rows.append(
            {
                "lhs": c.lhs,
                "op": c.op,
                "rhs": c.rhs,
                "group": c.group,
                "group_label": spec.group_labels[c.group - 1],
                "parameter": c.name(),
                "label": "",
                "X2": sr["mi"],
                "df": 1,
                "pvalue": sr["pvalue"],
                "epc": sr["epc"],
                "test": "modification index (fixed residual variance freed)",
            }
        )
    rows.sort(key=lambda r: -r["X2"])
    return rows[:top] if top else rows


def details(
    fit: WlsmvFit,
    data: pd.DataFrame | None = None,
    std_rows: list[dict] | None = None,
    n_modindices: int = 10,
) -> dict[str, Any]:
    """Validity and admissibility blocks of a WLSMV fit, as :func:`alliance.sem.api.fit_cfa`.

    ``reliability, factor_correlations, htmt, residual_correlations, modindices, status``
    (and ``notes``); never raises.

    ``htmt`` uses the sample polychoric correlations (as ``semTools::htmt(ordered = ...)``);
    ``factor_correlations`` the standardized solution with its delta-method robust SEs;
    ``status`` the checks of :func:`alliance.sem.validity.admissibility`.
    """
    from alliance.sem.validity import (
        admissibility,
        factor_correlations,
        htmt,
        mark_not_identified,
    )

    multi = fit.spec.ngroups > 1
    rows = std_rows if std_rows is not None else standardized_rows(fit, multi=multi)
    out: dict[str, Any] = {}
    notes: list[str] = []

    def attempt(key: str, fn: Any, empty: Any) -> None:
        try:
            out[key] = fn()
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as err:
            out[key] = empty
            notes.append(f"{key} unavailable: {err}")

    attempt("reliability", lambda: reliability(fit, data), {})
    attempt("factor_correlations", lambda: factor_correlations(fit, rows), [])  # type: ignore[arg-type]
    spec = fit.spec
    fo = {f: spec.indicators(f) for f in spec.first_order()}

    def _htmt() -> Any:
        per = [htmt(s.cor, list(s.names), fo) for s in fit.stats]
        if not multi:
            return per[0]
        return [{"group": lab, **h} for lab, h in zip(spec.group_labels, per, strict=True)]

    attempt("htmt", _htmt, {})
    attempt("residual_correlations", lambda: residual_correlations(fit), [])
    if fit.not_identified:
        out["modindices"] = []
        notes.append("modification indices unavailable: the model is not identified")
    else:
        attempt("modindices", lambda: modification_indices(fit, top=n_modindices), [])
    if out["modindices"]:
        notes.append(MODINDICES_NOTE)
    out["status"] = admissibility(fit, rows)  # type: ignore[arg-type]
    if fit.not_identified:
        mark_not_identified(out["status"], fit.not_identified)
        out["status"]["se_available"] = False
    out["notes"] = notes
    return out


# --------------------------------------------------------------------------- public API


def fit_wlsmv(
    data: pd.DataFrame,
    model: str,
    ordered: Sequence[str] | bool | None = None,
    missing: str = "listwise",
    group: str | None = None,
    group_equal: Sequence[str] = (),
    std_lv: bool = False,
    level: float = 0.95,
    *,
    with_details: bool = True,
    n_modindices: int = 10,
    parameterization: str = "delta",
    collapse_empty_categories: bool = False,
) -> dict[str, Any]:
    """WLSMV CFA for ordered items, returned in the layout of the lavaan reference files.

    Parameters
    ----------
    data : pandas.DataFrame
        Item responses (integer categories; NaN missing) and the ``group`` column if any.
    model : str
        lavaan model syntax (marker-variable identification unless ``std_lv``).
    ordered : sequence of str, optional
        Ordered items; default every observed variable of the model.
    missing : {"listwise", "pairwise"}
        lavaan's ``missing``; ``"pairwise"`` uses all available answers.
    group : str, optional
        Grouping column: fit a multi-group model.
    group_equal : sequence of str
        Parameters held equal across groups (lavaan's ``group.equal``).
    std_lv : bool
        Identify factors by unit variances.
    level : float
        Confidence level of the intervals.
    with_details : bool
        Add the blocks of :func:`details` (reliability, factor correlations, HTMT, residual
        correlations, modification indices, admissibility status), as the ML/MLR output.
    n_modindices : int
        How many of the largest modification indices to report.
    parameterization : {"delta", "theta"}
        Scaling of the latent responses (see :func:`fit_wlsmv_model`).
    collapse_empty_categories : bool
        A category of an item without responses in some group (or, with listwise deletion,
        in the rows kept) makes the statistics undefined, and lavaan stops. With ``True`` it
        is merged with an adjacent category of that item in every group first
        (:func:`alliance.sem.categories.collapse_empty_categories`), recorded in
        ``collapsed_categories`` and in the notes; with ``False`` (lavaan's behaviour) a
        ``ValueError`` names it.

    Returns
    -------
    dict
        ``meta`` (with ``notes``), ``converged``, ``nobs``, ``ntotal``, ``fit`` (chisq, df,
        pvalue, cfi, tli, rmsea with 90% CI, srmr, baseline, the ``.scaled`` and ``.robust``
        variants), ``parameters`` and ``standardized`` (std.all) rows; with ``with_details``
        also ``reliability, factor_correlations, htmt, residual_correlations, modindices,
        status``; ``collapsed_categories`` (a list, empty unless categories were merged).

    Examples
    --------
    >>> out = fit_wlsmv(df, "f =~ y1 + y2 + y3")  # doctest: +SKIP
    >>> out["fit"]["chisq.scaled"]  # doctest: +SKIP
    """
    collapsed: list[dict[str, Any]] = []
    if collapse_empty_categories:
        data, collapsed = _collapse(data, model, ordered, group, missing, std_lv)
    fit = fit_wlsmv_model(
        data, model, ordered, missing, group, group_equal, std_lv,
        parameterization=parameterization,
    )  # fmt: skip
    out = fit.to_dict(level)
    out["meta"]["notes"] = [fit.robust_note] if fit.robust_note else []
    if collapsed:
        out["meta"]["notes"].append(COLLAPSE_NOTE.format(merges=merges_text(collapsed)))
    out["collapsed_categories"] = collapsed
    if with_details:
        with threadpool_limits(limits=1, user_api="blas"):
            extra = details(fit, data, out["standardized"], n_modindices)
        out["meta"]["notes"].extend(extra.pop("notes"))
        out.update(extra)
    return _clean(out)


def lrt_scaled_shifted(m1: WlsmvFit, m0: WlsmvFit) -> dict[str, float]:
    """Scaled-shifted chi-square difference test of nested WLSMV fits (lavTestLRT default).

    Parameters
    ----------
    m1 : WlsmvFit
        The less restricted model (fewer df).
    m0 : WlsmvFit
        The more restricted model, nested in ``m1``.

    Returns
    -------
    dict
        ``chisq_diff`` (the adjusted difference), ``df_diff``, ``pvalue``, ``a`` and ``b``
        (scale and shift), the raw difference ``chisq_diff_raw`` and ``method`` (``"blocks"``
        or ``"dense"``, how the traces were computed).

    Notes
    -----
    Satorra (2000) with the mean-and-variance (scaled-shifted) adjustment, as lavaan 0.6-14's
    ``lavTestLRT(method = "satorra.2000", A.method = "delta", scaled.shifted = TRUE)``: the
    restrictions are the orthogonal complement of ``H = Delta_1^+ Delta_0`` in the parameter
    space of ``m1``; with ``P = E_1^-1``,
    ``U = V Delta_1 (P A' (A P A')^- A P) Delta_1' V``, ``a = sqrt(m / tr((U Gamma)^2))``,
    ``b = m - a tr(U Gamma)`` and ``T = a (T_0 - T_1) + b`` on ``m = df_0 - df_1`` df.
    The traces are computed group by group (:func:`_satorra2000_traces_blocks`, linear in
    the number of groups); when ``H`` is (nearly) rank-deficient they are computed from the
    dense matrices as lavaan does (:func:`_satorra2000_traces_dense`).
    """
    for fit in (m1, m0):
        if fit.not_identified:
            raise ValueError(f"no difference test: a model is {fit.not_identified}")
    m = m0.df - m1.df
    raw = m0.chisq - m1.chisq
    if m <= 0:
        raise ValueError(f"m0 must have more degrees of freedom than m1, got {m0.df} <= {m1.df}")
    try:
        tr1, tr2 = _satorra2000_traces_blocks(m1, m0)
        method = "blocks"
    except np.linalg.LinAlgError:
        tr1, tr2 = _satorra2000_traces_dense(m1, m0)
        method = "dense"
    a = math.sqrt(m / tr2)
    b = m - a * tr1
    t = raw * a + b
    return {
        "chisq_diff": t,
        "df_diff": m,
        "pvalue": float(special.chdtrc(m, t)),
        "a": a,
        "b": b,
        "chisq_diff_raw": raw,
        "method": method,
    }


def _satorra2000_traces_dense(m1: WlsmvFit, m0: WlsmvFit) -> tuple[float, float]:
    """``tr(U Gamma)`` and ``tr((U Gamma)^2)`` of :func:`lrt_scaled_shifted`, dense (lavaan)."""
    d1 = np.vstack(m1.deltas)
    d0 = np.vstack(m0.deltas)
    h = np.linalg.pinv(d1) @ d0
    # orthogonal complement of the column space of H
    uu, sv, _vt = np.linalg.svd(h, full_matrices=True)
    rank = int(np.sum(sv > sv.max() * max(h.shape) * np.finfo(float).eps))
    a_mat = uu[:, rank:].T
    p_inv = np.linalg.inv(m1.information)
    apa = a_mat @ p_inv @ a_mat.T
    paap = p_inv @ a_mat.T @ np.linalg.pinv(apa) @ a_mat @ p_inv
    fg = m1.fg
    v = np.concatenate([f * w for f, w in zip(fg, m1.weights, strict=True)])
    vd = v[:, None] * d1
    u = vd @ paap @ vd.T
    gamma = _bdiag([s.gamma / f for f, s in zip(fg, m1.stats, strict=True)])
    ug = u @ gamma
    return float(np.trace(ug)), float(np.sum(ug * ug.T))


@dataclass
class _ArrowLowRank:
    """``A + U W U'``: a :class:`GroupSum` plus a low-rank part (``U`` q x r, ``W`` r x r)."""

    a: GroupSum
    u: np.ndarray
    w: np.ndarray

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.a.matvec(v) + self.u @ (self.w @ (self.u.T @ v))

    def trace_with(self, f: BlockLowRank) -> float:
        """``tr(F (A + U W U'))`` for a symmetric ``F``."""
        return f.trace_with(self.a) + float(np.sum(self.w * (self.u.T @ f.matmat(self.u)).T))


def _satorra2000_traces_blocks(m1: WlsmvFit, m0: WlsmvFit) -> tuple[float, float]:
    """``tr(U Gamma)`` and ``tr((U Gamma)^2)`` of :func:`lrt_scaled_shifted`, group by group.

    ``P A' (A P A')^- A P = P - H (H' E_1 H)^- H'`` for any ``A`` spanning the orthogonal
    complement of ``range(H)`` (``P = E_1^-1``), so with ``Z = Delta_1 H``, ``S = Z' V Z``,
    ``R = Z' V Gamma V Z``, ``N = Z' V Gamma V Delta_1`` and ``P_1 = Delta_1' V Gamma V
    Delta_1``: ``tr(U Gamma) = tr(P P_1) - tr(S^-1 R)`` and ``tr((U Gamma)^2) = tr(P P_1 P
    P_1) - 2 tr(S^-1 N P N') + tr(S^-1 R S^-1 R)``. ``H = (Delta_1' Delta_1)^-1 Delta_1'
    Delta_0`` is the pseudo-inverse product when ``Delta_1`` has full column rank; with the
    block inverse of ``Delta_1' Delta_1`` (:mod:`alliance.sem.blocks`) it is a group-local
    part plus a part of rank ``s_1`` (the parameters ``m1`` shares across groups), and so are
    ``Z``, ``S``, ``R`` and ``N``; ``S^-1`` follows by the Woodbury identity. Every step costs
    a few products of one group's blocks, or of ``s x s`` matrices.

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``Delta_1' Delta_1`` or ``S`` is (nearly) singular (``H`` rank-deficient): the
        caller then uses the dense computation, whose pseudo-inverses handle that case.
    """
    l1, l0 = Layout.of(m1.spec), Layout.of(m0.spec)
    if l1.ngroups != l0.ngroups:
        raise ValueError(f"the models have {l1.ngroups} and {l0.ngroups} groups")
    fg = m1.fg
    d1, d0 = m1.local_deltas, m0.local_deltas
    v = [f * w for f, w in zip(fg, m1.weights, strict=True)]
    gam = [s.gamma / f for f, s in zip(fg, m1.stats, strict=True)]
    vgv = [vv[:, None] * gm * vv[None, :] for vv, gm in zip(v, gam, strict=True)]
    s1, q0 = l1.s, l0.q
    # H = (D1'D1)^-1 D1'D0 = Hloc + L_G M (Hloc on the own rows of m1's groups)
    gram = GroupSum(l1, [d.T @ d for d in d1])
    fgi = gram.inverse()
    if condition_number(gram, fgi) > 1e12:
        raise np.linalg.LinAlgError("Delta_1 is (nearly) rank-deficient")
    lg_c = np.zeros((s1, q0))
    zl, ys = [], []
    for g in range(l1.ngroups):
        c_g = d1[g].T @ d0[g]
        lg_c[:, l0.local[g]] += fgi.lr[l1.local[g]].T @ c_g
        hloc = fgi.own_blocks[g] @ c_g[l1.loc_own[g]]
        zl.append(d1[g][:, l1.loc_own[g]] @ hloc)
        ys.append(d1[g] @ fgi.lr[l1.local[g]])
    m_mat = fgi.core @ lg_c  # s1 x q0

    def z_quad(weights: list[np.ndarray]) -> _ArrowLowRank:
        """``Z' X Z`` for block-diagonal ``X`` (``weights[g]``, a vector for a diagonal)."""
        a_blocks, b_mat, c_mat = [], np.zeros((q0, s1)), np.zeros((s1, s1))
        for g, x in enumerate(weights):
            xz = x[:, None] * zl[g] if x.ndim == 1 else x @ zl[g]
            xy = x[:, None] * ys[g] if x.ndim == 1 else x @ ys[g]
            a_blocks.append(zl[g].T @ xz)
            b_mat[l0.local[g]] += zl[g].T @ xy
            c_mat += ys[g].T @ xy
        u = np.hstack([b_mat, m_mat.T])
        w = np.block([[np.zeros((s1, s1)), np.eye(s1)], [np.eye(s1), c_mat]])
        return _ArrowLowRank(GroupSum(l0, a_blocks), u, w)

    s_mat = z_quad(v)
    r_mat = z_quad(vgv)
    s_inv = _inverse_arrow_low_rank(s_mat, l0, s1)
    if condition_number_op(s_mat.matvec, s_inv.matvec, q0) > 1e12:
        raise np.linalg.LinAlgError("S is (nearly) singular")
    # tr(S^-1 R) and tr(S^-1 R S^-1 R)
    t_a = r_mat.trace_with(s_inv)
    su = s_inv.matmat(r_mat.u)
    kk = r_mat.w @ (r_mat.u.T @ su)
    t_c = (
        s_inv.trace_pair(r_mat.a, r_mat.a)
        + 2.0 * float(np.sum(r_mat.w * r_mat.a.quad(su, su).T))
        + float(np.sum(kk * kk.T))
    )
    # tr(S^-1 N F1 N') with N = Z' X D1 (X = V Gamma V) and F1 = E_1^-1
    f1 = m1.info_blocks.inverse()
    r1 = f1.lr.shape[1]
    a_n, b_n = [], np.zeros((q0, s1))
    c_n, nl1 = np.zeros((s1, s1)), np.zeros((q0, r1))
    ny_l1 = np.zeros((s1, r1))
    for g in range(l1.ngroups):
        nc = zl[g].T @ vgv[g] @ d1[g]  # q0_g x q1_g
        ny = ys[g].T @ vgv[g] @ d1[g]  # s1 x q1_g
        lo = l1.loc_own[g]
        lam = f1.own_blocks[g]
        a_n.append(nc[:, lo] @ lam @ nc[:, lo].T)
        b_n[l0.local[g]] += nc[:, lo] @ lam @ ny[:, lo].T
        c_n += ny[:, lo] @ lam @ ny[:, lo].T
        nl1[l0.local[g]] += nc @ f1.lr[l1.local[g]]
        ny_l1 += ny @ f1.lr[l1.local[g]]
    nl1 += m_mat.T @ ny_l1
    w_n = _block_diag(np.block([[np.zeros((s1, s1)), np.eye(s1)], [np.eye(s1), c_n]]), f1.core)
    t_b = _ArrowLowRank(GroupSum(l0, a_n), np.hstack([b_n, m_mat.T, nl1]), w_n).trace_with(s_inv)
    p1 = GroupSum(l1, [d.T @ x @ d for d, x in zip(d1, vgv, strict=True)])
    tr1 = f1.trace_with(p1) - t_a
    tr2 = f1.trace_pair(p1, p1) - 2.0 * t_b + t_c
    return tr1, tr2


def _inverse_arrow_low_rank(mat: _ArrowLowRank, layout: Layout, s1: int) -> BlockLowRank:
    """``(A + U W U')^-1`` for the ``Z' X Z`` of :func:`_satorra2000_traces_blocks`.

    ``U = [B, M']`` and ``W = [[0, I], [I, C]]``: the inverse is the upper-left block of the
    inverse of the augmented matrix ``[[A, U], [U', -W^-1]]``, whose ``2 s1`` extra rows join
    the shared parameters, so it is again a sum of group blocks (rows of ``U`` belong to the
    group of their parameter; shared rows to the first group that has them) inverted by
    :meth:`alliance.sem.blocks.GroupSum.inverse`. Unlike the Woodbury identity this needs no
    inverse of ``A`` alone, which is singular when ``m1`` shares more parameters than the
    groups own.
    """
    q0 = layout.q
    r = mat.u.shape[1]
    if r == 0:
        return mat.a.inverse()
    extra = np.arange(q0, q0 + r)
    local = [np.concatenate([ix, extra]) for ix in layout.local]
    aug = Layout.from_local(q0 + r, local)
    home = np.full(q0, -1)
    for g, ix in enumerate(layout.local):
        free = ix[home[ix] < 0]
        home[free] = g
    w_inv = np.linalg.inv(mat.w)
    blocks = []
    for g, ix in enumerate(layout.local):
        k = len(ix)
        blk = np.zeros((k + r, k + r))
        blk[:k, :k] = mat.a.blocks[g]
        mine = home[ix] == g
        blk[:k, k:][mine] = mat.u[ix[mine]]
        blk[k:, :k] = blk[:k, k:].T
        if g == 0:
            blk[k:, k:] = -w_inv
        blocks.append(blk)
    inv = GroupSum(aug, blocks).inverse()
    return BlockLowRank(layout, inv.own_blocks, inv.lr[:q0], inv.core)


def _block_diag(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0] :, a.shape[1] :] = b
    return out


CRITERIA_WLSMV = (
    "WLSMV: Chen (2007) applied to the deltas of the scaled (mean-and-variance adjusted) CFI "
    "and RMSEA and of the SRMR of the polychoric correlations; the robust (Savalei 2021) "
    "CFI/RMSEA deltas are reported in `deltas` where lavaan 0.6-14 defines them (not once "
    "thresholds are held equal, so not for scalar) and are not used for the decision. Chen's "
    "cutoffs were derived for ML with continuous items."
)


THETA_NOTE = (
    "theta parameterization (lavaan parameterization = 'theta'): the residual variances of "
    "the latent responses are fixed to 1 in every group until thresholds are held equal, then "
    "free in groups 2+ (scalar) and equal again (fixed to 1) in the strict step. Configural "
    "and scalar fits equal the delta parameterization's; the metric step does not (lavaan's "
    "metric identification fixes residual variances, not scale factors, at 1). Release "
    "candidates of the strict step include freeing one group's residual variance "
    "(modification index, lavaan modindices())"
)


def fit_wlsmv_invariance(
    data: pd.DataFrame,
    model: str,
    group: str,
    ordered: Sequence[str] | bool | None = None,
    missing: str = "listwise",
    levels: Sequence[str] = ("configural", "metric", "scalar"),
    level: float = 0.95,
    std_lv: bool = False,
    n_release: int = 10,
    parameterization: str = "delta",
    collapse_empty_categories: bool = False,
) -> dict[str, Any]:
    """Measurement invariance ladder for ordered items under WLSMV (configural to strict).

    Parameters
    ----------
    data : pandas.DataFrame
        Items and the grouping column.
    model : str
        lavaan model syntax.
    group : str
        The grouping column.
    ordered : sequence of str, optional
        Ordered items (default: all observed variables).
    missing : {"listwise", "pairwise"}
        Missing-data handling.
    levels : sequence of str
        Steps of the ladder, from ``configural``, ``metric`` (loadings equal), ``scalar``
        (loadings, intercepts and thresholds equal; scale factors (delta) or residual
        variances (theta) and latent means free in groups 2+, lavaan's identification with
        ``group.equal``) and ``strict`` (also residual variances equal: fixed to group 1's
        value 1 in every group; theta parameterization only).
    level : float
        Confidence level.
    std_lv : bool
        Identify factors by unit variances.
    n_release : int
        How many partial-invariance candidates (largest score tests) to report per step.
    parameterization : {"delta", "theta"}
        Scaling of the latent responses (see :func:`fit_wlsmv_model`). Under ``"delta"`` the
        residual variances of the latent responses are not parameters, so ``strict`` needs
        ``"theta"`` (Millsap & Yun-Tein 2004; lavaan ``parameterization = "theta"``).
    collapse_empty_categories : bool
        With ``True``, a category of an item without responses in some group is merged
        with an adjacent category of that item in every group before the ladder is fitted
        (:func:`alliance.sem.categories.collapse_empty_categories`; Rutkowski, Svetina &
        Liaw 2019), so thresholds stay comparable across groups; every merge is recorded in
        ``collapsed_categories`` and summarised in ``notes``. With ``False`` (lavaan's
        behaviour) such a category raises ``ValueError``.

    Returns
    -------
    dict
        One entry per level (``group.equal``, ``fit``, ``parameters``, ...; the configural
        one also ``reliability`` per group), ``lrt`` (the scaled-shifted difference tests, rows
        as lavaan's ``lavTestLRT`` table), ``deltas`` (change in cfi, tli, rmsea, srmr and
        their ``.scaled``/``.robust`` versions), ``decisions`` (Chen 2007 per constrained step,
        on the scaled indices), ``partial`` (per constrained step, the equality constraints
        whose release improves fit most: lavTestScore's univariate score tests),
        ``criteria``, ``notes`` and ``collapsed_categories`` (empty unless categories were
        merged).

    Raises
    ------
    ValueError
        For unknown levels, or ``strict`` in the delta parameterization.

    References
    ----------
    Millsap, R. E., & Yun-Tein, J. (2004). Assessing factorial invariance in ordered-categorical
    measures. Multivariate Behavioral Research, 39(3), 479-515.
    Wu, H., & Estabrook, R. (2016). Identification of confirmatory factor analysis models of
    different levels of invariance for ordered categorical outcomes. Psychometrika, 81(4),
    1014-1045.
    Rutkowski, L., Svetina, D., & Liaw, Y.-L. (2019). Collapsing categorical variables and
    measurement invariance. Structural Equation Modeling, 26(5), 790-802.
    """
    from alliance.sem.invariance import CHEN_2007, chen_decision

    bad = [lv for lv in levels if lv not in _LEVELS]
    if bad:
        raise ValueError(f"invariance levels must be among {list(_LEVELS)}, got {bad}")
    if "strict" in levels and parameterization != "theta":
        raise ValueError(
            "strict invariance of ordered items needs parameterization='theta' (residual "
            f"variances are not parameters in the delta parameterization), got {parameterization!r}"
        )
    collapsed: list[dict[str, Any]] = []
    if collapse_empty_categories:
        data, collapsed = _collapse(data, model, ordered, group, missing, std_lv)
    fits: dict[str, WlsmvFit] = {}
    out: dict[str, Any] = {}
    for name in levels:
        f = fit_wlsmv_model(
            data, model, ordered, missing, group, _LEVELS[name], std_lv,
            parameterization=parameterization,
        )  # fmt: skip
        fits[name] = f
        block = f.to_dict(level)
        block["group.equal"] = list(_LEVELS[name])
        if name == "configural":
            with threadpool_limits(limits=1, user_api="blas"):
                block["reliability"] = reliability(f, data)
        out[name] = block
    names = list(fits)
    table = []
    for k, name in enumerate(names):
        row: dict[str, Any] = {
            "model": name,
            "Df": fits[name].df,
            "AIC": None,
            "BIC": None,
            "Chisq": fits[name].chisq,
            "Chisq_diff": None,
            "Df_diff": None,
            "Pr_gt_Chisq": None,
        }
        if k > 0:
            test = lrt_scaled_shifted(fits[names[k - 1]], fits[name])
            row["Chisq_diff"] = test["chisq_diff"]
            row["Df_diff"] = test["df_diff"]
            row["Pr_gt_Chisq"] = test["pvalue"]
            row["scale"] = test["a"]
            row["shift"] = test["b"]
        table.append(row)
    out["lrt"] = {
        "table": table,
        "method": "Scaled Chi-Squared Difference Test (method = satorra.2000, scaled.shifted)",
    }
    keys = ["cfi", "tli", "rmsea", "srmr", "cfi.scaled", "rmsea.scaled", "cfi.robust"]
    keys.append("rmsea.robust")
    deltas: dict[str, dict[str, float | None]] = {}
    decisions: dict[str, dict[str, Any]] = {}
    for k, (prev, cur) in enumerate(zip(names[:-1], names[1:], strict=True), start=1):
        d = {}
        for key in keys:
            a, b = fits[prev].fit.get(key), fits[cur].fit.get(key)
            d[key] = None if a is None or b is None else _num(b - a)
        deltas[f"{cur}_vs_{prev}"] = d
        scaled = {"cfi": d["cfi.scaled"], "rmsea": d["rmsea.scaled"], "srmr": d["srmr"]}
        dec = chen_decision(cur, scaled)
        dec["indices"] = {"cfi": "cfi.scaled", "rmsea": "rmsea.scaled", "srmr": "srmr"}
        dec["chisq_diff_pvalue"] = table[k]["Pr_gt_Chisq"]
        decisions[cur] = dec
    out["deltas"] = deltas
    out["decisions"] = decisions
    with threadpool_limits(limits=1, user_api="blas"):
        out["partial"] = {
            s: release_tests(fits[s], top=n_release) for s in names if s != "configural"
        }
        if "strict" in fits:  # theta: the residual variances are fixed, not constrained
            both = out["partial"]["strict"] + residual_release_tests(fits["strict"], None)
            both.sort(key=lambda r: -r["X2"])
            out["partial"]["strict"] = both[:n_release] if n_release else both
    out["criteria"] = f"{CHEN_2007}. {CRITERIA_WLSMV}"
    out["parameterization"] = parameterization
    out["notes"] = [SCORE_NOTE] if out["partial"] else []
    if parameterization == "theta" and len(names) > 1:
        out["notes"].append(THETA_NOTE)
    if collapsed:
        out["notes"].append(COLLAPSE_NOTE.format(merges=merges_text(collapsed)))
    out["collapsed_categories"] = collapsed
    return _clean(out)


def invariance_ladder(
    data: pd.DataFrame,
    model: str,
    group: str,
    ordered: Sequence[str] | bool | None = None,
    missing: str = "listwise",
    steps: Sequence[str] = ("configural", "metric", "scalar"),
    level: float = 0.95,
    std_lv: bool = False,
    n_release: int = 10,
    parameterization: str = "delta",
    collapse_empty_categories: bool = False,
) -> dict[str, Any]:
    """The ordinal invariance ladder under the name :mod:`alliance.sem.api` dispatches to.

    Parameters
    ----------
    data, model, group, ordered, missing, level, std_lv, n_release
        As :func:`fit_wlsmv_invariance`.
    steps : sequence of str
        Steps to fit. ``"strict"`` (equal residual variances) needs the theta
        parameterization; in the delta parameterization it is left out with a note.
    parameterization : {"delta", "theta"}
        As :func:`fit_wlsmv_model`.
    collapse_empty_categories : bool
        As :func:`fit_wlsmv_invariance`.

    Returns
    -------
    dict
        As :func:`fit_wlsmv_invariance` (``configural, metric, scalar, strict, lrt, deltas,
        decisions, partial, criteria, parameterization, notes, collapsed_categories``).
    """
    notes = []
    kept = list(steps)
    if "strict" in steps and parameterization != "theta":
        notes.append(
            "strict invariance is not fitted for ordered items in the delta parameterization "
            "(residual variances are not parameters there); use parameterization='theta'"
        )
        kept = [s for s in steps if s != "strict"]
    out = fit_wlsmv_invariance(
        data, model, group, ordered, missing, kept, level, std_lv=std_lv, n_release=n_release,
        parameterization=parameterization, collapse_empty_categories=collapse_empty_categories,
    )  # fmt: skip
    out["notes"] = notes + out.get("notes", [])
    return out
