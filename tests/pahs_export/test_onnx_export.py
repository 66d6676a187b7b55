"""Single-step ONNX export: the contract, dynamic shapes, parity, shared weights, manifest, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from pahs.verify import reference_evaluator_check
from pahs_export import PahsError, build_model, save_checkpoint
from pahs_export.artifact import read_artifact
from pahs_export.atomic import file_sha256
from pahs_export.contract import ROLES
from pahs_export.onnx_export import TRACE_H, TRACE_W, artifact_from_model, example_inputs
from pahs_export.weights import resolve_model
from runtime.backends.ort_backend import OnnxRuntimeBackend
from runtime.driver import restore_clip

SOURCE = {"kind": "random-init", "seed": 0}


@pytest.fixture(scope="module")
def bidir_model():
    torch.manual_seed(3)
    return build_model("pahs-t")


@pytest.fixture(scope="module")
def bidir_artifact(tmp_path_factory, bidir_model):
    out = tmp_path_factory.mktemp("export") / "art"
    return read_artifact(artifact_from_model(bidir_model, out, source=SOURCE, include_checkpoint=True))


@pytest.fixture(scope="module")
def uni_model():
    torch.manual_seed(4)
    return build_model("pahs-t", bidirectional=False)


@pytest.fixture(scope="module")
def uni_artifact(tmp_path_factory, uni_model):
    out = tmp_path_factory.mktemp("export") / "uni"
    return read_artifact(artifact_from_model(uni_model, out, source=SOURCE))


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def expected_dims(name: str) -> list:
    c, h = 48, 16
    return {
        "frame": ["N", 3, "H", "W"],
        "restored": ["N", 3, "H", "W"],
        "h_prev": ["N", h, "H/4", "W/4"],
        "h": ["N", h, "H/4", "W/4"],
    }.get(name, ["N", c, "H/4", "W/4"])


@pytest.mark.parametrize("which", ["bidir", "uni"])
def test_contract_names_shapes_dynamic_axes(which, bidir_artifact, uni_artifact):
    art = bidir_artifact if which == "bidir" else uni_artifact
    expected_roles = {"forward", "backward", "fuse"} if which == "bidir" else {"step"}
    assert set(art.graphs) == expected_roles
    for role, path in art.graphs.items():
        proto = onnx.load(str(path))
        assert [i.name for i in proto.graph.input] == list(ROLES[role].inputs)
        assert [o.name for o in proto.graph.output] == list(ROLES[role].outputs)
        for vi in list(proto.graph.input) + list(proto.graph.output):
            assert dims(vi) == expected_dims(vi.name), (role, vi.name)
            assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert proto.opset_import[0].version >= 17
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)


def test_pprnn_weights_appear_once_per_graph(bidir_artifact):
    for role in ("forward", "backward"):
        proto = onnx.load(str(bidir_artifact.graphs[role]))
        names = [t.name for t in proto.graph.initializer]
        assert len(names) == len(set(names))
        pprnn = [n for n in names if ".pprnn." in n]
        assert len(pprnn) == 8  # 4 convs (2 in the block's ResBlock) x weight and bias, stored once
        uses = Counter(i for node in proto.graph.node for i in node.input if ".pprnn." in i)
        assert set(uses.values()) == {8}  # each used by all 2n = 8 applications


def test_export_at_one_size_runs_at_another(bidir_artifact, bidir_model):
    n, h, w = 2, 48, 176
    assert (h, w) != (TRACE_H, TRACE_W)
    for role, path in bidir_artifact.graphs.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = example_inputs(bidir_model, role, n, h, w)
        got = session.run(None, {k: x.numpy() for k, x in zip(ROLES[role].inputs, inputs, strict=True)})
        with torch.no_grad():
            want = getattr(bidir_model, ROLES[role].method)(*inputs)
        want = want if isinstance(want, tuple) else (want,)
        for g, x in zip(got, want, strict=True):
            assert g.shape == tuple(x.shape)
            np.testing.assert_allclose(g, x.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("w", "h"), [(80, 48), (112, 64)])
def test_multi_frame_parity_through_onnxruntime(bidir_artifact, bidir_model, w, h):
    clip = torch.rand(30, 3, h, w, generator=torch.Generator().manual_seed(w))
    out = restore_clip(OnnxRuntimeBackend(bidir_artifact), clip)
    with torch.no_grad():
        ref = bidir_model(clip[None], lookahead=None)[0]
    per_frame = (out - ref).abs().amax(dim=(1, 2, 3))
    assert per_frame.max() <= 1e-4, per_frame


def test_unidirectional_parity(uni_artifact, uni_model):
    clip = torch.rand(12, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    out = restore_clip(OnnxRuntimeBackend(uni_artifact), clip)
    with torch.no_grad():
        ref = uni_model(clip[None])[0]
    assert (out - ref).abs().max() <= 1e-4


def test_reference_evaluator_step(bidir_artifact, bidir_model, uni_artifact, uni_model):
    errors = reference_evaluator_check(bidir_artifact, bidir_model)
    assert set(errors) == {"forward", "backward", "fuse"} and max(errors.values()) <= 1e-4
    assert max(reference_evaluator_check(uni_artifact, uni_model).values()) <= 1e-4


def test_manifest_records_everything(bidir_artifact):
    m = bidir_artifact.manifest.to_json()
    assert m["preset"] == "pahs-t" and m["direction"] == "bidirectional" and m["precision"] == "fp32"
    assert m["channels"] == {"c": 48, "hidden": 16, "mid": 32} and m["opset"] >= 17
    assert m["graphs"] == {"forward": "forward.onnx", "backward": "backward.onnx", "fuse": "fuse.onnx"}
    assert set(m["versions"]) >= {"torch", "onnx"}
    files = sorted(p.name for p in bidir_artifact.path.iterdir() if p.name != "manifest.json")
    assert sorted(m["sha256"]) == files
    for name, digest in m["sha256"].items():
        assert file_sha256(bidir_artifact.path / name) == digest
    assert m["checkpoint"]["file"] == "checkpoint.safetensors"
    assert m["io"]["fuse"]["outputs"] == {"restored": ["N", 3, "H", "W"]}


def test_checkpoint_sha_recorded(tmp_path, bidir_model):
    ckpt = save_checkpoint(bidir_model, tmp_path / "w.safetensors")
    model, source = resolve_model(ckpt)
    art = read_artifact(artifact_from_model(model, tmp_path / "a", source=source))
    assert art.manifest.checkpoint["sha256"] == file_sha256(ckpt)
    assert "checkpoint.safetensors" not in art.manifest.sha256


def test_tampered_file_is_detected(tmp_path, bidir_model):
    art = read_artifact(artifact_from_model(bidir_model, tmp_path / "a", source=SOURCE))
    with open(art.graphs["fuse"], "ab") as f:
        f.write(b"\0")
    with pytest.raises(PahsError, match="does not match the sha256"):
        art.check_hashes()


THIRD_PARTY = r"""
import json, sys
import numpy as np, onnxruntime as ort
root = sys.argv[1]
m = json.load(open(root + "/manifest.json"))
s = {r: ort.InferenceSession(root + "/" + f, providers=["CPUExecutionProvider"]) for r, f in m["graphs"].items()}
clip = np.load(sys.argv[2])
T, _, H, W = clip.shape
zh = np.zeros((1, m["channels"]["hidden"], H // 4, W // 4), np.float32)
zf = np.zeros((1, m["channels"]["c"], H // 4, W // 4), np.float32)
h, f, fwd = zh, zf, []
for t in range(T):
    h, f = s["forward"].run(None, {"frame": clip[t:t+1], "h_prev": h, "feat_prev": f}); fwd.append(f)
h, f, out = zh, zf, [None] * T
for t in reversed(range(T)):
    h, f = s["backward"].run(None, {"frame": clip[t:t+1], "h_prev": h, "feat_prev": f})
    out[t] = s["fuse"].run(None, {"frame": clip[t:t+1], "feat_fwd": fwd[t], "feat_bwd": f})[0][0]
np.save(sys.argv[3], np.stack(out))
"""


def test_third_party_driver_from_manifest_alone(tmp_path, bidir_artifact, bidir_model):
    """Only manifest.json, numpy and onnxruntime (no pahs import) reproduce PyTorch within 1e-4."""
    clip = torch.rand(10, 3, 64, 80, generator=torch.Generator().manual_seed(5))
    np.save(tmp_path / "clip.npy", clip.numpy())
    script = tmp_path / "driver.py"
    script.write_text(THIRD_PARTY)
    subprocess.run(
        [
            sys.executable,
            "-I",
            str(script),
            str(bidir_artifact.path),
            str(tmp_path / "clip.npy"),
            str(tmp_path / "o.npy"),
        ],
        check=True,
        cwd=tmp_path,
    )
    with torch.no_grad():
        ref = bidir_model(clip[None], lookahead=None)[0].numpy()
    assert np.abs(np.load(tmp_path / "o.npy") - ref).max() <= 1e-4


def test_export_errors(tmp_path, bidir_model):
    with pytest.raises(PahsError, match="expected an opset from 17"):
        artifact_from_model(bidir_model, tmp_path / "x", source=SOURCE, opset=13)
    (tmp_path / "exists").mkdir()
    with pytest.raises(PahsError, match="already exists; pass --overwrite"):
        artifact_from_model(bidir_model, tmp_path / "exists", source=SOURCE)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PahsError, match="cannot write the artifact"):
        artifact_from_model(bidir_model, blocker / "sub" / "art", source=SOURCE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists", "file"]  # nothing half-written


def test_failed_export_leaves_nothing(tmp_path, bidir_model, monkeypatch):
    import pahs_export.onnx_export as ox

    def boom(*args, **kwargs):
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(ox, "graph_from_model", boom)
    with pytest.raises(RuntimeError):
        ox.artifact_from_model(bidir_model, tmp_path / "art", source=SOURCE)
    assert list(tmp_path.iterdir()) == []


def test_read_artifact_errors(tmp_path, bidir_artifact):
    with pytest.raises(PahsError, match="found nothing at"):
        read_artifact(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PahsError, match=r"expected manifest\.json inside"):
        read_artifact(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PahsError, match="expected a manifest of format 'pahs-onnx/1'"):
        read_artifact(bad)
    manifest = json.loads((bidir_artifact.path / "manifest.json").read_text())
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PahsError, match=r"graph .* is missing"):
        read_artifact(partial)


def test_polygraphy_inspect_and_run(bidir_artifact):
    exe = Path(sys.executable).parent / "polygraphy"
    if not exe.exists():
        pytest.skip("polygraphy is not installed (it comes with the dev extra)")
    graph = str(bidir_artifact.graphs["forward"])
    inspect = subprocess.run([str(exe), "inspect", "model", graph], capture_output=True, text=True, timeout=120)
    assert inspect.returncode == 0 and "h_prev" in inspect.stdout
    shapes = ["frame:[1,3,64,96]", "h_prev:[1,16,16,24]", "feat_prev:[1,48,16,24]"]
    run = subprocess.run(
        [str(exe), "run", graph, "--onnxrt", "--input-shapes", *shapes], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and "PASSED" in run.stdout + run.stderr


def test_importing_the_exporters_does_not_import_onnx():
    """`onnx` (a second of ml_dtypes on import) loads when a graph is made or read, not with the modules that
    `import pahs` pulls in; the manifest still records its version (test_manifest_records_everything)."""
    probe = "import sys, pahs, pahs_export.onnx_export, pahs_export.precision; print('onnx' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
