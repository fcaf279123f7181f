# Everything runs from a local venv (.venv) so a fresh machine needs only python3, make and npm.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
AZURITE_VERSION := 3.35.0
export PATH := $(CURDIR)/$(TOOLS)/node/node_modules/.bin:$(PATH)

.PHONY: serve test test-fast lint install-dev install-core emulators demo bench clean

## serve: run the function on the bundled demo model at http://localhost:8080
serve: $(VENV)/.core
	$(BIN)/modelfn serve

## test: install everything the suite needs (venv, emulators) and run it
test: $(VENV)/.dev emulators
	$(BIN)/pytest -q -p no:cacheprovider

## test-fast: unit and API tests only (no emulators, Docker or Terraform)
test-fast: $(VENV)/.dev
	$(BIN)/pytest -q -p no:cacheprovider tests/function tests/loader -k "not cloud and not roundtrip"

## lint: ruff, mypy, hadolint, terraform fmt
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check function loader iac tests bench scripts
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile docker/*.Dockerfile
	terraform fmt -check -recursive terraform

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core: $(VENV)/bin/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

# torch is pinned to the CPU build (torch==2.13.0); never let the resolver pick a CUDA wheel.
$(VENV)/.dev: $(VENV)/bin/python pyproject.toml
	$(BIN)/pip install -q -e '.[s3,gcs,azure,torch,dev]'
	touch $@ $(VENV)/.core

## emulators: Azurite from npm (moto and gcp-storage-emulator come with the dev extra)
emulators: $(TOOLS)/node/node_modules/.bin/azurite-blob

$(TOOLS)/node/node_modules/.bin/azurite-blob:
	mkdir -p $(TOOLS)/node
	npm install --silent --no-audit --no-fund --prefix $(TOOLS)/node azurite@$(AZURITE_VERSION)

## demo: rebuild the bundled demo model (function/demo/store)
demo: $(VENV)/.dev
	$(BIN)/python scripts/make_demo_model.py

## bench: serving benchmark (modelfn vs raw ORT vs peers), then the micro-benchmarks (bench/README.md; needs wrk)
bench: $(VENV)/.dev
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.serving $(BENCH_ARGS)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
