"""TensorRT artifacts without TensorRT: optimization profiles, the manifest, compatibility checks.

Everything here is pure Python so that it is tested on machines without TensorRT; the builder
(:mod:`pahs_export.tensorrt_build`) and the runtime backend (:mod:`runtime.backends.trt_backend`) are thin
layers over the TensorRT API that use it.

An artifact (default ``pahs.plan``) is one folder: ``forward.plan``, ``backward.plan``, ``fuse.plan`` (or
``step.plan``), ``timing.cache`` and ``manifest.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from .artifact import ROLES, concrete_shape
from .errors import PahsError

FORMAT = "pahs-tensorrt/1"
MANIFEST = "manifest.json"
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
            w, h = getattr(self, name)
            if w % multiple or h % multiple or w < multiple or h < multiple:
                raise PahsError(
                    f"expected --{name.split('_')[0]} as WxH with multiples of {multiple}, found {w}x{h}; "
                    f"round to {max(multiple, w // multiple * multiple)}x{max(multiple, h // multiple * multiple)}"
                )
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
    role: str, profile: Profile, channels: int, hidden: int
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """Input name -> (min, opt, max) shapes of the ``role`` graph under ``profile`` (for set_shape)."""
    out = {}
    for name in ROLES[role].inputs:
        dims = []
        for which in ("min", "opt", "max"):
            n = getattr(profile, f"{which}_batch")
            w, h = getattr(profile, f"{which}_size")
            dims.append(concrete_shape(name, channels, hidden, n, h, w))
        out[name] = (dims[0], dims[1], dims[2])
    return out


@dataclass(frozen=True)
class Device:
    """What an engine is tied to."""

    tensorrt: str  # TensorRT version, e.g. "10.13.0"
    gpu: str  # device name, e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # e.g. "9.0"


def check_compatible(manifest: dict[str, Any], here: Device) -> None:
    """Raise a one-line :class:`PahsError` naming what to rebuild if the engines were built elsewhere.

    Engines are tied to the TensorRT version and, unless built hardware-compatible, to the GPU's compute
    capability; a different GPU model of the same capability may run them, with a warning from TensorRT.
    """
    built = Device(**manifest["device"])
    if built.tensorrt != here.tensorrt:
        raise PahsError(
            f"expected TensorRT {built.tensorrt} (the engines were built with it), found {here.tensorrt}; rebuild "
            f"with `pahs-export trt --onnx {manifest['source']['onnx_artifact']} ...` on this machine"
        )
    if built.compute_capability != here.compute_capability:
        raise PahsError(
            f"expected a GPU of compute capability {built.compute_capability} ({built.gpu}), found "
            f"{here.compute_capability} ({here.gpu}); rebuild the engines on this GPU with `pahs-export trt`"
        )


def check_in_profile(manifest: dict[str, Any], n: int, width: int, height: int) -> None:
    profile = profile_from_manifest(manifest)
    if not profile.contains(n, width, height):
        raise PahsError(
            f"expected frames within the engine's profile ({profile.describe()}), found {width}x{height} "
            f"(batch {n}, after padding to multiples of 16); rebuild with `pahs-export trt --max {width}x{height}`"
        )


def profile_from_manifest(manifest: dict[str, Any]) -> Profile:
    p = manifest["profile"]
    return Profile(**{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()})


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def manifest_for(
    onnx_manifest: dict[str, Any],
    onnx_path: Path,
    profile: Profile,
    device: Device,
    engines: dict[str, str],
    sha256: dict[str, str],
    build: dict[str, Any],
) -> dict[str, Any]:
    """The TensorRT artifact's manifest: what built it, for what, from what."""
    return {
        "format": FORMAT,
        "preset": onnx_manifest["preset"],
        "direction": onnx_manifest["direction"],
        "channels": onnx_manifest["channels"],
        "size_multiple": onnx_manifest["size_multiple"],
        "precision": onnx_manifest["precision"],
        "engines": engines,
        "device": asdict(device),
        "profile": asdict(profile),
        "build": build,
        "source": {
            "onnx_artifact": str(onnx_path),
            "onnx_sha256": {role: onnx_manifest["sha256"][name] for role, name in onnx_manifest["graphs"].items()},
            "calibration_sha256": (onnx_manifest.get("calibration") or {}).get("data_sha256"),
            "checkpoint": onnx_manifest["checkpoint"],
        },
        "sha256": sha256,
    }


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a TensorRT artifact folder (format checked)."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise PahsError(
            f"expected {MANIFEST} in the TensorRT artifact {path}, found none; build it with `pahs-export trt`"
        )
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise PahsError(f"expected a manifest of format {FORMAT!r} in {path}, found {manifest.get('format')!r}")
    return manifest
