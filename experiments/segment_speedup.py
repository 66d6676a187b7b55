"""What `--segment-frames` gains in wall time on a real Ray cluster: a measurement, not a formula.

segment_warmup.py measures parity and derives the exact mode's *ideal* speed-up from the cost of its forward-only
pass; this script times the real commands instead. One clip (held-out synthetic content, `training.samples`,
written losslessly) is restored by `pahs-run` in fresh processes, in this order, repeated ``--reps`` times:

1. the single run (one process, the default backend on all cores), and the same on one thread (how far the
   runtime's own threads scale: the most that workers sharing one machine can win over it);
2. ``--segment-frames S --cluster local --workers P`` (warm-up mode, the default W; each worker runs as many
   threads as the CPUs it reserved: cores / P);
3. the same with ``--exact-segments`` (a forward-only pass here first, then the segments);
4. the warm-up mode with ``--threads <cores>``: every worker on every core, as before workers were given their
   share (the oversubscription this measures).

Each run's wall time is taken from outside (fork to exit: Ray's start and stop, decoding, encoding and the join
included) and from its ``--json`` summary (the pass, segments and join). Medians are reported with the ratios
single / segmented. Run it on a quiet machine:

    python experiments/segment_speedup.py --json experiments/results/segment-speedup.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from pahs.bench_variants import cpu_description

RUN = "import sys; from pahs.cli.run import main; sys.argv[0] = 'pahs-run'; sys.exit(main())"


def write_clip(path: Path, frames: int, width: int, height: int) -> None:
    """Held-out synthetic blurry frames, losslessly (FFV1 in Matroska), 24 frames/s."""
    from training.samples import sample_clip

    clip = sample_clip(frames, width, height, seed=7)  # [T,3,H,W] float in [0, 1]
    with av.open(str(path), "w") as c:
        stream = c.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for x in clip:
            image = (x.permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
            c.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        c.mux(stream.encode())


def timed_run(args: list[str], summary: Path) -> dict:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", RUN, *args, "--json", str(summary)], capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"pahs-run {' '.join(args)} failed: {result.stderr.strip()}")
    return {"wall": wall, "summary": json.loads(summary.read_text())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--size", default="320x176")
    parser.add_argument("--segment-frames", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", type=Path)
    a = parser.parse_args(argv)
    width, height = (int(v) for v in a.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = folder / "clip.mkv"
        write_clip(clip, a.frames, width, height)
        cluster = ["--cluster", "local", "--workers", str(a.workers)]
        modes = {
            "single": [],
            "single, 1 thread": ["--threads", "1"],
            "warm-up segments": ["--segment-frames", str(a.segment_frames), *cluster],
            "exact segments": ["--segment-frames", str(a.segment_frames), "--exact-segments", *cluster],
            "warm-up segments, every worker on every core": [
                "--segment-frames", str(a.segment_frames), *cluster, "--threads", str(os.cpu_count()),
            ],
        }  # fmt: skip
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        timed_run([str(clip), "-o", str(folder / "warm.mkv"), "--lossless", "-q", "--overwrite"], folder / "w.json")
        for rep in range(a.reps):
            for mode, extra in modes.items():
                out = folder / f"{mode.replace(' ', '-')}.mkv"
                run = timed_run(
                    [str(clip), "-o", str(out), "--lossless", "-q", "--overwrite", *extra], folder / "s.json"
                )
                runs[mode].append(run)
                print(f"rep {rep + 1} {mode:<17} {run['wall']:7.2f} s  {run['summary'].get('seconds')}", flush=True)
    wall = {m: statistics.median(r["wall"] for r in rs) for m, rs in runs.items()}
    cpu, isa = cpu_description()
    result = {
        "command": "python experiments/segment_speedup.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpu": cpu,
        "isa": isa,
        "cores": os.cpu_count(),
        "frames": a.frames,
        "size": a.size,
        "segment_frames": a.segment_frames,
        "workers": a.workers,
        "median_wall_seconds": wall,
        "speedup_over_single": {m: wall["single"] / w for m, w in wall.items() if m != "single"},
        "runs": {
            m: [{"wall": r["wall"], "seconds": r["summary"].get("seconds")} for r in rs] for m, rs in runs.items()
        },
    }
    print(json.dumps({k: result[k] for k in ("median_wall_seconds", "speedup_over_single")}, indent=2))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
