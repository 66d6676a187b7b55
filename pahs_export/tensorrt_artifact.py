"""TensorRT artifacts without TensorRT: optimization profiles, the manifest, compatibility checks.

Everything here is pure Python so that it is tested on machines without TensorRT (tensorrt and the GPU
are only touched inside :func:`require_tensorrt` and :func:`current_device`); the builder
(:mod:`pahs_export.tensorrt_build`) and the runtime backend (:mod:`runtime.backends.trt_backend`) are thin
layers over the TensorRT API that use it.

An artifact (default ``pahs.plan``) is one folder: ``forward.plan``, ``backward.plan``, ``fuse.plan`` (or
``step.plan``), ``timing.cache`` and ``manifest.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from .artifact import TENSORRT_FORMAT, Manifest
from .contract import ROLES, Geometry, check_size_multiple
from .errors import PahsError

INSTALL_HINT = (
    "install TensorRT on a machine with an NVIDIA GPU (pip install 'pahs[trt]' brings tensorrt and polygraphy; "
    "the tensorrt-cu1x libraries come from NVIDIA's package index)"
)


@dataclass(frozen=True)
class Profile:
    """An optimization profile over batch and frame size (H and W multiples of 16)."""

    min_size: tuple[int, int] = (64, 64)  # (width, height)
    opt_size: tuple[int, int] = (1280, 720)
    max_size: tuple[int, int] = (1920, 1088)
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1

    def check(self, multiple: int = 16) -> None:
        for name in ("min_size", "opt_size", "max_size"):
            check_size_multiple(*getattr(self, name), multiple, f"--{name.split('_')[0]}")
        sizes = (self.min_size, self.opt_size, self.max_size)
        batches = (self.min_batch, self.opt_batch, self.max_batch)
        ordered = all(a[i] <= b[i] for a, b in pairwise(sizes) for i in (0, 1))
        if not ordered or not (1 <= batches[0] <= batches[1] <= batches[2]):
            raise PahsError(
                f"expected min <= opt <= max in the profile, found sizes {sizes} and batches {batches}; fix the order"
            )

    def contains(self, n: int, width: int, height: int) -> bool:
        return (
            self.min_batch <= n <= self.max_batch
            and self.min_size[0] <= width <= self.max_size[0]
            and self.min_size[1] <= height <= self.max_size[1]
        )

    def describe(self) -> str:
        (a, b), (c, d) = self.min_size, self.max_size
        return f"{a}x{b} to {c}x{d}, batch {self.min_batch} to {self.max_batch}"


def input_shapes(
    role: str, profile: Profile, geometry: Geometry
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """Input name -> (min, opt, max) shapes of the ``role`` graph under ``profile`` (for set_shape)."""
    out = {}
    for name in ROLES[role].inputs:
        dims = []
        for which in ("min", "opt", "max"):
            n = getattr(profile, f"{which}_batch")
            w, h = getattr(profile, f"{which}_size")
            dims.append(geometry.shape(name, n, h, w))
        out[name] = (dims[0], dims[1], dims[2])
    return out


@dataclass(frozen=True)
class Device:
    """What an engine is tied to."""

    tensorrt: str  # TensorRT version, e.g. "10.13.0"
    gpu: str  # device name, e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # e.g. "9.0"


def check_compatible(manifest: Manifest, here: Device) -> None:
    """Raise a one-line :class:`PahsError` naming what to rebuild if the engines were built elsewhere.

    Engines are tied to the TensorRT version and, unless built hardware-compatible, to the GPU's compute
    capability; a different GPU model of the same capability may run them, with a warning from TensorRT.
    """
    built = Device(**(manifest.device or {}))
    if built.tensorrt != here.tensorrt:
        raise PahsError(
            f"expected TensorRT {built.tensorrt} (the engines were built with it), found {here.tensorrt}; rebuild "
            f"with `pahs-export trt --onnx {(manifest.source or {}).get('onnx_artifact')} ...` on this machine"
        )
    if built.compute_capability != here.compute_capability:
        raise PahsError(
            f"expected a GPU of compute capability {built.compute_capability} ({built.gpu}), found "
            f"{here.compute_capability} ({here.gpu}); rebuild the engines on this GPU with `pahs-export trt`"
        )


def check_in_profile(manifest: Manifest, n: int, width: int, height: int) -> None:
    profile = profile_from_manifest(manifest)
    if not profile.contains(n, width, height):
        raise PahsError(
            f"expected frames within the engine's profile ({profile.describe()}), found {width}x{height} "
            f"(batch {n}, after padding to multiples of 16); rebuild with `pahs-export trt --max {width}x{height}`"
        )


def profile_from_manifest(manifest: Manifest) -> Profile:
    """The profile a TensorRT manifest records (JSON lists back to (width, height) tuples)."""
    p, d = manifest.profile or {}, Profile()

    def size(key: str) -> tuple[int, int]:
        w, h = p.get(key, getattr(d, key))
        return int(w), int(h)

    def batch(key: str) -> int:
        return int(p.get(key, getattr(d, key)))

    return Profile(
        size("min_size"), size("opt_size"), size("max_size"), batch("min_batch"), batch("opt_batch"), batch("max_batch")
    )


def manifest_for(
    onnx: Manifest,
    onnx_path: Path,
    profile: Profile,
    device: Device,
    engines: dict[str, str],
    sha256: dict[str, str],
    build: dict[str, Any],
) -> Manifest:
    """The TensorRT artifact's manifest: what built it, for what, from what."""
    return replace(
        Manifest(onnx.format, onnx.preset, onnx.bidirectional, onnx.geometry, onnx.precision, {}, {}),
        format=TENSORRT_FORMAT,
        files=engines,
        sha256=sha256,
        device=asdict(device),
        profile=asdict(profile),
        build=build,
        source={
            "onnx_artifact": str(onnx_path),
            "onnx_sha256": {role: onnx.sha256[name] for role, name in onnx.files.items()},
            "calibration_sha256": (onnx.calibration or {}).get("data_sha256"),
            "checkpoint": onnx.checkpoint,
        },
    )


def require_tensorrt() -> None:
    """Raise a one-line error saying what to install unless a working ``tensorrt`` is importable.

    Callers then ``import tensorrt as trt`` themselves, inside the function that uses it: TensorRT is optional
    and heavy, and a plain import statement lets type checkers see the module as TensorRT's own (its stubs),
    so every call is checked against the real API (tests/test_tensorrt_api.py).
    """
    try:
        import tensorrt
    except ImportError:
        raise PahsError(f"TensorRT is not installed here: {INSTALL_HINT}") from None
    if not hasattr(tensorrt, "Builder"):  # the PyPI meta package without its libraries
        raise PahsError(f"the tensorrt package here has no libraries (a stub): {INSTALL_HINT}")


def current_device() -> Device:
    """TensorRT version and the current CUDA GPU, as recorded in and checked against manifests."""
    import torch

    require_tensorrt()
    import tensorrt as trt

    if not torch.cuda.is_available():
        raise PahsError("expected a CUDA GPU for TensorRT, found none; run on a machine with an NVIDIA GPU")
    major, minor = torch.cuda.get_device_capability()
    return Device(trt.__version__, torch.cuda.get_device_name(), f"{major}.{minor}")
