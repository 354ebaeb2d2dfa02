"""Prior sensitivity: tabulate how key posterior estimates change when prior scales change."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

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
