"""Data in: instruments, codebooks and their schemas, raw-export readers, ingest, scoring, pooling.

The first stage of the workflow (rules ``ingest_items``, ``ingest_effects``, ``pool_items``):

- :mod:`~alliance.data.instruments` (+ ``instruments/*.yaml``), :mod:`~alliance.data.schemas`
  (+ ``schemas/*.yaml``), :mod:`~alliance.data.codebook` - the definitions, validated;
- :mod:`~alliance.data.measures` (+ ``measures/*.yaml``) - outcome measures' ranges and directions;
- :mod:`~alliance.data.readers` - CSV, SPSS, Excel and Parquet exports read as text;
  :mod:`~alliance.data.redcap`, :mod:`~alliance.data.qualtrics` - those exports on top of it;
  :mod:`~alliance.data.exports` - ``read_export``, one entry for every ``format``;
- :mod:`~alliance.data.codebook_draft` - a first codebook guessed from an export;
- :mod:`~alliance.data.ingest` - the stage entry ``ingest_to``: tidy tables, quarantine, report;
- :mod:`~alliance.data.tidy` - an ingest folder read back; :mod:`~alliance.data.scoring` - scores;
- :mod:`~alliance.data.pool` - the stage entry ``pool_to``: item datasets pooled.

May import: the modules of ``alliance.data`` and the shared :mod:`alliance.tables` and
:mod:`alliance.jsonio`; nothing of a later stage, and nothing that draws. Every later stage may
import it (a test, ``tests/test_layers.py``, checks the rules of every package).
"""
