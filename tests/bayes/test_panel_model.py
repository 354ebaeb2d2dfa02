"""The Bayesian dynamic panel model (alliance.bayes.panel): inputs, exact likelihood, recovery.

The likelihood is checked against an outside computation: the joint multivariate normal
density (scipy) of each patient's whole trajectory under the vector autoregression on the
session grid, with the missed sessions integrated out by building the joint covariance of the
observed sessions directly. Recovery on simulated data (known truth) and the simulation-based
calibration are slow (marked).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from alliance.bayes.data import InsufficientData
from alliance.bayes.panel import (
    draw_panel_prior,
    dynamic_panel_model,
    fit_dynamic_panel,
    panel_frame,
    run_panel_sbc,
    simulate_panel,
)

PARAMS = {
    "phi_xx": 0.3,
    "phi_xy": -0.05,
    "phi_yx": -0.4,
    "phi_yy": 0.5,
    "sigma_x": 0.8,
    "sigma_y": 1.1,
    "rho_e": -0.3,
    "sigma1_x": 1.2,
    "sigma1_y": 0.9,
    "rho1": 0.25,
}


def _long() -> pd.DataFrame:
    """Two patients: sessions 1, 2, 4 (a gap of 2) and 2, 3, 6, 7 (a gap of 3)."""
    return pd.DataFrame(
        {
            "id": ["a", "a", "a", "b", "b", "b", "b"],
            "wave": [1, 2, 4, 2, 3, 6, 7],
            "x": [0.5, -0.2, 1.1, 0.3, 0.0, -0.7, 0.4],
            "y": [1.0, 0.4, -0.6, -1.2, 0.8, 0.1, 0.6],
        }
    )


def test_panel_frame_links_each_session_to_the_previous_one():
    d = panel_frame(_long(), min_patients=2, standardize=False)
    f = d.frame
    assert f["prev"].tolist() == [-1, 0, 1, -1, 3, 4, 5]
    assert f["gap"].tolist() == [0, 1, 2, 0, 1, 3, 1]
    assert d.info["max_gap"] == 3 and d.info["rows_with_gap_over_1"] == 2
    z = panel_frame(_long(), min_patients=2)
    assert z.frame["x"].std(ddof=1) == pytest.approx(1.0)
    with pytest.raises(InsufficientData, match="fewer than 10 patients"):
        panel_frame(_long())


def _joint_cov(waves: list[int], p: dict) -> np.ndarray:
    """Covariance of one patient's VAR deviations at ``waves``, from scratch."""
    phi = np.array([[p["phi_xx"], p["phi_xy"]], [p["phi_yx"], p["phi_yy"]]])

    def cov(a, b, r):
        return np.array([[a * a, r * a * b], [r * a * b, b * b]])

    sig, sig1 = cov(p["sigma_x"], p["sigma_y"], p["rho_e"]), cov(p["sigma1_x"], p["sigma1_y"],
                                                                 p["rho1"])  # fmt: skip
    grid = range(waves[0], waves[-1] + 1)
    var = {waves[0]: sig1}
    for s in list(grid)[1:]:
        var[s] = phi @ var[s - 1] @ phi.T + sig
    n = len(waves)
    big = np.zeros((2 * n, 2 * n))
    for i, a in enumerate(waves):
        for j, b in enumerate(waves):
            lo, hi = min(a, b), max(a, b)
            c = np.linalg.matrix_power(phi, hi - lo) @ var[lo]  # Cov(w_hi, w_lo)
            block = c if a >= b else c.T
            big[2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = block
    return big


@pytest.mark.parametrize("trend", ["none", "random"])
def test_likelihood_integrates_missed_sessions_and_patient_effects_exactly(trend):
    """The model's likelihood equals the joint normal density of each patient's whole
    trajectory: the VAR deviations (missed sessions integrated out) plus the patient effects
    u_i ~ N(gamma, S) (integrated out), x = u_0 + trend_x t, y = u_1 + u_2 t."""
    long = _long()
    data = panel_frame(long, min_patients=2, standardize=False)
    model = dynamic_panel_model(data, trend=trend)
    dims = 3 if trend == "random" else 2
    gamma = np.array([0.2, -0.1, 0.3])[:dims]
    packed = np.array([-0.2, 0.3, 0.1, 0.25, -0.4, -0.1])[: dims * (dims + 1) // 2]
    point = {
        "gamma": gamma,
        "chol_u_cholesky-cov-packed__": packed,
        **{k: v for k, v in PARAMS.items() if k.startswith("phi")},
    }
    if trend == "random":
        point["trend_x"] = 0.35
    for name in ("sigma_x", "sigma_y", "sigma1_x", "sigma1_y"):
        point[f"{name}_log__"] = np.log(PARAMS[name])
    for name in ("rho_e", "rho1"):
        point[f"{name}_interval__"] = np.log((1 + PARAMS[name]) / (1 - PARAMS[name]))
    # S = L L' from PyMC's packing (row-major lower triangle, log of the diagonal)
    chol = np.zeros((dims, dims))
    chol[np.tril_indices(dims)] = packed
    chol[np.diag_indices(dims)] = np.exp(np.diag(chol))
    s_u = chol @ chol.T
    logp = model.compile_fn(
        model.replace_rvs_by_values([model.potentials[0]])[0], inputs=model.value_vars
    )
    expected = 0.0
    for pid in ("a", "b"):
        rows = long[long["id"] == pid]
        waves = rows["wave"].tolist()
        time = (np.asarray(waves, float) - long["wave"].min()) / 10.0
        mean = np.column_stack(
            [gamma[0] + point.get("trend_x", 0.0) * time,
             gamma[1] + (gamma[2] if trend == "random" else 0.0) * time]
        ).ravel()  # fmt: skip
        design = np.zeros((2 * len(waves), dims))
        design[0::2, 0] = 1.0
        design[1::2, 1] = 1.0
        if trend == "random":
            design[1::2, 2] = time
        cov = _joint_cov(waves, PARAMS) + design @ s_u @ design.T
        y = rows[["x", "y"]].to_numpy().ravel()
        expected += float(multivariate_normal(mean, cov).logpdf(y))
    assert float(logp(point)) == pytest.approx(expected, rel=1e-10)


def test_simulated_panel_has_missed_sessions(rng):
    long = simulate_panel(rng, draw_panel_prior(rng), n_patients=40, n_sessions=6)
    per = long.groupby("id")["wave"].agg(["min", "size"])
    assert (per["min"] == 1).all() and (per["size"] < 6).any()
    assert long.groupby("id")["wave"].diff().max() >= 2


def test_too_few_patients_is_skipped():
    out = fit_dynamic_panel(_long(), {"backend": "pymc", "draws": 10, "tune": 10})
    assert out == {
        "status": "skipped",
        "reason": "fewer than 10 patients with two sessions with both measures, got 2",
    }


@pytest.mark.slow
def test_recovers_simulated_lags(rng):
    truth = {
        **PARAMS,
        "sd_mu_x": 0.7,
        "sd_mu_y": 1.0,
        "rho_mu": -0.4,
        "gamma_x": 0.0,
        "gamma_y": 0.0,
    }
    long = simulate_panel(rng, truth, n_patients=150, n_sessions=8)
    out = fit_dynamic_panel(
        long, {"backend": "pymc", "draws": 1000, "tune": 1000, "seed": 5}, trend="none"
    )
    assert out["status"] == "pass", out["diagnostics"]["failures"]
    # the truth on the data's scale: x was z-scored, y divided by the first session's SD
    sx, sy = out["scales"]["x_sd"], out["scales"]["outcome_unit_sd"]
    scaled = {
        "phi_xx": truth["phi_xx"],
        "phi_yy": truth["phi_yy"],
        "phi_yx": truth["phi_yx"] * sx / sy,
        "phi_xy": truth["phi_xy"] * sy / sx,
    }
    for name, value in scaled.items():
        e = out["effects"][name]
        assert e["mean"] - 3 * e["sd"] < value < e["mean"] + 3 * e["sd"], (name, e, value)


@pytest.mark.slow
def test_simulation_based_calibration():
    sbc = run_panel_sbc(40, n_patients=30, n_sessions=6, seed=7)
    assert sbc["calibrated"], sbc["tests"]
    assert sbc["divergences"] <= 0.01 * 40 * 800
