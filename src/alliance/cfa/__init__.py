"""Confirmatory factor analysis stage: fits through the sem engine, tables and figures.

The workflow's ``cfa_fit``, ``cfa_compare``, ``cfa_invariance``, ``cfa_twolevel`` and
``cfa_report`` rules:

- :mod:`~alliance.cfa.stage` - the stage entries (one fit, the nested comparisons, the
  invariance ladder, the report of tables and figures);
- :mod:`~alliance.cfa.twolevel` - the stage entry of the two-level CFA (sessions within
  patients) and its fit table;
- :mod:`~alliance.cfa.tables` - APA-style tables of the results;
- :mod:`~alliance.cfa.plots` - loading heatmap, fit comparison, path diagram, invariance deltas.

May import: :mod:`alliance.sem` (the engine), :mod:`alliance.data`, :mod:`alliance.describe`'s
library modules and the shared :mod:`alliance.tables`, :mod:`alliance.jsonio`; only ``plots``
and ``stage`` draw. The engine never imports this package.
"""
