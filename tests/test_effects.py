import numpy as np
import pandas as pd
import pytest

from alliance.meta.effects import dataset_effect, partial_correlation


def test_partial_correlation_recovers_known_value(rng):
    # x, y, z multivariate normal with r_xy = .5, r_xz = .4, r_yz = .6:
    # r_xy.z = (.5 - .24) / sqrt(.84 * .64) = .3546
    cov = np.array([[1, 0.5, 0.4], [0.5, 1, 0.6], [0.4, 0.6, 1]])
    x, y, z = rng.multivariate_normal(np.zeros(3), cov, size=200_000).T
    expected = (0.5 - 0.4 * 0.6) / np.sqrt((1 - 0.4**2) * (1 - 0.6**2))
    assert partial_correlation(x, y, z) == pytest.approx(expected, abs=0.005)


def test_partial_correlation_equals_closed_form(rng):
    x, y, z = rng.normal(size=(3, 50))
    y = y + x
    r = np.corrcoef([x, y, z])
    closed = (r[0, 1] - r[0, 2] * r[1, 2]) / np.sqrt((1 - r[0, 2] ** 2) * (1 - r[1, 2] ** 2))
    assert partial_correlation(x, y, z) == pytest.approx(closed, abs=1e-12)


def test_dataset_effect_sign_and_rule(rng):
    n = 400
    alliance = rng.normal(size=n)
    baseline = rng.normal(15, 5, size=n)
    post = baseline - 3 - 2 * alliance + rng.normal(0, 3, size=n)  # better alliance, lower PHQ
    ids = [f"p{i}" for i in range(n)]
    scores = pd.DataFrame(
        {"patient_id": ids, "session": 3, "rater": "client", "total_mean": alliance}
    )
    outcomes = pd.concat(
        [
            pd.DataFrame({"patient_id": ids, "session": 1, "value": baseline}),
            pd.DataFrame({"patient_id": ids, "session": 6, "value": post + 50}),  # not last
            pd.DataFrame({"patient_id": ids, "session": 8, "value": post}),
        ]
    ).assign(timepoint="session", measure="phq9")
    effect = dataset_effect(scores, outcomes, alliance_session=3)
    expected = -partial_correlation(alliance, post, baseline)
    assert effect["n"] == n
    assert effect["r"] == pytest.approx(expected, abs=1e-12)
    assert effect["r"] > 0.3
    few = dataset_effect(scores.head(3), outcomes, alliance_session=3)
    assert few["r"] is None
    assert "too few" in few["status"]


@pytest.mark.parametrize(
    ("measure", "better", "slope"),
    [("phq9", "lower", -2.0), ("core10", "lower", -2.0), ("ors", "higher", 2.0)],
)
def test_dataset_effect_sign_follows_the_measure(rng, measure, better, slope):
    """Better alliance with a better outcome is a positive r, whichever way the measure runs.

    Known truth: post = baseline + slope * alliance + noise with the slope in the measure's
    better direction, so the population partial correlation is slope / sqrt(slope^2 + 9),
    .555 in size (200,000 patients: within .01).
    """
    n = 200_000
    alliance = rng.normal(size=n)
    baseline = rng.normal(20, 5, size=n)
    post = baseline + slope * alliance + rng.normal(0, 3, size=n)
    ids = np.arange(n).astype(str)
    scores = pd.DataFrame(
        {"patient_id": ids, "session": 3, "rater": "client", "total_mean": alliance}
    )
    outcomes = pd.concat(
        [
            pd.DataFrame({"patient_id": ids, "session": 1, "value": baseline}),
            pd.DataFrame({"patient_id": ids, "session": 8, "value": post}),
        ]
    ).assign(timepoint="session", measure=measure)
    effect = dataset_effect(scores, outcomes, alliance_session=3, measure=measure)
    assert effect["r"] == pytest.approx(2 / np.sqrt(13), abs=0.01)
    assert f"with {better} last observed {measure}" in effect["definition"]


def test_dataset_effect_of_an_unknown_measure_says_its_assumption(rng):
    n = 50
    ids = [f"p{i}" for i in range(n)]
    scores = pd.DataFrame(
        {"patient_id": ids, "session": 3, "rater": "client", "total_mean": rng.normal(size=n)}
    )
    outcomes = pd.concat(
        [
            pd.DataFrame({"patient_id": ids, "session": 1, "value": rng.normal(size=n)}),
            pd.DataFrame({"patient_id": ids, "session": 8, "value": rng.normal(size=n)}),
        ]
    ).assign(timepoint="session", measure="bdi2")
    effect = dataset_effect(scores, outcomes, alliance_session=3, measure="bdi2")
    assert "bdi2 is not a built-in measure: taken as lower is better" in effect["definition"]
