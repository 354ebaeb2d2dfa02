"""Simulated WAI-SR-like answers for the eRm partial credit model references (issue 18).

Eight items on the 1-5 scale answered by 400 respondents from the Rasch partial credit model
(``truth.json``: person locations N(0.8, 1.2^2), item thresholds; item w4 has reversed
thresholds 2 and 3, the pattern Rasch analyses of the WAI report for a middle category, so its
disorder must be flagged). ``pcm_items.csv`` is complete; ``pcm_items_missing.csv`` is the same
with 4% of answers deleted at random (CML by missing-data pattern, as eRm does).

Run from the repository root:  .venv/bin/python tests/data/erm/make_data.py
then:  Rscript tests/data/erm/make_erm.R  (tests never call R)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
SEED = 20261125
THRESHOLDS = {
    "w1": [-2.0, -1.0, 0.0, 1.0],
    "w2": [-1.6, -0.8, 0.3, 1.4],
    "w3": [-2.4, -1.2, -0.4, 0.8],
    "w4": [-1.5, 0.6, -0.3, 1.1],
    "w5": [-1.8, -0.6, 0.2, 1.6],
    "w6": [-2.2, -1.4, -0.2, 0.6],
    "w7": [-1.2, -0.5, 0.5, 1.8],
    "w8": [-2.6, -1.6, -0.6, 0.4],
}
PERSONS = {"n": 400, "mean": 0.8, "sd": 1.2}


def simulate(seed: int = SEED) -> tuple[pd.DataFrame, np.ndarray]:
    """Answers 1-5 from the PCM, and the true person locations."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(PERSONS["mean"], PERSONS["sd"], PERSONS["n"])
    out = {}
    for item, delta in THRESHOLDS.items():
        # log-numerator of category h: sum_{l <= h} (theta - delta_l)
        steps = theta[:, None] - np.asarray(delta)[None, :]
        logits = np.hstack([np.zeros((theta.size, 1)), np.cumsum(steps, axis=1)])
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        u = rng.random(theta.size)
        out[item] = 1 + (u[:, None] > np.cumsum(prob, axis=1)[:, :-1]).sum(axis=1)
    return pd.DataFrame(out), theta


def main() -> None:
    data, theta = simulate()
    data.to_csv(HERE / "pcm_items.csv", index=False)
    rng = np.random.default_rng(SEED + 1)
    data.mask(rng.random(data.shape) < 0.04).to_csv(HERE / "pcm_items_missing.csv", index=False)
    truth = {"seed": SEED, "persons": PERSONS, "thresholds": THRESHOLDS, "scale": [1, 5]}
    (HERE / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
