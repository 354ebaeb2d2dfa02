"""Alliance and symptoms within patients over sessions: the RI-CLPM stage (issue 20).

A stage of the workflow (it reads files and draws): :mod:`~alliance.panel.stage` makes the
patient x wave panel from a long table (``alliance riclpm``) or from a dataset's tidy tables
(rule ``panel``), fits the random-intercept cross-lagged panel model with
:func:`alliance.sem.panel.fit_riclpm` and writes the JSON; :mod:`~alliance.panel.tables` the
table of lagged effects; :mod:`~alliance.panel.plots` the figure of the lagged paths;
:mod:`~alliance.panel.summary` the summary section and methods sentences. The statistics live
in :mod:`alliance.sem.panel`.
"""

from alliance.panel.stage import (
    PANEL_DEFAULTS,
    PanelSkipped,
    long_panel,
    read_long_table,
    run_panel,
    run_riclpm,
    wide_panel,
)

__all__ = [
    "PANEL_DEFAULTS",
    "PanelSkipped",
    "long_panel",
    "read_long_table",
    "run_panel",
    "run_riclpm",
    "wide_panel",
]
