"""Meta-analysis: random-effects pooling (matching metafor), its extensions, Bayesian pooling.

The workflow's ``dataset_effect`` and ``meta`` rules, one module per concern:

- :mod:`~alliance.meta.pooling` - Fisher z, REML/DL random effects, Q-profile CI, leave one
  out, Egger, meta-regression (metafor's ``rma``);
- :mod:`~alliance.meta.multilevel` (``rma.mv``), :mod:`~alliance.meta.robust` (CR2),
  :mod:`~alliance.meta.bias`, :mod:`~alliance.meta.selection`,
  :mod:`~alliance.meta.moderators` - the extensions;
- :mod:`~alliance.meta.analysis` - one effects table's whole meta-analysis;
- :mod:`~alliance.meta.bayes` - the Bayesian random-effects model (PyMC);
- :mod:`~alliance.meta.plots` - forest and funnel plots;
- :mod:`~alliance.meta.effects`, :mod:`~alliance.meta.stage` - the stage entries.

May import: the shared :mod:`alliance.tables`, :mod:`alliance.jsonio`, and the sampler and
diagnostics of :mod:`alliance.bayes` (``sampling``, ``diagnostics``); only ``plots`` and the
stage entries draw; no module but the stage entries imports a stage.
"""
