#!/bin/sh
# Run the repository's unit tests inside a built function image, against the image's installed
# packages and Python (cloudbuild.yaml's unit-tests step). The checkout is mounted read-only:
#   docker run --rm --user root --entrypoint sh -v "$PWD:/workspace:ro" -w /workspace IMAGE \
#     docker/run-unit-tests.sh
# pip comes back (ensurepip) only in this throwaway container; the image itself ships without it.
set -eu
export PYTHONDONTWRITEBYTECODE=1 PIP_ROOT_USER_ACTION=ignore
python -m ensurepip >/dev/null
python - >/tmp/dev-requirements.txt <<'PY'
import tomllib

with open("pyproject.toml", "rb") as f:  # the checkout's
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["dev"]))
PY
python -m pip install -q -r /tmp/dev-requirements.txt
# Run from elsewhere with --import-mode=append, so the image's installed function/ and loader/ win
# over the mounted sources (which only provide the tests package).
src="$(pwd)"
cd /tmp
exec python -m pytest -q -p no:cacheprovider --import-mode=append --rootdir="$src" -c "$src/pyproject.toml" \
  "$src/tests" --ignore="$src/tests/integration" -m "not emulator and not gpu" "$@"
