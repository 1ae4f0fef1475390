#!/usr/bin/env bash
# The one GPU run (README "Benchmarks"): the GPU tests, then every bench on the device.
#
# Made for a lent GPU machine that has Python 3.12 with CUDA torch, onnxruntime and opencv but
# no ROS and no network: the wheels it lacks travel in .whl/ (tools/gpu/fetch_wheels.sh makes
# them where pip reaches PyPI). Each step is time-boxed, and all of them together end within
# BUDGET_S (default 540 s, under a 10-minute call), so one failing or slow step still leaves the
# others' results. Logs and JSON go to $OUT (default bench/gpu): 7 files.
# Usage, from the repository root:  bash tools/gpu/run.sh
set -uo pipefail
OUT=${OUT:-bench/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
deadline=$((SECONDS + ${BUDGET_S:-540}))

step() {  # step SECONDS NAME COMMAND...: run it within its share of the time, log how it ended
    local limit=$1 name=$2; shift 2
    local left=$((deadline - SECONDS)) started=$SECONDS
    ((limit > left)) && limit=$left
    if ((limit < 10)); then echo "=== $name: skipped, the time is up"; return; fi
    local line="$*"
    echo "=== $name: ${line:0:200}"
    timeout --signal=INT --kill-after=15 "$limit" "$@"
    echo "=== $name: exit $? after $((SECONDS - started)) s"
}

main() {
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'

    # The machine is bare and given back afterwards: install into its own Python, offline.
    if compgen -G ".whl/*.whl" >/dev/null; then
        step 60 wheels python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl
    fi
    step 60 package python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir -e .

    step 90 gpu-tests python3 -m pytest -q -p no:cacheprovider test/test_gpu.py
    step 90 inference mtl-perception bench inference --device cuda --json "$OUT/inference.json" \
        --sizes 128x256,512x1024 --camera-sizes 512x1024,1024x2048 --output-resolutions network,input
    step 45 grouping mtl-perception bench grouping --device cuda --methods votes --json "$OUT/grouping.json"
    step 100 node mtl-perception bench node --device cuda --frames 15 --stream-seconds 4 --json "$OUT/node.json"
    step 60 cameras mtl-perception bench cameras --seconds 8 --json "$OUT/cameras.json"
    step 60 train mtl-perception bench train --steps 5 --json "$OUT/train.json"
}

main 2>&1 | tee "$OUT/run.log"
