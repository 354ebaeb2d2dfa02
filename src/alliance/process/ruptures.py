"""Rupture-repair episodes: V-shaped drops and returns in session-by-session alliance scores."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "EPISODE_COLUMNS",
    "PATIENT_COLUMNS",
    "RuptureRule",
    "detect_ruptures",
    "rci_criterion",
    "recovery",
]

THRESHOLD_TYPES = ("fixed", "sd", "rci")
SD_FLOORS = ("pooled", "none")
STATUSES = ("repaired", "unrepaired", "censored")

EPISODE_COLUMNS = [
    "patient_id",
    "therapist_id",
    "rupture_session",
    "pre_level",
    "rupture_score",
    "depth",
    "threshold",
    "depth_ratio",
    "status",
    "repaired",
    "repair_session",
    "repair_score",
    "sessions_to_repair",
]
PATIENT_COLUMNS = [
    "patient_id",
    "therapist_id",
    "sessions_observed",
    "first_session",
    "last_session",
    "eligible",
    "own_sd",
    "threshold",
    "n_ruptures",
    "n_repaired",
    "n_unrepaired",
    "n_censored",
]

#: The definition, for docs, reports and the JSON summary.
DEFINITION = (
    "A rupture is a session whose alliance score lies at least `threshold` below the "
    "patient's pre-rupture level (the mean of the preceding `baseline_sessions` observed "
    "sessions that are not part of an earlier episode); it is repaired when a score within "
    "the next `repair_window` sessions returns to within `repair_margin` of that level (the "
    "high-low-high V shape of Stiles et al. 2004), unrepaired when every session of the "
    "window was observed and none returned, and censored when the window was not fully "
    "observed (dropout or a missing session) and no return was seen."
)


def rci_criterion(scale_sd: float, reliability: float, z: float = 1.96) -> float:
    """Return the reliable change criterion ``z sqrt(2) SD sqrt(1 - r_xx)`` in scale units.

    A difference between two scores of one person larger than this is reliable change
    (Jacobson & Truax 1991): ``sqrt(2) SD sqrt(1 - r_xx)`` is the standard error of the
    difference of two scores with standard error of measurement ``SD sqrt(1 - r_xx)``.

    Parameters
    ----------
    scale_sd
        SD of the scale in the reference sample (for example all patients at one session).
    reliability
        Reliability of the scale (for example Cronbach's alpha), between 0 and 1.
    z
        Normal quantile (1.96 for p < .05, two-sided).

    Raises
    ------
    ValueError
        If ``scale_sd`` is not positive, ``reliability`` is outside [0, 1) or ``z`` is not
        positive.

    References
    ----------
    Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to
    defining meaningful change in psychotherapy research. Journal of Consulting and Clinical
    Psychology, 59(1), 12-19.

    """
    if not (isinstance(scale_sd, int | float) and scale_sd > 0 and math.isfinite(scale_sd)):
        raise ValueError(f"scale_sd must be a positive number, got {scale_sd!r}")
    if not (isinstance(reliability, int | float) and 0 <= reliability < 1):
        raise ValueError(f"reliability must be in [0, 1), got {reliability!r}")
    if not z > 0:
        raise ValueError(f"z must be positive, got {z}")
    return float(z * math.sqrt(2) * scale_sd * math.sqrt(1 - reliability))


@dataclass(frozen=True)
class RuptureRule:
    """Settings of rupture-repair detection (see :func:`detect_ruptures`).

    Attributes
    ----------
    threshold_type
        ``"fixed"``: a rupture is a drop of at least ``threshold`` scale points;
        ``"sd"``: at least ``threshold`` times the patient's own SD of session scores
        (intraindividual SD; with ``sd_floor="pooled"`` at least the pooled within-patient
        SD, the stricter of the two as Gumz et al. 2012 propose, so a patient with an almost
        flat course does not turn small wobbles into ruptures); ``"rci"``: at least
        ``threshold`` times the reliable change criterion :func:`rci_criterion` of the scale.
    threshold
        The amount (fixed) or multiplier (sd, rci); positive. Default 2 (SD), the stricter
        criterion of Stiles et al. (2004).
    baseline_sessions
        Number of preceding observed sessions whose mean is the pre-rupture level.
    repair_window
        Sessions after the rupture within which a return counts as repair (default 2).
    repair_margin
        A return to at least ``pre_level - repair_margin`` is a repair; None: half of the
        patient's rupture threshold.
    min_sessions
        Patients with fewer observed scores are not analysed (``eligible`` False).
    scale_sd, reliability
        Inputs of the RCI (required for ``threshold_type="rci"``).
    sd_floor
        ``"pooled"`` or ``"none"`` (``threshold_type="sd"`` only).

    """

    threshold_type: str = "sd"
    threshold: float = 2.0
    baseline_sessions: int = 3
    repair_window: int = 2
    repair_margin: float | None = None
    min_sessions: int = 3
    scale_sd: float | None = None
    reliability: float | None = None
    sd_floor: str = "pooled"

    def __post_init__(self) -> None:
        """Validate the settings."""
        if self.threshold_type not in THRESHOLD_TYPES:
            raise ValueError(
                f"threshold_type must be one of {THRESHOLD_TYPES}, got {self.threshold_type!r}"
            )
        if not self.threshold > 0:
            raise ValueError(f"threshold must be positive, got {self.threshold}")
        for name in ("baseline_sessions", "repair_window"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.min_sessions, int) and self.min_sessions >= 2):
            raise ValueError(f"min_sessions must be an integer >= 2, got {self.min_sessions!r}")
        if self.repair_margin is not None and not self.repair_margin >= 0:
            raise ValueError(f"repair_margin must be >= 0 or None, got {self.repair_margin}")
        if self.sd_floor not in SD_FLOORS:
            raise ValueError(f"sd_floor must be one of {SD_FLOORS}, got {self.sd_floor!r}")
        if self.threshold_type == "rci":
            if self.scale_sd is None or self.reliability is None:
                raise ValueError(
                    "threshold_type 'rci' needs scale_sd and reliability, got "
                    f"scale_sd={self.scale_sd}, reliability={self.reliability}"
                )
            rci_criterion(self.scale_sd, self.reliability)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> RuptureRule:
        """Build a rule from a config mapping (unknown keys are an error)."""
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown rupture settings {unknown}; known: {sorted(known)}")
        return cls(**config)

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict."""
        return asdict(self)


def _series(scores: pd.DataFrame, score: str, rater: str | None) -> pd.DataFrame:
    need = ["patient_id", "session", score]
    missing = [c for c in need if c not in scores]
    if missing:
        raise ValueError(f"scores lack columns {missing}")
    frame = scores
    if rater is not None and "rater" in scores:
        frame = scores[scores["rater"] == rater]
    cols = need + (["therapist_id"] if "therapist_id" in frame else [])
    frame = frame[cols].copy()
    frame["patient_id"] = frame["patient_id"].astype(str)
    frame["session"] = frame["session"].astype(float)
    frame[score] = frame[score].astype(float)
    frame = frame[np.isfinite(frame[score]) & np.isfinite(frame["session"])]
    if frame.duplicated(["patient_id", "session"]).any():
        raise ValueError("scores have more than one row per patient x session for this rater")
    frame["session"] = frame["session"].astype(int)
    if "therapist_id" not in frame:
        frame["therapist_id"] = None
    else:
        frame["therapist_id"] = frame["therapist_id"].astype(object)
    return frame.sort_values(["patient_id", "session"], ignore_index=True)


def _patient_episodes(
    sessions: np.ndarray, y: np.ndarray, thr: float, margin: float, rule: RuptureRule
) -> list[dict[str, Any]]:
    """Scan one patient's observed course for rupture-repair episodes.

    Sessions from a rupture up to (not including) its repair never enter a later
    pre-rupture level; the repair session and the window sessions of an unrepaired rupture
    do (an unrepaired rupture's lower level becomes the new reference).
    """
    episodes: list[dict[str, Any]] = []
    excluded = np.zeros(len(y), dtype=bool)
    position = {int(s): k for k, s in enumerate(sessions)}
    i = 1
    while i < len(y):
        previous = np.flatnonzero(~excluded[:i])[-rule.baseline_sessions :]
        if len(previous) == 0:
            i += 1
            continue
        pre = float(np.mean(y[previous]))
        depth = pre - y[i]
        if depth < thr:
            i += 1
            continue
        s0 = int(sessions[i])
        status, repair_k, seen = "unrepaired", None, []
        for s in range(s0 + 1, s0 + rule.repair_window + 1):
            k = position.get(s)
            if k is None:
                status = "censored"
                continue
            seen.append(k)
            if y[k] >= pre - margin:
                status, repair_k = "repaired", k
                break
        if repair_k is not None:
            excluded[i:repair_k] = True
            resume = repair_k + 1
        else:
            excluded[i] = True
            resume = (seen[-1] if seen else i) + 1
            if status == "censored":
                later = np.flatnonzero(sessions > s0 + rule.repair_window)
                resume = int(later[0]) if len(later) else len(y)
        episodes.append(
            {
                "rupture_session": s0,
                "pre_level": pre,
                "rupture_score": float(y[i]),
                "depth": float(depth),
                "threshold": thr,
                "depth_ratio": float(depth / thr),
                "status": status,
                "repaired": status == "repaired",
                "repair_session": int(sessions[repair_k]) if repair_k is not None else None,
                "repair_score": float(y[repair_k]) if repair_k is not None else None,
                "sessions_to_repair": (
                    int(sessions[repair_k]) - s0 if repair_k is not None else None
                ),
            }
        )
        i = max(resume, i + 1)
    return episodes


def detect_ruptures(
    scores: pd.DataFrame,
    rule: RuptureRule | None = None,
    score: str = "total_mean",
    rater: str | None = "client",
) -> dict[str, Any]:
    """Detect rupture-repair episodes in each patient's session-by-session alliance scores.

    Definition (after Stiles et al. 2004, who operationalized the rupture-repair sequence as
    a V-shaped high-low-high deflection of post-session alliance ratings, and Safran & Muran
    2000 and Eubanks, Muran & Safran 2018, for whom a rupture is a tension or breakdown in the
    collaboration between patient and therapist and its repair the restoration of that
    collaboration): a rupture is a session
    whose score lies at least ``threshold`` below the patient's pre-rupture level, the mean
    of the preceding ``rule.baseline_sessions`` observed sessions that are not part of an
    earlier episode. It is *repaired* when a score within the next ``rule.repair_window``
    sessions returns to at least ``pre_level - repair_margin``; *unrepaired* when every
    session of that window was observed and none returned; *censored* when part of the window
    was not observed (dropout or a missing session) and no return was seen. After an episode
    the scan resumes at the session after the repair (or after the window), and sessions of
    an episode never enter a later pre-rupture level, so an unrepaired rupture's lower level
    becomes the reference for later drops.

    The threshold (``rule.threshold_type``): a fixed number of scale points; a multiple of
    the patient's own SD of session scores (Stiles et al. 2004 used 2 SD, Strauss et al. 2006
    1 SD; Gumz, Brähler, Geyer & Erices 2012 compare both and propose taking the stricter of
    the intra- and inter-individual SD, ``sd_floor="pooled"`` here, with the pooled
    within-patient SD as the inter-individual reference); or a multiple of the reliable change
    criterion of the scale (Jacobson & Truax 1991, :func:`rci_criterion`).

    Parameters
    ----------
    scores
        Scores table (docs/data-model.md) with ``patient_id``, ``session``, ``score`` and
        optionally ``rater`` and ``therapist_id``.
    rule
        Detection settings; default :class:`RuptureRule` ().
    score
        Score column (default the client's WAI-SR total mean).
    rater
        Rater whose scores are used (None: all rows; they must be unique per session).

    Returns
    -------
    dict
        ``episodes`` (DataFrame, :data:`EPISODE_COLUMNS`), ``patients`` (DataFrame,
        :data:`PATIENT_COLUMNS`), ``settings`` (the rule, the score, the rater, the pooled
        within-patient SD, the RCI criterion where used), ``definition`` (text) and
        ``summary`` (counts).

    Raises
    ------
    ValueError
        If a column is missing or a patient has two scores for one session.

    References
    ----------
    Stiles, W. B., Glick, M. J., Osatuke, K., Hardy, G. E., Shapiro, D. A., Agnew-Davies,
    R., Rees, A., & Barkham, M. (2004). Patterns of alliance development and the
    rupture-repair hypothesis: Are productive relationships U-shaped or V-shaped? Journal of
    Counseling Psychology, 51(1), 81-92.
    Strauss, J. L., Hayes, A. M., Johnson, S. L., Newman, C. F., Brown, G. K., Barber, J. P.,
    Laurenceau, J.-P., & Beck, A. T. (2006). Early alliance, alliance ruptures, and symptom
    change in a nonrandomized trial of cognitive therapy for avoidant and
    obsessive-compulsive personality disorders. Journal of Consulting and Clinical
    Psychology, 74(2), 337-345.
    Gumz, A., Brähler, E., Geyer, M., & Erices, R. (2012). Crisis-repair sequences:
    Considerations on the classification and assessment of breaches in the therapeutic
    relationship. BMC Medical Research Methodology, 12, 10.
    Safran, J. D., & Muran, J. C. (2000). Negotiating the therapeutic alliance: A relational
    treatment guide. Guilford Press.
    Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A
    meta-analysis. Psychotherapy, 55(4), 508-519.
    Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to
    defining meaningful change in psychotherapy research. Journal of Consulting and Clinical
    Psychology, 59(1), 12-19.

    """
    rule = rule or RuptureRule()
    frame = _series(scores, score, rater)
    groups = {pid: g for pid, g in frame.groupby("patient_id", sort=True)}
    sizes = {pid: len(g) for pid, g in groups.items()}
    eligible = {pid for pid, n in sizes.items() if n >= rule.min_sessions}
    # pooled within-patient SD over eligible patients (degrees-of-freedom weighted)
    ss = sum(
        float(((g[score] - g[score].mean()) ** 2).sum()) for p, g in groups.items() if p in eligible
    )
    dof = sum(sizes[p] - 1 for p in eligible)
    pooled_sd = math.sqrt(ss / dof) if dof > 0 else float("nan")
    rci = None
    if rule.threshold_type == "rci":
        rci = rci_criterion(float(rule.scale_sd), float(rule.reliability))  # type: ignore[arg-type]
    episode_rows: list[dict[str, Any]] = []
    patient_rows: list[dict[str, Any]] = []
    for pid, g in groups.items():
        y = g[score].to_numpy(dtype=float)
        sessions = g["session"].to_numpy(dtype=int)
        therapist = g["therapist_id"].iloc[0]
        own_sd = float(np.std(y, ddof=1)) if len(y) >= 2 else float("nan")
        row = {
            "patient_id": pid,
            "therapist_id": therapist,
            "sessions_observed": int(len(y)),
            "first_session": int(sessions[0]),
            "last_session": int(sessions[-1]),
            "eligible": pid in eligible,
            "own_sd": own_sd,
            "threshold": float("nan"),
            "n_ruptures": 0,
            "n_repaired": 0,
            "n_unrepaired": 0,
            "n_censored": 0,
        }
        if pid in eligible:
            if rule.threshold_type == "fixed":
                thr = float(rule.threshold)
            elif rule.threshold_type == "sd":
                base = max(own_sd, pooled_sd) if rule.sd_floor == "pooled" else own_sd
                thr = float(rule.threshold * base)
            else:
                thr = float(rule.threshold * rci)  # type: ignore[operator]
            row["threshold"] = thr
            if thr > 0:
                margin = thr / 2 if rule.repair_margin is None else float(rule.repair_margin)
                found = _patient_episodes(sessions, y, thr, margin, rule)
                for ep in found:
                    episode_rows.append({"patient_id": pid, "therapist_id": therapist, **ep})
                row["n_ruptures"] = len(found)
                for status in STATUSES:
                    row[f"n_{status}"] = sum(ep["status"] == status for ep in found)
        patient_rows.append(row)
    episodes = pd.DataFrame(episode_rows, columns=EPISODE_COLUMNS)
    episodes = episodes.astype(
        {
            "rupture_session": "Int64",
            "repair_session": "Int64",
            "sessions_to_repair": "Int64",
            "repaired": bool,
            "repair_score": float,
        }
    )
    patients = pd.DataFrame(patient_rows, columns=PATIENT_COLUMNS)
    n_elig = int(patients["eligible"].sum())
    summary = {
        "patients": int(len(patients)),
        "patients_eligible": n_elig,
        "patients_with_rupture": int((patients["n_ruptures"] > 0).sum()),
        "share_with_rupture": (
            float((patients["n_ruptures"] > 0).sum() / n_elig) if n_elig else None
        ),
        "episodes": int(len(episodes)),
        **{status: int((episodes["status"] == status).sum()) for status in STATUSES},
    }
    settings = {
        **rule.as_dict(),
        "score": score,
        "rater": rater,
        "pooled_within_patient_sd": pooled_sd,
        "rci_criterion": rci,
        "repair_margin_rule": (
            "half of the patient's threshold" if rule.repair_margin is None else "fixed"
        ),
    }
    return {
        "episodes": episodes,
        "patients": patients,
        "settings": settings,
        "definition": DEFINITION,
        "summary": summary,
    }


def recovery(
    detected: Mapping[str, Any],
    truth_episodes: Sequence[Mapping[str, Any]],
    tolerance: int = 1,
) -> dict[str, Any]:
    """Compare detected episodes with known (simulated) ones.

    A true episode counts as *detectable* when its rupture session was observed
    (``observed``); a detected episode matches a true one of the same patient when their
    rupture sessions differ by at most ``tolerance`` sessions (one-to-one, nearest first).

    Parameters
    ----------
    detected
        The result of :func:`detect_ruptures`.
    truth_episodes
        Records with ``patient_id``, ``session``, ``repaired``, ``observed`` and optionally
        ``repair_sessions`` (as in ``truth.json`` ``ruptures.episodes``).
    tolerance
        Largest session difference of a match.

    Returns
    -------
    dict
        ``n_true`` (observed true episodes among analysed patients), ``n_detected``,
        ``n_matched``, ``sensitivity``, ``precision``, ``false_positive_patients`` (share of
        eligible patients without a true episode who have a detected one), and
        ``classification``: among matched pairs whose true status is decidable from the
        observed sessions and whose detected status is not censored, ``n``, ``agreement``,
        Cohen's ``kappa`` and the counts ``true_repaired_detected_repaired`` and the like.

    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    patients = detected["patients"].set_index("patient_id")
    eligible = set(patients.index[patients["eligible"]])
    window = int(detected["settings"]["repair_window"])
    truth = [dict(e) for e in truth_episodes if str(e["patient_id"]) in eligible]
    true_obs = [e for e in truth if e.get("observed", True)]
    episodes = detected["episodes"]
    det = [r for r in episodes.to_dict("records") if r["patient_id"] in eligible]
    used: set[int] = set()
    matches: list[tuple[dict[str, Any], dict[str, Any]]] = []
    by_patient: dict[str, list[int]] = {}
    for k, r in enumerate(det):
        by_patient.setdefault(r["patient_id"], []).append(k)
    for e in sorted(true_obs, key=lambda e: (str(e["patient_id"]), int(e["session"]))):
        cands = [
            (abs(int(det[k]["rupture_session"]) - int(e["session"])), k)
            for k in by_patient.get(str(e["patient_id"]), [])
            if k not in used
            and abs(int(det[k]["rupture_session"]) - int(e["session"])) <= tolerance
        ]
        if cands:
            _, k = min(cands)
            used.add(k)
            matches.append((e, det[k]))
    # detected episodes matching any true episode (observed or not) are not false positives
    n_det_matched = len(used)
    counts: dict[str, int] = {}
    for e, r in matches:
        last = int(patients.loc[str(e["patient_id"]), "last_session"])
        if e["repaired"]:
            decidable = bool(e.get("repair_observed", True))
        else:
            decidable = last >= int(e["session"]) + window
        if not decidable or r["status"] == "censored":
            continue
        key = (
            f"true_{'repaired' if e['repaired'] else 'unrepaired'}_"
            f"detected_{'repaired' if r['repaired'] else 'unrepaired'}"
        )
        counts[key] = counts.get(key, 0) + 1
    n_cls = sum(counts.values())
    agree = counts.get("true_repaired_detected_repaired", 0) + counts.get(
        "true_unrepaired_detected_unrepaired", 0
    )
    kappa = None
    if n_cls:
        rr = counts.get("true_repaired_detected_repaired", 0)
        ru = counts.get("true_repaired_detected_unrepaired", 0)
        ur = counts.get("true_unrepaired_detected_repaired", 0)
        p_true, p_det = (rr + ru) / n_cls, (rr + ur) / n_cls
        chance = p_true * p_det + (1 - p_true) * (1 - p_det)
        kappa = (agree / n_cls - chance) / (1 - chance) if chance < 1 else None
    true_patients = {str(e["patient_id"]) for e in truth}
    clean = [p for p in eligible if p not in true_patients]
    fp_patients = sum(int(patients.loc[p, "n_ruptures"] > 0) for p in clean)
    return {
        "tolerance_sessions": tolerance,
        "n_true": len(true_obs),
        "n_detected": len(det),
        "n_matched": len(matches),
        "sensitivity": len(matches) / len(true_obs) if true_obs else None,
        "precision": n_det_matched / len(det) if det else None,
        "patients_without_true_episode": len(clean),
        "false_positive_patients": fp_patients / len(clean) if clean else None,
        "classification": {
            "n": n_cls,
            "agreement": agree / n_cls if n_cls else None,
            "kappa": kappa,
            **{
                f"true_{t}_detected_{d}": counts.get(f"true_{t}_detected_{d}", 0)
                for t in ("repaired", "unrepaired")
                for d in ("repaired", "unrepaired")
            },
        },
    }
