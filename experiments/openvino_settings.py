"""OpenVINO's CPU settings against one step of each graph role at 640x352: performance hint and thread count;
FP32 (with the f32 precision hint pahs sets) and the INT8 CPU-target artifacts of the default weights (the cached
ones `pahs-run --precision` uses). One compiled model at a time; 3 rounds over all settings, each a median of 5
synchronous inferences after 2 warm-ups, inputs shared without copies (as the backend passes them); the median of
the rounds is reported, so a noisy neighbour slows every setting alike.

    python experiments/openvino_settings.py [--json experiments/results/openvino-settings.json]
"""

import argparse
import json
import os
import statistics
from pathlib import Path

import numpy as np
import openvino as ov

from pahs.bench_variants import cpu_description
from pahs.export_cache import default_artifact
from pahs_export.contract import ROLES
from runtime.bench.measure import median_seconds

H, W = 352, 640
ROUNDS = 3
CORES = os.cpu_count() or 1
# name -> compile configuration (on top of the f32 precision hint for FP32)
SETTINGS = {
    "LATENCY hint (pahs)": {"PERFORMANCE_HINT": "LATENCY"},
    "THROUGHPUT hint": {"PERFORMANCE_HINT": "THROUGHPUT"},
    "no hint": {},
    "LATENCY, 1 thread": {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1},
    f"LATENCY, {CORES} threads": {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": CORES},
    "LATENCY, no hyper-threading": {"PERFORMANCE_HINT": "LATENCY", "ENABLE_HYPER_THREADING": False},
}


def inputs(model: ov.Model) -> dict[str, np.ndarray]:
    """Random inputs of the contract's shapes at H x W (states at a quarter of the frame's size)."""
    rng = np.random.default_rng(0)
    out = {}
    for port in model.inputs:
        name = port.get_any_name()
        channels = port.get_partial_shape()[1].get_length()
        scale = 1 if name == "frame" else 4
        out[name] = rng.random((1, channels, H // scale, W // scale)).astype(np.float32)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    core = ov.Core()
    times: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for precision in ("fp32", "int8"):
            art = default_artifact(precision)
            for role in ("forward", "fuse"):
                model = core.read_model(str(art / f"{role}.onnx"))
                feed = inputs(model)
                model.reshape({name: a.shape for name, a in feed.items()})
                assert set(feed) == set(ROLES[role].inputs)
                for name, config in SETTINGS.items():
                    config = {**config, **({"INFERENCE_PRECISION_HINT": "f32"} if precision == "fp32" else {})}
                    request = core.compile_model(model, "CPU", config).create_infer_request()
                    request.infer(feed, share_inputs=True)  # warm-up (median_seconds adds one more)
                    ms = 1000 * median_seconds(lambda r=request, f=feed: r.infer(f, share_inputs=True), 5)
                    times.setdefault(f"{precision} {role}: {name}", []).append(ms)
                    del request
    results = {label: round(statistics.median(t), 2) for label, t in times.items()}
    for label, ms in results.items():
        print(f"{label:<50} {ms:8.2f} ms")
    if args.json:
        cpu, isa = cpu_description()
        summary = {"cpu": cpu, "isa": isa, "cpu_count": CORES, "openvino": ov.get_version(), "ms": results}
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
