"""A pipeline step is quiet on the console: messages and warnings go to its log file."""

import logging
import sys
import warnings

import pytest

from alliance.runlog import log_to


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook)
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers, level, sys.excepthook = saved[0], saved[1], saved[2]
    root.setLevel(level)
    logging.captureWarnings(False)


def test_messages_and_warnings_go_to_the_log_file_only(tmp_path, capfd, restore_logging):
    log = log_to(tmp_path / "logs" / "step.log")
    log.info("fitted %d models", 3)
    logging.getLogger("pymc").info("Sampling: [y]")
    logging.getLogger("arviz.preview").info("arviz_base not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)
        warnings.warn("a library's note", UserWarning, stacklevel=1)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "logs" / "step.log").read_text()
    assert "fitted 3 models" in text and "Sampling: [y]" in text
    assert "a library's note" in text
    assert "arviz_base not installed" not in text  # INFO chatter about optional packages
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_an_uncaught_error_reaches_the_log_and_the_console(tmp_path, capfd, restore_logging):
    log_to(tmp_path / "step.log")
    try:
        raise ValueError("fewer than 20 lagged session rows, got 0")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert "fewer than 20 lagged session rows" in (tmp_path / "step.log").read_text()
    assert "Traceback" in capfd.readouterr().err


def test_the_known_fusion_failure_becomes_one_line(tmp_path, restore_logging):
    """PyTensor's FusionOptimizer KeyError (pytensor#2145) is logged as three ERROR records;
    they become one INFO line, while another rewrite error keeps its traceback."""
    from alliance.bayes.sampling import _quiet_known_rewrite_failures

    log_to(tmp_path / "step.log")
    pytensor_log = logging.getLogger("pytensor.graph.rewriting.basic")
    with _quiet_known_rewrite_failures():
        for trace in ("KeyError: _unconstrained_point", "ValueError: something else"):
            pytensor_log.error("SequentialGraphRewriter apply <...FusionOptimizer object at 0x1>")
            pytensor_log.error("Traceback:")
            pytensor_log.error(f"Traceback (most recent call last):\n  ...\n{trace}")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "step.log").read_text()
    assert "KeyError: _unconstrained_point" not in text
    assert "ValueError: something else" in text
    assert "skipped its elementwise fusion for 1 graph(s)" in text
