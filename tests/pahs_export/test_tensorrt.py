"""The TensorRT path: everything testable without TensorRT here, and the real build where TensorRT exists."""

from __future__ import annotations

import json

import pytest
import torch

from pahs_export import PahsError, build_model
from pahs_export.artifact import TENSORRT_FORMAT, read_manifest, write_manifest
from pahs_export.atomic import file_sha256
from pahs_export.contract import Geometry
from pahs_export.onnx_export import artifact_from_model
from pahs_export.tensorrt_artifact import (
    Device,
    Profile,
    check_compatible,
    check_in_profile,
    input_shapes,
    manifest_for,
)
from runtime.engines import engine_kind, open_engine

HERE = Device("10.13.0", "NVIDIA H100 80GB HBM3", "9.0")


def test_default_profile_covers_64_to_1088p():
    p = Profile()
    p.check()
    assert p.contains(1, 64, 64) and p.contains(1, 1920, 1088) and p.contains(1, 1280, 720)
    assert not p.contains(1, 1920, 1104) and not p.contains(2, 64, 64) and not p.contains(1, 48, 64)


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (Profile(min_size=(60, 64)), "multiples of 16"),
        (Profile(min_size=(1280, 720), opt_size=(640, 368)), "min <= opt <= max"),
        (Profile(opt_batch=2), "min <= opt <= max"),
    ],
)
def test_bad_profiles(profile, message):
    with pytest.raises(PahsError, match=message):
        profile.check()


def test_input_shapes_follow_the_contract():
    shapes = input_shapes("forward", Profile(max_batch=4, opt_batch=2), Geometry(channels=48, hidden=16, mid=32))
    assert shapes["frame"] == ((1, 3, 64, 64), (2, 3, 720, 1280), (4, 3, 1088, 1920))
    assert shapes["h_prev"] == ((1, 16, 16, 16), (2, 16, 180, 320), (4, 16, 272, 480))
    assert shapes["feat_prev"][2] == (4, 48, 272, 480)
    fuse = input_shapes("fuse", Profile(), Geometry(channels=48, hidden=16, mid=32))
    assert set(fuse) == {"frame", "feat_fwd", "feat_bwd"} and fuse["feat_bwd"][0] == (1, 48, 16, 16)


@pytest.fixture(scope="module")
def onnx_manifest(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("trt") / "onnx"
    artifact_from_model(build_model("pahs-t"), out, source={"kind": "random-init", "seed": 0})
    return out, read_manifest(out)


def make_trt_artifact(folder, onnx_manifest, device=HERE, profile=Profile()):
    path, manifest = onnx_manifest
    folder.mkdir()
    engines = {role: f"{role}.plan" for role in manifest.files}
    for name in engines.values():  # stand-ins: a manifest must hash every engine it names
        (folder / name).write_bytes(b"not a real engine")
    sha256 = {name: file_sha256(folder / name) for name in engines.values()}
    m = manifest_for(manifest, path, profile, device, engines, sha256, {"optimization_level": None})
    write_manifest(folder, m)
    return folder, m


def test_manifest_records_what_built_it(tmp_path, onnx_manifest):
    folder, m = make_trt_artifact(tmp_path / "pahs.plan", onnx_manifest)
    back = read_manifest(folder)
    assert back.to_json() == json.loads(json.dumps(m.to_json())) and back.format == TENSORRT_FORMAT
    assert back.device == {"tensorrt": "10.13.0", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    assert back.profile["opt_size"] == [1280, 720] and back.precision == "fp32"
    assert set(back.source["onnx_sha256"]) == {"forward", "backward", "fuse"}
    assert "calibration_sha256" in back.source and engine_kind(folder) == "tensorrt"


def test_compatibility_checks_name_what_to_rebuild(tmp_path, onnx_manifest):
    _, m = make_trt_artifact(tmp_path / "pahs.plan", onnx_manifest)
    check_compatible(m, HERE)
    check_compatible(m, Device("10.13.0", "NVIDIA H100 PCIe", "9.0"))  # same capability: allowed
    with pytest.raises(PahsError, match=r"expected TensorRT 10\.13\.0 .* found 11\.1\.0; rebuild"):
        check_compatible(m, Device("11.1.0", HERE.gpu, "9.0"))
    with pytest.raises(PahsError, match=r"compute capability 9\.0 .* found 8\.9 .*rebuild the engines"):
        check_compatible(m, Device("10.13.0", "NVIDIA L4", "8.9"))


def test_frame_outside_profile_is_a_clear_error(tmp_path, onnx_manifest):
    _, m = make_trt_artifact(tmp_path / "p.plan", onnx_manifest, profile=Profile(max_size=(640, 368)))
    check_in_profile(m, 1, 640, 368)
    with pytest.raises(PahsError, match=r"within the engine's profile .* found 1280x720 .*--max 1280x720"):
        check_in_profile(m, 1, 1280, 720)


def test_bare_plan_file_and_missing_tensorrt(tmp_path, onnx_manifest):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"\0")
    with pytest.raises(PahsError, match="bare engine file"):
        engine_kind(plan)
    folder, _ = make_trt_artifact(tmp_path / "pahs.plan", onnx_manifest)
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(PahsError, match="TensorRT is not installed"):
        open_engine(folder)
    with pytest.raises(PahsError, match="the tensorrt backend runs artifacts from `pahs-export trt`"):
        open_engine(onnx_manifest[0], backend="tensorrt")


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_build_and_run_engines(tmp_path, onnx_manifest, cuda_graphs):
    """On a machine with TensorRT and a GPU: build FP32 engines and match PyTorch within 1e-3 over 8 frames,
    eagerly and replaying CUDA graphs."""
    from pahs_export.artifact import read_artifact
    from pahs_export.tensorrt_build import BuildOptions, trt_artifact_from_onnx
    from pahs_export.weights import reference_model
    from runtime.driver import restore_clip

    path, _ = onnx_manifest
    out = trt_artifact_from_onnx(
        path, tmp_path / "pahs.plan", BuildOptions(Profile(opt_size=(128, 64), max_size=(256, 128)))
    )
    backend = open_engine(out, cuda_graphs=cuda_graphs)
    art = read_artifact(path)
    model = reference_model(art)
    clip = torch.rand(8, 3, 64, 128)
    with torch.no_grad():
        ref = model(clip[None], lookahead=None)[0]
    assert (restore_clip(backend, clip).cpu() - ref).abs().max() < 1e-3
    if cuda_graphs:  # forward and backward: one graph per state-buffer parity; fuse: one
        assert backend.steps.graph_count == 5
