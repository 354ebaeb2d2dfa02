"""Alliance and symptoms within patients over sessions: the RI-CLPM stage (issue 20).

:mod:`~alliance.panel.data` shapes the patient x wave panel from a long table (``alliance
riclpm``) or a dataset's tidy tables; :mod:`~alliance.panel.stage` (the stage entry of rule
``panel`` and of the command) fits the random-intercept cross-lagged panel model with
:func:`alliance.sem.panel.fit_riclpm` and writes the JSON, :mod:`~alliance.panel.tables` the
table of lagged effects, :mod:`~alliance.panel.plots` the figure of the lagged paths, and
:mod:`~alliance.panel.summary` gives the report its section and methods sentences. The
statistics live in :mod:`alliance.sem.panel`; the Bayesian version is
:mod:`alliance.bayes.panel`.

May import: :mod:`alliance.sem`, the tables of :mod:`alliance.bayes.data` and the shared
:mod:`alliance.tables`, :mod:`alliance.jsonio`, :mod:`alliance.figures`; only ``plots`` and
the stage entry draw. This ``__init__`` imports nothing, so that the library may use
:mod:`~alliance.panel.data` without running the stage.
"""
