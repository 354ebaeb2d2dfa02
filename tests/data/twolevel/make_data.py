"""Simulated two-level WAI-like items for the two-level CFA references (issue 17 part 3).

Sessions within patients: 12 items (wai_01 ... wai_12, the WAI-SR key: task, goal, bond) with
three correlated within-patient (session-level) factors and three correlated between-patient
factors (between factors correlate .8, so a one-factor between model fits roughly too).
``balanced.csv``: 150 patients x 6 sessions; ``unbalanced.csv``: 150 patients with 2-8
sessions each (uniform). Columns ``patient``, ``session`` and the items (continuous), then two
variables of one level only, drawn afterwards from their own generator (the items above do not
change with them): ``x_w``, a session-level variable without a patient part (within-only:
0.5 x the session's deviation of wai_01 from its patient mean plus noise), and ``z_b``, a
patient-level variable (between-only: one value per patient, 0.6 x the patient's mean of
wai_03 plus noise).

Run from the repository root:  .venv/bin/python tests/data/twolevel/make_data.py
then:  Rscript tests/data/twolevel/make_twolevel.R  (tests never call R)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
SEED = 20261203
FACTORS = {
    "task": ["wai_01", "wai_02", "wai_10", "wai_12"],
    "goal": ["wai_04", "wai_06", "wai_08", "wai_11"],
    "bond": ["wai_03", "wai_05", "wai_07", "wai_09"],
}
ITEMS = [f"wai_{i:02d}" for i in range(1, 13)]
TRUTH = {
    "within_loadings": [0.8, 0.7, 0.75, 0.65],
    "within_residual_var": [0.4, 0.5, 0.45, 0.55],
    "within_factor_cor": 0.5,
    "between_loadings": [0.6, 0.55, 0.5, 0.45],
    "between_residual_var": [0.05, 0.08, 0.06, 0.1],
    "between_factor_cor": 0.8,
    "item_means": [3.5 + 0.1 * (i % 4) for i in range(12)],
}


def _loadings(values: list[float]) -> np.ndarray:
    lam = np.zeros((12, 3))
    for f, items in enumerate(FACTORS.values()):
        for k, item in enumerate(items):
            lam[ITEMS.index(item), f] = values[k]
    return lam


def simulate(sizes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """One row per session: patient, session and the 12 items."""
    lam_w, lam_b = _loadings(TRUTH["within_loadings"]), _loadings(TRUTH["between_loadings"])
    res_w = np.zeros(12)
    res_b = np.zeros(12)
    for items in FACTORS.values():
        for k, item in enumerate(items):
            res_w[ITEMS.index(item)] = TRUTH["within_residual_var"][k]
            res_b[ITEMS.index(item)] = TRUTH["between_residual_var"][k]
    phi_w = np.full((3, 3), TRUTH["within_factor_cor"]) + (1 - TRUTH["within_factor_cor"]) * np.eye(
        3
    )
    phi_b = np.full((3, 3), TRUTH["between_factor_cor"]) + (
        1 - TRUTH["between_factor_cor"]
    ) * np.eye(3)
    sigma_w = lam_w @ phi_w @ lam_w.T + np.diag(res_w)
    sigma_b = lam_b @ phi_b @ lam_b.T + np.diag(res_b)
    mu = np.asarray(TRUTH["item_means"])
    rows = []
    for j, n in enumerate(sizes, start=1):
        b = rng.multivariate_normal(mu, sigma_b)
        w = rng.multivariate_normal(np.zeros(12), sigma_w, size=int(n))
        for s in range(int(n)):
            rows.append([j, s + 1, *np.round(b + w[s], 6)])
    return pd.DataFrame(rows, columns=["patient", "session", *ITEMS])


def one_level_variables(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Add ``x_w`` (within-only) and ``z_b`` (between-only) to a simulated table."""
    out = frame.copy()
    by = out.groupby("patient")
    within = out["wai_01"] - by["wai_01"].transform("mean")
    out["x_w"] = np.round(0.5 * within + rng.normal(0, 0.5, len(out)), 6)
    patient_mean = by["wai_03"].transform("mean")
    noise = pd.Series(rng.normal(0, 0.4, out["patient"].nunique()),
                      index=by.size().index)  # fmt: skip
    out["z_b"] = np.round(0.6 * patient_mean + out["patient"].map(noise), 6)
    return out


def main() -> None:
    rng = np.random.default_rng(SEED)
    balanced = simulate(np.full(150, 6), rng)
    unbalanced = simulate(rng.integers(2, 9, size=150), rng)
    extra = np.random.default_rng(SEED + 1)
    one_level_variables(balanced, extra).to_csv(HERE / "balanced.csv", index=False)
    one_level_variables(unbalanced, extra).to_csv(HERE / "unbalanced.csv", index=False)
    (HERE / "truth.json").write_text(
        json.dumps({"seed": SEED, "factors": FACTORS, **TRUTH}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
