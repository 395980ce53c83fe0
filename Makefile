# kfpc — every target installs what it needs first. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kfpc-installed
LOCK := constraints-py311.txt

PIPELINE ?= training_pipeline
PARAMS ?=
IMAGE_REGISTRY ?=
PORT ?= 8080
PYTEST_ARGS ?=
# submit / schedule: KFP_HOST (+ NAMESPACE, EXPERIMENT) for Kubeflow Pipelines, or PROJECT + REGION +
# PIPELINE_ROOT for Vertex AI; DRY_RUN=1 prints the exact request instead of sending it; WAIT=1 follows the run.
KFP_HOST ?=
NAMESPACE ?=
EXPERIMENT ?=
PROJECT ?=
REGION ?= us-central1
PIPELINE_ROOT ?=
SCHEDULE_PIPELINE ?= retraining_pipeline
SCHEDULE_NAME ?= $(SCHEDULE_PIPELINE)-schedule
CRON ?= $(if $(PROJECT),0 2 * * *,0 0 2 * * *)
WAIT ?=
DRY_RUN ?=
TARGET_ARGS = $(if $(PROJECT),--vertex --project $(PROJECT) --region $(REGION) --pipeline-root $(PIPELINE_ROOT),--host $(KFP_HOST) $(if $(NAMESPACE),--namespace $(NAMESPACE)) $(if $(EXPERIMENT),--experiment $(EXPERIMENT)))
CHECK_TARGET = @test -n "$(if $(PROJECT),$(PIPELINE_ROOT),$(KFP_HOST))" || { echo "set KFP_HOST=<url> (Kubeflow Pipelines) or PROJECT=<id> PIPELINE_ROOT=gs://<bucket>/<path> (Vertex AI)" >&2; exit 2; }

.PHONY: help install run test test-e2e services compile lint images push-images image-builder test-images bench serve submit schedule clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# The stamp depends on the lock and the package metadata: re-running `make install` is a no-op in
# seconds unless one of them changed.
$(STAMP): $(LOCK) setup.cfg setup.py pyproject.toml components/statistics/_ckernels.c
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"kfpc needs Python 3.11, found {sys.version.split()[0]}"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c $(LOCK) pip setuptools wheel
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -c $(LOCK) --no-build-isolation -e ".[all,dev]"
	@touch $@

install: $(STAMP) ## create .venv and install kfpc with the exact versions of constraints-py311.txt

run: $(STAMP) ## run the default pipeline locally on the bundled penguins data and print a summary
	$(BIN)/kfpc run $(PIPELINE) $(foreach p,$(PARAMS),--param $(p))

test: $(STAMP) services ## run the test suite (all but the multi-minute end-to-end proofs)
	$(BIN)/python -m pytest -m "not e2e" --durations=30 $(PYTEST_ARGS)

test-e2e: $(STAMP) services ## the end-to-end proofs (pipelines run twice, multi-process training); CI runs them too
	$(BIN)/python -m pytest -m e2e --durations=15 $(PYTEST_ARGS)

# Programs the tests run for real, from Debian's packages: Prometheus (the canary bake reads its query API)
# and Chromium (the reports are opened in a headless browser). Installed when missing, as root.
SERVICES := prometheus:prometheus chromium:chromium
services:
	@missing=""; for entry in $(SERVICES); do command -v $${entry%%:*} >/dev/null 2>&1 || missing="$$missing $${entry#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (Debian) for the tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "the tests need:$$missing (apt-get install$$missing, as root)" >&2; exit 2; fi; fi

compile: $(STAMP) ## compile every pipeline (kfp and vertex) and every component to YAML
	$(BIN)/kfpc compile --target all --components $(if $(IMAGE_REGISTRY),--image-registry $(IMAGE_REGISTRY))

lint: $(STAMP) ## ruff over the code, hadolint over the Dockerfiles, actionlint over the workflows
	$(BIN)/ruff check components pipelines serving tests benchmarks
	$(BIN)/hadolint components/images/*.Dockerfile
	$(BIN)/actionlint

REGISTRY ?= $(IMAGE_REGISTRY)
IMAGE_TOOL := $(BIN)/python .ci/images/build.py
images: $(STAMP) ## build every family image with Docker/BuildKit, else buildah (a local base when the pinned one cannot be pulled)
	$(IMAGE_TOOL) build $(if $(REGISTRY),--registry $(REGISTRY))

push-images: $(STAMP) ## build and push every family image: make push-images REGISTRY=<registry>
	@test -n "$(REGISTRY)" || { echo "usage: make push-images REGISTRY=<registry>" >&2; exit 2; }
	$(IMAGE_TOOL) build --registry $(REGISTRY)
	$(IMAGE_TOOL) push --registry $(REGISTRY)

# The image tier: builds data, tf, deploy and serving, runs both pipelines task by task inside them and
# queries the serving container. Needs buildah (+ mmdebstrap for the local base): installed with apt as root.
image-builder:
	@command -v buildah >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing buildah and mmdebstrap (Debian) for the image tier"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah mmdebstrap >/dev/null; \
	  else echo "the image tier needs buildah and mmdebstrap: apt-get install buildah mmdebstrap (as root)" >&2; exit 2; fi; }

test-images: $(STAMP) image-builder ## the image tier: build the images, run both pipelines inside them, query the serving image
	KFPC_IMAGE_TIER=1 $(BIN)/python -m pytest tests/components/images -m images $(PYTEST_ARGS)

BENCH ?=
bench: $(STAMP) ## benchmarks (BENCH="validation training" for a subset, QUICK=1 for a smoke run): JSON + plots in benchmarks/results/
	$(BIN)/python benchmarks/run_all.py $(if $(QUICK),--quick) $(BENCH)

serve: $(STAMP) ## serve the model of the last `make run` with the kfpc KServe server on PORT
	@model=$$($(BIN)/python -c 'import json, sys; s = json.load(open("runs/latest/summary.json")); print(next(a["path"] for t in s["tasks"] for n, a in t["artifacts"].items() if n == "model"))' 2>/dev/null) \
	  || { echo "no model from a previous run: run \`make run\` first" >&2; exit 2; }; \
	$(BIN)/kfpc serve --model-dir "$$model" --port $(PORT)

submit: $(STAMP) ## submit PIPELINE to KFP (KFP_HOST=...) or Vertex AI (PROJECT=... PIPELINE_ROOT=gs://...); DRY_RUN=1 prints the request
	$(CHECK_TARGET)
	$(BIN)/kfpc submit $(TARGET_ARGS) --pipeline $(PIPELINE) $(foreach p,$(PARAMS),--param $(p)) $(if $(WAIT),--wait) $(if $(DRY_RUN),--dry-run)

schedule: $(STAMP) ## schedule SCHEDULE_PIPELINE (default retraining_pipeline) with CRON on KFP or Vertex AI; DRY_RUN=1 prints the request
	$(CHECK_TARGET)
	$(BIN)/kfpc schedule create $(TARGET_ARGS) --name $(SCHEDULE_NAME) --pipeline $(SCHEDULE_PIPELINE) --cron "$(CRON)" $(foreach p,$(PARAMS),--param $(p)) $(if $(DRY_RUN),--dry-run)

clean: ## remove runs and caches (keeps .venv)
	rm -rf runs .pytest_cache .ruff_cache build dist *.egg-info
