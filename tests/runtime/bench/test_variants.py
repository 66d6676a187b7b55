"""Which variants a bench runs and from which engine: the bench's own exports, or prepared --engine artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pahs_export.errors import PahsError
from runtime.bench import variants as bench_variants
from runtime.bench.variants import CPU_VARIANTS, VARIANTS, Engine, _Artifacts, plan_variants, run_bench

FP16_PLAN = Engine(Path("pahs-t-fp16.plan"), "tensorrt", "pahs-t", "fp16")  # described, never opened here


def test_variants_open_the_engine_kind_of_their_backend():
    assert {v.kind for v in VARIANTS.values()} == {"checkpoint", "onnx", "tensorrt"}
    assert VARIANTS["torch-cuda-bf16"].autocast == "bf16" and VARIANTS["torch-cuda"].autocast is None
    assert VARIANTS["onnxruntime-fp16"].autocast is None
    assert all(VARIANTS[n].device == "cpu" for n in CPU_VARIANTS)
    assert all(v.device == "cuda" for n, v in VARIANTS.items() if n.startswith("tensorrt"))


def test_default_plan_is_the_cpu_variants():
    assert list(plan_variants(None)) == list(CPU_VARIANTS)


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
    assert list(plan) == ["torch", f"onnxruntime-fp32 ({artifact.name})", f"torch-fp32 ({checkpoint.name})"]
    assert plan[f"onnxruntime-fp32 ({artifact.name})"].engine == onnx


def test_tensorrt_without_cuda_is_skipped_first(tmp_path, monkeypatch):
    """Without CUDA every CUDA variant is skipped with the same reason, even one that has its engine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bench_variants, "matmul_ceiling", lambda: 1.0)
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
