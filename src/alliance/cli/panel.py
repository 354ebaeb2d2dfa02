"""``alliance riclpm``: the random-intercept cross-lagged panel model of a long table."""

from __future__ import annotations

import argparse


def _waves(text: str | None) -> list[int] | None:
    """``--waves 1,2,3``: whole numbers, comma-separated."""
    if text is None:
        return None
    try:
        return [int(w) for w in str(text).split(",") if w.strip()]
    except ValueError:
        raise ValueError(f"--waves takes whole numbers separated by commas, got {text!r}") from None


def _cmd_riclpm(args: argparse.Namespace) -> int:
    from alliance.panel.stage import run_riclpm

    result = run_riclpm(
        args.data,
        x=args.x,
        y=args.y,
        id_col=args.id,
        time_col=args.time,
        waves=_waves(args.waves),
        estimator=args.estimator,
        missing=args.missing,
        constrain_lags=args.constrain_lags,
        detrend=args.detrend,
        out=args.out,
    )
    data, meta = result["data"], result["meta"]
    lags = "equal" if meta["constrain_lags"] else "free"
    print(
        f"RI-CLPM ({meta['estimator']}, {lags} lags{', detrended' if meta['detrend'] else ''}): "
        f"{len(data['waves'])} waves, {data['patients']} patients -> {args.out}"
    )
    if not result["usable"]:
        print(f"  not usable: {'; '.join(result['status']['issues'])}")
        return 0
    fit = result["fit"]
    print(f"  fit: chi2({fit['df']}) = {fit['chisq']:.2f}, CFI = {fit['cfi']:.3f}, "
          f"RMSEA = {fit['rmsea']:.3f}")  # fmt: skip
    names = {"cross_x_to_y": f"{args.x} -> {args.y}", "cross_y_to_x": f"{args.y} -> {args.x}"}
    for key, name in names.items():
        rows = result["effects"][key]["waves"]
        first = rows[0]
        shown = (
            f"{first['est']:.3f} [{first['ci.lower']:.3f}, {first['ci.upper']:.3f}], "
            f"std {min(r['std.all'] for r in rows):.3f} to {max(r['std.all'] for r in rows):.3f}"
            if meta["constrain_lags"]
            else ", ".join(f"{r['from']}-{r['to']}: {r['est']:.3f}" for r in rows)
        )
        print(f"  {name}: {shown}")
    wald = result["equal_lags"]["wald"]
    if wald:
        print(
            f"  equal lags: Wald chi2({wald['df']}) = {wald['stat']:.2f}, p = {wald['pvalue']:.4f}"
        )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``riclpm`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "riclpm",
        help="random-intercept cross-lagged panel model (alliance and symptoms within patients)",
        description=(
            "Fit the RI-CLPM (Hamaker, Kuiper & Grasman 2015; lavaan syntax of Mulder & "
            "Hamaker 2021) to a long table with one row per patient and wave: random intercepts "
            "of x and y, within-person deviations per wave with lagged regressions (free per "
            "wave, or equal over the waves), within covariances per wave, free means (or a "
            "linear trend with --detrend); FIML for missing waves. Writes JSON in lavaan's "
            "layout with `effects` (autoregressive_x, autoregressive_y, cross_x_to_y, "
            "cross_y_to_x; standardized within-person values beside them) and `equal_lags` "
            "(Wald and likelihood-ratio tests of equal lags). Matches lavaan 0.6-14."
        ),
    )
    p.add_argument("data", help="CSV or Parquet, one row per patient x wave")
    p.add_argument("--x", required=True, help="column of the first measure, e.g. alliance")
    p.add_argument("--y", required=True, help="column of the second measure, e.g. symptoms")
    p.add_argument("--id", required=True, help="patient column")
    p.add_argument("--time", required=True, help="wave (session) column: whole numbers")
    p.add_argument(
        "--waves",
        default=None,
        help="waves to use, comma-separated, e.g. 1,2,3,4,5 (default: every wave in the data; "
        "at least 3)",
    )
    p.add_argument(
        "--estimator", choices=["ML", "MLR"], default="ML", help="(default: %(default)s)"
    )
    p.add_argument(
        "--missing",
        choices=["fiml", "listwise"],
        default="fiml",
        help="missing waves: FIML (lavaan missing = 'ml') or listwise (default: %(default)s)",
    )
    p.add_argument(
        "--constrain-lags",
        action="store_true",
        help="report the model with each lag equal over the waves (both are fitted for the test)",
    )
    p.add_argument(
        "--detrend",
        action="store_true",
        help="a linear trend of the means over the waves instead of free means",
    )
    p.add_argument("--out", required=True, help="output JSON file")
    p.set_defaults(func=_cmd_riclpm)
