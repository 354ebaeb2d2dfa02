"""Bifactor indices (issue 17, part 2): the known truth, semTools 0.5-6 and lavaan 0.6-14.

* Population truth: data whose sample covariance matrix is exactly the population matrix of
  ``tests/data/lavaan/esem/make_data.py`` recover the true loadings, so every index must equal
  its value computed here from the true loadings by Rodriguez, Reise & Haviland's (2016)
  formulas (tolerance 1e-6).
* ``tests/data/lavaan/bifactor/bifactor_indices.json`` (``make_bifactor.R``): omega_total,
  omega_h and omega_hs from ``semTools::compRelSEM`` (ML, MLR; WLSMV on five categories with
  ``ord.scale = FALSE``), ECV, PUC and H by their formulas from lavaan's standardized
  loadings (tolerance 1e-5 absolute; measured: at most 1.3e-6).
"""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import LAVAAN

from alliance.sem.api import fit_cfa
from alliance.sem.bifactor import bifactor_indices
from alliance.sem.fitting import fit_model
from alliance.sem.syntax import builtin_models

SPEC = importlib.util.spec_from_file_location("make_data", LAVAAN / "esem" / "make_data.py")
assert SPEC is not None and SPEC.loader is not None
TRUTH = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(TRUTH)
REF_FILE = LAVAAN / "bifactor" / "bifactor_indices.json"


class Key:
    """An instrument with the WAI-SR key (what builtin_models reads)."""

    factors = {f: [f"wai_{i:02d}" for i in items] for f, items in TRUTH.KEY.items()}
    items = [i for v in factors.values() for i in v]


BIFACTOR = builtin_models(Key())["bifactor"]


def exact_sample(sigma: np.ndarray, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` rows whose covariance matrix (divisor n) is exactly ``sigma``."""
    z = rng.standard_normal((n, sigma.shape[0]))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / n)).T
    x = z @ np.linalg.cholesky(sigma).T
    return pd.DataFrame(x, columns=TRUTH.ITEMS)


def by_hand(lam: np.ndarray) -> dict:
    """Rodriguez, Reise & Haviland (2016) from standardized loadings [general, specifics]."""
    theta = 1.0 - np.sum(lam**2, axis=1)
    groups = [np.flatnonzero(lam[:, j]) for j in range(1, lam.shape[1])]
    total = sum(lam[:, j].sum() ** 2 for j in range(lam.shape[1])) + theta.sum()
    hs = []
    for j, idx in enumerate(groups, start=1):
        var = lam[idx, 0].sum() ** 2 + lam[idx, j].sum() ** 2 + theta[idx].sum()
        hs.append(lam[idx, j].sum() ** 2 / var)
    h = [1 / (1 + 1 / np.sum(lam[:, j] ** 2 / (1 - lam[:, j] ** 2))) for j in range(4)]
    return {
        "omega_total": (total - theta.sum()) / total,
        "omega_h": lam[:, 0].sum() ** 2 / total,
        "omega_hs": hs,
        "ecv": np.sum(lam[:, 0] ** 2) / np.sum(lam**2),
        "puc": 1 - sum(len(g) * (len(g) - 1) for g in groups) / (12 * 11),
        "h": h,
    }


def test_indices_equal_the_population_values(rng):
    lam = TRUTH.loadings()
    sigma = lam @ lam.T + np.diag(1.0 - np.sum(lam**2, axis=1))
    out = fit_cfa(exact_sample(sigma, 5000, rng), BIFACTOR)
    rel = out["reliability"]
    want = by_hand(lam)
    assert rel["general_factor"] == "general"
    for k in ("omega_total", "omega_h", "ecv", "puc"):
        assert rel[k] == pytest.approx(want[k], abs=1e-6), k
    # the truth's columns are general, bond, task, goal (make_data.KEY's order)
    for j, f in enumerate(TRUTH.KEY, start=1):
        assert rel["omega_hs"][f] == pytest.approx(want["omega_hs"][j - 1], abs=1e-6), f
        assert rel["h"][f] == pytest.approx(want["h"][j], abs=1e-6), f
    assert rel["h"]["general"] == pytest.approx(want["h"][0], abs=1e-6)
    assert rel["puc"] == pytest.approx(1 - 3 * 12 / 132, abs=1e-12)  # 96 of 132 pairs
    assert "Rodriguez" in rel["bifactor_note"]


def test_no_indices_without_a_bifactor_structure():
    data = pd.read_csv(LAVAAN / "esem" / "bifactor_sim.csv")
    correlated = builtin_models(Key())["correlated"]
    assert bifactor_indices(fit_model(data, correlated)) == {}
    # specific factors that correlate are not a bifactor model either
    oblique = BIFACTOR.replace("bond ~~ 0*task", "bond ~~ task")
    assert bifactor_indices(fit_model(data, oblique)) == {}


@pytest.mark.skipif(not REF_FILE.exists(), reason="bifactor references not written")
@pytest.mark.parametrize("case", ["bifactor_ml", "bifactor_mlr", "bifactor_wlsmv"])
def test_indices_match_semtools_and_lavaan(case):
    ref = json.loads(REF_FILE.read_text())[case]
    wlsmv = ref["estimator"] == "WLSMV"
    file = "bifactor/bifactor_sim_5cat.csv" if wlsmv else "esem/bifactor_sim.csv"
    data = pd.read_csv(LAVAAN / file)
    out = fit_cfa(
        data,
        ref["model"],
        estimator=ref["estimator"],
        missing="listwise",
        ordered=True if wlsmv else None,
        orthogonal=ref["orthogonal"],
    )
    assert out["fit"]["chisq"] == pytest.approx(ref["fit"]["chisq"], rel=1e-3)
    rel, tol = out["reliability"], 1e-5
    comp = ref["compRelSEM"]
    assert rel["omega_total"] == pytest.approx(comp["total"], abs=tol)
    assert rel["omega_h"] == pytest.approx(comp["general"], abs=tol)
    for f in ("bond", "task", "goal"):
        assert rel["omega_hs"][f] == pytest.approx(comp[f], abs=tol), f
        assert rel["h"][f] == pytest.approx(ref["h"][f], abs=tol), f
    assert rel["h"]["general"] == pytest.approx(ref["h"]["general"], abs=tol)
    assert rel["ecv"] == pytest.approx(ref["ecv"], abs=tol)
    assert rel["puc"] == pytest.approx(ref["puc"], abs=1e-12)
    assert not math.isnan(rel["omega_h"])


def test_a_fit_that_did_not_converge_gets_a_reason_not_indices():
    from dataclasses import replace

    data = pd.read_csv(LAVAAN / "esem" / "bifactor_sim.csv")
    fit = fit_model(data, BIFACTOR)
    assert bifactor_indices(fit)["omega_h"] > 0.5
    out = bifactor_indices(replace(fit, converged=False))
    assert out == {"bifactor_unavailable": "no bifactor indices: the fit did not converge"}


def test_bifactor_table_and_esem_loading_roles():
    from alliance.cfa.tables import bifactor_table, loadings_long
    from alliance.sem.esem import model_rotation

    data = pd.read_csv(LAVAAN / "esem" / "bifactor_sim.csv")
    models = builtin_models(Key())
    results = {"bifactor": fit_cfa(data, BIFACTOR, orthogonal=True)}
    for name in ("esem", "bifactor_esem"):
        rotation = model_rotation(name, Key.factors, "geomin", starts=5)
        results[name] = fit_cfa(data, models[name], rotation=rotation)
    table = bifactor_table(results, numeric=True)
    assert list(table["model"].unique()) == ["bifactor", "bifactor_esem"]
    general = table[table["factor"] == "general"].set_index("model")
    for model in ("bifactor", "bifactor_esem"):
        rel = results[model]["reliability"]
        assert general.loc[model, "omega_h"] == rel["omega_h"]
        assert general.loc[model, "ecv"] == rel["ecv"]
    assert "Rodriguez" in table.attrs["note"]
    long = loadings_long(results, Key.factors)
    for model, own in (("esem", "item"), ("bifactor_esem", "specific")):
        rows = long[long.model == model]
        mine = rows[rows.role == own]
        assert sorted(mine["item"]) == sorted(Key.items)  # one own loading per item
        assert all(
            Key.factors[f].count(i) == 1 for f, i in zip(mine.factor, mine.item, strict=True)
        )
        assert (rows.role == "cross").sum() == 12 * 2
    assert (long[long.model == "bifactor_esem"].role == "general").sum() == 12
