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
# The GPU machines have PyTorch but no network: scripts/gpu-env.sh installs what else pahs needs offline.
set -uo pipefail

results=${1:?usage: scripts/gpu-check.sh RESULTS [--cpu]}
mode=${2:-gpu}
mkdir -p "$results"
results=$(cd "$results" && pwd)
# shellcheck source=scripts/gpu-env.sh
source "$(dirname "$0")/gpu-env.sh"

if [ "$mode" = "--cpu" ]; then  # the plumbing on a CPU: small and fast, nothing about speed
    device=cpu presets=(-p pahs-t) size=320x192 variants=(-b torch) frames=4 reps=1 graphs=() verify=4
else
    device=cuda presets=(-p pahs -p pahs-s -p pahs-t) size=1280x720 frames=16 reps=3 verify=30 graphs=(--cuda-graphs)
    variants=(-b torch-cuda -b torch-cuda-graphs -b torch-cuda-fp16 -b torch-cuda-bf16)
fi

machine > "$results/env.txt" 2>&1

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
pahs_run() { python3 -c 'import sys; from pahs.cli.run import main; sys.argv[0] = "pahs-run"; sys.exit(main())' "$@"; }
pahs_bench() { python3 -c 'import sys; from pahs.cli.bench import main; sys.argv[0] = "pahs-bench"; sys.exit(main())' "$@"; }

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
