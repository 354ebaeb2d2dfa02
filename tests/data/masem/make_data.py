"""Item correlation matrices of six simulated WAI-SR samples for the MASEM references.

Writes ``wai_correlations.json`` next to this file: six samples (n from 120 to 420) of the
twelve WAI-SR items drawn from normal populations whose three correlated factors (Bond, Task,
Goal) have the demo's loadings and factor correlations (``data/demo/truth.json``), each
sample's loadings perturbed by N(0, 0.05) (so that the matrices are heterogeneous), and each
sample's Pearson correlation matrix with its size. ``make_references.R`` (lavaan 0.6-14,
metafor 3.8) computes the references from it; the tests never call R.

Run from the repository root:  .venv/bin/python tests/data/masem/make_data.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SEED = 20261125
ITEMS = [f"wai_{k:02d}" for k in range(1, 13)]
FACTORS = {
    "bond": ["wai_03", "wai_05", "wai_07", "wai_09"],
    "task": ["wai_01", "wai_02", "wai_10", "wai_12"],
    "goal": ["wai_04", "wai_06", "wai_08", "wai_11"],
}
SIZES = [120, 180, 240, 300, 360, 420]


def main() -> None:
    truth = json.loads((HERE.parents[2] / "data" / "demo" / "truth.json").read_text())["wai_sr"]
    loadings = truth["loadings"]
    phi_named = truth["factor_correlations"]
    names = list(FACTORS)
    phi = np.eye(3)
    for key, value in phi_named.items():
        a, b = key.split("_")
        phi[names.index(a), names.index(b)] = phi[names.index(b), names.index(a)] = value
    rng = np.random.default_rng(SEED)
    studies = []
    for g, n in enumerate(SIZES):
        lam = np.zeros((12, 3))
        for f, items in FACTORS.items():
            for item in items:
                value = loadings[item] + rng.normal(0.0, 0.05)
                lam[ITEMS.index(item), names.index(f)] = min(value, 0.95)
        sigma = lam @ phi @ lam.T
        sigma[np.diag_indices(12)] = 1.0
        x = rng.multivariate_normal(np.zeros(12), sigma, size=n)
        r = np.corrcoef(x, rowvar=False)
        studies.append({"study": f"sample_{g + 1}", "n": n, "R": r.tolist()})
    out = {"variables": ITEMS, "seed": SEED, "studies": studies}
    (HERE / "wai_correlations.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
