"""ONNX Runtime's CPU session options against one step of each graph role at 640x352: thread count, spinning,
thread affinity, parallel execution; FP32 and the INT8 CPU-target artifacts of the default weights (the cached
ones `pahs-run --precision` uses). One session at a time (an idle session's spinning threads would slow the
next); 3 rounds over all options, each a median of 5 runs after 2 warm-ups; the median of the rounds is
reported, so a noisy neighbour slows every option alike.

    python experiments/ort_session_options.py [--json experiments/results/ort-session-options.json]
"""

import argparse
import json
import os
import statistics
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pahs.export_cache import default_artifact
from runtime.bench.measure import median_seconds

H, W = 352, 640
ROUNDS = 3
CORES = os.cpu_count() or 1
# name -> (intra-op threads, session config entries, parallel execution)
OPTIONS = {
    "default (pahs today)": (0, {}, False),
    f"{CORES} threads, no spinning": (CORES, {"session.intra_op.allow_spinning": "0"}, False),
    f"{CORES} threads, spinning": (CORES, {"session.intra_op.allow_spinning": "1"}, False),
    "1 thread": (1, {}, False),
    f"{CORES} threads, pinned": (
        CORES,
        {"session.intra_op_thread_affinities": ";".join(str(i + 2) for i in range(CORES - 1))},
        False,
    ),
    f"{CORES} threads, parallel execution": (CORES, {}, True),
}


def feeds(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for i in session.get_inputs():
        shape = [1 if d == "batch" or d == 1 else d for d in i.shape]
        c = shape[1]
        scale = 1 if i.name == "frame" else 4  # states live at a quarter of the frame's size
        dtype = np.float16 if i.type == "tensor(float16)" else np.float32
        out[i.name] = rng.random((1, c, H // scale, W // scale)).astype(dtype)
    return out


def session_for(path: Path, threads: int, config: dict[str, str], parallel: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    if parallel:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for precision in ("fp32", "int8"):
            art = default_artifact(precision)
            for role in ("forward", "fuse"):
                for name, (threads, config, parallel) in OPTIONS.items():
                    session = session_for(art / f"{role}.onnx", threads, config, parallel)
                    feed = feeds(session)
                    session.run(None, feed)  # warm-up (median_seconds adds one more)
                    ms = 1000 * median_seconds(lambda s=session, f=feed: s.run(None, f), 5)
                    times.setdefault(f"{precision} {role}: {name}", []).append(ms)
                    del session
    results = {label: round(statistics.median(t), 2) for label, t in times.items()}
    for label, ms in results.items():
        print(f"{label:<50} {ms:8.2f} ms")
    if args.json:
        args.json.write_text(json.dumps({"cpu_count": CORES, "ort": ort.__version__, "ms": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
