"""Simulated bifactor data for the ESEM and bifactor-index references (issue 17).

Writes ``bifactor_sim.csv`` next to this file: 800 respondents, twelve continuous items named
as the WAI-SR's (``wai_01`` ... ``wai_12``) and keyed as it is (Bond 3, 5, 7, 9; Task 1, 2, 10,
12; Goal 4, 6, 8, 11; Hatcher & Gillaspy 2006), drawn from a bifactor model with the loadings
of ``TRUTH`` (general factor and three orthogonal specific factors, unit variances, residual
variances 1 - communality, so every item has variance 1 in the population). The file is the
data of ``make_esem.R`` and ``make_bifactor.R``; the truth is used by the tests.

Run from the repository root:  .venv/bin/python tests/data/lavaan/esem/make_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
KEY = {"bond": [3, 5, 7, 9], "task": [1, 2, 10, 12], "goal": [4, 6, 8, 11]}
ITEMS = [f"wai_{i:02d}" for i in range(1, 13)]
#: general and specific loadings of each item (population values)
GENERAL = [0.70, 0.65, 0.60, 0.72, 0.55, 0.68, 0.62, 0.66, 0.58, 0.64, 0.70, 0.60]
SPECIFIC = [0.40, 0.45, 0.50, 0.35, 0.45, 0.40, 0.40, 0.30, 0.50, 0.35, 0.45, 0.40]
N = 800
SEED = 20240517


def loadings() -> np.ndarray:
    """The population loading matrix (items x [general, bond, task, goal])."""
    lam = np.zeros((12, 4))
    lam[:, 0] = GENERAL
    for j, items in enumerate(KEY.values(), start=1):
        for i in items:
            lam[i - 1, j] = SPECIFIC[i - 1]
    return lam


def simulate() -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    lam = loadings()
    theta = 1.0 - np.sum(lam**2, axis=1)
    eta = rng.standard_normal((N, 4))
    eps = rng.standard_normal((N, 12)) * np.sqrt(theta)
    x = eta @ lam.T + eps
    return pd.DataFrame(np.round(x, 6), columns=ITEMS)


if __name__ == "__main__":
    simulate().to_csv(HERE / "bifactor_sim.csv", index=False)
    print(f"wrote {HERE / 'bifactor_sim.csv'}")
