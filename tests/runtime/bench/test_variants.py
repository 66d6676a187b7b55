"""Which variants a bench runs and from which engine: the bench's own exports, or prepared --engine artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pahs import bench_variants
from pahs.bench_variants import (
    BACKEND_KINDS,
    CPU_VARIANTS,
    VARIANTS,
    Engine,
    _Artifacts,
    plan_variants,
    run_bench,
)
from pahs_export.errors import PahsError
from runtime.constants import default_onnx_backend
from runtime.engines import OPENERS

FP16_PLAN = Engine(Path("pahs-t-fp16.plan"), "tensorrt", "pahs-t", "fp16")  # described, never opened here


def test_variants_open_the_engine_kind_of_their_backend():
    assert set(BACKEND_KINDS) == set(OPENERS)  # every backend pahs-run can open, and no other
    assert {v.kind for v in VARIANTS.values()} == {"checkpoint", "onnx", "tensorrt"}
    assert {VARIANTS[n].kind for n in ("openvino-fp32", "openvino-fp16", "openvino-int8")} == {"onnx"}
    assert VARIANTS["torch-cuda-bf16"].autocast == "bf16" and VARIANTS["torch-cuda"].autocast is None
    assert VARIANTS["onnxruntime-fp16"].autocast is None
    assert all(VARIANTS[n].device == "cpu" for n in CPU_VARIANTS)
    assert all(v.device == "cuda" for n, v in VARIANTS.items() if n.startswith("tensorrt"))


def test_variant_names_spell_backend_and_precision_as_the_options_do():
    """`<backend>[-cuda][-<precision>][-graphs]`; an INT8 variant of a CPU runtime runs the CPU-target graph
    (`--precision int8` on a CPU runtime), `onnxruntime-int8-tensorrt` TensorRT's conventions."""
    for name, v in VARIANTS.items():
        assert name.startswith(v.backend)
        assert v.precision in name or (v.precision == "fp32" and v.backend in ("torch", "tensorrt"))
        assert ("-graphs" in name) == v.cuda_graphs
        assert (v.int8_target is not None) == (v.precision == "int8" and v.kind == "onnx")
    assert VARIANTS["onnxruntime-int8"].int8_target == VARIANTS["openvino-int8"].int8_target == "cpu"
    assert VARIANTS["onnxruntime-int8-tensorrt"].int8_target == "tensorrt"
    assert "openvino-int8-tensorrt" not in VARIANTS and "onnxruntime-int8-cpu" not in VARIANTS


def test_cpu_int8_export_is_shared_by_onnxruntime_and_openvino(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(bench_variants, "artifact_from_model", lambda *a, **k: made.append(k) or Path(a[1]))
    monkeypatch.setattr(bench_variants, "load_model", lambda path: None)
    artifacts = _Artifacts("pahs-t", tmp_path)
    monkeypatch.setattr(artifacts, "checkpoint", lambda: tmp_path / "t.safetensors")
    paths = {n: artifacts.get(VARIANTS[n]) for n in ("onnxruntime-int8", "openvino-int8", "onnxruntime-int8-tensorrt")}
    assert paths["onnxruntime-int8"] == paths["openvino-int8"] != paths["onnxruntime-int8-tensorrt"]
    assert [(k["precision"], k["int8"].target) for k in made] == [("int8", "cpu"), ("int8", "tensorrt")]
    assert artifacts.get(VARIANTS["openvino-fp16"]) == artifacts.get(VARIANTS["onnxruntime-fp16"])


def test_default_plan_is_the_cpu_variants():
    assert list(plan_variants(None)) == list(CPU_VARIANTS)
    assert {"torch", "onnxruntime-int8", "openvino-fp32", "openvino-int8"} <= set(CPU_VARIANTS)
    assert list(plan_variants(None, device="cpu")) == list(CPU_VARIANTS)


def test_device_picks_the_gpu_of_the_cuda_variants():
    plan = plan_variants(["torch", "torch-cuda-fp16", "tensorrt-fp16"], [FP16_PLAN], device="cuda:1")
    assert plan["torch"].device == "cpu"
    assert plan["torch-cuda-fp16"].device == plan["tensorrt-fp16"].device == "cuda:1"
    assert plan_variants(["torch-cuda"])["torch-cuda"].device == "cuda"


def test_device_cpu_refuses_cuda_variants_and_tensorrt_engines():
    with pytest.raises(PahsError, match="only CPU variants with --device cpu, found torch-cuda; drop them"):
        plan_variants(["torch", "torch-cuda"], device="cpu")
    with pytest.raises(PahsError, match=r"found --engine pahs-t-fp16.plan"):
        plan_variants(None, [FP16_PLAN], device="cpu")


def test_tensorrt_engine_serves_the_variants_of_its_precision():
    plan = plan_variants(None, [FP16_PLAN])
    assert list(plan) == [*CPU_VARIANTS, "tensorrt-fp16", "tensorrt-fp16-graphs"]
    assert plan["tensorrt-fp16"].engine == plan["tensorrt-fp16-graphs"].engine == FP16_PLAN
    assert plan["tensorrt-fp16-graphs"].cuda_graphs
    plan = plan_variants(["tensorrt-fp16", "tensorrt-int8"], [FP16_PLAN])
    assert plan["tensorrt-int8"].engine is None  # no int8 engine: skipped when run


def test_tensorrt_engine_must_match_a_requested_variant():
    with pytest.raises(PahsError, match=r"--backends to include tensorrt-fp16 or tensorrt-fp16-graphs"):
        plan_variants(["torch", "tensorrt-int8"], [FP16_PLAN])
    with pytest.raises(PahsError, match="precision fp16 or int8, found fp32"):
        plan_variants(None, [Engine(Path("x.plan"), "tensorrt", "pahs-t", "fp32")])
    with pytest.raises(PahsError, match="one TensorRT fp16 engine"):
        plan_variants(None, [FP16_PLAN, Engine(Path("other"), "tensorrt", "pahs-t", "fp16")])


def test_engine_presets_must_be_benched():
    with pytest.raises(PahsError, match="--presets to include pahs-t"):
        plan_variants(["torch"], [FP16_PLAN], presets=["pahs-s"])
    with pytest.raises(PahsError, match="unknown backend variant 'tensorrt'"):
        plan_variants(["tensorrt"])


def test_other_engines_add_named_variants(artifact, checkpoint):
    onnx, ckpt = Engine.read(artifact), Engine.read(checkpoint)
    assert (onnx.kind, onnx.preset, onnx.precision) == ("onnx", "pahs-t", "fp32")
    plan = plan_variants(["torch"], [onnx, ckpt])
    name = f"{default_onnx_backend()}-fp32 ({artifact.name})"  # the CPU default of ONNX artifacts
    assert list(plan) == ["torch", name, f"torch-fp32 ({checkpoint.name})"]
    assert plan[name].engine == onnx


def test_an_int8_engine_in_tensorrt_conventions_is_benched_where_pahs_run_runs_it(monkeypatch, int8_tensorrt_artifact):
    """Its variant is the backend `pahs-run` picks for it: onnxruntime, even where openvino is the fastest."""
    monkeypatch.setattr("runtime.engines.default_onnx_backend", lambda device=None: "openvino")
    plan = plan_variants(["torch"], [Engine.read(int8_tensorrt_artifact)])
    assert list(plan) == ["torch", f"onnxruntime-int8 ({int8_tensorrt_artifact.name})"]


def test_tensorrt_without_cuda_is_skipped_first(tmp_path, monkeypatch):
    """Without CUDA every CUDA variant is skipped with the same reason, even one that has its engine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = run_bench(
        ["pahs-t"], [(32, 32)], ["tensorrt-fp16", "tensorrt-int8"], 2, 1, 1, 1, tmp_path, log=lambda m: None,
        engines=[FP16_PLAN],
    )  # fmt: skip
    assert report.results == []
    assert report.skipped["tensorrt-fp16"] == report.skipped["tensorrt-int8"] == "needs a CUDA GPU"


def test_tensorrt_without_engine_says_how_to_make_one(tmp_path):
    with pytest.raises(PahsError, match=r"`pahs-export trt`.*--engine") as e:
        _Artifacts("pahs-t", tmp_path).get(VARIANTS["tensorrt-int8"])
    assert "\n" not in str(e.value)
