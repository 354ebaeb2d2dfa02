"""``alliance irt``: the graded response model or the Rasch partial credit model of the items."""

from __future__ import annotations

import argparse


def _scale(text: str | None) -> list[int] | None:
    """``--scale 1-5``: the lowest and highest category."""
    if text is None:
        return None
    low, sep, high = str(text).partition("-")
    try:
        lo, hi = int(low), int(high)
    except ValueError:
        lo, hi = 1, 0
    if not sep or hi <= lo:
        raise ValueError(f"--scale takes the lowest and highest category, as 1-5, got {text!r}")
    return list(range(lo, hi + 1))


def _cmd_irt(args: argparse.Namespace) -> int:
    from alliance.irt.stage import run_irt

    items = [i.strip() for i in args.items.split(",") if i.strip()] if args.items else None
    result = run_irt(
        args.data,
        args.model,
        args.out,
        items=items,
        instrument=args.instrument,
        by=args.by,
        session=args.session,
        rater=args.rater,
        scale=_scale(args.scale),
    )
    kind = "graded response model" if args.model == "grm" else "Rasch partial credit model"
    print(f"{kind}: {len(result['scales'])} scale(s) -> {args.out}")
    for scale in result["scales"]:
        fit = scale["fit"]
        line = f"  {scale['name']}: {fit.get('status')}"
        if fit.get("status") == "converged":
            bad = [i["item"] for i in fit["items"] if not i["ordered"]]
            line += f", {fit['n_respondents']} respondents, disordered thresholds: "
            line += ", ".join(bad) if bad else "none"
        elif fit.get("reason"):
            line += f" ({fit['reason']})"
        print(line)
        for note in scale.get("coding", {}).get("notes", []):
            print(f"    note: {note}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``irt`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "irt",
        help="graded response model or Rasch partial credit model of the items",
        description=(
            "Fit Samejima's graded response model (marginal ML, logistic metric with D = 1 as "
            "mirt; discriminations a, thresholds b and intercepts d with observed-information "
            "SEs; item and test information; EAP scores) or the Rasch partial credit model "
            "(conditional ML as eRm's PCM: thresholds with SEs, disordered thresholds flagged, "
            "infit/outfit). One model per factor of the instrument (--by factor, default) or "
            "one of all items (--by none). Empty categories are merged with a neighbour and "
            "noted. Writes irt.json, items.csv/.md, category_curves.png/.pdf and "
            "threshold_map.png/.pdf."
        ),
    )
    p.add_argument("data", help="an ingest folder, or a .csv/.parquet/.sav file (a row per person)")
    p.add_argument(
        "--model",
        choices=["grm", "pcm"],
        required=True,
        help="grm: graded response model; pcm: Rasch partial credit model",
    )
    p.add_argument("--items", default=None, help="item columns, comma-separated")
    p.add_argument(
        "--instrument",
        default=None,
        help="built-in instrument (e.g. wai_sr) or instrument YAML: items, factors and scale",
    )
    p.add_argument(
        "--scale",
        default=None,
        help="response categories as LOW-HIGH, e.g. 1-5 (default: the instrument's, else the "
        "lowest to the highest answer)",
    )
    p.add_argument(
        "--by",
        choices=["factor", "none"],
        default="factor",
        help="one model per factor of the instrument, or one of all items (default: %(default)s)",
    )
    p.add_argument(
        "--session", type=int, default=3, help="ingest folder: session (default: %(default)s)"
    )
    p.add_argument("--rater", default="client", help="ingest folder: rater (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_irt)
