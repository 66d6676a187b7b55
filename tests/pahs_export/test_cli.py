"""`pahs-export` and `pahs-run` as a user runs them, called in-process: exit codes, output, one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import traceback

import pytest

from pahs.cli.export import main as export_main
from pahs.cli.run import main as run_main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Call the console entry point named by ``args[0]`` with the rest, as the installed script would."""
    main = run_main if args[0] == "pahs-run" else export_main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args[1:]))
        except Exception:  # --debug lets the error through, as Python prints it for the script
            traceback.print_exc()
            status = 1
    return subprocess.CompletedProcess(list(args), status, out.getvalue(), err.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(("preset", "paper"), [("pahs", 21.0), ("pahs-s", 4.8)])
def test_info_reports_paper_size(preset, paper):
    result = run("pahs-export", "info", "--preset", preset)
    assert result.returncode == 0, result.stderr
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    params_m = float(total.split("(")[1].split()[0])
    assert abs(params_m - paper) / paper < 0.05
    assert "forward_cell.pprnn" in result.stdout and "TFLOP" in result.stdout


def test_info_default_preset_and_size():
    result = run("pahs-export", "info", "--size", "640x368")
    assert result.returncode == 0, result.stderr
    assert "preset pahs-t" in result.stdout and "640x368" in result.stdout and "(0.09 TFLOP)" in result.stdout


def test_unknown_preset():
    """A preset is a choice: click refuses others, in one line that lists them."""
    result = run("pahs-export", "info", "--preset", "big")
    assert_one_line_error(
        result, "pahs-export: error:", "'big' is not one of", "'pahs-s'", "see 'pahs-export info --help'"
    )
    assert result.returncode == 2


@pytest.mark.parametrize(("size", "fragment"), [("640", "WIDTHxHEIGHT"), ("650x368", "multiples of 16")])
def test_bad_size(size, fragment):
    assert_one_line_error(run("pahs-export", "info", "--size", size), fragment)


def test_debug_shows_traceback():
    result = run("pahs-export", "info", "--size", "640", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr and "PahsError" in result.stderr


def test_trt_without_tensorrt_says_what_to_install():
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    assert_one_line_error(run("pahs-export", "trt", "--fp16"), "TensorRT is not installed", "pip install")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "art"
    result = run("pahs-export", "onnx", "--random-init", "--seed", "1", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "--quiet: no progress messages"
    return out


def test_trt_precision_flags_are_aliases(exported):
    """`--fp16` is `--precision fp16`: both ask the --onnx artifact for that precision; without either the
    artifact's own precision is built (here fp32, then TensorRT is needed)."""
    for flags in (["--fp16"], ["--precision", "fp16"], ["--fp16", "--precision", "fp16"]):
        result = run("pahs-export", "trt", *flags, "--onnx", str(exported), "-o", str(exported.parent / "e.plan"))
        assert_one_line_error(result, "expected an ONNX artifact of precision fp16, found fp32")
    result = run("pahs-export", "onnx", "--int8", "--precision", "fp16", "--random-init")
    assert_one_line_error(result, "expected one precision, found --precision fp16 and --int8; pick one")
    result = run("pahs-export", "onnx", "--fp16", "--int8-target", "cpu", "--random-init")
    assert_one_line_error(result, "expected INT8 options only with --precision int8, found --precision fp16")


def test_trt_builds_the_precision_of_its_onnx_artifact(exported):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    result = run("pahs-export", "trt", "--onnx", str(exported), "-o", str(exported.parent / "e.plan"))
    assert_one_line_error(result, "TensorRT is not installed")


def test_onnx_then_verify_passes(exported):
    assert (exported / "manifest.json").is_file()
    result = run("pahs-export", "verify", str(exported), "--frames", "30", "--size", "64x48", "--size", "96x32")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: fp32 onnxruntime vs PyTorch" in result.stdout
    assert "onnx.reference forward" in result.stdout and "64x48, 30 frames" in result.stdout


def test_verify_fails_against_other_weights(exported, tmp_path):
    """The check can fail: the same graphs against a differently seeded reference must not pass."""
    import torch

    from pahs_export import build_model, save_checkpoint

    torch.manual_seed(99)
    other = save_checkpoint(build_model("pahs-t"), tmp_path / "other.safetensors")
    result = run("pahs-export", "verify", str(exported), "--frames", "3", "--size", "32x32", "--checkpoint", str(other))
    assert result.returncode == 1 and "FAIL:" in result.stdout


def test_verify_on_held_out_dataset_sequences_with_openvino(exported, tmp_path):
    """`verify --data DIR --layout x4k -b openvino`: the dataset's held-out sequences (TEST01 here; TEST02 is a
    training clip) at their own size, padded for the graphs and cropped back, through OpenVINO."""
    import av
    import numpy as np

    for name in ("TEST01_a.mp4", "TEST02_b.mp4"):  # 33 frames of 100x64: 50x32 after the protocol's 2x downscale
        with av.open(str(tmp_path / name), "w") as c:
            s = c.add_stream("libx264rgb", rate=25, options={"qp": "0"})
            s.width, s.height, s.pix_fmt = 100, 64, "rgb24"
            for i in range(33):
                img = np.full((64, 100, 3), 20, np.uint8)
                img[16:48, 10 + i : 30 + i] = 230
                c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            c.mux(s.encode())
    args = ("pahs-export", "verify", str(exported), "--data", str(tmp_path), "--layout", "x4k", "--frames", "4")
    result = run(*args, "-b", "openvino", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: fp32 openvino vs PyTorch" in result.stdout
    for blur in ("small", "medium", "large"):
        assert f"TEST01/{blur}, 50x32" in result.stdout
    assert "TEST02" not in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert [len(s["frames"]) for s in report["sequences"]] == [4, 4, 3]  # --frames caps; large has 3
    assert all(f["gt_psnr"] is not None for s in report["sequences"] for f in s["frames"])
    assert_one_line_error(run(*args[:3], "--data", str(tmp_path / "none")), "expected")


def test_verify_size_not_multiple_of_16(exported):
    assert_one_line_error(run("pahs-export", "verify", str(exported), "--size", "100x64"), "multiples of 16", "96x64")


def test_verify_not_an_artifact(tmp_path):
    assert_one_line_error(run("pahs-export", "verify", str(tmp_path)), "expected manifest.json inside")


def test_onnx_refuses_silent_random_weights(tmp_path):
    assert_one_line_error(
        run("pahs-export", "onnx", "--preset", "pahs", "-o", str(tmp_path / "x")),
        "has no default weights",
        "--random-init",
    )
    assert not (tmp_path / "x").exists()


def test_onnx_errors(tmp_path):
    from pahs_export import build_model, save_checkpoint

    ckpt = save_checkpoint(build_model("pahs-t"), tmp_path / "t.safetensors")
    assert_one_line_error(run("pahs-export", "onnx", "--preset", "huge", "--random-init"), "'huge' is not one of")
    assert_one_line_error(
        run("pahs-export", "onnx", "--checkpoint", str(ckpt), "--preset", "pahs-s", "-o", str(tmp_path / "o")),
        "expected a checkpoint of preset 'pahs-s', found 'pahs-t'",
    )
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert_one_line_error(
        run("pahs-export", "onnx", "--checkpoint", str(ckpt), "-o", str(blocker / "art")), "cannot write the artifact"
    )
    assert_one_line_error(
        run("pahs-export", "onnx", "--checkpoint", str(ckpt), "--random-init"), "either --checkpoint or --random-init"
    )


def test_default_weights_export_and_verify(tmp_path):
    """The issue's acceptance: `pahs-export onnx --preset pahs-t` then `pahs-export verify` pass."""
    out = tmp_path / "pahs-t-onnx-fp32"
    result = run("pahs-export", "onnx", "--preset", "pahs-t", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "exporting forward graph" in result.stderr  # progress, without --quiet
    assert '"kind": "default"' in (out / "manifest.json").read_text()
    result = run("pahs-export", "verify", str(out), "--frames", "30", "--size", "64x48", "--size", "96x32")
    assert result.returncode == 0 and "PASS: fp32" in result.stdout, result.stdout + result.stderr
