#!/usr/bin/env bash
# Builds, where no image registry is reachable, every image deploy/compose.local.yml runs: the local Debian base
# (scripts/docker_base.sh), the cda image from the Dockerfile on it, and a Kafka stand-in from the jars
# `cda kafka fetch` keeps under $CDA_HOME/kafka/lib. Images already there are kept (`--rebuild`: build cda again).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${CDA_IMAGE_BASE:-cda-base:bookworm}
bash scripts/docker_base.sh "$BASE"
if [ "${1:-}" = --rebuild ] || ! docker image inspect "${CDA_IMAGE:-cda:latest}" >/dev/null 2>&1; then
  cp /usr/local/share/ca-certificates/*.crt deploy/certs/ 2>/dev/null || true  # a proxy's CA, where there is one
  DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE="$BASE" -t "${CDA_IMAGE:-cda:latest}" . >&2
fi
if ! docker image inspect cda-kafka:local >/dev/null 2>&1; then
  LIB=${CDA_HOME:-.cda}/kafka/lib
  [ -d "$LIB" ] || { echo "error: no Kafka jars in $LIB (cda kafka fetch)" >&2; exit 1; }
  CONTEXT=$(mktemp -d)
  trap 'rm -rf "$CONTEXT"' EXIT
  cp -r "$LIB" "$CONTEXT/libs"
  cp deploy/kafka/local/* "$CONTEXT/"
  DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE="$BASE" -t cda-kafka:local "$CONTEXT" >&2
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^(cda|cda-kafka|cda-base)" >&2
