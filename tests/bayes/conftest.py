"""Recovery targets for the Bayesian models: the truth, observed as the pipeline observes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.bayes.data import patient_data, session_data
from alliance.data.instruments import load_instrument
from alliance.data.scoring import score_items

ROOT = Path(__file__).resolve().parents[2]
TRUTH_PATH = ROOT / "data" / "demo" / "truth.json"
SITES = ("site_a", "site_b", "site_c")


def tables_from_long(long: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tidy tables (docs/data-model.md) from the demo generator's clean long table."""
    instrument = load_instrument("wai_sr")
    client = long[long["rater"] == "client"].reset_index(drop=True)
    ids = client[["patient_id", "therapist_id", "session", "rater"]].copy()
    items = pd.concat([ids, client[list(instrument.items)].astype(float)], axis=1)
    scores = pd.concat([ids, score_items(items, instrument).filter(like="_mean")], axis=1)
    outcomes = pd.DataFrame(
        {
            "patient_id": client["patient_id"],
            "session": client["session"],
            "timepoint": "session",
            "measure": "phq9",
            "value": client["phq9"].astype(float),
        }
    )
    patients = client[["patient_id", "therapist_id"]].drop_duplicates("patient_id")
    return {"scores": scores, "outcomes": outcomes, "patients": patients}


def ols(y: np.ndarray, *columns: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``y`` on an intercept and ``columns``."""
    x = np.column_stack([np.ones_like(y), *columns])
    return np.linalg.lstsq(x, y, rcond=None)[0]


def plugin_estimates(
    tables: dict[str, pd.DataFrame], alliance_session: int = 3
) -> dict[str, float]:
    """The plug-in estimands of the outcome, therapist and session models by least squares.

    ``partial_r``: residual-based partial correlation of early alliance and the outcome given
    baseline; ``b_within``/``b_between``: therapist-model slopes in PHQ-9 points per SD of the
    early alliance; ``lag``: within-patient slope of next-session PHQ-9 in points per SD.
    """
    d = patient_data(tables, alliance_session=alliance_session)
    f = d.frame
    z = f["z_baseline"].to_numpy()
    ra = f["z_alliance"].to_numpy() - np.column_stack([np.ones_like(z), z]) @ ols(
        f["z_alliance"].to_numpy(), z
    )
    ry = f["z_post"].to_numpy() - np.column_stack([np.ones_like(z), z]) @ ols(
        f["z_post"].to_numpy(), z
    )
    b = ols(f["y"].to_numpy(), f["a_within"].to_numpy(), f["a_between"].to_numpy(), z)
    s = session_data(tables)
    g = s.frame
    lag = ols(
        g["y_next"].to_numpy(),
        g["a_within"].to_numpy(),
        g["a_mean"].to_numpy(),
        g["s_now"].to_numpy(),
    )[1]
    unit, sunit = d.scales["outcome_unit_sd"], s.scales["outcome_unit_sd"]
    return {
        "partial_r": float(np.corrcoef(ra, ry)[0, 1]),
        "b_within": float(b[1] * unit),
        "b_between": float(b[2] * unit),
        "lag": float(lag * sunit),
    }


def expected_plugin(site: str, reps: int, seed: int = 1) -> dict[str, float]:
    """Mean plug-in estimates over ``reps`` fresh draws of the demo generator for ``site``.

    The demo generator (``alliance.simulate.demo``, truth.json's parameters, the site's numbers of
    patients and therapists) is rerun with other seeds and observed exactly as the pipeline
    observes the demo data: ordinal WAI-SR items scored as the total mean, dropout, PHQ-9
    rounded and clipped, the last observed PHQ-9 as the outcome. The mean estimate is what
    the plug-in models estimate on average: the truth attenuated by measurement error and the
    session-level (state) alliance variance, and shifted by alliance-dependent dropout.
    """
    from alliance.simulate import demo as sim

    gen = np.random.default_rng(seed)
    m = sim._measurement(
        np.random.default_rng(np.random.SeedSequence(sim.DEFAULT_SEED).spawn(5)[0]),
        load_instrument("wai_sr"),
    )
    spec = dict(sim.SITES[site], raters=["client"])
    runs = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sim.SITES, site, spec)
        for _ in range(reps):
            long = sim._simulate_site(site, np.random.default_rng(gen.integers(2**63)), m).long
            runs.append(plugin_estimates(tables_from_long(long)))
    frame = pd.DataFrame(runs)
    out = frame.mean().to_dict()
    out.update({f"{k}_mc_se": float(v) for k, v in (frame.std(ddof=1) / np.sqrt(reps)).items()})
    out.update({f"{k}_sd": float(v) for k, v in frame.std(ddof=1).items()})
    return out


@pytest.fixture(scope="session")
def truth() -> dict:
    """The demo data's generating parameters (data/demo/truth.json)."""
    return json.loads(TRUTH_PATH.read_text())


_TABLE_CACHE: dict[str, dict[str, pd.DataFrame]] = {}


@pytest.fixture(scope="session")
def demo_tables(tmp_path_factory: pytest.TempPathFactory):
    """Return a function ``site -> tables``: the demo site ingested and scored afresh (cached)."""
    from alliance.bayes.data import load_tables
    from alliance.data.ingest import ingest_to
    from alliance.describe.stage import score_dataset

    def get(site: str) -> dict[str, pd.DataFrame]:
        if site not in _TABLE_CACHE:
            out = tmp_path_factory.mktemp(site)
            ingest_to(ROOT / "config" / "codebooks" / f"{site}.yaml", out / "ingest")
            score_dataset(out / "ingest", out / "scores")
            _TABLE_CACHE[site] = load_tables(out)
        return _TABLE_CACHE[site]

    return get


@pytest.fixture(scope="session")
def long_to_tables():
    """Return :func:`tables_from_long` (test modules cannot import it from ``conftest``: under
    xdist another directory's conftest may own that module name)."""
    return tables_from_long


@pytest.fixture(scope="session")
def plugin_target():
    """Return :func:`expected_plugin` (cached per site, replicates and seed)."""
    cache: dict[tuple, dict[str, float]] = {}

    def get(site: str, reps: int, seed: int = 1) -> dict[str, float]:
        if (site, reps, seed) not in cache:
            cache[site, reps, seed] = expected_plugin(site, reps, seed)
        return cache[site, reps, seed]

    return get
