"""FP16 and INT8 artifacts of the default pahs-t weights through OpenVINO and ONNX Runtime, against FP32 PyTorch.

Every frame of the verification clips of `pahs-export verify` (held-out synthetic content, 60 frames at 128x80
and 208x112): worst PSNR against FP32 and the mean PSNR lost against ground truth. Run:
`python experiments/openvino_precision.py` (writes experiments/results/openvino-precision.json).

The OpenVINO backend refuses INT8 graphs made with TensorRT's conventions (this experiment is why); to measure
what that refusal avoids, the script hands it such an artifact relabelled as CPU-target (the graphs unchanged).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

from calibration.data import DEFAULT_SET
from pahs.verify import DEFAULT_SIZES, TOLERANCES, verify_backend
from pahs_export import load_model
from pahs_export.artifact import read_artifact
from pahs_export.onnx_export import artifact_from_model
from pahs_export.precision import Int8Options
from pahs_export.weights import default_checkpoint
from runtime.backends.openvino_backend import OpenVINOBackend
from runtime.backends.ort_backend import OnnxRuntimeBackend
from training.samples import sample_pair

VARIANTS = {"fp16": ("fp16", None), "int8": ("int8", "tensorrt"), "int8-cpu": ("int8", "cpu")}


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    checkpoint = default_checkpoint("pahs-t")
    model = load_model(checkpoint)
    weights = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:12]  # which default weights were measured
    clips = [sample_pair(60, w, h, seed=i) for i, (w, h) in enumerate(DEFAULT_SIZES)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (precision, target) in VARIANTS.items():
            out = artifact_from_model(
                model, Path(tmp) / name, source={"kind": "default"}, precision=precision,
                int8=Int8Options(target=target or "tensorrt"), calibration=DEFAULT_SET,
            )  # fmt: skip
            art = read_artifact(out)
            if target == "tensorrt":  # relabelled for the OpenVINO backend only (see the module docstring)
                details = {r: {**d, "target": "cpu"} for r, d in art.manifest.precision_details.items()}
                relabelled = dataclasses.replace(
                    art, manifest=dataclasses.replace(art.manifest, precision_details=details)
                )
            else:
                relabelled = art
            for backend in (OnnxRuntimeBackend(art), OpenVINOBackend(relabelled)):
                seqs = verify_backend(backend, model, clips, TOLERANCES[precision])
                row = {
                    "worst_psnr_vs_fp32": min(s.worst_psnr for s in seqs),
                    "gt_drop_db": max(s.gt_drop for s in seqs),
                    "passed": all(s.passed for s in seqs),
                }
                results[f"{backend.name} {name}"] = row | {"weights": weights}
                verdict = "pass" if row["passed"] else "FAIL"
                print(
                    f"{backend.name:<12} {name:<9} worst PSNR vs FP32 {row['worst_psnr_vs_fp32']:6.2f} dB, "
                    f"loss vs ground truth {row['gt_drop_db']:+.3f} dB, {verdict}"
                )
    path = Path(__file__).resolve().parents[1] / "results" / "openvino-precision.json"
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
