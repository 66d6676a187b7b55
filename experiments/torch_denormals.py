"""How much of torch eager's CPU time goes to denormal arithmetic: one bidirectional clip of 4 frames at 640x352
through the model in PyTorch, FP32 as users run it, FP32 with `torch.set_flush_denormal(True)`, and bf16
autocast where the CPU has native bf16; default weights and random ones (seed 0). Median of 3 after a warm-up,
in one process, all cores.

    python experiments/torch_denormals.py [--json experiments/results/torch-denormals.json]
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from pahs_export import build_model, load_model
from pahs_export.weights import default_checkpoint

REPS = 3


def seconds(model: torch.nn.Module, clip: torch.Tensor, autocast: bool = False) -> float:
    times = []
    for i in range(REPS + 1):
        started = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(clip)
        if i:  # the first is a warm-up
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    clip = torch.rand(1, 4, 3, 352, 640, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    models = {"default weights": load_model(default_checkpoint("pahs-t")), "random weights": build_model("pahs-t")}
    bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    results = {}
    for name, model in models.items():
        model.eval()
        results[f"{name}: fp32"] = seconds(model, clip)
        torch.set_flush_denormal(True)
        results[f"{name}: fp32, denormals flushed"] = seconds(model, clip)
        torch.set_flush_denormal(False)
        if bf16:
            results[f"{name}: bf16 autocast"] = seconds(model, clip, autocast=True)
    for label, s in results.items():
        print(f"{label:<45} {s:6.2f} s")
    if args.json:
        summary = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "seconds": results}
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
