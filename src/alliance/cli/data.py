"""``alliance ingest``: the ingest of one codebook's export."""

from __future__ import annotations

import argparse


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alliance.data.ingest import ingest_to

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out!r} names an existing file; give a folder")
    report = ingest_to(args.codebook, args.out, strict=True if args.strict else None)
    cells = report.get("cells_quarantined", 0)
    in_rows = report.get("rows_with_quarantined_cells", 0)
    print(
        f"{report['dataset']}: {report['rows_in']} rows in, {report['rows_kept']} kept, "
        f"{report['rows_quarantined']} quarantined"
        + (f"; {cells} cells of {in_rows} kept rows quarantined (set missing)" if cells else "")
        + f" -> {args.out}"
    )
    for reason, n in report["reasons"].items():
        print(f"  {reason}: {n} rows")
    for warning in report["warnings"]:
        print(f"  warning: {warning}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``ingest`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "ingest",
        help="apply a codebook to a raw export",
        description=(
            "Read the export a codebook names, validate every value against the codebook and its "
            "instrument, and write tidy Parquet tables, quarantine.csv (each problem with its "
            "source row (data row N is line N + 1 of a CSV file), column, value, reason and "
            "scope: a bad answer quarantines its cell, an ID or session problem its row) and "
            "ingest_report.json (rows in = kept + quarantined). Bad input exits with status 2."
        ),
    )
    p.add_argument("codebook", help="the dataset's codebook YAML")
    p.add_argument("--out", required=True, help="output folder, e.g. results/site_a/ingest")
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop with an error at the first problem that would be quarantined",
    )
    p.set_defaults(func=_cmd_ingest)
