"""`pahs-run` end to end on generated clips: outputs, backends agreeing, memory, bad input, interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest
import torch
from conftest import make_folder, make_video, write_png

from pahs import open_backend
from pahs_export import PahsError
from runtime.constants import default_onnx_backend
from runtime.io import open_input
from runtime.pipeline import RunOptions, pad_frame, run_video

QUIET = RunOptions(progress=False)


def pahs_run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    code = "import sys; from pahs.cli.run import main; sys.argv[0] = 'pahs-run'; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)


def frames_of(path) -> tuple:
    with open_input(path) as r:
        return r.info, [f.image for f in r]


def one_line_error(result, *fragments) -> None:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("pahs-run: error")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_mp4_with_audio_odd_size_end_to_end(tmp_path, artifact):
    src = make_video(tmp_path / "in.mp4", n=10, width=250, height=142, fps=24, audio=True)
    out = tmp_path / "out.mp4"
    result = pahs_run(
        str(src), "--engine", str(artifact), "-o", str(out), "--compare", str(tmp_path / "side.mp4"), "-q"
    )
    assert result.returncode == 0, result.stderr
    info, frames = frames_of(out)
    assert (info.width, info.height, len(frames), info.fps, info.has_audio) == (250, 142, 10, 24, True)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert [p.size for p in a.demux(a.streams.audio[0])] == [p.size for p in b.demux(b.streams.audio[0])]
    side, _ = frames_of(tmp_path / "side.mp4")
    assert (side.width, side.height) == (2 * 250 + 4, 142)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4", "side.mp4"]  # no temp files


def test_png_folders_in_and_out_and_backends_agree(tmp_path, artifact, checkpoint):
    """torch and onnxruntime agree within 1/255 on PNG output (8-bit: one rounding step)."""
    src = make_folder(tmp_path / "seq", n=7, width=40, height=24)  # not a multiple of 16: padded and cropped
    for name, engine in (("ort", artifact), ("torch", checkpoint)):
        run_video(src, str(tmp_path / name) + "/", open_backend(engine), QUIET)
    names = sorted(p.name for p in (tmp_path / "ort").iterdir())
    assert names == sorted(p.name for p in src.iterdir())
    _, a = frames_of(tmp_path / "ort")
    _, b = frames_of(tmp_path / "torch")
    assert a[0].shape == (24, 40, 3)
    assert max(np.abs(x - y).max() for x, y in zip(a, b, strict=True)) <= 1 / 255 + 1e-6


def test_chunked_pipeline_equals_reference(tmp_path, checkpoint):
    """--chunk 1 reproduces the reference model with the same lookahead (before 8-bit rounding)."""
    from pahs.verify import verify_video
    from pahs_export import load_model

    src = make_folder(tmp_path / "seq", n=6, width=32, height=32)
    backend = open_backend(checkpoint)
    result = verify_video(src, backend, backend, RunOptions(lookahead=2, chunk=1, progress=False), None)
    assert result.passed and max(f.max_abs for f in result.frames) == 0
    model = load_model(checkpoint)
    _, frames = frames_of(src)
    x = torch.stack([pad_frame(f, 16) for f in frames])
    with torch.no_grad():
        ref = model(x[None], lookahead=2)[0].clamp(0, 1)
    run_video(src, str(tmp_path / "out") + "/", backend, RunOptions(lookahead=2, chunk=1, progress=False))
    _, out = frames_of(tmp_path / "out")
    got = torch.stack([torch.from_numpy(o).permute(2, 0, 1) for o in out])
    assert (got - ref).abs().max() <= 0.5 / 255 + 1e-6  # only the 8-bit rounding differs


def test_verify_flag(tmp_path, artifact):
    src = make_folder(tmp_path / "seq", n=4, width=32, height=32)
    result = pahs_run(str(src), "--engine", str(artifact), "--verify", "3", "-q")
    assert result.returncode == 0, result.stderr
    assert f"PASS: {default_onnx_backend()} on cpu (fp32) vs PyTorch on cpu over 3 frames" in result.stdout
    result = pahs_run(str(src), "--engine", str(artifact), "--verify", "-q")  # bare --verify: every frame
    assert "over 4 frames" in result.stdout
    assert not (tmp_path / "seq.deblurred").exists()  # verification alone writes nothing


def peak_rss_of_run(src, engine) -> float:
    code = (
        "import sys, pathlib; from runtime.engines import open_engine; "
        "from runtime.pipeline import RunOptions, run_video; "
        f"run_video(pathlib.Path({str(src)!r}), {str(src) + '.out.mp4'!r}, open_engine({str(engine)!r}), "
        "RunOptions(progress=False, lookahead=4, chunk=4)); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc for peak RSS")
def test_memory_is_flat_in_video_length(tmp_path, artifact):
    short = make_video(tmp_path / "short.mp4", n=30, width=96, height=64)
    long = make_video(tmp_path / "long.mp4", n=240, width=96, height=64)
    assert peak_rss_of_run(long, artifact) <= 1.3 * peak_rss_of_run(short, artifact)


def test_bad_inputs(tmp_path, artifact, checkpoint):
    one_line_error(pahs_run(str(tmp_path / "missing.mp4")), "found nothing at")
    (tmp_path / "text.mp4").write_text("hello")
    one_line_error(pahs_run(str(tmp_path / "text.mp4"), "--engine", str(artifact)), "expected a video FFmpeg can read")
    (tmp_path / "empty").mkdir()
    one_line_error(pahs_run(str(tmp_path / "empty"), "--engine", str(artifact)), "expected image frames")
    sizes = make_folder(tmp_path / "sizes", n=2, width=32, height=32)
    write_png(sizes / "frame3.png", np.zeros((48, 32, 3), np.uint8))
    one_line_error(
        pahs_run(str(sizes), "--engine", str(artifact), "-o", str(tmp_path / "o.mp4"), "-q"), "found frame 2"
    )
    assert not (tmp_path / "o.mp4").exists()
    src = make_folder(tmp_path / "ok", n=2, width=32, height=32)
    one_line_error(pahs_run(str(src), "--engine", str(artifact), "--lookahead", "-3"), "expected --lookahead from 0")
    one_line_error(pahs_run(str(src), "--engine", str(artifact), "--lookahead", "soon"), "a number of frames or 'all'")
    one_line_error(pahs_run(str(src), "--engine", str(artifact), "--precision", "int8"), "an int8 engine", "(fp32)")
    one_line_error(pahs_run(str(src), "--engine", str(artifact), "--checkpoint", str(checkpoint)), "or --checkpoint")
    one_line_error(pahs_run(str(src), "--engine", str(tmp_path / "text.mp4")), "expected an engine")
    one_line_error(pahs_run(str(src), "--engine", str(artifact), "-o", str(src)), "different from the input")
    (tmp_path / "taken.mp4").write_bytes(b"x")
    one_line_error(pahs_run(str(src), "--engine", str(artifact), "-o", str(tmp_path / "taken.mp4")), "--overwrite")
    assert (tmp_path / "taken.mp4").read_bytes() == b"x"


def test_tiny_frames_refused_and_16_accepted(tmp_path, artifact):
    tiny = make_folder(tmp_path / "tiny", n=2, width=12, height=32)
    one_line_error(pahs_run(str(tiny), "--engine", str(artifact)), "at least 16x16")
    ok = make_folder(tmp_path / "ok", n=2, width=16, height=17)
    assert pahs_run(str(ok), "--engine", str(artifact), "-o", str(tmp_path / "ok.mp4"), "-q").returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_nothing(tmp_path, artifact, sig):
    # long enough that a fast CPU is still inside the run when the signal comes (400 frames was not, on AMX)
    src = make_video(tmp_path / "in.mp4", n=1200, width=128, height=96)
    # Ctrl-C as a terminal delivers it: to a process whose SIGINT is not ignored. Tests started in the background
    # of a non-interactive shell (`nohup ... &`) inherit SIGINT ignored, and pahs-run rightly keeps an inherited
    # ignore (pahs_export.signals), so the child restores Python's default handler first, as a terminal's has it.
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from pahs.cli.run import main; sys.argv[0] = 'pahs-run'; sys.exit(main())"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(src), "--engine", str(artifact), "-o", str(tmp_path / "out.mp4"), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.startswith(".out.mp4.partial") for p in tmp_path.iterdir()):
        time.sleep(0.2)
    time.sleep(0.5)  # well inside the run
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_default_engine_is_exported_once_and_cached(tmp_path, monkeypatch):
    from pahs_export.weights import default_checkpoint

    if default_checkpoint("pahs-t") is None:
        with pytest.raises(PahsError, match="has no default weights"):
            open_backend(None)
        return
    monkeypatch.setenv("PAHS_CACHE", str(tmp_path / "cache"))
    first = open_backend(None)
    # not OpenVINO's own cache, nor the lock files of concurrent first uses
    (exported,) = [p for p in (tmp_path / "cache").iterdir() if p.name not in ("openvino", ".locks")]
    assert first.name == default_onnx_backend()
    stamp = exported.stat().st_mtime
    open_backend(None)
    assert exported.stat().st_mtime == stamp


def test_readme_run_command_on_the_sample_clip(tmp_path):
    """The README's run command, as written there, deblurs the provided sample with the embedded default."""
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    command = re.search(r"<!-- ci:run -->\n```bash\n(.+?)\n```", readme).group(1)
    args = shlex.split(command)
    assert args[0] == "pahs-run"
    args = [str(root / a) if a.startswith("samples/") else str(tmp_path / a) if a.endswith(".mp4") else a for a in args]
    result = pahs_run(*args[1:], "-q")
    assert result.returncode == 0, result.stderr
    info, frames = frames_of(tmp_path / "deblurred.mp4")
    assert (info.width, info.height, len(frames)) == (320, 192, 60)
    assert frames_of(tmp_path / "side-by-side.mp4")[0].width == 644


@pytest.mark.parametrize(("precision", "target"), [("fp16", "tensorrt"), ("int8", "cpu")])
def test_precision_artifacts_run_through_pahs_run(tmp_path, precision, target):
    """pahs-run --engine runs FP16 and INT8 graphs on the default CPU backend; --verify uses their precision's
    tolerance."""
    from calibration.data import DEFAULT_SET
    from pahs_export.onnx_export import artifact_from_model
    from pahs_export.precision import Int8Options
    from pahs_export.weights import resolve_model

    model, source = resolve_model(None, "pahs-t")
    art = artifact_from_model(
        model, tmp_path / "art", source=source, precision=precision, int8=Int8Options(target=target),
        calibration=DEFAULT_SET,
    )  # fmt: skip
    src = make_folder(tmp_path / "seq", n=4, width=48, height=32)
    result = pahs_run(str(src), "--engine", str(art), "--verify", "4", "-o", str(tmp_path / "out") + "/", "-q")
    assert result.returncode == 0, result.stderr
    assert f"PASS: {default_onnx_backend()} on cpu ({precision}) vs PyTorch on cpu over 4 frames" in result.stdout
    assert len(list((tmp_path / "out").iterdir())) == 4


def test_each_message_is_printed_once_when_a_library_configured_the_root_logger(tmp_path, artifact):
    """ORT's quantizer (the first-use INT8 export) calls ``logging.warning``, which configures the root logger;
    every ``pahs`` message then also printed as ``INFO:pahs:…``. The run's own handler is the only one."""
    src = make_video(tmp_path / "in.mp4", n=3, width=48, height=32)
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO); from pahs.cli.run import main; "
        "sys.argv[0] = 'pahs-run'; sys.exit(main())"
    )
    args = [str(src), "--engine", str(artifact), "-o", str(tmp_path / "out.mp4")]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert ":pahs:" not in result.stderr, result.stderr
    assert sum(line.startswith("pahs-run: writing mp4") for line in result.stderr.splitlines()) == 1, result.stderr


def test_a_10_bit_hevc_source_stays_10_bit_by_default(tmp_path, checkpoint):
    """mp4 and mkv outputs keep the source's depth and chroma with the default codec (libx264), as a pipe did."""
    if "libx265" not in av.codecs_available:
        pytest.skip("this FFmpeg has no libx265 to make the source with")
    src = make_video(tmp_path / "in.mkv", n=3, width=64, height=48, codec="libx265", pix_fmt="yuv420p10le")
    backend = open_backend(checkpoint)
    for name in ("out.mp4", "out.mkv"):
        run_video(src, str(tmp_path / name), backend, QUIET)
        with av.open(str(tmp_path / name)) as c:
            context = c.streams.video[0].codec_context
            assert (context.name, context.pix_fmt) == ("h264", "yuv420p10le"), name
