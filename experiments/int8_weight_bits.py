"""8-bit against 7-bit weights in the cpu-target INT8 graphs: quality and speed on this machine's CPU.

    python experiments/int8_weight_bits.py [CHECKPOINT]

Without VNNI (AVX2 only), ONNX Runtime's and OpenVINO's uint8 x int8 kernels add products in pairs into
saturating 16 bits, which 8-bit weights overflow. Each graph is verified over the held-out clips `pahs-export
verify` uses (60 frames at 128x80 and 60 at 208x112) against FP32 PyTorch, then one forward step at 640x352
is timed (median of 7 after 2 warm-ups, the two graphs interleaved). CHECKPOINT: default, the shipped
weights; the default calibration set.
"""

import argparse
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

BACKENDS = (OnnxRuntimeBackend, OpenVINOBackend)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", default=None, help="weights (default: the shipped pahs-t)")
    args = parser.parse_args(argv)
    print("CPU: {} ({})".format(*cpu_description()))
    model = load_model(args.checkpoint or default_checkpoint("pahs-t"))
    clips = [sample_pair(60, 128, 80, seed=0), sample_pair(60, 208, 112, seed=1)]
    with tempfile.TemporaryDirectory() as tmp:
        arts = {
            bits: read_artifact(
                artifact_from_model(
                    model,
                    Path(tmp) / str(bits),
                    source={"kind": "default"},
                    precision="int8",
                    int8=Int8Options(target="cpu", reduce_range=bits == 7),
                    calibration=DEFAULT_SET,
                )
            )
            for bits in (8, 7)
        }
        for bits, art in arts.items():
            for backend in BACKENDS:
                results = verify_backend(backend(art), model, clips, TOLERANCES["int8"])
                figures = "; ".join(
                    f"{r.width}x{r.height}: worst {r.worst_psnr:.2f} dB, below FP32 vs GT {r.gt_drop:.3f} dB"
                    for r in results
                )
                print(f"{bits}-bit weights, {backend.name}: {figures}", flush=True)
        inputs = [torch.rand(arts[8].geometry.shape(name, 1, 352, 640)) for name in ROLES["forward"].inputs]
        for backend in BACKENDS:
            opened = {bits: backend(art) for bits, art in arts.items()}
            seconds = interleaved_medians({bits: lambda b=b: b.run("forward", *inputs) for bits, b in opened.items()})
            medians = ", ".join(f"{bits}-bit {1000 * s:.1f} ms" for bits, s in seconds.items())
            print(f"forward step at 640x352, {backend.name}: {medians}", flush=True)


if __name__ == "__main__":
    main()
