"""``alliance bayes``: one Bayesian alliance-outcome model."""

from __future__ import annotations

import argparse


def _cmd_bayes(args: argparse.Namespace) -> int:
    from alliance.bayes.api import fit_model

    sampler = {"seed": args.seed, "chains": args.chains, "draws": args.draws, "cores": args.cores}
    result = fit_model(
        args.dataset,
        args.model,
        sampler=sampler,
        out_dir=args.out,
        alliance_session=args.session,
    )
    print(f"{args.model}: diagnostics {result['status']} -> {args.out}")
    if result.get("reason"):  # skipped: the data cannot support the model
        print(f"  {result['status']}: {result['reason']}")
    for name, effect in (result.get("effects") or {}).items():
        if isinstance(effect, dict) and "mean" in effect:
            print(f"  {name}: {effect['mean']:.3f}")
    return 0 if result["status"] == "pass" else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``bayes`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "bayes",
        help="Bayesian alliance-outcome model of one dataset (PyMC)",
        description=(
            "Fit one Bayesian model (outcome: post-treatment outcome on early alliance and "
            "baseline; therapist: within- and between-therapist alliance slopes; session: "
            "next-session symptoms on within-patient alliance; latent: the WAI-SR items' factors "
            "and the outcome in one model, beside the plug-in score) and write idata.nc, "
            "summary.csv, "
            "diagnostics.json and figures. Exits 1 when a diagnostic fails (R-hat > 1.01, ESS < "
            "400, divergences, low E-BFMI)."
        ),
    )
    p.add_argument(
        "dataset", help="a dataset's results folder (results/site_a) with ingest/ and scores/"
    )
    p.add_argument(
        "--model",
        choices=["outcome", "therapist", "session", "latent"],
        default="outcome",
        help="model (default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--session",
        type=int,
        default=3,
        help="session of the early alliance (default: %(default)s)",
    )
    p.add_argument("--chains", type=int, default=2, help="chains (default: %(default)s)")
    p.add_argument("--draws", type=int, default=2000, help="draws per chain (default: %(default)s)")
    p.add_argument("--cores", type=int, default=2, help="cores (default: %(default)s)")
    p.add_argument("--seed", type=int, default=20261125, help="random seed (default: %(default)s)")
    p.set_defaults(func=_cmd_bayes)
