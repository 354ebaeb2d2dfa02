"""Model inputs for the Bayesian alliance-outcome models, built from the tidy tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from alliance.data.instruments import Instrument

__all__ = [
    "BASELINE_TIMEPOINTS",
    "POST_TIMEPOINTS",
    "InsufficientData",
    "ModelData",
    "dataset_instrument",
    "load_tables",
    "patient_data",
    "session_data",
]

#: Fixed time points (``outcomes.timepoint``) read as the baseline, in order of preference.
BASELINE_TIMEPOINTS = ("intake", "baseline", "pre")
#: Fixed time points read as the post-treatment outcome, in order of preference.
POST_TIMEPOINTS = ("post", "end", "termination")


class InsufficientData(ValueError):
    """The data cannot support the model (too few patients, lagged rows, no variation).

    Not an error of the input or the code: the fit is skipped with this reason
    (:func:`alliance.bayes.api.fit_model`), and the other models and datasets go on.
    """


@dataclass
class ModelData:
    """Inputs of one model: an analysis frame, index coordinates, scales and the rules applied.

    Attributes
    ----------
    frame
        One row per analysed unit (patient, or patient x session for the session model).
    coords
        PyMC coordinates (``patient``, ``therapist`` and the like).
    scales
        Means and SDs used for standardization, so effects convert back to raw units (for
        example PHQ-9 points = standardized effect x ``scales["outcome_unit_sd"]``).
    info
        The rules applied and the counts of included and excluded units.

    """

    frame: pd.DataFrame
    coords: dict[str, list[str]] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def _ingest_folder(root: Path) -> Path:
    return root / "ingest" if (root / "ingest").is_dir() else root


def dataset_instrument(source: str | Path | Mapping[str, pd.DataFrame]) -> Instrument | None:
    """The instrument a dataset's items were ingested with, or None when it is not known.

    Parameters
    ----------
    source
        As in :func:`load_tables`: a dataset's results folder or its ``ingest`` folder (the
        instrument of its ingest report, i.e. the codebook's, a user's instrument file
        included), or tables (None: tables do not say).
    """
    if isinstance(source, Mapping):
        return None
    ingest = _ingest_folder(Path(source))
    if not (ingest / "ingest_report.json").is_file():
        return None
    from alliance.data.tidy import ingested_instrument

    return ingested_instrument(ingest)


def load_tables(source: str | Path | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Read the tidy tables a Bayesian model needs.

    Parameters
    ----------
    source
        A dataset's results folder (``results/{dataset}``, holding ``ingest/`` and
        ``scores/``), an ``ingest`` folder (``scores`` is then looked up next to it), or a
        mapping with the tables ``scores`` (or ``items``), ``outcomes`` and optionally
        ``patients``.

    Returns
    -------
    dict
        ``scores`` (docs/data-model.md; when no scores table exists, computed from ``items``
        with the instrument of the folder's ingest report, or the WAI-SR key for a mapping),
        ``outcomes`` and ``patients`` (possibly empty).

    Raises
    ------
    ValueError
        If a required table is missing.

    """
    instrument = "wai_sr"
    if isinstance(source, Mapping):
        tables = {k: v for k, v in source.items() if v is not None}
    else:
        root = Path(source)
        if not root.is_dir():
            raise ValueError(f"dataset folder does not exist, got {str(root)!r}")
        ingest = _ingest_folder(root)
        scores_dir = root / "scores" if (root / "scores").is_dir() else root.parent / "scores"
        tables = {}
        for name, path in (
            ("outcomes", ingest / "outcomes.parquet"),
            ("patients", ingest / "patients.parquet"),
            ("items", ingest / "items.parquet"),
            ("scores", scores_dir / "scores.parquet"),
        ):
            if path.is_file():
                tables[name] = _read(path)
        if "scores" not in tables and (ingest / "ingest_report.json").is_file():
            # the instrument the data were ingested with (the codebook's), not an assumed one
            instrument = dataset_instrument(root)
    if "scores" not in tables and "items" in tables:
        from alliance.data.instruments import load_instrument
        from alliance.data.scoring import score_items

        if isinstance(instrument, str):
            instrument = load_instrument(instrument)
        tables["scores"] = score_items(tables["items"], instrument)
    for name in ("scores", "outcomes"):
        if name not in tables:
            raise ValueError(f"the Bayesian models need the table {name!r}, got {sorted(tables)}")
    tables.setdefault("patients", pd.DataFrame(columns=["patient_id", "therapist_id"]))
    return tables


def _alliance_long(
    scores: pd.DataFrame, rater: str, score: str
) -> pd.DataFrame:  # patient_id, session, alliance
    if score not in scores.columns:
        raise ValueError(f"score column not in the scores table, got {score!r}")
    rows = scores[scores["rater"].astype(str) == rater]
    out = pd.DataFrame(
        {
            "patient_id": rows["patient_id"].astype(str).to_numpy(),
            "session": pd.to_numeric(rows["session"]).to_numpy(dtype=float),
            "alliance": pd.to_numeric(rows[score]).to_numpy(dtype=float, na_value=np.nan),
        }
    )
    return out.dropna().reset_index(drop=True)


def _symptoms_long(outcomes: pd.DataFrame, measure: str) -> pd.DataFrame:
    rows = outcomes[outcomes["measure"].astype(str) == measure]
    if rows.empty:
        raise InsufficientData(f"no outcome rows for measure {measure!r}")
    return pd.DataFrame(
        {
            "patient_id": rows["patient_id"].astype(str).to_numpy(),
            "session": pd.to_numeric(rows["session"]).to_numpy(dtype=float, na_value=np.nan),
            "timepoint": rows["timepoint"].astype(str).to_numpy(),
            "value": pd.to_numeric(rows["value"]).to_numpy(dtype=float, na_value=np.nan),
        }
    ).dropna(subset=["value"])


def _therapists(tables: Mapping[str, pd.DataFrame]) -> pd.Series:
    """Patient -> therapist, from ``patients`` where given, else from the scores rows."""
    for name in ("patients", "scores"):
        table = tables.get(name)
        if table is not None and "therapist_id" in table.columns and len(table):
            pairs = table[["patient_id", "therapist_id"]].dropna().astype(str)
            pairs = pairs.drop_duplicates("patient_id")
            if len(pairs):
                return pairs.set_index("patient_id")["therapist_id"]
    return pd.Series(dtype=str)


def _fixed(symptoms: pd.DataFrame, labels: tuple[str, ...]) -> pd.Series:
    """Per patient, the value at the first of ``labels`` present as a fixed time point."""
    for label in labels:
        rows = symptoms[symptoms["timepoint"].str.lower() == label]
        if len(rows):
            return rows.groupby("patient_id")["value"].last()
    return pd.Series(dtype=float)


def _z(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    mean, sd = float(np.mean(x)), float(np.std(x, ddof=1))
    if not np.isfinite(sd) or sd <= 0:
        raise InsufficientData(f"cannot standardize a variable without variation, got SD {sd}")
    return (x - mean) / sd, mean, sd


def patient_data(
    tables: Mapping[str, pd.DataFrame],
    alliance_session: int = 3,
    rater: str = "client",
    score: str = "total_mean",
    measure: str = "phq9",
    baseline_session: int = 1,
    lower_is_better: bool = True,
) -> ModelData:
    """Patient-level inputs of the outcome and therapist models.

    Rules (one row per patient who has all three values):

    * **early alliance** ``A``: the ``rater``'s ``score`` (default the client's WAI-SR total
      mean) at session ``alliance_session``;
    * **baseline**: the ``measure`` at a fixed intake time point (``intake``, ``baseline`` or
      ``pre``, in that order) if the data have one, else at session ``baseline_session``
      (session 1: the intake PHQ-9, before the alliance is measured);
    * **post-treatment outcome**: the ``measure`` at a fixed ``post`` (or ``end``,
      ``termination``) time point if the data have one, else the **last observed** session
      value, which must lie after ``alliance_session`` (a last-observation end point: a
      patient who drops out contributes the last score before leaving; patients with no
      score after the alliance session are excluded and counted in ``info``). When dropout
      depends on the alliance, as in the demo data, this end point differs from the
      completers' session-12 score.

    Standardization: ``z_alliance`` and ``z_baseline`` are z-scores over the analysed
    patients; ``z_post`` is the z-scored outcome (outcome model); ``y`` is the outcome
    centred at its mean and divided by the **baseline SD** (therapist model: effects in
    pre-treatment SD units, times ``scales["outcome_unit_sd"]`` = raw points). For the
    therapist model ``a_within = z_alliance - mean_j(z_alliance)`` (patient centred within
    therapist j) and ``a_between = mean_j(z_alliance)`` (the therapist's mean over the
    analysed patients), as in Baldwin, Wampold & Imel (2007).

    Parameters
    ----------
    tables
        From :func:`load_tables`.
    alliance_session
        Session of the early alliance (a positive whole number; default 3).
    rater, score
        Rater rows and score column of the scores table.
    measure
        Outcome measure in ``outcomes.measure``.
    baseline_session
        Session whose score is the baseline when the data have no fixed intake time point.
    lower_is_better
        True when lower outcome scores mean fewer symptoms (PHQ-9); it sets the sign of the
        "improvement" effects (``info["sign"]``).

    Returns
    -------
    ModelData
        ``frame`` columns: ``patient_id``, ``therapist_id``, ``therapist_idx``, ``alliance``,
        ``baseline``, ``post``, ``post_session``, ``z_alliance``, ``z_baseline``, ``z_post``,
        ``y``, ``a_within``, ``a_between``; coords ``patient`` and ``therapist``.

    Raises
    ------
    ValueError
        For an invalid session, or when fewer than 10 patients remain.

    References
    ----------
    Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
    correlation. Journal of Consulting and Clinical Psychology, 75(6), 842-852.

    """
    for name, value in (
        ("alliance_session", alliance_session),
        ("baseline_session", baseline_session),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    tables = load_tables(tables)
    alliance = _alliance_long(tables["scores"], rater, score)
    early = alliance[alliance["session"] == alliance_session].groupby("patient_id")["alliance"]
    early = early.mean()
    symptoms = _symptoms_long(tables["outcomes"], measure)
    by_session = symptoms[symptoms["timepoint"].str.lower() == "session"].dropna(subset=["session"])

    baseline = _fixed(symptoms, BASELINE_TIMEPOINTS)
    baseline_rule = "fixed time point"
    if baseline.empty:
        baseline = by_session[by_session["session"] == baseline_session].groupby("patient_id")
        baseline = baseline["value"].mean()
        baseline_rule = f"session {baseline_session}"
    post = _fixed(symptoms, POST_TIMEPOINTS)
    post_rule = "fixed time point"
    if post.empty:
        later = by_session[by_session["session"] > alliance_session].sort_values("session")
        last = later.groupby("patient_id").last()
        post, post_session = last["value"], last["session"]
        post_rule = f"last observed session after session {alliance_session}"
    else:
        post_session = pd.Series(np.nan, index=post.index)

    ids = sorted(set(early.index) | set(baseline.index) | set(post.index))
    frame = pd.DataFrame(index=pd.Index(ids, name="patient_id"))
    frame["alliance"] = early
    frame["baseline"] = baseline
    frame["post"] = post
    frame["post_session"] = post_session
    therapists = _therapists(tables)
    frame["therapist_id"] = therapists.reindex(frame.index)
    missing = {
        "no_alliance": int(frame["alliance"].isna().sum()),
        "no_baseline": int(frame["baseline"].isna().sum()),
        "no_post": int(frame["post"].isna().sum()),
    }
    frame = frame.dropna(subset=["alliance", "baseline", "post"]).reset_index()
    if len(frame) < 10:
        raise InsufficientData(
            f"fewer than 10 patients with alliance, baseline and outcome, got {len(frame)}"
        )
    frame["therapist_id"] = frame["therapist_id"].fillna("unknown").astype(str)
    frame["z_alliance"], a_mean, a_sd = _z(frame["alliance"].to_numpy(float))
    frame["z_baseline"], b_mean, b_sd = _z(frame["baseline"].to_numpy(float))
    frame["z_post"], p_mean, p_sd = _z(frame["post"].to_numpy(float))
    frame["y"] = (frame["post"] - p_mean) / b_sd
    therapist_levels = sorted(frame["therapist_id"].unique())
    frame["therapist_idx"] = pd.Categorical(
        frame["therapist_id"], categories=therapist_levels
    ).codes
    frame["a_between"] = frame.groupby("therapist_id")["z_alliance"].transform("mean")
    frame["a_within"] = frame["z_alliance"] - frame["a_between"]
    scales = {
        "alliance_mean": a_mean,
        "alliance_sd": a_sd,
        "baseline_mean": b_mean,
        "baseline_sd": b_sd,
        "post_mean": p_mean,
        "post_sd": p_sd,
        "outcome_unit_sd": b_sd,
    }
    info = {
        "alliance": f"{rater} {score} at session {alliance_session}",
        "alliance_session": alliance_session,
        "baseline": f"{measure} at {baseline_rule}",
        "post": f"{measure} at {post_rule}",
        "measure": measure,
        "lower_is_better": lower_is_better,
        "sign": (
            "negative slopes and correlations mean better alliance, fewer symptoms"
            if lower_is_better
            else "positive slopes and correlations mean better alliance, better outcome"
        ),
        "n_patients": len(frame),
        "n_therapists": len(therapist_levels),
        "excluded": missing,
    }
    coords = {"patient": frame["patient_id"].tolist(), "therapist": therapist_levels}
    return ModelData(frame=frame, coords=coords, scales=scales, info=info)


def session_data(
    tables: Mapping[str, pd.DataFrame],
    rater: str = "client",
    score: str = "total_mean",
    measure: str = "phq9",
    baseline_session: int = 1,
    lower_is_better: bool = True,
) -> ModelData:
    """Lagged session-level inputs of the session model (Falkenström et al. 2013, 2017).

    One row per patient x session t with the alliance at t, the symptoms at t and the
    symptoms at the next session t + 1 (rows without an observed t + 1 are dropped: no
    interpolation over gaps). The alliance is z-scored over all of the rater's
    patient-sessions (the unit of one SD of the session-level alliance), then split into
    the patient's mean over the analysed rows (``a_mean``) and the deviation from it
    (``a_within``, person-mean centring). Symptoms are expressed in baseline SD units:
    ``y_next = (next - m) / sd_0`` and ``s_now = (now - m) / sd_0`` with ``m`` the mean of the
    current scores and ``sd_0`` the SD of the baseline (session ``baseline_session``) scores,
    so effects times ``scales["outcome_unit_sd"]`` are raw points.

    Parameters
    ----------
    tables
        From :func:`load_tables`.
    rater, score, measure, baseline_session, lower_is_better
        As in :func:`patient_data`.

    Returns
    -------
    ModelData
        ``frame`` columns: ``patient_id``, ``patient_idx``, ``session``, ``alliance``,
        ``now``, ``next``, ``z_alliance``, ``a_within``, ``a_mean``, ``s_now``, ``y_next``;
        coords ``obs`` and ``patient``.

    Raises
    ------
    ValueError
        When fewer than 20 lagged rows remain.

    References
    ----------
    Falkenström, F., Granström, F., & Holmqvist, R. (2013). Therapeutic alliance predicts
    symptomatic improvement session by session. Journal of Counseling Psychology, 60(3),
    317-328.
    Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic
    models of individual change in psychotherapy process research. Journal of Consulting and
    Clinical Psychology, 85(6), 537-549.

    """
    tables = load_tables(tables)
    alliance = _alliance_long(tables["scores"], rater, score)
    alliance = alliance.groupby(["patient_id", "session"], as_index=False)["alliance"].mean()
    alliance["z_alliance"], a_mean, a_sd = _z(alliance["alliance"].to_numpy(float))
    symptoms = _symptoms_long(tables["outcomes"], measure)
    sym = symptoms[symptoms["timepoint"].str.lower() == "session"].dropna(subset=["session"])
    sym = sym.groupby(["patient_id", "session"], as_index=False)["value"].mean()
    base = sym.loc[sym["session"] == baseline_session, "value"].to_numpy(float)
    if len(base) < 2:
        raise InsufficientData(f"no baseline scores at session {baseline_session}, got {len(base)}")
    nxt = sym.assign(session=sym["session"] - 1).rename(columns={"value": "next"})
    frame = alliance.merge(sym.rename(columns={"value": "now"}), on=["patient_id", "session"])
    frame = frame.merge(nxt, on=["patient_id", "session"]).dropna()
    if len(frame) < 20:
        raise InsufficientData(
            "fewer than 20 lagged session rows (a session and the next one, both with "
            f"alliance and symptoms), got {len(frame)}"
        )
    frame = frame.sort_values(["patient_id", "session"]).reset_index(drop=True)
    frame["a_mean"] = frame.groupby("patient_id")["z_alliance"].transform("mean")
    frame["a_within"] = frame["z_alliance"] - frame["a_mean"]
    s_mean, s_sd = float(frame["now"].mean()), float(np.std(base, ddof=1))
    frame["s_now"] = (frame["now"] - s_mean) / s_sd
    frame["y_next"] = (frame["next"] - s_mean) / s_sd
    patients = sorted(frame["patient_id"].unique())
    frame["patient_idx"] = pd.Categorical(frame["patient_id"], categories=patients).codes
    frame["session"] = frame["session"].astype(int)
    scales = {
        "alliance_mean": a_mean,
        "alliance_sd": a_sd,
        "symptom_mean": s_mean,
        "baseline_sd": s_sd,
        "outcome_unit_sd": s_sd,
    }
    info = {
        "alliance": f"{rater} {score} at session t, person-mean centred",
        "outcome": f"{measure} at session t + 1",
        "measure": measure,
        "lower_is_better": lower_is_better,
        "sign": (
            "a negative within-patient slope means a better alliance than usual is followed "
            "by fewer symptoms at the next session"
            if lower_is_better
            else "a positive within-patient slope means a better alliance is followed by "
            "a better next-session outcome"
        ),
        "n_rows": len(frame),
        "n_patients": len(patients),
    }
    coords = {"obs": [str(i) for i in range(len(frame))], "patient": patients}
    return ModelData(frame=frame, coords=coords, scales=scales, info=info)
