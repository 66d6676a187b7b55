"""Artifacts: a folder of step graphs (ONNX) or engines (TensorRT) and the ``manifest.json`` that describes it.

The manifest is read in exactly one place, :func:`read_manifest`, which validates it into a typed
:class:`Manifest`, and written in one place, :func:`write_manifest`. Its JSON layout (docs/ARCHITECTURE.md,
"Artifacts"):

- common: ``format`` (``pahs-onnx/1`` or ``pahs-tensorrt/1``), ``preset``, ``direction`` (bidirectional or
  unidirectional), ``channels`` ({c, hidden, mid}), ``size_multiple``, ``precision`` (fp32, fp16, int8),
  ``sha256`` (file name -> digest);
- ONNX: ``graphs`` (role -> file), ``opset``, ``precision_details`` (role -> how the graph was made),
  ``calibration`` (INT8), ``io`` (role -> symbolic shapes), ``checkpoint`` (where the weights came from),
  ``versions``, ``exported_at_size``;
- TensorRT: ``engines`` (role -> file), ``device``, ``profile``, ``build``, ``source`` (the ONNX artifact,
  its graphs' sha256, the calibration data's sha256 and the checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .contract import PRECISIONS, Geometry, roles_for
from .errors import PahsError
from .files import file_sha256

MANIFEST = "manifest.json"
ONNX_FORMAT = "pahs-onnx/1"
TENSORRT_FORMAT = "pahs-tensorrt/1"
FORMATS = {ONNX_FORMAT: "graphs", TENSORRT_FORMAT: "engines"}  # format -> the key naming its files by role
FORMAT = ONNX_FORMAT
DIRECTIONS = ("bidirectional", "unidirectional")


@dataclass(frozen=True)
class Manifest:
    """A validated ``manifest.json``. Optional fields are ``None`` where the format does not have them."""

    format: str  # ONNX_FORMAT or TENSORRT_FORMAT
    preset: str  # the model preset the files were made from
    bidirectional: bool  # forward/backward/fuse files, or one online step file
    geometry: Geometry  # channel widths and size multiple
    precision: str  # one of PRECISIONS
    files: dict[str, str]  # role -> file name inside the artifact folder (graphs or engines)
    sha256: dict[str, str]  # file name -> hex sha256
    # ONNX artifacts
    opset: int | None = None  # ONNX opset of the graphs
    precision_details: dict[str, Any] = field(default_factory=dict)  # role -> how its graph was made
    calibration: dict[str, Any] | None = None  # INT8: the calibration set, method and cache keys
    io: dict[str, Any] | None = None  # role -> {"inputs"/"outputs": name -> symbolic shape}
    checkpoint: dict[str, Any] | None = None  # where the weights came from (kind, path or file, sha256)
    versions: dict[str, str] | None = None  # library versions that made the artifact
    exported_at_size: dict[str, int] | None = None  # the size the graphs were traced at
    # TensorRT artifacts
    device: dict[str, str] | None = None  # TensorRT version, GPU and compute capability the engines are for
    profile: dict[str, Any] | None = None  # the optimization profile (sizes and batches)
    build: dict[str, Any] | None = None  # builder settings and timings
    source: dict[str, Any] | None = None  # the ONNX artifact the engines were built from

    @property
    def is_tensorrt(self) -> bool:
        return self.format == TENSORRT_FORMAT

    @property
    def direction(self) -> str:
        return DIRECTIONS[0] if self.bidirectional else DIRECTIONS[1]

    @property
    def int8_target(self) -> str | None:
        """For INT8 graphs, the conventions they follow ("tensorrt" or "cpu"); None otherwise."""
        if self.precision != "int8":
            return None
        return next(iter(self.precision_details.values()), {}).get("target", "tensorrt")

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``manifest.json``."""
        g = self.geometry
        out: dict[str, Any] = {
            "format": self.format,
            "preset": self.preset,
            "direction": self.direction,
            "channels": {"c": g.channels, "hidden": g.hidden, "mid": g.mid},
            "size_multiple": g.size_multiple,
            "precision": self.precision,
            FORMATS[self.format]: dict(self.files),
        }
        common = {f.name for f in fields(Manifest)[:7]}
        for f in fields(Manifest):
            value = getattr(self, f.name)
            if f.name not in common and value is not None and not (f.name == "precision_details" and self.is_tensorrt):
                out[f.name] = value
        out["sha256"] = dict(self.sha256)
        return out


def _field(raw: dict, key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise PahsError(
            f"expected {key!r} to be {names} in {where}, found {value!r}; the manifest is damaged: export it again"
        )
    return value


def manifest_from_json(raw: Any, where: Path) -> Manifest:
    """Validate a parsed ``manifest.json`` (``where`` names it in errors) into a :class:`Manifest`."""
    if not isinstance(raw, dict) or raw.get("format") not in FORMATS:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        known = " or ".join(repr(f) for f in FORMATS)
        raise PahsError(f"expected a manifest of format {known}, found {found!r} in {where}; export again")
    fmt = raw["format"]
    direction = raw.get("direction")
    if direction not in DIRECTIONS:
        raise PahsError(f"expected 'direction' bidirectional or unidirectional in {where}, found {direction!r}")
    channels = _field(raw, "channels", dict, where)
    c, hidden = _field(channels, "c", int, where), _field(channels, "hidden", int, where)
    mid = channels.get("mid", 2 * c // 3)
    multiple = _field(raw, "size_multiple", int, where)
    if min(c, hidden, multiple) <= 0:
        raise PahsError(
            f"expected positive channel widths and size_multiple in {where}, found channels {channels} and "
            f"size_multiple {multiple}; export the artifact again"
        )
    precision = raw.get("precision")
    if precision not in PRECISIONS:
        raise PahsError(f"expected 'precision' among {', '.join(PRECISIONS)} in {where}, found {precision!r}")
    files = _field(raw, FORMATS[fmt], dict, where)
    expected = roles_for(direction == "bidirectional")
    kind = "graphs" if fmt == ONNX_FORMAT else "engines"
    if sorted(files) != sorted(expected) or not all(isinstance(v, str) for v in files.values()):
        raise PahsError(
            f"expected {kind} {', '.join(expected)} in {where}, found {', '.join(map(str, files)) or 'none'}; "
            "export the artifact again"
        )
    sha256 = _field(raw, "sha256", dict, where)
    optional = {}
    for f in fields(Manifest)[7:]:
        if f.name in raw:
            optional[f.name] = raw[f.name]
    return Manifest(
        format=fmt,
        preset=_field(raw, "preset", str, where),
        bidirectional=direction == "bidirectional",
        geometry=Geometry(c, hidden, mid, multiple),
        precision=precision,
        files=dict(files),
        sha256=dict(sha256),
        **optional,
    )


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate the ``manifest.json`` of the artifact folder ``path`` (the one place that reads it)."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.exists():
        raise PahsError(f"expected an exported artifact folder, found nothing at {path}; run `pahs-export onnx` first")
    if not manifest_path.is_file():
        raise PahsError(f"expected {MANIFEST} inside {path}, found none; pass a folder written by `pahs-export onnx`")
    try:
        raw = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PahsError(
            f"expected JSON in {manifest_path}, could not read it ({e}); export the artifact again"
        ) from None
    return manifest_from_json(raw, manifest_path)


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``manifest`` as ``folder/manifest.json``."""
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return path


@dataclass(frozen=True)
class Artifact:
    """An artifact folder with its validated manifest (every file it names is there)."""

    path: Path
    manifest: Manifest

    @property
    def graphs(self) -> dict[str, Path]:
        """Role -> path of its graph (ONNX) or engine (TensorRT) file."""
        return {role: self.path / name for role, name in self.manifest.files.items()}

    @property
    def bidirectional(self) -> bool:
        return self.manifest.bidirectional

    @property
    def preset(self) -> str:
        return self.manifest.preset

    @property
    def precision(self) -> str:
        return self.manifest.precision

    @property
    def geometry(self) -> Geometry:
        return self.manifest.geometry

    def check_hashes(self) -> None:
        """Raise a :class:`PahsError` if a file differs from the sha256 the manifest records."""
        for name, digest in self.manifest.sha256.items():
            if file_sha256(self.path / name) != digest:
                raise PahsError(
                    f"{self.path / name} does not match the sha256 in {MANIFEST} (expected {digest[:12]}…); "
                    "the artifact was modified: export it again"
                )


def read_artifact(path: str | Path, format: str = ONNX_FORMAT) -> Artifact:
    """Open an artifact folder (or its manifest.json) of ``format`` and check that its files are there."""
    path = Path(path)
    if path.name == MANIFEST:
        path = path.parent
    manifest = read_manifest(path)
    if manifest.format != format:
        raise PahsError(
            f"expected a manifest of format {format!r}, found {manifest.format!r} in {path / MANIFEST}; "
            f"pass an artifact from `pahs-export {'trt' if format == TENSORRT_FORMAT else 'onnx'}`"
        )
    kind = "graph" if format == ONNX_FORMAT else "engine"
    for role, name in manifest.files.items():
        if not (path / name).is_file():
            raise PahsError(
                f"the {role} {kind} {path / name} named in {MANIFEST} is missing; export the artifact again"
            )
    return Artifact(path, manifest)
