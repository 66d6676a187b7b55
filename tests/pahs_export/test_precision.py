"""FP16 and INT8 (Q/DQ) graphs: conventions checked on the graphs, the calibration cache, errors.

Quality thresholds on the trained default weights live in test_precision_quality.py.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import pahs_export.onnx_export as onnx_export
from calibration.data import CalibrationSet, load_clips, record_feeds
from pahs_export import PahsError, build_model
from pahs_export.artifact import read_artifact
from pahs_export.precision import FINAL_CONV, FULL_RESOLUTION_BLOCKS, Int8Options, attention_core_nodes
from runtime.backends.ort_backend import OnnxRuntimeBackend
from runtime.driver import restore_clip

TINY = CalibrationSet(clips=1, frames=3, size=48)
# 3 frames of random-weight activations are too little for histogram calibration (see test_histogram_error)
MINMAX = Int8Options(method="minmax")
SOURCE = {"kind": "random-init", "seed": 0}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(11)
    return build_model("pahs-t")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def int8(tmp_path_factory, model, cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAHS_CACHE", str(cache))
        out = tmp_path_factory.mktemp("int8") / "art"
        return read_artifact(
            onnx_export.artifact_from_model(model, out, source=SOURCE, precision="int8", int8=MINMAX, calibration=TINY)
        )


@pytest.fixture(scope="module")
def fp16(tmp_path_factory, model):
    out = tmp_path_factory.mktemp("fp16") / "art"
    return read_artifact(onnx_export.artifact_from_model(model, out, source=SOURCE, precision="fp16"))


def initializers(proto):
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def producers(proto):
    return {o: n for n in proto.graph.node for o in n.output}


def test_int8_graphs_valid_and_quantized(int8):
    assert int8.precision == "int8"
    for path in int8.graphs.values():
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
        ops = {n.op_type for n in proto.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_qdq_conventions_tensorrt(int8):
    """Symmetric int8 (zero points 0), per-channel weights on the output-channel axis, per-tensor
    activations, biases left in float (no int32 bias DequantizeLinear)."""
    for role, path in int8.graphs.items():
        proto = onnx.load(str(path))
        init = initializers(proto)
        consumers = {}
        for n in proto.graph.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        for node in proto.graph.node:
            if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
                continue
            zero_point = init.get(node.input[2]) if len(node.input) > 2 else None
            assert zero_point is not None and not zero_point.any(), f"{role}: {node.name} zero point not 0"
            assert zero_point.dtype == np.int8
            x = node.input[0]
            if node.op_type == "DequantizeLinear" and x in init:  # a weight (or a bias, which must not be here)
                assert init[x].dtype == np.int8, f"{role}: {node.name} dequantizes {init[x].dtype} (int32 bias?)"
                users = consumers[node.output[0]]
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                scale = init[node.input[1]]
                assert scale.ndim == 1 and scale.size == init[x].shape[axis] > 1, f"{role}: {node.name} not per-channel"
                expected_axis = 1 if users[0].op_type == "ConvTranspose" else 0
                assert axis == expected_axis, f"{role}: {node.name} axis {axis} for {users[0].op_type}"
            elif node.op_type == "QuantizeLinear" and x not in init:  # an activation: one scale
                assert init[node.input[1]].size == 1, f"{role}: activation {x} not per-tensor"
        for node in proto.graph.node:  # biases of quantized convs stay float initializers
            if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 2:
                assert node.input[2] in init and init[node.input[2]].dtype == np.float32


def test_excluded_nodes_have_no_qdq(int8):
    """No Q/DQ pair inside the float region (between two excluded nodes) and no quantized weight on an
    excluded node; the region may read a dequantized tensor at its boundary, as any float island does."""
    for role, path in int8.graphs.items():
        proto = onnx.load(str(path))
        prod = producers(proto)
        init = initializers(proto)
        excluded = set(int8.manifest.precision_details[role]["excluded_nodes"])
        if role in ("forward", "backward"):
            assert excluded >= set(attention_core_nodes(proto)) and len(excluded) >= 9
        if role == "fuse":
            assert FINAL_CONV in excluded and any(
                n.name in excluded and "restored" in n.output for n in proto.graph.node
            )
            full_resolution = {n.name for n in proto.graph.node if n.name.startswith(FULL_RESOLUTION_BLOCKS)}
            assert sum(n.endswith("/Conv") for n in full_resolution) == 6 and excluded >= full_resolution
        for node in proto.graph.node:
            if node.name not in excluded:
                continue
            for i in node.input:
                dq = prod.get(i)
                if dq is None or dq.op_type != "DequantizeLinear":
                    continue
                assert dq.input[0] not in init, f"{role}: excluded {node.name} has a quantized weight"
                q = prod.get(dq.input[0])
                inner = prod.get(q.input[0]) if q is not None else None
                assert inner is None or inner.name not in excluded, (
                    f"{role}: Q/DQ inside the float region at {node.name}"
                )


def test_fp16_keeps_attention_core_in_fp32(fp16):
    for role, path in fp16.graphs.items():
        proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
        types = {vi.name: vi.type.tensor_type.elem_type for vi in proto.graph.value_info}
        types.update(
            {vi.name: vi.type.tensor_type.elem_type for vi in list(proto.graph.input) + list(proto.graph.output)}
        )
        kept = set(fp16.manifest.precision_details[role]["fp32_nodes"])
        nodes = {n.name: n for n in proto.graph.node}
        if role in ("forward", "backward"):
            ops = {nodes[k].op_type for k in kept}
            assert {"MatMul", "Softmax", "Sigmoid", "ReduceMean"} <= ops
        for name in kept:
            for t in nodes[name].output:
                assert types[t] == onnx.TensorProto.FLOAT, f"{role}: {name} output {t} is not fp32"
        convs = [n for n in proto.graph.node if n.op_type == "Conv"]
        init = initializers(proto)
        assert all(init[c.input[1]].dtype == np.float16 for c in convs), f"{role}: a conv weight is not fp16"
        for vi in list(proto.graph.input) + list(proto.graph.output):  # the contract's I/O stays fp32
            assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("which", ["fp16", "int8"])
def test_precision_graphs_run_close_to_fp32(which, fp16, int8, model):
    art = fp16 if which == "fp16" else int8
    clip = torch.rand(4, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    out = restore_clip(OnnxRuntimeBackend(art), clip)
    with torch.no_grad():
        ref = model(clip[None], lookahead=None)[0]
    assert out.shape == ref.shape and torch.isfinite(out).all()
    # random weights on noise frames: a sanity bound only; the quality targets are tested on trained weights
    err = (out - ref).abs()
    assert (err.max() < 1e-2) if which == "fp16" else (err.mean() < 1e-2)


def test_calibration_feeds_carry_real_state(model):
    feeds = record_feeds(model, load_clips(TINY))
    assert set(feeds) == {"forward", "backward", "fuse"} and len(feeds["forward"]) == 3
    assert set(feeds["fuse"][0]) == {"frame", "feat_fwd", "feat_bwd"}
    assert not feeds["forward"][0]["h_prev"].any()  # the first step starts from zeros ...
    assert np.abs(feeds["forward"][1]["h_prev"]).max() > 0  # ... later ones carry the real state
    assert np.abs(feeds["backward"][1]["feat_prev"]).max() > 0


def test_calibration_cache_reused_and_invalidated(tmp_path, model, monkeypatch, int8, cache):
    monkeypatch.setenv("PAHS_CACHE", str(cache))
    calls = []
    import calibration.data as cd

    orig_record = cd.record_feeds
    monkeypatch.setattr(cd, "record_feeds", lambda *a, **k: calls.append(1) or orig_record(*a, **k))
    second = read_artifact(
        onnx_export.artifact_from_model(
            model, tmp_path / "again", source=SOURCE, precision="int8", int8=MINMAX, calibration=TINY
        )
    )
    assert second.manifest.calibration["from_cache"] and calls == []
    assert second.manifest.calibration["cache_keys"] == int8.manifest.calibration["cache_keys"]
    for role in int8.graphs:  # the same ranges give the same graph
        assert second.manifest.sha256[f"{role}.onnx"] == int8.manifest.sha256[f"{role}.onnx"]
    # other data: recalibrated
    other = CalibrationSet(clips=1, frames=3, size=48, seed=999)
    third = read_artifact(
        onnx_export.artifact_from_model(
            model, tmp_path / "data", source=SOURCE, precision="int8", int8=MINMAX, calibration=other
        )
    )
    assert not third.manifest.calibration["from_cache"] and calls == [1]
    # another model: recalibrated
    torch.manual_seed(12)
    fourth = read_artifact(
        onnx_export.artifact_from_model(
            build_model("pahs-t"), tmp_path / "model", source=SOURCE, precision="int8", int8=MINMAX, calibration=TINY
        )
    )
    assert not fourth.manifest.calibration["from_cache"] and calls == [1, 1]


def test_calibration_input_errors(tmp_path, model):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PahsError, match="found nothing at"):
        load_clips(CalibrationSet(paths=(str(tmp_path / "missing"),)))
    with pytest.raises(PahsError):
        load_clips(CalibrationSet(paths=(str(tmp_path / "empty"),)))
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(PahsError):
        load_clips(CalibrationSet(paths=(str(bad),)))


def test_unknown_precision_and_method(tmp_path, model):
    with pytest.raises(PahsError, match="expected a precision among fp32, fp16, int8"):
        onnx_export.artifact_from_model(model, tmp_path / "x", source=SOURCE, precision="int4")
    with pytest.raises(PahsError, match="calibration method"):
        onnx_export.artifact_from_model(
            model, tmp_path / "y", source=SOURCE, precision="int8", int8=Int8Options(method="magic"), calibration=TINY
        )
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.fixture(scope="module")
def int8_cpu(tmp_path_factory, model, cache):
    """The "cpu" INT8 target (uint8 activations), exported once for the tests below."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAHS_CACHE", str(cache))
        out = tmp_path_factory.mktemp("int8cpu") / "art"
        cpu = Int8Options(target="cpu", method="minmax")
        return onnx_export.artifact_from_model(model, out, source=SOURCE, precision="int8", int8=cpu, calibration=TINY)


def test_cpu_target_runs_real_int8_kernels(tmp_path, int8_cpu):
    """The "cpu" target: ONNX Runtime fuses every quantized conv into QLinearConv."""
    import onnxruntime as ort

    art = read_artifact(int8_cpu)
    assert {d["target"] for d in art.manifest.precision_details.values()} == {"cpu"}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(art.graphs["forward"]), opts, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    excluded = len(art.manifest.precision_details["forward"]["excluded_nodes"])
    assert ops.count("QLinearConv") >= 70 and ops.count("Conv") <= 3, (ops.count("QLinearConv"), excluded)


def weight_ranges(art) -> tuple[int, int]:
    """The smallest and largest quantized weight over every graph of ``art``."""
    values = []
    for path in art.graphs.values():
        proto = onnx.load(str(path))
        init = initializers(proto)
        values += [init[n.input[0]] for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init]
    return min(int(v.min()) for v in values), max(int(v.max()) for v in values)


def test_weight_bits_per_target(int8, int8_cpu):
    """TensorRT's graphs use all 8 bits of their weights (per-channel symmetric: each channel's largest magnitude
    becomes 127); the cpu target's are 7-bit, which ONNX Runtime's and oneDNN's AVX2 kernels cannot saturate."""
    assert weight_ranges(int8) == (-127, 127)
    low, high = weight_ranges(read_artifact(int8_cpu))
    assert -64 <= low and high <= 64 and max(-low, high) >= 63  # ONNX Runtime's 7 bits: -64..64


def test_onnxruntime_runs_tensorrt_graphs_as_written(int8):
    """TensorRT-target INT8 through ONNX Runtime: quantize, dequantize and float arithmetic, as the graph says
    (no Q/DQ fusion into its integer kernels), equal to a session that runs the graph without any optimization."""
    import onnxruntime as ort

    backend = OnnxRuntimeBackend(int8)
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    rng = np.random.default_rng(0)
    for role, session in backend.sessions.items():
        reference = ort.InferenceSession(str(int8.graphs[role]), plain, providers=["CPUExecutionProvider"])
        shapes = {i.name: int8.geometry.shape(i.name, 1, 32, 48) for i in session.get_inputs()}
        feed = {name: rng.random(shape, np.float32) for name, shape in shapes.items()}
        for a, b in zip(session.run(None, feed), reference.run(None, feed), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=role)


def test_trt_refuses_cpu_target(int8_cpu):
    import subprocess
    import sys

    code = "import sys; from pahs.cli.export import main; sys.argv[0] = 'pahs-export'; sys.exit(main())"
    r = subprocess.run(
        [sys.executable, "-c", code, "trt", "--int8", "--onnx", str(int8_cpu)], capture_output=True, text=True
    )
    assert r.returncode == 2 and "TensorRT's conventions, found --int8-target cpu" in r.stderr


def test_histogram_error(tmp_path, model, monkeypatch):
    """One calibration frame: h_prev is all zeros, which ORT's percentile calibrator cannot histogram."""
    monkeypatch.setenv("PAHS_CACHE", str(tmp_path / "cache"))
    one = CalibrationSet(clips=1, frames=1, size=32)
    with pytest.raises(PahsError, match=r"vary over the calibration data .* or use minmax"):
        onnx_export.artifact_from_model(model, tmp_path / "x", source=SOURCE, precision="int8", calibration=one)
    assert not (tmp_path / "x").exists()


def test_the_quantizer_leaves_the_root_logger_as_it_was(tmp_path, model, cache, monkeypatch):
    """ORT's quantizer logs through ``logging.warning``, which gives an unconfigured root logger a handler: every
    later ``pahs`` message then printed twice (``INFO:pahs:…``). The export puts the root logger back."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a plain process: pytest's own capture handlers are not there
    monkeypatch.setenv("PAHS_CACHE", str(cache))
    out = tmp_path / "a"
    onnx_export.artifact_from_model(model, out, source=SOURCE, precision="int8", int8=MINMAX, calibration=TINY)
    assert root.handlers == []
