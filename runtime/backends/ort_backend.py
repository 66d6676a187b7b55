"""ONNX Runtime backend over an exported artifact (CPU provider; CUDA provider with onnxruntime-gpu).

Sessions are made from the bytes :meth:`~pahs_export.artifact.Artifact.verified_bytes` returns, never from
paths: every graph is checked against the manifest's sha256 as it is loaded, and each session's inputs and
outputs against the graph contract before it runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pahs_export.artifact import Artifact, check_graph_io
from pahs_export.contract import ROLES
from pahs_export.errors import PahsError

from .base import Backend, StepOutputs

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


class OnnxRuntimeBackend(Backend):
    """One InferenceSession per graph of the artifact. Tensors stay on the CPU (numpy views, no copies)."""

    name = "onnxruntime"

    def __init__(self, artifact: Artifact, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        if device not in PROVIDERS:
            raise PahsError(
                f"expected --device cpu or cuda for onnxruntime, found {device!r}; pass one of them (onnxruntime "
                "picks the GPU itself)"
            )
        missing = set(PROVIDERS[device]) - set(ort.get_available_providers())
        if missing:
            raise PahsError(
                f"onnxruntime has no {', '.join(sorted(missing))} here "
                f"(it has {', '.join(ort.get_available_providers())}); "
                "install the 'gpu' extra (onnxruntime-gpu) or use --device cpu"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if artifact.manifest.int8_target == "tensorrt":
            # TensorRT's Q/DQ graphs run as written (quantize, dequantize, compute in float: the arithmetic
            # TensorRT's kernels approximate), not rewritten into ONNX Runtime's x86 integer kernels, whose AVX2
            # path (no VNNI) adds 8-bit products in pairs into saturating 16 bits: that cost them up to 0.1 dB
            # against ground truth (docs/PRECISION.md). Each key removes one rewrite; with all three the outputs
            # equal an unoptimized session's (tested). Slower; the CPU's INT8 graphs are the cpu target's.
            for key in ("disable_quant_qdq", "disable_qdq_constant_folding", "disable_double_qdq_remover"):
                options.add_session_config_entry(f"session.{key}", "1")
        if threads:
            options.intra_op_num_threads = threads
        self.threads = threads  # None: the runtime's default (every core)
        self.artifact = artifact
        self.sessions = {}
        for role in artifact.manifest.files:
            session = _session(ort, artifact, role, options, PROVIDERS[device])
            check_graph_io(
                artifact.graphs[role],
                role,
                artifact.geometry,
                [(i.name, i.shape) for i in session.get_inputs()],
                [(o.name, o.shape) for o in session.get_outputs()],
            )
            self.sessions[role] = session
        self.bidirectional = artifact.bidirectional
        self.precision = artifact.precision
        self.geometry = artifact.geometry
        self.device = torch.device("cpu")  # I/O binding to CUDA buffers is the runtime issue's business
        self._input_types = {
            role: [np.float16 if i.type == "tensor(float16)" else np.float32 for i in s.get_inputs()]
            for role, s in self.sessions.items()
        }

    def run(self, role: str, *inputs: Tensor) -> StepOutputs:
        spec = ROLES[role]
        feed = {
            name: x.detach().cpu().numpy().astype(dtype, copy=False)
            for name, x, dtype in zip(spec.inputs, inputs, self._input_types[role], strict=True)
        }
        outs = self.sessions[role].run(list(spec.outputs), feed)
        return tuple(torch.from_numpy(np.asarray(o, dtype=np.float32)) for o in outs)


def _session(ort, artifact: Artifact, role: str, options, providers: list[str]):
    """An InferenceSession over the verified bytes of the ``role`` graph (one line if ONNX Runtime refuses it)."""
    data = artifact.verified_bytes(role)
    try:
        return ort.InferenceSession(data, options, providers=providers)
    except Exception as e:
        if not type(e).__module__.startswith("onnxruntime"):  # only ONNX Runtime's own refusals are the user's
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PahsError(
            f"expected an ONNX graph ONNX Runtime can load in {artifact.graphs[role]}, found one it refuses "
            f"({first[:200]}); export the artifact again"
        ) from None
