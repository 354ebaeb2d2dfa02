"""Shared fixtures: a seeded random generator and a small simulated WAI-SR item table."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from alliance.data.instruments import Instrument, load_instrument

SEED = 20261125
DATA = Path(__file__).parent / "data"

#: Hypothesis profiles. ``make test`` is reproducible: the property tests draw the same examples
#: on every run and machine (``derandomize``), so a red CI run means a change broke something,
#: not that a random draw found an old bug (a random run found one in the fuzz test's own
#: bookkeeping, 2026-12-05, and spent 200 s shrinking it). ``make fuzz`` explores new examples
#: (``HYPOTHESIS_PROFILE=explore``); whatever it finds becomes an ``@example``.
settings.register_profile("reproducible", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove the test SLURM cluster's configuration a killed cluster test left behind.

    It makes every Snakemake start in the tests wait 10 s (``slurm_cluster.remove_stale_conf``).
    """
    from slurm_cluster import remove_stale_conf

    removed = remove_stale_conf()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if removed and reporter is not None:  # xdist's workers have none; the controller said it
        reporter.write_line(removed)


#: The Snakemake runs, in the order they are handed out (the number is the rank; the seconds
#: of one run in ``make test`` on 2 cores, 2026-12-04, in the comments). The demo rerun has the
#: Bayesian stages off, so it never waits for PyTensor's compile lock while the first run with
#: Bayesian fits runs on the other worker; the second one with Bayesian fits comes after it.
E2E_FILES = {
    "test_workflow_demo.py": 3,  # 40-60 s (site_a and the pooled items analysed)
    "test_workflow_e2e.py": 2,  # 75 s
    "test_workflow_privacy.py": 1,  # 56 s
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the files for ``make test``'s two workers: the Snakemake runs first, longest first,
    then the other files with the most tests first (stable within a file).

    ``make test`` hands whole files to its workers in this order (``--no-loadscope-reorder``
    in the Makefile; pytest-xdist's own order puts the files with the most tests first, which
    left the single-test Snakemake files to the end: one worker ran the demo rerun, 91 s,
    alone, and make test took 307-313 s). Two Snakemake runs with Bayesian fits at once waited
    on PyTensor's compile lock (all end-to-end files first, in name order: 380 s). This order:
    287 s (same machine and commit, 2 cores; the demo rerun then analysed every site).
    """
    counts: dict[Path, int] = {}
    for item in items:
        counts[item.path] = counts.get(item.path, 0) + 1

    def key(item: pytest.Item) -> tuple[int, int, str]:
        return (-E2E_FILES.get(item.path.name, 0), -counts[item.path], str(item.path))

    items.sort(key=key)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with the project seed for every test."""
    return np.random.default_rng(SEED)


@pytest.fixture
def wai_sr() -> Instrument:
    """The built-in WAI-SR (client) key."""
    return load_instrument("wai_sr")


def simulate_items(
    instrument: Instrument,
    n_patients: int = 120,
    n_sessions: int = 3,
    missing_share: float = 0.03,
    seed: int = SEED,
) -> pd.DataFrame:
    """Simulate a tidy items table (docs/data-model.md) for ``instrument``.

    Each factor is a latent normal variable (factor correlations .5) with a patient-level
    component (variance .7) and a session-level component (.3); every item loads .8 on its
    factor. Responses are cut at thresholds that push answers towards the top category
    (a ceiling, as in alliance data), then ``missing_share`` of answers are deleted
    completely at random. Client rows for every session plus therapist rows at session 1.
    """
    gen = np.random.default_rng(seed)
    factors = list(instrument.factors)
    m = len(factors)
    phi = np.full((m, m), 0.5) + 0.5 * np.eye(m)
    chol = np.linalg.cholesky(phi)
    k = instrument.n_categories
    # Thresholds on the latent response scale: the top category holds about 40% of answers.
    cuts = np.quantile(gen.standard_normal(100_000), np.linspace(0.05, 0.6, k - 1))
    rows = []
    trait = gen.standard_normal((n_patients, m)) @ chol.T
    for rater, sessions in (("client", range(1, n_sessions + 1)), ("therapist", [1])):
        for s in sessions:
            state = gen.standard_normal((n_patients, m)) @ chol.T
            eta = np.sqrt(0.7) * trait + np.sqrt(0.3) * state
            for p in range(n_patients):
                row = {
                    "patient_id": f"P{p + 1:03d}",
                    "therapist_id": f"T{p % 8 + 1:02d}",
                    "session": s,
                    "rater": rater,
                    "site": "A" if p % 2 == 0 else "B",
                }
                for f, factor in enumerate(factors):
                    for item in instrument.factors[factor]:
                        latent = 0.8 * eta[p, f] + 0.6 * gen.standard_normal()
                        row[item] = instrument.scale_min + float(np.searchsorted(cuts, latent))
                rows.append(row)
    table = pd.DataFrame(rows)
    values = table[list(instrument.items)].to_numpy(dtype=float, copy=True)
    values[gen.random(values.shape) < missing_share] = np.nan
    out = table[["patient_id", "therapist_id", "session", "rater", "site"]].astype(
        {"patient_id": "str", "therapist_id": "str", "rater": "str", "site": "str"}
    )
    out["session"] = out["session"].astype("Int64")
    out["source_row"] = pd.array(np.arange(1, len(out) + 1), dtype="Int64")
    for j, item in enumerate(instrument.items):
        out[item] = pd.array(values[:, j], dtype="Float64")
    return out


@pytest.fixture
def items_table(wai_sr: Instrument) -> pd.DataFrame:
    """A simulated WAI-SR items table: 120 patients x 3 client sessions + 1 therapist session."""
    return simulate_items(wai_sr)


@pytest.fixture
def holzinger() -> pd.DataFrame:
    """Holzinger & Swineford (1939), 301 pupils, tests x1..x9 (lavaan's version)."""
    return pd.read_csv(DATA / "holzinger1939" / "holzinger1939.csv")


@pytest.fixture
def make_items():
    """The simulator behind ``items_table``, for tests that need other sizes or settings."""
    return simulate_items


@pytest.fixture(scope="session")
def demo_results(tmp_path_factory):
    """Return a function ``site -> folder`` holding that demo site ingested and scored afresh.

    Tests that need the demo data's tidy tables build them here from the committed data and
    codebooks, so they run (not skip) on a fresh clone without `results/`.
    """
    from pathlib import Path

    from alliance.data.ingest import ingest_to
    from alliance.describe.stage import score_dataset

    root = Path(__file__).resolve().parents[1]
    built: dict[str, Path] = {}

    def get(site: str) -> Path:
        if site not in built:
            out = tmp_path_factory.mktemp(f"demo_{site}")
            ingest_to(root / "config" / "codebooks" / f"{site}.yaml", out / "ingest")
            score_dataset(out / "ingest", out / "scores")
            built[site] = out
        return built[site]

    return get


@pytest.fixture
def item_simulator():
    """:func:`simulate_items` for test modules in subfolders, which cannot import this module
    by the name ``conftest`` (another folder's conftest may hold that name)."""
    return simulate_items
