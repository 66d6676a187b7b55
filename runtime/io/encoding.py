"""Encoding: frames into one video stream in a container (PyAV: libx264, libx265, FFV1, raw), or a folder of PNGs.

:func:`plan_output` resolves and checks what an output will be (container, codec, pixel format, rate) before
anything is written; the sinks here then write into a path or a binary file object they are given, and
:mod:`runtime.io.writing` picks the sink and publishes what it wrote. Frames come in as float [H, W, 3] RGB in
[0, 1] (clipped), are quantised to 8 or 16 bits and converted to the pixel format written.

Decisions:

- Containers: the -o suffix (.mp4, .mov, .mkv, .y4m, .nut), or ``OutputOptions.format`` (y4m, nut, matroska,
  rawvideo), which overrides the suffix and is what standard output gets: y4m by default, the stream ffmpeg,
  x264, x265, mpv and VapourSynth all read. Pipe formats are written as streams (no seeking back): Matroska
  without an index. rawvideo is bare frames with no header: :meth:`OutputPlan.describe` says their layout.
- Codecs (``codec``, :func:`available_codecs`): libx264 by default in mp4/mov/mkv/matroska; libx265, ffv1,
  libx264rgb and rawvideo on request; raw frames (rawvideo) by default in y4m, nut and rawvideo (y4m takes the
  raw codec this FFmpeg's muxer accepts: rawvideo, or wrapped_avframe where it takes only that). png is for folders
  only, and folders are png only. Whether a container holds a codec and pixel format is asked of FFmpeg by
  writing a header to memory: its codec tables are not reliable.
- Pixel formats (``pix_fmt``, :func:`pixel_formats`: the encoder's own list, limited to YUV 4:2:0/4:2:2/4:4:4
  and RGB at 8, 10, 12 or 16 bits). Defaults for libx264/libx265 and raw frames in y4m/nut: the source's
  chroma (4:2:0, 4:2:2, 4:4:4; 4:2:0 for RGB and grey sources) at its bit depth, or the nearest deeper depth the
  codec has (:func:`_source_yuv`): a 10-bit HEVC source gives yuv420p10le with libx264. Where the codec has
  neither (12 bits in libx264), the closest it has, with a warning naming what keeps them; libx264 stays the
  default unless it writes 8 bits only (then the first codec that writes more). yuv444p for odd widths or
  heights (4:2:0 cannot hold them: H.264 High 4:4:4, which FFmpeg-based players such as mpv and VLC play,
  browsers and hardware decoders mostly do not); rawvideo rgb24, rgb48le for deeper sources. Subsampled formats
  need even sizes. A format deeper than 8 bits is converted from frames quantised to 16 bits, so yuv420p10le
  keeps 10 bits of a deep source (and smooth gradients of an 8-bit one).
- Colour: YUV is limited range. Where the stream carries colour tags (mp4, mov, Matroska, and H.264/HEVC
  streams in any container) it is tagged with the source's matrix/primaries/transfer and converted with its
  matrix, BT.709 when unknown. y4m, NUT and bare raw frames carry no matrix: there the source's matrix is
  used, or BT.601 when unknown, which is what FFmpeg (and this package's reader) assume for untagged YUV, so
  an untagged y4m stream passes through with no colour shift.
- ``lossless``: .mkv and matroska get FFV1 RGB (bgr0 for 8-bit sources, 16-bit gbrp16le for deeper ones);
  .mp4/.mov get libx264rgb at qp 0 (8-bit RGB, rounded from deeper sources with a warning); nut and rawvideo
  get raw rgb24/rgb48le; y4m (YUV only) and lossy codecs or YUV pixel formats are refused. The output decodes
  to exactly the quantised frames that were written (8-bit: round(x * 255), 16-bit: round(x * 65535)).
  libx264rgb is H.264 High 4:4:4 RGB: FFmpeg-based players only.
- Timing: frame count, size, frame rate and timestamps are kept: the output's pts are the input's. mp4/mov use
  the source time base's denominator as the track timescale, so for a time base 1/N (the usual case) the output
  has the same time base and identical pts, and VFR survives; a time base k/N gives 1/N and pts * k. Matroska
  stores milliseconds. Frames without a timestamp get the previous one plus one frame; a timestamp that does
  not increase is bumped by one tick (muxers refuse them). ``fps`` overrides the rate for any source: frames
  keep their order and count and are retimed at that constant rate. y4m and rawvideo have no timestamps: they
  are always written at a constant rate (``fps``, else the source's average rate). Frame folders have no frame
  rate: 25 frames/s unless ``fps`` says otherwise.
- Audio: every audio stream of a source video is copied packet by packet (no re-encoding), interleaved with
  the video. One warning, and no audio, when it cannot be: a codec the container cannot hold (e.g. Opus or FLAC
  in .mov; the warning names .mkv, which holds them all), y4m and rawvideo (no audio at all), ``fps`` changing
  a video's rate (the audio would drift), or a source read once (standard input, a live stream) that cannot be
  opened again. A URL that can be opened again is, for its audio and colour tags.
- crf and preset apply to libx264 and libx265; x265 logs only errors (its banner would mix with the
  progress on standard error). HEVC in mp4/mov is tagged hvc1, which Apple's players require. x265 leaves
  the decode timestamps of clips of one or two frames uninitialised; the sink replaces them (_check_dts).
- PNG output: 8-bit, or 16-bit when the source has more than 8 bits (``pix_fmt`` rgb24 or rgb48be chooses);
  named after the source frames for a folder input (``name.png``), else ``000000.png``, ``000001.png``...
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from pahs_export.errors import PahsError

from .reading import VideoInfo, _reason, source_kind

# output suffix -> FFmpeg muxer
VIDEO_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".y4m": "yuv4mpegpipe", ".nut": "nut"}
# OutputOptions.format (what standard output gets; overrides a file's suffix) -> FFmpeg muxer; the first is the default
OUTPUT_FORMATS = {"y4m": "yuv4mpegpipe", "nut": "nut", "matroska": "matroska", "rawvideo": "rawvideo"}
OUTPUT_CODECS = ("libx264", "libx265", "ffv1", "libx264rgb", "rawvideo", "png")  # offered, where FFmpeg has them
LOSSLESS_CODECS = ("ffv1", "libx264rgb", "rawvideo", "png")  # exact with an RGB pixel format (libx264rgb at qp 0)
FOLDER_FPS = Fraction(25)  # frame rate of video made from frame folders, unless OutputOptions.fps says otherwise
X264_PRESETS = tuple("ultrafast superfast veryfast faster fast medium slow slower veryslow placebo".split())

# Pixel formats worth offering: YUV 4:2:0/4:2:2/4:4:4 and RGB at 8, 10, 12, 16 bits. Left out: alpha (the
# frames have none), grey, JPEG-range yuvj (deprecated), palettes, semi-planar and odd depths.
_SENSIBLE = re.compile(r"(yuv4(20|22|44)p|gbrp)((10|12|16)(le|be))?|rgb24|bgr24|bgr0|rgb48(le|be)")
# The raw codecs list no formats (they take any): these are the ones offered for them.
_RAW_PIX_FMTS = (
    "yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le",
    "yuv444p12le", "yuv420p16le", "yuv422p16le", "yuv444p16le", "rgb24", "bgr24", "bgr0", "rgb48le", "gbrp",
    "gbrp10le", "gbrp12le", "gbrp16le",
)  # fmt: skip
_RAW = ("rawvideo", "wrapped_avframe")
_TAGGED_MUXERS = ("mp4", "mov", "matroska")  # containers that store colour tags
_TAGGED_CODECS = ("libx264", "libx265")  # bitstreams that store them (VUI), whatever the container
_NAMES = {"yuv4mpegpipe": "y4m", "wrapped_avframe": "rawvideo"}  # FFmpeg's names -> the ones users know
# Encoder options: x265 logs errors only (its banner would mix with the progress on stderr).
_QUIET = {"libx265": {"x265-params": "log-level=error"}}


@dataclass(frozen=True)
class OutputOptions:
    """How outputs are encoded (see the module docstring for the formats); None: the default for the output."""

    crf: int = 18  # libx264/libx265 quality, 0-51, lower is better (18 looks lossless on most content)
    lossless: bool = False  # exact RGB output: FFV1 in .mkv (8 or 16-bit), libx264rgb qp 0 in .mp4/.mov, raw in nut
    overwrite: bool = False  # replace an existing output file, or a folder holding only image files
    preset: str = "medium"  # libx264/libx265 speed/size trade-off, "ultrafast" ... "placebo"
    fps: Fraction | None = None  # constant output frame rate, frames retimed (order and count kept); None: the
    # source's timestamps (25 frames/s for frame folders)
    codec: str | None = None  # encoder (available_codecs()); None: libx264 (ffv1/libx264rgb when lossless) in
    # mp4/mov/mkv, raw frames in y4m/nut/rawvideo, png for folders
    pix_fmt: str | None = None  # pixel format written (pixel_formats(codec)), e.g. "yuv420p10le"; None: yuv420p
    # (yuv444p for odd sizes, 10-bit for deep sources in y4m/nut), rgb24/rgb48le raw, the RGB formats if lossless
    format: str | None = None  # container (OUTPUT_FORMATS): y4m, nut, matroska or rawvideo; None: y4m on
    # standard output, else from the -o suffix


def available_codecs() -> tuple[str, ...]:
    """The output codecs this FFmpeg can encode, in :data:`OUTPUT_CODECS` order (png: folders only)."""
    import av

    return tuple(c for c in OUTPUT_CODECS if c in av.codecs_available)


@cache
def pixel_formats(codec: str, container: str | None = None) -> tuple[str, ...]:
    """The pixel formats ``codec`` encodes, in FFmpeg's order, limited to YUV 4:2:0/4:2:2/4:4:4 and RGB at 8,
    10, 12 or 16 bits; with ``container`` (an :data:`OUTPUT_FORMATS` name or an FFmpeg muxer), only those it
    holds. () for a codec FFmpeg lacks."""
    import av

    if codec not in av.codecs_available:
        return ()
    if codec in _RAW:
        names: tuple[str, ...] = _RAW_PIX_FMTS
    else:
        names = tuple(f.name for f in av.Codec(codec, "w").video_formats or () if _SENSIBLE.fullmatch(f.name))
    if container is None:
        return names
    muxer = OUTPUT_FORMATS.get(container, container)
    return tuple(p for p in names if _holds(muxer, _muxed_codec(muxer, codec), p))


def _depth(pix_fmt: str) -> int:
    import av

    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def _is_rgb(pix_fmt: str) -> bool:
    import av

    return bool(av.VideoFormat(pix_fmt).is_rgb)


def _subsampling(pix_fmt: str) -> tuple[bool, bool]:
    """(halves the width, halves the height) of the chroma planes of ``pix_fmt``."""
    import av

    components = av.VideoFormat(pix_fmt, 64, 64).components
    return (components[-1].width < 64, components[-1].height < 64) if len(components) > 1 else (False, False)


def _mux_options(muxer: str, time_base: Fraction) -> dict[str, str]:
    if muxer in ("mp4", "mov"):  # a track timescale equal to the source's keeps its pts as they are
        return {"movflags": "+faststart", "video_track_timescale": str(time_base.denominator)}
    if muxer == "yuv4mpegpipe":  # 9 to 16-bit formats are y4m extensions that FFmpeg writes only when told to
        return {"strict": "-1"}
    return {}


# Frames by which decoding may run ahead of the frames fed in. x264 and x265 delay decode by at most 2 (with a
# B-pyramid: packet k's dts is the pts of frame k - 2, the first ones 1 or 2 frames before frame 0's pts).
_REORDER = 4


@cache
def _holds(muxer: str, codec: str, pix_fmt: str) -> bool:
    """Whether FFmpeg writes a ``muxer`` header for a ``codec`` stream in ``pix_fmt`` (into memory)."""
    import av

    probe = av.open(io.BytesIO(), "w", format=muxer, options=_mux_options(muxer, Fraction(1, 25)))
    try:
        stream = probe.add_stream(codec, rate=25, options=_QUIET.get(codec, {}))
        stream.width, stream.height, stream.pix_fmt = 64, 64, pix_fmt
        probe.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError):
        return False
    finally:
        with contextlib.suppress(av.error.FFmpegError, ValueError):
            probe.close()


@cache
def _y4m_codec() -> str:
    """The raw codec this FFmpeg's y4m muxer takes: rawvideo, else wrapped_avframe (some FFmpeg versions take
    only that)."""
    return "rawvideo" if _holds("yuv4mpegpipe", "rawvideo", "yuv420p") else "wrapped_avframe"


def _muxed_codec(muxer: str, codec: str) -> str:
    """``codec`` as the muxer gets it: y4m's raw frames go in the raw codec its muxer takes."""
    return _y4m_codec() if muxer == "yuv4mpegpipe" and codec in _RAW else codec


def _rate_text(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


@dataclass(frozen=True)
class OutputPlan:
    """What an output will be: :func:`plan_output` resolves it from the options and the source, and checks it."""

    target: str  # where it goes, for messages: "standard output", or -o as given
    muxer: str | None  # FFmpeg muxer: "mp4", "mov", "matroska", "yuv4mpegpipe", "nut", "rawvideo"; None: PNG folder
    codec: str  # FFmpeg encoder: "libx264", "libx265", "ffv1", "libx264rgb", "rawvideo", "wrapped_avframe", "png"
    pix_fmt: str  # pixel format written, e.g. "yuv420p", "yuv420p10le", "bgr0", "rgb24", "rgb48be" (16-bit PNG)
    width: int  # frame width in pixels
    height: int  # frame height in pixels
    rate: Fraction  # frames per second: the fps override, else the source's average rate, else FOLDER_FPS
    retime: bool  # frames get constant-rate timestamps (pts = index / rate), not the source's
    codec_options: tuple[tuple[str, str], ...]  # encoder options, e.g. (("crf", "18"), ("preset", "medium"))

    def describe(self) -> str:
        """One line saying what is written, e.g. "y4m, rawvideo yuv420p 64x48 at 24 fps, to standard output"
        (for rawvideo, what a reader must be told: pixel format, size and rate)."""
        size = f"{self.width}x{self.height}"
        if self.muxer is None:
            return f"PNG frames, {self.pix_fmt} {size}, to {self.target}"
        container, codec = _NAMES.get(self.muxer, self.muxer), _NAMES.get(self.codec, self.codec)
        return f"{container}, {codec} {self.pix_fmt} {size} at {_rate_text(self.rate)} fps, to {self.target}"


def _check_numbers(options: OutputOptions) -> None:
    """Refuse a crf, preset or fps out of range (one-line :class:`PahsError`)."""
    if not 0 <= options.crf <= 51:
        raise PahsError(f"expected a crf from 0 to 51, found {options.crf}; 18 looks lossless on most content")
    if options.preset not in X264_PRESETS:
        raise PahsError(f"expected an x264 preset ({', '.join(X264_PRESETS)}), found {options.preset!r}")
    if options.fps is not None and options.fps <= 0:
        raise PahsError(f"expected a positive frame rate, found {options.fps}; pass one such as 25 or 30000/1001")


def plan_output(muxer: str | None, info: VideoInfo, options: OutputOptions, target: str) -> OutputPlan:
    """Resolve and check the encoding of an output: ``muxer`` an FFmpeg muxer (None: a PNG folder), ``info`` the
    source (size, depth, rate), ``target`` its name for messages. Every problem is a one-line
    :class:`PahsError` saying what was expected, what was found and what is available. Writes nothing."""
    _check_numbers(options)
    deep = info.bit_depth > 8
    rate = Fraction(options.fps or info.fps or FOLDER_FPS)
    retime = options.fps is not None or info.time_base is None or muxer in ("yuv4mpegpipe", "rawvideo")
    if muxer is None:
        if options.codec not in (None, "png"):
            raise PahsError(
                f"expected png (or no codec) for the folder of frames {target}, found {options.codec!r}; "
                "write a video file (-o ending in .mkv) for other codecs"
            )
        pix_fmt = options.pix_fmt or ("rgb48be" if deep else "rgb24")
        _check_pix_fmt("png", pix_fmt, None)
        return OutputPlan(target, None, "png", pix_fmt, info.width, info.height, rate, retime, ())
    name = _NAMES.get(muxer, muxer)
    codecs = available_codecs()
    video_codecs = ", ".join(c for c in codecs if c != "png")
    codec = options.codec or _default_codec(muxer, options.lossless)
    if options.codec is None and not options.lossless and deep:  # the default stays unless it cannot go deeper
        codec = _deep_codec(muxer, codec)
    if codec not in codecs:
        raise PahsError(
            f"expected a codec this FFmpeg encodes ({', '.join(codecs)}), found {codec!r}; choose one of those"
        )
    if codec == "png":
        raise PahsError(
            f"expected a video codec ({video_codecs}) for {target}, found png, which is for folders of frames; "
            "pass a folder as -o (ending in /) for PNG frames, or another codec"
        )
    codec = _muxed_codec(muxer, codec)
    exact = [c for c in LOSSLESS_CODECS if c != "png"]
    if options.lossless and codec not in exact:
        raise PahsError(
            f"expected a lossless codec with lossless output ({', '.join(c for c in exact if c in codecs)}), "
            f"found {codec}; choose one of those or drop lossless"
        )
    if options.lossless and muxer == "yuv4mpegpipe":
        raise PahsError(
            "expected a container that holds RGB for lossless output (nut, matroska, rawvideo), found y4m, which "
            "holds YUV only (converting RGB to YUV rounds); choose one of those or drop lossless"
        )
    pix_fmt = options.pix_fmt or _default_pix_fmt(muxer, codec, info, options.lossless)
    if options.pix_fmt is None and _writes_yuv(muxer, codec, options.lossless):
        note = _source_yuv(muxer, codec, info)[1]  # what the source loses, if it loses anything
        if note is not None:
            warnings.warn(note, stacklevel=2)
    _check_pix_fmt(codec, pix_fmt, None)
    if options.lossless and not _is_rgb(pix_fmt):
        rgb = ", ".join(p for p in pixel_formats(codec) if _is_rgb(p))
        raise PahsError(
            f"expected an RGB pixel format ({rgb}) with lossless output, found {pix_fmt} (converting RGB to YUV "
            "rounds); choose one of those or drop lossless"
        )
    half_w, half_h = _subsampling(pix_fmt)
    if (half_w and info.width % 2) or (half_h and info.height % 2):
        full = re.sub(r"yuv4\d\dp", "yuv444p", pix_fmt)
        raise PahsError(
            f"expected even frame sizes for {pix_fmt} (its colour planes are half size), found "
            f"{info.width}x{info.height}; choose {full}, or leave the pixel format to the default"
        )
    if not _holds(muxer, codec, pix_fmt):
        if not _holds(muxer, codec, _default_pix_fmt(muxer, codec, _PROBE_INFO, False)):
            holders = [
                c
                for c in codecs
                if c != "png" and _holds(muxer, _muxed_codec(muxer, c), _default_pix_fmt(muxer, c, _PROBE_INFO, False))
            ]
            raise PahsError(
                f"expected a codec {name} can hold ({', '.join(holders)}), found {_NAMES.get(codec, codec)}; "
                "choose one of those, or another container (matroska, .mkv, holds them all)"
            )
        _check_pix_fmt(codec, pix_fmt, muxer)
    return OutputPlan(
        target, muxer, codec, pix_fmt, info.width, info.height, rate, retime,
        tuple(_codec_options(codec, options).items()),
    )  # fmt: skip


_PROBE_INFO = VideoInfo(64, 64, None, None, None, 0, 8, None, False, False)  # an 8-bit source of even size


def _check_pix_fmt(codec: str, pix_fmt: str, muxer: str | None) -> None:
    choices = pixel_formats(codec, muxer)
    if pix_fmt not in choices:
        where = f" in {_NAMES.get(muxer, muxer)}" if muxer else ""
        raise PahsError(
            f"expected a pixel format {_NAMES.get(codec, codec)}{where} takes ({', '.join(choices)}), found "
            f"{pix_fmt!r}; choose one of those"
        )


def _default_codec(muxer: str, lossless: bool) -> str:
    if muxer == "yuv4mpegpipe":
        return _y4m_codec()
    if muxer in ("nut", "rawvideo"):
        return "rawvideo"
    if lossless:
        return "ffv1" if muxer == "matroska" else "libx264rgb"
    return "libx264"


def _default_pix_fmt(muxer: str, codec: str, info: VideoInfo, lossless: bool) -> str:
    deep = info.bit_depth > 8
    if _writes_yuv(muxer, codec, lossless):
        return _source_yuv(muxer, codec, info)[0]
    if codec == "ffv1":
        return "gbrp16le" if deep else "bgr0"
    return "rgb48le" if deep and codec in _RAW else "rgb24"  # raw RGB, libx264rgb


def _writes_yuv(muxer: str, codec: str, lossless: bool) -> bool:
    """Whether ``codec`` writes YUV by default in ``muxer`` (lossless output, ffv1, libx264rgb and bare raw
    frames are RGB)."""
    return not lossless and codec not in ("ffv1", "libx264rgb") and not (codec in _RAW and muxer == "rawvideo")


_CHROMA = {(True, True): "4:2:0", (True, False): "4:2:2", (False, False): "4:4:4"}  # (halves W, halves H) ->


def _chroma(pix_fmt: str | None) -> str | None:
    """ "4:2:0", "4:2:2" or "4:4:4" for a YUV pixel format; None for RGB, grey, or one FFmpeg does not know."""
    import av

    try:
        fmt = av.VideoFormat(pix_fmt) if pix_fmt else None
    except (ValueError, TypeError, av.error.FFmpegError):
        return None
    if fmt is None or fmt.is_rgb or len(fmt.components) < 3:
        return None
    return _CHROMA.get(_subsampling(pix_fmt))  # type: ignore[arg-type]


@cache
def _source_yuv(muxer: str, codec: str, info: VideoInfo) -> tuple[str, str | None]:
    """The YUV format ``codec`` writes by default in ``muxer``: the source's chroma (4:2:0 for RGB and grey
    sources; 4:4:4 where an odd size rules subsampling out) at the source's bit depth, or the nearest deeper one
    the codec has; else the closest it has, and a line saying what is lost and how to keep it (None: nothing)."""
    source = _chroma(info.pix_fmt)
    chroma = source or "4:2:0"
    if (chroma != "4:4:4" and info.width % 2) or (chroma == "4:2:0" and info.height % 2):
        chroma = "4:4:4"
    offered = [p for p in pixel_formats(codec, muxer) if _chroma(p)]
    if not offered:
        return "yuv444p" if chroma == "4:4:4" else "yuv420p", None  # checked (and refused) by plan_output
    pick = min(offered, key=lambda p: _rank(p, chroma, info.bit_depth))
    lost = []
    if _depth(pick) < info.bit_depth:
        lost.append(f"{info.bit_depth} to {_depth(pick)} bits")
    if source is not None and _CHROMA_ORDER.index(_chroma(pick)) < _CHROMA_ORDER.index(chroma):  # type: ignore[arg-type]
        lost.append(f"{chroma} to {_chroma(pick)} chroma")
    if not lost:
        return pick, None
    keep = next(
        (
            f"--codec {c} --pix-fmt {p}"
            for c in available_codecs()
            if c not in ("png", codec)
            for p in pixel_formats(c, muxer)
            if _chroma(p) == chroma and _depth(p) >= info.bit_depth
        ),
        None,
    )
    how = keep or f"an .mkv with --codec ffv1 --pix-fmt {_KEEP_IN_FFV1.get(chroma, 'yuv444p16le')}"
    note = (
        f"{_NAMES.get(codec, codec)} writes the source's {info.pix_fmt} as {pick} ({', '.join(lost)}); {how} keeps it"
    )
    return pick, note


_CHROMA_ORDER = ("4:2:0", "4:2:2", "4:4:4")  # less colour resolution first
_KEEP_IN_FFV1 = {"4:2:0": "yuv420p16le", "4:2:2": "yuv422p16le", "4:4:4": "yuv444p16le"}


def _rank(pix_fmt: str, chroma: str, depth: int) -> tuple[bool, bool, int]:
    """Sort key of a candidate format for a source of ``chroma`` and ``depth`` bits: its chroma first, then the
    shallowest depth that holds the source's, else the deepest there is."""
    bits = _depth(pix_fmt)
    return _chroma(pix_fmt) != chroma, bits < depth, bits - depth if bits >= depth else -bits


def _deep_codec(muxer: str, codec: str) -> str:
    """``codec``, unless it writes 8 bits only in ``muxer`` (an x264 built without 10-bit): then the first offered
    codec that writes more, so that a deep source keeps its depth by default."""

    def deep(c: str) -> bool:
        return any(_depth(p) > 8 for p in pixel_formats(c, muxer) if _chroma(p))

    if deep(codec):
        return codec
    others = (c for c in available_codecs() if c not in ("png", "libx264rgb", *_RAW))
    return next((c for c in others if deep(c)), codec)


def _codec_options(codec: str, options: OutputOptions) -> dict[str, str]:
    if codec == "ffv1":
        return {"level": "3", "slicecrc": "1"}
    if codec == "libx264rgb" and options.lossless:
        return {"qp": "0", "preset": options.preset}
    if codec in ("libx264", "libx265", "libx264rgb"):
        return {"crf": str(options.crf), "preset": options.preset, **_QUIET.get(codec, {})}
    return {}


def _quantise(image: np.ndarray, deep: bool) -> np.ndarray:
    """float [H, W, 3] in [0, 1] (clipped) -> uint8 or uint16 [H, W, 3], rounded to nearest."""
    scale = np.float32(65535.0 if deep else 255.0)
    out = np.clip(image, 0.0, 1.0) * scale + np.float32(0.5)
    return np.ascontiguousarray(out.astype(np.uint16 if deep else np.uint8))


def _source_name(source: str | Path) -> str:
    return "standard input" if source_kind(source) == "stdin" else str(source)


# FFmpeg colour-matrix ids (AVColorSpace) -> swscale's (SWS_CS_*): BT.709, FCC, BT.470BG, SMPTE 170M, 240M, BT.2020
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9}
_UNSPECIFIED = 2  # AVCOL_*_UNSPECIFIED for matrix, primaries and transfer alike


class _PngSink:
    """PNG frames through FFmpeg's encoder: rgb24 (8-bit) or rgb48be (16-bit), as planned."""

    def __init__(self, folder: Path, plan: OutputPlan) -> None:
        import av

        self.folder, self.deep = folder, _depth(plan.pix_fmt) > 8
        self._codec = av.CodecContext.create("png", "w")
        self._codec.width, self._codec.height = plan.width, plan.height
        self._codec.pix_fmt = plan.pix_fmt
        self._names: set[str] = set()
        self.audio_streams = 0

    def write(self, image: np.ndarray, pts: int | None, name: str | None, index: int) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(_quantise(image, self.deep), format="rgb48le" if self.deep else "rgb24")
        data = b"".join(bytes(p) for p in self._codec.encode(frame))
        out = f"{Path(name).stem}.png" if name else f"{index:06d}.png"
        if out in self._names:  # "a.jpg" and "a.png" in one folder: keep both
            out = f"{Path(name or out).name}.png"
        self._names.add(out)
        (self.folder / out).write_bytes(data)

    def finish(self) -> None:
        pass

    def discard(self) -> None:
        pass


class _VideoSink:
    """One video stream encoded from RGB frames as ``plan`` says, plus the source's audio streams copied packet
    by packet; into a file (``dest`` a path) or a binary file object PyAV writes to (standard output)."""

    def __init__(
        self, dest: Path | Any, plan: OutputPlan, info: VideoInfo, source: str | Path | None, options: OutputOptions
    ) -> None:
        import av

        assert plan.muxer is not None
        self._src: Any = None
        self._path = dest if isinstance(dest, Path) else None
        self._retime = plan.retime
        tb = 1 / plan.rate if plan.retime else info.time_base
        assert tb is not None  # a source without a time base is always retimed
        if plan.muxer == "yuv4mpegpipe":  # its frame rate is 1 / the stream's time base
            self._tick, self.time_base = 1, tb
        else:  # mp4/mov tracks count in 1/timescale; a timescale equal to the source's keeps its pts as they are
            self._tick, self.time_base = tb.numerator, Fraction(1, tb.denominator)  # ticks per source unit
        self._step = max(1, round(1 / (plan.rate * self.time_base)))  # one frame in output ticks
        self._last: int | None = None  # the last frame's pts, in output ticks
        self._dts: int | None = None  # the last packet's dts
        self._fed: deque[int] = deque()  # pts of the frames fed to the encoder, from frame max(0, k - _REORDER)
        self._muxed = 0  # video packets muxed so far (k)
        target = str(dest) if self._path is not None else dest
        self._out = av.open(target, "w", format=plan.muxer, options=_mux_options(plan.muxer, tb))
        try:
            self._setup(plan, info, source, options)
        except BaseException:
            self.discard()
            raise

    def _setup(self, plan: OutputPlan, info: VideoInfo, source: str | Path | None, options: OutputOptions) -> None:
        assert plan.muxer is not None
        src = self._source_video(source, info)
        pix_fmt, rgb = plan.pix_fmt, _is_rgb(plan.pix_fmt)
        # Quantise to 16 bits for deep formats, and for YUV from deep sources (the conversion rounds once);
        # 8-bit RGB is quantised straight to 8 bits, so it holds exactly round(x * 255).
        self.deep = _depth(pix_fmt) > 8 or (info.bit_depth > 8 and not rgb)
        if options.lossless and info.bit_depth > 8 and _depth(pix_fmt) <= 8:
            warnings.warn(
                f"lossless {_NAMES.get(plan.muxer, plan.muxer)} output in {pix_fmt} is 8-bit RGB: the "
                f"{info.bit_depth}-bit source is rounded to 8 bits (write .mkv for 16-bit lossless FFV1, or a "
                "PNG folder)",
                stacklevel=6,
            )
        stream = self._out.add_stream(plan.codec, rate=plan.rate, options=dict(plan.codec_options))
        stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, pix_fmt
        stream.time_base = stream.codec_context.time_base = self.time_base
        if plan.codec == "libx265" and plan.muxer in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # FFmpeg's default, hev1, does not play in Apple's players
        self._pix_fmt, self._yuv = pix_fmt, not rgb
        cc = stream.codec_context
        if src is not None and src.sample_aspect_ratio and src.sample_aspect_ratio != 1:  # anamorphic source
            sar = Fraction(src.sample_aspect_ratio)
            cc.sample_aspect_ratio = 1 / sar if info.rotation in (90, 270) else sar
        if self._yuv:
            tagged = plan.muxer in _TAGGED_MUXERS or plan.codec in _TAGGED_CODECS
            scc = src.codec_context if src is not None else None
            # Unknown matrix: BT.709 where the output is tagged so; BT.601 (SMPTE 170M) where it cannot be,
            # which is what FFmpeg assumes for untagged YUV.
            self._matrix = 1 if tagged else 6
            if scc is not None and scc.colorspace in _SWS_MATRIX:
                self._matrix = scc.colorspace
            cc.colorspace, cc.color_range = self._matrix, 1  # limited ("tv") range: what players expect
            known = scc is not None and scc.color_primaries != _UNSPECIFIED and scc.color_trc != _UNSPECIFIED
            default = 1 if tagged else _UNSPECIFIED
            cc.color_primaries, cc.color_trc = (scc.color_primaries, scc.color_trc) if known else (default, default)
        self._stream = stream
        self._audio_setup(plan, info, source, options)

    def _source_video(self, source: str | Path | None, info: VideoInfo) -> Any:
        """The source's video stream (for colour tags and pixel aspect), or None; keeps the source open. Only a
        source that can be opened again is: a local file or a URL, not standard input or a live stream."""
        import av

        if source is None or info.is_stream or source_kind(source) == "stdin":  # stdin: even a redirected file
            return None
        if source_kind(source) == "path" and not Path(source).is_file():  # a frame folder
            return None
        try:
            self._src = av.open(str(source))
        except (av.error.FFmpegError, OSError, ValueError) as e:
            warnings.warn(
                f"could not open {source} again ({_reason(e)}): the output has no audio and default colour tags",
                stacklevel=6,
            )
            return None
        return self._src.streams.video[0] if self._src.streams.video else None

    def _audio_setup(
        self, plan: OutputPlan, info: VideoInfo, source: str | Path | None, options: OutputOptions
    ) -> None:
        import av

        assert plan.muxer is not None
        self._audio: dict[int, Any] = {}  # source stream index -> output stream
        self._pending: Any = None
        if source is None or not info.has_audio:
            return
        container, name = _NAMES.get(plan.muxer, plan.muxer), _source_name(source)
        why = None
        if plan.muxer in ("yuv4mpegpipe", "rawvideo"):
            why = f"{container} carries no audio: the audio of {name} is left out (write nut or matroska to keep it)"
        elif options.fps is not None and info.fps is not None and options.fps != info.fps:
            why = (
                f"the output is retimed to {_rate_text(plan.rate)} fps from the source's {_rate_text(info.fps)}: "
                f"the audio of {name} would fall out of step with it, so it is left out"
            )
        elif self._src is None and info.is_stream:
            why = (
                f"{name} was read once (standard input or a live stream) and cannot be opened again: the output "
                "has no copy of its audio"
            )
        if why is not None:
            warnings.warn(why, stacklevel=6)
            return
        if self._src is None:  # could not be opened again: warned already
            return
        for s in self._src.streams.audio:
            if self._can_hold(av, plan.muxer, s):
                self._audio[s.index] = self._out.add_stream_from_template(s)
            else:
                warnings.warn(
                    f"the {s.codec_context.name} audio of {Path(str(source)).name} cannot be stored in "
                    f"{container}: the output has no copy of it (write .mkv to keep it)",
                    stacklevel=6,
                )
        if self._audio:
            self._packets = self._src.demux([self._src.streams[i] for i in self._audio])
            self._pending = self._next_audio()

    @property
    def audio_streams(self) -> int:
        """How many audio streams of the source are copied."""
        return len(self._audio)

    @staticmethod
    def _can_hold(av: Any, muxer: str, stream: Any) -> bool:
        """Whether ``muxer`` accepts a copy of ``stream``: FFmpeg's codec tables are not reliable
        (Opus in .mov is listed but refused), so write a header to memory and see."""
        probe = av.open(io.BytesIO(), "w", format=muxer)
        try:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
            return True
        except (av.error.FFmpegError, ValueError):
            return False
        finally:
            try:
                probe.close()
            except (av.error.FFmpegError, ValueError):
                pass

    def _next_audio(self) -> Any:
        import av

        try:
            for packet in self._packets:
                if packet.dts is not None and packet.size:  # skip the demuxer's empty flush packets
                    return packet
        except av.error.FFmpegError as e:  # a damaged source: keep what was copied
            warnings.warn(f"audio copy stopped early: {_reason(e)}", stacklevel=2)
        return None

    def _copy_audio(self, until: float | None) -> None:
        """Mux source audio packets up to ``until`` seconds (all of them for None), so they interleave."""
        import av

        while self._pending is not None:
            packet = self._pending
            if until is not None and float(packet.dts * packet.time_base) > until:
                return
            packet.stream = self._audio[packet.stream.index]
            try:
                self._out.mux(packet)
            except av.error.FFmpegError as e:
                warnings.warn(f"audio copy stopped early: {_reason(e)}", stacklevel=2)
                self._pending = None
                return
            self._pending = self._next_audio()

    def _mux(self, packets: list) -> None:
        for packet in packets:
            self._check_dts(packet)
            self._out.mux(packet)
            if packet.dts is not None:
                self._copy_audio(float(packet.dts * self.time_base))

    def _check_dts(self, packet: Any) -> None:
        """Replace a decode timestamp no encoder could mean with the smallest valid one.

        x265 (4.2, in PyAV's FFmpeg 8.1) leaves the decode timestamps of a clip shorter than its B-frame delay
        (two frames or fewer) uninitialised: whatever was on the stack, so they change with what ran before in
        the process (an ONNX export, say). Above the pts, the muxer refuses the packet with EINVAL; below, it
        writes them as they are (a 1-frame mp4 whose frame is decoded a second before it is shown). A valid dts
        increases, is at most the pts, and at least the pts of the frame fed in ``_REORDER`` frames before this
        packet's (for the first packets: frame 0's pts less the frames missing, at the nominal rate). The floor
        follows the frames fed, not this packet's pts: a P-frame's pts leads its dts by its B-frames.
        """
        k, self._muxed = self._muxed, self._muxed + 1
        floor = self._fed.popleft() if k >= _REORDER else self._fed[0] - (_REORDER - k) * self._step
        pts, dts = packet.pts, packet.dts
        if pts is None:
            return
        if dts is None or not floor <= dts <= pts or (self._dts is not None and dts <= self._dts):
            dts = floor if self._dts is None else max(floor, self._dts + 1)
            packet.dts = dts
        self._dts = dts

    def write(self, image: np.ndarray, pts: int | None, name: str | None, index: int) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(_quantise(image, self.deep), format="rgb48le" if self.deep else "rgb24")
        if self._yuv:  # RGB -> YUV with the matrix and range the stream is tagged with
            frame = frame.reformat(format=self._pix_fmt, dst_colorspace=_SWS_MATRIX[self._matrix], dst_color_range=1)
        elif frame.format.name != self._pix_fmt:
            frame = frame.reformat(format=self._pix_fmt)
        if self._retime:
            pts = index
        out = pts * self._tick if pts is not None else None
        if out is None:
            out = 0 if self._last is None else self._last + self._step
        elif self._last is not None and out <= self._last:  # muxers refuse timestamps that do not increase
            out = self._last + 1
        self._last = frame.pts = out
        self._fed.append(out)
        frame.time_base = self.time_base
        self._mux(self._stream.encode(frame))

    def finish(self) -> None:
        self._mux(self._stream.encode(None))
        self._copy_audio(None)
        self._out.close()
        self._close_source()

    def discard(self) -> None:
        try:
            self._out.close()
        except Exception:  # half-written; the file is deleted anyway
            pass
        if self._path is not None:
            _close_leaked(self._path)
        self._close_source()

    def _close_source(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None


def _close_leaked(path: Path) -> None:
    """Close the descriptors this process still holds on ``path`` (Linux; elsewhere nothing happens).

    When writing the header fails (a full disk at the first frame), PyAV 18 marks the output as never started
    and so never closes the file it opened: the descriptor would keep the deleted temporary's blocks allocated
    (the disk stays full) until the process ends. Nothing uses that descriptor again, so closing it is safe."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return
    target = os.path.realpath(path)
    for entry in os.listdir(fds):
        try:
            link = os.readlink(fds / entry)
        except OSError:
            continue
        if link in (target, f"{target} (deleted)"):
            with contextlib.suppress(OSError):
                os.close(int(entry))
