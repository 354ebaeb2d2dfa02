"""``alliance bsem``: Bayesian SEM of a CFA with small-variance priors (Muthén & Asparouhov)."""

from __future__ import annotations

import argparse


def _cmd_bsem(args: argparse.Namespace) -> int:
    from alliance.bayes.bsem_stage import run_bsem

    sampler = {"seed": args.seed, "chains": args.chains, "draws": args.draws, "cores": args.cores}
    if args.twolevel or args.cluster:
        return _twolevel(args, sampler)
    result = run_bsem(
        args.data,
        args.model,
        args.out,
        ordered=args.ordered,
        prior_variance=args.prior_variance,
        residual_size=args.residual_size,
        sampler=sampler,
        session=args.session,
        rater=args.rater,
    )
    print(f"BSEM {result['model_name']}: {result['status']} -> {args.out}")
    if result.get("reason"):
        print(f"  {result['reason']}")
        return 1
    ppp = result["ppp"]
    low, high = ppp["diff_eti95"]
    print(
        f"  PPP {ppp['ppp']:.3f}, 95% interval of observed - replicated chi-square "
        f"[{low:.1f}, {high:.1f}]"
    )
    for row in result["large_residual_correlations"]:
        print(f"  residual correlation {row['pair']}: {row['mean']:.3f}")
    _print_failures(result["diagnostics"]["failures"], args.draws)
    return 0 if result["status"] == "pass" else 1


def _print_failures(failures: list[str], draws: int) -> None:
    """Each failed diagnostic; for too few effective draws, the option that adds draws."""
    for failure in failures:
        print(f"  diagnostic failed: {failure}")
    if any("ESS" in failure for failure in failures):
        print(
            f"  the chains mix slowly (strong residual correlations against the small-variance "
            f"prior do this): run again with more draws, e.g. --draws {2 * draws}"
        )


def _twolevel(args: argparse.Namespace, sampler: dict) -> int:
    from alliance.bayes.bsem_stage import run_bsem_twolevel

    result = run_bsem_twolevel(
        args.data,
        args.model,
        args.out,
        ordered=args.ordered,
        between=args.between,
        cluster=args.cluster,
        sampler=sampler,
        rater=args.rater,
    )
    print(f"two-level BSEM {result['model_name']}: {result['status']} -> {args.out}")
    if result.get("reason"):
        print(f"  {result['reason']}")
        return 1
    _print_failures(result["diagnostics"]["failures"], args.draws)
    return 0 if result["status"] == "pass" else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``bsem`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "bsem",
        help="Bayesian SEM of a CFA model with small-variance priors (PyMC)",
        description=(
            "Fit a CFA as a Bayesian SEM: cross-loadings and residual correlations get normal "
            "priors of small variance (default 0.01; 0 = the exact-zero CFA), continuous "
            "items or ordinal ones (--ordered: probit with thresholds). Writes summary.json "
            "(diagnostics, posterior predictive p-value of the chi-square discrepancy with "
            "its 95%% interval, large residual correlations), parameters.csv and "
            "residual_correlations.csv. With --twolevel (or --cluster), a two-level CFA of "
            "sessions within patients (continuous or ordinal items; Muthen 1994), which lavaan "
            "cannot fit for ordinal items. Exits 1 when a diagnostic fails."
        ),
    )
    p.add_argument("data", help="an ingest folder, or a .csv/.parquet/.sav file (a row per person)")
    p.add_argument(
        "--model", required=True, help="a built-in model of the instrument or a .lav file"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--ordered", action="store_true", help="ordinal items (probit, thresholds)")
    p.add_argument(
        "--prior-variance",
        type=float,
        default=0.01,
        help="prior variance of cross-loadings and residual correlations (default: %(default)s)",
    )
    p.add_argument(
        "--residual-size",
        type=float,
        default=0.1,
        help="list residual correlations at least this large (default: %(default)s)",
    )
    p.add_argument(
        "--twolevel",
        action="store_true",
        help="sessions within patients: a factor model at each level (an ingest folder's "
        "every session; exact-zero structure, no PPP)",
    )
    p.add_argument(
        "--cluster",
        default=None,
        help="the cluster column of a data file (implies --twolevel; an ingest folder: patient)",
    )
    p.add_argument(
        "--between",
        choices=("same", "one_factor"),
        default="same",
        help="between-patient factors of a single-level model (default: %(default)s)",
    )
    p.add_argument(
        "--session", type=int, default=3, help="session of an ingest folder (default: 3)"
    )
    p.add_argument("--rater", default="client", help="rater of an ingest folder (default: client)")
    p.add_argument("--chains", type=int, default=2, help="chains (default: %(default)s)")
    p.add_argument("--draws", type=int, default=2000, help="draws per chain (default: %(default)s)")
    p.add_argument("--cores", type=int, default=2, help="cores (default: %(default)s)")
    p.add_argument("--seed", type=int, default=20261125, help="seed (default: %(default)s)")
    p.set_defaults(func=_cmd_bsem)
