# The image every pod runs under the Kubernetes profile (workflow/profiles/kubernetes): Python 3.11,
# the exact pins of requirements.lock and graphviz (`dot`, for path diagrams). The workflow's code
# is not baked in: Snakemake deploys the sources of each run into the pod's /workdir, and
# PYTHONPATH points the rules' scripts at its src/, so the library always matches the run.
#
#   docker build -t REGISTRY/alliance-pipeline:$(git rev-parse --short HEAD) .
#   docker push REGISTRY/alliance-pipeline:$(git rev-parse --short HEAD)
#
# Rebuild when requirements.lock changes (code changes need no rebuild).
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.lock /opt/alliance/requirements.lock
# Every pod starts with `pip install --target .snakemake/pip-deployments <storage plugin>`
# (Snakemake's own step). Its wheels are stored here, pinned by the lock, and the ENV lines below
# make pip take them from this folder, so pods need no package index.
RUN python -m pip install --no-cache-dir -r /opt/alliance/requirements.lock \
    && python -m pip download --no-cache-dir --dest /opt/alliance/wheels \
        --constraint /opt/alliance/requirements.lock snakemake-storage-plugin-s3

ENV PYTHONPATH=/workdir/src \
    PIP_CONSTRAINT=/opt/alliance/requirements.lock \
    PIP_NO_INDEX=1 \
    PIP_FIND_LINKS=/opt/alliance/wheels
WORKDIR /workdir
