"""OpenVINO backend over the same exported ONNX artifacts (CPU).

OpenVINO reads our ONNX graphs as they are (``Core.read_model``); each graph is compiled once per input
shape (static shapes compile to faster CPU code than dynamic ones) and kept, and compiled blobs are cached on
disk under ``$PAHS_CACHE/openvino`` so that a second process skips compilation. Processes that compile the
same model at once take turns (a lock file per model, :func:`pahs_export.atomic.exclusive`): OpenVINO writes
its blobs in place, and a process reading one being written died of SIGBUS.

Precision: OpenVINO runs f32 graphs in bf16 on CPUs that have it unless told otherwise, which breaks FP32
parity, so FP32 and FP16 artifacts are compiled with ``INFERENCE_PRECISION_HINT=f32`` (FP16 graphs keep their
FP16 weights and casts; the arithmetic between them is f32). INT8 (Q/DQ) graphs run with OpenVINO's low
precision transformations, which execute the quantized convolutions in int8. Only INT8 graphs made for CPUs
(`--int8-target cpu`) are accepted: with TensorRT's conventions (symmetric int8 activations) OpenVINO reached
31.7 dB against FP32 at the worst frame and lost 2.97 dB against ground truth on held-out clips, where the
CPU-target graph reached 53.1 dB and lost 0.03 dB (experiments/openvino_precision.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pahs_export.artifact import Artifact, check_graph_io
from pahs_export.atomic import exclusive
from pahs_export.cache import cache_dir
from pahs_export.contract import ROLES
from pahs_export.errors import PahsError

from ..constants import INT8_TARGETS
from .base import Backend, StepOutputs

INSTALL_HINT = "install it with pip install openvino (or the project's 'openvino' extra)"
LOCKS = "locks"  # lock files of the compiled-model cache, one per model (see OpenVINOBackend._request)


class OpenVINOBackend(Backend):
    """One compiled model per (graph, input shape) of an ONNX artifact; tensors stay on the CPU."""

    name = "openvino"

    def __init__(self, artifact: Artifact, device: str = "cpu", threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise PahsError(f"OpenVINO is not installed here: {INSTALL_HINT}") from None
        if device != "cpu":
            raise PahsError(f"expected device cpu for the openvino backend, found {device!r}; use --device cpu")
        target = artifact.manifest.int8_target
        if target is not None and target not in INT8_TARGETS["openvino"]:
            raise PahsError(
                f"expected INT8 graphs made for CPUs for the openvino backend, found TensorRT's conventions in "
                f"{artifact.path} (they lose about 3 dB there); export with `pahs-export onnx --precision int8 "
                "--int8-target cpu`"
            )
        self.core = ov.Core()
        self._cache = cache_dir() / "openvino"
        self.core.set_property({"CACHE_DIR": str(self._cache)})
        self.config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if artifact.precision != "int8":
            self.config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.threads = threads  # None: the runtime's default (every core)
        self.artifact = artifact
        self.models = {}
        for role, path in artifact.graphs.items():  # from the bytes whose sha256 was checked, not the path
            data = artifact.verified_bytes(role)
            try:
                model = self.core.read_model(data)
            except Exception as e:  # OpenVINO's errors are many lines of C++ context: keep the first
                first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
                raise PahsError(
                    f"expected an ONNX graph OpenVINO can read in {path}, found it refused ({first[:200]}); "
                    f"{artifact.remake}"
                ) from None

            def io(ports: Any) -> list[tuple[str, list[int | None]]]:
                return [(p.get_any_name(), [d.get_length() if d.is_static else None for d in p.get_partial_shape()])
                        for p in ports]  # fmt: skip

            check_graph_io(path, role, artifact.geometry, io(model.inputs), io(model.outputs))
            self.models[role] = model
        self.bidirectional = artifact.bidirectional
        self.precision = artifact.precision
        self.geometry = artifact.geometry
        self.device = torch.device("cpu")
        self._requests: dict[tuple, Any] = {}

    def _request(self, role: str, shapes: tuple[tuple[int, ...], ...]) -> Any:
        key = (role, shapes)
        request = self._requests.get(key)
        if request is None:
            model = self.models[role].clone()
            model.reshape(dict(zip(ROLES[role].inputs, shapes, strict=True)))
            # OpenVINO writes its cache blob in place: two processes compiling the same model at once tore it
            # (SIGBUS reading a blob being written, "cannot set permissions" on it). One compiles into the cache
            # at a time per model; the others wait, then load the blob it wrote.
            with exclusive(self._cache / LOCKS / f"{self._cache_key(role, shapes)}.lock"):
                compiled = self.core.compile_model(model, "CPU", self.config)
            request = compiled.create_infer_request()
            self._requests[key] = request
        return request

    def _cache_key(self, role: str, shapes: tuple[tuple[int, ...], ...]) -> str:
        """What OpenVINO's cache entry of a compiled model depends on: the graph's bytes (their sha256 in the
        manifest), the input shapes, the configuration and OpenVINO's version."""
        import openvino as ov

        graph = self.artifact.manifest.sha256[self.artifact.manifest.files[role]]
        what = [graph, shapes, sorted(self.config.items()), ov.get_version()]
        return hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()[:32]

    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        arrays = [np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32) for x in inputs]
        request = self._request(role, tuple(a.shape for a in arrays))
        # share_inputs: OpenVINO reads the arrays where they are (no copy of the frames and the state tensors);
        # infer() is synchronous, so they outlive their use
        request.infer(dict(zip(ROLES[role].inputs, arrays, strict=True)), share_inputs=True)
        # copy: the request reuses its output buffers on the next call, and the loop keeps feat for a while
        return tuple(
            torch.from_numpy(np.array(request.get_tensor(name).data, dtype=np.float32)) for name in ROLES[role].outputs
        )

    def describe(self) -> str:
        return f"{self.name} on cpu ({self.precision})"


def cached_blobs() -> list[Path]:
    """The compiled-model files OpenVINO keeps in its cache folder (for tests and cleaning)."""
    folder = cache_dir() / "openvino"
    return sorted(folder.glob("*.blob")) if folder.is_dir() else []
