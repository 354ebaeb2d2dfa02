"""Client-therapist agreement on the same sessions: ICC, Bland-Altman limits and correlation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "AGREEMENT_COLUMNS",
    "bland_altman",
    "icc",
    "match_raters",
    "pearson",
    "rater_agreement",
]

#: Score columns compared by default (subscale and total means, docs/data-model.md).
DEFAULT_MEASURES = ("task_mean", "goal_mean", "bond_mean", "total_mean")

#: Columns of the agreement table, in order.
AGREEMENT_COLUMNS = [
    "measure",
    "scope",
    "n_pairs",
    "n_patients",
    "mean_a",
    "mean_b",
    "icc_a1",
    "icc_a1_lower",
    "icc_a1_upper",
    "icc_c1",
    "icc_c1_lower",
    "icc_c1_upper",
    "mean_diff",
    "mean_diff_lower",
    "mean_diff_upper",
    "sd_diff",
    "loa_lower",
    "loa_lower_ci_low",
    "loa_lower_ci_high",
    "loa_upper",
    "loa_upper_ci_low",
    "loa_upper_ci_high",
    "loa_repeated_sd",
    "loa_repeated_lower",
    "loa_repeated_upper",
    "pearson_r",
    "pearson_lower",
    "pearson_upper",
]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")


def icc(ratings: np.ndarray | pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Intraclass correlations of single ratings (Shrout & Fleiss 1979) with F-based CIs.

    ``ratings`` is an n targets x k raters matrix without missing values. From the two-way
    ANOVA without replication, with mean squares between targets ``BMS``, within targets
    ``WMS``, between raters ``JMS`` and residual ``EMS``:

    - ``ICC(1,1) = (BMS - WMS) / (BMS + (k-1) WMS)``: one-way random model (each target rated
      by different raters); McGraw & Wong's ICC(1).
    - ``ICC(2,1) = (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n)``: two-way model,
      absolute agreement (a systematic rater difference lowers it); McGraw & Wong's
      ICC(A,1). Its CI uses Satterthwaite's approximate degrees of freedom (McGraw & Wong
      1996, Table 7; the formula of ``psych::ICC`` and Stata's ``icc``).
    - ``ICC(3,1) = (BMS - EMS) / (BMS + (k-1) EMS)``: two-way model, consistency (a constant
      rater difference does not count); McGraw & Wong's ICC(C,1).

    The CIs of ICC(1,1) and ICC(3,1) are exact under normality: with ``F0`` the ANOVA F
    ratio, ``FL = F0 / F(1-a/2; df1, df2)``, ``FU = F0 F(1-a/2; df2, df1)`` and the bound
    ``(F - 1) / (F + k - 1)``.

    Parameters
    ----------
    ratings
        n x k array (targets in rows, raters in columns), n >= 2, k >= 2, all finite.
    level
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per form (index ``ICC(1,1)``, ``ICC(2,1)``, ``ICC(3,1)``): ``mcgraw_wong``
        (the McGraw & Wong name), ``model``, ``estimate``, ``f``, ``df1``, ``df2``, ``p``
        (test of ICC = 0), ``lower``, ``upper``.

    Raises
    ------
    ValueError
        If the matrix is not two-dimensional, is smaller than 2 x 2, holds a non-finite
        value, or has no residual variance.

    References
    ----------
    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: Uses in assessing rater
    reliability. Psychological Bulletin, 86(2), 420-428.
    McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass
    correlation coefficients. Psychological Methods, 1(1), 30-46.

    """
    _check_level(level)
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"ratings must be an n x k matrix with n, k >= 2, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"ratings must be finite, got {int((~np.isfinite(x)).sum())} missing")
    n, k = x.shape
    grand = x.mean()
    ss_total = ((x - grand) ** 2).sum()
    ss_targets = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_raters = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_resid = ss_total - ss_targets - ss_raters
    df_b, df_j, df_e, df_w = n - 1, k - 1, (n - 1) * (k - 1), n * (k - 1)
    bms, jms = ss_targets / df_b, ss_raters / df_j
    ems, wms = ss_resid / df_e, (ss_total - ss_targets) / df_w
    if ems <= 0 or wms <= 0:
        raise ValueError(f"ratings have no residual variance, got EMS = {ems}")
    q = 1 - (1 - level) / 2

    def exact(f0: float, d1: float, d2: float) -> tuple[float, float]:
        fl = f0 / stats.f.ppf(q, d1, d2)
        fu = f0 * stats.f.ppf(q, d2, d1)
        return (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)

    rows: dict[str, dict[str, Any]] = {}
    f1 = bms / wms
    lo1, up1 = exact(f1, df_b, df_w)
    rows["ICC(1,1)"] = {
        "mcgraw_wong": "ICC(1)",
        "model": "one-way random, absolute agreement",
        "estimate": (bms - wms) / (bms + (k - 1) * wms),
        "f": f1,
        "df1": df_b,
        "df2": df_w,
        "p": stats.f.sf(f1, df_b, df_w),
        "lower": lo1,
        "upper": up1,
    }
    f3 = bms / ems
    icc2 = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    fj = jms / ems
    # McGraw & Wong (1996) Table 7, written as in psych::ICC (Satterthwaite df)
    vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    vd = (n - 1) * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    v = vn / vd
    f_star_u = stats.f.ppf(q, n - 1, v)
    f_star_l = stats.f.ppf(q, v, n - 1)
    denom = k * jms + (k * n - k - n) * ems
    rows["ICC(2,1)"] = {
        "mcgraw_wong": "ICC(A,1)",
        "model": "two-way random, absolute agreement",
        "estimate": icc2,
        "f": f3,
        "df1": df_b,
        "df2": df_e,
        "p": stats.f.sf(f3, df_b, df_e),
        "lower": n * (bms - f_star_u * ems) / (f_star_u * denom + n * bms),
        "upper": n * (f_star_l * bms - ems) / (denom + n * f_star_l * bms),
    }
    lo3, up3 = exact(f3, df_b, df_e)
    rows["ICC(3,1)"] = {
        "mcgraw_wong": "ICC(C,1)",
        "model": "two-way mixed, consistency",
        "estimate": (bms - ems) / (bms + (k - 1) * ems),
        "f": f3,
        "df1": df_b,
        "df2": df_e,
        "p": stats.f.sf(f3, df_b, df_e),
        "lower": lo3,
        "upper": up3,
    }
    out = pd.DataFrame.from_dict(rows, orient="index")
    for col in ("estimate", "f", "df1", "df2", "p", "lower", "upper"):
        out[col] = out[col].astype(float)
    return out


def bland_altman(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    level: float = 0.95,
    subjects: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Mean difference ``a - b`` with Bland-Altman 95% limits of agreement and their CIs.

    Limits of agreement are ``d_mean -/+ z s_d`` (z = 1.96 for 95%), ``s_d`` the SD of the
    differences. Following Bland & Altman (1986), the CI of the mean difference uses
    ``SE = s_d / sqrt(n)`` and that of each limit ``SE = sqrt(3 s_d^2 / n)``, both with
    ``t(n - 1)`` quantiles.

    With ``subjects`` (several pairs per subject, such as sessions of one patient) the pairs
    are not independent, and the SD of a single difference is also estimated by Bland &
    Altman's (2007) method for repeated pairs when the true value varies: a one-way ANOVA of
    the differences by subject gives ``s_w^2 = MS_within`` and
    ``s_b^2 = (MS_between - MS_within) / m0`` with
    ``m0 = (N^2 - sum m_i^2) / ((n_subjects - 1) N)``, and the limits are
    ``d_mean -/+ z sqrt(s_b^2 + s_w^2)`` (``repeated_*`` keys; no CI is given for them).

    Parameters
    ----------
    a, b
        Paired measurements (same length); pairs with a missing value are dropped.
    level
        Coverage of the limits and confidence level of their CIs.
    subjects
        Optional subject label of each pair.

    Returns
    -------
    dict
        ``n``, ``mean_diff``, ``sd_diff``, ``mean_diff_ci`` ([lower, upper]), ``loa_lower``,
        ``loa_upper``, ``loa_lower_ci``, ``loa_upper_ci``, ``z``, ``level``, and with
        ``subjects``: ``n_subjects``, ``repeated_sd``, ``repeated_sd_between``,
        ``repeated_sd_within``, ``repeated_loa_lower``, ``repeated_loa_upper``.

    Raises
    ------
    ValueError
        If the lengths differ or fewer than 3 complete pairs remain.

    References
    ----------
    Bland, J. M., & Altman, D. G. (1986). Statistical methods for assessing agreement
    between two methods of clinical measurement. The Lancet, 327(8476), 307-310.
    Bland, J. M., & Altman, D. G. (2007). Agreement between methods of measurement with
    multiple observations per individual. Journal of Biopharmaceutical Statistics, 17(4),
    571-582.

    """
    _check_level(level)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"a and b must be 1-d and of equal length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    n = len(d)
    if n < 3:
        raise ValueError(f"Bland-Altman needs at least 3 complete pairs, got {n}")
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    t = float(stats.t.ppf(1 - (1 - level) / 2, n - 1))
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se_mean, se_loa = sd / math.sqrt(n), math.sqrt(3 * sd**2 / n)
    lower, upper = mean - z * sd, mean + z * sd
    out: dict[str, Any] = {
        "n": n,
        "level": level,
        "z": z,
        "mean_diff": mean,
        "sd_diff": sd,
        "mean_diff_ci": [mean - t * se_mean, mean + t * se_mean],
        "loa_lower": lower,
        "loa_upper": upper,
        "loa_lower_ci": [lower - t * se_loa, lower + t * se_loa],
        "loa_upper_ci": [upper - t * se_loa, upper + t * se_loa],
    }
    if subjects is not None:
        s = np.asarray(subjects, dtype=object)
        if s.shape != x.shape:
            raise ValueError(f"subjects must have one label per pair, got {s.shape}")
        frame = pd.DataFrame({"s": s[keep], "d": d})
        groups = frame.groupby("s", sort=False)["d"]
        m_i = groups.size().to_numpy(dtype=float)
        g = len(m_i)
        out["n_subjects"] = g
        ss_w = float(((frame["d"] - groups.transform("mean")) ** 2).sum())
        ss_b = float((m_i * (groups.mean().to_numpy() - mean) ** 2).sum())
        if g >= 2 and n > g:
            ms_w, ms_b = ss_w / (n - g), ss_b / (g - 1)
            m0 = (n**2 - (m_i**2).sum()) / ((g - 1) * n)
            var_b = max((ms_b - ms_w) / m0, 0.0)
            sd_rep = math.sqrt(var_b + ms_w)
            out.update(
                repeated_sd=sd_rep,
                repeated_sd_between=math.sqrt(var_b),
                repeated_sd_within=math.sqrt(ms_w),
                repeated_loa_lower=mean - z * sd_rep,
                repeated_loa_upper=mean + z * sd_rep,
            )
        else:
            out.update(
                repeated_sd=None,
                repeated_sd_between=None,
                repeated_sd_within=None,
                repeated_loa_lower=None,
                repeated_loa_upper=None,
            )
    return out


def pearson(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, level: float = 0.95
) -> dict[str, float]:
    """Pearson correlation with a Fisher-z confidence interval (pairs with NaN dropped).

    Returns
    -------
    dict
        ``r``, ``lower``, ``upper``, ``n``.

    Raises
    ------
    ValueError
        If fewer than 4 complete pairs remain or one variable is constant.

    References
    ----------
    Fisher, R. A. (1921). On the "probable error" of a coefficient of correlation deduced
    from a small sample. Metron, 1, 3-32.

    """
    _check_level(level)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 4:
        raise ValueError(f"a correlation CI needs at least 4 complete pairs, got {n}")
    if x.std() == 0 or y.std() == 0:
        raise ValueError("a correlation needs two non-constant variables, got a constant")
    r = float(np.corrcoef(x, y)[0, 1])
    zc = float(stats.norm.ppf(1 - (1 - level) / 2)) / math.sqrt(n - 3)
    fz = math.atanh(min(max(r, -0.999999999), 0.999999999))
    return {"r": r, "lower": math.tanh(fz - zc), "upper": math.tanh(fz + zc), "n": n}


def match_raters(
    scores: pd.DataFrame,
    rater_a: str = "client",
    rater_b: str = "therapist",
    measures: Sequence[str] = DEFAULT_MEASURES,
) -> pd.DataFrame:
    """Pair two raters' scores of the same sessions (patient x session).

    Returns
    -------
    pandas.DataFrame
        ``patient_id``, ``session``, then ``{measure}_{rater_a}`` and ``{measure}_{rater_b}``
        as floats (NaN where a score is missing), one row per patient x session rated by both.

    Raises
    ------
    ValueError
        If a required column is missing or a rater has two rows for one patient x session.

    """
    missing = [c for c in ("patient_id", "session", "rater", *measures) if c not in scores]
    if missing:
        raise ValueError(f"scores lack columns {missing}")
    key = ["patient_id", "session"]
    parts = []
    for rater in (rater_a, rater_b):
        part = scores.loc[scores["rater"] == rater, [*key, *measures]]
        if part.duplicated(key).any():
            raise ValueError(f"rater {rater!r} has duplicate patient x session rows")
        part = part.astype({m: float for m in measures}).astype({"patient_id": str})
        part["session"] = part["session"].astype(int)
        parts.append(part.rename(columns={m: f"{m}_{rater}" for m in measures}))
    return parts[0].merge(parts[1], on=key, how="inner").sort_values(key, ignore_index=True)


def _row(
    pairs: pd.DataFrame, measure: str, scope: str, rater_a: str, rater_b: str, level: float
) -> dict[str, Any]:
    a = pairs[f"{measure}_{rater_a}"].to_numpy(dtype=float)
    b = pairs[f"{measure}_{rater_b}"].to_numpy(dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b, patients = a[keep], b[keep], pairs["patient_id"].to_numpy()[keep]
    row: dict[str, Any] = dict.fromkeys(AGREEMENT_COLUMNS, np.nan)
    row.update(measure=measure, scope=scope, n_pairs=int(len(a)))
    row["n_patients"] = int(len(set(patients)))
    if len(a) < 4:
        return row
    row.update(mean_a=float(a.mean()), mean_b=float(b.mean()))
    table = icc(np.column_stack([a, b]), level=level)
    for form, prefix in (("ICC(2,1)", "icc_a1"), ("ICC(3,1)", "icc_c1")):
        row[prefix] = table.loc[form, "estimate"]
        row[f"{prefix}_lower"] = table.loc[form, "lower"]
        row[f"{prefix}_upper"] = table.loc[form, "upper"]
    repeated = scope == "all sessions"
    ba = bland_altman(a, b, level=level, subjects=patients if repeated else None)
    row.update(
        mean_diff=ba["mean_diff"],
        mean_diff_lower=ba["mean_diff_ci"][0],
        mean_diff_upper=ba["mean_diff_ci"][1],
        sd_diff=ba["sd_diff"],
        loa_lower=ba["loa_lower"],
        loa_lower_ci_low=ba["loa_lower_ci"][0],
        loa_lower_ci_high=ba["loa_lower_ci"][1],
        loa_upper=ba["loa_upper"],
        loa_upper_ci_low=ba["loa_upper_ci"][0],
        loa_upper_ci_high=ba["loa_upper_ci"][1],
    )
    if repeated and ba.get("repeated_sd") is not None:
        row.update(
            loa_repeated_sd=ba["repeated_sd"],
            loa_repeated_lower=ba["repeated_loa_lower"],
            loa_repeated_upper=ba["repeated_loa_upper"],
        )
    if a.std() > 0 and b.std() > 0:
        r = pearson(a, b, level=level)
        row.update(pearson_r=r["r"], pearson_lower=r["lower"], pearson_upper=r["upper"])
    return row


def rater_agreement(
    scores: pd.DataFrame,
    rater_a: str = "client",
    rater_b: str = "therapist",
    measures: Sequence[str] = DEFAULT_MEASURES,
    level: float = 0.95,
    by_session: bool = True,
    min_pairs: int = 10,
) -> dict[str, Any]:
    """Agreement of two raters of the same sessions, per subscale and total.

    The unit is a patient x session rated by both. For every measure the table gives
    ICC(2,1) = McGraw & Wong's ICC(A,1) (absolute agreement: the client-therapist mean
    difference counts as disagreement) and ICC(3,1) = ICC(C,1) (consistency), each with its
    F-based CI (:func:`icc`); the mean difference ``rater_a - rater_b`` with Bland-Altman
    limits of agreement and their CIs (:func:`bland_altman`); and the Pearson correlation.

    Scope ``"all sessions"`` pools every session, so patients contribute several pairs and
    the CIs of that row are too narrow (pairs of one patient are correlated); its
    ``loa_repeated_*`` columns give the limits of agreement of Bland & Altman (2007) for
    repeated pairs. Scopes ``"session t"`` (with ``by_session``) use one pair per patient
    and so have valid CIs.

    Parameters
    ----------
    scores
        The scores table (docs/data-model.md): ``patient_id``, ``session``, ``rater``, the
        measures.
    rater_a, rater_b
        The two raters; differences are ``rater_a - rater_b``.
    measures
        Score columns to compare.
    level
        Confidence level.
    by_session
        Also give one row per session with at least ``min_pairs`` pairs.
    min_pairs
        Fewest complete pairs for an analysis (else the dataset is skipped).

    Returns
    -------
    dict
        ``status`` (``"ok"`` or ``"skipped"``), ``reason`` (why skipped, else None),
        ``raters``, ``n_pairs``, ``n_patients``, ``table`` (DataFrame with
        :data:`AGREEMENT_COLUMNS`; empty when skipped), ``pairs`` (the matched table),
        ``method`` (text).

    References
    ----------
    Shrout, P. E., & Fleiss, J. L. (1979). Psychological Bulletin, 86(2), 420-428.
    McGraw, K. O., & Wong, S. P. (1996). Psychological Methods, 1(1), 30-46.
    Bland, J. M., & Altman, D. G. (1986). The Lancet, 327(8476), 307-310.

    """
    result: dict[str, Any] = {
        "status": "skipped",
        "reason": None,
        "raters": [rater_a, rater_b],
        "n_pairs": 0,
        "n_patients": 0,
        "table": pd.DataFrame(columns=AGREEMENT_COLUMNS),
        "pairs": pd.DataFrame(),
        "method": (
            "patient x session pairs; ICC(2,1) = ICC(A,1) two-way random absolute agreement "
            "and ICC(3,1) = ICC(C,1) two-way mixed consistency (Shrout & Fleiss 1979; McGraw "
            "& Wong 1996) with F-based CIs; mean difference "
            f"{rater_a} - {rater_b} with Bland-Altman (1986) limits of agreement and CIs; "
            "repeated-pairs limits by Bland & Altman (2007); Pearson r with Fisher-z CI"
        ),
    }
    present = sorted(set(scores["rater"].dropna().astype(str))) if "rater" in scores else []
    absent = [r for r in (rater_a, rater_b) if r not in present]
    if absent:
        result["reason"] = (
            f"no {' or '.join(absent)} ratings in this dataset (raters present: "
            f"{', '.join(present) or 'none'}); agreement needs two raters of the same sessions"
        )
        return result
    pairs = match_raters(scores, rater_a, rater_b, measures)
    result["pairs"] = pairs
    result["n_pairs"] = int(len(pairs))
    result["n_patients"] = int(pairs["patient_id"].nunique())
    if len(pairs) < min_pairs:
        result["reason"] = (
            f"only {len(pairs)} sessions rated by both {rater_a} and {rater_b}, "
            f"fewer than {min_pairs}"
        )
        return result
    rows = [_row(pairs, m, "all sessions", rater_a, rater_b, level) for m in measures]
    if by_session:
        for session, part in pairs.groupby("session", sort=True):
            if len(part) >= min_pairs:
                rows += [
                    _row(part, m, f"session {session}", rater_a, rater_b, level) for m in measures
                ]
    result["table"] = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
    result["status"] = "ok"
    return result
