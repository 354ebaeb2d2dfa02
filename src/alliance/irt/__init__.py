"""Item response models of the instrument: the graded response model and the Rasch PCM (issue 18).

:mod:`~alliance.irt.responses` turns item columns into category codes (empty categories
collapsed with a note), :mod:`~alliance.irt.grm` fits Samejima's graded response model by
marginal maximum likelihood (item parameters with standard errors, item and test information,
EAP scores), :mod:`~alliance.irt.pcm` the Rasch partial credit model by conditional maximum
likelihood as eRm does (thresholds, their ordering, person parameters, infit and outfit),
:mod:`~alliance.irt.plots` draws category characteristic curves and threshold maps and
:mod:`~alliance.irt.stage` (the stage entry of rule ``irt`` and of ``alliance irt``) reads the
data, fits, and writes JSON, tables and figures. :mod:`~alliance.irt.summary` gives the
report its section.

May import: numpy, scipy, pandas, the shared :mod:`alliance.tables`, :mod:`alliance.jsonio`
and :mod:`alliance.figures` (``plots`` only) and, in the stage, the readers of
:mod:`alliance.cfa.stage` and :mod:`alliance.data`; only ``plots`` and the stage draw. The
statistics modules (``responses``, ``grm``, ``pcm``) import nothing of the package. This
``__init__`` imports nothing.
"""
