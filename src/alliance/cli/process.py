"""``alliance process`` and ``alliance process-bayes``: the process analyses and their models."""

from __future__ import annotations

import argparse


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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``process``, ``process-bayes`` subcommands to the subparsers ``sub``."""
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
        help="draws per chain for every model (default: 2000)",
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
        help="sampler (default: %(default)s: nutpie; pymc: PyMC's NUTS)",
    )
    p.add_argument("--seed", type=int, default=20261125, help="random seed (default: %(default)s)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.set_defaults(func=_cmd_process_bayes)
