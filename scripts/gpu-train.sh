#!/usr/bin/env bash
# One training run of the default pahs-t weights on a CUDA GPU, for a fixed wall time: when the time is up,
# SIGTERM makes pahs-train checkpoint the step in progress, so the run folder (RESULTS/train-gpu) can be
# committed back, scored on the CPU with pahs-eval, and continued anywhere with `pahs-train -o RUN --resume`.
#
#   scripts/gpu-train.sh RESULTS [--data X4K_DIR] [--seconds N] [--cpu]
#
#   --data X4K_DIR   mix in the real 1000 fps training clips (layout x4k); default: synthetic clips only
#   --seconds N      wall time for training (default 420: about 7 minutes)
#   --cpu            the same steps on the CPU, tiny: checks the script itself
#
# The run: from the shipped weights (or, when RESULTS/train-gpu holds a run, resuming it), bf16 autocast,
# 256-px crops, batch 8, 5 frames, learning rate 2e-4 with a 100-step warm-up
# and cosine decay over 3000 steps, a checkpoint and validation every 250 steps, 8 data-loading processes.
# Everything it prints goes to RESULTS/train-gpu.log, with the machine in RESULTS/env-train.txt.
set -uo pipefail

results=${1:?usage: scripts/gpu-train.sh RESULTS [--data X4K_DIR] [--seconds N] [--cpu]}
shift
data=() seconds=420 mode=gpu
while [ $# -gt 0 ]; do
    case $1 in
        --data) data=(--data "$(cd "$2" && pwd)" --layout x4k); shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --cpu) mode=cpu; shift ;;
        *) echo "gpu-train: error: expected --data, --seconds or --cpu, found $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$results"
results=$(cd "$results" && pwd)
# shellcheck source=scripts/gpu-env.sh
source "$(dirname "$0")/gpu-env.sh"
machine > "$results/env-train.txt" 2>&1

if [ "$mode" = cpu ]; then
    settings=(--device cpu --crop 32 --batch 2 --frames 3 --steps 4 --warmup 1 --val-every 2 --workers 0)
else
    settings=(--device cuda --crop 256 --batch 8 --frames 5 --steps 3000 --warmup 100 --lr 2e-4 --val-every 250 --workers 8)
fi
run=$results/train-gpu
start=(--init pahs_export/weights/pahs-t.safetensors --seed 20 "${settings[@]}" "${data[@]}")
[ -f "$run/train_state.pt" ] && start=()  # a run is there: its own settings continue it
echo "gpu-train: pahs-train -o $run --resume${start[*]:+ ${start[*]}} (for $seconds s)" >&2
timeout -s TERM -k 120 "$seconds" python3 -c \
    'import sys; from pahs.cli.train import train_main; sys.argv[0] = "pahs-train"; sys.exit(train_main())' \
    -o "$run" --resume "${start[@]}" 2>&1 | tee "$results/train-gpu.log"
status=${PIPESTATUS[0]}
# 0: the schedule finished; 124 (timeout's) or 143 (128 + SIGTERM): stopped at the time limit
case $status in
    0) echo "gpu-train: finished the schedule; run folder $run" >&2 ;;
    124 | 143)
        if [ -f "$run/train_state.pt" ]; then
            echo "gpu-train: stopped at the time limit, checkpointed; run folder $run (--resume continues it)" >&2
        else
            echo "gpu-train: error: stopped at the time limit before the first step ended; give it more --seconds" >&2
            exit 1
        fi ;;
    *) echo "gpu-train: error: pahs-train failed with exit $status (log in $results/train-gpu.log)" >&2; exit 1 ;;
esac
