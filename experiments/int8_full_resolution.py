"""The reconstructor's full-resolution resblocks in INT8 or in float: quality and speed.

    python experiments/int8_full_resolution.py [CHECKPOINT]

For each INT8 target (TensorRT's conventions, run as written; the cpu target), graphs with and without
``Int8Options.exclude_full_resolution`` are verified over the held-out clips `pahs-export verify` uses (60
frames at 128x80 and 60 at 208x112) against FP32 PyTorch, through ONNX Runtime; then one fuse step (the graph
holding the reconstructor) of the cpu target at 640x352 is timed through ONNX Runtime and OpenVINO (median of
7 after 2 warm-ups, the two graphs interleaved). CHECKPOINT: default, the shipped weights.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from calibration.data import DEFAULT_SET
from pahs.bench_variants import cpu_description
from pahs.verify import TOLERANCES, verify_backend
from pahs_export import load_model
from pahs_export.artifact import read_artifact
from pahs_export.contract import ROLES
from pahs_export.onnx_export import artifact_from_model
from pahs_export.precision import Int8Options
from pahs_export.weights import default_checkpoint
from runtime.backends.openvino_backend import OpenVINOBackend
from runtime.backends.ort_backend import OnnxRuntimeBackend
from runtime.bench.measure import interleaved_medians
from training.samples import sample_pair


def mean_psnr(result) -> float:
    return statistics.fmean(f.psnr for f in result.frames)


LABELS = {True: "full resolution in float", False: "full resolution in INT8"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", default=None, help="weights (default: the shipped pahs-t)")
    args = parser.parse_args(argv)
    print("CPU: {} ({})".format(*cpu_description()))
    checkpoint = args.checkpoint or default_checkpoint("pahs-t")
    print(f"weights: {checkpoint}")
    model = load_model(checkpoint)
    clips = [sample_pair(60, 128, 80, seed=0), sample_pair(60, 208, 112, seed=1)]
    with tempfile.TemporaryDirectory() as tmp:
        arts = {}
        for target in ("tensorrt", "cpu"):
            for excluded in (False, True):
                art = read_artifact(
                    artifact_from_model(
                        model,
                        Path(tmp) / f"{target}-{excluded}",
                        source={"kind": "default"},
                        precision="int8",
                        int8=Int8Options(target=target, exclude_full_resolution=excluded),
                        calibration=DEFAULT_SET,
                    )
                )
                arts[target, excluded] = art
                results = verify_backend(OnnxRuntimeBackend(art), model, clips, TOLERANCES["int8"])
                figures = "; ".join(
                    f"{r.width}x{r.height}: worst {r.worst_psnr:.2f} dB, mean {mean_psnr(r):.2f} dB, "
                    f"below FP32 vs GT {r.gt_drop:.3f} dB"
                    for r in results
                )
                print(f"{target}, {LABELS[excluded]}: {figures}", flush=True)
        geometry = arts["cpu", False].geometry
        inputs = [torch.rand(geometry.shape(name, 1, 352, 640)) for name in ROLES["fuse"].inputs]
        for backend in (OnnxRuntimeBackend, OpenVINOBackend):
            opened = {excluded: backend(arts["cpu", excluded]) for excluded in (False, True)}
            seconds = interleaved_medians({e: lambda b=b: b.run("fuse", *inputs) for e, b in opened.items()})
            medians = ", ".join(f"{LABELS[e]} {1000 * s:.1f} ms" for e, s in seconds.items())
            print(f"fuse step at 640x352, cpu target, {backend.name}: {medians}", flush=True)


if __name__ == "__main__":
    main()
