"""Starting points and sizes compared at equal steps: the weights campaign's item 5, read from the run folders.

Each run validates on the suite's fixed subset (`pahs-train --val-suite`) every `--val-every` steps and logs
``suite_gain`` (the mean of the rows' gains) and ``suite_rows`` to its ``log.jsonl``. This prints one row per
validation step that any run reached (a dash where a run did not: one capped earlier or still behind), and with
``--data`` also step 0: the starting weights of each run (``--init``, in the run's own order) scored on the
same subset.

    python experiments/campaign_compare.py RUNS/A-stage3 RUNS/B-shipped RUNS/C-wide \
        --init stage3.safetensors shipped.safetensors stage3.safetensors --data ../shared/data \
        --json experiments/results/campaign2-item5.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders of pahs-train --val-suite")
    p.add_argument("--init", nargs="*", default=[], help="each run's starting checkpoint (scores step 0)")
    p.add_argument("--data", type=Path, help="the folder --val-suite was given (needed with --init)")
    p.add_argument("--json", type=Path, help="write the table as JSON")
    return p.parse_args(argv)


def logged(run: Path) -> dict[int, dict]:
    """Validation records of a run by step (a record of a stop by a signal carries no validation)."""
    lines = (run / "log.jsonl").read_text().splitlines() if (run / "log.jsonl").is_file() else []
    records = [json.loads(line) for line in lines if line.strip()]
    return {r["step"]: r for r in records if "suite_gain" in r}


def step_zero(runs: list[Path], inits: list[str], data: Path) -> dict[str, dict]:
    """Each run's starting weights on the validation subset, as the training log scores a checkpoint."""
    import torch

    from pahs_export import load_model
    from pahs_export.presets import DEFAULT_LOOKAHEAD
    from training.suite import validation_sequences
    from training.train import validate_suite

    torch.set_grad_enabled(False)
    sequences = validation_sequences(data)
    return {
        run.name: validate_suite(load_model(init).eval(), sequences, DEFAULT_LOOKAHEAD)
        for run, init in zip(runs, inits, strict=True)
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logs = {run.name: logged(run) for run in args.runs}
    steps = sorted(set.union(*(set(log) for log in logs.values())))
    table = {str(s): {name: log[s]["suite_gain"] for name, log in logs.items() if s in log} for s in steps}
    rows = {str(s): {name: log[s]["suite_rows"] for name, log in logs.items() if s in log} for s in steps}
    if args.init:
        if args.data is None or len(args.init) != len(args.runs):
            raise SystemExit("expected --data and one --init checkpoint per run")
        zero = step_zero(args.runs, args.init, args.data)
        table = {"0": {n: z["suite_gain"] for n, z in zero.items()}, **table}
        rows = {"0": {n: z["suite_rows"] for n, z in zero.items()}, **rows}
    names = list(logs)
    print("step  " + "  ".join(f"{n:>12}" for n in names))
    for step, gains in table.items():
        print(f"{step:>4}  " + "  ".join(f"{gains[n]:>+12.3f}" if n in gains else f"{'-':>12}" for n in names))
    if args.json:
        args.json.write_text(json.dumps({"suite_gain": table, "suite_rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
