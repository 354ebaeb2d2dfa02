"""Logging for pipeline steps: messages, warnings and uncaught errors go to the step's log file."""

from __future__ import annotations

import logging
import sys
import traceback
import warnings
from pathlib import Path
from types import TracebackType


def log_to(path: str | Path, level: int = logging.INFO) -> logging.Logger:
    """Send the ``alliance`` logger, Python warnings and uncaught exceptions to ``path``.

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
    root.handlers = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(level)
    for noisy in ("fontTools", "matplotlib", "PIL"):  # font subsetting chatter at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.simplefilter("default")

    def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None):
        logging.getLogger("alliance").error(
            "".join(traceback.format_exception(kind, value, tb)).rstrip()
        )

    sys.excepthook = _excepthook
    return logging.getLogger("alliance")
