# S3 emulator for the integration tests: moto's server mode, built on the local base (no pulls).
# docker build -f docker/s3.Dockerfile --build-arg BASE_IMAGE=modelfn-base:bookworm -t modelfn-emu-s3 docker
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
ARG MOTO_VERSION=5.2.1
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN python3 -m venv /opt/emu && /opt/emu/bin/pip install "moto[server]==${MOTO_VERSION}"
USER 10002:10002
EXPOSE 5000
CMD ["/opt/emu/bin/moto_server", "-H", "0.0.0.0", "-p", "5000"]
