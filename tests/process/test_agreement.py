"""Agreement statistics against published worked examples and hand computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alliance.process.agreement import (
    AGREEMENT_COLUMNS,
    bland_altman,
    icc,
    match_raters,
    pearson,
    rater_agreement,
)

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges. Published: ICC(1,1) = .17,
# ICC(2,1) = .29, ICC(3,1) = .71. CIs as printed by psych::ICC (help page example) and,
# for ICC(1,1), by Stata's `icc rating target` (webuse judges): .1657418 [-.1329323, .7225601].
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
)
# McGraw & Wong (1996), Table 6 data (10 targets x 2 measurements), psych::ICC output.
MCGRAW_WONG = np.array(
    [[103, 119], [82, 65], [116, 106], [102, 102], [99, 105], [98, 100], [104, 107], [62, 85]]
    + [[97, 101], [107, 110]]
)


def test_icc_shrout_fleiss_table2():
    table = icc(SHROUT_FLEISS)
    assert round(table.loc["ICC(1,1)", "estimate"], 2) == 0.17
    assert round(table.loc["ICC(2,1)", "estimate"], 2) == 0.29
    assert round(table.loc["ICC(3,1)", "estimate"], 2) == 0.71
    # Stata, 7 digits
    assert table.loc["ICC(1,1)", "estimate"] == pytest.approx(0.1657418, abs=1e-7)
    assert table.loc["ICC(1,1)", "lower"] == pytest.approx(-0.1329323, abs=1e-7)
    assert table.loc["ICC(1,1)", "upper"] == pytest.approx(0.7225601, abs=1e-7)
    # psych::ICC, printed to 3 (lower) and 2 (upper) decimals
    assert table.loc["ICC(2,1)", "lower"] == pytest.approx(0.019, abs=5e-4)
    assert table.loc["ICC(2,1)", "upper"] == pytest.approx(0.76, abs=5e-3)
    assert table.loc["ICC(3,1)", "lower"] == pytest.approx(0.342, abs=5e-4)
    assert table.loc["ICC(3,1)", "upper"] == pytest.approx(0.95, abs=5e-3)
    assert table.loc["ICC(3,1)", "f"] == pytest.approx(11.03, abs=5e-3)
    assert table.loc["ICC(2,1)", "df2"] == 15
    assert table.loc["ICC(1,1)", "df2"] == 18
    assert list(table["mcgraw_wong"]) == ["ICC(1)", "ICC(A,1)", "ICC(C,1)"]


def test_icc_mcgraw_wong_two_raters():
    table = icc(MCGRAW_WONG)
    expected = {
        "ICC(1,1)": (0.722, 0.241, 0.922),
        "ICC(2,1)": (0.720, 0.228, 0.922),
        "ICC(3,1)": (0.714, 0.197, 0.920),
    }
    for form, (est, lo, up) in expected.items():
        assert table.loc[form, "estimate"] == pytest.approx(est, abs=5e-4)
        assert table.loc[form, "lower"] == pytest.approx(lo, abs=5e-4)
        assert table.loc[form, "upper"] == pytest.approx(up, abs=5e-4)


def test_icc_two_raters_constant_shift(rng):
    # a constant rater offset leaves consistency (3,1) untouched but lowers agreement (2,1)
    truth = rng.normal(size=200)
    a = truth + rng.normal(scale=0.5, size=200)
    b = truth + rng.normal(scale=0.5, size=200)
    base = icc(np.column_stack([a, b]))
    shifted = icc(np.column_stack([a, b + 1.0]))
    assert shifted.loc["ICC(3,1)", "estimate"] == pytest.approx(base.loc["ICC(3,1)", "estimate"])
    assert shifted.loc["ICC(2,1)", "estimate"] < base.loc["ICC(2,1)", "estimate"] - 0.2
    assert 0.7 < base.loc["ICC(3,1)", "estimate"] < 0.9  # population value 1 / 1.25 = .8


@pytest.mark.parametrize(
    "bad", [np.ones((1, 3)), np.ones(5), np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 2.0]])]
)
def test_icc_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="got"):
        icc(bad)


def test_icc_rejects_no_residual_variance():
    with pytest.raises(ValueError, match="no residual variance"):
        icc(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))


def test_bland_altman_hand_computation():
    a = np.array([10.0, 12.0, 9.0, 15.0, 11.0])
    b = np.array([9.0, 12.5, 7.0, 14.0, 11.5])
    d = a - b  # 1, -0.5, 2, 1, -0.5: mean 0.6, sd sqrt(1.675)
    res = bland_altman(a, b)
    sd = math.sqrt(((d - 0.6) ** 2).sum() / 4)
    assert res["n"] == 5
    assert res["mean_diff"] == pytest.approx(0.6)
    assert res["sd_diff"] == pytest.approx(sd)
    z, t = 1.959963984540054, 2.7764451051977987  # qnorm(.975), qt(.975, 4)
    assert res["loa_lower"] == pytest.approx(0.6 - z * sd)
    assert res["loa_upper"] == pytest.approx(0.6 + z * sd)
    assert res["mean_diff_ci"] == pytest.approx(
        [0.6 - t * sd / math.sqrt(5), 0.6 + t * sd / 5**0.5]
    )
    se = math.sqrt(3 * sd**2 / 5)
    assert res["loa_upper_ci"] == pytest.approx([0.6 + z * sd - t * se, 0.6 + z * sd + t * se])
    assert res["loa_lower_ci"] == pytest.approx([0.6 - z * sd - t * se, 0.6 - z * sd + t * se])


def test_bland_altman_drops_missing_and_checks_length():
    res = bland_altman([1.0, 2.0, np.nan, 4.0, 5.0], [1.5, 2.0, 3.0, np.nan, 4.0])
    assert res["n"] == 3
    with pytest.raises(ValueError, match="equal length"):
        bland_altman([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 3"):
        bland_altman([1.0, 2.0], [1.0, 3.0])


def test_bland_altman_repeated_pairs(rng):
    # subject-level difference (SD .6) + pair-level noise (SD .3): total SD sqrt(.45)
    n_sub, m = 400, 6
    sub_eff = np.repeat(rng.normal(scale=0.6, size=n_sub), m)
    d = 0.2 + sub_eff + rng.normal(scale=0.3, size=n_sub * m)
    subjects = np.repeat(np.arange(n_sub), m)
    res = bland_altman(d, np.zeros_like(d), subjects=subjects)
    assert res["n_subjects"] == n_sub
    assert res["repeated_sd_within"] == pytest.approx(0.3, rel=0.05)
    assert res["repeated_sd_between"] == pytest.approx(0.6, rel=0.08)
    assert res["repeated_sd"] == pytest.approx(math.sqrt(0.45), rel=0.06)
    # balanced design: the ANOVA estimator equals the textbook balanced formula
    frame = pd.DataFrame({"s": subjects, "d": d})
    ms_w = frame.groupby("s")["d"].var(ddof=1).mean()
    ms_b = m * frame.groupby("s")["d"].mean().var(ddof=1)
    assert res["repeated_sd"] ** 2 == pytest.approx((ms_b - ms_w) / m + ms_w)


def test_pearson_fisher_ci(rng):
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(size=50)
    res = pearson(x, y)
    r = stats.pearsonr(x, y)
    assert res["r"] == pytest.approx(r.statistic)
    ci = r.confidence_interval(0.95)
    assert res["lower"] == pytest.approx(ci.low)
    assert res["upper"] == pytest.approx(ci.high)
    with pytest.raises(ValueError, match="constant"):
        pearson(np.ones(10), x[:10])


def _scores(rng: np.random.Generator, raters: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for p in range(60):
        level = rng.normal(4, 0.5)
        for s in range(1, 4):
            state = rng.normal(0, 0.2)
            for rater in raters:
                offset = -0.3 if rater == "therapist" else 0.0
                row = {"patient_id": f"P{p:02d}", "session": s, "rater": rater}
                for m in ("task_mean", "goal_mean", "bond_mean", "total_mean"):
                    row[m] = level + state + offset + rng.normal(0, 0.2)
                rows.append(row)
    out = pd.DataFrame(rows)
    out["session"] = out["session"].astype("Int64")
    return out


def test_rater_agreement_table(rng):
    res = rater_agreement(_scores(rng, ("client", "therapist")))
    assert res["status"] == "ok"
    assert res["reason"] is None
    table = res["table"]
    assert list(table.columns) == AGREEMENT_COLUMNS
    assert set(table["scope"]) == {"all sessions", "session 1", "session 2", "session 3"}
    total = table[(table["measure"] == "total_mean") & (table["scope"] == "all sessions")].iloc[0]
    assert total["n_pairs"] == 180
    assert total["n_patients"] == 60
    assert total["mean_diff"] == pytest.approx(0.3, abs=0.06)
    assert total["icc_c1"] > total["icc_a1"]
    assert total["loa_lower"] < total["mean_diff"] < total["loa_upper"]
    assert np.isfinite(total["loa_repeated_sd"])
    session = table[(table["scope"] == "session 1")].iloc[0]
    assert np.isnan(session["loa_repeated_sd"])


def test_rater_agreement_skips_without_second_rater(rng):
    res = rater_agreement(_scores(rng, ("client",)))
    assert res["status"] == "skipped"
    assert "no therapist ratings" in res["reason"]
    assert res["table"].empty


def test_match_raters_rejects_duplicates(rng):
    scores = _scores(rng, ("client", "therapist"))
    with pytest.raises(ValueError, match="duplicate"):
        match_raters(pd.concat([scores, scores.iloc[:1]]))


def test_demo_site_a_agreement_matches_generating_model(demo_results):
    """site_a: therapist latent = -.4 + .4 x client latent + unique part (truth.json).

    So clients rate higher than therapists, and the observed client-therapist correlation
    is about .4 x sqrt(reliability_client x reliability_therapist), roughly .35.
    """
    path = demo_results("site_a") / "scores" / "scores.parquet"
    res = rater_agreement(pd.read_parquet(path))
    total = res["table"].set_index(["measure", "scope"]).loc[("total_mean", "all sessions")]
    assert res["status"] == "ok"
    assert total["mean_diff_lower"] > 0
    assert 0.28 < total["pearson_r"] < 0.42
    assert total["icc_a1"] < total["icc_c1"]
