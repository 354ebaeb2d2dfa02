"""Meta-analysis: random-effects pooling (matching metafor), its extensions, Bayesian pooling.

The workflow's ``dataset_effect``, ``meta``, ``masem`` and ``ipd`` rules, one module per concern:

- :mod:`~alliance.meta.pooling` - Fisher z, REML/DL random effects, Q-profile CI, leave one
  out, Egger, meta-regression (metafor's ``rma``);
- :mod:`~alliance.meta.multilevel` (``rma.mv``), :mod:`~alliance.meta.robust` (CR2),
  :mod:`~alliance.meta.bias`, :mod:`~alliance.meta.selection`,
  :mod:`~alliance.meta.moderators` - the extensions;
- :mod:`~alliance.meta.analysis` - one effects table's whole meta-analysis;
- :mod:`~alliance.meta.bayes` - the Bayesian random-effects model (PyMC);
- :mod:`~alliance.meta.masem` - meta-analytic SEM (two-stage SEM on item correlations);
- :mod:`~alliance.meta.ipd` - the one-stage Bayesian IPD model (PyMC);
- :mod:`~alliance.meta.plots` - forest and funnel plots;
- :mod:`~alliance.meta.effects`, :mod:`~alliance.meta.stage`, :mod:`~alliance.meta.masem_stage`,
  :mod:`~alliance.meta.ipd_stage` - the stage entries.

May import: the shared :mod:`alliance.tables`, :mod:`alliance.jsonio`, the engine
:mod:`alliance.sem` (MASEM's stage 2), and the library modules of :mod:`alliance.bayes`
(``data``, ``priors``, ``sampling``, ``diagnostics``); the stage entries also the CFA stage's
model names and sample (:mod:`alliance.cfa.stage`) and :mod:`alliance.data`; only ``plots``
and the stage entries draw; no module but the stage entries imports a stage.
"""
