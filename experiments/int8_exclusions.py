"""Which nodes to keep out of INT8, and which calibration: a measurement on the default weights.

    python experiments/int8_exclusions.py

INT8 graphs (TensorRT's conventions) with different exclusions and calibration methods, each verified over
the held-out clips `pahs-export verify` uses (60 frames at 128x80 and 60 at 208x112) against FP32 PyTorch.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from calibration.data import DEFAULT_SET
from pahs.verify import TOLERANCES, verify_backend
from pahs_export import load_model
from pahs_export.artifact import read_artifact
from pahs_export.onnx_export import artifact_from_model
from pahs_export.precision import Int8Options
from pahs_export.weights import default_checkpoint
from runtime.backends.ort_backend import OnnxRuntimeBackend
from training.samples import sample_pair

VARIANTS = {
    "nothing, minmax": Int8Options(exclude_attention=False, exclude_final_conv=False, method="minmax"),
    "attention path, minmax": Int8Options(exclude_final_conv=False, method="minmax"),
    "final conv + residual add, minmax": Int8Options(exclude_attention=False, method="minmax"),
    "both, minmax": Int8Options(method="minmax"),
    "both, percentile 99.999": Int8Options(method="percentile"),
}


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    model = load_model(default_checkpoint("pahs-t"))
    clips = [sample_pair(60, 128, 80, seed=0), sample_pair(60, 208, 112, seed=1)]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, options) in enumerate(VARIANTS.items()):
            out = Path(tmp) / str(i)
            art = read_artifact(
                artifact_from_model(
                    model, out, source={"kind": "default"}, precision="int8", int8=options, calibration=DEFAULT_SET
                )
            )
            res = verify_backend(OnnxRuntimeBackend(art), model, clips, TOLERANCES["int8"])
            worst = min(r.worst_psnr for r in res)
            mean = statistics.fmean(f.psnr for r in res for f in r.frames)
            drop = max(r.gt_drop for r in res)
            print(f"{label}: worst {worst:.2f} dB, mean {mean:.2f} dB, below FP32 vs GT {drop:.3f} dB")


if __name__ == "__main__":
    main()
