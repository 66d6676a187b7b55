"""Units of work for batches and clusters: a job restores one thing (a video, or one segment of a long one) with
an open backend and publishes its output itself, whole or not at all.

One job is never split further: the hidden state needs a video's (or a segment's) frames in order on one
worker. Executors (sequential on this machine, or actors on a Ray cluster) take a list of jobs and a way to
open the backend, and give back one :class:`JobResult` per job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .backends import Backend


class Job(Protocol):
    """What an executor runs. Implementations are frozen dataclasses (picklable: they travel to workers)."""

    @property
    def name(self) -> str:
        """What reports call it: the input's name, or "clip.mp4 frames 0-255" for a segment."""
        ...

    @property
    def output(self) -> str:
        """The file or folder the job publishes (atomically: a temporary name, then a rename)."""
        ...

    def run(self, backend: Backend) -> int:
        """Do the work with an open ``backend``; return the number of frames written. A problem with the input
        (unreadable, damaged beyond use) raises :class:`~pahs_export.errors.PahsError`: reported once, never
        retried. Anything else that kills the worker is retried by the executor."""
        ...


@dataclass(frozen=True)
class JobResult:
    """How one job ended."""

    name: str  # Job.name
    output: str  # Job.output
    status: str  # "done", "skipped" (its output was already there, complete), "failed"
    frames: int = 0  # frames written
    seconds: float = 0.0  # wall time of the job on its worker
    error: str | None = None  # the one-line reason, for "failed"
    attempts: int = 1  # 2 or more when a worker died and the job was retried
    worker: str | None = None  # "host:pid" of the worker that finished it
