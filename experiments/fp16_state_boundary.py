"""Does the carried state (h, feat) cross the graph boundary in FP32 or FP16?  A measurement.

ONNX Runtime's CPU provider keeps activations in FP32 between ops of an FP16 graph, so it cannot show
the effect; onnx.reference.ReferenceEvaluator executes the FP16 graph with FP16 tensors throughout
(pessimistic: numpy also accumulates in FP16). Both variants of the default weights' FP16 export run the
bidirectional loop over a held-out clip; every frame is compared with FP32 PyTorch.

    python experiments/fp16_state_boundary.py --frames 100 --size 48x32 --json experiments/results/fp16_state.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from onnx.reference import ReferenceEvaluator

from pahs_export import load_model
from pahs_export.onnx_export import artifact_from_model
from pahs_export.precision import Fp16Options
from pahs_export.weights import default_checkpoint
from training.samples import sample_pair


def run(folder: Path, clip: np.ndarray, hidden: int, channels: int) -> np.ndarray:
    ev = {r: ReferenceEvaluator(str(folder / f"{r}.onnx")) for r in ("forward", "backward", "fuse")}
    dtype = {i.name: i.type.tensor_type.elem_type for i in ev["forward"].proto_.graph.input}
    state_dtype = np.float16 if dtype["h_prev"] == 10 else np.float32  # 10 = TensorProto.FLOAT16
    frame_dtype = np.float16 if dtype["frame"] == 10 else np.float32
    t_total, _, h, w = clip.shape

    def zeros():
        return np.zeros((1, hidden, h // 4, w // 4), state_dtype), np.zeros((1, channels, h // 4, w // 4), state_dtype)

    hs, fs = zeros()
    fwd = []
    for t in range(t_total):
        hs, fs = ev["forward"].run(None, {"frame": clip[t : t + 1].astype(frame_dtype), "h_prev": hs, "feat_prev": fs})
        fwd.append(fs)
    hs, fs = zeros()
    out = [None] * t_total
    for t in reversed(range(t_total)):
        x = clip[t : t + 1].astype(frame_dtype)
        hs, fs = ev["backward"].run(None, {"frame": x, "h_prev": hs, "feat_prev": fs})
        out[t] = ev["fuse"].run(None, {"frame": x, "feat_fwd": fwd[t], "feat_bwd": fs})[0][0].astype(np.float32)
    return np.stack(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="48x32")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    model = load_model(default_checkpoint("pahs-t"))
    blurry, _ = sample_pair(args.frames, w, h, seed=11)
    with torch.no_grad():
        ref = model(blurry[None], lookahead=None)[0].clamp(0, 1).numpy()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, keep in (("state_fp32", True), ("state_fp16", False)):
            started = time.time()
            art = artifact_from_model(model, Path(tmp) / name, source={"kind": "default"}, precision="fp16",
                                      fp16=Fp16Options(keep_io_fp32=keep))  # fmt: skip
            out = np.clip(run(art, blurry.numpy(), model.preset.hidden, model.preset.channels), 0, 1)
            mse = ((out - ref) ** 2).reshape(len(out), -1).mean(axis=1)
            psnr = [10 * math.log10(1 / m) if m > 0 else math.inf for m in mse]
            third = len(psnr) // 3
            results[name] = {
                "min_psnr": min(psnr),
                "mean_psnr": float(np.mean(psnr)),
                "first_third_mean": float(np.mean(psnr[:third])),
                "last_third_mean": float(np.mean(psnr[-third:])),
                "per_frame": psnr,
                "seconds": time.time() - started,
            }
            print(name, {k: v for k, v in results[name].items() if k != "per_frame"}, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"frames": args.frames, "size": args.size, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
