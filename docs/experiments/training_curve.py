"""Held-out gain of the pahs-t weights against the training time spent on them: the campaign's curve.

    python docs/experiments/training_curve.py [--json docs/results/training-curve.json]
                                              [--png docs/results/training-curve.png]

Reads the committed `pahs-eval` reports (docs/results/eval-*.json) of each checkpoint on the shipped weights'
lineage, in training order, and prints, per checkpoint, the cumulative training steps, the hours of a 2-core
machine they took, and the gain over the blurry input on the 14 held-out synthetic sequences and on the 15
held-out real X4K sequences. Nothing is trained or evaluated here; the reports are what `pahs-eval` wrote.

Hours are steps times each stage's seconds per step on the machine that ran it (2 threads): stages 1-3 their
logged wall time over their steps (AVX-512 machines, bf16 from stage 2 on); the real-footage stages 3.3 s/step,
measured with nothing else running on the AVX2 EPYC (their logged wall time is inflated by other jobs sharing
the two cores). The untrained model is the identity (last convolution zero-initialised): 0 dB by construction.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"

# seconds per training step (batch 4 x 5 frames x 96 px, 2 threads) of each stage, as measured
SECONDS_PER_STEP = {
    "1": 2526 / 1750,  # FP32, AVX-512 EPYC, logged wall time
    "2": 5817 / 4500,  # bf16 autocast + channels_last, logged wall time
    "3": 7791 / 4000,  # bf16, part of it on one thread beside other work, logged wall time
    "4b": 3.3,  # FP32 on the AVX2 EPYC (no native bf16), X4K clips mixed in, measured alone
    "4c": 3.3,  # the same
}
TARGETS_DB = {"synthetic": 2.0, "x4k": 1.5}  # issue #17


@dataclass(frozen=True)
class Checkpoint:
    label: str
    stage: str  # key of SECONDS_PER_STEP
    steps: int  # steps trained in this stage up to this checkpoint
    synthetic: str | None  # pahs-eval report on the held-out synthetic set, under docs/results
    x4k: str | None  # pahs-eval report on the held-out real X4K clips


# The lineage of the shipped weights, then the runs continuing it. Stages restart a cosine schedule from the
# previous stage's weights; steps accumulate along the lineage.
LINEAGE = [
    Checkpoint("stage 1", "1", 1750, "eval-pahs-t-stage1.json", "eval-x4k-pahs-t-stage1.json"),
    Checkpoint("stage 2", "2", 4500, "eval-pahs-t-stage2.json", "eval-x4k-pahs-t-stage2.json"),
    Checkpoint("stage 3", "3", 4000, "eval-pahs-t-stage3.json", "eval-x4k-pahs-t-stage3.json"),
    Checkpoint("stage 4b, step 750", "4b", 750, "eval-pahs-t-stage4b-750.json", "eval-x4k-pahs-t-stage4b-750.json"),
    Checkpoint("stage 4b, step 1500", "4b", 1500, "eval-pahs-t-stage4b-1500.json", "eval-x4k-pahs-t-stage4b-1500.json"),
    Checkpoint("stage 4c, step 1500", "4c", 1500, "eval-pahs-t-stage4c-1500.json", "eval-x4k-pahs-t-stage4c-1500.json"),
]


def gain(report: str | None) -> tuple[float, dict[str, float]] | None:
    """Overall and per-blur-magnitude gain (dB, restored minus blurry PSNR) of one pahs-eval report."""
    if report is None:
        return None
    data = json.loads((RESULTS / report).read_text())
    # reports older than the blur-magnitude groups have the overall figure only
    groups = {name: g["restored_psnr"] - g["blurry_psnr"] for name, g in data.get("groups", {}).items()}
    overall = data["overall"]
    return overall["restored_psnr"] - overall["blurry_psnr"], groups


def curve() -> list[dict]:
    rows = [{"label": "untrained (identity)", "steps": 0, "hours": 0.0, "synthetic_db": 0.0, "x4k_db": 0.0}]
    steps, seconds, stage_start = 0, 0.0, (0, 0.0)
    previous_stage = None
    for c in LINEAGE:
        if c.stage != previous_stage:  # a new stage starts from the end of the previous one
            stage_start, previous_stage = (steps, seconds), c.stage
        steps = stage_start[0] + c.steps
        seconds = stage_start[1] + c.steps * SECONDS_PER_STEP[c.stage]
        row: dict = {"label": c.label, "steps": steps, "hours": seconds / 3600}
        for key, report in (("synthetic", c.synthetic), ("x4k", c.x4k)):
            g = gain(report)
            row[f"{key}_db"] = None if g is None else g[0]
            row[f"{key}_db_by_blur"] = None if g is None else g[1]
            row[f"{key}_report"] = report
        rows.append(row)
    return rows


def doubling_gains(rows: list[dict], key: str, start: int) -> list[dict]:
    """Gain added between consecutive checkpoints after ``rows[start]``, per doubling of the training time
    counted from ``rows[start]``. The first checkpoint after ``rows[start]`` is only a base: its own gain over
    ``rows[start]`` has no doubling to divide by (time counted from ``rows[start]`` starts at zero)."""
    hours0, out = rows[start]["hours"], []
    points = [r for r in rows[start + 1 :] if r[key] is not None]
    for before, after in itertools.pairwise(points):
        doublings = math.log2((after["hours"] - hours0) / (before["hours"] - hours0))
        out.append(
            {"from": before["label"], "to": after["label"], "db": after[key] - before[key], "doublings": doublings}
        )
    return out


def projections(last_db: float, steps: list[dict], target: float) -> dict:
    """Where the gain goes with more doublings of training time, from the last two per-doubling rates:
    ``limit_db`` if each doubling adds the same fraction of the one before (a geometric series: what the rates
    measured so far do), and ``doublings_to_target`` if each adds as much as the last (optimistic)."""
    rates = [s["db"] / s["doublings"] for s in steps]
    out: dict = {"db_per_doubling": rates}
    if rates and rates[-1] > 0:
        out["doublings_to_target_at_the_last_rate"] = (target - last_db) / rates[-1]
    if len(rates) >= 2 and 0 < rates[-1] < rates[-2]:
        ratio = rates[-1] / rates[-2]
        out["ratio"] = ratio
        out["limit_db"] = last_db + rates[-1] * ratio / (1 - ratio)
    return out


def plot(rows: list[dict], path: Path, real_from: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    for key, name, colour in (
        ("synthetic_db", "held-out synthetic (14)", "tab:blue"),
        ("x4k_db", "held-out real X4K (15)", "tab:red"),
    ):
        points = [r for r in rows if r[key] is not None]
        ax.plot([r["hours"] for r in points], [r[key] for r in points], "o-", color=colour, label=name)
    for key, colour in (("synthetic", "tab:blue"), ("x4k", "tab:red")):
        ax.axhline(TARGETS_DB[key], color=colour, ls="--", lw=1)
    ax.axvline(real_from, color="grey", ls=":", lw=1)
    ax.text(real_from, 0.05, " real footage\n joins training", color="grey", fontsize=8, va="bottom")
    ax.set_xlabel("training time (hours of a 2-core CPU machine)")
    ax.set_ylabel("gain over the blurry input (dB)")
    ax.set_title("pahs-t: held-out gain against training time (dashed: targets)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the curve as JSON")
    parser.add_argument("--png", type=Path, default=None, help="also plot it")
    args = parser.parse_args()
    rows = curve()
    print(f"{'checkpoint':<22} {'steps':>6} {'hours':>6} {'synthetic':>10} {'real X4K':>9}")
    for r in rows:
        syn = "" if r["synthetic_db"] is None else f"{r['synthetic_db']:+.2f}"
        x4k = "" if r["x4k_db"] is None else f"{r['x4k_db']:+.2f}"
        print(f"{r['label']:<22} {r['steps']:>6} {r['hours']:>6.2f} {syn:>10} {x4k:>9}")
    real_start = next(i for i, r in enumerate(rows) if r["label"].startswith("stage 4")) - 1
    steps = doubling_gains(rows, "x4k_db", real_start)
    last = rows[-1]
    projection = projections(last["x4k_db"], steps, TARGETS_DB["x4k"])
    summary = {
        "targets_db": TARGETS_DB,
        "seconds_per_step": SECONDS_PER_STEP,
        "checkpoints": rows,
        "x4k_since_real_footage": {"steps": steps, **projection},
    }
    print(
        f"real X4K, after real footage joined training ({rows[real_start]['label']}, "
        f"{rows[real_start]['hours']:.2f} h):"
    )
    for step, rate in zip(steps, projection["db_per_doubling"], strict=True):
        print(
            f"  {step['from']} -> {step['to']}: {step['db']:+.2f} dB in {step['doublings']:.2f} doublings "
            f"({rate:+.2f}/doubling)"
        )
    if "limit_db" in projection:
        print(
            f"  each doubling adds {projection['ratio']:.2f}x the one before: the gain tends to "
            f"{projection['limit_db']:+.2f} dB (target {TARGETS_DB['x4k']:+.1f})"
        )
    if "doublings_to_target_at_the_last_rate" in projection:
        n = projection["doublings_to_target_at_the_last_rate"]
        hours = rows[real_start]["hours"] + (last["hours"] - rows[real_start]["hours"]) * 2**n
        projection["hours_to_target_at_the_last_rate"] = hours
        print(
            f"  even if every further doubling added {projection['db_per_doubling'][-1]:+.2f} dB: {n:.1f} more "
            f"doublings, {hours:.0f} hours in all"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if args.png:
        plot(rows, args.png, rows[real_start]["hours"])


if __name__ == "__main__":
    main()
