"""Average the weights of several checkpoints of one run (a trajectory average, as in SWA).

Fine-tuning with batches of four small clips leaves the weights wandering around a minimum: run G's
validation subset moved by up to 0.08 dB between checkpoints 200 steps apart. The uniform mean of weights
saved along one line of training sits nearer the middle of that wander, at no training cost. Measured
(docs/TRAINING.md, "The fifth session"): the mean of G's seven low-rate checkpoints scored about their own
mean on the subset (+0.507 dB against +0.500), and the mean of two checkpoints 1200 steps apart scored above
both on the subset and on the whole suite. Only checkpoints of one lineage (one run, or a run and its
continuation) are worth averaging: weights trained apart need not lie in one basin.

    python -m training.average -o runs/G/avg.safetensors runs/G/step1600.safetensors runs/G/step1800.safetensors …
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from pahs_export.checkpoint import load_model, read_metadata, save_checkpoint
from pahs_export.errors import PahsError


def average_checkpoints(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Write to ``out`` the element-wise mean (FP32) of the weights of ``paths``, two or more checkpoints of one
    preset and direction; its metadata lists the files averaged (``averaged_from``, a JSON list of names)."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise PahsError(f"expected at least two checkpoints to average, found {len(paths)}; pass two or more")
    first = read_metadata(paths[0])
    model = load_model(paths[0])
    total = {k: v.double() for k, v in model.state_dict().items()}  # float64 sums: the order does not matter
    for path in paths[1:]:
        meta = read_metadata(path)
        if (meta["preset"], meta["bidirectional"]) != (first["preset"], first["bidirectional"]):
            raise PahsError(
                f"expected checkpoints of one preset and direction ({first['preset']}, bidirectional "
                f"{first['bidirectional']}, from {paths[0]}), found ({meta['preset']}, bidirectional "
                f"{meta['bidirectional']}) in {path}; average checkpoints of one run only"
            )
        for k, v in load_model(path).state_dict().items():
            total[k] += v.double()
    model.load_state_dict({k: (v / len(paths)).to(torch.float32) for k, v in total.items()})
    return save_checkpoint(model, out, extra={"averaged_from": json.dumps([p.name for p in paths])})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", required=True, help="Where to write the averaged checkpoint.")
    parser.add_argument("checkpoints", nargs="+", help="Two or more checkpoints of one run.")
    args = parser.parse_args(argv)
    try:
        path = average_checkpoints(args.checkpoints, args.output)
    except PahsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
