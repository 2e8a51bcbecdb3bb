#!/usr/bin/env bash
# Builds the local base image where no image registry is reachable: Debian bookworm (minbase) from Debian's own
# packages with Python 3.11 and venv, imported into Docker. Users build on python:3.11-slim instead (the
# Dockerfile's default BASE). Needs root, debootstrap and a running Docker engine; an image already there is kept.
#   bash scripts/docker_base.sh [NAME]      (default cda-base:bookworm)
set -euo pipefail
NAME=${1:-cda-base:bookworm}
if docker image inspect "$NAME" >/dev/null 2>&1; then
  echo "$NAME is there" >&2
  exit 0
fi
command -v debootstrap >/dev/null || { echo "error: debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOT" \
  "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
tar -C "$ROOT" -c . | docker import --change 'ENV LANG=C.UTF-8' - "$NAME" >&2
echo "built $NAME" >&2
