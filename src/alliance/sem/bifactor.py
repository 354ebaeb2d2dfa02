"""Bifactor indices: omega total, omega hierarchical (and per subscale), ECV, PUC and H.

Rodriguez, Reise & Haviland (2016) collect the indices that tell whether a bifactor model's
general factor dominates its items (whether a total score is interpretable) and whether the
specific factors add reliable variance beyond it. They are computed from the standardized
solution (``std.all``: loadings on standardized items, or latent responses for ordered items)
of a model with a general factor (one that every item loads on) and specific factors, all
orthogonal: a bifactor CFA, or a bifactor-ESEM rotated orthogonally (then each item's
specific factor is the one its target leaves free, and cross-loadings count as common
variance).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alliance.sem.estimate import FitResult

__all__ = ["BIFACTOR_NOTE", "bifactor_indices", "bifactor_structure"]

BIFACTOR_NOTE = (
    "Bifactor indices (Rodriguez, Reise & Haviland 2016) from the standardized solution: "
    "omega_total = common variance of the total score / its variance; omega_h (omega "
    "hierarchical) = variance of the total score due to the general factor / its variance "
    "(above about .80 a total score mainly reflects the general factor); omega_hs = variance "
    "of a subscale score due to its specific factor beyond the general one / the subscale "
    "score's variance (low values, e.g. below .30, say the subscale adds little reliable "
    "variance of its own); ecv = share of the common variance due to the general factor; puc "
    "= share of item pairs whose items belong to different specific factors (with ecv above "
    ".70 and puc above .70, the general factor dominates and a unidimensional model biases "
    "little); h (construct replicability, Hancock & Mueller 2001) = how well a factor is "
    "defined by its items (above .70-.80: well defined, replicable). Variances are "
    "model-implied (sum of the model-implied correlation matrix)."
)


def bifactor_structure(result: FitResult) -> tuple[str, dict[str, list[str]]] | None:
    """The general factor and the items of each specific factor, or ``None`` if no bifactor.

    A bifactor structure: one group, a factor that every item loads on (the general factor),
    two or more other factors measured by items, and every factor covariance zero. The item
    groups are the specific factors' items in a CFA (each item on one specific factor); in
    an exploratory block rotated to a target, the items the target leaves free on the
    specific factor (``extra["rotation"]``).
    """
    spec = result.spec
    if spec.ngroups != 1 or spec.m < 3:
        return None
    first = spec.first_order()
    if len(first) != spec.m:
        return None
    loads = {f: spec.indicators(f) for f in first}
    blocks = (result.extra.get("rotation") or {}).get("blocks") or []
    free_items: dict[str, list[str]] = {}
    for block in blocks:
        free_items.update(block.get("target_free") or {})
    general = [f for f in first if set(loads[f]) == set(spec.ov) and f not in free_items]
    if len(general) != 1:
        return None
    g = general[0]
    specific = [f for f in first if f != g]
    mt = spec.matrices(result.x, 1)
    off = mt.psi - np.diag(np.diag(mt.psi))
    if np.any(mt.beta) or np.any(np.abs(off) > 1e-8 * max(1.0, float(np.max(mt.psi)))):
        return None
    groups: dict[str, list[str]] = {}
    for f in specific:
        if f in free_items:
            groups[f] = list(free_items[f])
        elif spec.efa and any(f in fs for fs in spec.efa.values()):
            return None  # a rotated block without a target: no item groups
        else:
            groups[f] = list(loads[f])
    grouped = [i for items in groups.values() for i in items]
    if len(grouped) != len(set(grouped)) or any(len(v) == 0 for v in groups.values()):
        return None
    return g, groups


def _inadmissible(result: FitResult, mt: Any, sigma: np.ndarray) -> str:
    """Why a solution cannot give indices (``""`` if it can).

    As fit indices: none for a fit that did not converge or has a negative variance.
    """
    if not result.converged:
        return "the fit did not converge"
    if np.any(np.diag(mt.psi) <= 0) or np.any(np.diag(mt.theta) < 0) or np.any(np.diag(sigma) <= 0):
        return "a negative or zero variance (Heywood case)"
    return ""


def bifactor_indices(result: FitResult) -> dict[str, Any]:
    """Bifactor indices of a fit with a bifactor structure (else ``{}``).

    Returns
    -------
    dict
        For a fit that did not converge or has a negative variance only
        ``bifactor_unavailable`` (the reason). Else ``omega_total``, ``omega_h`` (floats),
        ``omega_hs`` ``{specific factor: value}``,
        ``ecv``, ``puc`` (floats), ``h`` ``{factor: value}``, ``general_factor`` and
        ``bifactor_note``. With ``L`` the standardized loadings, ``R`` the model-implied
        correlation matrix and ``1_s`` the indicator of subscale ``s``:
        ``omega_total = 1'(R - Theta)1 / 1'R1``; ``omega_h = (sum_i l_gi)^2 / 1'R1``;
        ``omega_hs[s] = (sum_{i in s} l_si)^2 / 1_s'R1_s``; ``ecv = sum_i l_gi^2 / sum_ij
        l_ij^2``; ``puc = 1 - sum_s n_s(n_s - 1) / (n(n - 1))``; ``h[f] = 1 / (1 + 1 / sum_i
        l_if^2 / (1 - l_if^2))``.

    References
    ----------
    Rodriguez, A., Reise, S. P., & Haviland, M. G. (2016). Evaluating bifactor models:
    Calculating and interpreting statistical indices. Psychological Methods, 21(2), 137-150.
    Reise, S. P., Scheines, R., Widaman, K. F., & Haviland, M. G. (2013).
    Multidimensionality and structural coefficient bias in structural equation modeling: A
    bifactor perspective. Educational and Psychological Measurement, 73(1), 5-26.
    Hancock, G. R., & Mueller, R. O. (2001). Rethinking construct reliability within latent
    variable systems. In R. Cudeck, S. du Toit, & D. Sorbom (Eds.), Structural equation
    modeling: Present and future (pp. 195-216). Scientific Software International.
    """
    found = bifactor_structure(result)
    if found is None:
        return {}
    g, groups = found
    spec = result.spec
    mt = spec.matrices(result.x, 1)
    sigma = mt.lambda_ @ mt.psi @ mt.lambda_.T + mt.theta
    problem = _inadmissible(result, mt, sigma)
    if problem:
        return {"bifactor_unavailable": f"no bifactor indices: {problem}"}
    sd = np.sqrt(np.diag(sigma))
    lam = mt.lambda_ * np.sqrt(np.diag(mt.psi))[None, :] / sd[:, None]
    corr = sigma / np.outer(sd, sd)
    theta = mt.theta / np.outer(sd, sd)
    gi = spec.lv.index(g)
    total = float(corr.sum())
    out: dict[str, Any] = {
        "general_factor": g,
        "omega_total": float((corr - theta).sum() / total),
        "omega_h": float(lam[:, gi].sum() ** 2 / total),
    }
    hs = {}
    for f, items in groups.items():
        idx = [spec.ov.index(v) for v in items]
        j = spec.lv.index(f)
        hs[f] = float(lam[idx, j].sum() ** 2 / corr[np.ix_(idx, idx)].sum())
    out["omega_hs"] = hs
    common = np.sum(lam**2)
    out["ecv"] = float(np.sum(lam[:, gi] ** 2) / common)
    n = spec.p
    within = sum(len(v) * (len(v) - 1) for v in groups.values())
    out["puc"] = float(1.0 - within / (n * (n - 1)))
    h = {}
    for f in [g, *groups]:
        l2 = lam[:, spec.lv.index(f)] ** 2
        s = float(np.sum(l2 / (1.0 - l2))) if np.all(l2 < 1) else float("inf")
        h[f] = float(1.0 / (1.0 + 1.0 / s)) if s > 0 else 0.0
    out["h"] = h
    out["bifactor_note"] = BIFACTOR_NOTE
    return out
