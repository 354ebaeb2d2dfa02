"""Sample statistics: moments, polychorics, thresholds and their asymptotic covariances.

lavaan's lav_samplestats and lav_h1: the data of each group in the model's variable order, the
sample (or, with missing data, the saturated EM) moments, the polychoric correlations and
thresholds of ordered items (:mod:`alliance.sem.polychoric`), the statistics a (D)WLS estimator
fits with N times their asymptotic covariance matrix (``Gamma``), and the information of the
saturated model (h1) that the robust tests need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alliance.sem.mvnorm import (
    LOG2PI,
    casewise_scores,
    em_saturated,
    expected_information,
    missing_patterns,
    normal_observed_information,
    saturated_jacobian,
)
from alliance.sem.polychoric import OrdinalStats, ordinal_stats

__all__ = [
    "GroupData",
    "SampleStats",
    "WLSStats",
    "fill_h1",
    "h1_information",
    "ordinal_sample",
    "prepare_sample",
    "require_finite",
    "split_groups",
]


@dataclass
class WLSStats:
    """The statistics a (D)WLS estimator fits in one group, and their asymptotic covariance.

    ``obs`` holds, in lavaan's ``WLS.obs`` order, the means (continuous items with a mean
    structure), the thresholds (ordered items) and the covariances (continuous: the lower
    triangle with the diagonal) or correlations (ordered: without it) at ``pair_index``,
    column by column; ``gamma`` is N times their asymptotic covariance matrix (lavaan's
    ``Gamma``/NACOV). ``weight`` is a full weight matrix given by the user (WLS with a known
    asymptotic covariance, as MASEM's stage 2: :mod:`alliance.sem.wls`); None for the DWLS
    weights :attr:`v_diag`.
    """

    obs: np.ndarray
    gamma: np.ndarray
    n_means: int
    n_th: int
    pair_index: np.ndarray
    weight: np.ndarray | None = None

    @property
    def v_diag(self) -> np.ndarray:
        """The DWLS weights: the inverse of the diagonal of ``gamma``."""
        return 1.0 / np.diag(self.gamma)

    @property
    def n_moments(self) -> int:
        """The number of statistics except the means and thresholds (``pstar``)."""
        return len(self.obs) - self.n_means - self.n_th


@dataclass
class GroupData:
    """One group's data and sample statistics.

    ``X`` holds the rows used (listwise: complete cases; FIML and pairwise: every row with at
    least one observed value, NaN for missing). ``mean``/``cov`` are the sample moments with
    divisor N (complete data), the saturated EM estimates (FIML, filled by :func:`fill_h1`),
    or, for ordered items, zeros and the polychoric correlation matrix (``ordinal`` holds their
    thresholds and Gamma). ``wls`` holds the statistics of a (D)WLS fit (WLSMV). ``nobs``
    is the number of observations of a group given by its summary statistics only (``X``
    then has no rows: a pooled correlation matrix, :mod:`alliance.sem.wls`).
    """

    label: str
    X: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    patterns: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    ordinal: OrdinalStats | None = None
    wls: WLSStats | None = None
    nobs: int | None = None

    @property
    def n(self) -> int:
        """Number of rows used (ordered items: as the polychoric statistics count them)."""
        if self.nobs is not None:
            return int(self.nobs)
        return int(self.ordinal.nobs) if self.ordinal is not None else int(self.X.shape[0])

    @property
    def complete(self) -> bool:
        """True when there is no missing value."""
        return len(self.patterns) <= 1 and not np.isnan(self.X).any()


@dataclass
class SampleStats:
    """The data of all groups, in ``ov`` order.

    ``missing`` is ``"listwise"``, ``"fiml"`` or ``"pairwise"`` (ordered items); ``ordered``
    lists the ordered items (all of ``ov``, or none).
    """

    ov: list[str]
    groups: list[GroupData]
    missing: str = "listwise"
    n_dropped: int = 0
    h1_logl: float = float("nan")
    ordered: list[str] = field(default_factory=list)

    @property
    def ntotal(self) -> int:
        """Total number of rows used."""
        return sum(g.n for g in self.groups)

    @property
    def group_labels(self) -> list[str]:
        """Labels of the groups."""
        return [g.label for g in self.groups]

    @property
    def fg(self) -> np.ndarray:
        """Group shares ``N_g / N``."""
        return np.array([g.n for g in self.groups], dtype=float) / self.ntotal


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


def split_groups(
    data: pd.DataFrame, group: str | None, group_labels: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows with a group, each row's group label and the labels (first appearance, as lavaan).

    Raises
    ------
    ValueError
        If the column is absent or has fewer than two levels.
    """
    if group is None:
        return np.ones(len(data), dtype=bool), np.full(len(data), "1", dtype=object), ["1"]
    if group not in data.columns:
        raise ValueError(f"group column {group!r} not in the data")
    gcol = data[group]
    keep = gcol.notna().to_numpy()
    keys = gcol.astype(str).to_numpy()
    labels = (
        [str(v) for v in group_labels]
        if group_labels is not None
        else list(dict.fromkeys(keys[keep]))
    )
    if len(labels) < 2:
        raise ValueError(f"group column {group!r} needs at least 2 levels, got {labels}")
    return keep, keys, labels


def _numeric(data: pd.DataFrame, ov: Sequence[str]) -> np.ndarray:
    absent = [v for v in ov if v not in data.columns]
    if absent:
        raise ValueError(f"model variables not in the data: {absent}")
    require_finite(data, ov)
    try:
        return data[list(ov)].apply(pd.to_numeric, errors="raise").astype(float).to_numpy()
    except (ValueError, TypeError) as err:
        raise ValueError(f"model variables must be numeric: {err}") from err


def prepare_sample(
    data: pd.DataFrame,
    ov: Sequence[str],
    group: str | None = None,
    missing: str = "listwise",
    group_labels: Sequence[str] | None = None,
) -> SampleStats:
    """Select the model's (continuous) variables and split the rows by group.

    Parameters
    ----------
    data
        One row per respondent.
    ov
        Observed variables, in model order.
    group
        Optional grouping column; groups are ordered by first appearance (as lavaan) unless
        ``group_labels`` is given; rows without a group are left out.
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
    values = _numeric(data, ov)
    keep_g, glab, labels = split_groups(data, group, group_labels)
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
        groups.append(GroupData(lab, rows, mean, np.atleast_2d(cov), missing_patterns(rows)))
    return SampleStats(ov=list(ov), groups=groups, missing=missing, n_dropped=dropped)


def fill_h1(sample: SampleStats) -> None:
    """Put the saturated (EM) estimates in each group's ``mean``/``cov`` and set ``h1_logl``.

    Idempotent; complete data give the sample moments (divisor N).
    """
    if getattr(sample, "_h1_done", False):
        return
    sample.__dict__.pop("_h1_information", None)  # computed from the moments set here
    total = 0.0
    for g in sample.groups:
        if g.complete:
            g.mean = g.X.mean(axis=0)
            g.cov = np.cov(g.X, rowvar=False, bias=True)
            p = g.X.shape[1]
            total += -0.5 * g.n * (p * LOG2PI + np.linalg.slogdet(g.cov)[1] + p)
        else:
            mu, sigma, logl, _ = em_saturated(g.X, g.patterns)
            g.mean, g.cov = mu, sigma
            total += logl
    sample.h1_logl = float(total)
    object.__setattr__(sample, "_h1_done", True)


def saturated_logl(sample: SampleStats) -> float:
    """Log-likelihood of the saturated normal model at the sample moments (complete data)."""
    out = 0.0
    for g in sample.groups:
        p = g.cov.shape[0]
        out += -0.5 * g.n * (p * LOG2PI + np.linalg.slogdet(g.cov)[1] + p)
    return float(out)


def h1_information(
    sample: SampleStats, group: int, meanstructure: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Unstructured h1 information ``A1`` and first-order information ``B1`` of one group.

    Both per observation, for the saturated model (means if the model has a mean
    structure, and the non-duplicated covariances) at the saturated estimates: the sample
    moments (complete data; ``A1`` is then the expected information) or the EM estimates
    (FIML; ``A1`` the observed information), as lavaan's ``h1.information =
    "unstructured"`` for the ``yuan.bentler.mplus`` test. Cached on the sample (shared by
    the steps of a ladder and their baselines): do not modify the returned arrays.
    """
    g = sample.groups[group - 1]
    # a property of the data alone: computed once per sample (the fits of a ladder, their
    # baselines and the FIML correction share it); fill_h1 clears it
    cache = sample.__dict__.setdefault("_h1_information", {})
    if (group, meanstructure) in cache:
        return cache[(group, meanstructure)]
    p = g.cov.shape[0]
    dsig, dmu = saturated_jacobian(p, meanstructure)
    dmu_used = dmu if meanstructure else None
    if g.complete:
        a1 = expected_information(g.cov, dsig, dmu_used)
    else:
        a1 = normal_observed_information(g.X, g.patterns, g.mean, g.cov, dsig, dmu_used)
    sc = casewise_scores(g.X, g.mean, g.cov, dsig, dmu_used, g.patterns)
    b1 = sc.T @ sc / g.n
    cache[(group, meanstructure)] = (a1, b1)
    return a1, b1


# --------------------------------------------------------------------------- (D)WLS statistics


def lower_pairs(p: int, diagonal: bool) -> np.ndarray:
    """Row/column of the lower triangle, column by column (lavaan's ``vech``), (k, 2)."""
    start = 0 if diagonal else 1
    return np.array([(i, j) for j in range(p) for i in range(j + start, p)], dtype=int).reshape(
        -1, 2
    )


def continuous_wls(x: np.ndarray, meanstructure: bool) -> WLSStats:
    """(D)WLS statistics of complete continuous data: means (optional) and ``vech(S)``.

    ``S`` is the unbiased sample covariance matrix (divisor N - 1: lavaan does not rescale it
    for least-squares estimators); ``gamma`` the asymptotically distribution-free estimate
    (Browne 1984): the covariance matrix, with divisor N, of the casewise vectors ``(y_i,
    vech((y_i - ybar)(y_i - ybar)'))`` (lavaan's ``lav_samplestats_Gamma`` with ``unbiased =
    FALSE``).

    References
    ----------
    Browne, M. W. (1984). Asymptotically distribution-free methods for the analysis of
    covariance structures. British Journal of Mathematical and Statistical Psychology, 37,
    62-83.
    """
    n, p = x.shape
    pairs = lower_pairs(p, diagonal=True)
    e = x - x.mean(axis=0)
    z = e[:, pairs[:, 0]] * e[:, pairs[:, 1]]
    if meanstructure:
        z = np.hstack([x, z])
    zc = z - z.mean(axis=0)
    gamma = zc.T @ zc / n
    s = e.T @ e / (n - 1)
    obs = s[pairs[:, 0], pairs[:, 1]]
    if meanstructure:
        obs = np.concatenate([x.mean(axis=0), obs])
    return WLSStats(obs, gamma, p if meanstructure else 0, 0, pairs)


def ordinal_wls(stats: OrdinalStats) -> WLSStats:
    """The (D)WLS statistics of ordered items: thresholds, then polychoric correlations."""
    if stats.gamma is None:
        raise ValueError("gamma was not computed, got gamma=None")
    return WLSStats(stats.wls_obs, stats.gamma, 0, len(stats.th_vector), stats.pair_index)


def add_continuous_wls(sample: SampleStats, meanstructure: bool) -> None:
    """Give each group of a complete continuous sample its (D)WLS statistics (WLSMV).

    The groups' ``cov`` becomes the unbiased covariance matrix that the statistics hold.
    """
    for g in sample.groups:
        g.wls = continuous_wls(g.X, meanstructure)
        g.cov = g.cov * g.n / (g.n - 1.0)


def ordinal_sample(
    data: pd.DataFrame,
    ov: Sequence[str],
    group: str | None = None,
    missing: str = "pairwise",
) -> SampleStats:
    """Thresholds, polychoric correlations and Gamma of ordered items, per group.

    Parameters
    ----------
    data
        The items (integer categories, NaN missing) and, for a multi-group fit, ``group``.
    ov
        The ordered items, in model order.
    group
        Grouping column (groups in order of first appearance; no missing values allowed).
    missing
        ``"listwise"`` or ``"pairwise"`` (lavaan's ``missing``; see
        :func:`alliance.sem.polychoric.ordinal_stats`).

    Returns
    -------
    SampleStats
        Each group holds the rows used in ``X``, the polychoric matrix in ``cov``, the
        statistics in ``ordinal`` and ``wls``; the categories of each item are those observed
        in the whole sample.

    Raises
    ------
    ValueError
        For absent or non-numeric items, an item with fewer than two categories or with
        non-integer values, a category empty in a group, or a bad group column.
    """
    if missing not in ("listwise", "pairwise"):
        raise ValueError(f"missing must be 'listwise' or 'pairwise' for WLSMV, got {missing!r}")
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    absent = [v for v in ov if v not in data.columns]
    if absent:
        raise ValueError(f"model variables not in the data: {absent}")
    require_finite(data, ov)
    items = data[list(ov)]
    levels = []
    for v in ov:
        values = pd.to_numeric(items[v], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        lev = np.unique(values[~np.isnan(values)])
        if lev.size < 2:
            raise ValueError(f"ordered item {v!r} needs at least two categories, got {lev.size}")
        if np.any(np.round(lev) != lev):
            odd = lev[lev != np.round(lev)][:3]
            raise ValueError(
                f"ordered item {v!r} must hold integer categories, got {odd} (for WLSMV on "
                "continuous items pass ordered=False; alliance cfa --continuous)"
            )
        levels.append(lev)
    if group is None:
        labels, parts = ["1"], [items]
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
    groups = []
    for lab, part in zip(labels, parts, strict=True):
        try:
            st = ordinal_stats(part, missing=missing, gamma=True, levels=levels)
        except ValueError as err:
            where = "" if group is None else f" in group {lab!r}"
            hint = (
                " (collapse_empty_categories=True merges it with an adjacent category in "
                "every group)"
                if "empty categories" in str(err)
                else ""
            )
            raise ValueError(f"{err}{where}{hint}") from err
        x = part.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        seen = ~np.isnan(x)
        x = x[seen.all(axis=1) if missing == "listwise" else seen.any(axis=1)]
        groups.append(
            GroupData(lab, x, np.zeros(len(ov)), st.cor, missing_patterns(x), st, ordinal_wls(st))
        )
    return SampleStats(ov=list(ov), groups=groups, missing=missing, n_dropped=0, ordered=list(ov))
