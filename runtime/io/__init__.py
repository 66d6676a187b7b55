"""Video and frame-folder input/output with PyAV (FFmpeg comes in its wheels; no system FFmpeg is used).

Frames cross this package as numpy float32 arrays [H, W, 3], RGB, values in [0, 1], 8-bit or deeper sources
alike. In short: any video FFmpeg opens, or a folder of image frames, is read in display orientation, and a
damaged file is restored as far as it decodes, with a warning (:mod:`.reading`); outputs are H.264 (or lossless
FFV1/libx264rgb) .mp4/.mov/.mkv files keeping the source's size, timestamps, colour tags and audio, or folders
of 8/16-bit PNGs (:mod:`.encoding`); they are written under a temporary name and renamed when complete, so a
failed or interrupted run leaves nothing (:mod:`.writing`); decoding and encoding can run in threads beside
the caller's work, and termination signals are a flag checked at safe points (:mod:`.threads`). Each module's
docstring lists its decisions.
"""

from .encoding import FOLDER_FPS, VIDEO_FORMATS, X264_PRESETS, OutputOptions
from .reading import IMAGE_SUFFIXES, Frame, FrameReader, VideoInfo, open_input, orient
from .threads import (
    BackgroundWriter,
    Interrupted,
    Prefetcher,
    check_interrupted,
    interrupted,
    signal_name,
    termination_handlers,
)
from .writing import FrameWriter, open_output, output_is_folder

__all__ = [
    "FOLDER_FPS",
    "IMAGE_SUFFIXES",
    "VIDEO_FORMATS",
    "X264_PRESETS",
    "BackgroundWriter",
    "Frame",
    "FrameReader",
    "FrameWriter",
    "Interrupted",
    "OutputOptions",
    "Prefetcher",
    "VideoInfo",
    "check_interrupted",
    "interrupted",
    "open_input",
    "open_output",
    "orient",
    "output_is_folder",
    "signal_name",
    "termination_handlers",
]
