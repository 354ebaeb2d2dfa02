"""``alliance cfa``: one confirmatory factor analysis or invariance ladder."""

from __future__ import annotations

import argparse


def _cmd_twolevel(args: argparse.Namespace) -> int:
    """``alliance cfa DATA --model M.lav --cluster COL``: a two-level CFA (ML or MLR)."""
    from pathlib import Path

    from alliance.cfa.stage import read_cfa_data
    from alliance.jsonio import write_json
    from alliance.sem.twolevel_output import fit_twolevel

    estimator = args.estimator or "ML"
    if estimator not in ("ML", "MLR"):
        raise ValueError(
            f"--cluster: two-level CFA is fitted by ML or MLR, got --estimator {estimator}"
        )
    clashes = [
        flag
        for flag, used in (
            ("--group", args.group),
            ("--ordered", args.ordered),
            ("--continuous", args.continuous),
            ("--missing", args.missing),
        )
        if used
    ]
    if clashes:
        raise ValueError(f"--cluster {args.cluster!r} cannot be combined with {', '.join(clashes)}")
    if Path(args.data).is_dir():
        raise ValueError(
            f"--cluster needs a data file with one row per level-1 unit (e.g. session), got the "
            f"folder {args.data!r}; the workflow's cfa_twolevel rule fits ingested datasets"
        )
    model_path = Path(args.model)
    if not model_path.is_file():
        raise ValueError(
            f"--model {args.model!r}: a two-level model is a .lav file with level: blocks"
        )
    data, _, sample = read_cfa_data(args.data)
    result = fit_twolevel(
        data, model_path.read_text(), args.cluster, estimator=estimator, std_lv=args.std_lv
    )
    result["sample"] = sample
    write_json(args.out, result)
    fit = result.get("fit", {})

    def shown(key: str) -> str:
        value = fit.get(key)
        return "NA" if value is None else f"{value:.3f}"

    status = result.get("status", {})
    issues = "" if status.get("admissible", True) else f", not admissible: {status.get('issues')}"
    print(
        f"two-level {estimator} ({result['nclusters']} clusters, {result['ntotal']} rows): "
        f"chisq = {shown('chisq')}, df = {fit.get('df')}, cfi = {shown('cfi')}, "
        f"rmsea = {shown('rmsea')}, srmr_within = {shown('srmr_within')}, "
        f"srmr_between = {shown('srmr_between')}, converged = {result.get('converged')}"
        f"{issues} -> {args.out}"
    )
    return 0


def _cmd_cfa(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.cluster:
        return _cmd_twolevel(args)
    args.estimator = args.estimator or "WLSMV"

    from alliance.cfa.stage import invariance_sample, read_cfa_data
    from alliance.jsonio import write_json
    from alliance.sem.api import fit_cfa, invariance_ladder

    data, instrument, sample = read_cfa_data(args.data, session=args.session, rater=args.rater)
    model_path = Path(args.model)
    if model_path.is_file():
        syntax, name = model_path.read_text(), model_path.stem
    elif instrument is not None:
        from alliance.cfa.stage import model_syntax

        syntax, name = model_syntax(args.model, instrument)
    else:
        raise ValueError(
            f"--model {args.model!r} is not a file (built-in names need an ingested dataset)"
        )
    default = {"ML": "fiml", "MLR": "fiml", "WLSMV": "pairwise"}[args.estimator]
    missing = args.missing or ("listwise" if args.continuous else default)
    if args.estimator == "WLSMV" and missing == "fiml":
        raise ValueError("WLSMV takes --missing pairwise or listwise, got fiml")
    if args.continuous and (args.ordered or args.estimator != "WLSMV"):
        raise ValueError("--continuous is for WLSMV on continuous items, without --ordered")
    ordered = True if (args.ordered or args.estimator == "WLSMV") else None
    kwargs: dict = {"ordered": ordered} if ordered else {}
    if args.continuous:
        kwargs["ordered"] = False
    kwargs["std_lv"] = args.std_lv
    if args.estimator == "WLSMV":
        kwargs["parameterization"] = args.parameterization
        kwargs["collapse_empty_categories"] = args.collapse_empty_categories
    from alliance.cfa.stage import esem_rotation

    esem = {"rotation": args.rotation, "seed": args.rotation_seed, "se": args.rotation_se}
    kwargs["rotation"] = esem_rotation(name, syntax, instrument, esem)
    result = fit_cfa(data, syntax, estimator=args.estimator, missing=missing, **kwargs)
    if args.group:
        # across raters: one row per patient x rater (invariance_sample), else the same rows
        group_data, _, group_sample = invariance_sample(
            args.data, args.group, session=args.session, rater=args.rater
        )
        rotation = kwargs.pop("rotation")
        if rotation is not None:
            raise ValueError(
                f"--group {args.group!r}: ESEM (efa() blocks) is fitted in one group here, "
                "not across groups or in the invariance ladder"
            )
        result["invariance"] = invariance_ladder(
            group_data, syntax, args.group, estimator=args.estimator, missing=missing, **kwargs
        )
        if group_sample.get("note"):
            result["invariance"]["sample"] = group_sample
            result["invariance"].setdefault("notes", []).append(group_sample["note"])
    result["sample"] = sample
    write_json(args.out, result)
    fit = result.get("fit", {})

    def shown(key: str) -> str:
        value = fit.get(key)
        return "NA" if value is None else f"{value:.3f}"

    status = result.get("status", {})
    issues = "" if status.get("admissible", True) else f", not admissible: {status.get('issues')}"
    print(
        f"{args.estimator}: chisq = {shown('chisq')}, df = {fit.get('df')}, "
        f"cfi = {shown('cfi')}, rmsea = {shown('rmsea')}, srmr = {shown('srmr')}, "
        f"converged = {result.get('converged')}{issues} -> {args.out}"
    )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``cfa`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "cfa",
        help="confirmatory factor analysis as lavaan computes it (ML, MLR, WLSMV)",
        description=(
            "Fit a CFA in lavaan syntax and write JSON in the layout of lavaan's output "
            "(meta, fit with fitMeasures names, parameters, standardized, reliability, status; "
            "with --group the invariance ladder: configural, metric, scalar, strict, lrt, "
            "deltas, decisions), so results compare line by line with lavaan."
        ),
    )
    p.add_argument(
        "data",
        help="a .csv/.parquet/.sav file (one row per respondent) or an ingest folder "
        "(results/site_a/ingest: one row per patient, see --session and --rater)",
    )
    p.add_argument(
        "--model",
        required=True,
        help="a .lav file in lavaan syntax, or a built-in model name for an ingest folder "
        "(one_factor, two_factor, correlated, second_order, bifactor, esem, bifactor_esem); "
        'exploratory blocks as lavaan writes them: efa("b")*f1 + efa("b")*f2 =~ x1 + x2 + ...',
    )
    p.add_argument(
        "--rotation",
        choices=["geomin", "oblimin", "target"],
        default="geomin",
        help="rotation of the efa() blocks (ESEM): geomin (epsilon 0.001, lavaan's default), "
        "oblimin (quartimin) or target (the instrument's key: each factor free on its own "
        "items, 0 elsewhere); oblique, from random starts; bifactor_esem is always rotated "
        "orthogonally to the key (default: %(default)s)",
    )
    p.add_argument(
        "--rotation-seed",
        type=int,
        default=20240517,
        help="seed of the rotation's random starts (default: %(default)s)",
    )
    p.add_argument(
        "--rotation-se",
        choices=["delta", "bordered"],
        default="delta",
        help="standard errors of rotated parameters: the delta method through the rotation, or "
        "lavaan 0.6-14's bordered ones (its default; they differ for oblique rotations of "
        "standardized loadings, see the README) (default: %(default)s)",
    )
    p.add_argument(
        "--estimator",
        choices=["ML", "MLR", "WLSMV"],
        default=None,
        help="estimator (default: WLSMV; ML with --cluster, which takes ML or MLR)",
    )
    p.add_argument(
        "--ordered",
        action="store_true",
        help="treat every model item as ordered (implied by WLSMV)",
    )
    p.add_argument(
        "--continuous",
        action="store_true",
        help="WLSMV on continuous items (DWLS on the covariances with robust SEs and the "
        "scaled-shifted test, listwise deletion; lavaan's WLSMV without ordered)",
    )
    p.add_argument(
        "--std-lv",
        action="store_true",
        help="identify each factor by a unit variance instead of its first loading "
        "(lavaan's std.lv; the same fit)",
    )
    p.add_argument(
        "--missing",
        choices=["listwise", "fiml", "pairwise"],
        default=None,
        help="missing data: fiml for ML/MLR, pairwise for WLSMV (the defaults), or listwise",
    )
    p.add_argument(
        "--group",
        default=None,
        help="grouping column: adds the invariance ladder (for an ingest folder, --group rater "
        "uses one row per patient x rater)",
    )
    p.add_argument(
        "--cluster",
        default=None,
        help="cluster column (e.g. patient) of a two-level CFA: the model file holds lavaan's "
        "level: 1 (within) and level: 2 (between) blocks; ML or MLR on complete continuous "
        "data, as lavaan's cfa(..., cluster =); parameters carry their level, the fit "
        "srmr_within and srmr_between",
    )
    p.add_argument(
        "--parameterization",
        choices=["delta", "theta"],
        default="delta",
        help="WLSMV: scaling of the latent responses, as lavaan's parameterization; theta "
        "adds the strict step to the invariance ladder (default: %(default)s)",
    )
    p.add_argument(
        "--collapse-empty-categories",
        action="store_true",
        help="WLSMV: merge a category that has no responses in some group (or in the rows "
        "kept by listwise deletion) with an adjacent category of that item in every group, "
        "and list the merges in collapsed_categories; without it such data stop with an "
        "error, as in lavaan",
    )
    p.add_argument(
        "--session",
        type=int,
        default=3,
        help="ingest folder only: the session (default: %(default)s)",
    )
    p.add_argument(
        "--rater", default="client", help="ingest folder only: the rater (default: %(default)s)"
    )
    p.add_argument("--out", required=True, help="output JSON file")
    p.set_defaults(func=_cmd_cfa)
