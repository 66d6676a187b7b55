"""Seconds per training step of pahs-t on the CPU: FP32 vs bf16 autocast, default vs channels_last weights.

One fixed batch of 4 synthetic clips x 5 frames at 96x96 (the `pahs-train` defaults), L1 loss, Adam; one
warm-up step, then the median of 5 timed steps per variant, all in one run.

    python experiments/train_step_speed.py
"""

import argparse
import statistics
import time

import torch

from pahs_export.checkpoint import build_model
from training.synth import SynthConfig, make_clip


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    torch.manual_seed(0)
    clips = [make_clip(i, SynthConfig(height=96, width=96, frames=5)) for i in range(4)]
    blurry, sharp = torch.stack([b for b, _ in clips]), torch.stack([s for _, s in clips])
    results = {}
    for channels_last in (False, True):
        for bf16 in (False, True):
            model = build_model("pahs-t")
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            optimizer = torch.optim.Adam(model.parameters(), 3e-4)

            def step(model=model, optimizer=optimizer, bf16=bf16) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    restored = model(blurry, lookahead=19)
                loss = torch.nn.functional.l1_loss(restored.float(), sharp)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            step()
            times = []
            for _ in range(5):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            name = f"{'channels_last' if channels_last else 'default'} weights, {'bf16' if bf16 else 'fp32'}"
            results[name] = statistics.median(times)
    base = results["default weights, fp32"]
    for name, seconds in results.items():
        print(f"{name:<32} {seconds:6.3f} s/step  {base / seconds:4.2f}x")


if __name__ == "__main__":
    main()
