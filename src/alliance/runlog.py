"""Logging for pipeline steps: messages, warnings and uncaught errors go to the step's log file."""

from __future__ import annotations

import logging
import sys
import traceback
import warnings
from pathlib import Path
from types import TracebackType


def log_to(path: str | Path, level: int = logging.INFO) -> logging.Logger:
    """Send the ``alliance`` logger, library messages and Python warnings to ``path`` only.

    A pipeline step writes nothing to the console while it works: everything goes to its log
    file (Snakemake names the file when a step fails). An uncaught error is written to the log
    file and, with its traceback, to standard error.

    Parameters
    ----------
    path
        The log file (its folder is created).
    level
        Logging level of the file handler.

    Returns
    -------
    logging.Logger
        The ``alliance`` logger.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # chatter at INFO that says nothing about the run: font subsetting, and ArviZ's list of
    # optional preview packages that are not installed ("arviz_base not installed")
    for noisy in ("fontTools", "matplotlib", "PIL", "arviz.preview"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.simplefilter("default")

    def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None):
        text = "".join(traceback.format_exception(kind, value, tb)).rstrip()
        logging.getLogger("alliance").error(text)
        print(text, file=sys.stderr)

    sys.excepthook = _excepthook
    return logging.getLogger("alliance")
