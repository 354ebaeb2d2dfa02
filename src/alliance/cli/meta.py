"""``alliance meta``: a meta-analysis of an effects table; ``alliance masem``: MASEM."""

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


def _cmd_masem(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alliance.meta.masem_stage import DEFAULT_MASEM_MODELS, read_matrices, run_masem

    settings = {
        "models": args.model or list(DEFAULT_MASEM_MODELS),
        "methods": args.method or ["fixed", "random"],
        "acov": args.acov,
    }
    paths = [Path(s) for s in args.sources]
    if len(paths) == 1 and paths[0].suffix == ".json":
        inputs = read_matrices(paths[0], instrument=args.instrument)
        result = run_masem(None, args.out, settings, inputs=inputs)
    else:
        bad = [str(p) for p in paths if not p.is_dir()]
        if bad:
            raise ValueError(f"sources must be ingest folders or one .json file, got {bad}")
        sources = {p.parent.name if p.name == "ingest" else p.name: p for p in paths}
        result = run_masem(sources, args.out, settings, session=args.session, rater=args.rater)
    if result["status"] != "ok":
        print(f"MASEM not run: {result['reason']} -> {args.out}")
        return 0
    print(f"MASEM over {len(result['datasets'])} samples (N = {result['ntotal']}) -> {args.out}")
    for method, stage2 in result["stage2"].items():
        for name in result["model_order"]:
            fit = stage2["models"].get(name)
            if fit is None:
                continue
            m = fit["fit"]
            text = (
                f"chisq({m['df']}) = {m['chisq']:.2f}, CFI = {m['cfi']:.3f}, "
                f"RMSEA = {m['rmsea']:.3f}, SRMR = {m['srmr']:.3f}"
                if m
                else f"{fit['status']}: {'; '.join(fit['issues'])}"
            )
            print(f"  {method:6s} {name}: {text}")
    for note in result["notes"]:
        print(f"  note: {note}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``meta`` and ``masem`` subcommands to the subparsers ``sub``."""
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

    p = sub.add_parser(
        "masem",
        help="meta-analytic SEM: pool item correlation matrices, fit the competing models",
        description=(
            "Cheung's two-stage SEM (metaSEM's tssem1/tssem2). Stage 1 pools the item "
            "correlation matrices of several samples by fixed effects (one matrix for all: "
            "multi-group ML, as lavaan with equal correlations; its chi-square tests "
            "homogeneity) and random effects (multivariate ML with one heterogeneity variance "
            "per correlation, as metafor's rma.mv struct DIAG), with the asymptotic covariance "
            "of the pooled matrix; stage 2 fits each model to the pooled matrix by WLS with "
            "that covariance (chi-square, CFI, TLI, RMSEA, SRMR, AIC, BIC; standardized "
            "loadings and factor correlations) and tests the nested pairs. Writes masem.json "
            "and the tables correlations, fit, parameters and comparisons (.csv and .md)."
        ),
    )
    p.add_argument(
        "sources",
        nargs="+",
        help="ingest folders of item datasets (results/site_a/ingest, ...: the items' Pearson "
        "correlations over the complete rows of --rater at --session), or one .json file "
        "{variables, studies: [{study, n, R}]} of correlation matrices (null where missing)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--model",
        action="append",
        default=None,
        help="a stage-2 model: a built-in name (one_factor, two_factor, correlated, "
        "second_order, bifactor) or a .lav file; repeat for several (default: one_factor, "
        "two_factor, correlated, bifactor)",
    )
    p.add_argument(
        "--method",
        action="append",
        choices=["fixed", "random"],
        default=None,
        help="stage-1 pooling; repeat for both (default: both)",
    )
    p.add_argument(
        "--acov",
        choices=["weighted", "unweighted", "individual"],
        default="weighted",
        help="random effects: the sampling covariances from the n-weighted mean matrix, the "
        "unweighted mean or each sample's own (default: %(default)s)",
    )
    p.add_argument(
        "--instrument",
        default="wai_sr",
        help="a .json file of matrices: the instrument whose built-in models apply (its items "
        "must be the variables; default: %(default)s)",
    )
    p.add_argument(
        "--session", type=int, default=3, help="ingest folders: the session (default: %(default)s)"
    )
    p.add_argument(
        "--rater", default="client", help="ingest folders: the rater (default: %(default)s)"
    )
    p.set_defaults(func=_cmd_masem)
