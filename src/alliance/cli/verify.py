"""``alliance verify``: the check of a rerun against the expected numbers."""

from __future__ import annotations

import argparse
import json


def _cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alliance.verify import build_manifest, summarize, verify, write_manifest

    manifest_path = Path(args.manifest)
    if args.update:
        manifest = build_manifest(args.results)
        write_manifest(manifest, manifest_path)
        print(f"wrote {len(manifest['values'])} expected values to {manifest_path}")
        return 0
    if not manifest_path.is_file():
        raise ValueError(f"no manifest at {manifest_path}; create one with --update")
    table = verify(args.results, json.loads(manifest_path.read_text()))
    print(summarize(table).to_string())
    bad = table[table["status"].isin(["mismatch", "missing"])]
    extra = table[table["status"] == "unexpected"]
    if len(extra):
        print(f"note: {len(extra)} numbers are not in the manifest (new outputs?)")
    if len(bad):
        print(f"\n{len(bad)} expected numbers do not match:")
        print(bad.head(args.show).to_string(index=False))
        return 1
    n_mc = int(((table["kind"] == "monte_carlo") & (table["status"] == "match")).sum())
    print(
        f"all {int((table['status'] == 'match').sum())} expected numbers match "
        f"({n_mc} Monte Carlo numbers within their Monte Carlo error)"
    )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "verify",
        help="check that a rerun reproduces the expected numbers",
        description=(
            "Compare every number in the result tables (ingest reports, scores, descriptions, "
            "reliability, EFA, CFA, Bayesian, process and meta-analysis tables) with a committed "
            "manifest. Deterministic numbers within a tolerance per kind (counts exactly, "
            "estimates 1e-6, p-values 1e-4 relative); Monte Carlo numbers (posterior "
            "summaries) within their Monte Carlo standard error, with a 1% chance that a "
            "faithful rerun on another machine fails; R-hat, ESS and divergences by their "
            "pass/fail verdict. Prints a table per file and exits 1 when an expected number "
            "is missing or differs."
        ),
    )
    p.add_argument(
        "results", nargs="?", default="results", help="results folder (default: %(default)s)"
    )
    p.add_argument(
        "--manifest",
        default="verification/demo_manifest.json",
        help="the expected numbers (default: %(default)s)",
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="write the manifest from the current results instead of checking",
    )
    p.add_argument(
        "--show", type=int, default=50, help="mismatches to print (default: %(default)s)"
    )
    p.set_defaults(func=_cmd_verify)
