# alliance-pipeline: set-up, demo run, tests. `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed
# bytecode caches make the pymc import (every Bayesian job) about 3x faster; some machines turn
# them off globally
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help setup demo test test-all test-cluster test-machine test-fast fuzz lint format report bench verify manifest demo-data clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@bash .ci/system-packages.sh
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv with the exact pins of requirements.lock (and graphviz)

demo: $(STAMP)  ## run the whole pipeline on the embedded demo data (results/)
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default
	$(BIN)/snakemake --report results/report.html --cores 1
	@echo "done: results/summary.md (and .html), results/report.html, results/provenance.json"

test: $(STAMP)  ## run the test suite (all but the long recovery runs marked slow)
	$(BIN)/python -m pytest -n $(CORES) --dist loadfile --no-loadscope-reorder -m "not slow and not cluster and not other_machine"

test-all: $(STAMP)  ## every test, including the long recovery and calibration runs
	$(BIN)/python -m pytest -n $(CORES) --dist loadfile --no-loadscope-reorder -m "not cluster"

test-cluster: $(STAMP)  ## the workflow on a one-node SLURM cluster (needs root; installs slurm-wlm, munge)
	$(BIN)/python -m pytest -m cluster tests/test_cluster_slurm.py

test-machine: $(STAMP)  ## the whole demo as on another machine (an older CPU's kernels and code), against the manifest
	$(BIN)/python -m pytest -m other_machine tests/test_other_machine.py

test-fast: $(STAMP)  ## the unit tests only (no Snakemake end-to-end runs)
	$(BIN)/python -m pytest -n $(CORES) -m "not slow and not e2e and not cluster and not other_machine"

fuzz: $(STAMP)  ## the property tests with new random examples (make test draws the same ones)
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest -n $(CORES) tests/test_ingest_fuzz.py tests/test_ingest.py

lint: $(STAMP)  ## ruff, snakefmt and snakemake --lint
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

format: $(STAMP)  ## format Python and Snakemake files
	$(BIN)/ruff format src tests scripts bench
	$(BIN)/snakefmt Snakefile workflow/rules

report: $(STAMP)  ## Snakemake's HTML report of the last demo run
	$(BIN)/snakemake --report results/report.html --cores 1

bench: $(STAMP)  ## benchmarks side by side -> bench/RESULTS.md (BENCH_ARGS="--sites 1,10" for a quick run)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

verify: $(STAMP)  ## check that results/ reproduces the expected demo numbers (run make demo first)
	$(BIN)/alliance verify results --manifest verification/demo_manifest.json

# the reference run behind the manifest: a copy of config/ and data/ run with
# verification/reference.yaml (five times the posterior draws), outside results/
REFERENCE ?= $(CURDIR)/.reference
manifest: $(STAMP)  ## regenerate verification/demo_manifest.json from a reference run (5x the draws, ~1 h)
	rm -rf $(REFERENCE) && mkdir -p $(REFERENCE) && cp -r config data $(REFERENCE)/
	$(BIN)/snakemake --snakefile $(CURDIR)/Snakefile --directory $(REFERENCE) --cores $(CORES) \
		--workflow-profile $(CURDIR)/workflow/profiles/default \
		--configfile $(CURDIR)/verification/reference.yaml
	$(BIN)/alliance verify $(REFERENCE)/results --update --manifest verification/demo_manifest.json

demo-data: $(STAMP)  ## regenerate the embedded demo data (byte-identical with the same seed)
	$(BIN)/snakemake simulate_demo --forcerun simulate_demo --cores 1

clean:  ## remove results (not the venv)
	rm -rf results .snakemake
