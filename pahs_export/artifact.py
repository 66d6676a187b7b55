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

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .atomic import file_sha256
from .contract import PRECISIONS, ROLES, Geometry, roles_for
from .errors import PahsError
from .presets import PRESETS

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


def _damaged(where: Path, expected: str, found: Any) -> PahsError:
    """The one-line error of a manifest field that does not hold what it must."""
    return PahsError(
        f"expected {expected} in {where}, found {found!r}; the manifest is damaged or hand-edited: export the "
        "artifact again"
    )


def _field(raw: dict, key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    """``raw[key]``, which must be present and of ``kind`` (a bool is never taken for an int)."""
    value = raw.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _damaged(where, f"{key!r} to be {names}", value)
    return value


def _positive_int(raw: dict, key: str, where: Path, label: str | None = None) -> int:
    """``raw[key]`` as a positive int (JSON's true/false, floats and strings such as "16" are refused)."""
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _damaged(where, f"{label or repr(key)} to be a positive integer", value)
    return value


def check_file_name(name: Any, what: str, where: Path) -> str:
    """``name`` if it is a plain file name (the manifest names files *inside* its folder), else a one-line error.

    Refused: anything but a non-empty string, path separators of any platform (so no absolute paths and no
    sub-folders), ".", ".." and NUL. Symlinks are judged later, against the folder (:meth:`Artifact.file`).
    """
    plain = (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(c in name for c in ("/", "\\", "\0"))
        and Path(name).name == name
    )
    if not plain:
        raise PahsError(
            f"expected {what} to be a plain file name inside the artifact folder in {where}, found {name!r}; "
            "a manifest may not name files elsewhere: export the artifact again"
        )
    return name


def _sha256_table(raw: dict, where: Path) -> dict[str, str]:
    """The ``sha256`` table: plain file names -> 64 lower-case hex digits."""
    table = _field(raw, "sha256", dict, where)
    for name, digest in table.items():
        check_file_name(name, "every key of 'sha256'", where)
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise _damaged(where, f"the sha256 of {name} to be 64 lower-case hex digits", digest)
    return dict(table)


# Optional fields (absent or null: not recorded) -> the JSON type each must have when present.
_OPTIONAL_TYPES: dict[str, type] = {
    "opset": int,
    "precision_details": dict,
    "calibration": dict,
    "io": dict,
    "checkpoint": dict,
    "versions": dict,
    "exported_at_size": dict,
    "device": dict,
    "profile": dict,
    "build": dict,
    "source": dict,
}
PROFILE_SIZES = ("min_size", "opt_size", "max_size")  # [width, height] each
PROFILE_BATCHES = ("min_batch", "opt_batch", "max_batch")
DEVICE_KEYS = ("tensorrt", "gpu", "compute_capability")


def _optional_fields(raw: dict, fmt: str, files: dict[str, str], sha256: dict[str, str], where: Path) -> dict:
    """The optional fields of ``raw``, type-checked, with the parts the code reads checked deeper."""
    out: dict[str, Any] = {}
    for f in fields(Manifest)[7:]:
        value = raw.get(f.name)
        if value is None:
            continue
        kind = _OPTIONAL_TYPES[f.name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _damaged(where, f"{f.name!r} to be {kind.__name__}", value)
        out[f.name] = value
    details = out.get("precision_details", {})
    for role, detail in details.items():
        if not isinstance(detail, dict) or not isinstance(detail.get("target", ""), str):
            raise _damaged(where, f"'precision_details' of {role} to be an object (with a string 'target')", detail)
    checkpoint = out.get("checkpoint", {})
    for key in ("kind", "path", "file", "sha256"):
        if key in checkpoint and not isinstance(checkpoint[key], str):
            raise _damaged(where, f"'checkpoint' {key} to be a string", checkpoint[key])
    if "file" in checkpoint:  # the weights stored in the folder: loaded by verify and the torch backend
        check_file_name(checkpoint["file"], "'checkpoint' file", where)
        if checkpoint["file"] not in sha256:
            raise _damaged(where, f"a sha256 for the stored checkpoint {checkpoint['file']}", None)
    if fmt == TENSORRT_FORMAT:  # what the TensorRT backend reads before it deserializes anything
        device = _field(raw, "device", dict, where)
        for key in DEVICE_KEYS:
            if not isinstance(device.get(key), str):
                raise _damaged(where, f"'device' {key} to be a string", device.get(key))
        profile = _field(raw, "profile", dict, where)
        for key, value in profile.items():
            if key in PROFILE_SIZES:
                if not (isinstance(value, list) and len(value) == 2):
                    raise _damaged(where, f"'profile' {key} to be [width, height]", value)
                for i, label in enumerate(("width", "height")):
                    _positive_int({key: value[i]}, key, where, f"the {label} of 'profile' {key}")
            elif key in PROFILE_BATCHES:
                _positive_int(profile, key, where, f"'profile' {key}")
            else:
                raise _damaged(where, f"'profile' keys among {', '.join(PROFILE_SIZES + PROFILE_BATCHES)}", key)
    return out


def manifest_from_json(raw: Any, where: Path) -> Manifest:
    """Validate a parsed ``manifest.json`` (``where`` names it in errors) into a :class:`Manifest`.

    Every field the code reads is checked here, once, so that nothing downstream meets a wrong type: the
    format, preset (a known one, with its channel widths), direction, a positive ``size_multiple`` that
    keeps the preset's rule, the precision, one plain file name per role, and a ``sha256`` table that covers
    every file pahs loads from the folder (the role files and a stored checkpoint), so no loaded file escapes
    the hash check.
    """
    fmt = raw.get("format") if isinstance(raw, dict) else None
    if not isinstance(fmt, str) or fmt not in FORMATS:
        known = " or ".join(repr(f) for f in FORMATS)
        found = repr(fmt) if isinstance(raw, dict) else f"a JSON {type(raw).__name__} instead of an object"
        raise PahsError(
            f"expected a manifest of format {known}, found {found} in {where}; pass a folder written by "
            "`pahs-export`, or export it again"
        )
    preset_name = _field(raw, "preset", str, where)
    if preset_name not in PRESETS:
        raise _damaged(where, f"'preset' among {', '.join(PRESETS)}", preset_name)
    preset = PRESETS[preset_name]
    direction = raw.get("direction")
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise PahsError(
            f"expected 'direction' bidirectional or unidirectional in {where}, found {direction!r}; "
            "export the artifact again"
        )
    channels = _field(raw, "channels", dict, where)
    c, hidden = _positive_int(channels, "c", where), _positive_int(channels, "hidden", where)
    mid = _positive_int(channels, "mid", where) if "mid" in channels else preset.mid  # older manifests lack it
    multiple = _positive_int(raw, "size_multiple", where)
    if (c, hidden, mid) != (preset.channels, preset.hidden, preset.mid) or multiple % preset.stride:
        raise PahsError(
            f"expected channels c={preset.channels}, hidden={preset.hidden}, mid={preset.mid} and a size_multiple "
            f"that is a multiple of {preset.stride} (preset {preset_name}) in {where}, found c={c}, hidden={hidden}, "
            f"mid={mid}, size_multiple {multiple}; the manifest does not describe its graphs: export it again"
        )
    precision = raw.get("precision")
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise PahsError(
            f"expected 'precision' among {', '.join(PRECISIONS)} in {where}, found {precision!r}; "
            "export the artifact again"
        )
    files = _field(raw, FORMATS[fmt], dict, where)
    expected = roles_for(direction == "bidirectional")
    kind = "graphs" if fmt == ONNX_FORMAT else "engines"
    if sorted(files) != sorted(expected):
        raise PahsError(
            f"expected {kind} {', '.join(expected)} in {where}, found {', '.join(map(str, files)) or 'none'}; "
            "export the artifact again"
        )
    for role, name in files.items():
        check_file_name(name, f"the {role} {kind[:-1]}", where)
    sha256 = _sha256_table(raw, where)
    unhashed = sorted(name for name in files.values() if name not in sha256)
    if unhashed:
        raise PahsError(
            f"expected a sha256 in {where} for every file pahs loads, found none for {', '.join(unhashed)}; "
            "the manifest was edited: export the artifact again"
        )
    return Manifest(
        format=fmt,
        preset=preset_name,
        bidirectional=direction == "bidirectional",
        geometry=Geometry(c, hidden, mid, multiple),
        precision=precision,
        files=dict(files),
        sha256=sha256,
        **_optional_fields(raw, fmt, files, sha256, where),
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
    except RecursionError:  # nested deeper than the parser goes: no manifest of ours
        raise PahsError(
            f"expected a manifest in {manifest_path}, found JSON nested too deeply to read; export the artifact again"
        ) from None
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
    """An artifact folder with its validated manifest (every file it names is there).

    Load its files through :meth:`verified_bytes` / :meth:`verified_files`: they hash the bytes they return
    against the manifest, so a backend cannot load a file that was swapped after export, and there is no
    window between the check and the load.
    """

    path: Path
    manifest: Manifest

    @property
    def graphs(self) -> dict[str, Path]:
        """Role -> path of its graph (ONNX) or engine (TensorRT) file (not verified: see :meth:`verified_files`)."""
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

    @property
    def kind(self) -> str:
        """What its role files are: "graph" (ONNX) or "engine" (TensorRT)."""
        return "engine" if self.manifest.is_tensorrt else "graph"

    @property
    def remake(self) -> str:
        """What to do when its files do not match the manifest (the end of a one-line error)."""
        if self.manifest.is_tensorrt:
            return "rebuild it with `pahs-export trt` (run only engines you built or trust)"
        return "export it again"

    def file(self, name: str) -> Path:
        """The real path of the file ``name`` of this artifact, refused unless it lies inside the folder.

        ``name`` must be a plain file name (the manifest's are, see :func:`check_file_name`) and, symlinks
        resolved, must stay inside the resolved folder: a link pointing out of the folder is refused.
        """
        where = self.path / MANIFEST
        check_file_name(name, "a file", where)
        root = self.path.resolve()
        real = (self.path / name).resolve()
        if real == root or not real.is_relative_to(root):
            raise PahsError(
                f"expected {self.path / name} to be a file inside the artifact folder {root}, found that it "
                f"resolves to {real} (a symlink out of the folder); copy the file in or export the artifact again"
            )
        return real

    def verified_bytes(self, role: str) -> bytes:
        """The contents of the ``role`` file, after checking them against the manifest's sha256.

        The bytes that were hashed are the bytes returned: hand them to the runtime (ONNX Runtime and
        TensorRT both load from bytes) rather than the path, so nothing can change the file in between.
        """
        name = self.manifest.files[role]
        digest = self.manifest.sha256.get(name)
        path = self.file(name)
        if digest is None:  # read_artifact refuses such manifests; an Artifact built by hand may still have one
            raise PahsError(
                f"expected a sha256 in {self.path / MANIFEST} for the {role} {self.kind} {name}, found none; "
                "export the artifact again"
            )
        try:
            data = path.read_bytes()
        except OSError as e:
            raise PahsError(
                f"could not read the {role} {self.kind} {path} ({e.strerror or e}); check the folder or export "
                "the artifact again"
            ) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise PahsError(
                f"{self.path / name} does not match the sha256 in {MANIFEST} (expected {digest[:12]}…); "
                f"the artifact was modified: {self.remake}"
            )
        if self.manifest.is_tensorrt:
            return data
        return self._self_contained(role, path, data)

    def _self_contained(self, role: str, path: Path, data: bytes) -> bytes:
        """The ONNX graph ``data`` with every tensor kept in an external-data file read in, from that file's
        verified bytes: ONNX Runtime and OpenVINO, given bytes, would otherwise read the named file from the
        working folder, outside the artifact and its hashes. An external file must be a plain name inside the
        folder with a sha256 in the manifest."""
        if b"location" not in data:
            # An external tensor must name its file under the key "location" (the ONNX spec), so a graph without
            # those bytes has none: skip parsing it with `onnx`, whose import (ml_dtypes) costs a second at start-up.
            return data
        import onnx
        from google.protobuf.message import DecodeError
        from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError):
            return data  # no graph, so no external data: the backend refuses it in its own one line
        external = [t for t in _get_all_tensors(model) if uses_external_data(t)]
        if not external:
            return data
        files: dict[str, bytes] = {}
        for tensor in external:
            info = ExternalDataInfo(tensor)
            name = check_file_name(info.location, f"the external data of the {role} graph", path)
            if name not in files:
                if name not in self.manifest.sha256:
                    raise PahsError(
                        f"expected a sha256 in {self.path / MANIFEST} for {name}, the external data of the {role} "
                        f"graph, found none; {self.remake}"
                    )
                real = self.file(name)
                try:
                    files[name] = real.read_bytes()
                except OSError as e:
                    raise PahsError(
                        f"expected {name}, the external data of the {role} graph, inside {self.path}, could not "
                        f"read it ({e.strerror or e}); {self.remake}"
                    ) from None
                if hashlib.sha256(files[name]).hexdigest() != self.manifest.sha256[name]:
                    raise PahsError(
                        f"{self.path / name} does not match the sha256 in {MANIFEST}; the artifact was modified: "
                        f"{self.remake}"
                    )
            blob = files[name]
            offset = info.offset or 0
            length = len(blob) - offset if info.length is None else info.length
            if offset < 0 or length < 0 or offset + length > len(blob):
                raise PahsError(
                    f"expected {name} to hold bytes {offset} to {offset + length} for tensor {tensor.name!r} of "
                    f"the {role} graph, found {len(blob)} bytes; {self.remake}"
                )
            tensor.raw_data = blob[offset : offset + length]
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
        return model.SerializeToString()

    def verified_files(self) -> dict[str, bytes]:
        """Role -> :meth:`verified_bytes` of its graph or engine, for every role of the artifact."""
        return {role: self.verified_bytes(role) for role in self.manifest.files}

    def check_hashes(self) -> None:
        """Raise a :class:`PahsError` if any file the manifest lists differs from its recorded sha256 (the role
        files, and also the stored checkpoint and caches; backends verify what they load themselves)."""
        for name, digest in self.manifest.sha256.items():
            path = self.file(name)
            try:
                actual = file_sha256(path)
            except OSError as e:
                raise PahsError(
                    f"could not read {path} to check its sha256 ({e.strerror or e}); export the artifact again"
                ) from None
            if actual != digest:
                raise PahsError(
                    f"{self.path / name} does not match the sha256 in {MANIFEST} (expected {digest[:12]}…); "
                    f"the artifact was modified: {self.remake}"
                )


Dims = Sequence[int | str | None]  # a tensor shape as a runtime reports it: ints, named or unknown (None, -1) axes


def check_graph_io(
    graph: str | Path,
    role: str,
    geometry: Geometry,
    inputs: Sequence[tuple[str, Dims]],
    outputs: Sequence[tuple[str, Dims]],
) -> None:
    """Raise a one-line :class:`PahsError` unless a loaded graph or engine has the I/O of the graph contract.

    ``inputs`` / ``outputs``: (name, shape) as the runtime reports them (ONNX Runtime's ``get_inputs()``, a
    TensorRT engine's tensors). Checked: the names, the rank of each tensor, every fixed axis of the contract
    (channels) where the graph fixes it too, and that the dynamic axes of the inputs (N, H, W) are not fixed.
    Negative ints (TensorRT's -1) and None count as dynamic. ``graph`` names the file in the message.
    """
    spec = ROLES[role]

    def describe(tensors: Sequence[tuple[str, Dims]]) -> str:
        return ", ".join(f"{n} [{','.join('?' if d is None else str(d) for d in shape or ())}]" for n, shape in tensors)

    def contract(names: Sequence[str]) -> list[tuple[str, Dims]]:
        return [(n, geometry.symbolic_shape(n)) for n in names]

    def fits(name: str, shape: Dims, is_input: bool) -> bool:
        want = geometry.symbolic_shape(name)
        if shape is None or len(shape) != len(want):  # None: a runtime that knows no rank
            return False
        for w, d in zip(want, shape, strict=True):
            fixed = isinstance(d, int) and d >= 0
            if isinstance(w, int) and fixed and d != w:
                return False
            if isinstance(w, str) and fixed and is_input:  # a graph traced at one size would run at no other
                return False
        return True

    for what, names, found, is_input in (
        ("inputs", spec.inputs, inputs, True),
        ("outputs", spec.outputs, outputs, False),
    ):
        ok = sorted(n for n, _ in found) == sorted(names) and all(fits(n, s, is_input) for n, s in found)
        if not ok:
            raise PahsError(
                f"expected the {role} {graph} to have {what} {describe(contract(names))} (graph contract), found "
                f"{describe(found) or 'none'}; it was not made by `pahs-export` for this manifest: export the "
                "artifact again"
            )


def read_artifact(path: str | Path, format: str = ONNX_FORMAT) -> Artifact:
    """Open an artifact folder (or its manifest.json) of ``format`` and check that its files are there.

    Every file the manifest names must be a regular file inside the folder (after resolving symlinks);
    the manifest itself was validated by :func:`read_manifest`, including a sha256 for every loaded file.
    """
    path = Path(path)
    if path.name == MANIFEST:
        path = path.parent
    manifest = read_manifest(path)
    if manifest.format != format:
        raise PahsError(
            f"expected a manifest of format {format!r}, found {manifest.format!r} in {path / MANIFEST}; "
            f"pass an artifact from `pahs-export {'trt' if format == TENSORRT_FORMAT else 'onnx'}`"
        )
    artifact = Artifact(path, manifest)
    for role, name in manifest.files.items():
        if not artifact.file(name).is_file():
            raise PahsError(
                f"the {role} {artifact.kind} {path / name} named in {MANIFEST} is missing; export the artifact again"
            )
    return artifact
