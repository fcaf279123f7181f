# Everything runs from a local venv (.venv) so a fresh machine needs only python3, make and npm.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
AZURITE_VERSION := 3.35.0
export PATH := $(CURDIR)/$(TOOLS)/node/node_modules/.bin:$(PATH)

# The integration suite's images (stable tags, reused and replaced in place: tests/integration/images.py).
TEST_IMAGES := modelfn-it:cpu modelfn-it:torch-cpu modelfn-emu-s3:it modelfn-emu-gcs:it modelfn-emu-azurite:it \
	modelfn-it:cpu-build modelfn-it:torch-cpu-build modelfn-emu-azurite:it-build modelfn-it:context-probe
BASE_IMAGE ?= modelfn-base:bookworm
TORCH_WHEEL ?= /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl

.PHONY: serve test test-fast lint install-dev install-core emulators demo bench image image-torch-cpu clean clean-images

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

## install-core: the package alone in .venv (the CLI and the server on the demo model)
install-core: $(VENV)/.core

## install-dev: every extra (s3, gcs, azure, torch) and the test tools in .venv
install-dev: $(VENV)/.dev

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

## image: the cpu image on the local base (docker build -t modelfn .)
image:
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t modelfn .

## image-torch-cpu: the torch-cpu image offline: the wheel is streamed into this build's context only
image-torch-cpu: $(VENV)/.dev
	$(BIN)/python scripts/docker_context.py --add wheelhouse/$(notdir $(TORCH_WHEEL))=$(TORCH_WHEEL) \
	  | docker build -f Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg VARIANT=torch-cpu \
	    --build-arg TORCH_FIND_LINKS=/src/torch -t modelfn:torch-cpu -

## clean-images: remove the integration suite's images (about 2.5 GB; the base image stays)
clean-images:
	-docker image rm $(TEST_IMAGES) 2>/dev/null

## clean: everything `make test` and the builds leave in the checkout and in Docker (not the base image)
clean: clean-images
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache wheelhouse build dist *.egg-info
