"""``alliance meta``: a meta-analysis of an effects table."""

from __future__ import annotations

import argparse


def _cmd_meta(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from alliance.jsonio import write_json
    from alliance.meta.analysis import pool_effects
    from alliance.meta.pooling import effect_measure

    path = Path(args.effects)
    effects = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    moderators = args.moderator or []
    steps = tuple(float(s) for s in str(args.steps).split(",") if s.strip())
    result = pool_effects(
        effects,
        moderator=moderators[0] if len(moderators) == 1 else None,
        method=args.method,
        cluster=args.cluster,
        robust=args.robust,
        selection=args.selection,
        steps=steps,
        moderators=moderators or None,
    )
    if not args.no_bayes:
        if effect_measure(effects) == "ZCOR":
            from alliance.meta.bayes import pool_effects_bayes

            result["bayes"] = pool_effects_bayes(
                effects[["study", "r", "n"]], seed=args.seed, draws=args.draws, tune=args.draws
            )
        else:
            result["bayes"] = {
                "status": "skipped",
                "reason": "the Bayesian model pools correlations (study, r, n); effects are yi, vi",
            }
    out = write_json(args.out, result)
    het = result["heterogeneity"]
    if "pooled_r" in result:
        pooled = result["pooled_r"]
        head = f"k = {result['k']}: pooled r = {pooled['estimate']:.3f} "
    else:
        pooled = result["pooled"]
        head = f"k = {result['k']}: pooled effect = {pooled['estimate']:.3f} "
    if "sigma2" in het:
        spread = (
            f"sigma2 = {het['sigma2'][0]:.4f} (between clusters), {het['sigma2'][1]:.4f} "
            f"(within), I2 = {het['I2'][0]:.1f}% + {het['I2'][1]:.1f}%"
        )
    else:
        spread = f"tau2 = {het['tau2']:.4f}, I2 = {het['I2']:.1f}%"
    print(f"{head}[{pooled['ci.lb']:.3f}, {pooled['ci.ub']:.3f}], {spread} -> {out}")
    if "robust" in result:
        rob = result["robust"]
        print(
            f"  robust (CR2, {rob['clusters']} clusters): SE = {rob['se']:.4f}, "
            f"t({rob['df']:.1f}) = {rob['statistic']:.2f}, p = {rob['pvalue']:.4f}"
        )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``meta`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "meta",
        help="random-effects meta-analysis: two- or three-level REML as metafor, robust, bias",
        description=(
            "Pool study correlations (study, r, n) on Fisher's z, or any effects (study, yi, "
            "vi) on their own scale, by a random-effects model: REML as metafor's rma(), with "
            "tau2, I2, H2, Q, the prediction interval, weights, leave-one-out; with --cluster "
            "the three-level model as rma.mv (sigma2 and I2 per level, profile CIs); --robust "
            "CR2 tests (clubSandwich); always a bias block (Egger, PET, PEESE, trim-and-fill, "
            "and with --selection a selection model); and a Bayesian random-effects model "
            "(PyMC) beside it for correlations. Writes JSON with pooled_z, pooled_r (or "
            "pooled), heterogeneity, robust, bias, moderators and bayes."
        ),
    )
    p.add_argument(
        "effects",
        help="CSV or Parquet with columns study, r, n (correlations) or study, yi, vi (any "
        "effect size with its sampling variance), and optional cluster and moderator columns",
    )
    p.add_argument("--out", required=True, help="output JSON file")
    p.add_argument(
        "--method",
        choices=["REML", "DL"],
        default="REML",
        help="tau2 estimator of the two-level model (default: %(default)s)",
    )
    p.add_argument(
        "--moderator",
        action="append",
        default=None,
        help="moderator column; repeat for several (meta-regression with Knapp-Hartung tests "
        "and pseudo-R2; default: none)",
    )
    p.add_argument(
        "--cluster",
        default=None,
        help="column of the outer level: fit the three-level model "
        "rma.mv(yi, vi, random = ~ 1 | cluster/study) (default: two-level)",
    )
    p.add_argument(
        "--robust",
        action="store_true",
        help="cluster-robust CR2 tests with Satterthwaite df (clubSandwich), clustered by "
        "--cluster or by study",
    )
    p.add_argument(
        "--selection",
        choices=["step", "beta"],
        default=None,
        help="add a selection model (metafor selmodel type stepfun or beta) to the bias block",
    )
    p.add_argument(
        "--steps",
        default="0.025",
        help="p-value cut points of the step selection model, comma-separated "
        "(default: %(default)s; 1 is added)",
    )
    p.add_argument("--no-bayes", action="store_true", help="skip the Bayesian model")
    p.add_argument(
        "--draws",
        type=int,
        default=1000,
        help="posterior draws (and tuning steps) per chain (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=20261125, help="random seed (default: %(default)s)")
    p.set_defaults(func=_cmd_meta)
