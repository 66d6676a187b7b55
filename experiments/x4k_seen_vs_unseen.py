"""Gain of the same weights on the real X4K clips they trained on and on the held-out ones.

    python experiments/x4k_seen_vs_unseen.py DATA [CHECKPOINT] [--split train|heldout]

DATA: a folder of the X4K1000FPS test clips (33 frames of 1000 fps each). Both splits are blurred with the fixed
evaluation protocol (training.highfps: windows of 9, 17 and 25 frames, stride 4, 2x downscale) and
scored as `pahs-eval --layout x4k` scores the held-out ones. A gain much larger on the training clips than on
the held-out ones means the weights have learned those clips rather than real blur: more real footage, not
more steps, is what would raise the held-out figure. CHECKPOINT: default, the shipped weights. --split: one
split only (default both; the held-out one is what `pahs-eval --layout x4k` reports).
"""

import argparse

from pahs_export import load_model
from pahs_export.weights import default_checkpoint
from training.evaluate import evaluate
from training.highfps import protocol_sequences


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--split", choices=("train", "heldout"), default=None)
    args = parser.parse_args(argv)
    checkpoint = args.checkpoint or default_checkpoint("pahs-t")
    print(f"weights: {checkpoint}")
    model = load_model(checkpoint, preset="pahs-t", bidirectional=True)
    for split in (args.split,) if args.split else ("train", "heldout"):
        report = evaluate(model, protocol_sequences(args.data, split))
        for group, g in {**report.groups, "overall": report.overall}.items():
            print(
                f"{split:<8} {group:<8} {g['blurry_psnr']:.2f} -> {g['restored_psnr']:.2f} dB "
                f"(gain {g['restored_psnr'] - g['blurry_psnr']:+.2f}), SSIM {g['blurry_ssim']:.4f} -> "
                f"{g['restored_ssim']:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
