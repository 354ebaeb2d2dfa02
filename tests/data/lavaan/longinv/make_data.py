"""Simulated three-wave alliance items for the longitudinal invariance references (issue 17).

300 patients answer six items (bond b1-b3, task t1-t3) at sessions 1, 3 and 6. Two
correlated factors per session with autocorrelated factor scores and rising means;
loadings and intercepts are the same at every session (invariant truth) except the
intercept of t3, which rises by 0.25 at session 6 (one non-invariant intercept for the
scalar step to find); each item's residual is autocorrelated over the sessions (the
residual covariances measEq.syntax adds). Some patients miss session 3 or drop out before
session 6 (missing at random on their earlier bond score); their rows are absent (long layout).
``longinv_continuous.csv`` holds the continuous items, ``longinv_ordinal.csv`` the same
latent responses cut into 5 categories (1-5) at fixed thresholds.

Run from the repository root:  .venv/bin/python tests/data/lavaan/longinv/make_data.py
then:  Rscript tests/data/lavaan/longinv/make_longinv.R  (tests never call R)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
SEED = 20261217
TRUTH = {
    "n_patients": 300,
    "sessions": [1, 3, 6],
    "items": {"bond": ["b1", "b2", "b3"], "task": ["t1", "t2", "t3"]},
    "loadings": [0.8, 0.7, 0.75, 0.8, 0.65, 0.7],
    "intercepts": [0.0, 0.1, -0.1, 0.0, 0.05, -0.05],
    "t3_intercept_shift_session_6": 0.25,
    "residual_var": [0.36, 0.51, 0.44, 0.36, 0.58, 0.51],
    "residual_autocorrelation": 0.3,
    "factor_means": {"bond": [0.0, 0.2, 0.35], "task": [0.0, 0.15, 0.3]},
    "factor_correlation_within_session": 0.6,
    "factor_autocorrelation": 0.7,
    "thresholds_ordinal": [-1.2, -0.4, 0.4, 1.2],
    "missing": "session 3 absent with p = 0.06; dropout before session 6 with "
    "logit p = -2.2 - 0.8 * bond score at session 1",
}


def simulate(seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long tables (continuous, ordinal): patient, session, b1..t3."""
    t = TRUTH
    rng = np.random.default_rng(seed)
    n, sessions = t["n_patients"], t["sessions"]
    k = len(sessions)
    # factor scores: (bond_1, task_1, bond_3, task_3, bond_6, task_6)
    r, a = t["factor_correlation_within_session"], t["factor_autocorrelation"]
    cov = np.zeros((2 * k, 2 * k))
    for i in range(2 * k):
        for j in range(2 * k):
            same_factor = i % 2 == j % 2
            lag = abs(i // 2 - j // 2)
            cov[i, j] = (1.0 if same_factor else r) * (a**lag if lag else 1.0)
    means = np.ravel(np.column_stack([t["factor_means"]["bond"], t["factor_means"]["task"]]))
    eta = rng.multivariate_normal(means, cov, size=n)
    lam = np.asarray(t["loadings"])
    nu = np.asarray(t["intercepts"])
    theta = np.asarray(t["residual_var"])
    rho = t["residual_autocorrelation"]
    ar = np.array([[1.0, rho, rho], [rho, 1.0, rho], [rho, rho, 1.0]])
    items = [i for v in t["items"].values() for i in v]
    ystar = np.zeros((n, k, len(items)))
    for m in range(len(items)):
        e = rng.multivariate_normal(np.zeros(k), theta[m] * ar, size=n)
        f = 0 if m < 3 else 1
        for w in range(k):
            shift = t["t3_intercept_shift_session_6"] if (items[m] == "t3" and w == 2) else 0.0
            ystar[:, w, m] = nu[m] + shift + lam[m] * eta[:, 2 * w + f] + e[:, w]
    absent = np.zeros((n, k), dtype=bool)
    absent[:, 1] = rng.random(n) < 0.06
    logit = -2.2 - 0.8 * eta[:, 0]
    absent[:, 2] = rng.random(n) < 1 / (1 + np.exp(-logit))
    cuts = np.asarray(t["thresholds_ordinal"])
    cont, ordi = [], []
    for i in range(n):
        for w in range(k):
            if absent[i, w]:
                continue
            pid, s = f"P{i + 1:03d}", sessions[w]
            cont.append([pid, s, *np.round(ystar[i, w], 4)])
            ordi.append([pid, s, *(1 + np.searchsorted(cuts, ystar[i, w])).tolist()])
    cols = ["patient", "session", *items]
    return pd.DataFrame(cont, columns=cols), pd.DataFrame(ordi, columns=cols)


if __name__ == "__main__":
    continuous, ordinal = simulate()
    continuous.to_csv(HERE / "longinv_continuous.csv", index=False)
    ordinal.to_csv(HERE / "longinv_ordinal.csv", index=False)
    (HERE / "truth.json").write_text(json.dumps({"seed": SEED, **TRUTH}, indent=2) + "\n")
