"""Which group of layers adds most INT8 noise: each kept in float in turn, on top of the default exclusions.

    python experiments/int8_groups.py [CHECKPOINT] [--target tensorrt|cpu]

The full-resolution resblocks are quantized in the baseline ("none") here, as they were before they became
a default exclusion. Each variant is verified on the held-out 128x80 clip of `pahs-export verify` (60
frames) against FP32 PyTorch through ONNX Runtime. CHECKPOINT: default, the shipped weights.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import pahs_export.precision as precision
from calibration.data import DEFAULT_SET
from pahs.verify import TOLERANCES, verify_backend
from pahs_export import load_model
from pahs_export.artifact import read_artifact
from pahs_export.onnx_export import artifact_from_model
from pahs_export.precision import Int8Options
from pahs_export.weights import default_checkpoint
from runtime.backends.ort_backend import OnnxRuntimeBackend
from training.samples import sample_pair

GROUPS = {  # node-name parts of each group (the TorchScript exporter's scopes)
    "none": (),
    "reconstructor": ("/reconstructor/",),
    "reconstructor full-resolution resblocks": ("/reconstructor/body/body.3/",),
    "fusion + hidden-state extractor": ("/fusion/", "/hidden_extractor/"),
    "feature extractor": ("/extractor/",),
    "PPRNN": ("/pprnn/",),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--target", default="tensorrt", choices=("tensorrt", "cpu"))
    args = parser.parse_args(argv)
    model = load_model(args.checkpoint or default_checkpoint("pahs-t"))
    clips = [sample_pair(60, 128, 80, seed=0)]
    default_exclusions = precision.int8_exclusions
    for label, parts in GROUPS.items():

        def exclusions(proto, options, parts=parts):
            names = default_exclusions(proto, options)
            return names + [n.name for n in proto.graph.node if any(p in n.name for p in parts) and n.name not in names]

        precision.int8_exclusions = exclusions  # an experiment's shortcut: the export reads it at call time
        options = Int8Options(target=args.target, exclude_full_resolution=False)
        with tempfile.TemporaryDirectory() as tmp:
            art = read_artifact(
                artifact_from_model(
                    model,
                    Path(tmp) / "int8",
                    source={"kind": "default"},
                    precision="int8",
                    int8=options,
                    calibration=DEFAULT_SET,
                )
            )
            (r,) = verify_backend(OnnxRuntimeBackend(art), model, clips, TOLERANCES["int8"])
        mean = statistics.fmean(f.psnr for f in r.frames)
        print(f"{label}: worst {r.worst_psnr:.2f} dB, mean {mean:.2f} dB, below FP32 vs GT {r.gt_drop:.3f} dB")


if __name__ == "__main__":
    main()
