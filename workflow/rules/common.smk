# Shared set-up: config validation, dataset lookup and the input functions of every rule.
import os
import sys
from pathlib import Path

from snakemake.iocontainers import Wildcards
from snakemake.utils import validate

# The library in src/ is importable here even before `pip install -e .` (the jobs use the installed
# package: .venv, or the conda environment with environment.post-deploy.sh).
SRC = str(Path(workflow.basedir, "src").resolve())
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from alliance.data.codebook import load_codebook
from alliance.data.instruments import is_builtin

validate(config, schema="../schemas/config.schema.yaml")

ENV = "../../environment.yml"
DATASETS = dict(config["datasets"])
# Remote jobs (Kubernetes pods) parse this before their inputs arrive from storage: the data files
# are checked by the submitting process only.
CODEBOOKS = {
    name: load_codebook(spec["codebook"], check_file=not workflow.remote_exec)
    for name, spec in DATASETS.items()
}
for _name, _codebook in CODEBOOKS.items():
    if _codebook.dataset != _name:
        raise ValueError(
            f"config/config.yaml: dataset {_name!r} points at {_codebook.path}, whose 'dataset' "
            f"is {_codebook.dataset!r}; use the same name in both"
        )
ITEM_DATASETS = sorted(n for n, c in CODEBOOKS.items() if c.kind == "items")
EFFECT_DATASETS = sorted(n for n, c in CODEBOOKS.items() if c.kind == "effects")
POOLED = "pooled"
if POOLED in DATASETS:
    raise ValueError(
        f"config/config.yaml: the dataset name {POOLED!r} is reserved for pooled data"
    )
POOL = config["pool"]["enabled"] and len(ITEM_DATASETS) >= 2
ANALYSIS_DATASETS = ITEM_DATASETS + ([POOLED] if POOL else [])
CFA = config["cfa"]["enabled"]
BAYES = config["bayes"]["enabled"]
_unknown = sorted(set(config["bayes"]["models_by_dataset"]) - set(ITEM_DATASETS))
if _unknown:
    raise ValueError(
        f"config/config.yaml: key 'bayes.models_by_dataset' names {_unknown}, which are not "
        f"item datasets of 'datasets' ({', '.join(ITEM_DATASETS)})"
    )
_unknown = sorted(
    set((config["cfa"].get("twolevel") or {}).get("datasets") or [])
    - set(ITEM_DATASETS)
)
if _unknown:
    raise ValueError(
        f"config/config.yaml: key 'cfa.twolevel.datasets' names {_unknown}, which are not "
        f"item datasets of 'datasets' ({', '.join(ITEM_DATASETS)})"
    )
PROCESS_BAYES = config["process_bayes"]["enabled"]
PROCESS_BAYES_MODELS = list(config["process_bayes"]["models"])
META = config["meta"]["enabled"] and len(ITEM_DATASETS) + len(EFFECT_DATASETS) >= 2
# MASEM and the one-stage IPD model pool the item datasets (two or more)
MASEM = META and config["meta"]["masem"]["enabled"] and len(ITEM_DATASETS) >= 2
IPD = META and config["meta"]["ipd"]["enabled"] and len(ITEM_DATASETS) >= 2


def instrument_key(instrument):
    """What makes two instruments the same for pooling: items, key, scale (not the file)."""
    return (
        instrument.name,
        instrument.items,
        tuple(sorted((f, tuple(i)) for f, i in instrument.factors.items())),
        instrument.reverse_keyed,
        (instrument.scale_min, instrument.scale_max),
    )


# Pooling and MASEM stack the item datasets' answers: one instrument across them, or a
# parse-time error naming each dataset's instrument (the pool job would fail at run time)
_instruments = {n: CODEBOOKS[n].instrument for n in ITEM_DATASETS}
if (POOL or MASEM) and len({instrument_key(i) for i in _instruments.values()}) > 1:
    _uses = ", ".join(
        f"{n}: {i.name} ({'built-in' if is_builtin(i) else i.path})"
        for n, i in _instruments.items()
    )
    raise ValueError(
        "config/config.yaml: keys 'pool.enabled' and 'meta.masem.enabled' stack the item "
        f"datasets' answers, which need one instrument, got {_uses}; set both to false, or "
        "list only datasets of one instrument under 'datasets'"
    )
_meta_columns = {
    col
    for n in EFFECT_DATASETS
    for col in [
        CODEBOOKS[n].effects.get("cluster"),
        *CODEBOOKS[n].effects.get("moderators", []),
    ]
    if col
}
for _key, _cols in (
    ("cluster", [config["meta"].get("cluster")]),
    ("moderators", config["meta"].get("moderators", [])),
):
    for _col in _cols:
        if META and _col and _col not in _meta_columns:
            raise ValueError(
                f"config/config.yaml: meta.{_key} names {_col!r}, which no effects codebook "
                f"maps (effects.cluster or effects.moderators; mapped: {sorted(_meta_columns)})"
            )


def alternation(names):
    """A regular expression matching exactly the given dataset names."""
    return "|".join(names) if names else "(?!x)x"


def codebook_path(wildcards):
    """The codebook of the rule's dataset."""
    name = getattr(wildcards, "item_dataset", None) or wildcards.effect_dataset
    return DATASETS[name]["codebook"]


def raw_file(wildcards):
    """The raw export the rule's dataset codebook names (tracked so a new export reruns ingest).

    A REDCap export comes with its data dictionary (``read.dictionary``), an input too.
    """
    name = getattr(wildcards, "item_dataset", None) or wildcards.effect_dataset
    files = [CODEBOOKS[name].file]
    if "dictionary" in CODEBOOKS[name].read:
        files.append(CODEBOOKS[name].read["dictionary"])
    return [str(Path(os.path.relpath(f, Path.cwd()))) for f in files]


def instrument_files(wildcards):
    """The user's instrument YAML files the rule's dataset is read with (an edit reruns it).

    A codebook's ``instrument:`` may be the path of the user's own instrument file; the rules
    that read the instrument (ingest, scores, description, CFA, pooling) take it as an input,
    so editing it reruns them. For the pooled data: the instruments of every item dataset.
    Built-in instruments are package code (their version is in provenance.json). ``local()``:
    a file of the project, not of the default storage (the Kubernetes profile).
    """
    name = getattr(wildcards, "item_dataset", None)
    name = name or getattr(
        wildcards, "analysis_dataset", POOLED
    )  # pool_items: no wildcard
    files = []
    for dataset in ITEM_DATASETS if name == POOLED else [name]:
        instrument = CODEBOOKS[dataset].instrument
        if instrument is not None and not is_builtin(instrument):
            files.append(local(os.path.relpath(instrument.path, Path.cwd())))
    return list(dict.fromkeys(files))


def process_instrument_file(wildcards):
    """The process analyses' instrument when config names a file (``process.settings``)."""
    name = str(config["process"]["settings"].get("instrument") or "")
    return [local(name)] if name.endswith((".yaml", ".yml")) else []


def ingest_outputs(name):
    """Every file the ingest of dataset ``name`` writes."""
    base = f"results/{name}/ingest"
    tables = (
        ["effects.parquet"]
        if name in EFFECT_DATASETS
        else [
            "items.parquet",
            "outcomes.parquet",
            "patients.parquet",
            "attendance.parquet",
        ]
    )
    return [f"{base}/{t}" for t in tables] + [
        f"{base}/quarantine.csv",
        f"{base}/ingest_report.json",
    ]


def pooled_inputs(wildcards):
    """The item tables and reports the pooled dataset is built from."""
    return [
        f"results/{name}/ingest/{table}"
        for name in ITEM_DATASETS
        for table in ("items.parquet", "ingest_report.json")
    ]


def describe_outputs(name):
    """Score, description and figure files of an items dataset (no scores for pooled data)."""
    scores = [] if name == POOLED else [f"results/{name}/scores/scores.parquet"]
    return scores + [
        f"results/{name}/describe/summary.json",
        f"results/{name}/figures/item_responses.png",
        f"results/{name}/figures/missingness.png",
    ]


def dataset_effect_files(wildcards):
    """Dataset name -> its alliance-outcome effect file."""
    return {name: f"results/{name}/effects/effect.json" for name in ITEM_DATASETS}


def published_effect_files(wildcards):
    """Published-effects dataset name -> its ingested table."""
    return {name: f"results/{name}/ingest/effects.parquet" for name in EFFECT_DATASETS}


def masem_settings(wildcards):
    """config ``meta.masem`` with model names of ``cfa.model_files`` resolved to their files."""
    settings = dict(config["meta"]["masem"])
    files = config["cfa"].get("model_files", {})
    settings["models"] = [files.get(m, m) for m in settings["models"]]
    return settings


def ipd_sampler_settings(wildcards):
    """The one-stage IPD model's sampler: ``bayes.sampler``, its defaults, ``meta.ipd.sampler``."""
    from alliance.meta.ipd_stage import ipd_sampler

    base = {"seed": config["seed"], **config["bayes"]["sampler"]}
    return ipd_sampler(base, config["meta"]["ipd"].get("sampler"))


def meta_inputs(wildcards):
    """Every effect the meta-analysis pools."""
    return list(dataset_effect_files(wildcards).values()) + list(
        published_effect_files(wildcards).values()
    )


def provenance_inputs(wildcards):
    """Every input file: config, codebooks, raw exports, instrument files."""
    files = ["config/config.yaml"]
    for name, codebook in CODEBOOKS.items():
        files += [
            DATASETS[name]["codebook"],
            os.path.relpath(codebook.file, Path.cwd()),
        ]
        if codebook.instrument is not None:
            # package source, not data: relative, and local() so that a default storage
            # provider (the Kubernetes profile) leaves it to the deployed workflow sources
            files.append(local(os.path.relpath(codebook.instrument.path, Path.cwd())))
    return list(dict.fromkeys(files))


def benchmark_files(wildcards):
    """The benchmark file of every job of the default run (provenance runs after them all).

    Derived from :func:`all_outputs`, so it never drifts from it: the rule that makes each
    target (matched as Snakemake matches it, wildcard constraints included) gives its job's
    ``benchmark:`` file, and the walk goes on through that job's inputs, so the jobs whose
    files are only read by others (ingest, scores, dataset effects) are found too. A file
    that no rule makes (config, codebook, raw export) ends the walk. Listing a benchmark of
    a job that the run would not make would add that job; a walk from the run's own targets
    cannot.
    """
    makers = [r for r in workflow.rules if r.name not in ("all", "provenance")]
    todo = [str(t) for t in all_outputs() if str(t) != "results/provenance.json"]
    seen, out = set(), set()
    while todo:
        target = todo.pop()
        if target in seen:
            continue
        seen.add(target)
        producers = [r for r in makers if r.is_producer(target)]
        if not producers:
            continue
        if len(producers) > 1:  # Snakemake itself would stop: ambiguous rules
            names = sorted(r.name for r in producers)
            raise ValueError(f"{target} is an output of several rules: {names}")
        maker = producers[0]
        job = Wildcards(fromdict=maker.get_wildcards(target))
        if maker.benchmark:
            out.add(str(maker.expand_benchmark(job)))
        todo += [str(f) for f in maker.expand_input(job)[0]]
    return sorted(out)


def continuous_scale(name):
    """Whether dataset ``name`` (an item dataset or the pooled one, whose datasets share one
    instrument) measures on a continuous scale (an instrument with ``scale.step``, e.g. the
    Session Rating Scale's visual analogue lines): no response categories, so no WLSMV, IRT,
    latent Bayesian model or ordinal BSEM."""
    names = ITEM_DATASETS if name == POOLED else [name]
    return any(CODEBOOKS[n].instrument.continuous for n in names)


def bayes_models(name):
    """The Bayesian models of item dataset ``name``: ``bayes.models_by_dataset``, else ``models``.

    A model the data cannot support is skipped with its reason at run time; this setting
    leaves it out of a dataset altogether (e.g. the session model for a clinic that rated
    sessions 1, 3 and 6 only). The latent model needs response categories: not for a
    continuous scale.
    """
    models = config["bayes"]["models_by_dataset"].get(name, config["bayes"]["models"])
    if continuous_scale(name):
        models = [m for m in models if m != "latent"]
    return list(models)


def cfa_estimators(name):
    """The CFA estimators of dataset ``name``: ``cfa.estimators``, without WLSMV (ordered
    categories) for a continuous scale."""
    estimators = config["cfa"]["estimators"]
    if continuous_scale(name):
        estimators = [e for e in estimators if e != "WLSMV"]
    return list(estimators)


def bsem_ordered(wildcards):
    """bsem.ordered, off for a continuous scale (no categories to threshold)."""
    return bool(config["bsem"]["ordered"]) and not continuous_scale(
        wildcards.item_dataset
    )


#: Each CFA model's built-in name, or the path of its .lav file (config cfa.model_files).
CFA_MODEL_SOURCES = {
    m: config["cfa"].get("model_files", {}).get(m, m) for m in config["cfa"]["models"]
}


def cfa_missing(wildcards):
    """The missing-data method of the rule's estimator."""
    return config["cfa"]["missing"][wildcards.estimator]


def cfa_fit_files(wildcards):
    """Every model's fit file of the rule's dataset and estimator."""
    return [
        f"results/{wildcards.analysis_dataset}/cfa/fits/{m}_{wildcards.estimator}.json"
        for m in config["cfa"]["models"]
    ]


def invariance_groups(name):
    """The grouping columns whose invariance is tested in dataset ``name``."""
    return [
        g for g, names in config["cfa"]["invariance"]["groups"].items() if name in names
    ]


def cfa_invariance_files(wildcards):
    """The invariance ladders of the rule's dataset and estimator."""
    return [
        f"results/{wildcards.analysis_dataset}/cfa/invariance_{g}_{wildcards.estimator}.json"
        for g in invariance_groups(wildcards.analysis_dataset)
    ]


def longitudinal_datasets():
    """The datasets of the longitudinal invariance ladder (none when waves or datasets are empty)."""
    long = config["cfa"]["invariance"].get("longitudinal") or {}
    if len(long.get("waves") or []) < 2:
        return []
    return list(long.get("datasets") or [])


def twolevel_datasets():
    """The datasets of the two-level CFA (sessions within patients; none when empty)."""
    return list((config["cfa"].get("twolevel") or {}).get("datasets") or [])


def twolevel_estimators():
    """The estimators of cfa.estimators a two-level CFA takes (ML, MLR; not WLSMV)."""
    return [e for e in config["cfa"]["estimators"] if e in ("ML", "MLR")]


def cfa_outputs(name):
    """The CFA outputs of one dataset: comparisons per estimator and invariance ladders."""
    if not CFA:
        return []
    out = []
    for e in cfa_estimators(name):
        out += [
            f"results/{name}/cfa/tables/fit_{e}.csv",
            f"results/{name}/cfa/comparison_{e}.json",  # read by the summary
        ]
    for group, datasets in config["cfa"]["invariance"]["groups"].items():
        if name in datasets:
            out += [
                f"results/{name}/cfa/invariance_{group}_{e}.json"
                for e in cfa_estimators(name)
            ]
    if name in longitudinal_datasets():
        out += [
            f"results/{name}/cfa/invariance_long_{e}.json" for e in cfa_estimators(name)
        ]
    if name in twolevel_datasets():
        out += [
            f"results/{name}/cfa/tables/twolevel_{e}.csv" for e in twolevel_estimators()
        ]
    return out


def bayes_sampler(wildcards):
    """Sampler settings with the master seed unless config sets one."""
    return {"seed": config["seed"], **config["bayes"]["sampler"]}


def bayes_threads(wildcards):
    """Cores of one fit: one for the small outcome model, else the sampler's cores.

    The outcome model's chains run one after another on one core (nutpie; with PyMC's NUTS,
    in-process): its sampling takes well under a second (measured with PyMC: 13.6 s for the
    job either way on the 2-core machine, 20% less CPU on one core), and two sites' fits then
    run side by side. The script passes the threads granted (``--set-threads``, a cluster
    profile) to the sampler.
    """
    if wildcards.model == "outcome":
        return 1
    return int(config["bayes"]["sampler"]["cores"])


#: Scheduling priority of a Bayesian fit by model (Snakemake starts ready jobs of higher
#: priority first): the longest jobs first, so that the short ones fill the cores at the end
#: (longest-processing-time-first). Measured on the demo (2 cores, empty compile caches): the
#: latent fit takes 45-115 s, the process models 40-60 s, the session model 20-35 s, the
#: therapist model 15-20 s, the outcome model and the refits about 10 s.
#: The outcome fit, though short, comes before the leaf jobs: its prior-sensitivity job waits
#: for it (left to the end, the two ran one after the other alone in the last 20 s).
BAYES_PRIORITY = {"latent": 30, "session": 10, "therapist": 5, "outcome": 2}

#: Scheduling priority of the short jobs that feed the long ones (ingest_items, score,
#: process, dataset_effect, ingest_effects: seconds each). Snakemake's priorities do not
#: reach a job's inputs, so without this the CFA and IRT jobs (priority 0) ran first and one dataset's
#: scores waited until 211 s of a 357-s cold demo, its latent and process fits then ran
#: last, one core idle (measured on 2 cores, 2026-12-04).
FEEDER_PRIORITY = 50

#: Scheduling priority of the short jobs that other short jobs wait for (pool_items, and
#: cfa_fit, cfa_compare and cfa_invariance before cfa_report): above the leaf jobs (reports,
#: IRT, panels, the outcome fits and refits, priority 0), so that the end of a run is leaf
#: jobs side by side and not a chain of dependent jobs on one core. In a 321-s cold demo
#: (2 cores, 2026-12-04) the pooled CFA chain and the meta-analysis ran one after another
#: alone in the last 16 s.
CHAIN_PRIORITY = 1


def bayes_priority(wildcards):
    """Scheduling priority of one Bayesian fit (:data:`BAYES_PRIORITY`; 0 otherwise)."""
    return BAYES_PRIORITY.get(wildcards.model, 0)


def latent_compilations(wildcards):
    """One unit of the ``latent_compilations`` resource for a latent fit, else none.

    The default profile allows one at a time: the first latent fit fills PyTensor's numba
    cache (compiled without fast-math, so cached code computes the same bits) and the next
    datasets' fits load most of their compiled operations from it. Measured on 2 cores: the
    first compilation 68-76 s, the next 13 s; two started together both take the first's time.
    """
    return 1 if wildcards.model == "latent" else 0


def refit_files(name):
    """File ``name`` of every prior-sensitivity refit of a model (the scales other than 1).

    Wildcards ``{item_dataset}`` and ``{model}`` stay; folders ``{model}_x{scale:g}``.
    """
    return [
        f"results/{{item_dataset}}/bayes/{{model}}_x{s:g}/{name}"
        for s in config["bayes"]["sensitivity_scales"]
        if float(s) != 1.0
    ]


def bayes_outputs(name):
    """The Bayesian outputs of one item dataset."""
    if not BAYES:
        return []
    out = []
    for model in bayes_models(name):
        out.append(f"results/{name}/bayes/{model}_x1/summary.csv")
        # the summary reads the diagnostics
        out.append(f"results/{name}/bayes/{model}_x1/diagnostics.json")
        # figures for the default-prior fits only (the sensitivity refits are tabled)
        out.append(f"results/{name}/bayes/{model}_x1/figures")
        if (
            len(config["bayes"]["sensitivity_scales"]) > 1
            and model in config["bayes"]["sensitivity_models"]
        ):
            out.append(f"results/{name}/bayes/sensitivity_{model}.csv")
    return out


def process_settings(wildcards):
    """The process-analysis settings of config, with the codebook's planned sessions."""
    settings = dict(config["process"]["settings"])
    codebook = CODEBOOKS[wildcards.item_dataset]
    if codebook.sessions:
        settings["codebook_sessions"] = list(codebook.sessions)
    return settings


def process_outputs(name):
    """The process-analysis summary of one item dataset."""
    return (
        [f"results/{name}/process/summary.json"] if config["process"]["enabled"] else []
    )


def process_bayes_settings(wildcards):
    """Settings of the Bayesian process models of the rule's dataset.

    config ``process_bayes.settings`` where set; else the alliance session and measure of
    ``bayes``, the second rater of ``process.settings`` and the planned sessions of
    ``process.settings`` or the codebook (as the person-period table of rule process).
    """
    settings = {
        k: v for k, v in config["process_bayes"]["settings"].items() if v is not None
    }
    settings.setdefault("alliance_session", config["bayes"]["alliance_session"])
    settings.setdefault("measure", config["bayes"]["measure"])
    process = config["process"]["settings"]
    settings.setdefault("second_rater", process.get("second_rater", "therapist"))
    planned = process.get("planned_sessions")
    sessions = CODEBOOKS[wildcards.item_dataset].sessions
    if planned is None and sessions:
        planned = max(sessions)
    if planned is not None:
        settings.setdefault("planned_sessions", int(planned))
    return settings


def process_bayes_outputs(name):
    """The Bayesian process-model outputs of one item dataset (key estimates, figures)."""
    if not PROCESS_BAYES:
        return []
    base = f"results/{name}/process/bayes"
    return [f"{base}/summary.json", f"{base}/key_effects.csv", f"{base}/figures"]


def panel_outputs(name):
    """The RI-CLPM fit of one item dataset and its Bayesian dynamic panel model (the summary
    reads them; rules panel and panel_bayes)."""
    if not config["panel"]["enabled"]:
        return []
    base = f"results/{name}/panel"
    out = [f"{base}/riclpm.json", f"{base}/effects.csv", f"{base}/lagged_paths.png"]
    if config["panel"]["bayes"]["enabled"]:
        out += [f"{base}/bayes/summary.json", f"{base}/bayes/effects.csv"]
    return out


def irt_outputs(name):
    """The item response models of one item dataset (the summary reads them; rule irt); none
    for a continuous scale (the models are of ordered categories)."""
    if not config["irt"]["enabled"] or continuous_scale(name):
        return []
    out = []
    for model in config["irt"]["models"]:
        base = f"results/{name}/irt/{model}"
        out += [f"{base}/irt.json", f"{base}/items.csv", f"{base}/category_curves.png"]
    return out


def bsem_outputs(name):
    """The Bayesian SEMs of one item dataset (the summary reads them; rules bsem and
    bsem_twolevel)."""
    if not config["bsem"]["enabled"]:
        return []
    out = [
        f"results/{name}/bsem/{model}/summary.json"
        for model in config["bsem"]["models"]
    ]
    if config["bsem"]["twolevel"]["enabled"]:
        out += [
            f"results/{name}/bsem_twolevel/{model}/summary.json"
            for model in config["bsem"]["models"]
        ]
    return out


def summary_inputs(wildcards):
    """Every per-dataset output the summary reads."""
    out = []
    for name in ITEM_DATASETS:
        out += ingest_outputs(name) + describe_outputs(name) + cfa_outputs(name)
        out += bayes_outputs(name) + process_outputs(name) + process_bayes_outputs(name)
        out += panel_outputs(name) + irt_outputs(name) + bsem_outputs(name)
    for name in EFFECT_DATASETS:
        out += ingest_outputs(name)
    if POOL:
        out += describe_outputs(POOLED) + cfa_outputs(POOLED)
    if META:
        out.append("results/meta/meta.json")
    if MASEM:
        out.append("results/meta/masem/masem.json")
    if IPD:
        out.append("results/meta/ipd/ipd.json")
    return out


def all_outputs():
    """Targets of the default run, every stage for every dataset in config, and the summary."""
    return summary_inputs(None) + ["results/summary.md", "results/provenance.json"]


def output_folder(wildcards, output):
    """The folder of a rule's first output (a path prefix derived from the output)."""
    return str(Path(output[0]).parent)


def cancel_scheduler_wakeups():
    """Cancel Snakemake's pending scheduler wake-up timers, so the run exits at once.

    While jobs run, each pass of Snakemake's scheduler starts a ``threading.Timer`` of one
    ``max-jobs-per-timespan`` timespan, and each timer that fires runs another pass: every
    finished job adds a chain that wakes the scheduler once per timespan (measured: pending
    timers = finished jobs + 3), and each pass re-stats every ready job's inputs. At 200 sites
    that made the scheduler the bottleneck. The default profile therefore sets a timespan longer
    than any run; the timers are not daemon threads, so Python would wait for them at exit:
    ``onsuccess`` and ``onerror`` cancel them here (the run is over by then).
    """
    import threading

    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
