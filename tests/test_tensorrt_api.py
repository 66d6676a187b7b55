"""Our TensorRT code against TensorRT's real API: the 11.4 bindings module and the 10.13 stubs.

Every attribute our code reaches on the tensorrt module, its classes and their instances must exist in both
versions (or sit behind a `hasattr` guard, and then exist in one), and every call must fit a signature of
both; mypy then checks argument types against each version's stubs. How the surfaces are made:
tests/trt_api.py. What this proves and what it does not: docs/TENSORRT.md.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import trt_api

REASON_PLATFORM = "the TensorRT 11.4 bindings wheel is built for CPython 3.11 on x86_64 Linux only"
pytestmark = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64" or sys.platform != "linux",
    reason=REASON_PLATFORM,
)


@pytest.fixture(scope="module")
def stub_dirs(tmp_path_factory) -> tuple[Path, Path]:
    folder = Path(os.environ.get("PAHS_TRT_API_DIR") or tmp_path_factory.mktemp("trt-api"))
    try:
        return trt_api.prepare(folder)
    except (trt_api.Unavailable, subprocess.TimeoutExpired) as e:
        pytest.skip(f"TensorRT's API surface could not be fetched or built here: {e}")


@pytest.fixture(scope="module")
def surfaces(stub_dirs) -> list[trt_api.Surface]:
    return trt_api.load_surfaces(*stub_dirs)


def uses_of(path: Path, surfaces) -> list[trt_api.Use]:
    return trt_api.collect_uses(path.read_text(), str(path.relative_to(trt_api.ROOT)), surfaces[0])


def test_the_surfaces_are_the_two_real_versions(surfaces):
    v11, v10 = surfaces
    for s in surfaces:
        assert {"Builder", "IBuilderConfig", "OnnxParser", "Runtime", "ICudaEngine", "IExecutionContext"} <= set(
            s.classes
        )
        assert s.member("Logger", "WARNING") is not None  # inherited from ILogger, where the enum is exported
    # TensorRT 11 removed the FP16/INT8 builder flags that 10.x still has (its docstrings still name them)
    assert v10.member("BuilderFlag", "FP16") is not None and v11.member("BuilderFlag", "FP16") is None
    assert v11.module["__version__"].kind == "value"


def test_our_tensorrt_code_names_only_real_members(surfaces):
    files = trt_api.our_tensorrt_files()
    names = {p.name for p in files}
    assert {"tensorrt_build.py", "tensorrt_artifact.py", "trt_backend.py"} <= names
    uses = [u for f in files for u in uses_of(f, surfaces)]
    assert trt_api.problems(uses, surfaces) == []
    reached = {(u.owner[1] if len(u.owner) > 1 else "tensorrt", u.name) for u in uses}
    # through typed objects, not only module attributes: the builder, config, parser, profile, runtime, engine,
    # context, timing cache and progress monitor are all reached
    assert {
        ("Builder", "create_network"),
        ("Builder", "build_serialized_network"),
        ("IBuilderConfig", "set_timing_cache"),
        ("IBuilderConfig", "progress_monitor"),
        ("OnnxParser", "parse"),
        ("ICudaEngine", "get_tensor_mode"),
        ("IOptimizationProfile", "set_shape"),
        ("Runtime", "deserialize_cuda_engine"),
        ("Runtime", "engine_host_code_allowed"),
        ("ICudaEngine", "create_execution_context"),
        ("IExecutionContext", "execute_async_v3"),
        ("ITimingCache", "serialize"),
        ("IProgressMonitor", "__init__"),
        ("BuilderFlag", "TF32"),
    } <= reached
    assert len(uses) >= 40


BAD = """
import tensorrt as trt


def build(cache: trt.ITimingCache) -> None:
    logger = trt.Logger(trt.Logger.WARNING, 3)
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_timing_cache(cache)
    network = builder.create_netwrk(0)
    if hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
    if hasattr(trt.BuilderFlag, "FP61"):
        config.set_flag(trt.BuilderFlag.FP61)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(b"")
    context = engine.create_execution_context()
    context.execute_async(0)
"""


def test_misspelled_removed_or_miscalled_members_fail(surfaces):
    found = trt_api.problems(trt_api.collect_uses(BAD, "bad.py", surfaces[0]), surfaces)
    expected = [
        "bad.py:6: TensorRT 11.4's tensorrt.Logger takes no call with 2 positional argument(s)",
        "bad.py:9: TensorRT 11.4 has no BuilderFlag.FP16",  # removed in 11; 10.13 has it
        "bad.py:10: TensorRT 11.4's IBuilderConfig.set_timing_cache takes no call with 1 positional argument(s)",
        "bad.py:10: TensorRT 10.13's IBuilderConfig.set_timing_cache takes no call with 1 positional argument(s)",
        "bad.py:11: TensorRT 11.4 has no Builder.create_netwrk",
        "bad.py:11: TensorRT 10.13 has no Builder.create_netwrk",
        "bad.py:14: guarded FP61 exists in no TensorRT version checked",
        "bad.py:19: TensorRT 11.4 has no IExecutionContext.execute_async",
        "bad.py:19: TensorRT 10.13 has no IExecutionContext.execute_async",
    ]
    for line in expected:
        assert line in found, (line, found)
    assert not any(p.startswith(("bad.py:12:", "bad.py:13:")) for p in found)  # FP16 behind hasattr: allowed


def run_mypy(stub_dir: Path, *files: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(stub_dir)}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=trt_api.ROOT,
        env=env,
        timeout=600,
    )


@pytest.mark.parametrize("version", ["11.4", "10.13"])
def test_mypy_against_the_stubs(stub_dirs, version):
    pytest.importorskip("mypy", reason="mypy comes with the dev extra")
    stub_dir = stub_dirs[0] if version == "11.4" else stub_dirs[1]
    files = [p.relative_to(trt_api.ROOT) for p in trt_api.our_tensorrt_files()]
    result = run_mypy(stub_dir, *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_wrong_arguments(stub_dirs, tmp_path):
    pytest.importorskip("mypy", reason="mypy comes with the dev extra")
    bad = tmp_path / "bad_trt.py"
    bad.write_text(
        "import tensorrt as trt\n\n\ndef f(cache: trt.ITimingCache) -> None:\n"
        "    config = trt.Builder(trt.Logger()).create_builder_config()\n"
        "    config.set_timing_cache(cache)\n"
        "    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 'big')\n"
    )
    for stub_dir in stub_dirs:
        result = run_mypy(stub_dir, bad)
        assert result.returncode == 1
        assert 'Missing positional argument "ignore_mismatch"' in result.stdout, result.stdout
        assert 'Argument 2 to "set_memory_pool_limit"' in result.stdout, result.stdout


def test_nothing_of_tensorrt_runs(stub_dirs, tmp_path):
    """The bindings load against stand-ins that abort when called: creating a Runtime ends the process."""
    lib_dir = stub_dirs[0].parent / "bindings" / "tensorrt_bindings"
    code = (
        "import ctypes, sys\n"
        f"for lib in {trt_api._LIBS!r}: ctypes.CDLL({str(lib_dir)!r} + '/' + lib, mode=ctypes.RTLD_GLOBAL)\n"
        f"sys.path.insert(0, {str(lib_dir)!r})\n"
        "import tensorrt\n"
        "print('imported', len(dir(tensorrt.Builder)), flush=True)\n"
        "tensorrt.Runtime(tensorrt.Logger())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "imported" in result.stdout
    assert result.returncode != 0 and "createInferRuntime_INTERNAL called" in result.stderr
