#!/usr/bin/env bash
# Make a Docker engine reachable on this machine (idempotent).
#
# Installs docker.io (engine) and debootstrap (for scripts/build-base-image.sh) from Debian's apt
# when missing, starts dockerd in the background when no engine answers, and waits until
# `docker info` works. Safe to run repeatedly; does nothing when an engine already answers.
set -euo pipefail

WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"
LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"

log() { printf '[docker-engine] %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  log "engine already running"
  exit 0
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: $LOG)"
  # setsid + nohup: the daemon outlives this script and the shell that ran it.
  setsid nohup dockerd >"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq "$WAIT_SECONDS"); do
  if docker info >/dev/null 2>&1; then
    log "engine ready: $(docker version --format '{{.Server.Version}}')"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within ${WAIT_SECONDS}s; last log lines:"
tail -n 30 "$LOG" >&2 || true
exit 1
