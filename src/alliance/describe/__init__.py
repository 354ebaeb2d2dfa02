"""Item description: distributions, missingness, reliability, exploratory factor analysis.

The workflow's ``score`` and ``describe`` rules:

- :mod:`~alliance.describe.items` - item and dataset description (KMO, Bartlett, PA, EFA);
- :mod:`~alliance.describe.reliability`, :mod:`~alliance.describe.efa` - the statistics;
- :mod:`~alliance.describe.plots` - item-response and missingness figures;
- :mod:`~alliance.describe.stage` - the stage entries ``score_dataset`` and
  ``describe_dataset_dir``.

May import: :mod:`alliance.data` and the shared :mod:`alliance.tables`, :mod:`alliance.jsonio`;
only ``plots`` and ``stage`` import :mod:`alliance.figures` or matplotlib (statistics never
draw); only ``stage`` is a stage, and no other module imports it.
"""
