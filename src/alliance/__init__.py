"""alliance: therapeutic-alliance research pipeline, from raw items to pooled results.

One subpackage per stage of the workflow, each with its stage entries (what the Snakemake
scripts and the CLI call): :mod:`alliance.data`, :mod:`alliance.describe`, :mod:`alliance.cfa`,
:mod:`alliance.bayes`, :mod:`alliance.process`, :mod:`alliance.meta`, :mod:`alliance.report`,
:mod:`alliance.simulate`; the structural equation engine :mod:`alliance.sem`; and small shared
modules: :mod:`alliance.tables` (the one table writer: formula-safe CSV and Markdown),
:mod:`alliance.jsonio` (the one JSON writer), :mod:`alliance.figures` (the one figure style and
writer), :mod:`alliance.runlog`, :mod:`alliance.library_warnings`, :mod:`alliance.provenance`,
:mod:`alliance.verify` and :mod:`alliance.cli`.

May import, in every package: stages may import the library; the library never imports a stage
(nor ``snakemake``); statistics never draw (only stages, ``plots`` modules and
:mod:`alliance.figures` import matplotlib); ``sem`` imports nothing outside ``sem``; no import
cycle. ``tests/test_layers.py`` checks each rule on the source.
"""

import os as _os

__version__ = "0.1.0"


def _pin_pytensor_blas() -> None:
    """Let PyTensor reach BLAS through NumPy on every machine unless the user configured it.

    At the first C compilation in every process PyTensor (PyMC's compiler) tries to link a
    system BLAS by trial builds (about 1-2 s per process; with none found it warns that "BLAS
    operations will be severely degraded"). Which library it finds depends on the machine's
    -dev packages (installing R brings Debian's reference BLAS, libblas-dev), so the compiled
    code would differ between machines. An empty ``blas__ldflags`` makes PyTensor call BLAS
    through NumPy's C API (NumPy's own OpenBLAS) everywhere. Measured on the demo's outcome
    and therapist models: the same draws and the same sampling times as with OpenBLAS linked,
    and 0.7-1.8 s less per process. Set in the environment so that PyMC's chain processes
    inherit it; a user's own ``blas__ldflags`` (PYTENSOR_FLAGS or .pytensorrc) is kept.
    """
    flags = _os.environ.get("PYTENSOR_FLAGS", "")
    rc = _os.environ.get("PYTENSORRC", _os.path.expanduser("~/.pytensorrc"))
    configured = "blas__ldflags" in flags
    if not configured and _os.path.isfile(rc):
        with open(rc, encoding="utf-8", errors="replace") as handle:
            configured = "ldflags" in handle.read()
    if not configured:
        _os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, "blas__ldflags=") if f)


_pin_pytensor_blas()
