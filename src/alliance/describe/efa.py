"""Exploratory factor analysis: KMO, Bartlett's sphericity test, parallel analysis and EFA."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from alliance.data.scoring import item_matrix
from alliance.describe.reliability import cov_to_cor, pairwise_cov, smc

USES = ("complete", "pairwise")
ROTATIONS = ("oblimin", "quartimin", "geomin_obl", "promax", "varimax", "quartimax", None)
OBLIQUE = ("oblimin", "quartimin", "geomin_obl", "promax")
METHODS = ("minres", "ml")


def correlation_matrix(data: pd.DataFrame, use: str = "complete") -> tuple[pd.DataFrame, int]:
    """Pearson correlations of the item columns and the number of observations behind them.

    Parameters
    ----------
    data
        One numeric column per item, NaN for missing answers.
    use
        ``"complete"``: listwise deletion, ``n_obs`` is the number of complete rows.
        ``"pairwise"``: each correlation from the rows where both items are answered;
        ``n_obs`` is then the smallest pairwise count (a conservative sample size for tests).

    Returns
    -------
    cor, n_obs
        The correlation matrix (labelled by item) and the sample size.

    Raises
    ------
    ValueError
        If ``use`` is unknown, fewer than two items or three usable rows remain, an item has
        no variance, or two items are never answered together.

    """
    if use not in USES:
        raise ValueError(f"use must be one of {USES}, got {use!r}")
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    columns = [str(c) for c in data.columns]
    if len(columns) < 2:
        raise ValueError(f"need at least two items, got {columns}")
    x = item_matrix(data.set_axis(columns, axis=1), columns)
    if use == "complete":
        x = x[~np.isnan(x).any(axis=1)]
    cov, n_pairs = pairwise_cov(x)
    n_obs = int(n_pairs.min())
    if n_obs < 3:
        raise ValueError(f"need at least three rows with answers to every pair, got {n_obs}")
    variances = np.diag(cov)
    flat = [c for c, v in zip(columns, variances, strict=True) if not v > 0]
    if flat:
        raise ValueError(f"items without variance cannot be factor analysed, got {flat}")
    cor = cov_to_cor(cov)
    return pd.DataFrame(cor, index=columns, columns=columns), n_obs


def kmo(data: pd.DataFrame, use: str = "complete") -> dict[str, Any]:
    """Kaiser-Meyer-Olkin measure of sampling adequacy (MSA), overall and per item.

    With ``R`` the correlation matrix and ``Q`` the anti-image correlations (the partial
    correlations ``-r^ij / sqrt(r^ii r^jj)`` from ``R^-1``), summing over off-diagonal
    elements, ``MSA = sum r^2 / (sum r^2 + sum q^2)``, and per item the same over its column
    (Kaiser 1970; Kaiser & Rice 1974; as ``psych::KMO`` and SPSS).

    Parameters
    ----------
    data
        One numeric column per item.
    use
        ``"complete"`` or ``"pairwise"`` (see :func:`correlation_matrix`).

    Returns
    -------
    dict
        ``overall`` (float), ``per_item`` (Series indexed by item), ``n_obs``, ``use``.

    Raises
    ------
    ValueError
        If the correlation matrix is singular, or as :func:`correlation_matrix`.

    References
    ----------
    Kaiser, H. F. (1970). A second generation little jiffy. *Psychometrika, 35*(4), 401-415.

    Kaiser, H. F., & Rice, J. (1974). Little jiffy, mark IV. *Educational and Psychological
    Measurement, 34*(1), 111-117.

    """
    cor, n_obs = correlation_matrix(data, use)
    r = cor.to_numpy()
    try:
        inv = np.linalg.inv(r)
    except np.linalg.LinAlgError as err:
        raise ValueError(f"the correlation matrix is singular, got {err}") from err
    d = np.sqrt(np.diag(inv))
    partial = -inv / np.outer(d, d)
    np.fill_diagonal(partial, 0.0)
    r2 = r**2
    np.fill_diagonal(r2, 0.0)
    q2 = partial**2
    per_item = r2.sum(axis=0) / (r2.sum(axis=0) + q2.sum(axis=0))
    return {
        "overall": float(r2.sum() / (r2.sum() + q2.sum())),
        "per_item": pd.Series(per_item, index=cor.index, name="msa"),
        "n_obs": n_obs,
        "use": use,
    }


def bartlett_sphericity(data: pd.DataFrame, use: str = "complete") -> dict[str, Any]:
    """Bartlett's test that the population correlation matrix is an identity matrix.

    ``chi2 = -(n - 1 - (2p + 5) / 6) ln |R|`` with ``p (p - 1) / 2`` degrees of freedom
    (Bartlett 1950, 1951), as ``psych::cortest.bartlett``.

    Parameters
    ----------
    data
        One numeric column per item.
    use
        ``"complete"`` or ``"pairwise"`` (see :func:`correlation_matrix` for ``n``).

    Returns
    -------
    dict
        ``chi2``, ``df``, ``p``, ``n_obs``, ``use``.

    References
    ----------
    Bartlett, M. S. (1950). Tests of significance in factor analysis. *British Journal of
    Statistical Psychology, 3*(2), 77-85.

    Bartlett, M. S. (1951). The effect of standardization on a chi square approximation in
    factor analysis. *Biometrika, 38*(3/4), 337-344.

    """
    cor, n_obs = correlation_matrix(data, use)
    p = cor.shape[0]
    sign, logdet = np.linalg.slogdet(cor.to_numpy())
    if sign <= 0:
        raise ValueError(f"the correlation matrix must be positive definite, got sign {sign}")
    chi2 = -(n_obs - 1 - (2 * p + 5) / 6) * logdet
    df = p * (p - 1) // 2
    return {
        "chi2": float(chi2),
        "df": int(df),
        "p": float(special.chdtrc(df, chi2)),
        "n_obs": n_obs,
        "use": use,
    }


def _reduced_eigenvalues(cor: np.ndarray) -> np.ndarray:
    """Eigenvalues (descending) of ``cor`` with squared multiple correlations on the diagonal."""
    reduced = cor.copy()
    np.fill_diagonal(reduced, smc(cor))
    return np.linalg.eigvalsh(reduced)[::-1]


def _retain(observed: np.ndarray, reference: np.ndarray) -> int:
    """Count the leading observed eigenvalues that each exceed their random counterpart."""
    above = observed > reference
    return int(above.size if above.all() else np.argmin(above))


def parallel_analysis(
    data: pd.DataFrame,
    n_iter: int = 100,
    quantile: float = 0.95,
    rng: np.random.Generator | int | None = None,
    use: str = "complete",
) -> dict[str, Any]:
    """Horn's parallel analysis for the number of components and of common factors.

    The observed eigenvalues are compared with those of ``n_iter`` data sets of independent
    standard normal variables of the same size (``n_obs`` rows, ``p`` items) (Horn 1965).
    Two sets are reported: PCA eigenvalues of the correlation matrix and FA eigenvalues of
    the reduced correlation matrix (squared multiple correlations on the diagonal, the
    principal-axis convention). A component or factor is retained while its observed
    eigenvalue exceeds the ``quantile`` of the random ones, counting from the first and
    stopping at the first that does not (Glorfeld 1995 recommends the 95th percentile
    rather than the mean).

    Parameters
    ----------
    data
        One numeric column per item.
    n_iter
        Number of random data sets.
    quantile
        Quantile of the random eigenvalues used as the threshold, in (0, 1).
    rng
        Random generator or seed; pass one for reproducible results.
    use
        ``"complete"`` or ``"pairwise"`` (see :func:`correlation_matrix`); the random data
        have ``n_obs`` rows.

    Returns
    -------
    dict
        ``eigenvalues`` (DataFrame indexed 1..p: ``observed_pca``, ``random_pca_mean``,
        ``random_pca_quantile``, ``observed_fa``, ``random_fa_mean``,
        ``random_fa_quantile``), ``n_components`` and ``n_factors`` suggested, ``n_iter``,
        ``quantile``, ``n_obs``, ``use``.

    Raises
    ------
    ValueError
        If ``n_iter`` is not a positive integer or ``quantile`` is outside (0, 1).

    References
    ----------
    Horn, J. L. (1965). A rationale and test for the number of factors in factor analysis.
    *Psychometrika, 30*(2), 179-185.

    Glorfeld, L. W. (1995). An improvement on Horn's parallel analysis methodology for
    selecting the correct number of factors to retain. *Educational and Psychological
    Measurement, 55*(3), 377-393.

    """
    if isinstance(n_iter, bool) or not isinstance(n_iter, int | np.integer) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    cor, n_obs = correlation_matrix(data, use)
    r = cor.to_numpy()
    p = r.shape[0]
    generator = np.random.default_rng(rng)
    random_pca = np.empty((n_iter, p))
    random_fa = np.empty((n_iter, p))
    for i in range(n_iter):
        sim = np.corrcoef(generator.standard_normal((n_obs, p)), rowvar=False)
        random_pca[i] = np.linalg.eigvalsh(sim)[::-1]
        random_fa[i] = _reduced_eigenvalues(sim)
    table = pd.DataFrame(
        {
            "observed_pca": np.linalg.eigvalsh(r)[::-1],
            "random_pca_mean": random_pca.mean(axis=0),
            "random_pca_quantile": np.quantile(random_pca, quantile, axis=0),
            "observed_fa": _reduced_eigenvalues(r),
            "random_fa_mean": random_fa.mean(axis=0),
            "random_fa_quantile": np.quantile(random_fa, quantile, axis=0),
        },
        index=pd.RangeIndex(1, p + 1, name="number"),
    )
    return {
        "eigenvalues": table,
        "n_components": _retain(
            table["observed_pca"].to_numpy(), table["random_pca_quantile"].to_numpy()
        ),
        "n_factors": _retain(
            table["observed_fa"].to_numpy(), table["random_fa_quantile"].to_numpy()
        ),
        "n_iter": int(n_iter),
        "quantile": float(quantile),
        "n_obs": n_obs,
        "use": use,
    }


def heywood_warnings(communalities: pd.Series) -> list[str]:
    """A warning for each item whose communality is 1 or more (a Heywood case).

    A communality of 1 leaves the item no unique variance; above 1 (an "ultra-Heywood"
    case) the uniqueness is negative, which no population can have, so the solution is
    improper for that item: usually too many factors for the data or too few cases
    (psych's ``fa`` warns alike).

    Parameters
    ----------
    communalities
        Communalities indexed by item.

    Returns
    -------
    list of str
        One sentence per such item (empty when there is none).

    References
    ----------
    Heywood, H. B. (1931). On finite sequences of real numbers. *Proceedings of the Royal
    Society of London, Series A, 134*(824), 486-501.
    """
    out = []
    for item, h2 in communalities.items():
        if np.isfinite(h2) and h2 >= 1.0:
            kind = "an ultra-Heywood case" if h2 > 1.0 else "a Heywood case"
            out.append(
                f"{kind}: the communality of {item} is {h2:.3f} (1 or more), so its "
                f"uniqueness is {1 - h2:.3f}; the solution is improper for this item (often "
                "too many factors for the data or too few cases)"
            )
    return out


def exploratory_factor_analysis(
    data: pd.DataFrame,
    n_factors: int,
    rotation: str | None = "oblimin",
    method: str = "minres",
    use: str = "complete",
) -> dict[str, Any]:
    """Exploratory factor analysis of the item correlation matrix.

    Factors are extracted with factor_analyzer (``minres``: minimum residual / unweighted
    least squares, Harman & Jones 1966; or ``ml``) from the correlation matrix and then
    rotated; ``oblimin`` is direct oblimin with ``gamma = 0`` (quartimin), as in
    ``psych::fa(rotate = "oblimin")`` via GPArotation (Jennrich 2002). Each factor's sign is
    set so its loadings sum to a positive number, and factors are ordered by the variance
    they account for; the factor correlations follow the same signs and order.
    Communalities are ``diag(L Phi L')``, which is invariant under rotation (the row sums of
    squared pattern loadings are not, for oblique rotations).

    Parameters
    ----------
    data
        One numeric column per item.
    n_factors
        Number of factors, at least 1 and fewer than the number of items.
    rotation
        One of ``oblimin``, ``quartimin``, ``geomin_obl``, ``promax`` (oblique),
        ``varimax``, ``quartimax`` (orthogonal) or None.
    method
        ``"minres"`` or ``"ml"``.
    use
        ``"complete"`` or ``"pairwise"`` (see :func:`correlation_matrix`).

    Returns
    -------
    dict
        ``loadings`` (pattern matrix, DataFrame items x ``F1..Fm``), ``structure``
        (``L Phi``), ``communalities`` and ``uniquenesses`` (Series), ``phi`` (factor
        correlations, identity for orthogonal solutions), ``variance`` (DataFrame indexed by
        factor: ``ss_loadings`` = ``diag(Phi L'L)`` as psych reports for oblique solutions,
        ``proportion`` of total variance, ``cumulative``, ``proportion_explained`` of the
        common variance), ``rmsr`` (root mean square off-diagonal residual), ``n_obs``,
        ``n_factors``, ``rotation``, ``method``, ``use``, ``warnings`` (from the optimiser,
        and a Heywood case: an item with a communality of 1 or more, see
        :func:`heywood_warnings`).

    Raises
    ------
    ValueError
        If an argument is out of range, or as :func:`correlation_matrix`.

    References
    ----------
    Harman, H. H., & Jones, W. H. (1966). Factor analysis by minimizing residuals (minres).
    *Psychometrika, 31*(3), 351-368.

    Jennrich, R. I. (2002). A simple general method for oblique rotation. *Psychometrika,
    67*(1), 7-19.

    Revelle, W. (2022). *psych: Procedures for psychological, psychometric, and personality
    research* (R package version 2.2.9), function ``fa``.

    """
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    cor, n_obs = correlation_matrix(data, use)
    p = cor.shape[0]
    if isinstance(n_factors, bool) or not isinstance(n_factors, int | np.integer):
        raise ValueError(f"n_factors must be an integer, got {n_factors!r}")
    if not 1 <= n_factors < p:
        raise ValueError(f"n_factors must lie in [1, {p - 1}] for {p} items, got {n_factors}")

    # imported here: factor_analyzer pulls in scikit-learn (~0.5 s), which the CFA jobs that
    # import this module through alliance.describe.items never need
    from factor_analyzer import FactorAnalyzer, Rotator

    notes: list[str] = []
    # Extract unrotated factors with factor_analyzer and rotate here: FactorAnalyzer(rotation=...)
    # in 0.5.1 reorders the loading columns by variance without reordering ``phi_``, and its
    # communalities (row sums of squared pattern loadings) are wrong for oblique rotations.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fa = FactorAnalyzer(
            n_factors=int(n_factors), rotation=None, method=method, is_corr_matrix=True
        )
        fa.fit(cor.to_numpy().copy())
        loadings = np.asarray(fa.loadings_, dtype=float).reshape(p, int(n_factors))
        phi = np.eye(int(n_factors))
        if rotation is not None and n_factors > 1:
            rotator = Rotator(method=rotation)
            loadings = rotator.fit_transform(loadings)
            if rotation in OBLIQUE:
                phi = np.asarray(rotator.phi_, dtype=float)
    for w in caught:
        text = str(w.message)
        # factor_analyzer 0.5.1 passes scikit-learn's renamed ``force_all_finite`` argument.
        if "force_all_finite" not in text:
            notes.append(f"{w.category.__name__}: {text}")

    signs = np.sign(loadings.sum(axis=0))
    signs[signs == 0] = 1.0
    loadings = loadings * signs
    phi = phi * np.outer(signs, signs)
    ss = np.diag(phi @ loadings.T @ loadings)
    order = np.argsort(-ss, kind="stable")
    loadings = loadings[:, order]
    phi = phi[np.ix_(order, order)]
    ss = ss[order]

    names = [f"F{i + 1}" for i in range(int(n_factors))]
    items = list(cor.index)
    implied = loadings @ phi @ loadings.T
    communalities = np.diag(implied)
    residual = cor.to_numpy() - implied
    off = ~np.eye(p, dtype=bool)
    notes += heywood_warnings(pd.Series(communalities, index=items))
    variance = pd.DataFrame(
        {
            "ss_loadings": ss,
            "proportion": ss / p,
            "cumulative": np.cumsum(ss) / p,
            "proportion_explained": ss / ss.sum(),
        },
        index=pd.Index(names, name="factor"),
    )
    return {
        "loadings": pd.DataFrame(loadings, index=items, columns=names),
        "structure": pd.DataFrame(loadings @ phi, index=items, columns=names),
        "communalities": pd.Series(communalities, index=items, name="h2"),
        "uniquenesses": pd.Series(1 - communalities, index=items, name="u2"),
        "phi": pd.DataFrame(phi, index=names, columns=names),
        "variance": variance,
        "rmsr": float(np.sqrt(np.mean(residual[off] ** 2))),
        "n_obs": n_obs,
        "n_factors": int(n_factors),
        "rotation": rotation,
        "method": method,
        "use": use,
        "warnings": notes,
    }
