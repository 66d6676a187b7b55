"""Training recipes compared on a short horizon: held-out gain per CPU-hour of pahs-t.

Every recipe trains from the same weights (default: the shipped pahs-t ones) with the same seed and data
(synthetic clips; `--data DIR --layout x4k` mixes in real 1000 fps clips) for the same number of steps, then
`pahs-eval`'s held-out synthetic set scores it. The baseline is `pahs-train`'s defaults; each other recipe
changes one setting: learning rate 1e-3 with a 10% warm-up, 128-px crops, 7-frame clips, Charbonnier loss, and
the synthetic motion range of runs before large blur (25 px). A recipe's cost is its training wall time times
the threads it ran on (the machine's cores, nothing else running), so gain per CPU-hour compares recipes that
cost different amounts per step.

Resumable: each recipe is a `pahs-train` run folder under --work; a finished one is scored, not retrained.

    python experiments/train_recipes.py --steps 150 --json experiments/results/train-recipes.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from pahs.bench_variants import cpu_description
from pahs_export import load_model
from pahs_export.weights import default_checkpoint
from training.evaluate import EVAL_FRAMES, EVAL_SEQUENCES, EVAL_SIZE, evaluate, synthetic_sequences
from training.train import TrainConfig, load_train_state, train

RECIPES: dict[str, dict] = {
    "baseline": {},
    "lr 1e-3, warm-up": {"lr": 1e-3, "warmup": -10},  # negative: that percentage of the steps
    "crop 128": {"crop": 128},
    "7 frames": {"frames": 7},
    "charbonnier": {"loss": "charbonnier"},
    "motion up to 25 px": {"max_motion": 25.0},
}


def score(checkpoint: str | Path, frames: int = EVAL_FRAMES) -> dict:
    model = load_model(checkpoint, preset="pahs-t", bidirectional=True)
    report = evaluate(model, synthetic_sequences(EVAL_SEQUENCES, frames, *EVAL_SIZE))
    gain = {g: v["restored_psnr"] - v["blurry_psnr"] for g, v in report.groups.items()}
    o = report.overall
    return {"gain_db": o["restored_psnr"] - o["blurry_psnr"], "gain_db_by_blur": gain}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="steps per recipe (default 1500)")
    parser.add_argument("--init", default=None, help="start weights (default: the shipped pahs-t)")
    parser.add_argument("--data", default=None, help="x4k clips folder to mix in (default: synthetic only)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", type=Path, default=Path("runs/recipes"), help="run folders (resumable)")
    parser.add_argument("--only", nargs="*", default=None, help="recipe names to run (default: all)")
    parser.add_argument("--eval-frames", type=int, default=EVAL_FRAMES, help="fewer for a quick try of the script")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    init = args.init or str(default_checkpoint("pahs-t"))
    threads = torch.get_num_threads()
    base = TrainConfig(
        steps=args.steps, seed=args.seed, init=init, data=args.data, layout="x4k" if args.data else None,
        val_every=args.steps, workers=0,
    )  # fmt: skip
    model, isa = cpu_description()
    cpu = {"model": model, "cores": os.cpu_count(), "isa": isa.split()}
    results = {"cpu": cpu, "torch": torch.__version__, "threads": threads, "steps": args.steps}
    results["init"] = {"path": init, **score(init, args.eval_frames)}
    print(f"init: {results['init']['gain_db']:+.3f} dB", flush=True)
    results["recipes"] = {}
    for name, change in RECIPES.items():
        if args.only and name not in args.only:
            continue
        if change.get("warmup", 0) < 0:
            change = {**change, "warmup": args.steps * -change["warmup"] // 100}
        cfg = replace(base, **change)
        out = args.work / name.replace(" ", "-").replace(",", "")
        timing = out / "seconds.json"
        done = (out / "train_state.pt").is_file() and load_train_state(out / "train_state.pt")["step"] == cfg.steps
        if not done:
            started = time.monotonic()
            try:
                train(cfg, out, resume=True, progress=False)
            finally:  # a stopped recipe keeps the time it spent; the next call resumes it
                spent = time.monotonic() - started + (json.loads(timing.read_text()) if timing.is_file() else 0.0)
                timing.write_text(json.dumps(spent))
        seconds = json.loads(timing.read_text())
        row = {"settings": change, "train_seconds": seconds, "seconds_per_step": seconds / cfg.steps}
        row |= score(out / "last.safetensors", args.eval_frames)
        row["gain_over_init_db"] = row["gain_db"] - results["init"]["gain_db"]
        row["gain_over_init_db_per_cpu_hour"] = row["gain_over_init_db"] / (seconds * threads / 3600)
        results["recipes"][name] = row
        print(
            f"{name:<22} {row['seconds_per_step']:6.2f} s/step  gain {row['gain_db']:+.3f} dB "
            f"({row['gain_over_init_db']:+.3f} over init, {row['gain_over_init_db_per_cpu_hour']:+.3f} dB/CPU-h)",
            flush=True,
        )
        results["config"] = asdict(base)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
