"""Training: steps reduce the loss, runs are reproducible and resumable, errors are clear."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from pahs_export import PahsError, build_model
from training.synth import SynthConfig, make_clip
from training.train import (
    TrainConfig,
    _lr_at,
    load_train_state,
    train,
    train_step,
    uses_bf16,
)

TINY = TrainConfig(steps=4, batch=2, frames=2, crop=32, val_every=2, val_clips=1, workers=0)


def test_steps_reduce_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model("pahs-t").train()
    blurry, sharp = (
        torch.stack(x) for x in zip(*[make_clip(i, SynthConfig(32, 32, 2)) for i in range(2)], strict=True)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = [train_step(model, opt, blurry, sharp, TINY, torch.autocast("cpu", enabled=False))[0] for _ in range(8)]
    assert losses[-1] < 0.7 * losses[0], losses


def test_run_writes_checkpoints_and_log(tmp_path):
    last = train(TINY, tmp_path / "run", progress=False)
    assert last.name == "last.safetensors" and (tmp_path / "run" / "best.safetensors").is_file()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and all("val_psnr" in r and "val_blurry_psnr" in r for r in log)
    from pahs_export import load_model

    assert load_model(last).preset.name == "pahs-t"


def test_reproducible_and_resume_equals_one_run(tmp_path):
    full = load_file(str(train(TINY, tmp_path / "a", progress=False)))
    again = load_file(str(train(TINY, tmp_path / "b", progress=False)))
    assert all(torch.equal(full[k], again[k]) for k in full)
    train(TINY, tmp_path / "c", progress=False, stop_after=2)
    resumed = load_file(str(train(TINY, tmp_path / "c", progress=False, resume=True)))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    # "seconds" restarts with each process; "run_seconds" goes on adding the run's earlier time
    first, second = (json.loads(line) for line in (tmp_path / "c" / "log.jsonl").read_text().splitlines())
    assert first["run_seconds"] == first["seconds"] > 0
    assert second["run_seconds"] >= first["run_seconds"] + second["seconds"]


# The signalled run of the test below, in a fresh interpreter: a signal sent to the process that ran the ~750 tests
# before it (Ray, OpenVINO, ONNX Runtime and FFmpeg threads loaded in it) crashed CI once in that process, in a way
# no run of `pahs-train` showed; a child process tests the same thing on the training code alone.
_SIGNALLED_RUN = """
import json, os, signal, sys
from training import train as t
out, signum, config = sys.argv[1], int(sys.argv[2]), t.TrainConfig(**json.loads(sys.argv[3]))
real, calls, unhandled = t.train_step, [], []
def step_then_signal(*args, **kwargs):
    calls.append(1)
    if len(calls) == 1:  # the signal arrives mid-step: the step still completes
        os.kill(os.getpid(), signum)
    return real(*args, **kwargs)
t.train_step = step_then_signal
# were training not to take the signal, this handler would (not Python's default)
signal.signal(signum, lambda *a: unhandled.append(a))
try:
    t.train(config, out, progress=False)
    stopped = None
except t.TrainingStopped as e:
    stopped = [str(e), e.signum]
before_resignal = len(unhandled)
os.kill(os.getpid(), signum)  # the caller's handler is back
print(json.dumps({"stopped": stopped, "unhandled": [before_resignal, len(unhandled)], "calls": len(calls)}))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_the_step_in_progress_and_resume_is_exact(tmp_path, signum):
    """A run killed between validations (step 1 of TINY's 2) keeps that step; resuming equals one run."""
    full = load_file(str(train(TINY, tmp_path / "full", progress=False)))
    config = json.dumps({k: v for k, v in TINY.__dict__.items()})
    result = subprocess.run(
        [sys.executable, "-c", _SIGNALLED_RUN, str(tmp_path / "run"), str(int(signum)), config],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    message, stopped_by = report["stopped"]
    assert f"stopped by {signal.Signals(signum).name} at step 1 of 4" in message and stopped_by == signum
    assert report["unhandled"] == [0, 1] and report["calls"] == 1
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log == [{**log[0], "step": 1, "stopped": signal.Signals(signum).name}] and "val_psnr" not in log[0]
    resumed = load_file(str(train(TINY, tmp_path / "run", progress=False, resume=True)))
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_pahs_train_stopped_by_sigterm_says_how_to_resume(tmp_path):
    """The command line: one line on stderr naming the step and `--resume`, exit status 128 + 15."""
    out = tmp_path / "run"
    code = (
        "import os, signal, sys\n"
        "from training import train as t\n"
        "real = t.train_step\n"
        "def step(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(*a, **k)\n"
        "t.train_step = step\n"
        "from pahs.cli.train import train_main\n"
        "sys.exit(train_main())\n"
    )
    args = ["-o", str(out), "--steps", "4", "--batch", "2", "--frames", "2", "--crop", "32", "--workers", "0", "-q"]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"pahs-train: stopped by SIGTERM at step 1 of 4, checkpointed in {out}; continue with "
        f"`pahs-train -o {out} --resume`"
    ]
    assert (out / "last.safetensors").is_file() and (out / "train_state.pt").is_file()
    # exactly the command it says: the run's own settings are read back, nothing needs restating
    entry = "import sys; from pahs.cli.train import train_main; sys.exit(train_main())"
    resumed = subprocess.run(
        [sys.executable, "-c", entry, "-o", str(out), "--resume", "-q"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    whole = subprocess.run(
        [sys.executable, "-c", entry, *args[:1], str(tmp_path / "whole"), *args[2:]],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    a, b = load_file(str(out / "last.safetensors")), load_file(str(tmp_path / "whole" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    changed = subprocess.run(
        [sys.executable, "-c", entry, "-o", str(out), "--resume", "--lr", "0.5", "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert changed.returncode != 0 and "settings of the run" in changed.stderr and "(lr)" in changed.stderr


def test_a_signal_to_the_whole_process_group_still_checkpoints(tmp_path):
    """SIGTERM to the process group (as Ctrl-C, `kill -- -PGID` or a service manager send it) reaches the data-
    loading worker too: the worker ignores it and the trainer checkpoints and exits 143, instead of crashing on
    a dead worker with nothing saved."""
    out = tmp_path / "run"
    code = (
        "import os, signal, sys\n"
        "from training import train as t\n"
        "real = t.train_step\n"
        "def step(*a, **k):\n"
        "    os.killpg(os.getpgrp(), signal.SIGTERM)\n"
        "    import time; time.sleep(1)  # a dead worker would be noticed here (SIGCHLD)\n"
        "    return real(*a, **k)\n"
        "t.train_step = step\n"
        "from pahs.cli.train import train_main\n"
        "sys.exit(train_main())\n"
    )
    args = ["-o", str(out), "--steps", "4", "--batch", "2", "--frames", "2", "--crop", "32", "--workers", "1", "-q"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, start_new_session=True
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert "stopped by SIGTERM at step 1 of 4" in result.stderr and (out / "train_state.pt").is_file()


def test_errors(tmp_path):
    train(TINY, tmp_path / "run", progress=False, stop_after=1)
    with pytest.raises(PahsError, match="already holds a run; pass --resume"):
        train(TINY, tmp_path / "run", progress=False)
    with pytest.raises(PahsError, match=r"settings of the run .*\(lr\)"):
        train(TrainConfig(**{**TINY.__dict__, "lr": 1.0}), tmp_path / "run", progress=False, resume=True)
    with pytest.raises(PahsError, match="multiple of 16"):
        train(TrainConfig(crop=40), tmp_path / "x", progress=False)
    with pytest.raises(PahsError, match="--loss to be one of l1, charbonnier"):
        train(TrainConfig(loss="l2"), tmp_path / "x", progress=False)
    with pytest.raises(PahsError, match="--warmup of 0 or more"):
        train(TrainConfig(warmup=-1), tmp_path / "x", progress=False)
    with pytest.raises(PahsError, match="--max-motion of 0 or more pixels"):
        train(TrainConfig(max_motion=float("nan")), tmp_path / "x", progress=False)


def test_a_run_saved_before_a_setting_existed_resumes_with_the_value_it_used(tmp_path):
    """train_state.pt of runs older than ``max_motion`` lack it; those runs drew synthetic motion up to 25 px."""
    old = replace(TINY, max_motion=25.0)
    train(old, tmp_path / "run", progress=False, stop_after=1)
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    del state["config"]["max_motion"], state["config"]["loss"], state["config"]["warmup"], state["run_seconds"]
    torch.save(state, tmp_path / "run" / "train_state.pt")
    assert load_train_state(tmp_path / "run" / "train_state.pt")["config"] == old
    train(old, tmp_path / "run", progress=False, resume=True)  # the same settings: accepted
    # its earlier training time is unknown, so the resumed process logs none rather than a wrong one
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert "run_seconds" not in last and last["step"] == old.steps


def test_warmup_and_cosine_learning_rate():
    cfg = TrainConfig(steps=100, lr=1e-3, warmup=10)
    lrs = [_lr_at(cfg, step) for step in range(101)]
    assert lrs[0] == pytest.approx(1e-4, rel=0.01) and lrs[9] == pytest.approx(1e-3, rel=0.03)
    assert all(a < b for a, b in itertools.pairwise(lrs[:10]))  # rising during the warm-up
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:])) and lrs[100] == pytest.approx(1e-5)
    assert _lr_at(TrainConfig(steps=100, lr=1e-3), 0) == pytest.approx(1e-3)  # no warm-up by default


def test_charbonnier_loss_trains_and_differs_from_l1(tmp_path):
    l1 = load_file(str(train(TINY, tmp_path / "l1", progress=False, stop_after=1)))
    ch = load_file(str(train(replace(TINY, loss="charbonnier"), tmp_path / "ch", progress=False, stop_after=1)))
    assert all(torch.isfinite(v).all() for v in ch.values())
    assert any(not torch.equal(l1[k], ch[k]) for k in l1)


def test_bf16_only_where_it_is_native_or_on_cuda():
    cpu = torch.device("cpu")
    assert not uses_bf16(TrainConfig(amp=False), cpu)
    assert not uses_bf16(TrainConfig(amp=False), torch.device("cuda"))
    assert uses_bf16(TrainConfig(), torch.device("cuda"))
    assert uses_bf16(TrainConfig(), cpu) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
