"""Information matrices, scores and (D)WLS Jacobians of a model (lavaan's lav_model_information).

Every function returns one block per group on that group's own parameters
(:class:`alliance.sem.blocks.GroupSum`), so the cost grows linearly with the number of groups;
the dense versions are for small models and tests.
"""

from __future__ import annotations

import numpy as np

from alliance.sem.blocks import GroupSum, Layout
from alliance.sem.model import ModelSpec
from alliance.sem.mvnorm import (
    casewise_scores,
    expected_information,
    moment_gradient,
    normal_observed_information,
)
from alliance.sem.samplestats import SampleStats, WLSStats

__all__ = [
    "dwls_information_blocks",
    "expected_information_blocks",
    "information_blocks",
    "model_expected_information",
    "model_scores",
    "observed_information",
    "observed_information_blocks",
    "wls_implied",
    "wls_jacobian",
]


def expected_information_blocks(spec: ModelSpec, x: np.ndarray, sample: SampleStats) -> GroupSum:
    """Per-observation expected information ``sum_g (n_g/N) Delta_g' W_g Delta_g`` by group.

    Normal theory (ML): ``W_g`` is the expected information of the saturated model at the
    implied moments. Each group's block is on its own parameters (``spec.group_free(g)``).
    """
    n = sample.ntotal
    layout = Layout.of(spec)
    blocks = []
    for gi, g in enumerate(sample.groups):
        imp = spec.implied(x, gi + 1)[0]
        dsig, dmu, _ = spec.jacobian(x, gi + 1, local=True)
        blocks.append(
            (g.n / n) * expected_information(imp.sigma, dsig, dmu if spec.meanstructure else None)
        )
    return GroupSum(layout, blocks)


def model_expected_information(spec: ModelSpec, x: np.ndarray, sample: SampleStats) -> np.ndarray:
    """Dense :func:`expected_information_blocks` (``q x q``)."""
    return expected_information_blocks(spec, x, sample).dense()


def observed_information_blocks(spec: ModelSpec, x: np.ndarray, sample: SampleStats) -> GroupSum:
    """Per-observation observed information (Hessian of ``-logl/N``), one block per group.

    ``H = sum_g (n_g/N) Delta_g' H1_g Delta_g + sum_g sum_ij (df/dSigma_ij) d2Sigma_ij/dx dx'
    (+ the mean term)``: the first term from
    :func:`alliance.sem.mvnorm.normal_observed_information` at the implied moments, the second
    by central differences of ``Delta(x)' G`` with the moment gradient ``G`` held fixed
    (cheap: no pass over the data). Group ``g`` contributes only on its own parameters
    (``spec.group_free(g)``), so the work grows linearly with the number of groups (see
    :mod:`alliance.sem.blocks`).
    """
    n = sample.ntotal
    ms = spec.meanstructure
    layout = Layout.of(spec)
    blocks = []
    for gi, g in enumerate(sample.groups):
        idx = layout.local[gi]
        q = len(idx)
        imp = spec.implied(x, gi + 1)[0]
        dsig, dmu, _ = spec.jacobian(x, gi + 1, local=True)
        mu = imp.mu if ms else g.mean
        info = (g.n / n) * normal_observed_information(
            g.X, g.patterns, mu, imp.sigma, dsig, dmu if ms else None
        )
        gs, gm = moment_gradient(g.X, g.patterns, mu, imp.sigma)
        gs, gm = gs * (g.n / n), gm * (g.n / n)
        xe = np.array(x, dtype=float)  # perturbed in place, one entry at a time
        for j, k in enumerate(idx):
            h = 1e-6 * max(1.0, abs(x[k]))
            xe[k] = x[k] + h
            up = spec.chain(xe, gi + 1, gs, gm if ms else None, local=True)
            xe[k] = x[k] - h
            dn = spec.chain(xe, gi + 1, gs, gm if ms else None, local=True)
            xe[k] = x[k]
            info[:, j] += (up - dn) / (2 * h)
        blocks.append(0.5 * (info + info.T) if q else info)
    return GroupSum(layout, blocks)


def observed_information(spec: ModelSpec, x: np.ndarray, sample: SampleStats) -> np.ndarray:
    """Dense :func:`observed_information_blocks` (``q x q``)."""
    return observed_information_blocks(spec, x, sample).dense()


def model_scores(
    spec: ModelSpec, x: np.ndarray, sample: SampleStats, local: bool = False
) -> list[np.ndarray]:
    """Casewise scores of every group at ``x`` (means from the model, or the sample means).

    With ``local`` each group's scores have one column per parameter of that group
    (``spec.group_free(g)``) instead of ``npar`` columns.
    """
    out = []
    for gi, g in enumerate(sample.groups):
        imp = spec.implied(x, gi + 1)[0]
        dsig, dmu, _ = spec.jacobian(x, gi + 1, local=local)
        mu = imp.mu if spec.meanstructure else g.mean
        out.append(
            casewise_scores(
                g.X, mu, imp.sigma, dsig, dmu if spec.meanstructure else None, g.patterns
            )
        )
    return out


# --------------------------------------------------------------------------- (D)WLS


def wls_implied(spec: ModelSpec, x: np.ndarray, group: int, wls: WLSStats) -> np.ndarray:
    """The model-implied statistics of ``group`` in the order of ``wls.obs``."""
    imp = spec.implied(x, group)[0]
    pairs = wls.pair_index
    parts = [imp.mu[: wls.n_means], imp.tau, imp.sigma[pairs[:, 0], pairs[:, 1]]]
    return np.concatenate(parts)


def wls_jacobian(
    spec: ModelSpec, x: np.ndarray, group: int, wls: WLSStats, local: bool = True
) -> np.ndarray:
    """``d(implied statistics) / dx`` of ``group``, (statistics x parameters).

    With ``local`` one column per parameter of that group (``spec.group_free(group)``).
    """
    dsig, dmu, dtau = spec.jacobian(x, group, local=local)
    pairs = wls.pair_index
    return np.vstack([dmu[:, : wls.n_means].T, dtau.T, dsig[:, pairs[:, 0], pairs[:, 1]].T])


def dwls_information_blocks(spec: ModelSpec, x: np.ndarray, sample: SampleStats) -> GroupSum:
    """The DWLS information ``sum_g f_g Delta_g' W_g Delta_g`` by group (``f_g = N_g / N``)."""
    layout = Layout.of(spec)
    blocks = []
    for gi, (f, g) in enumerate(zip(sample.fg, sample.groups, strict=True)):
        assert g.wls is not None
        d = wls_jacobian(spec, x, gi + 1, g.wls)
        blocks.append(f * d.T @ (g.wls.v_diag[:, None] * d))
    return GroupSum(layout, blocks)


def information_blocks(
    spec: ModelSpec, x: np.ndarray, sample: SampleStats, estimator: str
) -> GroupSum:
    """The expected information of the estimator: normal theory (ML, MLR) or DWLS (WLSMV)."""
    if estimator == "WLSMV":
        return dwls_information_blocks(spec, x, sample)
    return expected_information_blocks(spec, x, sample)
