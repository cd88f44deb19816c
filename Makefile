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

repro: $(STAMP) ## run the whole pipeline on the params.yaml data with `dvc repro`
	dvc repro

test: $(STAMP) ## run the test suite
	python -m pytest $(PYTEST_ARGS)

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

plots: $(STAMP) ## render the training curves to dvc_plots/index.html (and open it where a browser exists)
	dvc plots show --open || dvc plots show

dag: $(STAMP) ## draw the pipeline's stages
	dvc dag

clean: ## remove the virtual environment and caches (not data/ or the DVC cache)
	rm -rf $(VENV) .pytest_cache .benchmarks build *.egg-info


.PHONY: help install lock repro test test-fast bench infer prelabel serve serve-bench metrics plots dag clean
