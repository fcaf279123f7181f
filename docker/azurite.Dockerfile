# Azure Blob emulator for the integration tests: Azurite from npm on Debian's Node.js, built on the
# local base (no pulls). Debian bookworm ships Node 18; Azurite 3.35 is the last release that runs
# on it (3.36+ needs Node 21+).
# docker build -f docker/azurite.Dockerfile --build-arg BASE_IMAGE=modelfn-base:bookworm -t modelfn-emu-azurite docker
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ARG AZURITE_VERSION=3.35.0
# Debian's packages, versions fixed by the bookworm base.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/azurite
RUN npm install --omit=dev --no-audit --no-fund "azurite@${AZURITE_VERSION}" \
 && npm cache clean --force

FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/azurite /opt/azurite
USER 10002:10002
EXPOSE 10000
# --skipApiVersionCheck: the pinned Azure SDK may speak a newer REST version than this Azurite.
CMD ["node", "/opt/azurite/node_modules/azurite/dist/src/blob/main.js", "--blobHost", "0.0.0.0", "--blobPort", "10000", "--location", "/tmp/azurite", "--loose", "--skipApiVersionCheck", "--disableProductStyleUrl"]
