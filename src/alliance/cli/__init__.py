"""The ``alliance`` command line: the same library calls the Snakemake rules make.

One module per stage builds that stage's subcommands and runs them (``add_parsers``):
:mod:`~alliance.cli.simulate`, :mod:`~alliance.cli.data` (``ingest``),
:mod:`~alliance.cli.describe` (``score``, ``describe``), :mod:`~alliance.cli.cfa`,
:mod:`~alliance.cli.bayes`, :mod:`~alliance.cli.bsem`,
:mod:`~alliance.cli.process` (``process``, ``process-bayes``),
:mod:`~alliance.cli.panel` (``riclpm``), :mod:`~alliance.cli.longinv`
(``invariance-long``), :mod:`~alliance.cli.irt`, :mod:`~alliance.cli.meta` (``meta``, ``masem``) and
:mod:`~alliance.cli.verify`; this module puts them together and
turns bad input into one line and exit status 2.

May import: everything (the command line is a stage entry); each subcommand imports its stage
when it runs, so ``alliance --help`` stays fast. Nothing imports this package.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from alliance import __version__
from alliance.cli import (
    bayes,
    bsem,
    cfa,
    codebook,
    data,
    describe,
    irt,
    longinv,
    meta,
    panel,
    process,
    simulate,
    verify,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand and option documented."""
    parser = argparse.ArgumentParser(
        prog="alliance",
        description=(
            "Therapeutic-alliance research pipeline: each subcommand runs one stage on its own. "
            "`snakemake` runs them all."
        ),
    )
    parser.add_argument("--version", action="version", version=f"alliance {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an input error too (also: environment ALLIANCE_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for stage in (
        simulate,
        data,
        codebook,
        describe,
        cfa,
        longinv,
        bayes,
        bsem,
        process,
        panel,
        irt,
        meta,
        verify,
    ):
        stage.add_parsers(sub)
    return parser


#: Exceptions that mean bad input (a file, a codebook, an option, a value): one line naming
#: it, exit status 2. Any other exception is a bug and keeps its traceback (exit status 1).
INPUT_ERRORS = (ValueError, OSError)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        target = f"{exc.filename!s}" + (f" -> {exc.filename2!s}" if exc.filename2 else "")
        return f"{target}: {exc.strerror}"
    return str(exc)


def _stdout_gone() -> None:
    """After a broken pipe (``alliance ... | head``): send the rest of stdout to devnull.

    As the Python documentation on SIGPIPE recommends, so that the interpreter's final flush
    does not raise a second time.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Bad input (:data:`INPUT_ERRORS`: a ``ValueError``, including the ingest's, codebook's and
    schema's errors, or an ``OSError`` such as a missing file or a directory given for a file)
    is printed as one line naming the file, key, line, column and value, exit status 2;
    ``alliance --debug ...`` or ``ALLIANCE_DEBUG=1`` shows its traceback too. Any other
    exception is a bug and keeps its traceback (exit status 1). A closed output pipe
    (``alliance ... | head``) ends the command quietly (exit status 1).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("ALLIANCE_DEBUG", "") not in ("", "0")
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _stdout_gone()
        return 1
    except INPUT_ERRORS as exc:
        if debug:
            raise
        print(f"alliance {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
