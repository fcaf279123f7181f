#!/usr/bin/env bash
# Build the local base image (Debian bookworm + python3) without pulling from any registry.
#
# Usage: scripts/build-base-image.sh [--force]
#   MODELFN_BASE_IMAGE  tag to produce            (default: modelfn-base:bookworm)
#   DEBIAN_MIRROR       apt mirror for debootstrap (default: http://deb.debian.org/debian)
#   HOST_CA_BUNDLE      CA bundle copied in        (default: /etc/ssl/certs/ca-certificates.crt)
#
# Idempotent: exits at once when the tag exists (pass --force to rebuild). The result has
# python3 + venv + ca-certificates, the host's CA bundle (so pip/npm/apt work through a TLS-
# intercepting proxy), PIP_CERT / NODE_EXTRA_CA_CERTS set, and apt sources for bookworm.
set -euo pipefail

TAG="${MODELFN_BASE_IMAGE:-modelfn-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
SUITE=bookworm

log() { printf '[build-base-image] %s\n' "$*" >&2; }

if [[ "${1:-}" != "--force" ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG already exists (pass --force to rebuild)"
  exit 0
fi
command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install -y debootstrap"; exit 1; }
[[ -r "$CA_BUNDLE" ]] || { log "CA bundle $CA_BUNDLE not readable"; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

log "debootstrap $SUITE into $rootfs (mirror $MIRROR)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 40 "$work/debootstrap.log" >&2; exit 1; }

cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SOURCES
# Keep images small: no downloaded .debs, package lists, docs or man pages.
cat >"$rootfs/etc/apt/apt.conf.d/90modelfn-slim" <<'APTCONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
APTCONF
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/var/log/* "$rootfs"/tmp/*
# The host's bundle includes the proxy's CA; ca-certificates' own bundle would be regenerated
# by update-ca-certificates, so it lives under a name of its own.
cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/host-ca-bundle.crt"

log "importing rootfs as $TAG-rootfs"
# Sorted, numeric-owner tar with fixed mtimes: the import layer depends only on the package set.
tar --sort=name --numeric-owner --mtime='2024-01-01 00:00:00Z' -C "$rootfs" -c . \
  | docker import - "$TAG-rootfs" >/dev/null

cat >"$work/Dockerfile" <<DOCKERFILE
FROM $TAG-rootfs
ENV LANG=C.UTF-8 \\
    PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt \\
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca-bundle.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/host-ca-bundle.crt \\
    PIP_DISABLE_PIP_VERSION_CHECK=1
CMD ["python3"]
DOCKERFILE
docker build -q -t "$TAG" "$work" >/dev/null
docker rmi "$TAG-rootfs" >/dev/null 2>&1 || true
log "built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
