"""The Monte Carlo error a two-stage model inherits from the first stage's posterior means."""

import numpy as np
import pytest

from alliance.process.bayes_models import plug_in_mcse


def _ols(means, y):
    x = np.column_stack([np.ones(len(y)), (means - means.mean()) / means.std(ddof=1)])
    return np.linalg.lstsq(x, y, rcond=None)[0][1]


def test_batch_means_predict_the_spread_of_reruns(rng):
    n_patients, n_draws, reruns = 60, 2000, 300
    truth = rng.normal(0.0, 0.05, n_patients)  # little spread between patients: sensitive
    y = 2.0 * (truth - truth.mean()) / truth.std(ddof=1) + rng.normal(0.0, 1.0, n_patients)

    def design(means):
        m = means["level"]
        return {"b_level": (m - m.mean()) / m.std(ddof=1)}, y

    slopes, predicted = [], []
    for _ in range(reruns):
        # a first stage's draws: autocorrelated (AR(1), rho .5) around each patient's mean
        noise = rng.normal(0.0, 0.5, (n_draws, n_patients))
        for t in range(1, n_draws):
            noise[t] += 0.5 * noise[t - 1]
        draws = truth + noise
        slopes.append(_ols(draws.mean(axis=0), y))
        predicted.append(plug_in_mcse({"level": draws}, design)["b_level"])
    observed = np.std(slopes, ddof=1)
    # the batch-means SE matches the spread of the reruns (20 batches: about +-16% per run)
    assert np.mean(predicted) == pytest.approx(observed, rel=0.15)
    assert observed > 0.02  # the plug-in error is not negligible here


def test_too_few_draws_for_the_batches():
    with pytest.raises(ValueError, match="at least 2 batches"):
        plug_in_mcse({"level": np.zeros((5, 3))}, lambda m: ({}, np.zeros(3)), batches=10)
