"""The ``alliance`` command line: the same library calls the Snakemake rules make."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from alliance import __version__


def _cmd_simulate(args: argparse.Namespace) -> int:
    if args.sites is not None:
        from alliance.simulate_sites import simulate_sites

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
    from alliance.simulate import simulate_demo

    truth = simulate_demo(args.data_dir, args.codebook_dir, seed=args.seed)
    print(f"wrote demo data to {args.data_dir} and codebooks to {args.codebook_dir}")
    print(f"datasets: {', '.join(sorted(truth.get('datasets', {})))}")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alliance.ingest import ingest_to

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out!r} names an existing file; give a folder")
    report = ingest_to(args.codebook, args.out, strict=True if args.strict else None)
    cells = report.get("cells_quarantined", 0)
    in_rows = report.get("rows_with_quarantined_cells", 0)
    print(
        f"{report['dataset']}: {report['rows_in']} rows in, {report['rows_kept']} kept, "
        f"{report['rows_quarantined']} quarantined"
        + (f"; {cells} cells of {in_rows} kept rows quarantined (set missing)" if cells else "")
        + f" -> {args.out}"
    )
    for reason, n in report["reasons"].items():
        print(f"  {reason}: {n} rows")
    for warning in report["warnings"]:
        print(f"  warning: {warning}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from alliance.pipeline import score_dataset

    summary = score_dataset(args.ingested, args.out, min_answered_share=args.min_answered_share)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from alliance.pipeline import describe_dataset_dir

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


def _cmd_cfa(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alliance.cfa_stage import invariance_sample, read_cfa_data, write_json
    from alliance.sem.api import fit_cfa, invariance_ladder

    data, instrument, sample = read_cfa_data(args.data, session=args.session, rater=args.rater)
    model_path = Path(args.model)
    if model_path.is_file():
        syntax = model_path.read_text()
    elif instrument is not None:
        from alliance.cfa_stage import model_syntax

        syntax, _ = model_syntax(args.model, instrument)
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
    result = fit_cfa(data, syntax, estimator=args.estimator, missing=missing, **kwargs)
    if args.group:
        # across raters: one row per patient x rater (invariance_sample), else the same rows
        group_data, _, group_sample = invariance_sample(
            args.data, args.group, session=args.session, rater=args.rater
        )
        result["invariance"] = invariance_ladder(
            group_data, syntax, args.group, estimator=args.estimator, missing=missing, **kwargs
        )
        if group_sample.get("note"):
            result["invariance"]["sample"] = group_sample
            result["invariance"].setdefault("notes", []).append(group_sample["note"])
    result["sample"] = sample
    write_json(result, args.out)
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


def _status(part: dict, text: str) -> str:
    """``text`` for an analysis that ran (with its warnings), else its status and reason."""
    if part.get("status") in ("ok", "pass"):
        return text
    if part.get("status") == "warning":
        return f"{text} [warning: {'; '.join(part.get('warnings') or [])}]"
    return f"{part.get('status')} ({part.get('reason')})"


def _cmd_process(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from alliance.process import run_process_analyses

    dataset = Path(args.dataset)
    settings = yaml.safe_load(Path(args.settings).read_text()) if args.settings else {}
    if not isinstance(settings, dict):
        raise ValueError(f"--settings must hold a mapping of process settings, got {settings!r}")
    if args.planned_sessions is not None:
        settings["planned_sessions"] = args.planned_sessions
    summary = run_process_analyses(dataset / "ingest", dataset / "scores", args.out, settings)
    ag, rup = summary["agreement"], summary["ruptures"]
    vc, pp = summary["variance_components"], summary["person_period"]
    total = (ag.get("all_sessions") or {}).get("total_mean") or {}
    shares = vc.get("corrected_shares") or vc.get("shares") or {}
    print(f"{dataset.name}: process analyses -> {args.out}")
    print(
        "  agreement: "
        + _status(
            ag,
            f"ICC(2,1) total {total.get('icc_a1', float('nan')):.3f}, mean difference "
            f"{total.get('mean_diff', float('nan')):.3f}, limits of agreement "
            f"[{total.get('loa_lower', float('nan')):.3f}, "
            f"{total.get('loa_upper', float('nan')):.3f}]",
        )
    )
    print(
        "  ruptures: "
        + _status(
            rup,
            f"{rup.get('episodes')} episodes in {rup.get('patients_with_rupture')} of "
            f"{rup.get('patients_eligible')} patients ({rup.get('repaired')} repaired, "
            f"{rup.get('unrepaired')} unrepaired, {rup.get('censored')} censored)",
        )
    )
    print(
        "  variance shares: "
        + _status(
            vc,
            ", ".join(f"{k} {shares.get(k, float('nan')):.3f}" for k in shares)
            + (" (error-corrected)" if vc.get("corrected_shares") else ""),
        )
    )
    print(
        "  dropout: "
        + _status(
            pp,
            f"{pp.get('dropouts')} of {pp.get('patients')} patients before session "
            f"{pp.get('planned_sessions')} ({pp.get('rows_at_risk')} person-periods at risk)",
        )
    )
    return 0


def _cmd_process_bayes(args: argparse.Namespace) -> int:
    from alliance.process.bayes_api import run_process_bayes

    sampler = {"seed": args.seed, "chains": args.chains, "cores": args.cores}
    sampler["backend"] = args.backend
    settings: dict = {"alliance_session": args.session, "figures": not args.no_figures}
    if args.draws is not None or args.tune is not None:
        # the chosen numbers hold for every model (no per-model defaults)
        sampler |= {k: v for k, v in (("draws", args.draws), ("tune", args.tune)) if v is not None}
        settings["model_samplers"] = {}
    if args.planned_sessions is not None:
        settings["planned_sessions"] = args.planned_sessions
    if args.second_rater:
        settings["second_rater"] = args.second_rater
    result = run_process_bayes(
        args.dataset, args.out, sampler=sampler, models=args.models, settings=settings
    )
    print(
        f"{result['dataset']}: Bayesian process models -> {args.out} "
        f"({result['timing']['total_s']:.0f} s)"
    )
    for name, model in result["models"].items():
        if model["status"] in ("skipped", "error"):
            print(f"  {name}: {model['status']} ({model['reason']})")
            continue
        print(f"  {name}: diagnostics {model['status']}")
        for failure in model["failures"]:
            print(f"    failed: {failure}")
        for key in model["key"]:
            line = (
                f"    {key['effect']} = {key['mean']:.3f} [{key['eti95_low']:.3f}, "
                f"{key['eti95_high']:.3f}]"
            )
            if key.get("probability") is not None:
                line += f", P({key['probability_of']}) = {key['probability']:.3f}"
            print(line)
    bad = [m for m, r in result["models"].items() if r["status"] in ("fail", "error")]
    return 1 if bad else 0


def _cmd_meta(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from alliance.meta import effect_measure, jsonable, pool_effects

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
            from alliance.meta_bayes import pool_effects_bayes

            result["bayes"] = pool_effects_bayes(
                effects[["study", "r", "n"]], seed=args.seed, draws=args.draws, tune=args.draws
            )
        else:
            result["bayes"] = {
                "status": "skipped",
                "reason": "the Bayesian model pools correlations (study, r, n); effects are yi, vi",
            }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(jsonable(result), indent=1, sort_keys=True, allow_nan=False))
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

    from alliance.meta_frontier_stage import DEFAULT_MASEM_MODELS, read_matrices, run_masem

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


def _cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alliance.verify import build_manifest, summarize, verify, write_manifest

    manifest_path = Path(args.manifest)
    if args.update:
        manifest = build_manifest(args.results)
        write_manifest(manifest, manifest_path)
        print(f"wrote {len(manifest['values'])} expected values to {manifest_path}")
        return 0
    if not manifest_path.is_file():
        raise ValueError(f"no manifest at {manifest_path}; create one with --update")
    table = verify(args.results, json.loads(manifest_path.read_text()))
    print(summarize(table).to_string())
    bad = table[table["status"].isin(["mismatch", "missing"])]
    extra = table[table["status"] == "unexpected"]
    if len(extra):
        print(f"note: {len(extra)} numbers are not in the manifest (new outputs?)")
    if len(bad):
        print(f"\n{len(bad)} expected numbers do not match:")
        print(bad.head(args.show).to_string(index=False))
        return 1
    n_mc = int(((table["kind"] == "monte_carlo") & (table["status"] == "match")).sum())
    print(
        f"all {int((table['status'] == 'match').sum())} expected numbers match "
        f"({n_mc} Monte Carlo numbers within their Monte Carlo error)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand and option documented."""
    parser = argparse.ArgumentParser(
        prog="alliance",
        description=(
            "Therapeutic-alliance research pipeline: each subcommand runs one stage on its own. "
            "`snakemake` runs them all."
        ),
    )
    parser.add_argument("--version", action="version", version=f"alliance {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an input error too (also: environment ALLIANCE_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    p = sub.add_parser(
        "ingest",
        help="apply a codebook to a raw export",
        description=(
            "Read the export a codebook names, validate every value against the codebook and its "
            "instrument, and write tidy Parquet tables, quarantine.csv (each problem with its "
            "source row (data row N is line N + 1 of a CSV file), column, value, reason and "
            "scope: a bad answer quarantines its cell, an ID or session problem its row) and "
            "ingest_report.json (rows in = kept + quarantined). Bad input exits with status 2."
        ),
    )
    p.add_argument("codebook", help="the dataset's codebook YAML")
    p.add_argument("--out", required=True, help="output folder, e.g. results/site_a/ingest")
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop with an error at the first problem that would be quarantined",
    )
    p.set_defaults(func=_cmd_ingest)

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
        "(one_factor, two_factor, correlated, second_order, bifactor)",
    )
    p.add_argument(
        "--estimator",
        choices=["ML", "MLR", "WLSMV"],
        default="WLSMV",
        help="estimator (default: %(default)s)",
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

    p = sub.add_parser(
        "process",
        help="alliance as a process: rater agreement, ruptures, dropout table, variance shares",
        description=(
            "Run the non-Bayesian process analyses of one dataset: client-therapist agreement "
            "(ICC(2,1), ICC(3,1), Bland-Altman limits), rupture-repair episodes, the dropout "
            "person-period table and therapist / patient / session variance shares. Writes "
            "agreement.csv, ruptures_episodes.csv, ruptures_patients.csv, person_period.parquet, "
            "variance_components.json, figures and summary.json; an analysis the data do not "
            "support is skipped with the reason."
        ),
    )
    p.add_argument(
        "dataset", help="a dataset's results folder (results/site_a) with ingest/ and scores/"
    )
    p.add_argument("--out", required=True, help="output folder, e.g. results/site_a/process")
    p.add_argument(
        "--settings",
        default=None,
        help="YAML file with process settings (the keys of config process.settings)",
    )
    p.add_argument(
        "--planned-sessions",
        type=int,
        default=None,
        help="planned number of sessions (default: the largest observed session)",
    )
    p.set_defaults(func=_cmd_process)

    p = sub.add_parser(
        "process-bayes",
        help="Bayesian process models: dropout hazard, growth, rater perspectives, ruptures",
        description=(
            "Fit the Bayesian process models of one dataset: dropout (discrete-time hazard of "
            "dropout on session alliance: odds ratio per SD), growth (trait-like vs state-like "
            "alliance variance; early level vs growth and outcome), rater_outcome (client vs "
            "therapist rating as outcome predictors) and rupture_outcome (repaired vs "
            "unrepaired ruptures, outcome and dropout). Writes one folder per model, "
            "key_effects.csv/.md, figures and summary.json. A model the data do not support is "
            "skipped with the reason. Exits 1 when a model fails its diagnostics or errors."
        ),
    )
    p.add_argument(
        "dataset",
        help="a dataset's results folder (results/site_a) with ingest/, scores/ and process/ "
        "(from `alliance process DATASET --out DATASET/process`; without it rupture_outcome "
        "is skipped)",
    )
    p.add_argument("--out", required=True, help="output folder, e.g. results/site_a/process/bayes")
    p.add_argument(
        "--models",
        nargs="+",
        choices=["dropout", "growth", "rater_outcome", "rupture_outcome"],
        default=["dropout", "growth", "rater_outcome", "rupture_outcome"],
        help="models to fit (default: all four)",
    )
    p.add_argument(
        "--session",
        type=int,
        default=3,
        help="session of the early alliance (rater_outcome, outcomes; default: %(default)s)",
    )
    p.add_argument(
        "--second-rater",
        default=None,
        help="rater compared with the client (default: therapist)",
    )
    p.add_argument(
        "--planned-sessions",
        type=int,
        default=None,
        help="planned number of sessions (growth time scale; default: largest observed)",
    )
    p.add_argument("--chains", type=int, default=2, help="chains (default: %(default)s)")
    p.add_argument(
        "--draws",
        type=int,
        default=None,
        help="draws per chain for every model (default: 2000; growth 6000)",
    )
    p.add_argument(
        "--tune",
        type=int,
        default=None,
        help="tuning steps per chain for every model (default: 1000; growth 1500)",
    )
    p.add_argument("--cores", type=int, default=2, help="cores (default: %(default)s)")
    p.add_argument(
        "--backend",
        choices=["auto", "nutpie", "pymc"],
        default="auto",
        help="sampler (default: %(default)s: nutpie for the larger models)",
    )
    p.add_argument("--seed", type=int, default=20261125, help="random seed (default: %(default)s)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.set_defaults(func=_cmd_process_bayes)

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

    p = sub.add_parser(
        "verify",
        help="check that a rerun reproduces the expected numbers",
        description=(
            "Compare every number in the result tables (ingest reports, scores, descriptions, "
            "reliability, EFA, CFA, Bayesian, process and meta-analysis tables) with a committed "
            "manifest. Deterministic numbers within a tolerance per kind (counts exactly, "
            "estimates 1e-6, p-values 1e-4 relative); Monte Carlo numbers (posterior "
            "summaries) within their Monte Carlo standard error, with a 1% chance that a "
            "faithful rerun on another machine fails; R-hat, ESS and divergences by their "
            "pass/fail verdict. Prints a table per file and exits 1 when an expected number "
            "is missing or differs."
        ),
    )
    p.add_argument(
        "results", nargs="?", default="results", help="results folder (default: %(default)s)"
    )
    p.add_argument(
        "--manifest",
        default="verification/demo_manifest.json",
        help="the expected numbers (default: %(default)s)",
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="write the manifest from the current results instead of checking",
    )
    p.add_argument(
        "--show", type=int, default=50, help="mismatches to print (default: %(default)s)"
    )
    p.set_defaults(func=_cmd_verify)
    return parser


#: Exceptions that mean bad input (a file, a codebook, an option, a value): one line naming
#: it, exit status 2. Any other exception is a bug and keeps its traceback (exit status 1).
INPUT_ERRORS = (ValueError, OSError)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        target = f"{exc.filename!s}" + (f" -> {exc.filename2!s}" if exc.filename2 else "")
        return f"{target}: {exc.strerror}"
    return str(exc)


def _stdout_gone() -> None:
    """After a broken pipe (``alliance ... | head``): send the rest of stdout to devnull.

    As the Python documentation on SIGPIPE recommends, so that the interpreter's final flush
    does not raise a second time.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Bad input (:data:`INPUT_ERRORS`: a ``ValueError``, including the ingest's, codebook's and
    schema's errors, or an ``OSError`` such as a missing file or a directory given for a file)
    is printed as one line naming the file, key, line, column and value, exit status 2;
    ``alliance --debug ...`` or ``ALLIANCE_DEBUG=1`` shows its traceback too. Any other
    exception is a bug and keeps its traceback (exit status 1). A closed output pipe
    (``alliance ... | head``) ends the command quietly (exit status 1).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("ALLIANCE_DEBUG", "") not in ("", "0")
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _stdout_gone()
        return 1
    except INPUT_ERRORS as exc:
        if debug:
            raise
        print(f"alliance {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
