"""``alliance score`` and ``alliance describe``: scores and item description of a dataset."""

from __future__ import annotations

import argparse
import json


def _cmd_score(args: argparse.Namespace) -> int:
    from alliance.describe.stage import score_dataset

    summary = score_dataset(args.ingested, args.out, min_answered_share=args.min_answered_share)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from alliance.describe.stage import describe_dataset_dir

    describe_dataset_dir(
        args.ingested,
        args.out,
        session=args.session,
        rater=args.rater,
        n_iter=args.parallel_iterations,
        seed=args.seed,
    )
    print(f"wrote descriptions to {args.out}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``score``, ``describe`` subcommands to the subparsers ``sub``."""
    p = sub.add_parser(
        "score",
        help="subscale and total scores of an ingested dataset",
        description=(
            "Score every patient x session x rater: subscale and total means and prorated sums, "
            "missing when too few items are answered."
        ),
    )
    p.add_argument(
        "ingested", help="the ingest output folder (holds items.parquet and ingest_report.json)"
    )
    p.add_argument("--out", required=True, help="output folder, e.g. results/site_a/scores")
    p.add_argument(
        "--min-answered-share",
        type=float,
        default=0.75,
        help="share of a subscale's items that must be answered for a score (default: %(default)s)",
    )
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser(
        "describe",
        help="item distributions, missingness, reliability, KMO, Bartlett, parallel analysis, EFA",
        description=(
            "Describe an ingested dataset: item category shares (ceiling and floor), missingness "
            "by item and session, item-total correlations, Cronbach's alpha, KMO, Bartlett's test, "
            "parallel analysis and an exploratory factor solution, with figures."
        ),
    )
    p.add_argument("ingested", help="the ingest output folder")
    p.add_argument("--out", required=True, help="output folder, e.g. results/site_a/describe")
    p.add_argument(
        "--session",
        type=int,
        default=3,
        help="session whose ratings form the one-row-per-patient sample (default: %(default)s)",
    )
    p.add_argument("--rater", default="client", help="rater of that sample (default: %(default)s)")
    p.add_argument(
        "--parallel-iterations",
        type=int,
        default=100,
        help="random data sets in the parallel analysis (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=20261125, help="random seed (default: %(default)s)")
    p.set_defaults(func=_cmd_describe)
