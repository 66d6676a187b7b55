"""The weights campaign's curve: suite gain per set against the hours of training on the new data.

    python experiments/campaign_curve.py [--json experiments/results/campaign2/curve.json]

Reads what is committed in experiments/results/ (nothing is trained or evaluated here): each run's `log.jsonl`
(experiments/results/campaign2/RUN/) for its training time, and the `pahs-eval --suite` report of each
checkpoint evaluated on the whole suite. A checkpoint's hours are those of its lineage: the runs it descends
from, each up to the step it was branched at (D starts from A's step 1600, E from D's end), counted from the
stage-3 weights, which saw none of the new data. Prints one row per checkpoint and the issue's stopping test:
what the last doubling of the lineage's training time added to the suite mean.

Time is wall time on the machine that ran it (2 cores), from the logs: `run_seconds` where the log has it
(pahs-train since the fourth session), otherwise each process's last `seconds` summed. Logs written before
`run_seconds` existed do not mark where a `--resume` process began; a record is taken to start a new process
when its `seconds` fell, or rose by less than MIN_SECONDS_PER_STEP per step since the previous record (less than
any step those runs took on their machine, more than any new process's start added: see the constant). Minutes a
run spent crawling beside test suites count as training time here, as the machine spent them (about an hour of
A's first 109 steps).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CAMPAIGN = RESULTS / "campaign2"
# Legacy logs: a record whose seconds rose by less than this per step since the previous one began a new process.
# Every log without run_seconds (A-F) comes from the 2-core AVX2 EPYC, where a pahs-t step takes 2.3 s at best (pahs-tw
# 1.44x) and a new process's first record rose by at most 0.95 s per step over the previous process's last.
MIN_SECONDS_PER_STEP = 1.5
ROWS = ("x4k", "set8", "davis", "set14", "synthetic")


@dataclass(frozen=True)
class Checkpoint:
    """A set of weights evaluated on the whole suite."""

    label: str
    lineage: tuple[tuple[str, int], ...]  # (run folder under campaign2/, its last step used), oldest first
    report: str  # its `pahs-eval --suite --json` report, under experiments/results/
    main_line: bool = True  # on the line the long run continues (stage 3, A and what descends from it)


# Lineages the later checkpoints share: E@1400's, then G@1200's, then run H's whole 700 steps, then I to step
# 2300 (the last member of the shipped mean of I@1600-2300, where run J started).
LINE_E = (("A-stage3", 1600), ("D-anneal", 400), ("E-rebal", 1400))
LINE_G = (*LINE_E, ("G-lowlr", 1200))
LINE_H = (*LINE_G, ("H-crop128", 700))
LINE_I = (*LINE_H, ("I-fromH", 2300))

CHECKPOINTS = (
    Checkpoint("stage 3 (start of A, C)", (), "suite-pahs-t-stage3.json"),
    Checkpoint("stage 4b, shipped before E (start of B)", (), "suite-pahs-t-stage4b.json", main_line=False),
    Checkpoint("A, step 1000", (("A-stage3", 1000),), "campaign2/suite-A-stage3-step1000.json"),
    Checkpoint("B, step 1000", (("B-shipped", 1000),), "campaign2/suite-B-shipped-step1000.json", main_line=False),
    Checkpoint(
        "D: A@1600, annealed 400", (("A-stage3", 1600), ("D-anneal", 400)), "campaign2/suite-D-anneal-step400.json"
    ),
    Checkpoint(
        "E: D, then 1400 steps (shipped 2026-12-07 until the mean of I)",
        LINE_E,
        "campaign2/suite-E-rebal-step1400.json",
    ),
    Checkpoint(
        "G: E, then 1200 steps (not shipped)",
        LINE_G,
        "campaign2/suite-G-lowlr-step1200.json",
    ),
    Checkpoint(  # the mean of E@1400 and G@1200 (training.average): trained as long as G@1200
        "mean of E@1400 and G@1200 (not shipped)",
        LINE_G,
        "campaign2/suite-avg-E1400-G1200.json",
    ),
    Checkpoint(
        "I: G@1200, H's 700 steps, then 1600 steps",
        (*LINE_H, ("I-fromH", 1600)),
        "campaign2/suite-I-fromH-step1600.json",
    ),
    Checkpoint(  # the mean of I's eight checkpoints at steps 1600, 1700, ..., 2300 (training.average)
        "mean of I@1600-2300 (shipped)",
        LINE_I,
        "campaign2/suite-avg-I1600-2300.json",
    ),
    Checkpoint(  # the mean of I's fifteen checkpoints at steps 1600, 1700, ..., 3000, the end of its schedule
        "mean of I@1600-3000 (not shipped)",
        (*LINE_H, ("I-fromH", 3000)),
        "campaign2/suite-avg-I1600-3000.json",
    ),
    Checkpoint(  # J: from the shipped mean (its lineage ends at I@2300), a 2000-step cosine from 1e-5
        "J: the mean of I@1600-2300, then 2000 steps",
        (*LINE_I, ("J-frommean", 2000)),
        "campaign2/suite-J-frommean-step2000.json",
    ),
    Checkpoint(  # the mean of J's eleven checkpoints at steps 1000, 1100, ..., 2000
        "mean of J@1000-2000",
        (*LINE_I, ("J-frommean", 2000)),
        "campaign2/suite-avg-J1000-2000.json",
    ),
)


def records(run: str) -> list[dict]:
    """A run's log records, in order."""
    lines = (CAMPAIGN / run / "log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def seconds_to(run: str, step: int | None = None) -> float:
    """Training seconds a run spent up to ``step`` (its last record's step when None), over all its processes."""
    log = records(run)
    if step is not None and not any(r["step"] == step for r in log):
        raise SystemExit(f"expected a record of step {step} in {run}'s log, found steps {[r['step'] for r in log]}")
    total, previous = 0.0, None
    for record in log:
        if step is not None and record["step"] > step:
            break
        if "run_seconds" in record:
            total, previous = record["run_seconds"], None
            continue
        if previous is not None:
            new_process = record["seconds"] < previous["seconds"] + MIN_SECONDS_PER_STEP * (
                record["step"] - previous["step"]
            )
            if not new_process:
                total -= previous["seconds"]  # the same process: its latest record replaces the previous one
        total += record["seconds"]
        previous = record
    return total


def curve(checkpoints: tuple[Checkpoint, ...] = CHECKPOINTS) -> list[dict]:
    """One entry per checkpoint: hours and steps of its lineage, and its suite gains (dB)."""
    rows = []
    for c in checkpoints:
        report = json.loads((RESULTS / c.report).read_text())
        hours = sum(seconds_to(run, step) for run, step in c.lineage) / 3600
        steps = sum(step for _, step in c.lineage)
        gains = {name: report["rows"][name]["gain"] for name in ROWS}
        point = {"label": c.label, "hours": hours, "steps": steps, "mean": report["suite_mean_gain"], **gains}
        rows.append({**point, "main_line": c.main_line})
    return rows


def last_doubling(points: list[dict]) -> tuple[float, float, float] | None:
    """(H/2, H, gain added) for the longest-trained point at H hours and the suite mean at H/2, linearly
    interpolated between the points of that lineage (each a prefix of it); None without an earlier point."""
    line = sorted(points, key=lambda p: p["hours"])
    end = line[-1]
    half = end["hours"] / 2
    below = [p for p in line if p["hours"] <= half]
    above = [p for p in line if p["hours"] >= half]
    if not below or not above:
        return None
    a, b = below[-1], above[0]
    at_half = (
        a["mean"] if b is a else a["mean"] + (b["mean"] - a["mean"]) * (half - a["hours"]) / (b["hours"] - a["hours"])
    )
    return half, end["hours"], end["mean"] - at_half


def total_hours() -> float:
    """Hours of training on the new data, every run of the campaign summed."""
    runs = sorted(p.name for p in CAMPAIGN.iterdir() if (p / "log.jsonl").is_file())
    return sum(seconds_to(run) for run in runs) / 3600


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write the curve as JSON")
    args = p.parse_args(argv)
    points = curve()
    print(f"{'checkpoint':<42}{'hours':>6}{'steps':>7}{'mean':>7}" + "".join(f"{r:>10}" for r in ROWS))
    for pt in points:
        print(
            f"{pt['label']:<42}{pt['hours']:>6.2f}{pt['steps']:>7}{pt['mean']:>+7.2f}"
            + "".join(f"{pt[r]:>+10.2f}" for r in ROWS)
        )
    doubling = last_doubling([pt for pt in points if pt["main_line"]])
    total = total_hours()
    print(f"training on the new data, all runs: {total:.2f} h")
    if doubling:
        print(f"last doubling on the main line: {doubling[0]:.2f} h -> {doubling[1]:.2f} h added {doubling[2]:+.3f} dB")
    if args.json:
        out = {"points": points, "total_hours": total, "last_doubling": doubling}
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
