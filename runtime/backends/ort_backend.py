"""ONNX Runtime backend over an exported artifact (CPU provider; CUDA provider with onnxruntime-gpu)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pahs_export.artifact import Artifact
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
            raise PahsError(f"expected device cpu or cuda for onnxruntime, found {device!r}")
        missing = set(PROVIDERS[device]) - set(ort.get_available_providers())
        if missing:
            raise PahsError(
                f"onnxruntime has no {', '.join(sorted(missing))} here "
                f"(it has {', '.join(ort.get_available_providers())}); "
                "install the 'gpu' extra (onnxruntime-gpu) or use --device cpu"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.artifact = artifact
        self.sessions = {
            role: ort.InferenceSession(str(path), options, providers=PROVIDERS[device])
            for role, path in artifact.graphs.items()
        }
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
