# modelfn function image: one image for Cloud Run, ECS (Fargate) and Container Apps.
#
# Variants (build argument VARIANT; every other step is shared):
#   cpu        onnxruntime (default):   docker build -t modelfn .
#   torch-cpu  + PyTorch CPU build:      docker build --build-arg VARIANT=torch-cpu -t modelfn:torch-cpu .
#   gpu        onnxruntime-gpu (PyPI: a CUDA 13 build) on a CUDA 13 + cuDNN 9 runtime base:
#              docker build --build-arg VARIANT=gpu \
#                --build-arg BASE_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04 -t modelfn:gpu .
#   torch-gpu  + PyPI's CUDA 13 build of torch (its CUDA libraries come as pinned wheels) on a CUDA base:
#              docker build --build-arg VARIANT=torch-gpu \
#                --build-arg BASE_IMAGE=nvidia/cuda:13.0.0-base-ubuntu24.04 -t modelfn:torch-gpu .
# Offline / air-gapped: --build-arg BASE_IMAGE=modelfn-base:bookworm (scripts/build-base-image.sh),
# and for torch-cpu put the torch wheel in ./wheelhouse and add --build-arg TORCH_FIND_LINKS=/src/torch.
# docs/image.md has the details, sizes and the Cloud Build equivalent (cloudbuild.yaml).

# checkov:skip=CKV_DOCKER_7:the base is a build argument whose default, python:3.12-slim, is a pinned minor version; offline builds pass a locally built tag
ARG BASE_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------------------------
# Shared by the build and runtime stages: the same interpreter, so the venv is valid in both.
FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/sh", "-eu", "-c"]
# python:*-slim and the debootstrap base have Python; CUDA runtime bases (Ubuntu) do not, so the gpu
# variant installs the distribution's python3. Its version is fixed by the base image tag, hence no
# per-package pins (DL3008) here.
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null; then \
      apt-get update; \
      apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; \
      rm -rf /var/lib/apt/lists/*; \
    fi

# ---------------------------------------------------------------------------------------------
# Build: the locked dependencies, then the app, into /opt/venv. pip lives in a separate tools venv
# (pip --python): the runtime venv holds no pip, nor setuptools unless a locked package needs it (torch).
FROM base AS build
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_FIND_LINKS=
RUN python3 -m venv /opt/build-tools \
 && python3 -m venv --without-pip /opt/venv
WORKDIR /src
COPY requirements/ /src/deps/
RUN case "$VARIANT" in \
      cpu|torch-cpu|gpu|torch-gpu) ;; \
      *) echo "unknown VARIANT=$VARIANT (cpu | torch-cpu | gpu | torch-gpu)" >&2; exit 2 ;; \
    esac; \
    /opt/build-tools/bin/pip --python /opt/venv/bin/python install --no-deps -r "deps/$VARIANT.txt"
# torch-cpu's torch: from ./wheelhouse when TORCH_FIND_LINKS=/src/torch (offline), else from the
# PyTorch CPU index (the registry's default torch is a CUDA build). The glob lets ./wheelhouse be
# absent. torch-gpu's torch is that default CUDA build, pinned in its lock with its CUDA wheels.
COPY requirements/torch-cpu.txt wheelhouse* /src/torch/
RUN if [ "$VARIANT" = torch-cpu ]; then \
      if [ -n "$TORCH_FIND_LINKS" ]; then set -- --no-index --find-links "$TORCH_FIND_LINKS"; \
      else set -- --index-url "$TORCH_INDEX_URL"; fi; \
      /opt/build-tools/bin/pip --python /opt/venv/bin/python install --no-deps "$@" "torch==$TORCH_VERSION"; \
    fi; \
    case "$VARIANT" in torch-*) \
      torch_dir="$(echo /opt/venv/lib/python3*/site-packages/torch)"; \
      test "$(/opt/venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')" = "$TORCH_VERSION"; \
      # C++ test binaries, headers and CMake files: only for building extensions or testing torch.
      rm -rf "$torch_dir/test" "$torch_dir/include" "$torch_dir/share"; \
      find "$torch_dir/bin" -type f ! -name torch_shm_manager -delete ;; \
    esac
COPY pyproject.toml README.md ./
COPY function/ function/
COPY loader/ loader/
# No iac/: `modelfn deploy` runs where Terraform runs (pip install modelfn), never in the serving image.
# The dependencies are installed above from the lock: pip check proves the lock covers pyproject.toml,
# and importing the app proves no undeclared import is missing.
RUN /opt/build-tools/bin/pip --python /opt/venv/bin/python install --no-deps . \
 && if [ "$VARIANT" != gpu ]; then /opt/build-tools/bin/pip --python /opt/venv/bin/python check; fi \
 && /opt/venv/bin/python -c "import function.app, function.cli" \
 && find /opt/venv -depth -type d -name tests -path '*/site-packages/*/tests' -prune -exec rm -rf {} + \
 # pysimdjson ships the C++ sources it was compiled from (~7.6 MB): only its extension module is used.
 && rm -f /opt/venv/lib/python3*/site-packages/simdjson/*.cpp /opt/venv/lib/python3*/site-packages/simdjson/*.h

# ---------------------------------------------------------------------------------------------
# Runtime: the venv only, a fixed non-root uid, Gunicorn with the project's config.
FROM base AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/modelfn/modelfn
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="modelfn" \
      org.opencontainers.image.description="Serverless container function for ML inference (${VARIANT})" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.modelfn.variant="${VARIANT}"
RUN groupadd --system --gid 10001 modelfn \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin modelfn
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PORT=8080
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# No curl in the image: the venv's Python probes liveness (the platforms use /readyz themselves).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]
CMD ["gunicorn", "-c", "python:function.gunicorn_conf", "function.wsgi:app"]
