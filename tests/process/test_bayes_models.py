"""Bayesian process models: recovery on the demo data, skip reasons and failed diagnostics.

Recovery targets. truth.json defines dropout on the *latent* client composite A_t
(``logit h = logit(.04) - 0.7 A_t``); the pipeline sees the WAI-SR total mean, which measures
A_t with error (ordinal items, a ceiling, straight-liners), so the log-odds per SD of the
observed score is attenuated. The target below is the mean plug-in estimate
(maximum-likelihood logistic regression with session dummies, current alliance z and
symptoms z) over 150 fresh replicates of the demo generator per site, observed as the
pipeline observes the demo (``tests/bayes/conftest.py::tables_from_long`` and
``alliance.process.trajectories.person_period``): site_a -0.559 (MC SE 0.006, replicate SD
0.07), site_b -0.557 (0.006). The analytic approximation ``b rho / sqrt(1 + 0.346 b^2 (1 -
rho^2))`` with rho about .9 gives about -0.62: same direction and size band.

Variance shares: the growth model's error-corrected shares (Cronbach's alpha, as in
``variance_components``) estimate the latent 6% / 70% / 24%; the uncorrected session share
holds measurement error and is larger.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.process.bayes_api import key_effects, run_process_bayes
from alliance.process.bayes_models import (
    REFERENCES,
    ProcessFit,
    dropout_hazard,
    growth,
    growth_data,
    growth_marginal,
    growth_statistics,
    rater_outcome,
    rupture_outcome,
    survival_curves,
)

ROOT = Path(__file__).resolve().parents[2]
TRUTH = json.loads((ROOT / "data" / "demo" / "truth.json").read_text())
#: Plug-in targets of the dropout log-odds per SD of observed alliance (module docstring).
DROPOUT_TARGET = {"site_a": (-0.559, 0.006), "site_b": (-0.557, 0.006)}
FAST = {"draws": 1000, "tune": 1000, "seed": 11}
SMALL = {"backend": "pymc", "draws": 1000, "tune": 1000, "seed": 11}

_CACHE: dict[str, Path] = {}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """Return ``site -> results folder`` with ingest, scores and process outputs (cached)."""
    from alliance.data.ingest import ingest_to
    from alliance.describe.stage import score_dataset
    from alliance.process import run_process_analyses

    def get(site: str) -> Path:
        if site not in _CACHE:
            root = tmp_path_factory.mktemp(site) / site
            ingest_to(ROOT / "config" / "codebooks" / f"{site}.yaml", root / "ingest")
            score_dataset(root / "ingest", root / "scores")
            run_process_analyses(root / "ingest", root / "scores", root / "process")
            _CACHE[site] = root
        return _CACHE[site]

    return get


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    from alliance.bayes.data import load_tables

    return load_tables(folder)


def _inside(effect: dict, target: float, margin: float = 0.0, level: str = "90") -> None:
    low, high = effect[f"eti{level}_low"], effect[f"eti{level}_high"]
    assert low - margin <= target <= high + margin, (
        f"{level}% interval [{low:.3f}, {high:.3f}] misses the target {target:.3f}"
    )


# --------------------------------------------------------------------------- likelihoods


def test_dropout_likelihood_is_pymcs_bernoulli_with_its_gradient(rng):
    """The dropout model's Bernoulli-logit density (one softplus) equals pm.Bernoulli's."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    from alliance.process.bayes_models import _bernoulli_logit_logp

    eta = pt.vector("eta")
    value = rng.integers(0, 2, size=400)
    # log-odds from far in one tail to far in the other (softplus overflow region included)
    points = np.concatenate([rng.normal(0, 3, 380), [-40.0, -20.0, 0.0, 20.0, 40.0] * 4])
    ours = pt.sum(_bernoulli_logit_logp(pt.as_tensor(value), eta))
    pymcs = pt.sum(pm.logp(pm.Bernoulli.dist(logit_p=eta), pt.as_tensor(value)))
    f = pytensor.function([eta], [ours, pt.grad(ours, eta), pymcs, pt.grad(pymcs, eta)])
    lp_ours, grad_ours, lp_pymc, grad_pymc = f(points)
    np.testing.assert_allclose(lp_ours, lp_pymc, rtol=1e-12)
    np.testing.assert_allclose(grad_ours, grad_pymc, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- recovery


def test_dropout_recovers_attenuated_log_odds_site_a(demo):
    pp = pd.read_parquet(demo("site_a") / "process" / "person_period.parquet")
    fit = dropout_hazard(pp, FAST)
    assert fit.status == "pass", fit.diagnostics["failures"]
    target, mc_se = DROPOUT_TARGET["site_a"]
    _inside(fit.effects["b_alliance"], target, 2 * mc_se)
    truth = TRUTH["dropout"]["log_odds_per_sd_alliance"]
    assert truth < target < 0  # attenuated, never inflated
    assert fit.effects["or_alliance"]["eti95_high"] < 1
    curves = fit.tables["survival"]
    last = curves[curves["session"] == curves["session"].max()].set_index("alliance_sd")
    assert last.loc[-1.0, "survival_mean"] < last.loc[0.0, "survival_mean"]
    assert last.loc[0.0, "survival_mean"] < last.loc[1.0, "survival_mean"]
    # the observed dropout share lies near the curve at the mean alliance
    assert (
        abs((1 - last.loc[0.0, "survival_mean"]) - TRUTH["sample"]["site_a"]["dropout_share"]) < 0.1
    )


def test_rater_outcome_client_predicts_better_site_a(demo):
    fit = rater_outcome(_tables(demo("site_a")), SMALL)
    assert fit.status == "pass", fit.diagnostics["failures"]
    assert fit.effects["b_client"]["eti95_high"] < 0
    # the therapist's rating carries outcome information only through its 0.4 loading on
    # the client's latent alliance: its unique slope is smaller
    assert fit.effects["p_first_rater_stronger"] > 0.9
    assert fit.data["r_raters"] == pytest.approx(0.33, abs=0.1)


@pytest.mark.parametrize("sd_slope", [0.3, 1e-6])
def test_growth_marginal_is_the_multivariate_normal_density(rng, sd_slope):
    """Each patient's marginal log likelihood equals SciPy's multivariate normal density of
    the residuals with covariance ``Z S Z' + sigma^2 I``, and the conditional means equal
    ``S Z' V^-1 r``, also for a slope SD near zero (unequal sessions per patient)."""
    from scipy.stats import multivariate_normal

    rows = [(f"P{i}", s) for i in range(25) for s in range(1, 2 + i % 9)]
    scores = pd.DataFrame(rows, columns=["patient_id", "session"])
    scores["therapist_id"] = "T1"
    scores["total_mean"] = 4 + rng.normal(size=len(scores))
    inputs = growth_data(scores, planned=12)
    stats = growth_statistics(inputs)
    centre = rng.normal(0, 0.3, size=len(inputs["patients"]))
    b_time, sd0, rho, sigma = -0.2, 0.8, -0.4, 0.6
    cov = np.array([[sd0**2, rho * sd0 * sd_slope], [rho * sd0 * sd_slope, sd_slope**2]])
    loglik, k0, k1 = growth_marginal(
        stats, centre, b_time, (cov[0, 0], cov[0, 1], cov[1, 1]), sigma
    )
    f = inputs["frame"]
    for i in range(len(inputs["patients"])):
        rows_i = f[f["patient_idx"] == i]
        z = np.column_stack([np.ones(len(rows_i)), rows_i["time"]])
        v = z @ cov @ z.T + sigma**2 * np.eye(len(rows_i))
        resid = rows_i["y"].to_numpy() - centre[i] - b_time * rows_i["time"].to_numpy()
        expected = multivariate_normal(np.zeros(len(rows_i)), v).logpdf(resid)
        assert loglik[i] == pytest.approx(expected, rel=1e-10, abs=1e-10)
        blup = cov @ z.T @ np.linalg.solve(v, resid)
        np.testing.assert_allclose([k0[i], k1[i]], blup, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("site", ["site_a", "site_b"])
def test_growth_recovers_variance_shares(demo, site):
    folder = demo(site)
    from alliance.bayes.data import patient_data

    vc = json.loads((folder / "process" / "variance_components.json").read_text())
    tables = _tables(folder)
    fit = growth(
        tables["scores"],
        patient_data(tables).frame,
        {"draws": 4000, "tune": 1500, "seed": 5},
        planned=12,
        reliability=vc["reliability"],
    )
    truth = TRUTH["alliance"]["variance_shares"]
    for part in ("therapist", "patient", "session"):
        _inside(fit.effects[f"corrected_share_{part}"], truth[part], 0.02, level="95")
    # the uncorrected session share also holds measurement error
    assert fit.effects["share_session"]["mean"] > fit.effects["corrected_share_session"]["mean"]
    # early level predicts outcome (better alliance, fewer symptoms); growth, with no true
    # slope variance, does not
    assert fit.effects["b_level"]["eti95_high"] < 0
    assert fit.effects["level_minus_growth"]["p_positive"] > 0.9
    assert fit.diagnostics["stages"]["outcome"]["status"] == "pass"


@pytest.mark.slow
def test_dropout_recovers_site_b(demo):
    pp = pd.read_parquet(demo("site_b") / "process" / "person_period.parquet")
    fit = dropout_hazard(pp, FAST)
    assert fit.status == "pass", fit.diagnostics["failures"]
    target, mc_se = DROPOUT_TARGET["site_b"]
    _inside(fit.effects["b_alliance"], target, 2 * mc_se)


@pytest.mark.slow
def test_rupture_outcome_direction_site_a(demo):
    from alliance.bayes.data import patient_data

    folder = demo("site_a")
    pp = pd.read_parquet(folder / "process" / "person_period.parquet")
    drop = pp.groupby("patient_id", as_index=False)["dropped_out"].first()
    patients = pd.read_csv(folder / "process" / "ruptures_patients.csv")
    fit = rupture_outcome(patients, patient_data(_tables(folder)).frame, drop, SMALL)
    assert fit.status == "pass", fit.diagnostics["failures"]
    truth = TRUTH["ruptures"]["repair_effect_phq9_points"]
    # detection misclassifies episodes and the outcome is the last observed score, so the
    # repaired slope is attenuated towards 0; the (wide) difference interval holds the truth
    _inside(fit.effects["repaired_minus_unrepaired_points"], truth, level="95")
    assert fit.effects["b_repaired_points"]["mean"] < 0


# --------------------------------------------------------------------------- skips


def _pp_one_session(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(n)],
            "therapist_id": "T1",
            "session": 1,
            "at_risk": False,
            "event": 0,
            "alliance_z": np.linspace(-1, 1, n),
            "alliance_lag1_z": np.nan,
            "symptoms": 10.0,
        }
    )


def _scores_one_session(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(n)],
            "therapist_id": "T1",
            "session": 1,
            "rater": "client",
            "total_mean": np.linspace(2, 5, n),
        }
    )


def test_one_session_per_patient_skips_dropout_and_growth():
    fit = dropout_hazard(_pp_one_session())
    assert fit.status == "skipped" and "one session per patient" in fit.reason
    fit = growth(_scores_one_session())
    assert fit.status == "skipped" and "one session per patient" in fit.reason
    assert fit.as_dict()["effects"] == {}


def test_no_second_rater_skips_rater_outcome(demo):
    fit = rater_outcome(_tables(demo("site_b")))
    assert fit.status == "skipped"
    assert "no second rater" in fit.reason and "therapist" in fit.reason


def test_no_ruptures_skips_rupture_outcome():
    patients = pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "eligible": True,
            "n_ruptures": 0,
            "n_repaired": 0,
            "n_unrepaired": 0,
            "n_censored": 0,
        }
    )
    outcome = pd.DataFrame({"patient_id": ["P1", "P2"], "baseline": [10.0, 12], "post": [5.0, 9]})
    fit = rupture_outcome(patients, outcome)
    assert fit.status == "skipped" and fit.reason == "no rupture-repair episode was detected"


def test_invalid_choices_raise():
    with pytest.raises(ValueError, match="alliance must be"):
        dropout_hazard(_pp_one_session(), alliance="next")
    with pytest.raises(ValueError, match="reliability must be in"):
        growth(_scores_one_session(), reliability=1.5)


# --------------------------------------------------------------------------- diagnostics


def _pp_small(rng: np.random.Generator, n: int = 60, sessions: int = 6) -> pd.DataFrame:
    rows = []
    for i in range(n):
        for s in range(1, sessions + 1):
            a = rng.normal()
            leave = s < sessions and rng.random() < 1 / (1 + np.exp(2.5 + 0.8 * a))
            rows.append(
                {
                    "patient_id": f"P{i}",
                    "therapist_id": f"T{i % 4}",
                    "session": s,
                    "at_risk": s < sessions,
                    "event": int(leave),
                    "alliance_z": a,
                    "alliance_lag1_z": np.nan,
                    "symptoms": rng.normal(12, 4),
                }
            )
            if leave:
                break
    return pd.DataFrame(rows)


def test_pathological_fit_is_flagged(rng):
    # 15 draws without tuning: no adapted step size, too few draws for ESS >= 400
    fit = dropout_hazard(_pp_small(rng), {"backend": "pymc", "draws": 15, "tune": 0, "seed": 1})
    assert fit.status == "fail"
    assert any("ESS" in f for f in fit.diagnostics["failures"])


def test_survival_curves_start_at_one_and_decrease(rng):
    fit = dropout_hazard(_pp_small(rng), {"backend": "pymc", "draws": 300, "tune": 300})
    curves = fit.tables["survival"]
    assert set(curves["alliance_sd"]) == {-1.0, 0.0, 1.0}
    for _, group in curves.groupby("alliance_sd"):
        assert group["survival_mean"].iloc[0] == 1.0
        assert np.all(np.diff(group["survival_mean"]) <= 0)
    assert curves.equals(survival_curves(fit.idata, fit.data["sessions"]))


# --------------------------------------------------------------------------- API


def test_api_writes_skips_and_never_raises(demo, tmp_path):
    out = tmp_path / "bayes"
    result = run_process_bayes(demo("site_b"), out, SMALL, models=("rater_outcome",))
    assert result["models"]["rater_outcome"]["status"] == "skipped"
    diag = json.loads((out / "rater_outcome" / "diagnostics.json").read_text())
    assert diag["status"] == "skipped" and "no second rater" in diag["reason"]
    assert (out / "rater_outcome" / "summary.csv").read_text().startswith("stage,parameter")
    assert json.loads((out / "summary.json").read_text())["dataset"] == "site_b"
    # the skip reason reaches the key-effects table, the summary and the figure
    keys = pd.read_csv(out / "key_effects.csv")
    assert keys[["model", "status"]].values.tolist() == [["rater_outcome", "skipped"]]
    assert "no second rater" in keys["reason"].iloc[0]
    assert "no second rater" in (out / "key_effects.md").read_text()
    assert (out / "figures" / "key_effects.png").read_bytes()[:4] == b"\x89PNG"
    model = result["models"]["rater_outcome"]
    assert model["references"] == REFERENCES["rater_outcome"]
    assert model["definition"].startswith("Which perspective predicts outcome")
    assert model["key"][0]["reason"] == model["reason"]
    # a dataset whose inputs cannot be read: every model is an error, nothing raises
    result = run_process_bayes(tmp_path / "missing", tmp_path / "bad", SMALL)
    assert {m["status"] for m in result["models"].values()} == {"error"}
    with pytest.raises(ValueError, match="models must be among"):
        run_process_bayes(demo("site_b"), out, SMALL, models=("nope",))


@pytest.mark.slow
def test_api_site_a_all_models(demo, tmp_path):
    out = tmp_path / "bayes"
    result = run_process_bayes(demo("site_a"), out, {"seed": 3})
    for name in ("dropout", "rater_outcome", "rupture_outcome"):
        assert result["models"][name]["status"] == "pass", result["models"][name]
    effects = json.loads((out / "dropout" / "effects.json").read_text())
    assert effects["effects"]["or_alliance"]["mean"] < 1
    assert (out / "dropout" / "survival.csv").is_file()
    assert (out / "figures" / "survival.png").is_file()
    keys = pd.read_csv(out / "key_effects.csv")
    assert set(keys["model"]) == set(result["models"])
    assert (keys["status"] == "pass").all()


def test_key_effects_rows_and_references(rng):
    fit = dropout_hazard(_pp_small(rng), {"backend": "pymc", "draws": 300, "tune": 300, "seed": 2})
    keys = key_effects(fit)
    row = keys.iloc[0]
    assert (row["model"], row["effect"], row["probability_of"]) == (
        "dropout",
        "or_alliance",
        "OR < 1",
    )
    odds = fit.effects["or_alliance"]
    assert (row["mean"], row["eti95_low"], row["eti95_high"]) == (
        odds["mean"],
        odds["eti95_low"],
        odds["eti95_high"],
    )
    assert row["probability"] == fit.effects["b_alliance"]["p_negative"]
    assert row["max_r_hat"] == fit.diagnostics["max_r_hat"]
    assert row["divergences"] == fit.diagnostics["divergences"]
    assert fit.as_dict()["references"] == REFERENCES["dropout"]
    assert any("Sharf" in r and "47(4), 637-645" in r for r in REFERENCES["dropout"])
    # the growth shares: the error-corrected ones replace the observed-score ones
    growth_fit = ProcessFit(
        "growth",
        "pass",
        effects={
            name: {"mean": 0.5, "eti95_low": 0.4, "eti95_high": 0.6}
            for name in ("share_trait", "corrected_share_trait", "b_level")
        },
    )
    assert key_effects(growth_fit)["effect"].tolist() == ["corrected_share_trait", "b_level"]
    # every model cites its sources
    assert all(len(REFERENCES[m]) >= 2 for m in ("dropout", "growth", "rater_outcome"))
