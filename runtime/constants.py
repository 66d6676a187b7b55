"""The runtime's defaults and backend names, in a module that imports nothing heavy.

`pahs-run` builds its options (help texts, ``--backend`` choices) from these when it starts; keeping them
here, rather than beside the code that uses them (which imports torch), lets ``pahs-run --help``,
``--version`` and a mistyped option answer without importing torch. :mod:`runtime.driver`,
:mod:`runtime.segments` and :mod:`runtime.engines` use (and re-export) them.
"""

from __future__ import annotations

DEFAULT_CHUNK = 32  # frames restored per backward run: backward cost (32+19)/32 = 1.59 steps per frame

# Frames of forward warm-up before a segment. Measured in docs/SEGMENTS.md (experiments/results/segment-warmup.json):
# W = 0 already reaches a worst PSNR of 45 dB against the single run there, by 0.75 dB, with errors up to 0.11;
# W = 8 keeps every error under half an 8-bit level; 16 doubles that margin (worst 130 dB) for content without
# the measured clip's frequent scene cuts, at the cost of 16 forward steps (about 5 frames' work) per segment.
DEFAULT_WARMUP = 16

# The backends, in the order `--help` lists them: the keys of runtime.engines.OPENERS (a test keeps them equal).
BACKENDS = ("torch", "onnxruntime", "tensorrt", "openvino")
# The CPU backend of ONNX graphs (an exported artifact, or weights exported on first use) when none is named, on
# x86-64: OpenVINO was the fastest that meets FP32 parity there (docs/BENCHMARKS.md: 2.09x torch eager against
# ONNX Runtime's 1.78x on an AVX2-only AMD EPYC, 2.39x against 2.54x, a tie, on an AVX-512 Intel Xeon; INT8 ahead
# on both). Elsewhere (ARM, or OpenVINO missing) and on CUDA devices ONNX Runtime runs them.
X86_64 = ("x86_64", "amd64", "x64")
# The INT8 graph conventions (`pahs-export onnx --int8-target`) whose output meets docs/PRECISION.md's targets on
# each ONNX backend: ONNX Runtime runs both as written (49-53 dB against FP32 at the worst frame); OpenVINO loses
# about 3 dB on TensorRT's (31.7 dB, experiments/openvino_precision.py), so it runs the CPU ones only.
# runtime.engines.default_backend picks by it, and the openvino backend refuses what it does not list.
INT8_TARGETS = {"onnxruntime": ("cpu", "tensorrt"), "openvino": ("cpu",)}


def default_onnx_backend(device: str | None = None) -> str:
    """The backend that runs ONNX graphs when none is named, for ``device`` (None: the CPU): openvino on an
    x86-64 CPU where it is installed, otherwise onnxruntime (CUDA devices included)."""
    import importlib.util
    import platform

    on_cpu = device is None or device == "cpu"
    if on_cpu and platform.machine().lower() in X86_64 and importlib.util.find_spec("openvino") is not None:
        return "openvino"
    return "onnxruntime"
