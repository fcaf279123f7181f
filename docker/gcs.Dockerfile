# GCS emulator for the integration tests: gcp-storage-emulator, built on the local base (no pulls).
# docker build -f docker/gcs.Dockerfile --build-arg BASE_IMAGE=modelfn-base:bookworm -t modelfn-emu-gcs docker
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
ARG GCS_EMULATOR_VERSION=2026.7.19
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN python3 -m venv /opt/emu && /opt/emu/bin/pip install "gcp-storage-emulator==${GCS_EMULATOR_VERSION}"
USER 10002:10002
EXPOSE 9023
CMD ["/opt/emu/bin/gcp-storage-emulator", "start", "--host", "0.0.0.0", "--port", "9023", "--in-memory"]
