#!/usr/bin/env bash
# The GPU run: the CUDA paths of the runtime and the GPU benchmark, on one CUDA GPU, in about 7 minutes.
#
#   scripts/gpu-check.sh RESULTS            # on a machine with a CUDA GPU and PyTorch built for it
#   scripts/gpu-check.sh RESULTS --cpu      # the same steps on the CPU, small: checks the script itself
#
# Steps (each runs whatever the previous ones did; the exit status says whether all passed):
#   1. python -m pytest -m "gpu and not trt" -q   the resident loop on CUDA, eager and with CUDA graphs,
#                                                 against the CPU reference
#   2. pahs-run samples/synthetic-blur.mp4 --backend torch --device cuda [--cuda-graphs] --verify 30
#                                                 each compared with PyTorch FP32 on the CPU
#   3. pahs-bench for pahs, pahs-s and pahs-t at 1280x720, variants torch-cuda, torch-cuda-graphs,
#      torch-cuda-fp16, torch-cuda-bf16                        -> RESULTS/bench-gpu.json
# Everything it prints goes to RESULTS/*.log as well, with the machine in RESULTS/env.txt.
#
# The GPU machines have PyTorch but no network: what else pahs needs (PyAV, typer, onnxconverter-common)
# is installed offline from the wheels in $PAHS_WHEELS (default .whl), which scripts/gpu-wheels.sh downloads
# on a machine with network access. The project itself runs from this checkout (no pip install).
set -uo pipefail

results=${1:?usage: scripts/gpu-check.sh RESULTS [--cpu]}
mode=${2:-gpu}
cd "$(dirname "$0")/.."
mkdir -p "$results"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PAHS_CACHE="${PAHS_CACHE:-/tmp/pahs-cache}"
wheels=${PAHS_WHEELS:-.whl}

missing=$(python3 - <<'EOF'
import importlib.util
print(" ".join(m for m in ("av", "typer", "onnxconverter_common", "safetensors") if not importlib.util.find_spec(m)))
EOF
)
if [ -n "$missing" ]; then
    if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
        echo "gpu-check: error: expected wheels for $missing in $wheels, found none; run scripts/gpu-wheels.sh where pip has network" >&2
        exit 2
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/pahs-site "$wheels"/*.whl || exit 2
    export PYTHONPATH="$PYTHONPATH:/tmp/pahs-site"
fi

if [ "$mode" = "--cpu" ]; then  # the plumbing on a CPU: small and fast, nothing about speed
    device=cpu presets=(-p pahs-t) size=320x192 variants=(-b torch) frames=4 reps=1 graphs=() verify=4
else
    device=cuda presets=(-p pahs -p pahs-s -p pahs-t) size=1280x720 frames=16 reps=3 verify=30 graphs=(--cuda-graphs)
    variants=(-b torch-cuda -b torch-cuda-graphs -b torch-cuda-fp16 -b torch-cuda-bf16)
fi

{
    date -u
    uname -a
    nvidia-smi 2>&1 || echo "nvidia-smi: not found"
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
    git rev-parse HEAD 2>/dev/null
} > "$results/env.txt" 2>&1

failed=()
step() {  # step NAME COMMAND...: run, log to RESULTS/NAME.log, remember a failure
    local name=$1
    shift
    echo "gpu-check: $name: $*" >&2
    local started=$SECONDS
    "$@" 2>&1 | tee "$results/$name.log"
    local status=${PIPESTATUS[0]}
    echo "gpu-check: $name: exit $status after $((SECONDS - started)) s" >&2
    [ "$status" -eq 0 ] || failed+=("$name")
}
pahs_run() { python3 -c 'import sys; from runtime.cli import main; sys.argv[0] = "pahs-run"; sys.exit(main())' "$@"; }
pahs_bench() { python3 -c 'import sys; from runtime.bench.cli import main; sys.argv[0] = "pahs-bench"; sys.exit(main())' "$@"; }

if [ "$mode" = "--cpu" ]; then
    step pytest-gpu python3 -m pytest -m "gpu and not trt" -q -p no:cacheprovider tests/runtime/backends/test_resident.py
else
    step pytest-gpu python3 -m pytest -m "gpu and not trt" -q -p no:cacheprovider
fi
step verify-graphs pahs_run samples/synthetic-blur.mp4 --backend torch --device "$device" "${graphs[@]}" --verify "$verify" -q
step verify-eager pahs_run samples/synthetic-blur.mp4 --backend torch --device "$device" --verify "$verify" -q
step bench-gpu pahs_bench "${presets[@]}" -s "$size" "${variants[@]}" --frames "$frames" --reps "$reps" \
    --json "$results/bench-gpu.json"

if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu-check: failed: ${failed[*]} (logs in $results)" >&2
    exit 1
fi
echo "gpu-check: all passed (logs and bench-gpu.json in $results)" >&2
