"""Seeded generator of the embedded multi-site demo data, its codebooks and its true parameters."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from alliance.data.instruments import Instrument, load_instrument

__all__ = ["DEFAULT_SEED", "PARAMETERS", "SITES", "simulate_demo"]

DEFAULT_SEED = 20261125
N_SESSIONS = 12
#: Constant timestamp written into every file format that stores one (xlsx zip entries and
#: document properties, the .sav header), so regenerated files are byte-identical.
FIXED_TIMESTAMP = dt.datetime(2026, 1, 1, 0, 0, 0)
SAV_DATE = b"01 Jan 26"
SAV_TIME = b"00:00:00"

# Random streams: SeedSequence(seed).spawn(len(STREAMS)); one stream per part, so changing one
# site leaves the others' draws unchanged.
STREAMS = ("parameters", "site_a", "site_b", "site_c", "published")

#: Item sites: file name, format, layout, patients, therapists, raters, ID prefixes, group value.
SITES: dict[str, dict[str, Any]] = {
    "site_a": {
        "file": "site_a.csv",
        "format": "csv",
        "layout": "long",
        "n_patients": 375,
        "n_therapists": 20,
        "raters": ["client", "therapist"],
        "patient_prefix": "A",
        "therapist_prefix": "TA",
        "site": "A",
    },
    "site_b": {
        "file": "site_b.sav",
        "format": "sav",
        "layout": "long",
        "n_patients": 335,
        "n_therapists": 15,
        "raters": ["client"],
        "patient_prefix": "B-",
        "therapist_prefix": "TB",
        "site": "B",
    },
    "site_c": {
        "file": "site_c.xlsx",
        "format": "xlsx",
        "layout": "wide",
        "n_patients": 290,
        "n_therapists": 10,
        "raters": ["client"],
        "patient_prefix": "C",
        "therapist_prefix": "TC",
        "site": "C",
    },
}

#: Fixed generating parameters (the item loadings and thresholds are drawn from the
#: ``parameters`` stream within the ranges given here and recorded in truth.json).
PARAMETERS: dict[str, Any] = {
    "n_sessions": N_SESSIONS,
    "factor_correlations": {"goal_task": 0.90, "bond_task": 0.72, "bond_goal": 0.70},
    "loading_range": [0.72, 0.88],
    "threshold_base": [-2.2, -1.5, -0.7, 0.15],
    "threshold_item_offset_range": [-0.15, 0.15],
    "residual_correlations": [
        {"items": ["wai_01", "wai_02"], "r": 0.25},
        {"items": ["wai_08", "wai_12"], "r": 0.20},
    ],
    "item_nonresponse_rate": 0.02,
    "phq9_nonresponse_rate": 0.01,
    "straightliner_share": 0.015,
    "variance_shares": {"therapist": 0.06, "patient": 0.70, "session": 0.24},
    "alliance_growth_per_session": 0.0,
    "therapist_rater": {
        "client_loading": 0.40,
        "latent_mean": -0.40,
        "variance_shares": {"therapist": 0.20, "patient": 0.50, "session": 0.30},
    },
    "rupture": {
        "patient_share": 0.25,
        "sessions": [4, 10],
        "depth_sd": [1.0, 1.8],
        "repaired_share": 0.70,
        "repair_sessions": [1, 2],
        "unrepaired_persisting_fraction": 0.5,
        "repair_effect_phq9_points": -1.5,
    },
    "phq9": {
        "intake_mean": 15.0,
        "intake_sd": 5.0,
        "mean_change_points": -5.5,
        "baseline_slope": -0.3,
        "session_noise_sd": 2.0,
        "min": 0,
        "max": 27,
    },
    "outcome": {
        "b_within_points_per_sd": -1.2,
        "b_between_points_per_sd": -3.0,
        "patient_level_partial_r": -0.28,
        "alliance_session": 3,
        "lagged_within_effect_sd": -0.15,
    },
    "dropout": {"baseline_hazard": 0.04, "log_odds_per_sd_alliance": -0.7},
    "covariates": {"age_mean": 38.0, "age_sd": 13.0, "age_range": [18, 80], "female_share": 0.65},
    "published": {
        "k": 20,
        "r": 0.278,
        "tau_z": 0.08,
        "n_range": [30, 400],
        "year_range": [1990, 2020],
        "measures": ["CALPAS", "HAq-II", "WAI", "WAI-S", "WAI-SR"],
        "r_decimals": 2,
    },
}

FACTOR_PAIRS = {
    "goal_task": ("goal", "task"),
    "bond_task": ("bond", "task"),
    "bond_goal": ("bond", "goal"),
}


# --------------------------------------------------------------------------- helpers


def _round(value: float, digits: int = 6) -> float:
    """Round a float for the JSON record (hides last-bit differences between platforms)."""
    return float(round(float(value), digits))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _factor_matrix(instrument: Instrument) -> tuple[list[str], np.ndarray]:
    """Factor names in instrument order and their correlation matrix (Bordin's three factors)."""
    names = list(instrument.factors)
    phi = np.eye(len(names))
    for key, (f1, f2) in FACTOR_PAIRS.items():
        i, j = names.index(f1), names.index(f2)
        phi[i, j] = phi[j, i] = PARAMETERS["factor_correlations"][key]
    return names, phi


@dataclass(frozen=True)
class _Measurement:
    """The WAI-SR measurement model drawn from the ``parameters`` stream."""

    instrument: Instrument
    items: tuple[str, ...]
    factors: list[str]
    factor_of_item: np.ndarray  # index into factors, per item
    phi: np.ndarray
    chol_phi: np.ndarray
    composite_scale: float  # SD of the mean of the three factors
    loadings: np.ndarray
    thresholds: np.ndarray  # items x 4
    chol_theta: np.ndarray  # residual covariance factor


def _measurement(rng: np.random.Generator, instrument: Instrument) -> _Measurement:
    factors, phi = _factor_matrix(instrument)
    items = instrument.items
    factor_of = np.array(
        [next(k for k, f in enumerate(factors) if item in instrument.factors[f]) for item in items]
    )
    lo, hi = PARAMETERS["loading_range"]
    loadings = np.round(rng.uniform(lo, hi, len(items)), 2)
    o_lo, o_hi = PARAMETERS["threshold_item_offset_range"]
    offsets = np.round(rng.uniform(o_lo, o_hi, len(items)), 2)
    thresholds = np.round(np.asarray(PARAMETERS["threshold_base"])[None, :] + offsets[:, None], 2)
    theta = np.diag(1.0 - loadings**2)
    for pair in PARAMETERS["residual_correlations"]:
        a, b = (items.index(i) for i in pair["items"])
        theta[a, b] = theta[b, a] = pair["r"] * math.sqrt(theta[a, a] * theta[b, b])
    return _Measurement(
        instrument=instrument,
        items=items,
        factors=factors,
        factor_of_item=factor_of,
        phi=phi,
        chol_phi=np.linalg.cholesky(phi),
        composite_scale=float(np.sqrt(phi.mean())),
        loadings=loadings,
        thresholds=thresholds,
        chol_theta=np.linalg.cholesky(theta),
    )


def _answers(rng: np.random.Generator, eta: np.ndarray, m: _Measurement) -> np.ndarray:
    """Ordinal answers 1-5 from factor scores ``eta`` (rows x factors), graded-threshold model."""
    ystar = eta[:, m.factor_of_item] * m.loadings
    ystar += rng.standard_normal((len(eta), len(m.items))) @ m.chol_theta.T
    return 1.0 + (ystar[:, :, None] > m.thresholds[None, :, :]).sum(axis=2)


def _levels(
    rng: np.random.Generator,
    m: _Measurement,
    therapist: np.ndarray,
    n_therapists: int,
    shares: dict[str, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw therapist, patient and session components of the three correlated factors."""
    n_patients = len(therapist)
    k = len(m.factors)
    u = math.sqrt(shares["therapist"]) * rng.standard_normal((n_therapists, k)) @ m.chol_phi.T
    p = math.sqrt(shares["patient"]) * rng.standard_normal((n_patients, k)) @ m.chol_phi.T
    s = math.sqrt(shares["session"]) * rng.standard_normal((n_patients, N_SESSIONS, k))
    s = s @ m.chol_phi.T
    return u, p, s


def _dip_shape(session: int, repaired: bool, repair_sessions: int) -> np.ndarray:
    """Return a rupture's dip per session (1..12) as a multiple of its depth (Stiles et al. 2004).

    The alliance falls ``depth`` below the patient's trend at ``session``; a repaired rupture
    returns to the trend after 1 session, or after 2 (half depth in between); an unrepaired one
    stays ``unrepaired_persisting_fraction`` of the depth below the trend to the end.
    """
    shape = np.zeros(N_SESSIONS)
    shape[session - 1] = 1.0
    if repaired and repair_sessions == 2:
        shape[session] = 0.5
    elif not repaired:
        shape[session:] = PARAMETERS["rupture"]["unrepaired_persisting_fraction"]
    return shape


def _dip_moments() -> dict[str, Any]:
    """Compute the expected rupture dips per session by enumerating every rupture pattern.

    Returns the per-session mean dip, mean squared dip and mean of (repaired x dip), the
    share of repaired ruptures among patients, and the dips' pooled variance over all
    patient-sessions (the part of the session-level variance that ruptures supply).
    """
    rup = PARAMETERS["rupture"]
    lo, hi = rup["depth_sd"]
    e_d, e_d2 = (lo + hi) / 2, (hi**3 - lo**3) / (3 * (hi - lo))
    first, last = rup["sessions"]
    repair_lengths = range(rup["repair_sessions"][0], rup["repair_sessions"][1] + 1)
    mean, square, repaired_mean = (np.zeros(N_SESSIONS) for _ in range(3))
    p_session = rup["patient_share"] / (last - first + 1)
    for session in range(first, last + 1):
        for length in repair_lengths:
            p = p_session * rup["repaired_share"] / len(repair_lengths)
            shape = _dip_shape(session, True, length)
            mean -= p * shape * e_d
            square += p * shape**2 * e_d2
            repaired_mean -= p * shape * e_d
        shape = _dip_shape(session, False, 0)
        p = p_session * (1 - rup["repaired_share"])
        mean -= p * shape * e_d
        square += p * shape**2 * e_d2
    return {
        "mean": mean,
        "square": square,
        "repaired_mean": repaired_mean,
        "p_repaired": rup["patient_share"] * rup["repaired_share"],
        "pooled_variance": float(square.mean() - mean.mean() ** 2),
    }


def _client_shares() -> dict[str, float]:
    """Variances of the client alliance's random components.

    The session component gets the session share minus the expected rupture-dip variance, so
    that state-like (session-level) variance including ruptures matches ``variance_shares``.
    """
    shares = dict(PARAMETERS["variance_shares"])
    shares["session"] -= _dip_moments()["pooled_variance"]
    return shares


def _change_residual_sd() -> float:
    """Return the SD of the residual change that makes the patient-level partial r its target.

    The target is the population partial correlation between the latent client alliance
    composite at session 3 (no rupture starts before session 4) and the latent-complete
    session-12 PHQ-9 given intake; rupture and repair terms are included exactly, rounding,
    clipping and dropout are not.
    """
    out, ph, rup = PARAMETERS["outcome"], PARAMETERS["phq9"], PARAMETERS["rupture"]
    shares = _client_shares()
    b_w, b_b = out["b_within_points_per_sd"], out["b_between_points_per_sd"]
    lag = out["lagged_within_effect_sd"] * ph["intake_sd"]
    if out["alliance_session"] >= rup["sessions"][0]:  # pragma: no cover - guards edits
        raise ValueError(f"ruptures must start after the alliance session, got {rup['sessions']}")
    cov = b_w * shares["patient"] + b_b * shares["therapist"]
    var_alliance = shares["therapist"] + shares["patient"] + shares["session"]
    var_target = (cov / out["patient_level_partial_r"]) ** 2 / var_alliance
    dips = _dip_moments()
    k = N_SESSIONS - 2  # the session-11 dip enters the session-12 score through the lag
    rep = rup["repair_effect_phq9_points"]
    p_rep = dips["p_repaired"]
    var_known = (
        b_w**2 * shares["patient"]
        + b_b**2 * shares["therapist"]
        + lag**2 * (shares["session"] + dips["square"][k] - dips["mean"][k] ** 2)
        + rep**2 * p_rep * (1 - p_rep)
        + 2 * rep * lag * (dips["repaired_mean"][k] - p_rep * dips["mean"][k])
        + ph["session_noise_sd"] ** 2
    )
    if var_target <= var_known:  # pragma: no cover - guards edits of PARAMETERS
        raise ValueError(f"outcome parameters leave no residual variance, got {var_known}")
    return math.sqrt(var_target - var_known)


def _partial_r(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Partial correlation of x and y given z."""
    rxy, rxz, ryz = (np.corrcoef(a, b)[0, 1] for a, b in ((x, y), (x, z), (y, z)))
    return float((rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2)))


# --------------------------------------------------------------------------- one site


@dataclass
class _Site:
    """A simulated item site: the clean long table, the patient truth and the episodes."""

    name: str
    long: pd.DataFrame  # patient_id, therapist_id, session, rater, site, items, phq9, age, sex
    patients: pd.DataFrame
    episodes: list[dict[str, Any]]
    sample: dict[str, Any]


def _simulate_site(name: str, rng: np.random.Generator, m: _Measurement) -> _Site:
    """Simulate one site (patients in therapists, up to 12 sessions, dropout, PHQ-9, WAI-SR).

    References
    ----------
    Falkenström, F., Granström, F., & Holmqvist, R. (2013). Therapeutic alliance predicts
    symptomatic improvement session by session. Journal of Counseling Psychology, 60(3), 317-328.
    Stiles, W. B., et al. (2004). Patterns of alliance development and the rupture-repair
    hypothesis. Journal of Counseling Psychology, 51(1), 81-92.

    """
    spec = SITES[name]
    n_p, n_t = spec["n_patients"], spec["n_therapists"]
    ph, out, rup = PARAMETERS["phq9"], PARAMETERS["outcome"], PARAMETERS["rupture"]
    # therapists: at least 3 patients each, the rest by unequal caseloads
    weights = rng.gamma(4.0, size=n_t)
    extra = rng.choice(n_t, size=n_p - 3 * n_t, p=weights / weights.sum())
    therapist = rng.permutation(np.concatenate([np.repeat(np.arange(n_t), 3), extra]))

    # client alliance: three correlated factors, each therapist + patient + session components
    u, p, s = _levels(rng, m, therapist, n_t, _client_shares())
    c = m.composite_scale
    has_rupture = rng.random(n_p) < rup["patient_share"]
    r_session = rng.integers(rup["sessions"][0], rup["sessions"][1] + 1, n_p)
    depth = np.round(rng.uniform(*rup["depth_sd"], n_p), 3)
    repaired = rng.random(n_p) < rup["repaired_share"]
    repair_len = rng.integers(rup["repair_sessions"][0], rup["repair_sessions"][1] + 1, n_p)
    dip = np.zeros((n_p, N_SESSIONS))  # on the composite's SD scale; sessions 1..12 -> 0..11
    for i in np.flatnonzero(has_rupture):
        dip[i] = -depth[i] * _dip_shape(r_session[i], repaired[i], repair_len[i])
    growth = PARAMETERS["alliance_growth_per_session"] * np.arange(N_SESSIONS)
    eta = u[therapist][:, None, :] + p[:, None, :] + s + (dip + growth)[:, :, None] * c
    alliance = eta.mean(axis=2) / c  # composite A: variance 1 over all sessions, dips included
    a_ther = u.mean(axis=1) / c
    a_pat = p.mean(axis=1) / c
    within = s.mean(axis=2) / c + dip  # deviation from the patient's trend

    # dropout after session t (t = 1..11) on the current latent alliance
    drop = PARAMETERS["dropout"]
    logit = math.log(drop["baseline_hazard"] / (1 - drop["baseline_hazard"]))
    hazard = 1 / (1 + np.exp(-(logit + drop["log_odds_per_sd_alliance"] * alliance[:, :-1])))
    leaves = rng.random(hazard.shape) < hazard
    last = np.where(leaves.any(axis=1), leaves.argmax(axis=1) + 1, N_SESSIONS)

    # PHQ-9: intake, linear change over 11 intervals, lagged within-patient alliance effect
    intake = ph["intake_mean"] + ph["intake_sd"] * rng.standard_normal(n_p)
    change = (
        ph["mean_change_points"]
        + ph["baseline_slope"] * (intake - ph["intake_mean"])
        + out["b_within_points_per_sd"] * a_pat
        + out["b_between_points_per_sd"] * a_ther[therapist]
        + rup["repair_effect_phq9_points"] * (has_rupture & repaired)
        + _change_residual_sd() * rng.standard_normal(n_p)
    )
    lag = out["lagged_within_effect_sd"] * ph["intake_sd"]
    progress = np.arange(N_SESSIONS) / (N_SESSIONS - 1)
    phq_latent = intake[:, None] + change[:, None] * progress[None, :]
    phq_latent[:, 1:] += lag * within[:, :-1]
    phq_latent[:, 1:] += ph["session_noise_sd"] * rng.standard_normal((n_p, N_SESSIONS - 1))
    phq = np.clip(np.round(phq_latent), ph["min"], ph["max"])

    # covariates
    cov = PARAMETERS["covariates"]
    age = np.clip(
        np.round(cov["age_mean"] + cov["age_sd"] * rng.standard_normal(n_p)), *cov["age_range"]
    ).astype(int)
    sex = np.where(rng.random(n_p) < cov["female_share"], "F", "M")

    # observed rows: client (and therapist) ratings of every attended session
    patient_ids = [f"{spec['patient_prefix']}{i:04d}" for i in range(1, n_p + 1)]
    therapist_ids = [f"{spec['therapist_prefix']}{j:02d}" for j in range(1, n_t + 1)]
    pi = np.repeat(np.arange(n_p), last)
    si = np.concatenate([np.arange(k) for k in last])
    client = _answers(rng, eta[pi, si], m)
    n_straight = max(2, round(PARAMETERS["straightliner_share"] * n_p))
    straight = np.sort(rng.choice(n_p, size=n_straight, replace=False))
    straight_rows = np.isin(pi, straight)
    client[straight_rows] = np.round(np.median(client[straight_rows], axis=1))[:, None]
    mask = rng.random(client.shape) < PARAMETERS["item_nonresponse_rate"]
    client[mask & ~straight_rows[:, None]] = np.nan
    phq_obs = phq[pi, si].astype(float)
    phq_obs[rng.random(len(pi)) < PARAMETERS["phq9_nonresponse_rate"]] = np.nan
    base = pd.DataFrame(
        {
            "patient_id": np.asarray(patient_ids)[pi],
            "therapist_id": np.asarray(therapist_ids)[therapist[pi]],
            "session": si + 1,
            "rater": "client",
            "site": spec["site"],
            "age": age[pi],
            "sex": sex[pi],
        }
    )
    frames = [_rated(base, "client", client, phq_obs, m)]
    top_share_therapist = None
    if "therapist" in spec["raters"]:
        tr = PARAMETERS["therapist_rater"]
        tu, tp, ts = _levels(rng, m, therapist, n_t, tr["variance_shares"])
        unique = tu[therapist][:, None, :] + tp[:, None, :] + ts
        rho = tr["client_loading"]
        eta_t = tr["latent_mean"] + rho * eta + math.sqrt(1 - rho**2) * unique
        ther = _answers(rng, eta_t[pi, si], m)
        ther[rng.random(ther.shape) < PARAMETERS["item_nonresponse_rate"]] = np.nan
        top_share_therapist = _round(np.nanmean(ther == 5), 4)
        frames.append(_rated(base, "therapist", ther, np.full(len(pi), np.nan), m))
    long = pd.concat(frames, ignore_index=True)
    long["_rater_order"] = (long["rater"] == "therapist").astype(int)
    long = long.sort_values(["patient_id", "session", "_rater_order"], kind="stable")
    long = long.drop(columns="_rater_order").reset_index(drop=True)

    episodes = [
        {
            "dataset": name,
            "patient_id": patient_ids[i],
            "session": int(r_session[i]),
            "depth_sd": float(depth[i]),
            "repaired": bool(repaired[i]),
            "repair_sessions": int(repair_len[i]) if repaired[i] else None,
            "observed": bool(last[i] >= r_session[i]),
            "repair_observed": bool(repaired[i] and last[i] >= r_session[i] + repair_len[i]),
        }
        for i in np.flatnonzero(has_rupture)
    ]
    patients = pd.DataFrame(
        {
            "dataset": name,
            "patient_id": patient_ids,
            "therapist_id": [therapist_ids[j] for j in therapist],
            "age": age,
            "sex": sex,
            "alliance_therapist": a_ther[therapist],
            "alliance_patient": a_pat,
            "alliance_session3": alliance[:, out["alliance_session"] - 1],
            "phq9_intake_latent": intake,
            "phq9_change_latent": change,
            "phq9_session12_latent": phq_latent[:, -1],
            "last_session": last,
            "dropped_out": last < N_SESSIONS,
            "rupture_session": np.where(has_rupture, r_session, 0),
            "rupture_depth_sd": np.where(has_rupture, depth, 0.0),
            "rupture_repaired": has_rupture & repaired,
            "straightliner": np.isin(np.arange(n_p), straight),
        }
    )
    answered = client[~np.isnan(client)]
    sample = {
        "n_patients": n_p,
        "n_therapists": n_t,
        "n_client_rows": len(pi),
        "dropout_share": _round(np.mean(last < N_SESSIONS), 4),
        "mean_sessions": _round(last.mean(), 4),
        "phq9_intake_mean": _round(phq[:, 0].mean(), 4),
        "phq9_intake_sd": _round(phq[:, 0].std(ddof=1), 4),
        "partial_r_latent_complete": _round(
            _partial_r(alliance[:, out["alliance_session"] - 1], phq_latent[:, -1], intake), 4
        ),
        "top_category_share_client": _round(np.mean(answered == 5), 4),
        "top_category_share_therapist": top_share_therapist,
        "straightliners": [patient_ids[i] for i in straight],
        "rupture_patients": int(has_rupture.sum()),
        "variance_latent_alliance": {
            "therapist": _round(np.var(a_ther, ddof=1), 4),
            "patient": _round(np.var(a_pat, ddof=1), 4),
            "session_with_dips": _round(np.var(within, ddof=1), 4),
        },
    }
    return _Site(name=name, long=long, patients=patients, episodes=episodes, sample=sample)


def _rated(
    base: pd.DataFrame, rater: str, answers: np.ndarray, phq: np.ndarray, m: _Measurement
) -> pd.DataFrame:
    """Add one rater's answers (1-5, NaN = not answered) and the PHQ-9 to the ID rows."""
    frame = base.assign(rater=rater)
    for k, item in enumerate(m.items):
        frame[item] = answers[:, k]
    frame["phq9"] = phq
    return frame


# --------------------------------------------------------------------------- formats


def _cell(value: Any) -> str:
    """Format a CSV cell: whole numbers without decimals, NaN as empty."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode("utf-8"))


def _error(
    target: list[str], column: str | None, reason: str, value: str, detail: str
) -> dict[str, Any]:
    """Record an injected error; its row number is resolved once all rows are placed."""
    return {"_target": target, "column": column, "reason": reason, "value": value, "detail": detail}


def _place(rows: list[list[str]], errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Resolve each error's row object to its 1-based data row, sorted by row."""
    position = {id(row): k + 1 for k, row in enumerate(rows)}
    placed = []
    for err in errors:
        rec = {key: v for key, v in err.items() if key != "_target"}
        rec["row"] = position[id(err["_target"])]
        placed.append(rec)
    return sorted(placed, key=lambda e: (e["row"], e["reason"]))


#: A writer's result: injected errors, data rows in the file, missing-code cells by code.
_Written = tuple[list[dict[str, Any]], int, dict[str, int]]


def _inject_long_text(
    rows: list[list[str]],
    header: list[str],
    rng: np.random.Generator,
    ids: dict[str, str],
    items: list[str],
    outcome: str,
    plan: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    """Corrupt rows of a long text table in place; return the injected errors.

    ``plan`` lists (reason, raw value) pairs; each error goes to a different client row of a
    different patient with every item and the outcome answered. Duplicates are inserted right
    after the row they repeat.
    """
    col = {name: k for k, name in enumerate(header)}
    complete = [
        k
        for k, row in enumerate(rows)
        if ("rater" not in ids or row[col[ids["rater"]]] == "client")
        and all(row[col[c]] != "" for c in [*items, outcome])
    ]
    targets: list[list[str]] = []
    seen: set[str] = set()
    for k in rng.permutation(complete):
        patient = rows[k][col[ids["patient"]]]
        if patient not in seen:
            seen.add(patient)
            targets.append(rows[k])
        if len(targets) == len(plan):
            break
    errors = []
    inserts: list[tuple[list[str], list[str]]] = []  # (after this row, insert this row)
    for (reason, value), row in zip(plan, targets, strict=True):
        item = items[int(rng.integers(len(items)))]
        special = {
            "missing_id": ids["patient"],
            "invalid_session": ids["session"],
            "outcome_out_of_range": outcome,
        }
        column = special.get(reason, item)
        if reason == "duplicate_row":
            copy = list(row)
            inserts.append((row, copy))
            errors.append(_error(copy, None, reason, "", "exact repeat of the row above"))
        elif reason == "duplicate_key_conflict":
            copy = list(row)
            old = int(copy[col[item]])
            copy[col[item]] = str(old - 1 if old > 1 else old + 1)
            inserts.append((row, copy))
            detail = f"same patient x session x rater as the neighbouring row; {item} differs"
            errors.append(_error(row, item, reason, row[col[item]], detail))
            errors.append(_error(copy, item, reason, copy[col[item]], detail))
        else:
            row[col[column]] = value
            errors.append(_error(row, column, reason, value, _DETAILS[reason]))
    for after, new in inserts:
        rows.insert(next(k for k, r in enumerate(rows) if r is after) + 1, new)
    return errors


_DETAILS = {
    "not_on_scale": "an answer between two categories",
    "out_of_range": "an answer outside the 1-5 scale",
    "non_numeric": "text in an item column",
    "missing_id": "patient ID left empty",
    "invalid_session": "session number 0",
    "outcome_out_of_range": "a PHQ-9 total above 27",
}


def _site_a(site: _Site, rng: np.random.Generator, path: Path, m: _Measurement) -> _Written:
    """CSV, long, client and therapist rows, blanks missing."""
    header = [
        "patient_id",
        "therapist_id",
        "session",
        "rater",
        "site",
        "age",
        "sex",
        *m.items,
        "phq9",
    ]
    rows = [[_cell(v) for v in rec] for rec in site.long[header].itertuples(index=False)]
    plan = [
        ("not_on_scale", "3.5"),
        ("out_of_range", "9"),
        ("non_numeric", "x"),
        ("duplicate_row", ""),
        ("duplicate_key_conflict", ""),
        ("missing_id", ""),
        ("invalid_session", "0"),
        ("outcome_out_of_range", "40"),
    ]
    ids = {"patient": "patient_id", "session": "session", "rater": "rater"}
    errors = _inject_long_text(rows, header, rng, ids, list(m.items), "phq9", plan)
    _write_csv(path, header, rows)
    return _place(rows, errors), len(rows), {}


def _site_b(site: _Site, rng: np.random.Generator, path: Path, m: _Measurement) -> _Written:
    """SPSS .sav, long, other column names, value labels, -99 declared as user missing."""
    import pyreadstat

    names = {item: f"WAI{k}" for k, item in enumerate(m.items, start=1)}
    frame = site.long.rename(
        columns={
            "patient_id": "client_code",
            "therapist_id": "clinician",
            "session": "visit",
            "phq9": "PHQ9",
            **names,
        }
    )
    header = ["client_code", "clinician", "visit", "site", "age", "sex", *names.values(), "PHQ9"]
    text = [[_cell(v) for v in rec] for rec in frame[header].itertuples(index=False)]
    ids = {"patient": "client_code", "session": "visit"}
    plan = [("out_of_range", "55"), ("duplicate_row", "")]
    errors = _inject_long_text(text, header, rng, ids, list(names.values()), "PHQ9", plan)
    placed = _place(text, errors)
    out = pd.DataFrame(text, columns=header)
    coded = [*names.values(), "PHQ9"]
    for column in ["visit", "age", *coded]:
        out[column] = pd.to_numeric(out[column].replace("", "-99")).astype(float)
    missing_cells = int((out[coded] == -99).sum().sum())
    labels = {float(k): v for k, v in sorted(m.instrument.labels.items())}
    labels[-99.0] = "Not answered"
    factor_of = {item: f for f, members in m.instrument.factors.items() for item in members}
    column_labels = {
        "client_code": "Client code",
        "clinician": "Clinician code",
        "visit": "Session number",
        "site": "Site",
        "age": "Age at intake (years)",
        "sex": "Sex (F/M)",
        **{
            raw: f"WAI-SR item {k} ({factor_of[item]})"
            for k, (item, raw) in enumerate(names.items(), start=1)
        },
        "PHQ9": "PHQ-9 total (0-27)",
    }
    pyreadstat.write_sav(
        out,
        str(path),
        file_label="alliance demo site B (simulated)",
        row_compress=True,
        column_labels=column_labels,
        variable_value_labels={
            **{c: labels for c in names.values()},
            "PHQ9": {-99.0: "Not answered"},
        },
        missing_ranges={c: [-99.0] for c in coded},
        variable_format={"visit": "F2.0", "age": "F3.0", **{c: "F3.0" for c in coded}},
        variable_measure={
            "visit": "scale",
            "age": "scale",
            "PHQ9": "scale",
            **{c: "ordinal" for c in names.values()},
        },
    )
    _fix_sav_timestamp(path)
    return placed, len(out), {"-99": missing_cells}


def _fix_sav_timestamp(path: Path) -> None:
    """Overwrite the creation date and time in a .sav header with constants.

    ReadStat (behind pyreadstat) writes the wall-clock time into the fixed-size header fields
    ``creation_date`` (9 bytes, ``dd mmm yy``) at byte 92 and ``creation_time`` (8 bytes,
    ``hh:mm:ss``) at byte 101. Nothing else in the file depends on the time, so patching these
    17 bytes makes the file reproducible.
    """
    data = bytearray(path.read_bytes())
    date, clock = bytes(data[92:101]), bytes(data[101:109])
    if data[:4] != b"$FL2" or date[2:3] != b" " or clock[2:3] != b":" or clock[5:6] != b":":
        raise RuntimeError(f"{path}: unexpected .sav header, cannot fix its timestamp")
    data[92:101] = SAV_DATE
    data[101:109] = SAV_TIME
    path.write_bytes(bytes(data))


def _site_c(site: _Site, rng: np.random.Generator, path: Path, m: _Measurement) -> _Written:
    """Excel, wide (a row per patient), raw scale 0-4, missing codes 999 and "n/a"."""
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    client = site.long[site.long["rater"] == "client"]
    header = ["Patient", "Therapist", "site", "Age", "Gender"]
    for session in range(1, N_SESSIONS + 1):
        header += [f"S{session}_Q{k}" for k in range(1, len(m.items) + 1)]
        header.append(f"PHQ_S{session}")
    codes: Counter[str] = Counter()
    rows: list[list[Any]] = []
    for _, rec in client.groupby("patient_id", sort=True):
        first = rec.iloc[0]
        row: list[Any] = [
            first["patient_id"],
            first["therapist_id"],
            first["site"],
            int(first["age"]),
            first["sex"],
        ]
        raw = np.column_stack([rec[list(m.items)].to_numpy() - 1, rec["phq9"].to_numpy()])
        by_session = dict(zip(rec["session"], raw, strict=True))
        for session in range(1, N_SESSIONS + 1):
            if session not in by_session:  # after dropout: no session, empty cells
                row += [None] * raw.shape[1]
                continue
            for value in by_session[session]:
                if np.isnan(value):
                    code = 999 if rng.random() < 0.5 else "n/a"
                    codes[str(code)] += 1
                    row.append(code)
                else:
                    row.append(int(value))
        rows.append(row)
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "data"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    props = workbook.properties
    props.creator = "alliance.simulate"
    props.title = "alliance demo site C (simulated)"
    props.created = props.modified = FIXED_TIMESTAMP
    raw_zip = io.BytesIO()
    # ExcelWriter directly: openpyxl's save_workbook would stamp the current time as modified
    ExcelWriter(workbook, zipfile.ZipFile(raw_zip, "w", zipfile.ZIP_DEFLATED)).save()
    path.write_bytes(_constant_zip(raw_zip.getvalue()))
    return [], len(rows), dict(sorted(codes.items()))


def _constant_zip(data: bytes) -> bytes:
    """Rewrite a zip archive with constant entry timestamps and attributes, same order."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=FIXED_TIMESTAMP.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


# --------------------------------------------------------------------------- published effects


def _published(rng: np.random.Generator, path: Path) -> tuple[list[dict], int, dict[str, Any]]:
    """Draw study-level correlations around r = .278 (Flückiger et al. 2018), random effects."""
    pub = PARAMETERS["published"]
    k = pub["k"]
    mu = math.atanh(pub["r"])
    lo, hi = pub["n_range"]
    n = np.round(np.exp(rng.uniform(math.log(lo), math.log(hi), k))).astype(int)
    theta = mu + pub["tau_z"] * rng.standard_normal(k)
    z = theta + rng.standard_normal(k) / np.sqrt(n - 3)
    r = np.round(np.tanh(z), pub["r_decimals"])
    year = rng.integers(pub["year_range"][0], pub["year_range"][1] + 1, k)
    measure = rng.choice(pub["measures"], k)
    order = np.lexsort((np.arange(k), year))
    studies = []
    for rank, i in enumerate(order, start=1):
        studies.append(
            {
                "study": f"study_{rank:02d}",
                "r": float(r[i]),
                "n": int(n[i]),
                "year": int(year[i]),
                "measure": str(measure[i]),
                "theta_z": _round(theta[i]),
                "z_sampled": _round(z[i]),
            }
        )
    header = ["study", "r", "n", "year", "measure"]
    rows = [
        [s["study"], f"{s['r']:.{pub['r_decimals']}f}", str(s["n"]), str(s["year"]), s["measure"]]
        for s in studies
    ]
    bad = ["study_21", "1.35", str(int(rng.integers(lo, hi))), str(int(year.max())), "WAI"]
    rows.insert(12, bad)
    errors = [
        {
            "row": 13,
            "column": "r",
            "reason": "invalid_r",
            "value": "1.35",
            "detail": "a correlation above 1 (a typo in the source)",
        }
    ]
    _write_csv(path, header, rows)
    z_obs = np.arctanh([s["r"] for s in studies])
    truth = {
        "k": k,
        "r": pub["r"],
        "mu_z": _round(mu),
        "tau_z": pub["tau_z"],
        "n_range": pub["n_range"],
        "r_decimals": pub["r_decimals"],
        "moderators": ["year", "measure"],
        "moderator_effects": "none: year and measure are drawn independently of the effects",
        "studies": studies,
        "sample_mean_z": _round(np.mean(z_obs)),
        "sample_weighted_mean_z": _round(np.average(z_obs, weights=n - 3)),
    }
    return errors, len(rows), truth


# --------------------------------------------------------------------------- codebooks


def _codebooks(data_dir: Path, codebook_dir: Path, m: _Measurement) -> dict[str, dict]:
    """Build the four codebooks, with data paths relative to ``codebook_dir``."""

    def rel(name: str) -> str:
        return Path(os.path.relpath(data_dir / name, codebook_dir)).as_posix()

    phq_range = {"min": PARAMETERS["phq9"]["min"], "max": PARAMETERS["phq9"]["max"]}
    age_lo, age_hi = PARAMETERS["covariates"]["age_range"]
    return {
        "site_a": {
            "dataset": "site_a",
            "description": "Simulated demo site A: CSV, long layout, client and therapist "
            "ratings of every session (rater column), blanks are missing.",
            "file": rel(SITES["site_a"]["file"]),
            "format": "csv",
            "read": {"sep": ",", "encoding": "utf-8"},
            "layout": "long",
            "ids": {
                "patient": "patient_id",
                "therapist": "therapist_id",
                "session": "session",
                "rater": "rater",
            },
            "groups": ["site"],
            "instrument": "wai_sr",
            "items": {"pattern": "wai_{number:02d}"},
            "outcomes": [{"measure": "phq9", "column": "phq9", **phq_range}],
            "covariates": [
                {"column": "age", "name": "age", "type": "numeric", "min": age_lo, "max": age_hi},
                {"column": "sex", "name": "sex", "type": "categorical"},
            ],
            "strict": False,
        },
        "site_b": {
            "dataset": "site_b",
            "description": "Simulated demo site B: SPSS .sav, long layout, client ratings, "
            "value labels on the items, -99 = not answered (declared user missing).",
            "file": rel(SITES["site_b"]["file"]),
            "format": "sav",
            "layout": "long",
            "ids": {"patient": "client_code", "therapist": "clinician", "session": "visit"},
            "rater": "client",
            "groups": ["site"],
            "instrument": "wai_sr",
            "items": {"pattern": "WAI{number}"},
            "missing_codes": [-99],
            "outcomes": [{"measure": "phq9", "column": "PHQ9", **phq_range}],
            "covariates": [
                {"column": "age", "name": "age", "type": "numeric", "min": age_lo, "max": age_hi},
                {"column": "sex", "name": "sex", "type": "categorical"},
            ],
            "strict": False,
        },
        "site_c": {
            "dataset": "site_c",
            "description": "Simulated demo site C: Excel, wide layout (a row per patient), "
            "client ratings on a 0-4 raw scale, 999 and n/a = not answered, empty = no session.",
            "file": rel(SITES["site_c"]["file"]),
            "format": "xlsx",
            "read": {"sheet": "data"},
            "layout": "wide",
            "sessions": list(range(1, N_SESSIONS + 1)),
            "ids": {"patient": "Patient", "therapist": "Therapist"},
            "rater": "client",
            "groups": ["site"],
            "instrument": "wai_sr",
            "items": {"pattern": "S{session}_Q{number}"},
            "recode": {"shift": 1},
            "missing_codes": [999, "n/a"],
            "outcomes": [{"measure": "phq9", "column": "PHQ_S{session}", **phq_range}],
            "covariates": [
                {"column": "Age", "name": "age", "type": "numeric", "min": age_lo, "max": age_hi},
                {"column": "Gender", "name": "sex", "type": "categorical"},
            ],
            "strict": False,
        },
        "published": {
            "dataset": "published",
            "kind": "effects",
            "description": "Simulated published study-level alliance-outcome correlations "
            "(study, r, n) with two moderators, for the meta-analysis.",
            "file": rel("published.csv"),
            "format": "csv",
            "effects": {"study": "study", "r": "r", "n": "n", "moderators": ["year", "measure"]},
            "strict": False,
        },
    }


def _write_yaml(path: Path, document: dict[str, Any], seed: int) -> None:
    header = (
        f"# GENERATED by alliance.simulate.demo.simulate_demo (seed {seed}); do not edit by hand.\n"
        "# Regenerate: snakemake simulate_demo --forcerun simulate_demo --cores 1\n"
        "# Codebook format: docs/data-model.md; schema: "
        "src/alliance/data/schemas/codebook.schema.yaml\n"
    )
    body = yaml.safe_dump(
        document, sort_keys=True, default_flow_style=None, width=100, allow_unicode=True
    )
    path.write_bytes((header + body).encode("utf-8"))


def _write_patients(path: Path, sites: list[_Site]) -> None:
    table = pd.concat([s.patients for s in sites], ignore_index=True)
    header = list(table.columns)
    rows = []
    for rec in table.itertuples(index=False):
        row = []
        for value in rec:
            if isinstance(value, bool | np.bool_):
                row.append("true" if value else "false")
            elif isinstance(value, float | np.floating):
                row.append(f"{value:.4f}")
            else:
                row.append(str(value))
        rows.append(row)
    _write_csv(path, header, rows)


# --------------------------------------------------------------------------- entry point


def simulate_demo(
    data_dir: str | Path, codebook_dir: str | Path, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """Write the embedded demo data, one codebook per dataset, and the truth that generated them.

    Three item sites and one table of published effects (DESIGN.md, "Demo data"):

    * ``site_a.csv``: long layout, client and therapist WAI-SR ratings of every session
      (``rater`` column), PHQ-9 on the client rows, blanks missing.
    * ``site_b.sav``: SPSS, long layout, client ratings, columns ``client_code``, ``clinician``,
      ``visit``, ``WAI1``..``WAI12``, ``PHQ9``; value labels on the items; ``-99`` is the
      missing code, declared as SPSS user missing.
    * ``site_c.xlsx``: Excel sheet ``data``, wide layout (``S{session}_Q{number}``,
      ``PHQ_S{session}``), raw scale 0-4, missing codes ``999`` and ``"n/a"``, empty cells for
      sessions after dropout.
    * ``published.csv``: study, r, n, year, measure.
    * ``truth.json`` (the returned dict) and ``truth_patients.csv`` (one row per patient with
      its latent values, dropout, rupture and straight-lining flags).

    Generating model. Patients are nested in therapists and rated at up to 12 weekly sessions.
    Each WAI-SR factor (Task, Goal, Bond; Hatcher & Gillaspy 2006) is the sum of a therapist, a
    patient and a session component; at every level the factors correlate as
    ``wai_sr.factor_correlations``. Items follow a graded threshold model with standardized
    loadings ``wai_sr.loadings``, thresholds ``wai_sr.thresholds`` (a ceiling: about 45% of
    client answers in the top category) and two correlated residuals. The alliance composite
    ``A`` is the mean of the three factors scaled so that its therapist, patient and session
    variances are ``alliance.variance_shares`` (total 1), rupture dips counted as session-level
    variance. About a quarter of patients have one rupture: ``A`` drops ``depth_sd`` below
    the patient's trend at one session and returns within 1-2 sessions (repaired) or stays at
    half depth (unrepaired) (Stiles et al. 2004). After session t the patient drops out with
    ``logit h = logit(baseline_hazard) + log_odds_per_sd_alliance * A_t``. PHQ-9 at session t is
    ``intake + change * (t - 1) / 11 + lag * w_{t-1} + e_t`` rounded and clipped to 0-27, where
    ``w`` is the within-patient alliance deviation (session component plus rupture dip) and
    ``lag = lagged_within_effect_sd * intake_sd`` (Falkenström et al. 2013); the patient's
    change depends on intake, on the patient (``b_within``) and therapist (``b_between``)
    alliance components, on repaired ruptures and on noise whose SD is solved so that the
    partial correlation named in ``outcome.patient_level_partial_r`` holds.

    truth.json keys
    ---------------
    ``generator``
        module, function, seed, random streams, fixed timestamp.
    ``datasets``
        per dataset: kind (items / effects), data file name, format, codebook file name.
    ``design``
        per site: file, format, layout, raters, n_patients, n_therapists; totals; n_sessions.
    ``wai_sr``
        factors, factor_correlations, loadings and thresholds per item (latent-response scale,
        before the 1-5 categories), residual_correlations, item_nonresponse_rate,
        straightliner_share, expected_top_category_share (normal theory, no dips/dropout).
    ``alliance``
        variance_shares (therapist, patient, session; of each factor and of ``A``),
        growth_per_session, composite definition, therapist_rater (client_loading, latent_mean,
        variance_shares of the therapist-specific part).
    ``ruptures``
        the generating settings and ``episodes``: dataset, patient_id, session, depth_sd,
        repaired, repair_sessions, observed (rupture session attended), repair_observed.
    ``outcome``
        phq9 trajectory settings, b_within / b_between (PHQ-9 points per SD of ``A``'s patient
        and therapist components), contextual effect, standardized versions (per intake SD),
        residual_change_sd, lagged_within_effect (per SD of ``A``, in intake SDs and points),
        patient_level_partial_r with its exact definition.
    ``dropout``
        baseline_hazard, log_odds_per_sd_alliance and the predictor's definition.
    ``covariates``
        age and sex distributions (no effects).
    ``published``
        k, r, mu_z, tau_z, n_range, per-study theta_z / z_sampled / r / n / moderators, sample
        mean z (unweighted and weighted by n - 3).
    ``injected_errors``
        per dataset, a list of {row (1-based data row, header not counted), column (raw
        column; null for an exact duplicate), reason (docs/data-model.md vocabulary), value,
        detail}.
    ``expected_ingest``
        per dataset: rows_in, rows_kept, rows_quarantined (rows with a row-level reason; a
        bad answer quarantines only its cell, see ``alliance.data.ingest.CELL_REASONS``), reasons
        (reason -> rows), missing_code_cells (code -> cells over the whole file).
    ``sample``
        realized values per site (dropout share, intake mean/SD, partial r on the latent
        complete data, top-category share, straight-liners, latent variance components).
    ``files``
        sha256 of every written data and codebook file (truth.json excluded).

    Parameters
    ----------
    data_dir
        Folder for the data files and the truth (created if missing).
    codebook_dir
        Folder for the codebooks (created if missing); their ``file`` paths are relative to it.
    seed
        Master seed (a non-negative integer); the same seed gives byte-identical files.

    Returns
    -------
    dict
        The truth, also written to ``data_dir/truth.json``.

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative integer.

    References
    ----------
    Hatcher, R. L., & Gillaspy, J. A. (2006). Development and validation of a revised short
    version of the Working Alliance Inventory. Psychotherapy Research, 16(1), 12-25.
    Falkenström, F., Granström, F., & Holmqvist, R. (2013). Therapeutic alliance predicts
    symptomatic improvement session by session. Journal of Counseling Psychology, 60(3), 317-328.
    Stiles, W. B., Glick, M. J., Osatuke, K., et al. (2004). Patterns of alliance development
    and the rupture-repair hypothesis: Are productive relationships U-shaped or V-shaped?
    Journal of Counseling Psychology, 51(1), 81-92.
    Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in adult
    psychotherapy: A meta-analytic synthesis. Psychotherapy, 55(4), 316-340.

    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    data_dir, codebook_dir = Path(data_dir), Path(codebook_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    codebook_dir.mkdir(parents=True, exist_ok=True)
    streams = dict(
        zip(
            STREAMS,
            (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(STREAMS))),
            strict=True,
        )
    )
    instrument = load_instrument("wai_sr")
    m = _measurement(streams["parameters"], instrument)

    sites = [_simulate_site(name, streams[name], m) for name in SITES]
    writers = {"site_a": _site_a, "site_b": _site_b, "site_c": _site_c}
    injected: dict[str, list[dict]] = {}
    expected: dict[str, dict[str, Any]] = {}
    for site in sites:
        path = data_dir / SITES[site.name]["file"]
        errors, rows_in, codes = writers[site.name](site, streams[site.name], path, m)
        injected[site.name] = errors
        expected[site.name] = _expected(errors, rows_in, codes)
    errors, rows_in, published = _published(streams["published"], data_dir / "published.csv")
    injected["published"] = errors
    expected["published"] = _expected(errors, rows_in, {})
    _write_patients(data_dir / "truth_patients.csv", sites)

    codebooks = _codebooks(data_dir, codebook_dir, m)
    for name, document in codebooks.items():
        _write_yaml(codebook_dir / f"{name}.yaml", document, seed)

    files = {f"data/{SITES[s]['file']}": data_dir / SITES[s]["file"] for s in SITES}
    files["data/published.csv"] = data_dir / "published.csv"
    files["data/truth_patients.csv"] = data_dir / "truth_patients.csv"
    files.update({f"codebooks/{n}.yaml": codebook_dir / f"{n}.yaml" for n in codebooks})
    truth = _truth(seed, m, sites, published, injected, expected)
    truth["files"] = {key: _sha256(path) for key, path in sorted(files.items())}
    text = json.dumps(truth, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    (data_dir / "truth.json").write_bytes(text.encode("utf-8"))
    return json.loads(text)


def _expected(errors: list[dict], rows_in: int, codes: dict[str, int]) -> dict[str, Any]:
    from alliance.data.ingest import CELL_REASONS  # a bad answer quarantines its cell, not the row

    by_row = {(e["row"], e["reason"]) for e in errors}
    quarantined = len({row for row, reason in by_row if reason not in CELL_REASONS})
    return {
        "rows_in": rows_in,
        "rows_kept": rows_in - quarantined,
        "rows_quarantined": quarantined,
        "reasons": dict(sorted(Counter(reason for _, reason in by_row).items())),
        "missing_code_cells": codes,
    }


def _expected_top_share(m: _Measurement) -> float:
    """Return P(answer = 5) under the normal latent-response model, averaged over items."""
    return float(np.mean([0.5 * math.erfc(t / math.sqrt(2)) for t in m.thresholds[:, -1]]))


def _truth(
    seed: int,
    m: _Measurement,
    sites: list[_Site],
    published: dict[str, Any],
    injected: dict[str, list[dict]],
    expected: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    ph, out, rup = PARAMETERS["phq9"], PARAMETERS["outcome"], PARAMETERS["rupture"]
    sd_change = _change_residual_sd()
    lag_sd = out["lagged_within_effect_sd"]
    b_w, b_b = out["b_within_points_per_sd"], out["b_between_points_per_sd"]
    return {
        "generator": {
            "module": "alliance.simulate",
            "function": "simulate_demo",
            "seed": seed,
            "streams": {
                "scheme": "numpy.random.SeedSequence(seed).spawn(5), one default_rng each",
                "order": list(STREAMS),
            },
            "fixed_timestamp": FIXED_TIMESTAMP.isoformat(),
        },
        "datasets": {
            **{
                name: {
                    "kind": "items",
                    "file": spec["file"],
                    "format": spec["format"],
                    "codebook": f"{name}.yaml",
                }
                for name, spec in SITES.items()
            },
            "published": {
                "kind": "effects",
                "file": "published.csv",
                "format": "csv",
                "codebook": "published.yaml",
            },
        },
        "design": {
            "n_sessions": N_SESSIONS,
            "sites": {
                name: {
                    key: spec[key]
                    for key in ("file", "format", "layout", "n_patients", "n_therapists", "raters")
                }
                for name, spec in SITES.items()
            },
            "total_patients": sum(s["n_patients"] for s in SITES.values()),
            "total_therapists": sum(s["n_therapists"] for s in SITES.values()),
            "site_effects": "none: every site follows the same generating model",
        },
        "wai_sr": {
            "factors": {f: list(members) for f, members in m.instrument.factors.items()},
            "factor_correlations": PARAMETERS["factor_correlations"],
            "loadings": {item: float(v) for item, v in zip(m.items, m.loadings, strict=True)},
            "thresholds": {
                item: [float(t) for t in row]
                for item, row in zip(m.items, m.thresholds, strict=True)
            },
            "loading_range": PARAMETERS["loading_range"],
            "residual_correlations": PARAMETERS["residual_correlations"],
            "item_nonresponse_rate": PARAMETERS["item_nonresponse_rate"],
            "phq9_nonresponse_rate": PARAMETERS["phq9_nonresponse_rate"],
            "straightliner_share": PARAMETERS["straightliner_share"],
            "straightlining": "every client row of a straight-liner has all 12 items equal to "
            "the row's median generated answer; no item non-response",
            "expected_top_category_share": _round(_expected_top_share(m), 4),
            "scale": "1-5 categories = 1 + number of thresholds below the latent response",
        },
        "alliance": {
            "composite": "A = mean(task, goal, bond) / sqrt(mean(phi)): its therapist, "
            "patient and session parts have the variance_shares, so A has variance 1 over all "
            "patient-sessions with rupture dips counted as session-level (state) variance",
            "composite_scale": _round(m.composite_scale),
            "variance_shares": PARAMETERS["variance_shares"],
            "session_component_variance": _round(_client_shares()["session"]),
            "rupture_dip_variance": _round(_dip_moments()["pooled_variance"]),
            "growth_per_session": PARAMETERS["alliance_growth_per_session"],
            "therapist_rater": {
                **PARAMETERS["therapist_rater"],
                "model": "eta_therapist = latent_mean + client_loading * eta_client + "
                "sqrt(1 - client_loading^2) * unique; same loadings and thresholds as clients",
            },
        },
        "ruptures": {
            **rup,
            "depth_units": "SD of the alliance composite A (total variance 1)",
            "definition": "A drops depth_sd below the patient's trend at `session`; repaired: "
            "back to trend after 1 session, or half depth then back after 2; unrepaired: "
            "stays unrepaired_persisting_fraction * depth below trend until the end",
            "episodes": [e for s in sites for e in s.episodes],
        },
        "outcome": {
            "phq9": ph,
            "b_within_points_per_sd": b_w,
            "b_between_points_per_sd": b_b,
            "contextual_effect_points_per_sd": _round(b_b - b_w),
            "b_within_std": _round(b_w / ph["intake_sd"]),
            "b_between_std": _round(b_b / ph["intake_sd"]),
            "residual_change_sd": _round(sd_change),
            "lagged_within_effect": {
                "sd": lag_sd,
                "points": _round(lag_sd * ph["intake_sd"]),
                "definition": "PHQ-9 at session t+1 changes by `sd` intake SDs (`points` "
                "points) per 1 SD of A (total SD) that the patient's alliance at session t lies "
                "above the patient's own trend (session component plus rupture dip)",
            },
            "patient_level_partial_r": {
                "value": out["patient_level_partial_r"],
                "alliance_session": out["alliance_session"],
                "definition": "population partial correlation between the latent client "
                "alliance composite A at session 3 and the latent session-12 PHQ-9 (before "
                "rounding and clipping, as if nobody dropped out) given intake PHQ-9; negative "
                "= better alliance, fewer symptoms; |r| = .28 as in Flückiger et al. 2018",
            },
            "change_model": "change = mean_change_points + baseline_slope * (intake - "
            "intake_mean) + b_within * A_patient + b_between * A_therapist + "
            "repair_effect * repaired + N(0, residual_change_sd)",
        },
        "dropout": {
            **PARAMETERS["dropout"],
            "definition": "after each attended session t = 1..11 the patient leaves with "
            "logit h = logit(baseline_hazard) + log_odds_per_sd_alliance * A_t (latent client "
            "composite at t, rupture dips included); rows stop after the last attended session",
        },
        "covariates": {**PARAMETERS["covariates"], "effects": "none"},
        "published": published,
        "injected_errors": injected,
        "expected_ingest": expected,
        "sample": {s.name: s.sample for s in sites},
    }
