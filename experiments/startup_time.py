"""Start-up time of `pahs-run`: wall time (median of N fresh processes) of `--version`, `--help`, and a run over
8 frames at 320x176 with the default weights' cached ONNX artifact on ONNX Runtime (the export is done once
before timing). Compare two commits by running it in a worktree of each:

    python experiments/startup_time.py [N]
"""

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import av
import numpy as np


def clip(path: Path, frames: int = 8, width: int = 320, height: int = 176) -> Path:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return path


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["pahs-run", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=5, help="timed runs of each case (default 5)")
    args = parser.parse_args(argv)
    n = args.n
    with tempfile.TemporaryDirectory() as tmp:
        src, out = clip(Path(tmp) / "clip.mp4"), str(Path(tmp) / "out.mp4")
        cases = {"--version": ["--version"], "--help": ["--help"], "8 frames": [str(src), "-o", out, "--overwrite"]}
        wall(cases["8 frames"])  # the first-use export, not timed
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(n):  # interleaved, so a noisy neighbour slows every case alike
            for name, args in cases.items():
                times[name].append(wall(args))
    for name, ts in times.items():
        print(f"pahs-run {name:<10} median {statistics.median(ts):.2f} s  ({', '.join(f'{t:.2f}' for t in ts)})")


if __name__ == "__main__":
    main()
