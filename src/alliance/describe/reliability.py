"""Internal consistency: Cronbach's alpha with psych::alpha's statistics, per instrument factor."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from alliance.data.instruments import Instrument
from alliance.data.scoring import TOTAL, item_matrix, reverse_key

USES = ("pairwise", "complete")


def pairwise_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compute covariances from pairwise-complete observations (R's ``cov(use = "pairwise")``).

    Each covariance uses the rows where both variables are observed, with means and the
    ``n - 1`` denominator computed over those rows; a variance uses every observed value of
    its variable.

    Parameters
    ----------
    x
        Array of shape ``(n, p)`` with NaN for missing values.

    Returns
    -------
    cov, n_pairs
        ``(p, p)`` covariance matrix (NaN where fewer than two rows are shared) and the number
        of rows each entry is based on.

    """
    observed = ~np.isnan(x)
    m = observed.astype(float)
    # Centre on the column means first: covariance is shift-invariant and this avoids
    # cancellation in the sums of products below.
    col_means = np.nanmean(np.where(observed.any(axis=0), x, 0.0), axis=0)
    z = np.where(observed, x - col_means, 0.0)
    n = m.T @ m
    sum_i = z.T @ m  # sum_i[a, b]: sum of variable a over rows where a and b are observed
    cross = z.T @ z
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = (cross - sum_i * sum_i.T / n) / (n - 1)
    cov[n < 2] = np.nan
    return cov, n.astype(int)


def cov_to_cor(cov: np.ndarray) -> np.ndarray:
    """Rescale a covariance matrix to a correlation matrix (R's ``cov2cor``)."""
    sd = np.sqrt(np.diag(cov))
    cor = cov / np.outer(sd, sd)
    np.fill_diagonal(cor, 1.0)
    return cor


def smc(cor: np.ndarray) -> np.ndarray:
    """Compute the squared multiple correlation of each variable with all others.

    ``1 - 1 / diag(R^+)`` with the Moore-Penrose inverse ``R^+`` (so a singular matrix does
    not fail), clipped to [0, 1] as psych's ``smc`` does (Guttman 1945).

    References
    ----------
    Guttman, L. (1945). A basis for analyzing test-retest reliability. *Psychometrika, 10*(4),
    255-282.

    """
    inv = np.linalg.pinv(cor, hermitian=True)
    return np.clip(1.0 - 1.0 / np.diag(inv), 0.0, 1.0)


def _alpha_stats(cov: np.ndarray, cor: np.ndarray) -> dict[str, float]:
    """Compute alpha-type statistics of one item set from its covariance and correlations."""
    k = cov.shape[0]
    total_var = cov.sum()
    trace = np.trace(cov)
    raw = (1.0 - trace / total_var) * k / (k - 1)
    sum_r = cor.sum()
    std = (1.0 - k / sum_r) * k / (k - 1)
    g6 = 1.0 - (k - smc(cor).sum()) / sum_r
    average_r = (sum_r - k) / (k * (k - 1))
    lower = cor[np.tril_indices(k, -1)]
    cc = cov @ cov
    # Asymptotic variance of alpha times n (Duhachek & Iacobucci 2004, as corrected in psych).
    q = (2 * k**2 / ((k - 1) ** 2 * total_var**3)) * (
        total_var * (np.trace(cc) + trace**2) - 2 * trace * cc.sum()
    )
    return {
        "raw_alpha": float(raw),
        "std_alpha": float(std),
        "G6_smc": float(g6),
        "average_r": float(average_r),
        "S_N": float(k * average_r / (1 - average_r)),
        "Q": float(q),
        "var_r": float(np.var(lower, ddof=1)) if lower.size > 1 else float("nan"),
        "median_r": float(np.median(lower)),
    }


def feldt_ci(alpha: float, n_obs: int, n_items: int, level: float = 0.95) -> dict[str, float]:
    """Feldt's confidence interval for coefficient alpha.

    ``(1 - alpha) / (1 - alpha_pop)`` follows an F distribution with ``n - 1`` and
    ``(n - 1)(k - 1)`` degrees of freedom (Feldt, Woodruff & Salih 1987), so the bounds are
    ``1 - (1 - alpha) F_{1 - a/2}`` and ``1 - (1 - alpha) F_{a/2}``.

    Parameters
    ----------
    alpha
        Sample coefficient alpha.
    n_obs
        Number of respondents.
    n_items
        Number of items.
    level
        Confidence level.

    Returns
    -------
    dict
        ``lower``, ``alpha``, ``upper``.

    References
    ----------
    Feldt, L. S., Woodruff, D. J., & Salih, F. A. (1987). Statistical inference for
    coefficient alpha. *Applied Psychological Measurement, 11*(1), 93-103.

    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    df1 = n_obs - 1
    df2 = (n_obs - 1) * (n_items - 1)
    tail = (1 - level) / 2
    return {
        "lower": float(1 - (1 - alpha) * special.fdtri(df1, df2, 1 - tail)),
        "alpha": float(alpha),
        "upper": float(1 - (1 - alpha) * special.fdtri(df1, df2, tail)),
    }


def cronbach_alpha(data: pd.DataFrame, use: str = "pairwise") -> dict[str, Any]:
    """Coefficient alpha and the item analysis of ``psych::alpha`` (``check.keys = FALSE``).

    The method follows psych 2.2.9 (Revelle): the item covariance matrix ``C`` is computed
    from pairwise-complete observations (``use="pairwise"``, psych's default) or after
    listwise deletion (``use="complete"``), and the correlation matrix is ``R = cov2cor(C)``.
    Then, with ``k`` items,

    - raw alpha ``= k/(k-1) (1 - tr C / sum C)`` (Cronbach 1951), standardized alpha the same
      on ``R``, Guttman's lambda 6 ``G6 = 1 - (k - sum smc) / sum R``, the average and median
      inter-item correlation, and the signal-to-noise ratio ``S/N = k rbar / (1 - rbar)``;
    - ``ase``, the asymptotic standard error ``sqrt(Q / n)`` of Duhachek & Iacobucci (2004),
      and Feldt's F-based confidence interval (Feldt, Woodruff & Salih 1987), with ``n`` the
      number of rows passed in (psych's convention, also under pairwise deletion);
    - ``mean`` and ``sd`` of the total score, taken as each row's mean of its answered items;
    - alpha if an item is dropped (from ``C`` and ``R`` without that item) and item
      statistics: ``n`` answered, ``raw_r`` (item with total score), ``std_r``
      (``colSums(R)/sqrt(sum R)``), ``r_cor`` (the same with SMCs on the diagonal: corrected
      for item overlap) and ``r_drop`` (item with the sum of the other items, from ``C``).

    Items with no variance are dropped with a warning (as psych does) and listed in
    ``dropped_items``. Reverse-key items before calling (:func:`alpha_by_factor` does it
    from the instrument's key).

    Parameters
    ----------
    data
        One numeric column per item, one row per respondent, NaN for missing answers.
    use
        ``"pairwise"`` or ``"complete"``.

    Returns
    -------
    dict
        ``items``, ``n_items``, ``n_obs`` (rows used), ``n_complete``, ``raw_alpha``,
        ``std_alpha``, ``G6_smc``, ``average_r``, ``S_N``, ``ase``, ``mean``, ``sd``,
        ``median_r``, ``var_r``, ``feldt_ci`` and ``duhachek_ci`` (dicts with ``lower``,
        ``alpha``, ``upper``), ``alpha_if_dropped`` (DataFrame indexed by item: ``raw_alpha``,
        ``std_alpha``, ``G6_smc``, ``average_r``, ``S_N``, ``alpha_se``, ``var_r``,
        ``median_r``), ``item_stats`` (DataFrame indexed by item: ``n``, ``raw_r``, ``std_r``,
        ``r_cor``, ``r_drop``, ``mean``, ``sd``), ``dropped_items`` and ``warnings``.

    Raises
    ------
    ValueError
        If ``use`` is unknown, fewer than two items (with variance) or two rows remain, a
        column is not numeric, or two items share fewer than two answered rows.

    Notes
    -----
    With exactly two items psych reports odd values for "alpha if dropped" (for example
    ``C[1,2]/C[2,2]``); alpha of a single item is undefined, so they are NaN here.

    References
    ----------
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests.
    *Psychometrika, 16*(3), 297-334.

    Duhachek, A., & Iacobucci, D. (2004). Alpha's standard error (ASE): An accurate and
    precise confidence interval estimate. *Journal of Applied Psychology, 89*(5), 792-808.

    Feldt, L. S., Woodruff, D. J., & Salih, F. A. (1987). Statistical inference for
    coefficient alpha. *Applied Psychological Measurement, 11*(1), 93-103.

    Revelle, W. (2022). *psych: Procedures for psychological, psychometric, and personality
    research* (R package version 2.2.9), function ``alpha``.

    """
    if use not in USES:
        raise ValueError(f"use must be one of {USES}, got {use!r}")
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    columns = [str(c) for c in data.columns]
    x = item_matrix(data.set_axis(columns, axis=1), columns)
    complete = ~np.isnan(x).any(axis=1)
    n_complete = int(complete.sum())
    if use == "complete":
        x = x[complete]
    notes: list[str] = []

    with np.errstate(invalid="ignore"):
        item_sd = np.array(
            [np.nanstd(col, ddof=1) if (~np.isnan(col)).sum() > 1 else np.nan for col in x.T]
        )
    bad = ~(item_sd > 0)
    dropped = [columns[i] for i in np.flatnonzero(bad)]
    if dropped:
        message = f"items without variance (or answers) were dropped from alpha: {dropped}"
        warnings.warn(message, UserWarning, stacklevel=2)
        notes.append(message)
    all_items = x
    x = x[:, ~bad]
    kept = [c for c, b in zip(columns, bad, strict=True) if not b]
    k = len(kept)
    n_obs = x.shape[0]
    if k < 2:
        raise ValueError(f"alpha needs at least two items with variance, got {kept}")
    if n_obs < 2:
        raise ValueError(f"alpha needs at least two rows, got {n_obs}")

    cov, n_pairs = pairwise_cov(x)
    if np.isnan(cov).any():
        a, b = np.argwhere(np.isnan(cov))[0]
        raise ValueError(
            f"items {kept[a]!r} and {kept[b]!r} must share at least two answered rows, "
            f"got {n_pairs[a, b]}"
        )
    cor = cov_to_cor(cov)
    total = _alpha_stats(cov, cor)

    rows = []
    for i in range(k):
        keep = np.arange(k) != i
        if k > 2:
            d = _alpha_stats(cov[np.ix_(keep, keep)], cor[np.ix_(keep, keep)])
            with np.errstate(invalid="ignore"):
                d["alpha_se"] = float(np.sqrt(d.pop("Q") / n_obs))
        else:
            d = dict.fromkeys(
                ("raw_alpha", "std_alpha", "G6_smc", "average_r", "S_N", "alpha_se"), np.nan
            )
            d.update(var_r=np.nan, median_r=np.nan)
        rows.append(d)
    alpha_if_dropped = pd.DataFrame(
        rows,
        index=pd.Index(kept, name="item"),
        columns=["raw_alpha", "std_alpha", "G6_smc", "average_r", "S_N", "alpha_se", "var_r"]
        + ["median_r"],
    )

    # Total score: each row's mean over its answered items (including constant items).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with no answers give NaN
        score = np.nanmean(all_items, axis=1)
    answered_rows = ~np.isnan(score)
    score_mean = float(np.mean(score[answered_rows]))
    score_sd = float(np.std(score[answered_rows], ddof=1))
    raw_r = np.array([_pairwise_r(score, x[:, i]) for i in range(k)])
    cor_smc = cor.copy()
    np.fill_diagonal(cor_smc, smc(cor))
    r_drop = np.empty(k)
    # Square roots of negative sums (items correlating negatively) give NaN, as in psych.
    with np.errstate(invalid="ignore", divide="ignore"):
        std_r = cor.sum(axis=0) / np.sqrt(cor.sum())
        r_cor = cor_smc.sum(axis=0) / np.sqrt(cor_smc.sum())
        for i in range(k):
            keep = np.arange(k) != i
            rest_var = cov[np.ix_(keep, keep)].sum()
            r_drop[i] = (cov[:, i].sum() - cov[i, i]) / np.sqrt(cov[i, i] * rest_var)
    item_stats = pd.DataFrame(
        {
            "n": (~np.isnan(x)).sum(axis=0),
            "raw_r": raw_r,
            "std_r": std_r,
            "r_cor": r_cor,
            "r_drop": r_drop,
            "mean": np.nanmean(x, axis=0),
            "sd": np.nanstd(x, axis=0, ddof=1),
        },
        index=pd.Index(kept, name="item"),
    )

    # psych warns when an item loads negatively on the first principal component.
    eigval, eigvec = np.linalg.eigh(cor)
    first = eigvec[:, -1] * np.sign(eigvec[:, -1].sum() or 1.0)
    negative = [kept[i] for i in np.flatnonzero(first < 0)]
    if negative:
        notes.append(
            f"items {negative} correlate negatively with the total scale and probably "
            "should be reversed"
        )

    with np.errstate(invalid="ignore"):
        ase = float(np.sqrt(total["Q"] / n_obs))
    z = special.ndtri(0.975)
    return {
        "items": kept,
        "n_items": k,
        "n_obs": int(n_obs),
        "n_complete": n_complete,
        "raw_alpha": total["raw_alpha"],
        "std_alpha": total["std_alpha"],
        "G6_smc": total["G6_smc"],
        "average_r": total["average_r"],
        "S_N": total["S_N"],
        "ase": ase,
        "mean": score_mean,
        "sd": score_sd,
        "median_r": total["median_r"],
        "var_r": total["var_r"],
        "feldt_ci": feldt_ci(total["raw_alpha"], n_obs, k),
        "duhachek_ci": {
            "lower": total["raw_alpha"] - z * ase,
            "alpha": total["raw_alpha"],
            "upper": total["raw_alpha"] + z * ase,
        },
        "alpha_if_dropped": alpha_if_dropped,
        "item_stats": item_stats,
        "dropped_items": dropped,
        "warnings": notes,
    }


def _pairwise_r(a: np.ndarray, b: np.ndarray) -> float:
    """Correlate two vectors over the rows where both are observed (Pearson)."""
    ok = ~np.isnan(a) & ~np.isnan(b)
    if ok.sum() < 3:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def alpha_by_factor(
    items: pd.DataFrame, instrument: Instrument, use: str = "pairwise"
) -> dict[str, dict[str, Any]]:
    """Cronbach's alpha (:func:`cronbach_alpha`) of every factor, and of the total scale.

    Reverse-keyed items are reversed with the instrument's scale (``min + max - x``) first.
    Rows in which every item of a scale is missing carry no information about it and are
    left out of that scale's analysis (so ``n_obs`` counts rows with at least one answer).

    Parameters
    ----------
    items
        Tidy item table (``docs/data-model.md``); select one session and rater beforehand
        when respondents contribute several rows.
    instrument
        The scoring key.
    use
        ``"pairwise"`` or ``"complete"``, passed to :func:`cronbach_alpha`.

    Returns
    -------
    dict
        Scale name (each factor, then ``total`` if ``instrument.total``) -> the result of
        :func:`cronbach_alpha`. Tabulate with :func:`alpha_table`.

    Raises
    ------
    ValueError
        As :func:`cronbach_alpha`, or if items are missing from the table.

    References
    ----------
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests.
    *Psychometrika, 16*(3), 297-334.

    """
    if use not in USES:
        raise ValueError(f"use must be one of {USES}, got {use!r}")
    keyed = reverse_key(items, instrument)
    scales: dict[str, tuple[str, ...]] = dict(instrument.factors)
    if instrument.total:
        scales[TOTAL] = instrument.items
    results = {}
    for name, members in scales.items():
        block = keyed.loc[:, list(members)]
        block = block.loc[block.notna().any(axis=1)]
        results[name] = cronbach_alpha(block, use=use)
    return results


def alpha_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Tabulate :func:`alpha_by_factor` results: one row of scalar statistics per scale.

    Returns
    -------
    pandas.DataFrame
        Indexed by scale: ``n_items``, ``n_obs``, ``n_complete``, ``raw_alpha``, ``std_alpha``,
        ``G6_smc``, ``average_r``, ``median_r``, ``S_N``, ``ase``, ``feldt_lower``,
        ``feldt_upper``, ``mean``, ``sd``.

    """
    keys = ["n_items", "n_obs", "n_complete", "raw_alpha", "std_alpha", "G6_smc"]
    keys += ["average_r", "median_r", "S_N", "ase"]
    rows = {}
    for name, res in results.items():
        row = {key: res[key] for key in keys}
        row["feldt_lower"] = res["feldt_ci"]["lower"]
        row["feldt_upper"] = res["feldt_ci"]["upper"]
        row["mean"] = res["mean"]
        row["sd"] = res["sd"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("scale")
