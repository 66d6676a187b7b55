"""The runtime's defaults and backend names, in a module that imports nothing heavy.

`pahs-run` builds its options (help texts, ``--backend`` choices) from these when it starts; keeping them
here, rather than beside the code that uses them (which imports torch), lets ``pahs-run --help``,
``--version`` and a mistyped option answer without importing torch. :mod:`runtime.driver`,
:mod:`runtime.segments` and :mod:`runtime.engines` use (and re-export) them.
"""

from __future__ import annotations

DEFAULT_CHUNK = 32  # frames restored per backward run: backward cost (32+19)/32 = 1.59 steps per frame

# Frames of forward warm-up before a segment. Measured in docs/SEGMENTS.md (docs/results/segment-warmup.json):
# W = 0 already reaches a worst PSNR of 45 dB against the single run there, by 0.75 dB, with errors up to 0.11;
# W = 8 keeps every error under half an 8-bit level; 16 doubles that margin (worst 130 dB) for content without
# the measured clip's frequent scene cuts, at the cost of 16 forward steps (about 5 frames' work) per segment.
DEFAULT_WARMUP = 16

# The backends, in the order `--help` lists them: the keys of runtime.engines.OPENERS (a test keeps them equal).
BACKENDS = ("torch", "onnxruntime", "tensorrt", "openvino")
# The backend that weights (the built-in ones, or --checkpoint) are exported for when none is named.
DEFAULT_WEIGHTS_BACKEND = "onnxruntime"
