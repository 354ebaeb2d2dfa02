"""``alliance simulate``: the demo data and simulated multi-site projects."""

from __future__ import annotations

import argparse


def _cmd_simulate(args: argparse.Namespace) -> int:
    if args.sites is not None:
        from alliance.simulate.sites import simulate_sites

        out = simulate_sites(
            args.sites,
            args.out,
            seed=args.seed,
            patients_per_site=args.patients_per_site,
            therapist_ratings=args.therapist_ratings,
            inject_errors=not args.no_errors,
        )
        print(f"wrote {args.sites} synthetic sites to {out}")
        print(
            f"run: snakemake --snakefile Snakefile --workflow-profile workflow/profiles/default "
            f"--directory {out} --cores 2"
        )
        return 0
    from alliance.simulate.demo import simulate_demo

    truth = simulate_demo(args.data_dir, args.codebook_dir, seed=args.seed)
    print(f"wrote demo data to {args.data_dir} and codebooks to {args.codebook_dir}")
    print(f"datasets: {', '.join(sorted(truth.get('datasets', {})))}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "simulate",
        help="regenerate the embedded demo data and its codebooks",
        description=(
            "Write the simulated multi-site demo data (CSV, SPSS .sav, Excel, published effects), "
            "one codebook per site and truth.json with the generating parameters. The same seed "
            "gives byte-identical files."
        ),
    )
    p.add_argument(
        "--data-dir", default="data/demo", help="folder for the data files (default: %(default)s)"
    )
    p.add_argument(
        "--codebook-dir",
        default="config/codebooks",
        help="folder for the codebooks (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=20261125, help="random seed (default: %(default)s)")
    p.add_argument(
        "--sites",
        type=int,
        default=None,
        help="instead of the demo: write N synthetic sites (CSV, codebooks, config) into --out, "
        "a project folder for scale runs",
    )
    p.add_argument(
        "--out",
        default="scale_project",
        help="with --sites: the project folder (default: %(default)s)",
    )
    p.add_argument(
        "--patients-per-site",
        type=int,
        default=100,
        help="with --sites: patients per site (default: %(default)s)",
    )
    p.add_argument(
        "--therapist-ratings", action="store_true", help="with --sites: add therapist ratings"
    )
    p.add_argument("--no-errors", action="store_true", help="with --sites: plant no bad rows")
    p.set_defaults(func=_cmd_simulate)
