"""Progress for a log: plain lines at a bounded rate, where a terminal gets bars.

Off a terminal (stderr redirected to a log, CI, a scheduler) a bar's escape codes are noise and a run that
prints nothing for 20 minutes looks hung; :class:`ProgressLines` prints one plain line at most every
:func:`progress_interval` seconds (30 by default, ``$PAHS_PROGRESS_INTERVAL`` to change it) and one at the end,
as ffmpeg's stats line and tqdm's ``mininterval`` do: what is done of the total, the rate and the time left.
A line is printed when work completes, so a step longer than the interval delays it. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

from pahs_export.errors import PahsError

INTERVAL_VARIABLE = "PAHS_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0  # seconds between progress lines off a terminal


def progress_interval() -> float:
    """Seconds between progress lines: ``$PAHS_PROGRESS_INTERVAL`` (a positive number), else 30."""
    text = os.environ.get(INTERVAL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise PahsError(
            f"expected {INTERVAL_VARIABLE} to be a positive number of seconds, found {text!r}; unset it for a line "
            f"every {DEFAULT_INTERVAL:g} s"
        )
    return seconds


def duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h06m40s``; ``9`` -> ``9s``."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressLines:
    """Counts units of work (``what``, e.g. "restored") and hands ``emit`` a line such as ``restored 240/1440
    frames, 2.31 frames/s, ETA 8m39s`` at most once per ``interval`` seconds (None: :func:`progress_interval`),
    and a last one (with the elapsed time instead of the ETA) from :meth:`finish`."""

    def __init__(
        self,
        what: str,
        total: int | None,
        emit: Callable[[str], None],
        unit: str = "frames",
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.emit, self.unit, self.clock = what, total, emit, unit, clock
        self.interval = progress_interval() if interval is None else interval
        self.started = self.last = clock()
        self.done = 0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.emit(self.line(now))

    def finish(self) -> None:
        self.emit(self.line(self.clock(), final=True))

    def line(self, now: float, final: bool = False) -> str:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        text = f"{self.what} {count} {self.unit}, {rate:.2f} {self.unit}/s"
        if final:
            return f"{text}, in {duration(elapsed)}"
        if self.total and rate > 0 and self.done < self.total:
            return f"{text}, ETA {duration((self.total - self.done) / rate)}"
        return text
