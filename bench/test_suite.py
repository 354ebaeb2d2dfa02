"""The test suite's wall time: ``make test``'s command on the working tree's tests."""

from __future__ import annotations

import re
import sys

from bench.common import ROOT, Context, Row, register, run_measured

#: ``make test`` on 2 cores (issue 13).
TEST_TARGET_S = 300.0


def make_test_markers() -> str:
    """The marker expression of ``make test``'s pytest command, read from the Makefile.

    A copy here drifted: the bench ran the other-machine demo test that make test leaves out.
    """
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("test:"))
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        found = re.search(r'-m "([^"]+)"', line)
        if found:
            return found.group(1)
    raise ValueError(f"no -m expression in the Makefile's test target, got {lines[start:][:3]}")


@register("tests", order=90, description="make test's pytest command, wall time")
def test_suite(ctx: Context) -> list[Row]:
    """Time ``make test``'s pytest command and list the slowest tests."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        str(ctx.cores),
        "--dist",
        "loadfile",
        "--no-loadscope-reorder",
        "-m",
        make_test_markers(),
        "-q",
        "--durations=8",
        "-p",
        "no:cacheprovider",
    ]
    # the repository, not the workflow snapshot of the other benchmarks: the suite reads files
    # the snapshot leaves out (tests/, pyproject.toml's pytest settings, verification/, ...)
    run = run_measured(command, cwd=ROOT)
    tail = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    slowest = re.findall(r"^([\d.]+)s call\s+(\S+)", run.stdout, flags=re.MULTILINE)[:5]
    notes = f"{tail}; slowest: " + ", ".join(
        f"{name.split('::')[-1]} {sec}s" for sec, name in slowest
    )
    return [
        Row(
            "tests",
            "make test (not slow)",
            "the whole suite",
            wall_s=run.wall_s,
            target=f"<= {TEST_TARGET_S:.0f} s",
            status="FAILED"
            if run.returncode != 0
            else ("met" if run.wall_s <= TEST_TARGET_S else "GAP"),
            notes=notes,
        )
    ]
