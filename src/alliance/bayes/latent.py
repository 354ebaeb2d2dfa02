"""Latent alliance model: WAI-SR items on three correlated factors and the outcome in one model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alliance.bayes.data import InsufficientData, ModelData, load_tables, patient_data
from alliance.bayes.priors import prior_scale

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    import pymc as pm

    from alliance.data.instruments import Instrument

__all__ = [
    "LATENT_PRIORS",
    "attenuation",
    "latent_data",
    "latent_model",
    "latent_parameters",
    "latent_probit_model",
]

#: Prior settings of the measurement part (config ``bayes.priors``, same mapping as the
#: slope and scale priors). ``threshold``: SD of the Normal prior of the standardized item
#: thresholds (probits of cumulative proportions; the WAI-SR's lie within about -2.5..0.5).
#: ``lkj_eta``: shape of the LKJ prior on the correlation matrix of (baseline, bond, task,
#: goal); eta = 2 mildly favours smaller correlations than the uniform eta = 1. Loadings on
#: the standardized latent-response scale get a flat prior on (0, 1) (items keyed in the
#: factor's direction).
LATENT_PRIORS: dict[str, float] = {"threshold": 1.5, "lkj_eta": 2.0, "loading": 1.0}

#: Bound used in place of -inf/+inf for the outer thresholds (standardized scale).
_OUTER = 30.0


def latent_data(
    source: str | Mapping[str, pd.DataFrame] | Any,
    alliance_session: int = 3,
    rater: str = "client",
    score: str = "total_mean",
    measure: str = "phq9",
    lower_is_better: bool = True,
    instrument: str | Path | Instrument = "wai_sr",
) -> ModelData:
    """Patient-level inputs of the latent model: the outcome model's frame plus the item answers.

    The patients, baseline, outcome and their standardization are exactly those of
    :func:`alliance.bayes.data.patient_data` (so the latent and plug-in estimates refer to the
    same patients and the same outcome); to each patient the ``rater``'s answers to the
    instrument's items at session ``alliance_session`` are added as category codes
    ``0..K-1`` (``-1`` for a missing answer; reverse-keyed items are reversed).

    Parameters
    ----------
    source
        A dataset's results folder or tables (:func:`alliance.bayes.data.load_tables`); the
        tables must include ``items``.
    alliance_session, rater, score, measure, lower_is_better
        As in :func:`alliance.bayes.data.patient_data`.
    instrument
        The instrument whose items measure the alliance: an :class:`Instrument`, a built-in
        name or a file (:func:`alliance.data.instruments.load_instrument`).
        :func:`alliance.bayes.api.build_data` passes the one the dataset was ingested with.

    Returns
    -------
    ModelData
        ``frame``: the :func:`patient_data` columns plus one ``int`` column per item;
        coords ``patient``, ``therapist``, ``item``, ``factor``, ``cut``; ``info`` adds
        ``items``, ``factors``, ``factor_of_item``, ``n_categories`` and
        ``missing_item_answers``.

    Raises
    ------
    ValueError
        Without an ``items`` table, or when answers are not on the instrument's scale.

    """
    from alliance.data.instruments import Instrument, load_instrument

    tables = load_tables(source)
    if "items" not in tables:
        raise ValueError(f"the latent model needs the table 'items', got {sorted(tables)}")
    base = patient_data(
        tables,
        alliance_session=alliance_session,
        rater=rater,
        score=score,
        measure=measure,
        lower_is_better=lower_is_better,
    )
    inst = instrument if isinstance(instrument, Instrument) else load_instrument(instrument)
    if inst.continuous:
        raise InsufficientData(
            f"the latent model codes answers as ordered categories; instrument {inst.name!r} "
            f"has a continuous scale (step {inst.scale_step:g})"
        )
    items = list(inst.items)
    rows = tables["items"]
    missing_cols = [c for c in items if c not in rows.columns]
    if missing_cols:
        raise ValueError(f"items table lacks the items {missing_cols}")
    rows = rows[
        (rows["rater"].astype(str) == rater) & (pd.to_numeric(rows["session"]) == alliance_session)
    ]
    answers = rows.assign(patient_id=rows["patient_id"].astype(str)).groupby("patient_id")[items]
    answers = answers.first().reindex(base.frame["patient_id"])
    values = answers.to_numpy(dtype=float)
    lo, hi = float(inst.scale_min), float(inst.scale_max)
    present = ~np.isnan(values)
    bad = present & ((values != np.round(values)) | (values < lo) | (values > hi))
    if bad.any():
        raise ValueError(
            f"item answers must be whole numbers in [{lo:g}, {hi:g}], got {values[bad][:5]}"
        )
    codes = np.where(present, values - lo, -1).astype(np.int64)
    n_cat = int(hi - lo + 1)
    for k, item in enumerate(items):
        if item in inst.reverse_keyed:
            codes[:, k] = np.where(codes[:, k] >= 0, n_cat - 1 - codes[:, k], -1)
    frame = base.frame.copy()
    for k, item in enumerate(items):
        frame[item] = codes[:, k]
    factors = list(inst.factors)
    factor_of = [
        next(f for f, members in enumerate(inst.factors.values()) if i in members) for i in items
    ]
    coords = {
        **base.coords,
        "item": items,
        "factor": factors,
        "cut": [f"{c}|{c + 1}" for c in range(1, n_cat)],
    }
    info = {
        **base.info,
        "items": items,
        "factors": factors,
        "factor_of_item": factor_of,
        "n_categories": n_cat,
        "missing_item_answers": int((~present).sum()),
    }
    return ModelData(frame=frame, coords=coords, scales=dict(base.scales), info=info)


def _cpc_cholesky(cpc: Any, dim: int) -> Any:
    """Cholesky factor of a correlation matrix from canonical partial correlations (vine)."""
    import pytensor.tensor as pt

    rows = []
    k = 0
    for i in range(dim):
        row = []
        rest = 1.0
        for _ in range(i):
            value = cpc[k] * pt.sqrt(rest)
            k += 1
            rest = rest - value**2
            row.append(value)
        row.append(pt.sqrt(rest))
        row += [pt.zeros(())] * (dim - i - 1)
        rows.append(pt.stack(row))
    return pt.stack(rows)


def latent_model(data: ModelData, priors: Mapping[str, float] | None = None) -> pm.Model:
    """Latent model: three correlated factors measured by the items, outcome on their composite.

    Factors marginalized (no per-patient parameters): the standardized item scores ``x``
    (12), the baseline ``z_b`` and the outcome ``z_post`` are jointly normal with the
    structure of a confirmatory factor model with a regression,

    * ``x_j = nu_j + lambda_j F_f(j) + e_j``, ``e_j ~ N(0, theta_j)`` (bond, task, goal);
    * ``(z_b, F_bond, F_task, F_goal)`` have correlation matrix ``R`` (unit variances);
    * ``A = mean_k(F_k) / sqrt(mean(R_FF))`` (variance 1), the error-free counterpart of the
      WAI-SR total score, and ``z_post = b0 + b_latent A + b_baseline z_b + e``,
      ``e ~ N(0, sigma)``;

    so ``Sigma = L R L' + diag(theta, 0, sigma^2)`` with ``L`` mapping (z_b, F) to the 14
    variables. The likelihood is the exact multivariate normal density of every patient's
    observed variables (full-information ML's likelihood, Arbuckle 1996): per missing-item
    pattern, ``p(x_obs, z_b)`` from the pattern's sufficient statistics, times
    ``p(z_post | x_obs, z_b)`` per patient (the observed ``y``, whose pointwise log
    likelihood gives PSIS-LOO on the same outcome as the plug-in model). Measurement error
    propagates: the posterior of ``b_latent`` integrates over the loadings, residual variances
    and factor correlations. What is approximated: the five-point answers are treated as
    continuous (normal-theory estimation of ordinal items; Rhemtulla, Brosseau-Liard & Savalei
    2012 found it adequate with five or more categories); the latent variable is therefore
    the common factor of the item *scores*, which is what the plug-in total score measures
    with error.

    Priors (standardized scale): ``nu ~ Normal(0, intercept)``, ``lambda ~
    HalfNormal(loading)``, ``sqrt(theta) ~ HalfNormal(sigma)``, ``R ~ LKJ(lkj_eta)`` via
    canonical partial correlations (Lewandowski et al. 2009), slopes ``Normal(0, slope)``,
    ``sigma ~ HalfNormal(sigma)``.

    Derived: ``r_partial_latent = b_latent sqrt(v) / sqrt(b_latent^2 v + sigma^2)`` with
    ``v = 1 - cov(A, z_b)^2`` (``r_partial`` of the outcome model with the latent alliance),
    ``r_partial_latent_improvement`` (literature sign), ``lambda_{item}`` (standardized
    loadings ``lambda / sqrt(lambda^2 + theta)``), ``phi_{factor}_{factor}`` (factor
    correlations), ``r_alliance_baseline`` and ``reliability_score`` (squared correlation of
    the plug-in item-mean score with ``A``: the attenuation factor of ``r`` is about its
    square root).

    References
    ----------
    Arbuckle, J. L. (1996). Full information estimation in the presence of incomplete data.
    In G. A. Marcoulides & R. E. Schumacker (Eds.), Advanced structural equation modeling.
    Erlbaum.
    Asparouhov, T., & Muthén, B. (2010). Bayesian analysis of latent variable models using
    Mplus. Technical report, Muthén & Muthén.
    Lewandowski, D., Kurowicka, D., & Joe, H. (2009). Generating random correlation matrices
    based on vines and extended onion method. Journal of Multivariate Analysis, 100,
    1989-2001.
    Merkle, E. C., & Rosseel, Y. (2018). blavaan: Bayesian structural equation models via
    parameter expansion. Journal of Statistical Software, 85(4), 1-30.
    Rhemtulla, M., Brosseau-Liard, P. É., & Savalei, V. (2012). When can categorical variables
    be treated as continuous? Psychological Methods, 17(3), 354-373.

    """
    import pymc as pm
    import pytensor.tensor as pt

    settings = {**LATENT_PRIORS, **{k: v for k, v in (priors or {}).items() if k in LATENT_PRIORS}}
    f = data.frame
    items = data.info["items"]
    factors = data.info["factors"]
    factor_of = np.asarray(data.info["factor_of_item"], dtype=np.int64)
    n_items, n_fac = len(items), len(factors)
    codes = f[items].to_numpy(np.int64)
    raw = np.where(codes >= 0, codes, np.nan).astype(float)
    item_sd = np.nanstd(raw, axis=0, ddof=1)
    if np.any(~(item_sd > 0)):
        raise InsufficientData(
            f"every item needs variation, got SDs {np.round(item_sd, 3).tolist()}"
        )
    x = (raw - np.nanmean(raw, axis=0)) / item_sd
    zb = f["z_baseline"].to_numpy(float)
    sign = -1.0 if data.info.get("lower_is_better", True) else 1.0
    dim = n_fac + 1
    eta_lkj = float(settings["lkj_eta"])
    # LKJ(eta) on a dim x dim correlation matrix <=> independent canonical partial
    # correlations, the one in column j ~ Beta(b, b) on (-1, 1), b = eta + (dim - 2 - j) / 2
    betas = np.asarray([eta_lkj + (dim - 2 - j) / 2 for i in range(dim) for j in range(i)])
    load = np.zeros((n_items, n_fac))
    load[np.arange(n_items), factor_of] = 1.0
    n_var = n_items + 1
    coords = {
        **data.coords,
        "pair": [f"{i}_{j}" for i in range(dim) for j in range(i)],
    }
    with pm.Model(coords=coords) as model:
        cpc_raw = pm.Beta("cpc_raw", alpha=betas, beta=betas, dims="pair")
        chol = _cpc_cholesky(2.0 * cpc_raw - 1.0, dim)
        corr = chol @ chol.T
        phi = corr[1:, 1:]
        scale = pt.sqrt(pt.mean(phi))
        w = pt.ones(n_fac) / (n_fac * scale)
        r_ab = pt.dot(corr[1:, 0], w)
        nu = pm.Normal("nu", 0.0, prior_scale(priors, "nu", "intercept"), dims="item")
        lam = pm.HalfNormal("loading", float(settings["loading"]), dims="item")
        theta_sd = pm.HalfNormal("theta_sd", prior_scale(priors, "theta_sd", "sigma"), dims="item")
        b0 = pm.Normal("intercept", 0.0, prior_scale(priors, "intercept", "intercept"))
        b_a = pm.Normal("b_latent", 0.0, prior_scale(priors, "b_latent", "slope"))
        b_b = pm.Normal("b_baseline", 0.0, prior_scale(priors, "b_baseline", "slope"))
        sigma = pm.HalfNormal("sigma", prior_scale(priors, "sigma", "sigma"))
        # (items, z_b) on (z_b, F): covariance and covariance with the outcome
        lmat = pt.concatenate(
            [
                pt.concatenate([pt.zeros((n_items, 1)), lam[:, None] * load], axis=1),
                pt.as_tensor(np.eye(1, dim)),
            ],
            axis=0,
        )
        sxx = lmat @ corr @ lmat.T + pt.diag(pt.concatenate([theta_sd**2, pt.zeros(1)]))
        y_load = pt.concatenate([b_b[None], b_a * w])
        sxy = lmat @ corr @ y_load
        var_y = pt.dot(y_load, corr @ y_load) + sigma**2
        mu_x = pt.concatenate([nu, pt.zeros(1)])
        # missing answers: parameters with the model's conditional distribution (data
        # augmentation, equivalent to full-information ML under MAR; Little & Rubin 2019)
        # the data enter as data variables, not constants, so that the compiled operations
        # are the same for every dataset and PyTensor's numba cache serves the next one
        values = np.column_stack([x, zb])
        miss_r, miss_c = np.nonzero(np.isnan(values))
        full = pm.Data("item_values", np.nan_to_num(values))
        if len(miss_r):
            x_miss = pm.Normal("x_missing", 0.0, 1.0, shape=len(miss_r))
            rows = pm.Data("missing_row", miss_r.astype(np.int64))
            cols = pm.Data("missing_column", miss_c.astype(np.int64))
            full = pt.set_subtensor(full[rows, cols], x_miss)
        resid = full - mu_x[None, :]
        # sufficient statistics: sum_i r_i' S^-1 r_i = tr(S^-1 R'R) (13 x 13 algebra only)
        c_xx = pt.linalg.cholesky(sxx)
        s_inv = pt.linalg.inv(sxx)
        n_pat = full.shape[0].astype("float64")
        pm.Potential(
            "items_loglik",
            -0.5 * (n_pat * (n_var * math.log(2 * math.pi) + 2 * pt.log(pt.diag(c_xx)).sum()))
            - 0.5 * pt.sum(s_inv * (resid.T @ resid)),
        )
        # outcome given the items and the baseline (conditional normal)
        beta = s_inv @ sxy
        resid_var = var_y - pt.dot(sxy, beta)
        pm.Normal(
            "y",
            mu=b0 + resid @ beta,
            sigma=pt.sqrt(resid_var),
            observed=pm.Data("z_post", f["z_post"].to_numpy(float), dims="patient"),
            dims="patient",
        )
        v = 1.0 - r_ab**2
        r = pm.Deterministic("r_partial_latent", b_a * pt.sqrt(v) / pt.sqrt(b_a**2 * v + sigma**2))
        pm.Deterministic("r_partial_latent_improvement", sign * r)
        pm.Deterministic("r_alliance_baseline", r_ab)
        std_load = lam / pt.sqrt(lam**2 + theta_sd**2)
        for k, name in enumerate(items):
            pm.Deterministic(f"lambda_{name}", std_load[k])
        for a in range(n_fac):
            for b in range(a):
                pm.Deterministic(f"phi_{factors[a]}_{factors[b]}", phi[a, b])
        # the plug-in score: item mean on the raw scale = sum_j sd_j x_j / n_items + const
        sd = pm.Data("item_sd", item_sd, dims="item")
        cov_sa = pt.dot(sd * lam, (phi @ w)[factor_of])
        var_s = pt.dot(sd, sxx[:n_items, :n_items] @ sd)
        pm.Deterministic("reliability_score", cov_sa**2 / var_s)
    return model


def latent_probit_model(data: ModelData, priors: Mapping[str, float] | None = None) -> pm.Model:
    """Full-information alternative: ordinal probit items with per-patient factor scores.

    Benchmarked in ``bench/latent_speed.py`` against :func:`latent_model`: it samples the
    exact ordinal likelihood but needs about 2 minutes per demo site and mixes slowly (the
    factor scores of the highly correlated task and goal factors).

    Measurement (graded probit response, full information; Samejima 1969, Muthén 1984):
    answer ``x_ij = c`` of patient i to item j when the latent response
    ``x*_ij = lambda_j eta_i,f(j) + sqrt(1 - lambda_j^2) e_ij`` (``e_ij ~ N(0, 1)``) lies
    between the standardized thresholds ``tau_j,c-1 < x*_ij <= tau_j,c``, so
    ``P(x_ij = c) = Phi((tau_j,c - lambda_j eta) / s_j) - Phi((tau_j,c-1 - lambda_j eta) / s_j)``
    with ``s_j = sqrt(1 - lambda_j^2)``; ``lambda_j`` is the standardized loading (the
    polychoric-scale loading the CFA reports). Structure: (baseline, bond, task, goal) have
    correlation matrix ``R`` (unit variances; the baseline is the observed z-score), factor
    scores are non-centred, ``eta_i = R_fb z_baseline_i + chol(R_ff - R_fb R_bf) u_i``,
    ``u_i ~ N(0, I)``. Latent alliance ``A_i = mean_k(eta_ik) / sqrt(mean(R_ff))`` (variance
    1): the error-free counterpart of the WAI-SR total score. Outcome:
    ``z_post_i ~ Normal(b0 + b_latent A_i + b_baseline z_baseline_i, sigma)``.

    Priors: ``tau ~ Normal(0, threshold)`` ordered, ``lambda ~ Uniform(0, 1)``, ``R ~
    LKJ(lkj_eta)`` (through its canonical partial correlations, Lewandowski et al. 2009),
    slopes ``Normal(0, slope)``, ``sigma ~ HalfNormal(sigma)`` (:data:`LATENT_PRIORS`,
    :data:`alliance.bayes.models.DEFAULT_PRIORS`).

    Derived: ``r_partial_latent = b_latent sqrt(v) / sqrt(b_latent^2 v + sigma^2)`` with
    ``v = 1 - cov(A, baseline)^2`` (as ``r_partial`` of the outcome model, with the latent
    alliance), ``r_partial_latent_improvement`` (literature sign), ``lambda_{item}``,
    ``phi_{pair}`` (factor correlations) and ``r_alliance_baseline``.

    References
    ----------
    Asparouhov, T., & Muthén, B. (2010). Bayesian analysis of latent variable models using
    Mplus. Technical report, Muthén & Muthén.
    Lewandowski, D., Kurowicka, D., & Joe, H. (2009). Generating random correlation matrices
    based on vines and extended onion method. Journal of Multivariate Analysis, 100,
    1989-2001.
    Merkle, E. C., & Rosseel, Y. (2018). blavaan: Bayesian structural equation models via
    parameter expansion. Journal of Statistical Software, 85(4), 1-30.
    Muthén, B. (1984). A general structural equation model with dichotomous, ordered
    categorical, and continuous latent variable indicators. Psychometrika, 49, 115-132.
    Samejima, F. (1969). Estimation of latent ability using a response pattern of graded
    scores. Psychometrika Monograph Supplement, 17.

    """
    import pymc as pm
    import pytensor.tensor as pt
    from pymc.distributions.dist_math import log_diff_normal_cdf

    settings = {**LATENT_PRIORS, **{k: v for k, v in (priors or {}).items() if k in LATENT_PRIORS}}
    f = data.frame
    items = data.info["items"]
    factors = data.info["factors"]
    factor_of = np.asarray(data.info["factor_of_item"], dtype=np.int64)
    n_cat = int(data.info["n_categories"])
    codes = f[items].to_numpy(np.int64)
    resp, item = np.nonzero(codes >= 0)
    cat = codes[resp, item]
    zb = f["z_baseline"].to_numpy(float)
    sign = -1.0 if data.info.get("lower_is_better", True) else 1.0
    dim = len(factors) + 1
    eta_lkj = float(settings["lkj_eta"])
    # LKJ(eta) on a dim x dim correlation matrix <=> independent canonical partial
    # correlations, the one of column j ~ Beta(b, b) on (-1, 1), b = eta + (dim - 2 - j) / 2
    betas = [eta_lkj + (dim - 2 - j) / 2 for i in range(dim) for j in range(i)]
    coords = {
        **data.coords,
        "pair": [f"{i}_{j}" for i in range(dim) for j in range(i)],
        "gap": list(range(1, n_cat - 1)),
    }
    with pm.Model(coords=coords) as model:
        x_b = pm.Data("z_baseline", zb, dims="patient")
        cpc_raw = pm.Beta("cpc_raw", alpha=np.asarray(betas), beta=np.asarray(betas), dims="pair")
        chol = _cpc_cholesky(2.0 * cpc_raw - 1.0, dim)
        lam = pm.Uniform("lambda", 0.0, 1.0, dims="item")
        tau_first = pm.Normal("tau_first", 0.0, float(settings["threshold"]), dims="item")
        gaps = pm.HalfNormal("tau_gap", float(settings["threshold"]), dims=("item", "gap"))
        tau = pm.Deterministic(
            "tau",
            pt.concatenate([tau_first[:, None], tau_first[:, None] + pt.cumsum(gaps, axis=1)], 1),
            dims=("item", "cut"),
        )
        u = pm.Normal("u", 0.0, 1.0, dims=("patient", "factor"))
        eta = x_b[:, None] * chol[1:, 0][None, :] + u @ chol[1:, 1:].T
        corr = chol @ chol.T
        phi = corr[1:, 1:]
        scale = pt.sqrt(pt.mean(phi))
        alliance = eta.mean(axis=1) / scale
        r_ab = corr[1:, 0].mean() / scale
        # items: one term per observed answer, log(Phi(upper) - Phi(lower))
        outer = pt.full((len(items), 1), _OUTER)
        cuts = pt.concatenate([-outer, tau, outer], axis=1)
        mu = lam[item] * eta[resp, factor_of[item]]
        s = pt.sqrt(1.0 - lam[item] ** 2)
        pm.Potential(
            "items_loglik",
            log_diff_normal_cdf(mu, s, cuts[item, cat + 1], cuts[item, cat]).sum(),
        )
        b0 = pm.Normal("intercept", 0.0, prior_scale(priors, "intercept", "intercept"))
        b_a = pm.Normal("b_latent", 0.0, prior_scale(priors, "b_latent", "slope"))
        b_b = pm.Normal("b_baseline", 0.0, prior_scale(priors, "b_baseline", "slope"))
        sigma = pm.HalfNormal("sigma", prior_scale(priors, "sigma", "sigma"))
        pm.Normal(
            "y",
            mu=b0 + b_a * alliance + b_b * x_b,
            sigma=sigma,
            observed=f["z_post"].to_numpy(float),
            dims="patient",
        )
        v = 1.0 - r_ab**2
        r = pm.Deterministic("r_partial_latent", b_a * pt.sqrt(v) / pt.sqrt(b_a**2 * v + sigma**2))
        pm.Deterministic("r_partial_latent_improvement", sign * r)
        pm.Deterministic("r_alliance_baseline", r_ab)
        for k, name in enumerate(items):
            pm.Deterministic(f"lambda_{name}", lam[k])
        for a in range(len(factors)):
            for b in range(a):
                pm.Deterministic(f"phi_{factors[a]}_{factors[b]}", phi[a, b])
    return model


def latent_parameters(items: list[str] | tuple[str, ...], factors: list[str]) -> list[str]:
    """Names of the key parameters of the latent model (as in ``summary.csv``)."""
    names = ["b_latent", "r_partial_latent", "r_partial_latent_improvement", "b_baseline"]
    names += ["sigma", "r_alliance_baseline"]
    names += [f"lambda_{i}" for i in items]
    names += [f"phi_{factors[a]}_{factors[b]}" for a in range(len(factors)) for b in range(a)]
    return names


def attenuation(latent: az.InferenceData, plugin: az.InferenceData) -> pd.DataFrame:
    """Plug-in score model next to the latent model: estimates and the attenuation ratio.

    Rows ``b`` (standardized slope: ``b_alliance`` vs ``b_latent``) and ``r_partial``
    (``r_partial`` vs ``r_partial_latent``); columns the posterior mean and 90% interval of
    each, and ``ratio`` = plug-in mean / latent mean (1 = no attenuation; classical
    measurement error gives about the reliability of the score for ``b``).

    References
    ----------
    Spearman, C. (1904). The proof and measurement of association between two things.
    American Journal of Psychology, 15, 72-101.

    """
    rows = []
    for label, p_name, l_name in (
        ("b", "b_alliance", "b_latent"),
        ("r_partial", "r_partial", "r_partial_latent"),
    ):
        p = np.asarray(plugin.posterior[p_name]).ravel()
        q = np.asarray(latent.posterior[l_name]).ravel()
        rows.append(
            {
                "effect": label,
                "plugin_mean": float(p.mean()),
                "plugin_eti90_low": float(np.quantile(p, 0.05)),
                "plugin_eti90_high": float(np.quantile(p, 0.95)),
                "latent_mean": float(q.mean()),
                "latent_eti90_low": float(np.quantile(q, 0.05)),
                "latent_eti90_high": float(np.quantile(q, 0.95)),
                "ratio": float(p.mean() / q.mean()) if q.mean() != 0 else math.nan,
            }
        )
    return pd.DataFrame(rows)
