# ocrforge: `make help` lists the targets. Everything runs inside ./.venv, created on first use.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# the exact versions behind the committed results
CONSTRAINTS := configs/constraints.txt
export PATH := $(BIN):$(PATH)
# paddle defaults to one OpenMP thread; use every core.
export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)
GPU ?= 0
# paddlepaddle-gpu 3.x wheels are served from PaddlePaddle's own index for your CUDA version (see its install page).
GPU_INDEX ?=
PYTEST_ARGS ?=
# test processes (pytest-xdist); 0: one process, in order (for debugging). Each builds the session fixtures itself.
PYTEST_WORKERS ?= 2

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	@if [ "$(GPU)" = "1" ]; then \
	  $(BIN)/python -m pip uninstall --yes paddlepaddle && \
	  $(BIN)/python -m pip install --quiet paddlepaddle-gpu==3.3.1 $(if $(GPU_INDEX),--index-url $(GPU_INDEX)); fi
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install ocrforge with its pinned stack (GPU=1 for paddlepaddle-gpu)

lock: $(STAMP) ## pin the installed versions in configs/constraints.txt (after a deliberate upgrade; then dvc repro)
	{ grep '^#' $(CONSTRAINTS); $(BIN)/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

# dvc.yaml's stages run `python stages/NAME.py`: the PATH above makes that .venv's python (README, Quick start)
repro: $(STAMP) ## run the pipeline (dvc.yaml) on the params.yaml data with `dvc repro`
	dvc repro

distill: $(STAMP) ## distil a small MobileNetV3 detector from train_det's (the optional stages/distill/dvc.yaml)
	dvc repro stages/distill/dvc.yaml

test: $(STAMP) ## run the test suite (PYTEST_WORKERS processes, default 2)
	python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: $(STAMP) ## run the tests that take seconds, not minutes
	python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP) ## run the pytest-benchmark micro-benchmarks
	python -m pytest tests/benchmarks --benchmark-enable --benchmark-only $(PYTEST_ARGS)

IMAGES ?= data/demo/images/00000.jpg
# IMAGES as one shell word, whatever it holds (spaces, quotes): 'a b' -> 'a b', it's -> 'it'\''s'
IMAGES_ARG = '$(subst ','\'',$(IMAGES))'
infer: $(STAMP) ## read IMAGES (a file or folder, spaces allowed) with the exported models; drawings go to reports/infer
	ocrforge infer $(IMAGES_ARG) --draw reports/infer $$(test -d $(IMAGES_ARG) && echo --jsonl)

FOLDER ?=
MODEL_DIR ?= models/export
prelabel: $(STAMP) ## pre-label FOLDER's new images for PPOCRLabel with MODEL_DIR; least certain first in FOLDER/prelabel_order.txt
	@test -n "$(FOLDER)" || { echo 'usage: make prelabel FOLDER=path/to/images [MODEL_DIR=models/export]'; exit 1; }
	ocrforge prelabel "$(FOLDER)" --model-dir "$(MODEL_DIR)"

# $(call shell_word,VALUE): VALUE as one shell word, as IMAGES_ARG above
shell_word = '$(subst ','\'',$(1))'
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
serve: $(STAMP) ## serve MODEL_DIR over HTTP on HOST:PORT with WORKERS processes (POST /ocr, GET /health, a page at /)
	ocrforge serve --model-dir $(call shell_word,$(MODEL_DIR)) --host $(call shell_word,$(HOST)) \
	  --port $(call shell_word,$(PORT)) --workers $(call shell_word,$(WORKERS))

BENCH_IMAGES ?= data/split
serve-bench: $(STAMP) ## load-test the server vs OCRPool on BENCH_IMAGES with 2 workers (reports/serve_bench.json, .md)
	python -m ocrforge.serve.loadtest --model-dir $(call shell_word,$(MODEL_DIR)) \
	  --images $(call shell_word,$(BENCH_IMAGES)) --workers 2 --out reports/serve_bench

metrics: $(STAMP) ## show the metrics of the workspace and how they differ from HEAD
	dvc metrics show
	dvc metrics diff

# Experiments (README, Experiments). S: one or more param settings, each KEY=VALUE, a comma list queues a grid;
# TARGETS: the stages to run up to (empty: all); QUEUE=1 queues instead of running.
S ?=
TARGETS ?=
QUEUE ?=
JOBS ?= 1
exp: $(STAMP) ## run an experiment: make exp S="train_rec.lr=0.0005" [TARGETS=eval] [QUEUE=1]; a comma list with QUEUE=1 queues a grid
	dvc exp run $(if $(QUEUE),--queue) $(foreach s,$(S),-S $(call shell_word,$(s))) $(TARGETS)

queue: $(STAMP) ## run the queued experiments JOBS at a time (default 1) and wait for them
	dvc queue start -j $(call shell_word,$(JOBS))
	@while dvc queue status | grep -qwE 'Queued|Running'; do sleep 10; done
	dvc queue status

# A and B: the two revisions or experiment names compared (default: HEAD and the workspace)
A ?= HEAD
B ?=
compare: $(STAMP) ## compare experiments: the exp show table, metrics diff and plots diff of A (HEAD) and B (workspace) into dvc_plots/
	dvc exp show --only-changed --drop 'Created|State|Executor'
	dvc metrics diff $(call shell_word,$(A)) $(if $(B),$(call shell_word,$(B)))
	dvc plots diff $(call shell_word,$(A)) $(if $(B),$(call shell_word,$(B))) --out dvc_plots
	@echo "curves: dvc_plots/index.html"

# Remote storage (README, Remote storage): URL a local or network folder, or s3://, ssh://, gs:// with the
# DVC plugin installed (pip install dvc-s3, dvc-ssh or dvc-gs, at the dvc version in configs/constraints.txt)
URL ?=
remote: $(STAMP) ## set the default DVC remote: make remote URL=/mnt/share/ocrforge-dvc (then commit .dvc/config)
	@test -n $(call shell_word,$(URL)) || { echo 'give the storage: make remote URL=/path/or/s3://bucket/prefix'; exit 2; }
	dvc remote add --default --force storage $(call shell_word,$(URL))

push: $(STAMP) ## upload the data and models of dvc.lock to the default DVC remote
	dvc push

pull: $(STAMP) ## download the data and models of dvc.lock from the default DVC remote (no retraining)
	dvc pull

plots: $(STAMP) ## render the training curves to dvc_plots/index.html (and open it where a browser exists)
	dvc plots show --open || dvc plots show

dag: $(STAMP) ## draw the pipeline's stages
	dvc dag

clean: ## remove the virtual environment and caches (not data/ or the DVC cache)
	rm -rf $(VENV) .pytest_cache .benchmarks build *.egg-info

.PHONY: help install lock repro distill test test-fast bench infer prelabel serve serve-bench exp queue compare remote push pull metrics plots dag clean
