"""What ONNX Runtime's CPU provider makes of each precision: node counts after its graph optimizations,
one forward step's time at 640x352, and the fuse graph's per-op profile. Default weights.

    python experiments/ort_cpu_kernels.py
"""

import argparse
import json
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from calibration.data import DEFAULT_SET
from pahs_export import load_model
from pahs_export.onnx_export import artifact_from_model
from pahs_export.precision import Int8Options
from pahs_export.weights import default_checkpoint
from runtime.bench.measure import median_seconds

H, W = 352, 640


def optimized_ops(path: Path, out: Path) -> Counter:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(out)
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(str(out)).graph.node)


def step_ms(path: Path, feed: dict, reps: int = 7) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return 1000 * median_seconds(lambda: session.run(None, feed), reps)


def fuse_profile(path: Path, feed: dict) -> dict[str, float]:
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(4):
        session.run(None, feed)
    per_op: dict[str, float] = defaultdict(float)
    profile = session.end_profiling()
    for event in json.loads(Path(profile).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    Path(profile).unlink()
    total = sum(per_op.values())
    return {op: round(100 * t / total, 1) for op, t in sorted(per_op.items(), key=lambda kv: -kv[1])}


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    model = load_model(default_checkpoint("pahs-t"))
    rng = np.random.default_rng(0)
    step = {
        "frame": rng.random((1, 3, H, W), np.float32),
        "h_prev": rng.random((1, 16, H // 4, W // 4), np.float32),
        "feat_prev": rng.random((1, 48, H // 4, W // 4), np.float32),
    }
    fuse = {"frame": step["frame"], "feat_fwd": step["feat_prev"], "feat_bwd": step["feat_prev"]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        variants = {
            "fp32": ("fp32", Int8Options()),
            "fp16": ("fp16", Int8Options()),
            "int8 (tensorrt conventions)": ("int8", Int8Options()),
            "int8 (--int8-target cpu)": ("int8", Int8Options(target="cpu")),
        }
        for i, (label, (precision, int8)) in enumerate(variants.items()):
            art = artifact_from_model(model, tmp / str(i), source={"kind": "default"}, precision=precision, int8=int8,
                                      calibration=DEFAULT_SET)  # fmt: skip
            ops = optimized_ops(art / "forward.onnx", tmp / f"opt{i}.onnx")
            keys = ("Conv", "FusedConv", "QLinearConv", "QLinearAdd", "DequantizeLinear", "QuantizeLinear", "Cast")
            print(f"{label}: forward step {step_ms(art / 'forward.onnx', step):.1f} ms; optimized forward graph:",
                  {k: ops[k] for k in keys if ops[k]})  # fmt: skip
            if precision == "fp32":
                print(f"  fp32 fuse graph profile (% of kernel time): {fuse_profile(art / 'fuse.onnx', fuse)}")


if __name__ == "__main__":
    main()
