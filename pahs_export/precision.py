"""FP16 and INT8 (Q/DQ) graphs made from the FP32 graphs: precision is decided in the ONNX graph.

TensorRT 11 has no FP16/INT8 builder flags and no calibrators; every network is strongly typed. So an FP16
engine comes from an FP16 graph and an INT8 engine from a graph with explicit QuantizeLinear/
DequantizeLinear nodes, and ONNX Runtime on the CPU can check both numerically.

- FP16: onnxconverter-common's ``convert_float_to_float16``; the SNLA attention core (logits, their scale,
  softmax, the selection score and the attention-weighted sum) stays in FP32 via ``node_block_list``,
  with casts inserted by the converter. Graph inputs and outputs stay FP32 (``keep_io_types``): the
  measurement recorded in docs/PRECISION.md decided it for the carried state.
- INT8: ONNX Runtime's ``quantize_static`` in QDQ format with TensorRT's conventions: symmetric int8
  (zero point 0) for weights (per output channel) and activations (per tensor), biases left in float,
  ConvTranspose weights per channel on axis 1 (its output-channel axis). A second target, "cpu", follows
  ONNX Runtime's recipe for x86 instead (uint8 asymmetric activations, 7-bit weights): with symmetric
  activations ORT's CPU provider cannot fold ReLUs into its quantized convolutions and runs about half of them
  in float, slower than FP32, and 8-bit weights saturate its AVX2 kernels (docs/PRECISION.md); such graphs are
  not for TensorRT. The SNLA attention path, the reconstructor's full-resolution resblocks, the final
  convolution (the residual image) and the global residual Add are excluded from quantization.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .contract import PRECISIONS
from .errors import PahsError
from .signals import check_interrupted

if TYPE_CHECKING:
    import onnx  # imported where a graph is read: importing it costs a second (ml_dtypes)
    import torch

    from .model import PAHS

__all__ = ["PRECISIONS", "CalibrationSource", "Fp16Options", "Int8Options"]
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
INT8_TARGETS = ("tensorrt", "cpu")

# The SNLA attention core: every node of these types inside an SNLA module (logits MatMul and their 1/sqrt(d)
# Mul, Softmax, ReduceMean -> select (MatMul, Add) -> Sigmoid, the S_NL*S_sel Mul and the MatMul with v).
ATTENTION_OP_TYPES = frozenset({"MatMul", "Mul", "Softmax", "ReduceMean", "Sigmoid"})
FINAL_CONV = "/reconstructor/body/body.4/Conv"  # the conv producing the residual image
FULL_RESOLUTION_BLOCKS = "/reconstructor/body/body.3/"  # the resblocks at full resolution, before FINAL_CONV


def attention_core_nodes(proto: onnx.ModelProto) -> list[str]:
    """Names of the SNLA attention-core nodes of a graph (empty for graphs without SNLA, e.g. fuse)."""
    return [
        n.name
        for n in proto.graph.node
        if "/snla/" in n.name and (n.op_type in ATTENTION_OP_TYPES or "/snla/select/" in n.name)
    ]


@dataclass(frozen=True)
class Fp16Options:
    """How the FP16 graphs are made."""

    keep_io_fp32: bool = True  # graph inputs/outputs (frame, state, restored) stay FP32; see docs/PRECISION.md
    extra_fp32_nodes: tuple[str, ...] = ()  # further node names kept in FP32, beyond the attention core


def fp16_graph_from_fp32(src: Path, dst: Path, options: Fp16Options = Fp16Options()) -> dict:
    """Convert one FP32 graph to FP16 (attention core kept FP32); returns what shaped it, for the manifest."""
    import onnx
    from onnxconverter_common import float16

    proto = onnx.load(str(src))
    keep = attention_core_nodes(proto) + list(options.extra_fp32_nodes)
    with warnings.catch_warnings():
        # one warning per weight below FP16's smallest normal number (it is flushed to +-1e-7): expected
        warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
        converted = float16.convert_float_to_float16(
            proto, keep_io_types=options.keep_io_fp32, node_block_list=keep, disable_shape_infer=False
        )
    onnx.checker.check_model(converted, full_check=True)
    onnx.save(converted, str(dst))
    return {"converter": "onnxconverter-common convert_float_to_float16", "fp32_nodes": keep, **asdict(options)}


@dataclass(frozen=True)
class Int8Options:
    """How the INT8 (Q/DQ) graphs are made."""

    target: str = "tensorrt"  # "tensorrt": symmetric int8 activations (what TensorRT requires); "cpu": ONNX
    # Runtime's x86 recipe, uint8 asymmetric activations, which its CPU kernels fuse fully (not for TensorRT)
    method: str = "percentile"  # calibration: minmax | entropy | percentile (measured best: docs/PRECISION.md)
    percentile: float = 99.999  # with method percentile
    exclude_attention: bool = True  # keep the SNLA attention core in float
    exclude_final_conv: bool = True  # keep the last reconstructor conv and the global residual Add in float
    exclude_full_resolution: bool = True  # keep the reconstructor's full-resolution resblocks in float (about
    # 2% of the FLOPs; the noise they add shows most where the restored frame is nearly exact: docs/PRECISION.md)
    reduce_range: bool | None = None  # 7-bit weights; None: for the cpu target, not for tensorrt. x86 CPUs without
    # VNNI multiply uint8 activations by int8 weights and add the products in pairs into saturating 16 bits
    # (ONNX Runtime, oneDNN): 8-bit weights overflow there (docs/PRECISION.md), 7-bit ones cannot


Feeds = dict[str, list[dict[str, np.ndarray]]]  # role -> one {input name: array} per recorded step


class CalibrationSource(Protocol):
    """Where INT8 calibration data comes from. The export asks for it through this interface only, so that
    the calibration code (``calibration.data.CalibrationSet``), which drives the runtime's loop, stays a
    client of the export rather than a dependency of it."""

    def load(self) -> list[torch.Tensor]:
        """The calibration clips, each [T,3,H,W] float32 RGB in [0, 1]."""
        ...

    def record(self, model: PAHS, clips: Sequence[torch.Tensor]) -> Feeds:
        """Run the FP32 ``model``'s bidirectional loop over ``clips``; the inputs of every step, per role."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the set is (recorded in the manifest under calibration.set)."""
        ...


def clips_sha256(clips: Sequence[torch.Tensor]) -> str:
    """A digest of the calibration frames themselves (shape and values): part of the calibration cache key."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(str(tuple(clip.shape)).encode())
        digest.update(clip.contiguous().numpy().tobytes())
    return digest.hexdigest()


class _FeedReader:
    """ONNX Runtime's CalibrationDataReader over a list of feed dicts. Each feed is a safe point for a termination
    signal (:mod:`.signals`): ORT's calibration runs one inference per feed, a minute per graph on 2 cores."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        check_interrupted()
        return next(self._it, None)


def attention_float_nodes(proto: onnx.ModelProto) -> list[str]:
    """The SNLA attention path kept in float for INT8: the q/k/v convolutions, the attention core, and every
    reshape/transpose between them (all SNLA nodes but the upsampling ConvTransposes and the merge conv).

    Excluding only the core is not enough: ONNX Runtime quantizes the q/k/v conv outputs and through
    shape-only ops, so the core would still read int8-rounded q, k and v (tests/pahs_export/test_precision.py
    checks that no Q/DQ pair sits inside this region).
    """
    quantized = ("/snla/up/", "/snla/merge/")
    return [n.name for n in proto.graph.node if "/snla/" in n.name and not any(q in n.name for q in quantized)]


def int8_exclusions(proto: onnx.ModelProto, options: Int8Options) -> list[str]:
    names = attention_float_nodes(proto) if options.exclude_attention else []
    if options.exclude_final_conv:
        # the residual image's conv, and the Add that puts it on the frame (int8 would round the frame itself)
        names += [n.name for n in proto.graph.node if n.name == FINAL_CONV or "restored" in n.output]
    if options.exclude_full_resolution:
        names += [n.name for n in proto.graph.node if n.name.startswith(FULL_RESOLUTION_BLOCKS)]
    return names


def int8_graph_from_fp32(
    src: Path,
    dst: Path,
    feeds: Sequence[dict[str, np.ndarray]] | None,
    options: Int8Options = Int8Options(),
    cache: Path | None = None,
) -> dict:
    """Quantize one FP32 graph to Q/DQ INT8 with ``feeds`` (input-name -> array dicts) as calibration data.

    ``cache``: a JSON file of calibrated tensor ranges; when it exists, ``feeds`` may be None and
    calibration is skipped (ONNX Runtime's ``calibration_cache_path``).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if options.target not in INT8_TARGETS:
        raise PahsError(f"expected an INT8 target among {', '.join(INT8_TARGETS)}, found {options.target!r}")
    if options.method not in CALIBRATION_METHODS:
        raise PahsError(
            f"expected a calibration method among {', '.join(CALIBRATION_METHODS)}, found {options.method!r}"
        )
    proto = onnx.load(str(src))
    exclude = int8_exclusions(proto, options)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[options.method]
    cpu = options.target == "cpu"
    extra = {
        "ActivationSymmetric": not cpu,
        "WeightSymmetric": True,
        "QuantizeBias": False,  # biases stay float (TensorRT fuses them itself)
        "QDQOpTypePerChannelSupportToAxis": {"ConvTranspose": 1},  # [Cin, Cout, k, k]: output channels on axis 1
    }
    if options.method == "percentile":
        extra["CalibPercentile"] = options.percentile
    with _quiet_quantizer(), _histogram_errors(options.method):
        quantize_static(
            str(src),
            str(dst),
            _FeedReader(feeds) if feeds is not None else None,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8 if cpu else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            reduce_range=cpu if options.reduce_range is None else options.reduce_range,
            nodes_to_exclude=exclude,
            calibrate_method=method,
            extra_options=extra,
            calibration_cache_path=str(cache) if cache is not None else None,
        )
    out = onnx.load(str(dst))
    onnx.checker.check_model(out, full_check=True)
    return {"quantizer": "onnxruntime quantize_static (QDQ)", "excluded_nodes": exclude, **asdict(options)}


@contextlib.contextmanager
def _histogram_errors(method: str) -> Iterator[None]:
    """ORT's histogram calibrators (percentile, entropy) fail on a tensor that never varies over the data."""
    try:
        yield
    except ValueError as e:
        if "bins" not in str(e):
            raise
        raise PahsError(
            f"expected every calibrated tensor to vary over the calibration data for --calibration-method {method}, "
            "found one that does not (too little data?); add clips with --calibration or use minmax"
        ) from None


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ORT's quantizer logs pre-processing advice on the root logger and its histogram calibrators print
    progress to stdout; neither is for our users. Restores both afterwards.

    Its module-level ``logging.warning`` calls configure the root logger (``basicConfig``) when it has no
    handler, after which every ``pahs`` message would also print as ``INFO:pahs:…``: the root logger's handlers
    are put back as they were, too."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(max(level, logging.ERROR))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)


def calibration_key(graph_sha256: str, data_sha256: str, options: Int8Options) -> str:
    """Cache key of one graph's calibration: the FP32 graph, the calibration data and the method."""
    blob = json.dumps({"graph": graph_sha256, "data": data_sha256, "options": asdict(options)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
