"""What a run's option values can refuse, checked without the engine and without torch.

`pahs-run` checks these before it opens the engine (seconds: torch, the backend, the graphs), so that a typo
costs a fraction of a second (:meth:`pahs.cli.request.RunRequest.check`); :mod:`runtime.pipeline` checks the
same values again through these functions (:func:`~runtime.pipeline.check_options`,
:func:`~runtime.pipeline.check_frame_size`) for callers of the Python API. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_LOOKAHEAD

MAX_LOOKAHEAD = 1000


def check_values(lookahead: int | None, chunk: int, max_pixels: int | None, spill_dir: Path | None) -> None:
    """``--lookahead`` (None: 'all'), ``--chunk``, ``--max-pixels`` and ``--spill-dir``, each in one line."""
    if lookahead is not None and not 0 <= lookahead <= MAX_LOOKAHEAD:
        raise PahsError(
            f"expected --lookahead from 0 to {MAX_LOOKAHEAD} or 'all', found {lookahead}; the paper uses "
            f"{DEFAULT_LOOKAHEAD}"
        )
    if chunk < 1:
        raise PahsError(f"expected --chunk of at least 1, found {chunk}")
    if max_pixels is not None and max_pixels < 1:
        raise PahsError(
            f"expected --max-pixels of at least 1, found {max_pixels}; leave it out for what free memory holds"
        )
    if spill_dir is not None and not Path(spill_dir).is_dir():
        raise PahsError(f"expected --spill-dir to be an existing folder, found {spill_dir}; create it first")


def check_verify_count(limit: int | None) -> None:
    """A ``--verify`` count: None (every frame) or at least 1; anything else is a one-line error."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise PahsError(
            f"expected --verify N with N at least 1, found {limit}; pass a positive count or give --verify "
            "alone to compare every frame"
        )


def check_max_pixels(width: int, height: int, max_pixels: int | None) -> None:
    """Frames of ``width`` x ``height`` against ``--max-pixels`` (None: no cap given here)."""
    pixels = width * height
    if max_pixels is not None and pixels > max_pixels:
        raise PahsError(
            f"expected frames of at most {max_pixels:,} pixels (--max-pixels), found {width}x{height} "
            f"({pixels:,} pixels); downscale the video or raise --max-pixels"
        )


def check_outputs(source: str | Path, output: str | None, compare: str | None) -> None:
    """Refuse a ``--compare`` that names the same path as ``-o`` (the side-by-side would replace the restored
    video), or two outputs on standard output. The input itself as an output is refused by
    :func:`runtime.io.open_output`."""
    if output is not None and compare is not None and Path(output).resolve() == Path(compare).resolve():
        raise PahsError(
            f"expected --compare and -o to name different outputs, found both at {output}; choose another --compare"
        )
