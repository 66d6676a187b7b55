"""Video and frame-folder input/output with PyAV (FFmpeg comes in its wheels; no system FFmpeg is used).

Frames cross this package as numpy float32 arrays [H, W, 3], RGB, values in [0, 1], 8-bit or deeper sources
alike. In short: any video FFmpeg opens, or a folder of image frames, is read in display orientation, and a
damaged file is restored as far as it decodes, with a warning (:mod:`.reading`); outputs are H.264 (or HEVC,
lossless FFV1/libx264rgb, raw frames, 8 to 16-bit) .mp4/.mov/.mkv/.y4m/.nut files keeping the source's size,
timestamps, colour tags and audio, folders of 8/16-bit PNGs, or y4m/NUT/Matroska/raw streams on standard output
(:mod:`.encoding`); files and folders are written under a temporary name and renamed when complete, so a failed
or interrupted run leaves nothing (:mod:`.writing`); decoding and encoding can run in threads beside
the caller's work (:mod:`.threads`), and termination signals are a flag checked at safe points
(:mod:`pahs_export.signals`, whose names are re-exported here). Each module's docstring lists its decisions.
"""

from pahs_export.signals import Interrupted, check_interrupted, interrupted, signal_name, termination_handlers

from .encoding import (
    FOLDER_FPS,
    LOSSLESS_CODECS,
    OUTPUT_CODECS,
    OUTPUT_FORMATS,
    VIDEO_FORMATS,
    X264_PRESETS,
    OutputOptions,
    available_codecs,
    pixel_formats,
)
from .reading import (
    IMAGE_SUFFIXES,
    NETWORK_TIMEOUT,
    STDIN_NAMES,
    Frame,
    FrameReader,
    VideoInfo,
    check_input,
    declared_size,
    is_batch,
    is_pattern,
    open_input,
    orient,
    source_kind,
)
from .threads import BackgroundWriter, Prefetcher
from .writing import (
    PIPE_TARGETS,
    FrameWriter,
    OutputWriter,
    PipeWriter,
    check_file_output,
    check_output,
    open_output,
    output_is_folder,
    output_is_pipe,
    write_file_output,
)

__all__ = [
    "FOLDER_FPS",
    "IMAGE_SUFFIXES",
    "LOSSLESS_CODECS",
    "NETWORK_TIMEOUT",
    "OUTPUT_CODECS",
    "OUTPUT_FORMATS",
    "PIPE_TARGETS",
    "STDIN_NAMES",
    "VIDEO_FORMATS",
    "X264_PRESETS",
    "BackgroundWriter",
    "Frame",
    "FrameReader",
    "FrameWriter",
    "Interrupted",
    "OutputOptions",
    "OutputWriter",
    "PipeWriter",
    "Prefetcher",
    "VideoInfo",
    "available_codecs",
    "check_file_output",
    "check_input",
    "check_interrupted",
    "check_output",
    "declared_size",
    "interrupted",
    "is_batch",
    "is_pattern",
    "open_input",
    "open_output",
    "orient",
    "output_is_folder",
    "output_is_pipe",
    "pixel_formats",
    "signal_name",
    "source_kind",
    "termination_handlers",
    "write_file_output",
]
