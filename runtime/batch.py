"""Many videos in one run: the inputs expanded, an output planned for each, one :class:`VideoJob` per video, the
sequential executor (:func:`run_local`), and the per-file report. :mod:`runtime.cluster` runs the same jobs on
a Ray cluster.

Decisions:

- Inputs are paths and quoted patterns, expanded here (:func:`glob.glob`, ``**`` included, sorted; hidden
  names never match, so the ``.NAME.partial-*`` temporaries of a run never become inputs). A name that exists
  is a path even if it holds ``[`` or ``*``. A pattern matching nothing is a failed entry of the report, not
  an error that stops the others. Matches inside the output folder are left out (a second run of
  ``'**/*.mp4' -o out/`` must not take its own outputs for inputs); the same input given twice runs once.
- Several inputs (or any pattern) is a batch: ``-o`` must then be a folder, and each input keeps its name in it
  (a frame folder becomes the folder ``out/NAME/``; a video whose suffix pahs does not write, such as .avi,
  becomes ``NAME.mp4`` unless a format is given). Two inputs with one output name, or an output that is its
  own input, are refused before anything runs. Standard input and URLs are one per run.
- Outputs are atomic, so an output that exists is complete: the batch skips it (reported as skipped), and
  ``overwrite`` redoes it; an interrupted batch resumes where it stopped. An existing empty folder is no
  output. A job that runs may replace its target (the plan decided it is ours to write), so a retried job
  (:mod:`runtime.cluster`) also replaces what an attempt that died after publishing left.
- A failure of one file (a :class:`PahsError`, an FFmpeg error while reading a damaged file, or anything
  unexpected) becomes a failed :class:`~runtime.jobs.JobResult` with one line, and the others go on. Only an
  interruption (or a worker's death, on a cluster) stops a job without a result.
"""

from __future__ import annotations

import glob
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import av

from pahs_export.errors import PahsError

from .backends import Backend
from .io import (
    VIDEO_FORMATS,
    check_interrupted,
    check_output,
    is_pattern,
    output_is_folder,
    output_is_pipe,
    source_kind,
)
from .jobs import Job, JobResult
from .pipeline import RunOptions, run_video

DEFAULT_SUFFIX = ".mp4"  # what a video whose suffix pahs does not write is renamed to in the output folder
STATUSES = ("done", "skipped", "failed")  # JobResult.status, in the order summaries count them


@dataclass(frozen=True)
class VideoJob:
    """Restore one video (or frame folder) into its output: a :class:`runtime.jobs.Job`."""

    name: str  # what reports call it: the input as given, or as a pattern matched it
    source: str  # what is read: a video file, a frame folder or a URL (absolute paths when planned for a cluster)
    output: str  # the file, or folder ending in "/", published whole (atomically)
    options: RunOptions  # lookahead, chunk and encoder settings; no progress bars

    def run(self, backend: Backend) -> int:
        """Restore :attr:`source` into :attr:`output` with ``backend``; the number of frames written."""
        return run_video(self.source, self.output, backend, self.options).frames


@dataclass(frozen=True)
class Plan:
    """What a batch will do: every input in order, each a job to run or a result settled without running."""

    entries: tuple[VideoJob | JobResult, ...]  # input order; JobResult: skipped, or a pattern matching nothing

    @property
    def jobs(self) -> list[VideoJob]:
        """The jobs to run, in input order."""
        return [e for e in self.entries if isinstance(e, VideoJob)]

    def merge(self, results: Sequence[JobResult]) -> list[JobResult]:
        """Every entry's result in input order, given the results of :attr:`jobs` (in their order)."""
        ran = iter(results)
        merged = [next(ran) if isinstance(e, VideoJob) else e for e in self.entries]
        assert next(ran, None) is None, "more results than jobs"
        return merged


# -- inputs and outputs -------------------------------------------------------------------------------------------


def _inside(path: str, folder: Path | None) -> bool:
    if folder is None:
        return False
    resolved = Path(path).resolve()
    return resolved == folder or folder in resolved.parents


def expand_inputs(patterns: Sequence[str], exclude: str | Path | None = None) -> list[str | JobResult]:
    """Each input, with patterns expanded in place (sorted), in order; the same input twice is kept once, and
    pattern matches inside ``exclude`` (the output folder) are left out. A pattern matching nothing becomes a
    failed :class:`JobResult` named after it."""
    folder = Path(exclude).resolve() if exclude is not None and Path(exclude).is_dir() else None
    found: list[str | JobResult] = []
    seen: set[str] = set()
    for text in patterns:
        if not is_pattern(text):
            matches = [text]
        else:
            every = sorted(glob.glob(text, recursive=True))
            matches = [m for m in every if not _inside(m, folder)]
            if not matches:
                if every:  # everything it matches is inside -o: the output folder is the input folder
                    error = (
                        f"expected an output folder apart from the inputs, found every match of {text} inside the "
                        f"output folder {exclude}; choose another -o"
                    )
                else:
                    error = f"expected files or folders matching {text}, found none; check the pattern"
                found.append(JobResult(text, "", "failed", error=error))
                continue
        for m in matches:
            key = os.path.normcase(os.path.abspath(m)) if source_kind(m) == "path" else m
            if key in seen:
                continue
            seen.add(key)
            odd = _not_restorable(m) if len(patterns) > 1 or is_pattern(text) else None
            found.append(m if odd is None else JobResult(m, "", "failed", error=odd))
    return found


def _not_restorable(path: str) -> str | None:
    """Why a batch input is skipped: batches take regular files and folders (of frames); a FIFO, a socket or a
    device would block the batch (opening a FIFO waits for a writer) or never end. None: it is one of those."""
    if source_kind(path) != "path":
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreadable: its job reports it
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device"}
    kind = next((name for test, name in kinds.items() if test(mode)), "a special file")
    return f"expected a regular file or a folder of frames in a batch, found {kind}; skipped (restore it on its own)"


def output_name(source: str, has_format: bool = False) -> str:
    """The name of ``source``'s output in the output folder: its own name ("NAME/" for a frame folder); a video
    whose suffix pahs does not write gets :data:`DEFAULT_SUFFIX` instead, unless a format is given."""
    path = Path(source)
    if path.is_dir():
        return path.name + "/"
    if has_format or path.suffix.lower() in VIDEO_FORMATS:
        return path.name
    return path.stem + DEFAULT_SUFFIX


def check_output_folder(output: str | None, count: int) -> Path:
    """``-o`` of a batch: an existing folder, or a path ending in "/" (made when the first output is written)."""
    if output is None or output_is_pipe(output):
        found = "none" if output is None else "-o -"
        raise PahsError(
            f"expected -o FOLDER/ with several inputs ({count}), found {found}; name a folder (existing, or ending "
            "in /) for the outputs"
        )
    if not output_is_folder(output):
        what = "the file" if Path(output).exists() else ""
        raise PahsError(
            f"expected -o to be a folder with several inputs ({count}), found {what + ' ' if what else ''}{output}; "
            "end it with / (or name an existing folder)"
        )
    return Path(output)


def _exists(target: str) -> bool:
    """Whether a complete output is at ``target`` (outputs are atomic): a file, or a folder holding something."""
    path = Path(target)
    if target.endswith(("/", os.sep)):
        return path.is_dir() and any(path.iterdir())
    return path.is_file()


def _absolute(path: str) -> str:
    if source_kind(path) != "path":
        return path
    text = os.path.abspath(path)
    return text + "/" if path.endswith(("/", os.sep)) else text


def _job_options(options: RunOptions, absolute: bool) -> RunOptions:
    spill = options.spill_dir
    if absolute and spill is not None:
        spill = Path(os.path.abspath(spill))
    # Planned outputs are ours to write: a retried job replaces what an attempt that died after publishing left.
    return replace(options, progress=False, spill_dir=spill, output=replace(options.output, overwrite=True))


def plan_batch(inputs: Sequence[str], output: str | None, options: RunOptions, *, absolute: bool = False) -> Plan:
    """The plan of a batch: each input (:func:`expand_inputs`) restored into the folder ``output`` under its own
    name (:func:`output_name`). An output already there is skipped unless ``options.output.overwrite``.
    ``absolute``: jobs carry absolute paths (workers of a cluster run elsewhere). Refused in one line, before
    anything runs: no folder as ``-o``, standard input or a URL among the inputs, two inputs with one output,
    an output that is its own input, and encoder settings no output can take (:func:`runtime.io.check_output`)."""
    for text in inputs:
        if source_kind(text) != "path":
            what = "standard input" if source_kind(text) == "stdin" else "the URL"
            raise PahsError(
                f"expected files or folders with several inputs, found {what} {text}; standard input and URLs are "
                "restored one per run: run it on its own"
            )
    folder = check_output_folder(output, len(inputs))
    has_format = options.output.format is not None
    entries: list[VideoJob | JobResult] = []
    writers: dict[str, str] = {}  # output (normalised) -> the input writing it
    for item in expand_inputs(inputs, exclude=folder):
        if isinstance(item, JobResult):
            entries.append(item)
            continue
        target = str(folder / output_name(item, has_format)) + ("/" if Path(item).is_dir() else "")
        key = os.path.normcase(os.path.abspath(target))
        if key in writers:
            raise PahsError(
                f"expected one input per output name, found {writers[key]} and {item} both writing {target}; "
                "rename one, or restore them in separate runs"
            )
        writers[key] = item
        if Path(target).resolve() == Path(item).resolve():
            raise PahsError(
                f"expected outputs different from the inputs, found {target} as both; choose another -o folder"
            )
        if not options.output.overwrite and _exists(target):
            entries.append(JobResult(item, target, "skipped"))
            continue
        job = VideoJob(
            item,
            _absolute(item) if absolute else item,
            _absolute(target) if absolute else target,
            _job_options(options, absolute),
        )
        check_output(job.output, job.options.output, source=job.source)
        entries.append(job)
    return Plan(tuple(entries))


def plan_single(source: str, output: str, options: RunOptions, *, absolute: bool = False) -> Plan:
    """The plan of one input run as a job (on a cluster): as `pahs-run` without a cluster, an existing output is
    an error unless ``options.output.overwrite``."""
    check_output(output, options.output, source=source)  # today's one line for an existing output, and the rest
    job_options = _job_options(options, absolute)
    if absolute:
        return Plan((VideoJob(source, _absolute(source), _absolute(output), job_options),))
    return Plan((VideoJob(source, source, output, job_options),))


# -- running ------------------------------------------------------------------------------------------------------


def worker_name() -> str:
    """``host:pid`` of this process: what :attr:`JobResult.worker` holds."""
    return f"{socket.gethostname()}:{os.getpid()}"


def one_line(error: BaseException) -> str:
    """An exception as one line (whitespace runs folded); its type is named unless it is a :class:`PahsError`."""
    text = " ".join(str(error).split()) or "no message"
    return text if isinstance(error, PahsError) else f"{type(error).__name__}: {text}"


def run_job(job: Job, backend: Backend, worker: str | None = None) -> JobResult:
    """Run ``job`` with an open ``backend`` and say how it ended. A :class:`PahsError` or an FFmpeg error is a
    failed result with its line; so is anything unexpected, named as such (the other jobs go on). An
    interruption (:class:`runtime.io.Interrupted`) propagates."""
    started = time.monotonic()
    try:
        frames = job.run(backend)
    except (PahsError, av.error.FFmpegError) as e:
        seconds = time.monotonic() - started
        return JobResult(job.name, job.output, "failed", seconds=seconds, error=one_line(e), worker=worker)
    except Exception as e:  # a bug, or a library failing on this input: reported, and the batch goes on
        error = f"unexpected {one_line(e)} (restore this input alone with --debug for the traceback)"
        return JobResult(job.name, job.output, "failed", seconds=time.monotonic() - started, error=error, worker=worker)
    return JobResult(job.name, job.output, "done", frames, time.monotonic() - started, worker=worker)


def run_local(
    jobs: Sequence[Job], open_backend: Callable[[], Backend], on_result: Callable[[JobResult], None] | None = None
) -> list[JobResult]:
    """Run ``jobs`` one after the other on this machine with one backend, opened once by ``open_backend`` (a
    zero-argument callable; not called when there is no job). ``on_result`` is called with each result as its
    job ends. Returns the results in the order of ``jobs``. A termination signal stops the run between or
    within jobs (:class:`runtime.io.Interrupted`); finished outputs stay, so a later run resumes."""
    results: list[JobResult] = []
    if not jobs:
        return results
    check_interrupted()
    backend = open_backend()
    worker = worker_name()
    for job in jobs:
        check_interrupted()
        result = run_job(job, backend, worker)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


# -- reporting ----------------------------------------------------------------------------------------------------


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def result_line(result: JobResult) -> str:
    """One line for a finished file: ``done a.mp4 -> out/a.mp4: 8 frames in 1.2 s``."""
    tries = f" ({result.attempts} attempts)" if result.attempts > 1 else ""
    if result.status == "failed":
        return f"failed {result.name}: {result.error}{tries}"
    if result.status == "skipped":
        return f"skipped {result.name}: {result.output} is already there (--overwrite redoes it)"
    return f"done {result.name} -> {result.output}: {result.frames} frames in {result.seconds:.1f} s{tries}"


class BatchProgress:
    """The ``on_result`` of a batch: a bar over files when ``stream`` is a terminal, otherwise one line per file
    as it ends (``[2/5] done a.mp4 -> out/a.mp4: ...``; failures are written above the bar too). ``prefix``
    starts every line (e.g. "pahs-run: "). Disabled, it shows nothing."""

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None, prefix: str = "") -> None:
        self.total, self.enabled, self.prefix, self.count = total, enabled, prefix, 0
        self.stream = stream if stream is not None else sys.stderr
        self.bar = None
        if enabled and total and _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="files", unit="file", dynamic_ncols=True, file=self.stream)

    def __call__(self, result: JobResult) -> None:
        self.count += 1
        if not self.enabled:
            return
        line = f"{self.prefix}[{self.count}/{self.total}] {result_line(result)}"
        if self.bar is None:
            print(line, file=self.stream, flush=True)
            return
        if result.status == "failed":
            self.bar.write(line, file=self.stream)
        self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def counts(results: Sequence[JobResult]) -> dict[str, int]:
    """How many results have each status (:data:`STATUSES`)."""
    return {s: sum(r.status == s for r in results) for s in STATUSES}


def summary_lines(results: Sequence[JobResult], seconds: float | None = None) -> list[str]:
    """The per-file summary: a table (status, frames, seconds, attempts, file and its output or error) and a
    total line."""
    rows = [f"{'status':<8}{'frames':>8}{'seconds':>9}{'tries':>6}  file"]
    for r in results:
        ran = r.status != "skipped" and r.seconds > 0
        what = f"{r.name}: {r.error}" if r.status == "failed" else f"{r.name} -> {r.output}"
        frames = str(r.frames) if r.status == "done" else "-"
        tries = str(r.attempts) if r.status != "skipped" else "-"
        rows.append(f"{r.status:<8}{frames:>8}{f'{r.seconds:.1f}' if ran else '-':>9}{tries:>6}  {what}")
    n = counts(results)
    total = f"{len(results)} file{'s' if len(results) != 1 else ''}: " + ", ".join(f"{n[s]} {s}" for s in STATUSES)
    total += f"; {sum(r.frames for r in results)} frames restored"
    if seconds is not None:
        total += f" in {seconds:.1f} s"
    return [*rows, total]
