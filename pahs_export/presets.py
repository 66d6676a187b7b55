"""Model presets: the architecture is data, one frozen dataclass per size.

The channel reading is the one in docs/ARCHITECTURE.md: ``c`` is the width of the frame feature f_B at 1/4
resolution; hidden states have ``c // 3`` channels and the half-resolution stage ``2 * c // 3`` (floor
division, so c=92 gives 30 and 61).
"""

from __future__ import annotations

from dataclasses import dataclass

from .contract import Geometry
from .errors import PahsError

# Future frames every restored frame sees at least (the backward window); None in the APIs means "all".
# The paper's window: the backward direction sees at most 19 future frames.
DEFAULT_LOOKAHEAD = 19


@dataclass(frozen=True)
class Preset:
    """Architecture hyper-parameters of one PAHS size."""

    name: str  # the preset's public name, e.g. "pahs-t"
    channels: int  # c: width of f_B / f_L at H/4 x W/4 (paper: 192 for PAHS, 92 for PAHS-S)
    pprnn_iterations: int = 4  # n: ping-pong iterations, each applies the shared block twice (paper: 4)
    extractor_blocks: int = 5  # ResBlocks after each stage of the feature extractor (paper: 5)
    fusion_blocks: int = 3  # ResBlocks after the fusion conv (the paper's "first 3 ResBlocks")
    reconstructor_blocks: int = 3  # ResBlocks after each transposed conv of the reconstructor (paper: 3)
    stride: int = 16  # H and W must be multiples of this (x4 extractor, x4 SNLA tokens)
    description: str = ""  # one line for `pahs-export info`
    paper_params: float | None = None  # parameters the paper reports, in millions (its "Model Size (MB)" column)

    @property
    def hidden(self) -> int:
        """Channels of the hidden state h (c // 3)."""
        return self.channels // 3

    @property
    def mid(self) -> int:
        """Channels of the half-resolution stage (2c // 3)."""
        return 2 * self.channels // 3

    @property
    def geometry(self) -> Geometry:
        """Channel widths and the frame-size rule of this preset's graphs."""
        return Geometry(self.channels, self.hidden, self.mid, self.stride)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("pahs", 192, description="the paper's PAHS (c=192)", paper_params=21.0),
        Preset("pahs-s", 92, description="the paper's PAHS-S (c=92)", paper_params=4.8),
        Preset("pahs-t", 48, description="tiny model for usable CPU inference (c=48)"),
        Preset("pahs-tw", 60, description="pahs-t widened (c=60): slower, for quality; starts from pahs-t weights"),
    )
}

DEFAULT_PRESET = "pahs-t"


def get_preset(name: str) -> Preset:
    """Return the preset called ``name`` or raise a :class:`PahsError` that lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise PahsError(f"unknown preset {name!r}: expected one of {known}; pick one with --preset") from None
