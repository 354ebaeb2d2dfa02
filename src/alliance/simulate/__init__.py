"""Seeded generators of the demo data and of simulated multi-site projects.

- :mod:`~alliance.simulate.demo` - the embedded demo data (``simulate_demo``: the
  ``simulate_demo`` rule, byte-identical for a seed);
- :mod:`~alliance.simulate.sites` - N simulated sites with codebooks and config (benchmarks).

May import: :mod:`alliance.data` and the shared :mod:`alliance.tables`; both modules are stage
entries, which no library module imports.
"""
