"""Single-step ONNX export: one graph per role with the recurrent state as explicit inputs and outputs.

We use the TorchScript-based exporter (``dynamo=False``) on purpose: it keeps every weight inside the
.onnx file, names inputs/outputs and dynamic axes exactly as we ask, and records a parameter used by
several nodes (the shared Ping-Pong block, applied 8 times) as one initializer.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .artifact import ONNX_FORMAT, Manifest, read_artifact, write_manifest
from .atomic import AtomicOutput, file_sha256
from .cache import cache_dir
from .checkpoint import save_checkpoint
from .contract import PRECISIONS, ROLES, roles_for
from .errors import PahsError
from .model import PAHS
from .precision import (
    CalibrationSource,
    Fp16Options,
    Int8Options,
    calibration_key,
    clips_sha256,
    fp16_graph_from_fp32,
    int8_graph_from_fp32,
)
from .signals import check_interrupted

if TYPE_CHECKING:
    import onnx  # imported where a graph is made or read: importing it costs a second (ml_dtypes)

MIN_OPSET = 17
MAX_OPSET = 20
DEFAULT_OPSET = 17
# Traced at this size and batch; the graphs are dynamic in N/H/W and verified at other sizes.
TRACE_N, TRACE_H, TRACE_W = 1, 64, 96
INCLUDED_CHECKPOINT = "checkpoint.safetensors"


class _RoleGraph(nn.Module):
    """Wraps one step method of the model so that the exporter sees it as ``forward``."""

    def __init__(self, model: PAHS, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...] | torch.Tensor:
        return getattr(self.model, self.method)(*inputs)


def example_inputs(model: PAHS, role: str, n: int, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Random inputs of the contract shapes for ``role`` (not zeros, so no branch is traced on zeros)."""
    gen = torch.Generator().manual_seed(0)
    geometry = model.preset.geometry
    return tuple(torch.rand(geometry.shape(name, n, height, width), generator=gen) for name in ROLES[role].inputs)


def _dynamic_axes(role: str) -> dict[str, dict[int, str]]:
    spec = ROLES[role]
    axes = {}
    for name in spec.inputs + spec.outputs:
        quarter = name not in ("frame", "restored")
        axes[name] = {0: "N", 2: "H/4" if quarter else "H", 3: "W/4" if quarter else "W"}
    return axes


def graph_from_model(model: PAHS, role: str, path: Path, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Export the ``role`` step of ``model`` to ``path`` (one self-contained .onnx file) and check it."""
    import onnx

    spec = ROLES[role]
    wrapper = _RoleGraph(model, spec.method).eval()
    inputs = example_inputs(model, role, TRACE_N, TRACE_H, TRACE_W)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            wrapper,
            inputs,
            str(path),
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_axes=_dynamic_axes(role),
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    _give_outputs_own_nodes(proto)
    proto.producer_name = "pahs"
    proto.doc_string = f"PAHS {model.preset.name} {role} step ({spec.method}); see manifest.json"
    for key, value in {"pahs.role": role, "pahs.preset": model.preset.name}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto


def _give_outputs_own_nodes(proto: onnx.ModelProto) -> None:
    """Make every graph output the output of an Identity that nothing else reads.

    `feat` is both a graph output and the input of the hidden-state extractor. Graph rewriters that retype
    outputs (onnxconverter-common's FP16 pass with keep_io_types) then mistype that internal consumer, so
    the internal tensor gets its own name and an Identity (free in every runtime) produces the output.
    """
    import onnx

    outputs = {o.name for o in proto.graph.output}
    read_inside = {i for n in proto.graph.node for i in n.input} & outputs
    for name in sorted(read_inside):
        internal = f"{name}_internal"
        for node in proto.graph.node:
            node.output[:] = [internal if o == name else o for o in node.output]
            node.input[:] = [internal if i == name else i for i in node.input]
        proto.graph.node.append(onnx.helper.make_node("Identity", [internal], [name], name=f"/output/{name}"))


def _io_table(model: PAHS, role: str) -> dict[str, dict[str, list[str | int]]]:
    geometry, spec = model.preset.geometry, ROLES[role]
    return {
        "inputs": {n: geometry.symbolic_shape(n) for n in spec.inputs},
        "outputs": {n: geometry.symbolic_shape(n) for n in spec.outputs},
    }


def artifact_from_model(
    model: PAHS,
    out: str | Path,
    *,
    source: dict[str, Any],
    opset: int = DEFAULT_OPSET,
    include_checkpoint: bool = False,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    precision: str = "fp32",
    fp16: Fp16Options = Fp16Options(),
    int8: Int8Options = Int8Options(),
    calibration: CalibrationSource | None = None,
) -> Path:
    """Export every graph of ``model`` into the artifact folder ``out`` and write its manifest.

    ``precision``: "fp32", "fp16" (``fp16`` options) or "int8" (Q/DQ, calibrated on the clips of
    ``calibration`` by running this FP32 model over them; the calibrated ranges are cached, see
    :func:`calibrate_roles`). ``calibration.data.CalibrationSet`` is the project's calibration source.

    ``source`` describes where the weights came from (recorded under "checkpoint" in the manifest).
    ``include_checkpoint`` also stores the weights as safetensors inside the artifact (used for random
    weights, which exist nowhere else, so that `pahs-export verify` can rebuild the reference).
    The folder is written under a temporary name and renamed at the end: a failed export leaves nothing.
    """
    if precision not in PRECISIONS:
        raise PahsError(f"expected a precision among {', '.join(PRECISIONS)}, found {precision!r}")
    if precision == "int8" and calibration is None:
        raise PahsError("expected calibration data for an INT8 export, found none; pass a calibration source")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise PahsError(
            f"expected an opset from {MIN_OPSET} to {MAX_OPSET}, found {opset}; use --opset {DEFAULT_OPSET}"
        )
    out = Path(out)
    if out.exists() and not overwrite:
        raise PahsError(f"{out} already exists; pass --overwrite to replace it or choose another -o")
    with AtomicOutput(out, folder=True, what="the artifact") as target:
        tmp = target.tmp
        model = model.eval().cpu()
        graphs: dict[str, str] = {}
        io: dict[str, Any] = {}
        details: dict[str, Any] = {}
        for role in roles_for(model.bidirectional):
            check_interrupted()  # between graphs: a termination signal stops the export, its folder removed
            if progress:
                progress(f"exporting {role} graph")
            graphs[role] = f"{role}.onnx"
            graph_from_model(model, role, tmp / graphs[role], opset)
            io[role] = _io_table(model, role)
        calibration_info = None
        if precision == "fp16":
            for role, name in graphs.items():
                check_interrupted()
                if progress:
                    progress(f"converting {role} graph to fp16")
                details[role] = fp16_graph_from_fp32(tmp / name, tmp / name, fp16)
        elif precision == "int8":
            assert calibration is not None
            details, calibration_info = calibrate_roles(model, tmp, graphs, int8, calibration, progress)
        if include_checkpoint:
            save_checkpoint(model, tmp / INCLUDED_CHECKPOINT)
            source = {**source, "file": INCLUDED_CHECKPOINT}
        manifest = Manifest(
            format=ONNX_FORMAT,
            preset=model.preset.name,
            bidirectional=model.bidirectional,
            geometry=model.preset.geometry,
            precision=precision,
            files=graphs,
            sha256={name: file_sha256(tmp / name) for name in sorted(os.listdir(tmp))},
            opset=opset,
            precision_details=details,
            calibration=calibration_info,
            io=io,
            checkpoint=source,
            versions={"torch": torch.__version__, "onnx": _onnx_version(), "pahs": _pahs_version()},
            exported_at_size={"n": TRACE_N, "height": TRACE_H, "width": TRACE_W},
        )
        write_manifest(tmp, manifest)
    read_artifact(out)  # internal invariant: what we wrote reads back
    return out


def calibrate_roles(
    model: PAHS,
    folder: Path,
    graphs: dict[str, str],
    options: Int8Options,
    calibration: CalibrationSource,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quantize the FP32 graphs in ``folder`` in place to INT8 Q/DQ.

    Calibration feeds come from running ``model`` (FP32) over the calibration clips, so the state inputs
    carry the ranges they have in real use. Ranges are cached per graph under the user cache, keyed by the
    FP32 graph's sha256, the calibration frames' sha256 and the options: a second export with the same model
    and data skips the FP32 loop and the calibration entirely.
    """
    clips = calibration.load()
    data_sha = clips_sha256(clips)
    frames = sum(len(c) for c in clips)
    cache_root = cache_dir() / "calibration"
    cache_root.mkdir(parents=True, exist_ok=True)
    keys = {role: calibration_key(file_sha256(folder / name), data_sha, options) for role, name in graphs.items()}
    cached = all((cache_root / f"{k}.json").is_file() for k in keys.values())
    feeds = None
    if not cached:
        if progress:
            progress(f"calibrating: FP32 loop over {len(clips)} clips ({frames} frames)")
        feeds = calibration.record(model, clips)
    details = {}
    for role, name in graphs.items():
        check_interrupted()
        if progress:
            progress(f"quantizing {role} graph to int8 ({'cached ranges' if cached else options.method})")
        fp32 = folder / f"{role}.fp32.onnx"
        (folder / name).rename(fp32)
        cache = cache_root / f"{keys[role]}.json"
        details[role] = int8_graph_from_fp32(
            fp32, folder / name, None if feeds is None else feeds[role], options, cache
        )
        fp32.unlink()
    info = {
        "set": calibration.describe(),
        "frames": frames,
        "data_sha256": data_sha,
        "method": options.method,
        "cache_keys": keys,
        "from_cache": cached,
    }
    return details, info


def _onnx_version() -> str:
    import onnx

    return onnx.__version__


def _pahs_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pahs")
    except PackageNotFoundError:
        return "unknown"
