"""Held-out gain of the pahs-t weights against the training time spent on them: the campaign's curve.

    python experiments/training_curve.py [--json experiments/results/training-curve.json]
                                              [--png experiments/results/training-curve.png]

Reads the committed `pahs-eval` reports (experiments/results/eval-*.json) of each checkpoint on the shipped weights'
lineage and of the runs continuing it, and prints, per checkpoint, the cumulative training steps, the hours of
a 2-core machine they took, and the gain over the blurry input on the 14 held-out synthetic sequences and on the
15 held-out real X4K sequences. Nothing is trained or evaluated here; the reports are what `pahs-eval` wrote.

Hours are steps times each stage's seconds per step on the machine that ran it (2 threads): stages 1-3 their
logged wall time over their steps (AVX-512 machines, bf16 from stage 2 on); stages 4b and 4c 3.3 s/step,
measured with nothing else running on the AVX2 EPYC (their logged wall time is inflated by other jobs sharing
the two cores); stage 4d the logged wall time of its first 1500 steps, run alone on an AMX Xeon (bf16;
evaluations shared the cores later). As the stages ran on machines of different speeds, the returns of
real-footage training are counted per doubling of its steps, not of hours.
The untrained model is the identity (last convolution zero-initialised): 0 dB by construction.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# seconds per training step (batch 4 x 5 frames x 96 px, 2 threads) of each stage, as measured
SECONDS_PER_STEP = {
    "1": 2526 / 1750,  # FP32, AVX-512 EPYC, logged wall time
    "2": 5817 / 4500,  # bf16 autocast + channels_last, logged wall time
    "3": 7791 / 4000,  # bf16, part of it on one thread beside other work, logged wall time
    "4b": 3.3,  # FP32 on the AVX2 EPYC (no native bf16), X4K clips mixed in, measured alone
    "4c": 3.3,  # the same
    "4d": 987 / 1500,  # bf16 on the AMX Xeon, X4K clips mixed in, logged wall time of steps 1-1500 (alone)
}
TARGETS_DB = {"synthetic": 2.0, "x4k": 1.5}  # issue #17


@dataclass(frozen=True)
class Checkpoint:
    label: str
    stage: str  # key of SECONDS_PER_STEP
    steps: int  # steps trained in this stage up to this checkpoint
    synthetic: str | None  # pahs-eval report on the held-out synthetic set, under experiments/results
    x4k: str | None  # pahs-eval report on the held-out real X4K clips
    after: str | None = None  # label of the checkpoint a new stage starts from (None: the entry before it)
    # taken before its schedule's learning rate had decayed: plotted, but not used for the returns of training
    mid_schedule: bool = False


# The lineage of the shipped weights, then the runs continuing it. Stages restart a cosine schedule from the
# weights they start from; steps accumulate along the lineage. 4c and 4d both start from the shipped weights.
LINEAGE = [
    Checkpoint("stage 1", "1", 1750, "eval-pahs-t-stage1.json", "eval-x4k-pahs-t-stage1.json"),
    Checkpoint("stage 2", "2", 4500, "eval-pahs-t-stage2.json", "eval-x4k-pahs-t-stage2.json"),
    Checkpoint("stage 3", "3", 4000, "eval-pahs-t-stage3.json", "eval-x4k-pahs-t-stage3.json"),
    Checkpoint(
        "stage 4b, step 750",
        "4b",
        750,
        "eval-pahs-t-stage4b-750.json",
        "eval-x4k-pahs-t-stage4b-750.json",
        mid_schedule=True,
    ),
    Checkpoint("stage 4b, step 1500", "4b", 1500, "eval-pahs-t-stage4b-1500.json", "eval-x4k-pahs-t-stage4b-1500.json"),
    Checkpoint("stage 4c, step 1500", "4c", 1500, "eval-pahs-t-stage4c-1500.json", "eval-x4k-pahs-t-stage4c-1500.json"),
    *(
        Checkpoint(
            f"stage 4d, step {n}",
            "4d",
            n,
            f"eval-pahs-t-stage4d-{n}.json",
            f"eval-x4k-pahs-t-stage4d-{n}.json",
            after="stage 4b, step 1500",
            mid_schedule=n < 6000,
        )
        for n in (1500, 3000, 4500, 6000)
    ),
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
    """One row per checkpoint: cumulative steps and hours along its own lineage, the gains, and ``parent`` (the
    label of the checkpoint it was trained from)."""
    rows = [
        {"label": "untrained (identity)", "parent": None, "steps": 0, "hours": 0.0, "synthetic_db": 0.0, "x4k_db": 0.0}
    ]
    by_label = {rows[0]["label"]: rows[0]}
    last_of_stage: dict[str, dict] = {}
    start_of_stage: dict[str, dict] = {}  # the checkpoint each stage was trained from
    for c in LINEAGE:
        if c.stage not in start_of_stage:  # a new stage starts from the checkpoint named, or the entry before it
            start_of_stage[c.stage] = by_label[c.after] if c.after else rows[-1]
        start = start_of_stage[c.stage]
        parent = last_of_stage.get(c.stage, start)
        row: dict = {
            "label": c.label,
            "stage": c.stage,
            "parent": parent["label"],
            "steps": start["steps"] + c.steps,
            "hours": start["hours"] + c.steps * SECONDS_PER_STEP[c.stage] / 3600,
            "mid_schedule": c.mid_schedule,
        }
        for key, report in (("synthetic", c.synthetic), ("x4k", c.x4k)):
            g = gain(report)
            row[f"{key}_db"] = None if g is None else g[0]
            row[f"{key}_db_by_blur"] = None if g is None else g[1]
            row[f"{key}_report"] = report
        rows.append(row)
        by_label[c.label] = last_of_stage[c.stage] = row
    return rows


def path_to(rows: list[dict], label: str) -> list[dict]:
    """The checkpoints from the untrained model to ``label``, following each one's parent."""
    by_label = {r["label"]: r for r in rows}
    out = [by_label[label]]
    while out[-1]["parent"] is not None:
        out.append(by_label[out[-1]["parent"]])
    return out[::-1]


def doubling_gains(points: list[dict], key: str, steps0: int) -> list[dict]:
    """Gain added between consecutive ``points`` (in order of steps), per doubling of the training steps counted
    from ``steps0``. The first point is only a base: its own gain has no doubling to divide by."""
    out = []
    for before, after in itertools.pairwise(points):
        doublings = math.log2((after["steps"] - steps0) / (before["steps"] - steps0))
        out.append(
            {"from": before["label"], "to": after["label"], "db": after[key] - before[key], "doublings": doublings}
        )
    return out


def projections(last_db: float, steps: list[dict], target: float) -> dict:
    """Where the gain goes with more doublings of training, from the last two per-doubling rates:
    ``limit_db`` if each doubling adds the same fraction of the one before (a geometric series), and
    ``doublings_to_target`` if each adds as much as the last (optimistic)."""
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

    by_label = {r["label"]: r for r in rows}
    main = {r["label"] for r in path_to(rows, rows[-1]["label"])}
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    for key, name, colour in (
        ("synthetic_db", "held-out synthetic (14)", "tab:blue"),
        ("x4k_db", "held-out real X4K (15)", "tab:red"),
    ):
        points = [r for r in rows if r[key] is not None]
        for r in points:  # one segment from each checkpoint's parent: side branches show as such
            parent = by_label.get(r["parent"] or "")
            if parent is not None and parent[key] is not None:
                style = "-" if r["label"] in main else ":"
                ax.plot([parent["hours"], r["hours"]], [parent[key], r[key]], style, color=colour, lw=1.2)
        for mid in (False, True):
            some = [r for r in points if r.get("mid_schedule", False) == mid]
            ax.plot(
                [r["hours"] for r in some],
                [r[key] for r in some],
                "o",
                color=colour,
                mfc="white" if mid else colour,
                ms=4,
                label=None if mid else name,
            )
        for r in points:
            if r["label"] not in main:
                ax.annotate(r["stage"], (r["hours"], r[key]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for key, colour in (("synthetic", "tab:blue"), ("x4k", "tab:red")):
        ax.axhline(TARGETS_DB[key], color=colour, ls="--", lw=1)
    ax.axvline(real_from, color="grey", ls=":", lw=1)
    ax.text(real_from, 0.05, " real footage\n joins training", color="grey", fontsize=8, va="bottom")
    ax.set_xlabel("training time (hours of the 2-core CPU machine each stage ran on)")
    ax.set_ylabel("gain over the blurry input (dB)")
    ax.set_title("pahs-t: held-out gain against training time (dashed: targets; hollow: mid-schedule)", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the curve as JSON")
    parser.add_argument("--png", type=Path, default=None, help="also plot it")
    args = parser.parse_args(argv)
    rows = curve()
    print(f"{'checkpoint':<22} {'steps':>6} {'hours':>6} {'synthetic':>10} {'real X4K':>9}")
    for r in rows:
        syn = "" if r["synthetic_db"] is None else f"{r['synthetic_db']:+.2f}"
        x4k = "" if r["x4k_db"] is None else f"{r['x4k_db']:+.2f}"
        print(f"{r['label']:<22} {r['steps']:>6} {r['hours']:>6.2f} {syn:>10} {x4k:>9}")
    # The returns of real-footage training: the checkpoints at the end of a schedule, by how many steps of it
    # they had since stage 3 (4c and 4d both continue 4b; steps, not hours, as the machines differed).
    start = next(r for r in rows if r["label"] == "stage 3")
    points = sorted(
        (r for r in rows if r.get("stage", "").startswith("4") and not r["mid_schedule"] and r["x4k_db"] is not None),
        key=lambda r: r["steps"],
    )
    steps = doubling_gains(points, "x4k_db", start["steps"])
    last = points[-1]
    projection = projections(last["x4k_db"], steps, TARGETS_DB["x4k"])
    summary = {
        "targets_db": TARGETS_DB,
        "seconds_per_step": SECONDS_PER_STEP,
        "checkpoints": rows,
        "x4k_since_real_footage": {"points": [r["label"] for r in points], "steps": steps, **projection},
    }
    print("real X4K, per doubling of real-footage steps (schedule ends only):")
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
        real_steps = (last["steps"] - start["steps"]) * 2**n
        # at the fastest rate measured for real-footage training (the last stage's)
        hours = real_steps * SECONDS_PER_STEP[last["stage"]] / 3600
        projection["real_footage_steps_to_target_at_the_last_rate"] = real_steps
        projection["hours_to_target_at_the_last_rate"] = hours
        print(
            f"  even if every further doubling added {projection['db_per_doubling'][-1]:+.2f} dB: {n:.1f} more "
            f"doublings, {real_steps:.0f} steps of real-footage training, {hours:.0f} hours at "
            f"{SECONDS_PER_STEP[last['stage']]:.2f} s/step"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if args.png:
        plot(rows, args.png, start["hours"])


if __name__ == "__main__":
    main()
