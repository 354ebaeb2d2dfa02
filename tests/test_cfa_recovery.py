"""Recovery of the true WAI-SR measurement model from the demo sites (issue 3).

The issue's criterion: the true loadings from ``data/demo/truth.json`` lie within the 95% CIs
in at least 90% of cases. Each demo site (site_a, site_b, site_c; the pooled data are their
union, so not an independent replicate) is ingested afresh from ``config/codebooks`` and its
one-row-per-patient sample (client ratings at session 3, :func:`read_cfa_data`) is fitted with
Bordin's three correlated factors (``correlated``). Checked parameters: the 12 standardized
loadings and the 3 factor correlations per site, 45 in all.

What the truth refers to (``alliance.simulate.demo``): ``wai_sr.loadings`` are standardized
loadings of the *latent response variables* y* (before the 1-5 categories), factors with
variance 1 over all sessions, and ``factor_correlations`` hold at every level. That is the
scale of WLSMV's ``est.std`` for ordered items (delta parameterization, var(y*) = 1), so
WLSMV is compared with the truth directly. Departures of the demo data from the fitted model,
all present on purpose and none corrected for here:

* session 3 precedes every rupture (sessions 4-10), so the factors' variance at session 3 is
  ``v = 1 - rupture_dip_variance`` (0.942), not 1: the implied standardized loading at
  session 3 is ``l * sqrt(v) / sqrt(l**2 * v + 1 - l**2)``, about 0.008 below ``l``. Both
  targets are checked (``truth`` and ``session 3``);
* two correlated residuals (wai_01-wai_02 within Task, r = .25; wai_08 (Goal) - wai_12 (Task),
  r = .20) are left out of the ``correlated`` model: a small misfit that can lift the Task
  loadings and the Task-Goal correlation;
* dropout after sessions 1-2 depends on the latent alliance (mild selection), 1.5% of patients
  are straight-liners (all 12 answers equal; kept in the sample), 2% of answers are missing
  (pairwise present for WLSMV, FIML for MLR), and patients are nested in therapists
  (therapist share .06) while the SEs assume independent patients.

Measured (seed 20261125): WLSMV covers 44/45 (site_a 15/15, site_b 15/15, site_c 14/15; the
miss is wai_04 in site_c, est.std .814, CI .758-.870, truth .74), the same against the
session-3 targets; mean loading bias -0.002 / -0.016 / -0.006.

MLR treats the 1-5 answers as continuous; its standardized loadings describe the observed
items, which are attenuated by the discretisation (5 categories with a ceiling), so the
latent-response truth is not its target and no coverage is required (it covers 31/45: 12, 9
and 10 of 15). Tested instead: the direction, every MLR loading below the WLSMV loading of the
same item (36/36 measured) with a mean attenuation of 0.04-0.10 per site (measured 0.05).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alliance.cfa.stage import model_syntax, read_cfa_data
from alliance.data.ingest import ingest_to
from alliance.sem.api import fit_cfa

ROOT = Path(__file__).resolve().parents[1]
SITES = ("site_a", "site_b", "site_c")
FACTORS = ("task", "goal", "bond")
TRUTH = json.loads((ROOT / "data" / "demo" / "truth.json").read_text())
#: Factor variance at session 3: no rupture dip has happened yet.
V_SESSION3 = 1.0 - TRUTH["alliance"]["rupture_dip_variance"]


def true_value(row: dict[str, Any], session3: bool = False) -> float:
    """The true standardized value of a loading or factor-correlation row."""
    wai = TRUTH["wai_sr"]
    if row["op"] == "=~":
        lam = wai["loadings"][row["rhs"]]
        if not session3:
            return lam
        return lam * np.sqrt(V_SESSION3) / np.sqrt(lam**2 * V_SESSION3 + 1.0 - lam**2)
    return wai["factor_correlations"]["_".join(sorted((row["lhs"], row["rhs"])))]


def checked_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The standardized loadings and factor correlations of a fit."""
    return [
        r
        for r in result["standardized"]
        if r["op"] == "=~" or (r["op"] == "~~" and r["lhs"] != r["rhs"] and r["lhs"] in FACTORS)
    ]


def loadings(result: dict[str, Any]) -> dict[str, float]:
    """Item -> standardized loading."""
    return {r["rhs"]: r["est.std"] for r in result["standardized"] if r["op"] == "=~"}


@pytest.fixture(scope="module")
def fits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, Any]]]:
    """WLSMV and MLR fits of the ``correlated`` model per demo site (fresh ingest)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for site in SITES:
        folder = tmp_path_factory.mktemp(site) / "ingest"
        ingest_to(ROOT / "config" / "codebooks" / f"{site}.yaml", folder)
        data, instrument, _ = read_cfa_data(folder, session=3, rater="client")
        syntax, _ = model_syntax("correlated", instrument)
        out[site] = {
            "WLSMV": fit_cfa(data, syntax, "WLSMV", "pairwise", ordered=True),
            "MLR": fit_cfa(data, syntax, "MLR", "fiml"),
        }
    return out


def test_fits_are_admissible(fits: dict[str, dict[str, dict[str, Any]]]) -> None:
    for site, by_estimator in fits.items():
        for estimator, result in by_estimator.items():
            assert result["converged"], (site, estimator)
            assert result["status"]["admissible"], (site, estimator, result["status"])
            assert len(checked_rows(result)) == 15, (site, estimator)


@pytest.mark.parametrize("session3", [False, True], ids=["truth", "session 3"])
def test_wlsmv_cis_cover_truth_in_90_percent(
    fits: dict[str, dict[str, dict[str, Any]]], session3: bool
) -> None:
    covered, missed = 0, []
    for site in SITES:
        for row in checked_rows(fits[site]["WLSMV"]):
            target = true_value(row, session3)
            if row["ci.lower"] <= target <= row["ci.upper"]:
                covered += 1
            else:
                missed.append((site, row["lhs"], row["op"], row["rhs"], row["est.std"], target))
    total = 15 * len(SITES)
    assert covered / total >= 0.90, f"{covered}/{total} covered; missed {missed}"


def test_wlsmv_cis_are_informative(fits: dict[str, dict[str, dict[str, Any]]]) -> None:
    # coverage means little if the intervals are wide or the estimates biased: CI half-widths
    # of about 2 * 0.03 at n ~ 300, and loadings unbiased on average
    for site in SITES:
        rows = checked_rows(fits[site]["WLSMV"])
        half = [(r["ci.upper"] - r["ci.lower"]) / 2 for r in rows]
        assert max(half) < 0.12, (site, max(half))
        bias = [r["est.std"] - true_value(r) for r in rows if r["op"] == "=~"]
        assert abs(float(np.mean(bias))) < 0.04, (site, np.mean(bias))


def test_mlr_loadings_attenuated_by_discretisation(
    fits: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for site in SITES:
        wlsmv, mlr = loadings(fits[site]["WLSMV"]), loadings(fits[site]["MLR"])
        gaps = np.array([wlsmv[item] - mlr[item] for item in wlsmv])
        assert (gaps > 0).all(), (site, dict(zip(wlsmv, gaps.round(3), strict=True)))
        assert 0.04 <= gaps.mean() <= 0.10, (site, gaps.mean())
