"""Prior sensitivity: refit a model under other prior scales, tabulate how its key estimates move.

The workflow's ``bayes_sensitivity`` rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.tables import read_csv

KEY_PARAMETERS = (
    "b_alliance",
    "r_partial",
    "r_partial_improvement",
    "b_within",
    "b_between",
    "contextual",
    "b_within_points",
    "b_between_points",
    "contextual_points",
    "tau_u",
    "tau_v",
)


def sensitivity_table(summaries: Mapping[float, str | Path]) -> pd.DataFrame:
    """One row per key parameter: mean and 95% interval under each prior scale, largest shift.

    Parameters
    ----------
    summaries
        Prior scale factor (1 is the default) -> that fit's ``summary.csv``.

    Returns
    -------
    pandas.DataFrame
        ``parameter``, ``mean_x{scale}`` and ``eti95_x{scale}`` (the 95% equal-tailed
        interval) per scale, and
        ``max_shift_sd``: the largest change of the posterior mean from the default fit's,
        in units of the default posterior SD (Kruschke 2021 asks that this be reported); no
        rows when the default fit was not estimated (skipped or error).

    Raises
    ------
    ValueError
        If the default scale 1 is missing.

    References
    ----------
    Kruschke, J. K. (2021). Bayesian analysis reporting guidelines. *Nature Human Behaviour,
    5*, 1282-1291.
    """
    scales = {float(k): v for k, v in summaries.items()}
    if 1.0 not in scales:
        raise ValueError(f"the default prior scale 1 is needed, got scales {sorted(scales)}")
    frames = {s: read_csv(p).set_index("parameter") for s, p in scales.items()}
    base = frames[1.0]
    rows = []
    for name in [p for p in KEY_PARAMETERS if p in base.index]:
        row: dict[str, object] = {"parameter": name}
        shifts = []
        for scale in sorted(frames):
            fit = frames[scale]
            if name not in fit.index:
                continue
            mean = float(fit.loc[name, "mean"])
            row[f"mean_x{scale:g}"] = mean
            row[f"eti95_x{scale:g}"] = (
                f"[{fit.loc[name, 'eti95_low']:.3f}, {fit.loc[name, 'eti95_high']:.3f}]"
            )
            if scale != 1.0:
                shifts.append(
                    abs(mean - float(base.loc[name, "mean"])) / float(base.loc[name, "sd"])
                )
        row["max_shift_sd"] = max(shifts) if shifts else None
        rows.append(row)
    if not rows:  # the default fit was not estimated (skipped or error): no key parameter
        per_scale = [f"{k}_x{s:g}" for s in sorted(frames) for k in ("mean", "eti95")]
        return pd.DataFrame(columns=["parameter", *per_scale, "max_shift_sd"])
    return pd.DataFrame(rows)


def prior_sensitivity(
    source: str | Path | Mapping[str, pd.DataFrame],
    model: str,
    default_summary: str | Path,
    out_root: str | Path,
    scales: Sequence[float],
    *,
    priors: Mapping[str, float] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Refit ``model`` with every prior scale multiplied by each of ``scales`` (not 1); table.

    The refits run one after another in this process (PyMC and the data loaded once; in the
    workflow this replaced one job per refit: on the 2-core demo each paid 2-3 s of imports
    and job start for 2-3 s of sampling). Each refit is
    :func:`alliance.bayes.api.fit_model_or_error` with ``refit=True`` (posterior summary and
    diagnostics only, the same seed as the default fit), written to
    ``out_root/{model}_x{scale:g}/``; a refit that fails becomes its status there, as any fit.

    Parameters
    ----------
    source
        The dataset (:func:`alliance.bayes.api.fit_model`'s ``source``).
    model
        The model name.
    default_summary
        ``summary.csv`` of the fit with the default priors (scale 1).
    out_root
        The folder holding every ``{model}_x{scale}`` fit folder.
    scales
        Prior scale factors; 1 (the default fit, already done) is skipped.
    priors
        The default prior scales (:func:`alliance.bayes.priors.scale_priors` multiplies them).
    **options
        Further keywords of :func:`alliance.bayes.api.fit_model` (sampler, data rules).

    Returns
    -------
    pandas.DataFrame
        :func:`sensitivity_table` of the default fit and the refits.

    """
    from alliance.bayes.api import fit_model_or_error
    from alliance.bayes.priors import scale_priors

    summaries: dict[float, str | Path] = {1.0: default_summary}
    for scale in (float(s) for s in scales):
        if scale == 1.0:
            continue
        out = Path(out_root) / f"{model}_x{scale:g}"
        fit_model_or_error(
            source,
            model,
            priors=scale_priors(priors or {}, scale),
            out_dir=out,
            figures=False,
            refit=True,
            **options,
        )
        summaries[scale] = out / "summary.csv"
    return sensitivity_table(summaries)
