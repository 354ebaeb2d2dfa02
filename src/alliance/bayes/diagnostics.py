"""Convergence diagnostics with a pass/fail status, parameter summaries and LOO comparisons."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

__all__ = [
    "ETI95",
    "PER_PATIENT_DIMS",
    "PRIOR_PREDICTIVE_LIMITS",
    "SUMMARY_COLUMNS",
    "THRESHOLDS",
    "check",
    "compare_loo",
    "effects",
    "loo",
    "mcse_mean",
    "mcse_quantile",
    "mcse_sd",
    "per_patient_names",
    "population_summary",
    "posterior_statistics",
    "prior_predictive_check",
    "summarize",
]

#: Pass/fail thresholds (config key ``bayes.thresholds``): split R-hat <= 1.01 and bulk and
#: tail ESS >= 400 for every parameter (Vehtari et al. 2021), no divergent transitions after
#: tuning, E-BFMI >= 0.3 in every chain (Betancourt 2016). R-hat is judged at two decimals
#: and ESS in whole draws, the precision at which they are reported.
THRESHOLDS: dict[str, float] = {
    "r_hat": 1.01,
    "ess_bulk": 400.0,
    "ess_tail": 400.0,
    "divergences": 0.0,
    "bfmi": 0.3,
}

#: Columns of ``summary.csv``: posterior mean, SD, median and 95% equal-tailed interval, the
#: Monte Carlo standard error of each of these five numbers, and the convergence diagnostics.
#: Intervals are equal-tailed (quantiles), not highest-density: a quantile's Monte Carlo error
#: is known from the effective sample size of its indicator (Vehtari et al. 2021), while the
#: ends of an empirical highest-density interval (the shortest window holding 95% of the
#: draws, the "shorth") converge at the cube-root rate (Kim & Pollard 1990) and vary about
#: 1.7 times as much as the quantiles at 4,000 draws of a normal posterior, so they cannot be
#: compared across runs within a stated Monte Carlo error.
SUMMARY_COLUMNS = [
    "parameter",
    "mean",
    "sd",
    "median",
    "eti95_low",
    "eti95_high",
    "mcse_mean",
    "mcse_sd",
    "mcse_median",
    "mcse_eti95_low",
    "mcse_eti95_high",
    "r_hat",
    "ess_bulk",
    "ess_tail",
]

#: Probability levels of the equal-tailed interval in :data:`SUMMARY_COLUMNS`.
ETI95 = (0.025, 0.975)


def _posterior_names(idata: az.InferenceData, var_names: Sequence[str] | None) -> list[str]:
    names = [str(v) for v in idata.posterior.data_vars]
    if var_names is None:
        return names
    unknown = sorted(set(var_names) - set(names))
    if unknown:
        raise ValueError(f"parameters not in the posterior, got {unknown}")
    return list(var_names)


def _element_labels(name: str, array: Any) -> list[str]:
    """Row labels of a variable's elements as ArviZ writes them: ``u_raw[TB01]``, ``x[0, 1]``."""
    dims = [d for d in array.dims if d not in ("chain", "draw")]
    if not dims:
        return [name]
    grids = np.meshgrid(*[array.coords[d].to_numpy() for d in dims], indexing="ij")
    combos = zip(*[g.ravel().tolist() for g in grids], strict=True)
    return [f"{name}[{', '.join(str(c) for c in combo)}]" for combo in combos]


#: Dimensions that index patients or their observations: a parameter over one of them has a
#: value per patient (random effects such as ``v_raw[C0001]``, ``level_patient[A0001]``).
PER_PATIENT_DIMS = ("patient", "obs")


def per_patient_names(idata: az.InferenceData) -> list[str]:
    """Posterior variables with a value per patient: kept out of summaries shown to readers.

    A variable is per patient when one of its dimensions is in :data:`PER_PATIENT_DIMS`, or
    when it has a dimension PyMC named itself (``x_missing_dim_0``: a vector declared without
    named dimensions, here the imputed item answers of the latent model), which cannot be
    told apart from one over patients. Patient identifiers label such elements, so they stay
    in ``idata.nc`` (or a per-patient file in the dataset folder), never in a summary.
    """
    out = []
    for name, values in idata.posterior.data_vars.items():
        dims = [str(d) for d in values.dims if d not in ("chain", "draw")]
        if any(d in PER_PATIENT_DIMS or d.startswith(f"{name}_dim_") for d in dims):
            out.append(str(name))
    return out


def population_summary(idata: az.InferenceData, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`summarize` of the population-level parameters only (no per-patient element).

    ``table``: the fit's full :func:`summarize` table, when already made (its rows are
    filtered instead of summarizing again).
    """
    hidden = set(per_patient_names(idata))
    if table is None:
        return summarize(idata, [n for n in _posterior_names(idata, None) if n not in hidden])
    base = table["parameter"].str.split("[", n=1, regex=False).str[0]
    return table[~base.isin(hidden)].reset_index(drop=True)


def _public_label(parameter: str, per_patient: set[str]) -> str:
    """A label without its patient ID: ``v_raw[C0001]`` -> ``v_raw (a patient's value)``."""
    base = parameter.split("[", 1)[0]
    return f"{base} (a patient's value)" if base in per_patient else parameter


def summarize(idata: az.InferenceData, var_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Posterior summary with the Monte Carlo standard error of every reported number.

    Mean, SD, median and 95% equal-tailed interval of each parameter element, each with its
    Monte Carlo standard error (MCSE of the mean and SD, and of the median and the interval
    ends as quantiles), rank-normalized split R-hat and bulk and tail ESS (Vehtari et al.
    2021). Vector parameters get one row per element (``u_raw[TB01]``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`, one row per parameter element.

    References
    ----------
    Vehtari, A., Gelman, A., Simpson, D., Carpenter, B., & Bürkner, P.-C. (2021).
    Rank-normalization, folding, and localization: An improved R-hat for assessing
    convergence of MCMC. Bayesian Analysis, 16(2), 667-718.
    Kim, J., & Pollard, D. (1990). Cube root asymptotics. The Annals of Statistics, 18(1),
    191-219.

    """
    names = _posterior_names(idata, var_names)
    rows: dict[str, list[Any]] = {column: [] for column in SUMMARY_COLUMNS}
    with warnings.catch_warnings():
        # a chain stuck at one value (a failed fit) has zero variance: R-hat, ESS and MCSE
        # then divide by zero and are NaN, which :func:`check` counts as a failure
        warnings.filterwarnings(
            "ignore", message="(invalid value|divide by zero) encountered", category=RuntimeWarning
        )
        for name in names:
            array = idata.posterior[name]
            dims = [d for d in array.dims if d not in ("chain", "draw")]
            draws = np.asarray(array.transpose("chain", "draw", *dims), dtype=float)
            draws = draws.reshape(draws.shape[0], draws.shape[1], -1)
            rows["parameter"].extend(_element_labels(name, array))
            for column, values in posterior_statistics(draws).items():
                rows[column].extend(values.tolist())
    return pd.DataFrame(rows)[SUMMARY_COLUMNS]


def _split_chains(draws: np.ndarray) -> np.ndarray:
    """(chain, draw, element) -> (element, 2 chain, draw // 2): each chain's halves as chains."""
    half = draws.shape[1] // 2
    split = np.concatenate([draws[:, :half], draws[:, draws.shape[1] - half :]], axis=0)
    return np.ascontiguousarray(split.transpose(2, 0, 1))


def _rank_normal(split: np.ndarray) -> np.ndarray:
    """Rank-normalized values of each element (Vehtari et al. 2021, eq. 14; Blom's offset 3/8)."""
    from scipy import stats

    k, n_chain, n_draw = split.shape
    ranks = stats.rankdata(split.reshape(k, -1), method="average", axis=1)
    size = n_chain * n_draw
    return stats.norm.ppf((ranks - 3 / 8) / (size - 2 * 3 / 8 + 1)).reshape(split.shape)


def _quantile_indicator(draws: np.ndarray, prob: float) -> np.ndarray:
    """Whether each draw lies at or below its element's ``prob`` quantile (R's type 7)."""
    from scipy.stats.mstats import mquantiles

    flat = draws.reshape(-1, draws.shape[2])
    quantiles = np.asarray(mquantiles(flat, [prob], alphap=1, betap=1, axis=0)).reshape(-1)
    return (draws <= quantiles).astype(float)


def _geyer_ess(rho: np.ndarray, n_total: int) -> float:
    """ESS from one element's autocorrelations by Geyer's initial monotone sequence.

    ``rho[t]`` estimates the autocorrelation at lag ``t`` (``rho[0]`` is taken as 1). Sums of
    consecutive pairs ``rho[2j] + rho[2j + 1]`` are added while positive (the initial positive
    sequence; the last, non-positive pair is kept only if it is exactly zero, and its even
    term if that is positive), each capped by the pair before it (the monotone sequence);
    ``tau = -1 + 2 sum_t rho[t]``, at least ``1 / log10(n_total)``, and ``ESS = n_total / tau``
    (Geyer 1992; Vehtari et al. 2021, section 3.2).
    """
    n_draw = len(rho)
    terms = np.zeros(n_draw)
    terms[0] = 1.0
    terms[1] = rho[1]
    even, odd = 1.0, rho[1]
    t = 1
    while t < n_draw - 3 and even + odd > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0:
            terms[t + 1], terms[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0:
        terms[last + 1] = even
    # monotone: a pair larger than the (capped) pair before it takes that pair's value
    previous = terms[0] + terms[1]
    for j in range(1, (last - 1) // 2 + 1):
        pair = terms[2 * j] + terms[2 * j + 1]
        if pair > previous:
            terms[2 * j] = terms[2 * j + 1] = previous / 2.0
        else:
            previous = pair
    if np.isnan(terms).any():
        return float("nan")
    tau = -1.0 + 2.0 * np.sum(terms[: last + 1]) + np.sum(terms[last + 1 : last + 2])
    return n_total / max(tau, 1 / np.log10(n_total))


def _ess_of_split(split: np.ndarray) -> np.ndarray:
    """ESS of each element of ``split`` (element, chain, draw), chains already split."""
    from scipy.fftpack import next_fast_len

    k, n_chain, n_draw = split.shape
    n_total = n_chain * n_draw
    out = np.full(k, np.nan)
    valid = ~np.isnan(split).any(axis=(1, 2))
    constant = valid & (
        split.max(axis=(1, 2)) - split.min(axis=(1, 2)) < np.finfo(float).resolution
    )
    out[constant] = n_total
    todo = np.flatnonzero(valid & ~constant)
    if not len(todo):
        return out
    x = split[todo]
    # autocovariances of every chain by FFT (zero-padded to avoid wrap-around)
    centred = x - x.mean(axis=2, keepdims=True)
    m = next_fast_len(2 * n_draw)
    spectrum = np.fft.rfft(centred, n=m, axis=2)
    spectrum *= np.conjugate(spectrum)
    acov = np.fft.irfft(spectrum, n=m, axis=2)[:, :, :n_draw]
    acov /= n_draw
    mean_var = acov[:, :, 0].mean(axis=1) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        # variance of the chain means, by sums of values and squares (as ArviZ computes it)
        means = x.mean(axis=2)
        between = (means * means).sum(axis=1) / n_chain - (means.sum(axis=1) / n_chain) ** 2
        var_plus = var_plus + between * (n_chain / (n_chain - 1))
    rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]
    for row, index in enumerate(todo):
        out[index] = _geyer_ess(rho[row], n_total)
    return out


def _ess(draws: np.ndarray, method: str, prob: float | None = None) -> np.ndarray:
    """Effective sample size of each column of ``draws`` (chain, draw, element).

    ``method``: ``"bulk"`` (rank-normalized split chains), ``"tail"`` (the smaller of the 5%
    and 95% quantiles'), ``"mean"`` (split chains) or ``"quantile"`` (of the indicator of the
    draws at or below the ``prob`` quantile), as Vehtari et al. (2021) define them and ArviZ
    computes them (``az.ess``; equal to it to 1e-12 relative, test), but for all elements at
    once: ArviZ evaluates Geyer's sequence with one NumPy call per lag and element (4 of the
    6 s of a process-model summary of 490 elements on the demo, 2026-12-04). NaN for an
    element with a NaN draw or fewer than 4 draws.
    """
    draws = np.asarray(draws, dtype=float)
    if draws.shape[1] < 4:
        return np.full(draws.shape[2], np.nan)
    if method == "bulk":
        split = _split_chains(draws)
        nan = np.isnan(split).any(axis=(1, 2))
        split[nan] = 0.0
        result = _ess_of_split(_rank_normal(split))
        result[nan] = np.nan
        return result
    if method == "mean":
        return _ess_of_split(_split_chains(draws))
    if method == "quantile":
        if prob is None:
            raise ValueError("method 'quantile' needs prob, got None")
        nan = np.isnan(draws).any(axis=(0, 1))
        result = _ess_of_split(_split_chains(_quantile_indicator(draws, prob)))
        result[nan] = np.nan
        return result
    if method == "tail":
        # NaN propagates: an element with a NaN draw has NaN quantile ESS
        return np.minimum(_ess(draws, "quantile", 0.05), _ess(draws, "quantile", 0.95))
    raise ValueError(f"method must be 'bulk', 'tail', 'mean' or 'quantile', got {method!r}")


def _as_dataset(draws: np.ndarray) -> Any:
    import xarray as xr

    return xr.Dataset({"x": (("chain", "draw", "element"), draws)})


def mcse_quantile(draws: np.ndarray, prob: float) -> np.ndarray:
    """MCSE of the ``prob`` quantile of each column of ``draws`` (chain, draw, element).

    Half the distance between the draws at the 15.9% and 84.1% points of the Beta distribution
    of the quantile's rank (Vehtari et al. 2021, appendix A).
    """
    from scipy.special import betaincinv

    ess = _ess(draws, "quantile", prob)
    flat = np.sort(draws.reshape(-1, draws.shape[2]), axis=0)
    size = flat.shape[0]
    # the quantile's rank lies in Beta(ess p + 1, ess (1 - p) + 1); its 15.9% and 84.1% points
    # mapped to the sorted draws span two standard errors
    a = ess * prob + 1
    b = ess * (1 - prob) + 1
    low = betaincinv(a, b, 0.15865525393145707)
    high = betaincinv(a, b, 0.8413447460685429)
    i_low = np.floor(np.fmax(np.nan_to_num(low * size - 1, nan=0.0), 0)).astype(int)
    i_high = np.ceil(np.fmin(np.nan_to_num(high * size - 1, nan=size - 1), size - 1)).astype(int)
    cols = np.arange(draws.shape[2])
    out = (flat[i_high, cols] - flat[i_low, cols]) / 2
    return np.where(np.isfinite(ess), out, np.nan)


def mcse_mean(draws: np.ndarray) -> np.ndarray:
    """MCSE of the mean of each column of ``draws`` (chain, draw, element): SD / sqrt(ESS)."""
    flat = draws.reshape(-1, draws.shape[2])
    return flat.std(axis=0, ddof=1) / np.sqrt(_ess(draws, "mean"))


def mcse_sd(draws: np.ndarray) -> np.ndarray:
    """MCSE of the SD of each column of ``draws`` (chain, draw, element).

    From the ESS of the squared centred draws and the delta method (Vehtari et al. 2021).
    """
    k = draws.shape[2]
    centred2 = (draws - draws.reshape(-1, k).mean(axis=0)) ** 2
    evar = centred2.reshape(-1, k).mean(axis=0)
    varvar = ((centred2**2).reshape(-1, k).mean(axis=0) - evar**2) / _ess(centred2, "mean")
    return np.sqrt(varvar / evar / 4)


def posterior_statistics(draws: np.ndarray) -> dict[str, np.ndarray]:
    """The numbers of :data:`SUMMARY_COLUMNS` for each element of ``draws``.

    Parameters
    ----------
    draws
        Posterior draws, shape (chain, draw, element).

    Returns
    -------
    dict
        Column name -> array with one value per element.

    Notes
    -----
    The Monte Carlo standard errors follow Vehtari et al. (2021, section 4 and appendix A) as
    the R package posterior computes them: the mean's is SD / sqrt(ESS of the draws); the SD's
    comes from the ESS of the squared centred draws by the delta method; a quantile's is half
    the distance between the draws at the 15.9% and 84.1% points of the Beta distribution of
    its rank, whose parameters come from the ESS of the quantile's indicator.

    """
    import arviz as az

    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 3:
        raise ValueError(f"draws must have shape (chain, draw, element), got {draws.shape}")
    flat = draws.reshape(-1, draws.shape[2])
    rhat = np.asarray(az.rhat(_as_dataset(draws))["x"], dtype=float)
    return {
        "mean": flat.mean(axis=0),
        "sd": flat.std(axis=0, ddof=1),
        "median": np.quantile(flat, 0.5, axis=0),
        "eti95_low": np.quantile(flat, ETI95[0], axis=0),
        "eti95_high": np.quantile(flat, ETI95[1], axis=0),
        "mcse_mean": mcse_mean(draws),
        "mcse_sd": mcse_sd(draws),
        "mcse_median": mcse_quantile(draws, 0.5),
        "mcse_eti95_low": mcse_quantile(draws, ETI95[0]),
        "mcse_eti95_high": mcse_quantile(draws, ETI95[1]),
        "r_hat": rhat,
        "ess_bulk": _ess(draws, "bulk"),
        "ess_tail": _ess(draws, "tail"),
    }


def _divergences(idata: az.InferenceData) -> int:
    stats = idata.sample_stats
    for key in ("diverging", "divergences"):
        if key in stats:
            return int(np.asarray(stats[key]).astype(bool).sum())
    return 0


def _bfmi(idata: az.InferenceData) -> list[float]:
    import arviz as az

    if "energy" not in idata.sample_stats:
        return []
    return [float(x) for x in np.atleast_1d(az.bfmi(idata))]


def check(
    idata: az.InferenceData,
    var_names: Sequence[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    table: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Judge convergence of a fit against :data:`THRESHOLDS`.

    Parameters
    ----------
    idata
        A fit with ``posterior`` and ``sample_stats``.
    var_names
        Parameters to check; default every posterior variable (including random effects and
        derived quantities).
    thresholds
        Overrides of :data:`THRESHOLDS`.
    table
        The :func:`summarize` table of ``var_names``, when already made.

    Returns
    -------
    dict
        ``status`` (``"pass"`` or ``"fail"``), ``failures`` (one sentence each),
        ``thresholds``, ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``, ``max_mcse_mean``
        (with the parameters attaining them), ``divergences``, ``bfmi`` (per chain),
        ``chains`` and ``draws``.

    References
    ----------
    Betancourt, M. (2016). Diagnosing suboptimal cotangent disintegrations in Hamiltonian
    Monte Carlo. arXiv:1604.00695.
    Vehtari, A., Gelman, A., Simpson, D., Carpenter, B., & Bürkner, P.-C. (2021).
    Rank-normalization, folding, and localization: An improved R-hat for assessing
    convergence of MCMC. Bayesian Analysis, 16(2), 667-718.

    """
    limits = dict(THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if key not in THRESHOLDS:
            raise ValueError(f"unknown threshold, got {key!r}")
        limits[key] = float(value)
    table = (summarize(idata, var_names) if table is None else table).set_index("parameter")
    # failures and the worst parameters are shown in summaries: no patient ID in their names
    per_patient = set(per_patient_names(idata))
    table.index = table.index.map(lambda label: _public_label(str(label), per_patient))
    # judged at the precision they are reported (ArviZ, Stan): R-hat to two decimals (1.0104
    # is 1.01 and passes), ESS to whole draws. A constant parameter (a point mass) has
    # undefined R-hat and ESS: it counts as failing.
    r_hat = table["r_hat"].round(2).fillna(np.inf)
    ess_bulk = table["ess_bulk"].round(0).fillna(0.0)
    ess_tail = table["ess_tail"].round(0).fillna(0.0)
    divergences = _divergences(idata)
    bfmi = _bfmi(idata)
    failures = []
    if r_hat.max() > limits["r_hat"]:
        failures.append(f"R-hat {r_hat.max():.3f} > {limits['r_hat']} ({r_hat.idxmax()})")
    if ess_bulk.min() < limits["ess_bulk"]:
        failures.append(
            f"bulk ESS {ess_bulk.min():.0f} < {limits['ess_bulk']:.0f} ({ess_bulk.idxmin()})"
        )
    if ess_tail.min() < limits["ess_tail"]:
        failures.append(
            f"tail ESS {ess_tail.min():.0f} < {limits['ess_tail']:.0f} ({ess_tail.idxmin()})"
        )
    if divergences > limits["divergences"]:
        failures.append(f"{divergences} divergent transitions")
    if bfmi and min(bfmi) < limits["bfmi"]:
        failures.append(f"E-BFMI {min(bfmi):.2f} < {limits['bfmi']} in a chain")
    posterior = idata.posterior
    return {
        "status": "fail" if failures else "pass",
        "failures": failures,
        "thresholds": limits,
        "max_r_hat": _finite(r_hat.max()),
        "max_r_hat_parameter": str(r_hat.idxmax()),
        "min_ess_bulk": _finite(ess_bulk.min()),
        "min_ess_bulk_parameter": str(ess_bulk.idxmin()),
        "min_ess_tail": _finite(ess_tail.min()),
        "min_ess_tail_parameter": str(ess_tail.idxmin()),
        "max_mcse_mean": _finite(table["mcse_mean"].max()),
        "divergences": divergences,
        "bfmi": bfmi,
        "chains": int(posterior.sizes["chain"]),
        "draws": int(posterior.sizes["draw"]),
    }


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def loo(idata: az.InferenceData, var_name: str | None = None) -> dict[str, Any]:
    """PSIS-LOO of a fit with a ``log_likelihood`` group, with the Pareto k diagnostics.

    Returns
    -------
    dict
        ``elpd_loo``, ``se``, ``p_loo``, ``n``, ``pareto_k_max``, ``pareto_k_over_0.7``
        (observations whose importance-sampling estimate is unreliable) and ``good_k``
        (the threshold used, 0.7 for these sample sizes; Vehtari et al. 2024).

    References
    ----------
    Vehtari, A., Gelman, A., & Gabry, J. (2017). Practical Bayesian model evaluation using
    leave-one-out cross-validation and WAIC. Statistics and Computing, 27, 1413-1432.
    Vehtari, A., Simpson, D., Gelman, A., Yao, Y., & Gabry, J. (2024). Pareto smoothed
    importance sampling. Journal of Machine Learning Research, 25(72), 1-58.

    """
    import arviz as az

    result = az.loo(idata, pointwise=True, var_name=var_name)
    k = np.asarray(result.pareto_k)
    good_k = float(getattr(result, "good_k", 0.7))
    return {
        "elpd_loo": float(result.elpd_loo),
        "se": float(result.se),
        "p_loo": float(result.p_loo),
        "n": int(k.size),
        "pareto_k_max": float(k.max()),
        "pareto_k_over_0.7": int((k > 0.7).sum()),
        "good_k": good_k,
    }


def compare_loo(fits: Mapping[str, az.InferenceData]) -> pd.DataFrame:
    """Compare fits of the same observations by PSIS-LOO.

    The difference in expected log predictive density of each model from the best one and
    its standard error come from the pointwise differences, ``se = sqrt(n var(d_i))``
    (Vehtari et al. 2017, section 5); a difference within about two standard errors does not
    distinguish the models.

    Returns
    -------
    pandas.DataFrame
        One row per model, best first: ``model``, ``rank``, ``elpd_loo``, ``se``, ``p_loo``,
        ``elpd_diff`` (0 for the best), ``dse`` (its standard error), ``pareto_k_max``.

    References
    ----------
    Vehtari, A., Gelman, A., & Gabry, J. (2017). Practical Bayesian model evaluation using
    leave-one-out cross-validation and WAIC. Statistics and Computing, 27, 1413-1432.

    """
    import arviz as az

    if len(fits) < 2:
        raise ValueError(f"compare needs at least two fits, got {len(fits)}")
    results = {name: az.loo(idata, pointwise=True) for name, idata in fits.items()}
    sizes = {name: int(np.asarray(r.loo_i).size) for name, r in results.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"fits must share their observations, got sizes {sizes}")
    best = max(results, key=lambda name: float(results[name].elpd_loo))
    rows = []
    for name, r in results.items():
        diff = np.asarray(r.loo_i) - np.asarray(results[best].loo_i)
        rows.append(
            {
                "model": name,
                "elpd_loo": float(r.elpd_loo),
                "se": float(r.se),
                "p_loo": float(r.p_loo),
                "elpd_diff": float(diff.sum()),
                "dse": float(np.sqrt(diff.size * np.var(diff, ddof=1))),
                "pareto_k_max": float(np.max(r.pareto_k)),
            }
        )
    table = pd.DataFrame(rows).sort_values("elpd_loo", ascending=False, kind="stable")
    table.insert(1, "rank", np.arange(len(table)))
    return table.reset_index(drop=True)


#: A prior predictive check passes when the observed mean and SD of the outcome lie inside
#: the central 99% of their prior predictive distributions (the priors do not rule out the
#: data) and fewer than 5% of the replicated standardized outcomes lie beyond +-10 SD (the
#: priors put little mass on impossible data; weakly informative priors may well allow
#: values beyond +-5 SD, whose share is reported too). Gabry et al. (2019), section 3.
PRIOR_PREDICTIVE_LIMITS: dict[str, float] = {"percentile": 0.005, "beyond_10sd": 0.05}


def prior_predictive_check(
    prior: az.InferenceData, observed: np.ndarray, var_name: str = "y"
) -> dict[str, Any]:
    """Summarize prior predictive draws of a standardized outcome against the observed one.

    Parameters
    ----------
    prior
        Output of :func:`alliance.bayes.sampling.prior_predictive` (group
        ``prior_predictive`` with ``var_name``; chain x draw x observation).
    observed
        The observed values of ``var_name`` (model scale: outcome z-scores).
    var_name
        The observed variable.

    Returns
    -------
    dict
        ``draws``; ``y_q01``/``y_q50``/``y_q99`` (quantiles of all replicated values);
        ``sd_q05``/``sd_q95`` (of the replicated SDs); ``share_beyond_5sd`` and
        ``share_beyond_10sd`` (|y| > 5, > 10);
        ``observed_mean_percentile`` and ``observed_sd_percentile`` (share of replicates whose
        mean, SD is below the observed one); ``status`` ``"pass"`` or ``"check"`` by
        :data:`PRIOR_PREDICTIVE_LIMITS` with ``reasons``.

    Raises
    ------
    ValueError
        When ``prior`` lacks the variable or the shapes do not match.

    References
    ----------
    Gabry, J., Simpson, D., Vehtari, A., Betancourt, M., & Gelman, A. (2019). Visualization in
    Bayesian workflow. Journal of the Royal Statistical Society A, 182(2), 389-402.
    Kruschke, J. K. (2021). Bayesian analysis reporting guidelines. Nature Human Behaviour, 5,
    1282-1291.

    """
    if "prior_predictive" not in prior.groups() or var_name not in prior.prior_predictive:
        raise ValueError(f"no prior predictive draws of {var_name!r}, got {prior.groups()}")
    obs = np.asarray(observed, dtype=float).ravel()
    reps = np.asarray(prior.prior_predictive[var_name], dtype=float)
    reps = reps.reshape(-1, reps.shape[-1]) if reps.ndim > 1 else reps[None, :]
    if reps.shape[1] != obs.size:
        raise ValueError(f"replicates have {reps.shape[1]} values, observed {obs.size}")
    means, sds = reps.mean(axis=1), reps.std(axis=1, ddof=1)
    q = np.quantile(reps, [0.01, 0.5, 0.99])
    result = {
        "draws": int(reps.shape[0]),
        "y_q01": float(q[0]),
        "y_q50": float(q[1]),
        "y_q99": float(q[2]),
        "sd_q05": float(np.quantile(sds, 0.05)),
        "sd_q95": float(np.quantile(sds, 0.95)),
        "share_beyond_5sd": float(np.mean(np.abs(reps) > 5)),
        "share_beyond_10sd": float(np.mean(np.abs(reps) > 10)),
        "observed_mean_percentile": float(np.mean(means < obs.mean())),
        "observed_sd_percentile": float(np.mean(sds < obs.std(ddof=1))),
    }
    low = PRIOR_PREDICTIVE_LIMITS["percentile"]
    reasons = [
        f"observed {stat} at percentile {result[key]:.3f} of the prior predictive"
        for stat, key in (("mean", "observed_mean_percentile"), ("SD", "observed_sd_percentile"))
        if not low <= result[key] <= 1 - low
    ]
    if result["share_beyond_10sd"] >= PRIOR_PREDICTIVE_LIMITS["beyond_10sd"]:
        reasons.append(f"{result['share_beyond_10sd']:.1%} of replicated outcomes beyond +-10 SD")
    result["status"] = "check" if reasons else "pass"
    result["reasons"] = reasons
    return result


#: Where the "expected direction" lies for each derived effect when lower outcome scores are
#: better (PHQ-9): better alliance, fewer symptoms, so negative slopes; a therapist-level slope
#: more negative than the patient-level one (Baldwin et al. 2007) gives a negative contextual
#: effect. ``r_partial_improvement`` has the literature's sign (positive = better outcome).
_EXPECTED_NEGATIVE = {
    "b_alliance",
    "r_partial",
    "b_latent",
    "r_partial_latent",
    "b_within",
    "b_between",
    "contextual",
    "b_within_points",
    "b_between_points",
    "contextual_points",
}


def effects(
    idata: az.InferenceData, names: list[str], lower_is_better: bool = True
) -> dict[str, dict[str, float]]:
    """Posterior mean, median, SD, 90% and 95% equal-tailed intervals and direction probabilities.

    ``p_expected`` is the posterior probability that the effect lies in the expected direction
    (for PHQ-9: negative slopes, a negative contextual effect, a positive
    ``r_partial_improvement``).
    """
    out = {}
    for name in names:
        if name not in idata.posterior:
            continue
        x = np.asarray(idata.posterior[name]).ravel()
        q = np.quantile(x, [0.025, 0.05, 0.5, 0.95, 0.975])
        negative = name in _EXPECTED_NEGATIVE
        if not lower_is_better and not name.endswith("_improvement"):
            negative = not negative
        p_neg = float(np.mean(x < 0))
        row = {
            "mean": float(x.mean()),
            "median": float(q[2]),
            "sd": float(x.std(ddof=1)),
            "eti90_low": float(q[1]),
            "eti90_high": float(q[3]),
            "eti95_low": float(q[0]),
            "eti95_high": float(q[4]),
            "p_negative": p_neg,
            "p_positive": float(np.mean(x > 0)),
        }
        if name not in {"sigma", "tau_u", "tau_v", "b_baseline", "b_symptoms", "b_mean"} and not (
            name.startswith(("lambda_", "phi_", "reliability_", "r_alliance_"))
        ):
            row["p_expected"] = p_neg if negative else float(np.mean(x > 0))
        out[name] = row
    return out
