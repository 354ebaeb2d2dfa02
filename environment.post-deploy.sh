#!/usr/bin/env bash
# Run by Snakemake after it creates the conda environment of environment.yml (--sdm conda), in the
# project folder: installs the project's own library into that environment (no dependencies: the
# environment already pins them).
set -euo pipefail
python -m pip install --no-deps -e .
