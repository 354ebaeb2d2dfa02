"""``alliance invariance-long``: measurement invariance over the waves of a long table."""

from __future__ import annotations

import argparse

from alliance.cli.panel import _waves


def _cmd_invariance_long(args: argparse.Namespace) -> int:
    from alliance.cfa.longinv import run_invariance_long

    waves = _waves(args.waves)
    assert waves is not None  # --waves is required
    result = run_invariance_long(
        args.data,
        args.model,
        id_col=args.id,
        time_col=args.time,
        waves=waves,
        estimator=args.estimator,
        ordered=args.ordered,
        out=args.out,
    )
    data = result["data"]
    print(
        f"longitudinal invariance ({result['estimator']}, missing {result['missing']}): waves "
        f"{', '.join(map(str, data['waves']))}, {data['patients']} patients -> {args.out}"
    )
    for step in result["steps"]:
        fit, test = step.get("fit"), step.get("test")
        if not fit:
            why = step.get("error") or "; ".join(step.get("status", {}).get("issues", []))
            print(f"  {step['name']}: not reported ({why})")
            continue
        line = f"  {step['name']}: chi2({fit['df']}) = {fit['chisq']:.2f}, CFI = {fit['cfi']:.3f}"
        line += f", RMSEA = {fit['rmsea']:.3f}, SRMR = {fit['srmr']:.3f}"
        if test:
            line += f"; diff chi2({test['df_diff']}) = {test['chisq_diff']:.2f}, p = "
            line += f"{test['pvalue']:.4f}"
        decision = (result.get("decisions") or {}).get(step["name"])
        if decision and decision.get("invariant") is not None:
            line += ", Chen: " + ("invariant" if decision["invariant"] else "not invariant")
        print(line)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``invariance-long`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "invariance-long",
        help="longitudinal measurement invariance (configural, metric, scalar, strict over waves)",
        description=(
            "Longitudinal measurement invariance of a model over the waves of a long table "
            "(a row per patient x wave). The model of one wave (plain 'factor =~ items') is "
            "repeated per wave, items and factors suffixed by the wave (b1_3, bond_3), with "
            "the residuals of the same item covaried across waves and factors identified by "
            "unit variances and zero means, as semTools' measEq.syntax(longFacNames = ...) "
            "writes it; steps configural, metric (loadings equal; factor variances free after "
            "the first wave), scalar (intercepts, or thresholds with --ordered, equal; factor "
            "means free after the first wave) and strict (residual variances equal; not for "
            "ordered items). Each step's fit (lavaan's names) and the difference test to the "
            "previous step (lavTestLRT: scaled for MLR, scaled-shifted for WLSMV) with "
            "Chen's (2007) decisions. Missing waves: FIML (ML/MLR), pairwise (WLSMV). "
            "Matches lavaan 0.6-14 / semTools 0.5-6."
        ),
    )
    p.add_argument("data", help="CSV or Parquet, one row per patient x wave")
    p.add_argument("--model", required=True, help="lavaan syntax (.lav) of the model at one wave")
    p.add_argument("--id", required=True, help="patient column")
    p.add_argument("--time", required=True, help="wave (session) column: whole numbers")
    p.add_argument("--waves", required=True, help="waves, comma-separated, e.g. 1,3,6")
    p.add_argument(
        "--estimator", choices=["ML", "MLR", "WLSMV"], default="ML",
        help="(default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--ordered",
        action="store_true",
        help="the items are ordered categories (with --estimator WLSMV; thresholds in scalar)",
    )
    p.add_argument("--out", required=True, help="output JSON file")
    p.set_defaults(func=_cmd_invariance_long)
