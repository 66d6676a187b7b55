"""How far from the single run is a segment whose forward state was warmed up over W frames?  A measurement.

One long clip is restored once whole (``runtime.driver.restore_stream``) and again split into segments on chunk
boundaries (``runtime.driver.restore_range``, what ``runtime.segments.SegmentJob`` runs): for each warm-up W
every segment after the first is compared with the single run (the first must be bit-identical), and the
exact mode (forward states recorded by a forward-only pass, ``runtime.driver.forward_states``) must give an
error of 0. Also timed: the forward-only pass against the full single run, which gives the exact mode's
ideal speed-up with P workers, T_single / (T_pass + T_single / P).

The default weights run through ONNX Runtime (what users run): the model is exported into a temporary folder.
The clip is real footage when ``--data`` names the X4K1000FPS clip folder (see its README): every clip, in name
order, blurred the GOPRO way (the average in linear light of ``--window`` consecutive 1000 fps frames, one
blurry frame every ``--stride`` frames), centre-cropped to the aspect of ``--size`` and downscaled to it in
linear light, quantised to 8 bits like decoded video, and concatenated; without ``--data``, held-out synthetic
clips (``training.samples``) are concatenated instead.

    nice -n 5 python experiments/segment_warmup.py --data X4K_DIR \\
        --json experiments/results/segment-warmup.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import onnxruntime
import torch
import torch.nn.functional as F

from pahs.bench_variants import cpu_description
from pahs_export.artifact import read_artifact
from pahs_export.onnx_export import artifact_from_model
from pahs_export.weights import resolve_model
from runtime.backends.ort_backend import OnnxRuntimeBackend
from runtime.driver import forward_states, restore_range, restore_stream
from runtime.segments import plan_segments
from training.highfps import VIDEO_SUFFIXES, blur
from training.samples import sample_clip

GAMMA = 2.2
TARGET_PSNR = 45.0  # dB: the default warm-up is the smallest W whose worst frame reaches it
WORKERS = (2, 4, 8, 16, 64)


def x4k_clip(folder: Path, width: int, height: int, window: int, stride: int) -> tuple[torch.Tensor, dict]:
    """Blurry frames [T,3,H,W] (k/255) from every clip of ``folder``, concatenated; and how they were made."""
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise SystemExit(f"expected video clips in {folder}, found none; pass the X4K1000FPS folder as --data")
    out, decode_seconds, decoded, source_size = [], 0.0, 0, None
    for path in clips:
        started = time.monotonic()
        with av.open(str(path)) as c:
            rgb = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        decode_seconds += time.monotonic() - started
        decoded += len(rgb)
        source_size = rgb[0].shape[1], rgb[0].shape[0]
        x = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float().div_(255).pow_(GAMMA)
        h, w = x.shape[-2:]
        crop = min(w, round(h * width / height))  # centre crop to the target aspect
        x = x[..., (w - crop) // 2 : (w - crop) // 2 + crop]
        small = F.interpolate(x, size=(height, width), mode="area").permute(0, 2, 3, 1).numpy()
        blurry, _ = blur(small, window, stride, GAMMA)
        out.append(torch.from_numpy(np.ascontiguousarray(blurry)).permute(0, 3, 1, 2))
    frames = torch.cat(out).clamp(0, 1).mul(255).round().div(255)
    how = {
        "kind": "x4k1000fps",
        "clips": [p.name for p in clips],
        "frames_per_clip": len(out[0]),
        "window": window,
        "stride": stride,
        "source_size": source_size,
        "decode_fps": decoded / decode_seconds,  # H.264 at source size to RGB: the cost of skipping frames
    }
    return frames, how


def synthetic_clip(width: int, height: int, frames: int, per_clip: int) -> tuple[torch.Tensor, dict]:
    parts, seed = [], 0
    while sum(len(p) for p in parts) < frames:
        parts.append(sample_clip(min(per_clip, frames - sum(len(p) for p in parts)), width, height, seed=seed))
        seed += 1
    clip = torch.cat(parts).clamp(0, 1).mul(255).round().div(255)
    return clip, {"kind": "synthetic held-out", "clips": len(parts), "frames_per_clip": per_clip}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a - b).double().pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def machine() -> dict:
    """The CPU model and its speed-relevant instruction sets (as pahs-bench reports them), and the load."""
    model, isa = cpu_description()
    return {
        "model": model,
        "cpus": os.cpu_count(),
        "instruction_sets": isa.split(),
        "load_average_at_start": os.getloadavg()[0],
    }


def timed(run):
    started = time.monotonic()
    out = run()
    return out, time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="the X4K1000FPS clip folder; without it, synthetic clips")
    ap.add_argument("--size", default="320x176", help="WxH of the frames restored")
    ap.add_argument("--window", type=int, default=7, help="X4K: sharp frames averaged per blurry frame")
    ap.add_argument("--stride", type=int, default=2, help="X4K: sharp frames between blurry frames")
    ap.add_argument("--frames", type=int, default=210, help="synthetic: frames in all")
    ap.add_argument("--segment-frames", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--lookahead", type=int, default=19)
    ap.add_argument("--warmups", default="0,2,4,8,16,32")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (1: a shared machine)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    k, n = args.chunk, args.lookahead
    warmups = [int(w) for w in args.warmups.split(",")]
    started_all = time.monotonic()
    cpu = machine()
    if args.data is not None:
        clip, content = x4k_clip(args.data, width, height, args.window, args.stride)
    else:
        clip, content = synthetic_clip(width, height, args.frames, 35)
    total = len(clip)
    print(f"{content['kind']}: {total} frames of {width}x{height}", flush=True)

    torch.set_num_threads(args.threads)
    model, source = resolve_model(None, None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = artifact_from_model(model, Path(tmp) / "art", source=source)
        backend = OnnxRuntimeBackend(read_artifact(folder), threads=args.threads)
    plan = plan_segments(total, args.segment_frames, k, n)
    starts = [s.start for s in plan[1:]]

    with torch.no_grad():
        single, single_seconds = timed(lambda: torch.stack(list(restore_stream(backend, iter(clip), n, k))))
        single = single.clamp(0, 1)
        # The forward-only pass, timed to each boundary and to the end; the states kept (copies) for the exact mode.
        states, stamps = {}, {}
        started = time.monotonic()
        for t, (h, f) in forward_states(backend, iter(clip), [*starts, total]):
            stamps[t] = time.monotonic() - started
            states[t] = (h.clone(), f.clone())
        pass_seconds = stamps[max(starts)]  # what the exact mode runs: up to the last segment's start
        forward_seconds = stamps[total]

        def run_segment(seg, warmup, state=None):
            first = seg.start if state is not None else seg.first_read(warmup)
            frames = iter(clip[first : seg.read_end])
            return torch.stack(list(restore_range(backend, frames, seg.start, seg.end, seg.start - first, n, k, state)))

        exact_rows, exact_seconds = [], 0.0
        for seg in plan:
            out, seconds = timed(lambda seg=seg: run_segment(seg, 0, states.get(seg.start)))
            exact_seconds += seconds
            ref = single[seg.start : seg.end]
            exact_rows.append({"segment": seg.index, "bit_identical": torch.equal(out.clamp(0, 1), ref)})
        print(f"exact: all bit-identical {all(r['bit_identical'] for r in exact_rows)}", flush=True)

        rows = []
        for w in warmups:
            per_segment, seconds_w = [], 0.0
            worst_by_offset = [math.inf] * (plan[0].end - plan[0].start)
            for seg in plan:
                out, seconds = timed(lambda seg=seg, w=w: run_segment(seg, w))
                seconds_w += seconds
                out, ref = out.clamp(0, 1), single[seg.start : seg.end]
                if seg.index == 0:
                    first_identical = torch.equal(out, ref)
                    continue
                frame_psnr = [psnr(a, b) for a, b in zip(out, ref, strict=True)]
                for i, p in enumerate(frame_psnr):
                    worst_by_offset[i] = min(worst_by_offset[i], p)
                per_segment.append(
                    {
                        "segment": seg.index,
                        "frames": [seg.start, seg.end],
                        "max_abs": (out - ref).abs().max().item(),
                        "worst_psnr": min(frame_psnr),
                        "mean_psnr": float(np.mean([p for p in frame_psnr if math.isfinite(p)] or [math.inf])),
                        "frames_below_target": sum(p < TARGET_PSNR for p in frame_psnr),
                        "differing_8bit_values": (out.mul(255).round() != ref.mul(255).round()).float().mean().item(),
                    }
                )
            row = {
                "warmup": w,
                "first_segment_bit_identical": first_identical,
                "max_abs": max(s["max_abs"] for s in per_segment),
                "worst_psnr": min(s["worst_psnr"] for s in per_segment),
                "frames_below_target": sum(s["frames_below_target"] for s in per_segment),
                "differing_8bit_values": max(s["differing_8bit_values"] for s in per_segment),
                "worst_psnr_by_frame_offset": [round(p, 2) if math.isfinite(p) else None for p in worst_by_offset],
                "seconds": seconds_w,
                "segments": per_segment,
            }
            rows.append(row)
            print(
                f"W={w:>3}: first segment identical {first_identical}, max abs {row['max_abs']:.2e}, worst PSNR "
                f"{row['worst_psnr']:.2f} dB, frames below {TARGET_PSNR:g} dB {row['frames_below_target']}",
                flush=True,
            )

    chosen = next((r["warmup"] for r in rows if r["worst_psnr"] >= TARGET_PSNR), None)
    per_frame_full, per_frame_forward = single_seconds / total, forward_seconds / total
    results = {
        "command": "python experiments/segment_warmup.py"
        + (f" --data {args.data}" if args.data else "")
        + f" --size {args.size} --segment-frames {args.segment_frames} --chunk {k} --lookahead {n}",
        "model": {"preset": model.preset.name, "weights": source.get("path", source.get("kind"))},
        "backend": f"{backend.describe()}, onnxruntime {onnxruntime.__version__}, {args.threads} intra-op thread(s)",
        "cpu": cpu,
        "content": content,
        "frames": total,
        "size": [width, height],
        "chunk": k,
        "lookahead": n,
        "segments": [[s.start, s.end, s.read_end] for s in plan],
        "target_psnr": TARGET_PSNR,
        "smallest_warmup_reaching_target": chosen,
        "warmup": rows,
        "exact": {
            "bit_identical": all(r["bit_identical"] for r in exact_rows),
            "max_abs": 0.0 if all(r["bit_identical"] for r in exact_rows) else None,
            "segments_seconds": exact_seconds,
        },
        "timing": {
            "single_run_seconds": single_seconds,
            "single_run_per_frame": per_frame_full,
            "forward_pass_seconds_to_last_boundary": pass_seconds,
            "forward_pass_per_frame": per_frame_forward,
            "forward_share_of_full": per_frame_forward / per_frame_full,
            # With P workers on a long video, the pass (whole video) then one P-th of the restore each:
            "exact_ideal_speedup": {str(p): 1 / (per_frame_forward / per_frame_full + 1 / p) for p in WORKERS},
            "exact_speedup_limit": per_frame_full / per_frame_forward,
            # Warm-up mode: a segment of L frames costs L full frames plus W forward steps.
            "warmup_overhead_per_segment": {
                str(r["warmup"]): r["warmup"] * per_frame_forward / (args.segment_frames * per_frame_full) for r in rows
            },
        },
        "seconds": time.monotonic() - started_all,
    }
    print(json.dumps({k: v for k, v in results.items() if k not in ("warmup", "content")}, indent=1), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
