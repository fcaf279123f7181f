#!/usr/bin/env bash
# The GPU proof on a machine that has CUDA torch but neither modelfn's web stack nor a package index.
#
#   scripts/gpu-machine.sh prepare   here (PyPI reachable): the missing wheels for CPython 3.12 into .whl/
#   scripts/gpu-machine.sh run       there, from the repository root with .whl/ beside it: the GPU tests,
#                                    then bench/gpu.py for both models; logs and JSON into $OUT (or ./gpu-out)
#
# The versions are cpu.txt's pins, so the GPU run uses what the image locks. Only what the GPU machine
# lacks travels (a few MB): Flask, Gunicorn, pydantic and their small dependencies.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
CARRY="Flask Werkzeug itsdangerous blinker click gunicorn pydantic pydantic_core pydantic-settings python-dotenv
annotated-types typing-inspection prometheus_client cloudevents deprecation"

pins() {
  for name in $CARRY; do
    grep -i "^${name}==" "$root/requirements/cpu.txt" || { echo "no pin for $name in cpu.txt" >&2; exit 1; }
  done
}

case "${1:-}" in
  prepare)
    pins >/dev/null  # fail here on a missing pin, not inside the command substitution below
    mkdir -p "$root/.whl"
    # shellcheck disable=SC2046  # one argument per pin
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$root/.whl" $(pins)
    du -sh "$root/.whl"
    ;;
  run)
    out="${OUT:-$root/gpu-out}"
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$root"/.whl/*.whl
    export PYTHONPATH="$root:/tmp/site" PYTHONUNBUFFERED=1
    cd "$root"
    python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' | tee "$out/device.txt"
    status=0
    python3 -m pytest -q -p no:cacheprovider -m gpu -rs tests/gpu tests/loader/test_runtimes.py 2>&1 \
      | tee "$out/gpu-tests.log" || status=1
    python3 bench/gpu.py --model resnet50 --out "$out/bench-resnet50.json" 2>&1 | tee "$out/bench-resnet50.log" || status=1
    python3 bench/gpu.py --model mlp1g --requests 500 --out "$out/bench-mlp1g.json" 2>&1 | tee "$out/bench-mlp1g.log" || status=1
    exit "$status"
    ;;
  *)
    echo "usage: $0 prepare | run" >&2
    exit 2
    ;;
esac
