"""One-stage individual-patient-data (IPD) meta-analysis of the alliance-outcome association.

All patients of all item datasets in one Bayesian multilevel model (patients in therapists in
sites), beside the two-stage result (each site's partial correlation, pooled by REML):

``z_post_i = a_s + b_s z_alliance_i + c_s z_baseline_i + u_j + e_i``, ``e_i ~ N(0, sigma_s)``,
``b_s ~ N(mu_b, tau_b)`` (site-varying slopes), ``u_j = tau_u u_raw_j``
(therapist intercepts, therapists nested in sites), with site-specific intercepts, baseline
slopes and residual SDs (the one-stage analogue of stratifying by study: Riley et al. 2008,
Debray et al. 2015). Variables are z-scores within site, so ``mu_b`` is the standardized
alliance slope of a typical site and ``tau_b`` its between-site SD. ``r_pooled`` is the partial
correlation ``mu_b sqrt(v) / sqrt(mu_b^2 v + sigma^2 + tau_u^2)`` it implies (``v`` the
residual variance of alliance given baseline, ``sigma^2`` the residual variance, both averaged
over sites with weights n_s), comparable with each site's partial correlation
(:func:`alliance.meta.effects.dataset_effect`) and with their two-stage pooled value
(:func:`two_stage`); ``r_pooled_improvement`` has the literature's sign (positive = better
alliance, better outcome; Flückiger et al. 2018).

The slopes are integrated out of the likelihood that is sampled and drawn from their exact
conditional posterior (:func:`ipd_model`), which removes the funnel between ``tau_b`` and the
slopes. Sampled through :func:`alliance.bayes.sampling.sample` and judged by
:func:`alliance.bayes.diagnostics.check` (the one sampler path of the Bayesian models).

References
----------
Debray, T. P. A., Moons, K. G. M., van Valkenhoef, G., Efthimiou, O., Hummel, N., Groenwold,
R. H. H., & Reitsma, J. B. (2015). Get real in individual participant data (IPD)
meta-analysis: a review of the methodology. Research Synthesis Methods, 6(4), 293-309.
Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in adult
psychotherapy: A meta-analytic synthesis. Psychotherapy, 55(4), 316-340.
Flückiger, C., Rubel, J., Del Re, A. C., Horvath, A. O., Wampold, B. E., Crits-Christoph, P.,
Atzil-Slonim, D., Compare, A., Falkenström, F., et al. (2020). The reciprocal relationship
between alliance and early treatment symptoms: A two-stage individual participant data
meta-analysis. Journal of Consulting and Clinical Psychology, 88(9), 829-843.
Riley, R. D., Lambert, P. C., Staessen, J. A., Wang, J., Gueyffier, F., Thijs, L., &
Boutitie, F. (2008). Meta-analysis of continuous outcomes combining individual patient data
and aggregate data. Statistics in Medicine, 27(11), 1870-1893.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alliance.bayes.data import InsufficientData, ModelData
from alliance.bayes.priors import DEFAULT_PRIORS, prior_scale

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

__all__ = [
    "IPD_PARAMETERS",
    "IPD_PRIORS",
    "MIN_PATIENTS",
    "combine_sites",
    "fit_ipd",
    "ipd_model",
    "site_frames",
    "two_stage",
]

#: The population-level parameters the one-stage model reports.
IPD_PARAMETERS = [
    "mu_b",
    "tau_b",
    "r_pooled",
    "r_pooled_improvement",
    "tau_u",
    "b_site",
    "r_site",
    "b_baseline",
    "sigma",
]
#: Prior scales of the one-stage model over :data:`alliance.bayes.priors.DEFAULT_PRIORS` (the
#: config's ``bayes.priors`` override them): the between-site SD of the standardized slope
#: ``tau_b ~ HalfNormal(0.2)``, 95% of its mass below .39 (sites whose standardized slopes
#: differ by more are not expected). A few sites cannot inform the tail of ``tau_b``, where
#: the posterior is the prior: with HalfNormal(0.5) (the random-intercept SDs' scale) the
#: demo's fit spent its divergent transitions there (tau_b near .5).
IPD_PRIORS: dict[str, float] = {"tau_b": 0.2}
#: Patients a site needs (alliance, baseline and outcome) to enter the model, as the
#: per-dataset outcome model (:func:`alliance.bayes.data.patient_data`).
MIN_PATIENTS = 10


def site_frames(
    sources: Mapping[str, Any],
    alliance_session: int = 3,
    measure: str = "phq9",
    rater: str = "client",
    score: str = "total_mean",
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """One frame per dataset (patient, therapist, alliance, baseline, post) from its tables.

    The rules of the per-dataset models (:func:`alliance.bayes.data.patient_data`: the
    ``rater``'s ``score`` at ``alliance_session``, baseline at intake or session 1, the last
    observed outcome after the alliance session). A dataset the rules leave with too few
    patients is left out with its reason.

    Parameters
    ----------
    sources
        Dataset name -> its results folder (``results/{dataset}``) or tables
        (:func:`alliance.bayes.data.load_tables`).
    alliance_session, measure, rater, score
        The early alliance (the ``rater``'s ``score`` at ``alliance_session``) and the
        outcome measure.

    Returns
    -------
    frames, excluded
        Dataset -> frame, and dataset -> reason for those left out.
    """
    from alliance.bayes.data import load_tables, patient_data

    frames, excluded = {}, {}
    for name, source in sources.items():
        try:
            data = patient_data(
                load_tables(source),
                alliance_session=alliance_session,
                rater=rater,
                score=score,
                measure=measure,
            )
        except InsufficientData as exc:
            excluded[str(name)] = str(exc)
            continue
        frames[str(name)] = data.frame[["therapist_id", "alliance", "baseline", "post"]]
    return frames, excluded


def combine_sites(frames: Mapping[str, pd.DataFrame], lower_is_better: bool = True) -> ModelData:
    """The one-stage model's inputs: every site's patients, z-scored within site.

    Parameters
    ----------
    frames
        Site -> one row per patient with ``alliance``, ``baseline``, ``post`` and
        ``therapist_id`` (rows with a missing value are left out).
    lower_is_better
        True for a symptom measure (the sign of ``r_pooled_improvement``).

    Returns
    -------
    ModelData
        ``frame`` (``site``, ``site_idx``, ``therapist_idx``, ``z_alliance``,
        ``z_baseline``, ``z_post``), coords ``site``, ``therapist`` (``site:therapist``) and
        ``patient`` (row numbers: no patient ID leaves the dataset folders), ``scales`` (per
        site ``n``, ``v`` = residual variance of alliance given baseline), ``info``.

    Raises
    ------
    InsufficientData
        With fewer than two sites of at least :data:`MIN_PATIENTS` patients.
    """
    parts, info_sites, excluded = [], {}, {}
    for site, frame in frames.items():
        f = frame.dropna(subset=["alliance", "baseline", "post"])
        if len(f) < MIN_PATIENTS:
            excluded[str(site)] = f"{len(f)} patients with alliance, baseline and outcome"
            continue
        z = {}
        for col in ("alliance", "baseline", "post"):
            x = f[col].to_numpy(dtype=float)
            sd = float(np.std(x, ddof=1))
            if not sd > 0:
                raise InsufficientData(f"site {site!r}: {col} does not vary")
            z[col] = (x - x.mean()) / sd
        therapist = f["therapist_id"].fillna("unknown").astype(str).to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "site": str(site),
                    "therapist": [f"{site}:{t}" for t in therapist],
                    "z_alliance": z["alliance"],
                    "z_baseline": z["baseline"],
                    "z_post": z["post"],
                }
            )
        )
        design = np.column_stack([np.ones(len(f)), z["baseline"]])
        resid = z["alliance"] - design @ np.linalg.lstsq(design, z["alliance"], rcond=None)[0]
        info_sites[str(site)] = {
            "n": len(f),
            "therapists": len(set(therapist)),
            "v": float(np.var(resid, ddof=1)),
        }
    if len(parts) < 2:
        raise InsufficientData(
            f"the one-stage model needs at least two sites with {MIN_PATIENTS} or more "
            f"patients, got {len(parts)} ({excluded or 'no other site'})"
        )
    frame = pd.concat(parts, ignore_index=True)
    sites = list(info_sites)
    therapists = list(dict.fromkeys(frame["therapist"]))
    frame["site_idx"] = pd.Categorical(frame["site"], categories=sites).codes
    frame["therapist_idx"] = pd.Categorical(frame["therapist"], categories=therapists).codes
    coords = {
        "site": sites,
        "therapist": therapists,
        "patient": [str(i) for i in range(len(frame))],
    }
    info = {
        "sites": info_sites,
        "excluded_sites": excluded,
        "n_patients": len(frame),
        "n_therapists": len(therapists),
        "lower_is_better": lower_is_better,
        "standardization": "alliance, baseline and outcome are z-scores within site",
    }
    n = np.array([info_sites[s]["n"] for s in sites], dtype=float)
    v = np.array([info_sites[s]["v"] for s in sites], dtype=float)
    scales = {"weights": (n / n.sum()).tolist(), "v": v.tolist()}
    return ModelData(frame=frame, coords=coords, scales=scales, info=info)


def ipd_model(
    data: ModelData, priors: Mapping[str, float] | None = None, collapsed: bool = True
) -> pm.Model:
    """The one-stage model (see the module) on :func:`combine_sites`'s data.

    Priors on the standardized scale as the per-dataset models (:data:`alliance.bayes.priors.
    DEFAULT_PRIORS`): intercepts and slopes ``Normal(0, slope)``, ``mu_b ~ Normal(0, slope)``,
    residual SDs ``HalfNormal(sigma)``, ``tau_u ~ HalfNormal(tau)``; ``tau_b ~
    HalfNormal(0.2)`` (:data:`IPD_PRIORS`) unless ``priors`` sets ``tau_b``.

    With ``collapsed`` (the default, the model that is sampled) the site slopes are
    integrated out of the likelihood: given the other parameters, site ``s``'s residuals
    ``r_i = z_post_i - a_s - c_s z_baseline_i - u_j`` are a regression on ``z_alliance`` with
    least-squares slope ``b^_s = S_xr / S_xx`` and sampling variance ``v_s = sigma_s^2 /
    S_xx``, and

    ``p(r_s | b_s ~ N(mu_b, tau_b^2)) = prod_i N(r_i | b^_s x_i, sigma_s) sqrt(2 pi v_s)
    N(b^_s | mu_b, v_s + tau_b^2)``

    (a ``pm.Potential``), so ``tau_b`` meets the data as in a normal-normal meta-analysis and
    the sampler sees no funnel between ``tau_b`` and the slopes (both the centred and the
    non-centred slopes diverged on the demo's latent data: its sites are large, so each slope
    is well determined while ``tau_b`` is near 0). The slopes are recovered exactly from their
    conditional posterior ``b_s | rest ~ N((b^_s tau_b^2 + mu_b v_s) / (v_s + tau_b^2),
    v_s tau_b^2 / (v_s + tau_b^2))`` as ``b_site = m_s + s_s eps_s`` with ``eps_s ~ N(0, 1)``
    (independent standard normals in the posterior). ``collapsed=False`` is the same model
    written generatively (non-centred slopes, the outcome observed): its prior predictive
    distribution is the prior predictive check's.
    """
    import pymc as pm
    import pytensor.tensor as pt

    priors = {**IPD_PRIORS, **(dict(priors) if priors else {})}
    f = data.frame
    weights = np.asarray(data.scales["weights"], dtype=float)
    v = np.asarray(data.scales["v"], dtype=float)
    sign = -1.0 if data.info.get("lower_is_better", True) else 1.0
    coords = {k: data.coords[k] for k in ("site", "therapist", "patient")}
    site_np = f["site_idx"].to_numpy(np.int64)
    za_np = f["z_alliance"].to_numpy(float)
    k = len(coords["site"])
    with pm.Model(coords=coords) as model:
        site = pm.Data("site_idx", site_np, dims="patient")
        ther = pm.Data("therapist_idx", f["therapist_idx"].to_numpy(np.int64), dims="patient")
        za = pm.Data("z_alliance", za_np, dims="patient")
        zb = pm.Data("z_baseline", f["z_baseline"].to_numpy(float), dims="patient")
        w = pm.Data("site_weights", weights, dims="site")
        v_site = pm.Data("alliance_residual_variance", v, dims="site")
        a = pm.Normal("intercept", 0.0, prior_scale(priors, "intercept", "intercept"), dims="site")
        c = pm.Normal("b_baseline", 0.0, prior_scale(priors, "b_baseline", "slope"), dims="site")
        mu_b = pm.Normal("mu_b", 0.0, prior_scale(priors, "mu_b", "slope"))
        tau_b = pm.HalfNormal("tau_b", prior_scale(priors, "tau_b", "tau"))
        tau_u = pm.HalfNormal("tau_u", prior_scale(priors, "tau_u", "tau"))
        u_raw = pm.Normal("u_raw", 0.0, 1.0, dims="therapist")
        sigma = pm.HalfNormal("sigma", prior_scale(priors, "sigma", "sigma"), dims="site")
        y = pm.Data("z_post", f["z_post"].to_numpy(float), dims="patient")
        if collapsed:
            sxx = pm.Data(
                "alliance_sum_squares", np.bincount(site_np, za_np**2, minlength=k), dims="site"
            )
            n_site = pm.Data("site_patients", np.bincount(site_np, minlength=k), dims="site")
            r = y - a[site] - c[site] * zb - tau_u * u_raw[ther]
            sxr = pt.inc_subtensor(pt.zeros(k)[site], za * r)
            srr = pt.inc_subtensor(pt.zeros(k)[site], r**2)
            bhat, v_b = sxr / sxx, sigma**2 / sxx
            loglik = (
                -0.5 * n_site * pt.log(2 * np.pi * sigma**2)
                - (srr - sxr * bhat) / (2 * sigma**2)
                + 0.5 * pt.log(2 * np.pi * v_b)
                + pm.logp(pm.Normal.dist(mu_b, pt.sqrt(v_b + tau_b**2)), bhat)
            )
            pm.Potential("likelihood", loglik.sum())
            eps = pm.Normal("eps", 0.0, 1.0, dims="site")
            total = v_b + tau_b**2
            mean = (bhat * tau_b**2 + mu_b * v_b) / total
            b = pm.Deterministic(
                "b_site", mean + pt.sqrt(v_b * tau_b**2 / total) * eps, dims="site"
            )
        else:
            eta = pm.Normal("eta", 0.0, 1.0, dims="site")
            b = pm.Deterministic("b_site", mu_b + tau_b * eta, dims="site")
            mu = a[site] + b[site] * za + c[site] * zb + tau_u * u_raw[ther]
            pm.Normal("y", mu=mu, sigma=sigma[site], observed=y, dims="patient")
        noise = sigma**2 + tau_u**2
        pm.Deterministic(
            "r_site", b * pm.math.sqrt(v_site) / pm.math.sqrt(b**2 * v_site + noise), dims="site"
        )
        v_bar = pm.math.sum(w * v_site)
        noise_bar = pm.math.sum(w * sigma**2) + tau_u**2
        rho = pm.Deterministic(
            "r_pooled", mu_b * pm.math.sqrt(v_bar) / pm.math.sqrt(mu_b**2 * v_bar + noise_bar)
        )
        pm.Deterministic("r_pooled_improvement", sign * rho)
    return model


def two_stage(effects: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The two-stage result: each site's partial correlation pooled by REML on Fisher's z.

    Parameters
    ----------
    effects
        Site -> its ``effect.json`` (``r``, ``n``; :func:`alliance.meta.effects.dataset_effect`,
        positive = better alliance, better outcome). Sites without an ``r`` are left out.

    Returns
    -------
    dict
        ``k``, ``pooled_r`` (estimate, ``ci.lb``, ``ci.ub``, ``pi.lb``, ``pi.ub``), ``tau``
        and ``tau2`` (Fisher z), ``I2``, ``sites`` (study, r, n); or ``status: skipped`` with
        a ``reason`` for fewer than two sites.
    """
    from alliance.meta.pooling import fisher_z, fisher_z_variance, rma

    rows = [
        {"study": str(k), "r": float(e["r"]), "n": int(e["n"])}
        for k, e in effects.items()
        if e.get("r") is not None
    ]
    if len(rows) < 2:
        return {"status": "skipped", "reason": f"{len(rows)} site(s) with an effect", "sites": rows}
    r = np.array([row["r"] for row in rows])
    n = np.array([row["n"] for row in rows])
    fit = rma(fisher_z(r), fisher_z_variance(n), method="REML")
    pred = fit.predict()
    return {
        "status": "ok",
        "method": "REML on Fisher's z (metafor rma), back-transformed",
        "k": len(rows),
        "pooled_r": {k: float(np.tanh(v)) for k, v in pred.items() if k != "se"},
        "pooled_z": pred,
        "tau2": float(fit.tau2),
        "tau": float(math.sqrt(fit.tau2)),
        "I2": float(fit.I2),
        "sites": rows,
    }


def fit_ipd(
    data: ModelData,
    priors: Mapping[str, float] | None = None,
    sampler: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, float] | None = None,
    prior_draws: int = 500,
) -> dict[str, Any]:
    """Sample the one-stage model and judge the fit.

    Parameters
    ----------
    data
        :func:`combine_sites`'s result.
    priors, sampler, thresholds
        Prior scales, sampler settings and diagnostic thresholds as the per-dataset models
        (:func:`alliance.bayes.api.fit_model`).
    prior_draws
        Draws of the prior predictive check (0: none).

    Returns
    -------
    dict
        ``status`` (``"pass"``/``"fail"`` by :func:`alliance.bayes.diagnostics.check`),
        ``diagnostics``, ``effects`` (:func:`alliance.bayes.diagnostics.effects` of
        :data:`IPD_PARAMETERS`; the site-level ones, ``b_site``, ``r_site``, ``b_baseline`` and
        ``sigma``, hold one such row per site), ``prior_predictive``, ``data``
        (sites, counts), ``priors``, ``sampler``, ``timing``, and ``summary`` (the
        :func:`alliance.bayes.diagnostics.population_summary` table, a DataFrame).
    """
    from alliance.bayes.diagnostics import (
        check,
        effects,
        population_summary,
        prior_predictive_check,
    )
    from alliance.bayes.sampling import prior_predictive, sample, sampler_settings

    settings = sampler_settings(sampler)
    start = time.perf_counter()
    model = ipd_model(data, priors)
    idata, timing = sample(model, settings)
    names = [n for n in IPD_PARAMETERS if n in idata.posterior]
    table = population_summary(idata)
    diagnostics = check(idata, thresholds=thresholds)
    sites = data.coords["site"]
    lower = bool(data.info.get("lower_is_better", True))
    out: dict[str, Any] = {
        "model": "one-stage IPD",
        "status": diagnostics["status"],
        "diagnostics": diagnostics,
        "effects": _directions(
            effects(idata, [n for n in names if n not in _SITE_LEVEL], lower), lower
        )
        | {  # one value per site
            name: {
                site: _directions(effects(idata.sel(site=site), [name], lower), lower)[name]
                for site in sites
            }
            for name in names
            if name in _SITE_LEVEL
        },
        "data": data.info,
        "priors": {**DEFAULT_PRIORS, **IPD_PRIORS, **(dict(priors) if priors else {})},
        "sampler": settings,
        "timing": timing,
        "summary": table,
    }
    if prior_draws:  # the generative form: the outcome is an observed variable there
        generative = ipd_model(data, priors, collapsed=False)
        prior = prior_predictive(generative, draws=prior_draws, seed=settings["seed"])
        out["prior_predictive"] = prior_predictive_check(prior, data.frame["z_post"], "y")
    out["timing"]["total_s"] = round(time.perf_counter() - start, 3)
    return out


#: Parameters with one value per site.
_SITE_LEVEL = {"b_site", "r_site", "b_baseline", "sigma"}
#: Effects whose expected direction is negative for a symptom measure (better alliance, fewer
#: symptoms), and parameters without a direction (SDs, the baseline slope).
_NEGATIVE = {"mu_b", "b_site", "r_pooled", "r_site"}
_NO_DIRECTION = {"tau_b", "tau_u", "sigma", "b_baseline"}


def _directions(rows: dict[str, dict[str, float]], lower_is_better: bool) -> dict[str, dict]:
    """``p_expected`` of the one-stage parameters (the probability of the expected sign)."""
    for name, row in rows.items():
        row.pop("p_expected", None)
        if name in _NO_DIRECTION:
            continue
        negative = (name in _NEGATIVE) == lower_is_better
        row["p_expected"] = row["p_negative"] if negative else row["p_positive"]
    return rows
