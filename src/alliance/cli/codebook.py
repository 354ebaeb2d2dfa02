"""``alliance codebook draft``: a first codebook guessed from an export."""

from __future__ import annotations

import argparse
import sys


def _cmd_codebook_draft(args: argparse.Namespace) -> int:
    from alliance.data.codebook_draft import draft_codebook, write_draft

    read = {"dictionary": args.dictionary} if args.dictionary else {}
    if args.sheet is not None:
        read["sheet"] = int(args.sheet) if args.sheet.isdigit() else args.sheet
    draft = draft_codebook(
        args.export,
        instrument=args.instrument,
        fmt=args.format,
        dataset=args.dataset,
        out=args.out,
        read=read,
    )
    if args.out:
        path = write_draft(draft, args.out, force=args.force)
        print(f"wrote a draft codebook to {path}: check it, then run")
        print(f"  alliance ingest {path} --out results/{draft.doc['dataset']}/ingest")
    else:
        sys.stdout.write(draft.to_yaml())
    todos = draft.open_questions
    print(f"{len(todos)} TODO{'s' * (len(todos) != 1)} to resolve", file=sys.stderr)
    for todo in todos:
        print(f"  TODO {todo}", file=sys.stderr)
    return 0


def _cmd_codebook(args: argparse.Namespace) -> int:
    actions = {"draft": _cmd_codebook_draft}
    return actions[args.codebook_command](args)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``codebook`` subcommand (action ``draft``) to the subparsers ``sub``."""
    p = sub.add_parser(
        "codebook",
        help="draft a codebook from an export (alliance codebook draft EXPORT)",
        description="Codebook tools. `alliance codebook draft EXPORT` writes a first codebook.",
    )
    p.set_defaults(func=_cmd_codebook)
    csub = p.add_subparsers(
        dest="codebook_command", required=True, metavar="ACTION", help="draft: a first codebook"
    )
    d = csub.add_parser(
        "draft",
        help="write a commented codebook guessed from an export",
        description=(
            "Read an export (CSV, SPSS .sav, Excel, Parquet, REDCap records CSV with its data "
            "dictionary, Qualtrics CSV) and write a codebook: layout, ID, session and rater "
            "columns, the item columns matched to the instrument, the raw scale and its recode, "
            "missing codes, SPSS value labels and user-missing values, outcome totals, groups "
            "and covariates. A comment above each key gives the evidence; TODO marks what could "
            "not be decided. No patient ID is written."
        ),
    )
    d.add_argument("export", help="the export file")
    d.add_argument(
        "--instrument",
        default=None,
        help="built-in instrument name or instrument YAML (default: the best-fitting built-in)",
    )
    d.add_argument("--out", default=None, help="the codebook file to write (default: print it)")
    d.add_argument("--force", action="store_true", help="replace --out if it exists")
    d.add_argument(
        "--format",
        default=None,
        choices=["csv", "sav", "xlsx", "parquet", "redcap", "qualtrics"],
        help="the export's format (default: from its suffix and first lines)",
    )
    d.add_argument("--dataset", default=None, help="dataset name (default: the file's name)")
    d.add_argument("--sheet", default=None, help="Excel sheet name or 0-based index")
    d.add_argument(
        "--dictionary",
        default=None,
        help="REDCap: the data dictionary CSV (default: the one beside the export)",
    )
