"""Bad inputs a user can hand pahs: each gives one line naming what was expected, what was found and what to do.

Tampered artifacts (files outside the folder, missing or wrong hashes, damaged manifest fields, graphs that
break the contract), non-finite or integer weights, damaged checkpoint metadata and training state, devices
that are not there, a damaged cache of the embedded default, and frame counts below one. Everything runs
in-process on tiny pahs-t models (one `slow` test starts three processes); the command-line checks
call the CLIs' ``main`` and read their stderr.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
import pickle
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from pahs.export_cache import LOCKS
from pahs.verify import verify_artifact, verify_video
from pahs_export import PahsError, build_model, load_model, save_checkpoint
from pahs_export.artifact import (
    MANIFEST,
    TENSORRT_FORMAT,
    Artifact,
    check_graph_io,
    manifest_from_json,
    read_artifact,
    read_manifest,
)
from pahs_export.atomic import file_sha256
from pahs_export.checkpoint import FORMAT as CHECKPOINT_FORMAT
from pahs_export.checkpoint import parse_device
from pahs_export.onnx_export import artifact_from_model
from pahs_export.presets import get_preset
from pahs_export.weights import resolve_model
from runtime.backends.ort_backend import OnnxRuntimeBackend
from runtime.backends.torch_backend import TorchBackend
from runtime.constants import default_onnx_backend
from runtime.engines import open_engine
from runtime.pipeline import RunOptions
from training.train import TrainConfig, load_train_state, train

GEOMETRY = get_preset("pahs-t").geometry

# ---------------------------------------------------------------------------------------------------- helpers


def one_line(error: PahsError | str, *fragments: str) -> str:
    """The message, after checking it is one line holding every fragment."""
    text = str(error)
    assert "\n" not in text.strip(), text
    for fragment in fragments:
        assert fragment in text, text
    return text


def cli(main: Callable[[Sequence[str]], int], args: Sequence[str]) -> tuple[int, str, str]:
    """Run a console script's ``main`` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def cli_error(result: tuple[int, str, str], prog: str, *fragments: str) -> str:
    """The one error line of a failed CLI run (exit 2, no traceback)."""
    status, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and "Traceback" not in err, err
    errors = [line for line in lines if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, err
    return one_line(errors[0], *fragments)


def run_main(args: Sequence[str]) -> tuple[int, str, str]:
    from pahs.cli.run import main

    return cli(main, args)


def export_main(args: Sequence[str]) -> tuple[int, str, str]:
    from pahs.cli.export import main

    return cli(main, args)


def frames_folder(path: Path, n: int = 2, width: int = 48, height: int = 32) -> Path:
    """A folder of ``n`` small PNG frames, a valid input for `pahs-run`."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path / f"f{i + 1}.png")
    return path


def copy_artifact(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    path = folder / MANIFEST
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
    return folder


def rehash(folder: Path, name: str) -> None:
    """Record the current sha256 of ``name`` in the manifest, as a careful tamperer would."""
    edit_manifest(folder, lambda m: m["sha256"].__setitem__(name, file_sha256(folder / name)))


def identity_graph(inputs: dict[str, list[Any]], outputs: dict[str, str]) -> bytes:
    """A tiny ONNX graph: ``inputs`` name -> shape (ints or names), each output an Identity of an input."""
    vi = onnx.helper.make_tensor_value_info
    nodes = [onnx.helper.make_node("Identity", [src], [out]) for out, src in outputs.items()]
    graph = onnx.helper.make_graph(
        nodes,
        "tampered",
        [vi(n, onnx.TensorProto.FLOAT, shape) for n, shape in inputs.items()],
        [vi(n, onnx.TensorProto.FLOAT, None) for n in outputs],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    return save_checkpoint(build_model("pahs-t"), tmp_path_factory.mktemp("ckpt") / "w.safetensors")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, checkpoint) -> Path:
    """An untouched FP32 artifact; tests copy it before tampering."""
    model, source = resolve_model(checkpoint)
    return artifact_from_model(model, tmp_path_factory.mktemp("onnx") / "art", source=source)


@pytest.fixture()
def art(tmp_path, pristine) -> Path:
    return copy_artifact(pristine, tmp_path / "art")


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    return frames_folder(tmp_path_factory.mktemp("frames") / "seq")


@pytest.fixture(scope="module")
def manifest(pristine) -> dict[str, Any]:
    return json.loads((pristine / MANIFEST).read_text())


# ------------------------------------------------------------------------- 1. artifact paths, hashes, manifest


@pytest.mark.parametrize("name", ["../../outside/fuse.onnx", "/etc/passwd", "sub/fuse.onnx", "..", ".", "a\\b.onnx"])
def test_graph_names_must_be_plain_files_inside_the_folder(art, tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(art / "fuse.onnx", outside / "fuse.onnx")  # a real graph there: only the path rule stops it

    def escape(m: dict[str, Any]) -> None:
        m["graphs"]["fuse"] = name
        m["sha256"][name] = m["sha256"]["fuse.onnx"]  # hashed too: the name rule alone must stop it

    edit_manifest(art, escape)
    with pytest.raises(PahsError) as e:
        read_artifact(art)
    one_line(e.value, "expected the fuse graph to be a plain file name inside the artifact folder", repr(name))


def test_path_escape_is_one_line_and_exit_2_from_pahs_run(art, frames, tmp_path):
    edit_manifest(art, lambda m: m["graphs"].__setitem__("fuse", "/etc/passwd"))
    result = run_main([str(frames), "--engine", str(art), "-o", str(tmp_path / "o") + "/", "-q"])
    cli_error(result, "pahs-run", "plain file name", "'/etc/passwd'")
    assert not (tmp_path / "o").exists()
    cli_error(export_main(["verify", str(art)]), "pahs-export", "plain file name")


def test_symlink_out_of_the_folder_is_refused(art, tmp_path):
    """Same bytes, so the hash would pass: the link itself is what is refused, by reading and by every loader."""
    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(art / "fuse.onnx", outside)
    (art / "fuse.onnx").unlink()
    os.symlink(outside, art / "fuse.onnx")
    with pytest.raises(PahsError) as e:
        read_artifact(art)
    one_line(e.value, "inside the artifact folder", "symlink")
    with pytest.raises(PahsError, match="symlink"):
        Artifact(art, read_manifest(art)).verified_bytes("fuse")  # built by hand, past read_artifact


def test_symlink_inside_the_folder_is_followed(art):
    """A link to a file inside the folder stays inside; its bytes are still checked against the hash."""
    (art / "fuse.real").write_bytes((art / "fuse.onnx").read_bytes())
    (art / "fuse.onnx").unlink()
    os.symlink("fuse.real", art / "fuse.onnx")
    assert read_artifact(art).verified_bytes("fuse") == (art / "fuse.real").read_bytes()


@pytest.mark.parametrize("drop", ["all", "fuse.onnx"])
def test_sha256_must_cover_every_loaded_file(art, drop):
    edit_manifest(art, lambda m: m.__setitem__("sha256", {}) if drop == "all" else m["sha256"].pop(drop))
    with pytest.raises(PahsError) as e:
        read_artifact(art)
    one_line(e.value, "expected a sha256", "for every file pahs loads", "fuse.onnx")


def test_stored_checkpoint_must_be_hashed_and_inside(art, manifest):
    raw = copy.deepcopy(manifest)
    raw["checkpoint"]["file"] = "checkpoint.safetensors"  # named, but not in the sha256 table
    with pytest.raises(PahsError, match="a sha256 for the stored checkpoint"):
        manifest_from_json(raw, art / MANIFEST)
    raw["checkpoint"]["file"] = "../w.safetensors"
    with pytest.raises(PahsError, match="'checkpoint' file to be a plain file name"):
        manifest_from_json(raw, art / MANIFEST)


def test_swapped_graph_is_refused_by_every_loader(art, frames):
    """The manifest is intact; one graph's bytes are another's. No backend may load it."""
    shutil.copy(art / "forward.onnx", art / "fuse.onnx")
    artifact = read_artifact(art)  # reading alone does not hash (cheap); loading does
    for attempt in (
        lambda: OnnxRuntimeBackend(artifact),
        lambda: open_engine(art),
        lambda: artifact.verified_bytes("fuse"),
        lambda: verify_artifact(artifact, frames=1),
    ):
        with pytest.raises(PahsError) as e:
            attempt()
        one_line(e.value, "fuse.onnx does not match the sha256", "export it again")
    cli_error(run_main([str(frames), "--engine", str(art), "-q"]), "pahs-run", "does not match the sha256")


def test_verified_bytes_are_the_file(pristine):
    artifact = read_artifact(pristine)
    files = artifact.verified_files()
    assert set(files) == {"forward", "backward", "fuse"}
    assert all(files[r] == (pristine / n).read_bytes() for r, n in artifact.manifest.files.items())


def _set(path: str | tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to a manifest: set (or with ``_DROP`` remove) the entry at ``path`` ("a.b", or a tuple of keys
    when a key holds a dot)."""

    def change(m: dict[str, Any]) -> None:
        *parents, last = path.split(".") if isinstance(path, str) else path
        target = m
        for p in parents:
            target = target[p]
        if value is _DROP:
            target.pop(last)
        else:
            target[last] = value

    return change


_DROP = object()

MANIFEST_CASES = {
    "format null": (_set("format", None), "expected a manifest of format"),
    "format a list": (_set("format", ["pahs-onnx/1"]), "expected a manifest of format"),
    "sha256 a list": (_set("sha256", ["fuse.onnx"]), "expected 'sha256' to be dict"),
    "sha256 value not hex": (_set(("sha256", "fuse.onnx"), 5), "the sha256 of fuse.onnx to be 64 lower-case hex"),
    "sha256 key escapes": (_set(("sha256", "../x"), "0" * 64), "every key of 'sha256' to be a plain file name"),
    "channels missing": (_set("channels", _DROP), "expected 'channels' to be dict"),
    "channels c a string": (_set("channels.c", "48"), "expected 'c' to be a positive integer"),
    "channels of another preset": (_set("channels.c", 92), "expected channels c=48, hidden=16, mid=32"),
    "hidden not c/3": (_set("channels.hidden", 17), "expected channels c=48, hidden=16"),
    "size_multiple 0": (_set("size_multiple", 0), "expected 'size_multiple' to be a positive integer"),
    "size_multiple '16'": (_set("size_multiple", "16"), "expected 'size_multiple' to be a positive integer"),
    "size_multiple 16.0": (_set("size_multiple", 16.0), "expected 'size_multiple' to be a positive integer"),
    "size_multiple 8": (_set("size_multiple", 8), "a size_multiple that is a multiple of 16"),
    "size_multiple true": (_set("size_multiple", True), "expected 'size_multiple' to be a positive integer"),
    "precision fp8": (_set("precision", "fp8"), "expected 'precision' among fp32, fp16, int8"),
    "precision a list": (_set("precision", ["fp32"]), "expected 'precision' among fp32, fp16, int8"),
    "direction a list": (_set("direction", ["bidirectional"]), "expected 'direction' bidirectional or"),
    "preset unknown": (_set("preset", "pahs-xl"), "expected 'preset' among pahs, pahs-s, pahs-t, pahs-tw"),
    "preset a number": (_set("preset", 3), "expected 'preset' to be str"),
    "graphs a list": (_set("graphs", ["fuse.onnx"]), "expected 'graphs' to be dict"),
    "graphs missing a role": (_set("graphs.fuse", _DROP), "expected graphs forward, backward, fuse"),
    "graph name a number": (_set("graphs.fuse", 7), "expected the fuse graph to be a plain file name"),
    "opset a string": (_set("opset", "17"), "expected 'opset' to be int"),
    "precision_details a list": (_set("precision_details", []), "expected 'precision_details' to be dict"),
    "precision_details entry a number": (_set("precision_details", {"fuse": 3}), "'precision_details' of fuse"),
    "io a list": (_set("io", []), "expected 'io' to be dict"),
    "checkpoint a list": (_set("checkpoint", []), "expected 'checkpoint' to be dict"),
    "checkpoint path a number": (_set("checkpoint.path", 1), "expected 'checkpoint' path to be a string"),
    "versions a string": (_set("versions", "1"), "expected 'versions' to be dict"),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_damaged_manifest_fields_are_one_line(manifest, case):
    change, message = MANIFEST_CASES[case]
    raw = copy.deepcopy(manifest)
    change(raw)
    with pytest.raises(PahsError) as e:
        manifest_from_json(raw, Path("art/manifest.json"))
    one_line(e.value, message, "art/manifest.json")


@pytest.mark.parametrize("raw", [[], "pahs-onnx/1", None, 3])
def test_manifest_that_is_not_an_object(raw):
    with pytest.raises(PahsError) as e:
        manifest_from_json(raw, Path("m.json"))
    one_line(e.value, "expected a manifest of format", "instead of an object")


def test_damaged_manifest_on_disk_through_the_clis(art, frames):
    edit_manifest(art, _set("size_multiple", "16"))
    cli_error(run_main([str(frames), "--engine", str(art), "-q"]), "pahs-run", "'size_multiple'", "'16'")
    cli_error(export_main(["verify", str(art)]), "pahs-export", "'size_multiple'")
    (art / MANIFEST).write_text("{not json")
    cli_error(run_main([str(frames), "--engine", str(art), "-q"]), "pahs-run", "expected JSON")


def _tensorrt_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(manifest)
    raw["format"] = "pahs-tensorrt/1"
    raw["engines"] = {role: f"{role}.plan" for role in raw.pop("graphs")}
    raw["sha256"] = {f"{role}.plan": "a" * 64 for role in raw["engines"]}
    raw["device"] = {"tensorrt": "10.13.0", "gpu": "NVIDIA H100", "compute_capability": "9.0"}
    raw["profile"] = {"min_size": [64, 64], "opt_size": [1280, 720], "max_size": [1920, 1088], "max_batch": 1}
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("device", _DROP), "expected 'device' to be dict"),
        (_set("device.tensorrt", 10), "expected 'device' tensorrt to be a string"),
        (_set("profile.min_size", "64x64"), "expected 'profile' min_size to be [width, height]"),
        (_set("profile.max_size", [1920, 0]), "the height of 'profile' max_size to be a positive integer"),
        (_set("profile.max_batch", "1"), "expected 'profile' max_batch to be a positive integer"),
        (_set("profile.fastest", True), "expected 'profile' keys among"),
        (_set("sha256", {}), "expected a sha256"),
    ],
)
def test_damaged_tensorrt_manifest_fields(manifest, change, message):
    raw = _tensorrt_manifest(manifest)
    assert manifest_from_json(copy.deepcopy(raw), Path("m.json")).is_tensorrt  # the untouched one is fine
    change(raw)
    with pytest.raises(PahsError) as e:
        manifest_from_json(raw, Path("m.json"))
    one_line(e.value, message)


def test_tensorrt_engines_are_verified_and_their_hint_says_rebuild(tmp_path, manifest):
    """What the TensorRT backend loads goes through the same verified_bytes (no TensorRT needed to check it)."""
    folder = tmp_path / "pahs.plan"
    folder.mkdir()
    raw = _tensorrt_manifest(manifest)
    for name in raw["engines"].values():
        (folder / name).write_bytes(f"engine {name}".encode())
        raw["sha256"][name] = file_sha256(folder / name)
    (folder / MANIFEST).write_text(json.dumps(raw))
    artifact = read_artifact(folder, TENSORRT_FORMAT)
    assert artifact.verified_bytes("fuse") == b"engine fuse.plan"
    (folder / "fuse.plan").write_bytes(b"another engine")
    with pytest.raises(PahsError) as e:
        artifact.verified_bytes("fuse")
    one_line(e.value, "fuse.plan does not match the sha256", "rebuild it with `pahs-export trt`")


def test_graph_with_a_renamed_input_is_refused_when_its_session_opens(art):
    """Rename fuse's feat_fwd input with the onnx library and re-hash it: the hash passes, the contract does not."""
    proto = onnx.load(str(art / "fuse.onnx"))
    for graph_input in proto.graph.input:
        if graph_input.name == "feat_fwd":
            graph_input.name = "feat_forward"
    for node in proto.graph.node:
        node.input[:] = ["feat_forward" if i == "feat_fwd" else i for i in node.input]
    onnx.save(proto, str(art / "fuse.onnx"))
    rehash(art, "fuse.onnx")
    with pytest.raises(PahsError) as e:
        OnnxRuntimeBackend(read_artifact(art))
    one_line(
        e.value,
        "expected the fuse ",
        "to have inputs frame [N,3,H,W], feat_fwd [N,48,H/4,W/4], feat_bwd [N,48,H/4,W/4] (graph contract)",
        "found frame [N,3,H,W], feat_forward [N,48,H/4,W/4], feat_bwd [N,48,H/4,W/4]",
    )


STATE = ["N", 48, "H/4", "W/4"]


@pytest.mark.parametrize(
    ("inputs", "found"),
    [
        ({"frame": ["N", 3, "H", "W"], "feat_fwd": STATE, "feat_bwd": ["N", 48, "H/4"]}, "feat_bwd [N,48,H/4]"),
        ({"frame": ["N", 3, "H", "W"], "feat_fwd": ["N", 92, "H/4", "W/4"], "feat_bwd": STATE}, "feat_fwd [N,92,"),
        ({"frame": [1, 3, 64, 96], "feat_fwd": STATE, "feat_bwd": STATE}, "frame [1,3,64,96]"),
    ],
    ids=["rank", "channels", "fixed-size"],
)
def test_graph_of_the_wrong_rank_or_shape_is_refused(art, inputs, found):
    (art / "fuse.onnx").write_bytes(identity_graph(inputs, {"restored": "frame"}))
    rehash(art, "fuse.onnx")
    with pytest.raises(PahsError) as e:
        OnnxRuntimeBackend(read_artifact(art))
    one_line(e.value, "expected the fuse", "to have inputs frame [N,3,H,W], feat_fwd [N,48,H/4,W/4]", found)


def test_graph_with_wrong_outputs_is_refused(art):
    inputs = {"frame": ["N", 3, "H", "W"], "feat_fwd": STATE, "feat_bwd": STATE}
    (art / "fuse.onnx").write_bytes(identity_graph(inputs, {"output": "frame"}))
    rehash(art, "fuse.onnx")
    with pytest.raises(PahsError) as e:
        OnnxRuntimeBackend(read_artifact(art))
    one_line(e.value, "to have outputs restored [N,3,H,W] (graph contract), found output")


def test_graph_onnxruntime_cannot_load_is_one_line(art):
    (art / "fuse.onnx").write_bytes(b"not an onnx graph")
    rehash(art, "fuse.onnx")
    with pytest.raises(PahsError) as e:
        OnnxRuntimeBackend(read_artifact(art))
    one_line(e.value, "expected an ONNX graph ONNX Runtime can load", "fuse.onnx")


def test_check_graph_io_accepts_tensorrt_style_dynamic_axes():
    """What the TensorRT backend passes: -1 for dynamic axes, ints for fixed ones."""

    def tensors(names: Sequence[str]) -> list[tuple[str, list[int]]]:
        return [(n, [-1, GEOMETRY.symbolic_shape(n)[1], -1, -1]) for n in names]

    inputs = tensors(("frame", "h_prev", "feat_prev"))
    check_graph_io("forward.plan", "forward", GEOMETRY, inputs, tensors(("h", "feat")))
    with pytest.raises(PahsError) as e:
        check_graph_io("forward.plan", "forward", GEOMETRY, inputs, tensors(("h",)))
    one_line(
        e.value, "expected the forward forward.plan to have outputs h [N,16,H/4,W/4], feat", "found h [-1,16,-1,-1]"
    )


# ----------------------------------------------------------------------------------- 2. non-finite weights


def _save_state(path: Path, state: dict[str, torch.Tensor], **metadata: str) -> Path:
    meta = {"format": CHECKPOINT_FORMAT, "preset": "pahs-t", "bidirectional": "true", **metadata}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(tmp_path, bad):
    state = build_model("pahs-t").state_dict()
    name = sorted(state)[5]
    state[name] = state[name].clone()
    state[name].view(-1)[3] = bad
    path = _save_state(tmp_path / "nan.safetensors", state)
    with pytest.raises(PahsError) as e:
        load_model(path)
    one_line(e.value, "expected finite weights", "found 1 NaN/Inf of the", repr(name), "use an earlier checkpoint")


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.uint8])
def test_integer_weights_are_refused_not_cast(tmp_path, dtype):
    state = build_model("pahs-t").state_dict()
    name = sorted(state)[0]
    state[name] = torch.ones_like(state[name], dtype=dtype)
    path = _save_state(tmp_path / "int.safetensors", state)
    with pytest.raises(PahsError) as e:
        load_model(path)
    one_line(e.value, "expected floating-point weights", repr(name), str(dtype).removeprefix("torch."))


def test_half_precision_weights_still_load(tmp_path):
    state = {k: v.half() for k, v in build_model("pahs-t").state_dict().items()}
    assert load_model(_save_state(tmp_path / "half.safetensors", state)).preset.name == "pahs-t"


def test_nan_checkpoint_through_pahs_run(tmp_path, frames):
    model = build_model("pahs-t")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = math.nan
    path = save_checkpoint(model, tmp_path / "nan.safetensors")
    out = tmp_path / "out"
    cli_error(run_main([str(frames), "--engine", str(path), "-o", str(out) + "/", "-q"]), "pahs-run", "NaN/Inf")
    assert not out.exists()


# ------------------------------------------------------- 3. checkpoint metadata, training state, devices


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"preset": None}, "to name a preset among pahs, pahs-s, pahs-t, pahs-tw, found None"),
        ({"preset": "pahs-xl"}, "to name a preset among pahs, pahs-s, pahs-t, pahs-tw, found 'pahs-xl'"),
        ({"bidirectional": None}, 'to say bidirectional "true" or "false", found None'),
        ({"bidirectional": "yes"}, 'to say bidirectional "true" or "false", found \'yes\''),
    ],
)
def test_checkpoint_metadata_without_preset_or_direction(tmp_path, metadata, message):
    meta = {"format": CHECKPOINT_FORMAT, "preset": "pahs-t", "bidirectional": "true"}
    meta.update(metadata)
    path = tmp_path / "w.safetensors"
    state = {k: v.contiguous() for k, v in build_model("pahs-t").state_dict().items()}
    save_file(state, str(path), metadata={k: v for k, v in meta.items() if v is not None})
    with pytest.raises(PahsError) as e:
        load_model(path)
    one_line(e.value, message, "re-save the weights with save_checkpoint()")


class NotPahs:
    """An object torch.load(weights_only=True) refuses (a class of the caller's)."""


RESUME_STATES = {
    "foreign pickle": (lambda p: torch.save({"config": NotPahs()}, p), "torch.load(weights_only=True) refuses"),
    "plain pickle": (lambda p: p.write_bytes(pickle.dumps(io.BytesIO)), "torch.load(weights_only=True) refuses"),
    "truncated": (lambda p: p.write_bytes(b"PK\x03\x04 truncated"), "a damaged or foreign file"),
    "empty": (lambda p: p.write_bytes(b""), "a damaged or foreign file"),
    "a list": (lambda p: torch.save([1, 2], p), "a list instead of a dict"),
    "no step": (lambda p: torch.save({"config": {}, "optimizer": {}}, p), "no valid 'step' entry"),
    "unknown settings": (
        lambda p: torch.save(
            {"config": {"colour": 1}, "step": 1, "optimizer": {}, "rng": torch.get_rng_state(), "best": 0.0}, p
        ),
        "settings that are not pahs-train's (colour)",
    ),
    "run seconds not a number": (
        lambda p: torch.save(
            {"config": {}, "step": 1, "optimizer": {}, "rng": torch.get_rng_state(), "best": 0.0, "run_seconds": "1"},
            p,
        ),
        "no valid 'run_seconds' entry",
    ),
}


@pytest.mark.parametrize("case", list(RESUME_STATES))
def test_resume_from_a_state_that_is_not_ours(tmp_path, case):
    write, message = RESUME_STATES[case]
    run = tmp_path / "run"
    run.mkdir()
    write(run / "train_state.pt")
    with pytest.raises(PahsError) as e:
        train(TrainConfig(steps=2, batch=1, frames=2, crop=32, workers=0), run, resume=True, progress=False)
    text = one_line(e.value, "expected a pahs training state in", message, "point --out at the run")
    assert "allow" not in text.lower() and "safe_globals" not in text and "io.open" not in text


def test_pahs_train_resume_with_a_foreign_state_is_one_line(tmp_path):
    from pahs.cli.train import train_main

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"config": NotPahs()}, run / "train_state.pt")
    line = cli_error(cli(train_main, ["-o", str(run), "--resume", "-q"]), "pahs-train", "not a state pahs-train wrote")
    assert "weights_only=True" in line and "io.open" not in line


def test_a_state_as_train_writes_it_still_loads(tmp_path):
    """The entries train() saves (tests/training/test_train.py resumes a real run end to end)."""
    cfg = TrainConfig(steps=1, batch=1, frames=2, crop=32, workers=0)
    optimizer = torch.optim.Adam(build_model("pahs-t").parameters())
    state = {"config": asdict(cfg), "step": 1, "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
    torch.save({**state, "best": -math.inf}, tmp_path / "train_state.pt")
    loaded = load_train_state(tmp_path / "train_state.pt")
    assert loaded["config"] == cfg and loaded["step"] == 1 and loaded["best"] == -math.inf


needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")


@needs_no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_on_a_machine_without_it(checkpoint, tmp_path, device):
    for attempt in (
        lambda: open_engine(checkpoint, "torch", device=device),
        lambda: TorchBackend(build_model("pahs-t"), device),
        lambda: load_model(checkpoint, device=device),
        lambda: train(TrainConfig(device=device), tmp_path / "run", progress=False),
    ):
        with pytest.raises(PahsError) as e:
            attempt()
        one_line(e.value, "expected a CUDA GPU for", device, "found none", "cpu")
    assert not (tmp_path / "run").exists()  # refused before anything is written


@needs_no_cuda
def test_cuda_through_pahs_run_is_one_line(checkpoint, frames):
    result = run_main([str(frames), "--engine", str(checkpoint), "--backend", "torch", "--device", "cuda", "-q"])
    cli_error(result, "pahs-run", "expected a CUDA GPU for --device cuda, found none")


def test_cuda_index_beyond_the_visible_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(PahsError) as e:
        parse_device("cuda:2")
    one_line(e.value, "expected --device cuda:N with N below 2", "found cuda:2", "use --device cuda:0 to cuda:1")


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "tensorrt"])
@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu", ""])
def test_unknown_device_for_every_backend(pristine, backend, device):
    with pytest.raises(PahsError) as e:
        open_engine(pristine, backend, device=device)
    one_line(e.value, "expected --device cpu, cuda or cuda:N", repr(device))


def test_unknown_device_through_pahs_run_and_training(frames, pristine, tmp_path):
    result = run_main([str(frames), "--engine", str(pristine), "--device", "gpu", "-q"])
    cli_error(result, "pahs-run", "expected --device cpu, cuda or cuda:N, found 'gpu'")
    with pytest.raises(PahsError, match="expected --device cpu, cuda or cuda:N, found 'gpu'"):
        train(TrainConfig(device="gpu"), tmp_path / "run", progress=False)


# ----------------------------------------------------------------------- 4. damaged cache of the default


@pytest.fixture(scope="module")
def cached_default(tmp_path_factory) -> Path:
    """The embedded default exported once into a cache, copied by each test into its own."""
    from pahs.export_cache import default_artifact

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAHS_CACHE", str(tmp_path_factory.mktemp("default-cache")))
        return default_artifact()


def _own_cache(monkeypatch, tmp_path: Path, cached_default: Path) -> Path:
    monkeypatch.setenv("PAHS_CACHE", str(tmp_path / "cache"))
    entry = tmp_path / "cache" / cached_default.name
    shutil.copytree(cached_default, entry)
    return entry


def _call_default() -> tuple[Path, str]:
    """The default artifact, and the warnings of the ``pahs`` logger meanwhile (as `pahs-run` shows them)."""
    from pahs.export_cache import default_artifact

    err = io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("pahs: %(message)s"))
    handler.setLevel(logging.WARNING)
    logging.getLogger("pahs").addHandler(handler)
    try:
        path = default_artifact()
    finally:
        logging.getLogger("pahs").removeHandler(handler)
    return path, err.getvalue()


def _truncate_graph(entry: Path) -> None:
    data = (entry / "fuse.onnx").read_bytes()
    (entry / "fuse.onnx").write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate_graph, "does not match the sha256"),
        (lambda e: (e / MANIFEST).write_text("{"), "expected JSON"),
    ],
    ids=["truncated-graph", "broken-manifest"],
)
def test_damaged_default_cache_is_exported_again(monkeypatch, tmp_path, cached_default, damage, reason):
    entry = _own_cache(monkeypatch, tmp_path, cached_default)
    damage(entry)
    path, err = _call_default()
    assert path == entry
    line = one_line(err, "pahs: the cached artifact", "is damaged", reason, "exporting it again")
    assert str(entry) in line
    read_artifact(path).check_hashes()  # whole again
    assert sorted(p.name for p in entry.parent.iterdir() if p.name != LOCKS) == [entry.name]  # nothing left beside it
    again, err = _call_default()  # and now it is simply used
    assert again == entry and err == ""
    assert open_engine(path).name == default_onnx_backend()


def test_losing_the_reexport_race_uses_the_winners_artifact(monkeypatch, tmp_path, cached_default):
    """Another process publishes the same export while ours is renamed into place (which then fails)."""
    import pahs.export_cache

    entry = _own_cache(monkeypatch, tmp_path, cached_default)
    _truncate_graph(entry)

    def other_process_wins(model, out, **kwargs) -> Path:
        shutil.rmtree(out)
        shutil.copytree(cached_default, out)  # theirs, published whole
        raise OSError(39, "Directory not empty")  # our rename onto it

    monkeypatch.setattr(pahs.export_cache, "artifact_from_model", other_process_wins)
    path, err = _call_default()
    assert path == entry and "exporting it again" in err
    read_artifact(path).check_hashes()


# ------------------------------------------------------------------------------- 5. frame counts below one


@pytest.mark.parametrize("frames_given", [0, -3])
def test_verify_frames_below_one(pristine, frames_given):
    with pytest.raises(PahsError) as e:
        verify_artifact(read_artifact(pristine), frames=frames_given)
    one_line(e.value, f"expected --frames N with N at least 1, found {frames_given}", "leave it out for 30")
    result = export_main(["verify", str(pristine), "--frames", str(frames_given)])
    cli_error(result, "pahs-export", "expected --frames N with N at least 1")


@pytest.mark.parametrize("limit", [0, -2])
def test_verify_video_limit_below_one(frames, limit):
    with pytest.raises(PahsError) as e:
        verify_video(frames, None, None, RunOptions(progress=False), limit)  # type: ignore[arg-type]
    one_line(e.value, f"expected --verify N with N at least 1, found {limit}", "--verify alone")


def test_pahs_run_verify_counts(frames, pristine):
    cli_error(run_main([str(frames), "--engine", str(pristine), "--verify", "0", "-q"]), "pahs-run", "found 0")
    status, out, err = run_main([str(frames), "--engine", str(pristine), "--verify", "-q"])  # bare: every frame
    assert status == 0, err
    assert f"PASS: {default_onnx_backend()} on cpu (fp32) vs PyTorch on cpu over 2 frames" in out


CONCURRENT = """
import sys
from pahs import open_backend
from pahs_export.artifact import read_artifact
backend = open_backend(None)
read_artifact(backend.artifact.path).check_hashes()
print("ok", backend.artifact.path)
"""


@pytest.mark.slow
def test_processes_repairing_the_cache_at_once_each_get_a_whole_artifact(monkeypatch, tmp_path, cached_default):
    """Three processes meet the same damaged entry at once: each re-exports or uses another's, none fails."""
    import subprocess
    import sys

    entry = _own_cache(monkeypatch, tmp_path, cached_default)
    _truncate_graph(entry)
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and out.startswith("ok"), err
        assert "Traceback" not in err
    read_artifact(entry).check_hashes()
