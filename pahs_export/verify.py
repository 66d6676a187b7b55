"""Parity of an exported artifact with the PyTorch reference, frame by frame over a whole sequence.

Recurrent error accumulates, so parity is checked over long sequences (default 30 frames) at sizes other
than the one the graphs were traced at, plus one step per graph with ``onnx.reference`` (pure numpy,
independent of ONNX Runtime) on a tiny size.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .artifact import ROLES, Artifact
from .model import PAHS


@dataclass(frozen=True)
class Tolerance:
    """What a backend/precision must achieve against the FP32 PyTorch reference, at every frame."""

    max_abs: float | None = None  # largest |backend - reference| over all pixels of a frame (values in [0, 1])
    min_psnr: float | None = None  # PSNR of a frame against the reference, dB, peak 1.0

    def describe(self) -> str:
        parts = [f"max abs error <= {self.max_abs:g}"] if self.max_abs is not None else []
        parts += [f"PSNR >= {self.min_psnr:g} dB"] if self.min_psnr is not None else []
        return " and ".join(parts)


# Per precision, against the FP32 PyTorch reference.
TOLERANCES: dict[str, Tolerance] = {"fp32": Tolerance(max_abs=1e-4)}


@dataclass(frozen=True)
class FrameResult:
    index: int
    max_abs: float  # max |out - ref| over the frame
    psnr: float  # dB against the reference, peak 1.0 (inf when identical)


@dataclass
class SequenceResult:
    """Per-frame comparison of one clip at one size."""

    width: int
    height: int
    frames: list[FrameResult]
    passed: bool = False

    @property
    def worst_max_abs(self) -> float:
        return max(f.max_abs for f in self.frames)

    @property
    def worst_psnr(self) -> float:
        return min(f.psnr for f in self.frames)

    @property
    def drift(self) -> float:
        """Median max-abs error of the last third of the frames over that of the first third (1 = no growth)."""
        third = max(1, len(self.frames) // 3)
        first = statistics.median(f.max_abs for f in self.frames[:third])
        last = statistics.median(f.max_abs for f in self.frames[-third:])
        return last / first if first > 0 else (1.0 if last == 0 else math.inf)


@dataclass
class VerifyReport:
    backend: str
    precision: str
    tolerance: Tolerance
    sequences: list[SequenceResult] = field(default_factory=list)
    reference_evaluator: dict[str, float] = field(default_factory=dict)  # role -> max abs error of one step

    @property
    def passed(self) -> bool:
        ref_ok = all(err <= (self.tolerance.max_abs or 1e-4) for err in self.reference_evaluator.values())
        return ref_ok and all(s.passed for s in self.sequences)

    def to_json(self) -> dict:
        out = asdict(self)
        for seq, src in zip(out["sequences"], self.sequences, strict=True):
            seq.update(worst_max_abs=src.worst_max_abs, worst_psnr=src.worst_psnr, drift=src.drift)
        out["passed"] = self.passed
        return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two float images with peak 1.0."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def compare_frames(out: torch.Tensor, ref: torch.Tensor) -> list[FrameResult]:
    """Per-frame max abs error and PSNR of ``out`` against ``ref``, both [T,3,H,W]."""
    return [FrameResult(t, (out[t] - ref[t]).abs().max().item(), psnr(out[t], ref[t])) for t in range(ref.shape[0])]


def judge(frames: list[FrameResult], tolerance: Tolerance) -> bool:
    ok_abs = tolerance.max_abs is None or all(f.max_abs <= tolerance.max_abs for f in frames)
    ok_psnr = tolerance.min_psnr is None or all(f.psnr >= tolerance.min_psnr for f in frames)
    return ok_abs and ok_psnr


def reference_evaluator_check(artifact: Artifact, model: PAHS, height: int = 32, width: int = 32) -> dict[str, float]:
    """Run one step of every graph with ``onnx.reference.ReferenceEvaluator``; max abs error per role."""
    from onnx.reference import ReferenceEvaluator

    from .onnx_export import example_inputs

    errors = {}
    for role, path in artifact.graphs.items():
        spec = ROLES[role]
        inputs = example_inputs(model, role, 1, height, width)
        evaluator = ReferenceEvaluator(str(path))
        got = evaluator.run(None, {n: x.numpy() for n, x in zip(spec.inputs, inputs, strict=True)})
        with torch.no_grad():
            want = getattr(model, spec.method)(*inputs)
        want = want if isinstance(want, tuple) else (want,)
        errors[role] = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True))
    return errors


def verify_backend(backend, model: PAHS, clips: list[torch.Tensor], tolerance: Tolerance) -> list[SequenceResult]:
    """Drive ``backend`` over each clip [T,3,H,W] and compare with ``model`` frame by frame."""
    from runtime.loop import restore_clip

    results = []
    for clip in clips:
        with torch.no_grad():
            ref = model(clip[None], lookahead=None)[0]
        out = restore_clip(backend, clip).cpu()
        frames = compare_frames(out, ref)
        results.append(SequenceResult(clip.shape[-1], clip.shape[-2], frames, judge(frames, tolerance)))
    return results
