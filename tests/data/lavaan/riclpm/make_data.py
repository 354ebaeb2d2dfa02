"""A simulated alliance-symptom panel for the RI-CLPM references (issue 20).

400 patients, 5 sessions; alliance (client total mean, 1-5 scale) and symptoms (PHQ-9-like
points) follow an RI-CLPM with known parameters (``truth.json``): stable between-patient
levels (random intercepts, correlated -0.4), within-patient deviations with autoregressive
and cross-lagged paths (a session with better alliance than usual is followed by fewer
symptoms), a linear trend of the means (alliance rises, symptoms fall), dropout that depends
on the last observed symptoms (missing at random) and a few single missing scores. Rows of
sessions after dropout are absent (the long layout of the pipeline's tidy tables).

Run from the repository root:  .venv/bin/python tests/data/lavaan/riclpm/make_data.py
then:  Rscript tests/data/lavaan/riclpm/make_riclpm.R  (tests never call R)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
SEED = 20261125
TRUTH = {
    "n_patients": 400,
    "sessions": [1, 2, 3, 4, 5],
    "means": {"alliance": [3.8, 0.05], "symptoms": [15.0, -1.0]},
    "mean_model": "mean_t = level + slope * (session - 1)",
    "ri_sd": {"alliance": 0.5, "symptoms": 4.0},
    "ri_cor": -0.4,
    "wave1_sd": {"alliance": 0.35, "symptoms": 2.5},
    "wave1_cor": -0.2,
    "lags": {"ax": 0.3, "ay": 0.4, "cxy": -1.2, "cyx": -0.01},
    "lags_note": "wx_t = ax wx_{t-1} + cyx wy_{t-1} + u_t; wy_t = cxy wx_{t-1} + ay wy_{t-1} + v_t",
    "innovation_sd": {"alliance": 0.3, "symptoms": 2.2},
    "innovation_cor": -0.15,
    "dropout": "after session t (1..4): logit h = -3.2 + 0.12 (symptoms_t - 15)",
    "single_missing_share": 0.03,
}


def simulate(seed: int = SEED) -> pd.DataFrame:
    """The long table: patient, session, alliance, symptoms (NaN for a missing score)."""
    t = TRUTH
    rng = np.random.default_rng(seed)
    n, sessions = t["n_patients"], np.asarray(t["sessions"])
    k = len(sessions)

    def pair(sd: dict, cor: float, size: int) -> np.ndarray:
        sa, sy = sd["alliance"], sd["symptoms"]
        cov = [[sa**2, cor * sa * sy], [cor * sa * sy, sy**2]]
        return rng.multivariate_normal([0.0, 0.0], cov, size=size)

    ri = pair(t["ri_sd"], t["ri_cor"], n)
    w = np.zeros((n, k, 2))
    w[:, 0] = pair(t["wave1_sd"], t["wave1_cor"], n)
    lag = t["lags"]
    b = np.array([[lag["ax"], lag["cyx"]], [lag["cxy"], lag["ay"]]])
    for j in range(1, k):
        w[:, j] = w[:, j - 1] @ b.T + pair(t["innovation_sd"], t["innovation_cor"], n)
    step = sessions - sessions[0]
    mean_a = t["means"]["alliance"][0] + t["means"]["alliance"][1] * step
    mean_y = t["means"]["symptoms"][0] + t["means"]["symptoms"][1] * step
    alliance = mean_a + ri[:, [0]] + w[:, :, 0]
    symptoms = mean_y + ri[:, [1]] + w[:, :, 1]
    last = np.full(n, k)
    for j in range(k - 1):
        logit = -3.2 + 0.12 * (symptoms[:, j] - 15.0)
        leave = (rng.random(n) < 1 / (1 + np.exp(-logit))) & (last == k)
        last[leave] = j + 1
    alliance[rng.random((n, k)) < t["single_missing_share"]] = np.nan
    symptoms[rng.random((n, k)) < t["single_missing_share"]] = np.nan
    rows = [
        (f"P{i + 1:03d}", int(sessions[j]), round(alliance[i, j], 4), round(symptoms[i, j], 3))
        for i in range(n)
        for j in range(last[i])
    ]
    return pd.DataFrame(rows, columns=["patient", "session", "alliance", "symptoms"])


if __name__ == "__main__":
    simulate().to_csv(HERE / "panel_long.csv", index=False)
    (HERE / "truth.json").write_text(json.dumps(TRUTH, indent=2) + "\n")
