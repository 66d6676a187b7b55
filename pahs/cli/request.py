"""What `pahs-run` was asked to do: one frozen :class:`RunRequest`, parsed from the options and checked once,
before anything is opened or written.

The command (:mod:`pahs.cli.run`) builds a request from its options with the parsers here, in the order the
options were always checked (so that a command line with several mistakes names the same one first), and hands
it to the path that runs it: one video, a batch of jobs (here or on Ray), or one video in segments. Every path
takes its :class:`~runtime.pipeline.RunOptions` from :meth:`RunRequest.run_options`, and opens its engine with
:meth:`EngineChoice.open`.

Only what ``--help`` needs is imported at the top (no torch): the runtime's batch, cluster and pipeline modules
are imported where a request is checked or used.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from pahs_export.errors import PahsError
from pahs_export.presets import DEFAULT_LOOKAHEAD
from runtime.constants import DEFAULT_CHUNK, DEFAULT_WARMUP, default_onnx_backend
from runtime.io import OutputOptions

from .common import precision_from_flags, value_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.backends import Backend
    from runtime.cluster import ClusterOptions
    from runtime.pipeline import RunOptions

VERIFY_ALL = "all"  # what a bare `--verify` stands for
STDIO = "-"  # standard input as VIDEO, standard output as -o


def parse_lookahead(text: str | None) -> int | None:
    if text is None:
        return DEFAULT_LOOKAHEAD
    if text.lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise PahsError(f"expected --lookahead to be a number of frames or 'all', found {text!r}") from None


def parse_verify(text: str | None) -> int | bool | None:
    """``--verify``: False when absent, None for every frame (bare ``--verify`` or ``all``), else a count of at
    least 1 (:func:`runtime.checks.check_verify_count` says what is wrong otherwise)."""
    from runtime.checks import check_verify_count

    if text is None:
        return False
    if text.lower() == VERIFY_ALL:
        return None
    try:
        count = int(text)
    except ValueError:
        raise PahsError(
            f"expected --verify N with N a number of frames, found {text!r}; give --verify alone to compare every frame"
        ) from None
    check_verify_count(count)
    return count


def parse_fps(text: str | None) -> Fraction | None:
    """``--fps``: 25, 29.97 or 30000/1001 as an exact fraction."""
    if text is None:
        return None
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        fps = None
    if fps is None or fps <= 0:
        raise PahsError(f"expected --fps to be a positive rate such as 25, 29.97 or 30000/1001, found {text!r}")
    return fps


def default_output(source: str) -> str:
    """``clip.mp4`` -> ``clip.deblurred.mp4``; a frame folder ``seq/`` -> ``seq.deblurred/``; a URL
    ``https://host/a/clip.mov`` -> ``clip.deblurred.mp4`` in the current folder. Standard input has none."""
    from runtime.io import source_kind

    kind = source_kind(source)
    if kind == "stdin" or source.startswith("pipe:"):
        raise PahsError(
            "expected -o with standard input as the video, found none; pass -o FILE, or -o - to write a stream "
            "to standard output"
        )
    if kind == "url":
        stem = Path(unquote(urlparse(source).path)).stem or "stream"
        return f"{stem}.deblurred.mp4"
    video = Path(source)
    if video.is_dir():
        return str(video.with_name(video.name + ".deblurred")) + "/"
    return str(video.with_name(f"{video.stem}.deblurred.mp4"))


def encoder_options(
    fmt: Any, codec: Any, pix_fmt: str | None, preset: Any, crf: int | None, fps: str | None, lossless: bool,
    overwrite: bool,
) -> OutputOptions:  # fmt: skip
    """The encoder settings of ``--format``, ``--codec``, ``--pix-fmt``, ``--encoder-preset``, ``--crf``, ``--fps``,
    ``--lossless`` and ``--overwrite``; what is not given keeps :class:`~runtime.io.OutputOptions`' default."""
    given = {
        "codec": value_of(codec), "pix_fmt": pix_fmt, "format": value_of(fmt), "preset": value_of(preset),
        "crf": crf,
    }  # fmt: skip
    settings: dict[str, Any] = {"lossless": lossless, "overwrite": overwrite}
    settings.update({k: v for k, v in given.items() if v is not None})
    if fps is not None:
        settings["fps"] = parse_fps(fps)
    return OutputOptions(**settings)


def cluster_options(
    cluster: str | None, workers: int | None, gpus_per_worker: float | None, threads: int | None = None
) -> ClusterOptions | None:
    """``--cluster``, ``--workers`` and ``--gpus-per-worker`` checked (the counts without --cluster are refused,
    and --cluster without Ray installed), before anything is opened; ``--threads`` N makes each worker reserve
    N CPUs (and run N threads). None without --cluster: here (nothing of the cluster module, nor torch, loaded)."""
    if cluster is None:
        counts = (("--workers", workers), ("--gpus-per-worker", gpus_per_worker))
        given = [f"{flag} {value:g}" for flag, value in counts if value is not None]
        if given:
            raise PahsError(
                f"expected {' and '.join(given)} with --cluster, found no --cluster; add --cluster local to run "
                "workers on this machine, or drop it"
            )
        return None
    from runtime.cluster import ClusterOptions, check_cluster_options, require_ray

    if not cluster.strip():
        raise PahsError("expected --cluster local, auto or an address (ray://host:10001, host:6379), found ''")
    options = ClusterOptions(cluster.strip(), workers, gpus_per_worker, None if threads is None else float(threads))
    check_cluster_options(options)
    require_ray()
    return options


@dataclass(frozen=True)
class EngineChoice:
    """What the command line chose to run, and how: :func:`pahs.open_backend`'s arguments."""

    weights: Path | None  # --engine or --checkpoint; None: the built-in weights
    exported: bool  # weights is an exported artifact (--engine), not weights exported on first use
    backend: str | None  # None: the engine's own (ONNX graphs, weights: default_onnx_backend)
    precision: str | None  # None: fp32, or the engine's own
    device: str | None  # None: the backend's default
    cuda_graphs: bool
    threads: int | None  # CPU threads of a step; None: every core here, a worker's reserved CPUs on Ray

    def open(self) -> Backend:
        """The backend, here; a full or read-only cache met by the first-use export is one line saying so."""
        import pahs
        from pahs_export.atomic import disk_error, is_disk_error
        from pahs_export.cache import cache_dir

        try:
            return pahs.open_backend(
                self.weights, self.backend, self.precision, device=self.device, cuda_graphs=self.cuda_graphs,
                threads=self.threads,
            )  # fmt: skip
        except (OSError, PahsError) as e:  # the first use exports the default engine into the cache
            cause = e if isinstance(e, OSError) else e.__cause__  # AtomicOutput's one line says "-o": not ours here
            if not self.exported and isinstance(cause, OSError) and is_disk_error(cause):
                where = cache_dir().absolute()
                what = "the default engine" if self.weights is None else f"the engine exported from {self.weights}"
                raise disk_error(cause, what, where, "set PAHS_CACHE to another folder") from e
            raise

    def reference(self, backend: Backend) -> Backend:
        """What ``--verify`` compares ``backend`` with: FP32 PyTorch on the CPU, whatever runs. A torch backend on
        CUDA (or under autocast) is compared with it too; only an FP32 torch backend on the CPU is the reference
        itself."""
        import pahs

        if self.is_reference(backend):
            return backend
        return pahs.open_backend(self.weights, "torch", device="cpu")

    @staticmethod
    def is_reference(backend: Backend) -> bool:
        return backend.name == "torch" and backend.device.type == "cpu" and backend.precision == "fp32"

    def opener(self, backend: Backend, on_cluster: bool) -> Callable[..., Backend]:
        """What executors open the backend with: here, ``backend``, already open; on a cluster, a picklable call
        that each worker makes itself with ``threads=`` its reserved CPUs (absolute paths: workers may run in
        another folder)."""
        import pahs

        if not on_cluster:
            return functools.partial(_same, backend)
        weights = Path(os.path.abspath(self.weights)) if self.weights is not None else None
        return functools.partial(
            pahs.open_backend, weights, self.backend, self.precision, device=self.device, cuda_graphs=self.cuda_graphs
        )


def _same(backend: Backend) -> Backend:
    return backend


def engine_choice(
    engine: Path | None, checkpoint: Path | None, backend: Any, device: str | None, precision: Any, fp16: bool,
    int8: bool, cuda_graphs: bool, threads: int | None,
) -> EngineChoice:  # fmt: skip
    """``--engine`` or ``--checkpoint`` (not both), ``--backend``, ``--device``, ``--precision`` (or ``--fp16`` /
    ``--int8``), ``--cuda-graphs`` and ``--threads``. Weights given with ``--checkpoint`` are exported for a
    backend, as the built-in ones are: without ``--backend``, the default ONNX backend of the device."""
    if engine is not None and checkpoint is not None:
        raise PahsError(
            f"expected --engine or --checkpoint, found both ({engine}, {checkpoint}); --engine runs an exported "
            "artifact, --checkpoint exports weights: pass one"
        )
    name = value_of(backend)
    if checkpoint is not None and name is None:
        name = default_onnx_backend(device)
    chosen = precision_from_flags(precision, fp16, int8)
    weights = engine if engine is not None else checkpoint
    return EngineChoice(weights, engine is not None, name, chosen, device, cuda_graphs, threads)


@dataclass(frozen=True)
class Segmenting:
    """``--segment-frames``, ``--warmup`` and ``--exact-segments``: one long video restored as segment jobs."""

    frames: int  # about this many frames per segment (a multiple of --chunk)
    warmup: int | None  # frames of forward warm-up before each segment; None: DEFAULT_WARMUP
    exact: bool  # boundary states from one forward pass instead of a warm-up

    @property
    def warmup_frames(self) -> int:
        return DEFAULT_WARMUP if self.warmup is None else self.warmup


def segmenting(segment_frames: int | None, warmup: int | None, exact: bool) -> Segmenting | None:
    """The segments asked for (None: the video is restored whole); ``--warmup`` and ``--exact-segments`` need
    ``--segment-frames``."""
    if segment_frames is None:
        if warmup is not None or exact:
            raise PahsError("expected --warmup or --exact-segments with --segment-frames, found no --segment-frames")
        return None
    return Segmenting(segment_frames, warmup, exact)


class SummaryRefused(PahsError):
    """``--json`` names a file pahs must not write: the run stops before anything, and writes no summary there."""


@dataclass(frozen=True)
class RunRequest:
    """One `pahs-run`: what to restore, into what, with which engine, and where. Checked when it is made
    (:meth:`check`); the path that runs it (one video, a batch, segments) follows from it (:attr:`path`)."""

    inputs: tuple[str, ...]  # VIDEO arguments: files, folders, URLs, "-", or patterns
    engine: EngineChoice
    output: str | None = None  # -o; None: the default next to the input (a batch: none, -o is required)
    compare: str | None = None  # --compare: a side-by-side output as well
    verify: int | bool | None = False  # False: no --verify; None: every frame; N: the first N frames
    lookahead: int | None = DEFAULT_LOOKAHEAD  # None: 'all', the exact full pass
    lookahead_given: bool = False  # --lookahead was on the command line (an online engine refuses it)
    chunk: int = DEFAULT_CHUNK
    max_pixels: int | None = None
    spill_dir: Path | None = None
    encoder: OutputOptions = field(default_factory=OutputOptions)
    cluster: ClusterOptions | None = None  # None: here (ClusterOptions() with no address says the same)
    segments: Segmenting | None = None
    json_out: Path | None = None  # --json: the machine-readable summary
    quiet: bool = False

    def __post_init__(self) -> None:
        self.check()

    @property
    def where(self) -> ClusterOptions:
        """Where jobs run: the cluster asked for, or here (:func:`runtime.executors.execute`)."""
        from runtime.cluster import ClusterOptions

        return self.cluster if self.cluster is not None else ClusterOptions()

    @property
    def on_cluster(self) -> bool:
        return self.cluster is not None and self.cluster.on_ray

    @property
    def path(self) -> str:
        """How the request runs: "segments" (one video in segment jobs), "jobs" (several inputs, a pattern, or
        anything on a cluster) or "single" (one video here, as :meth:`pahs.Restorer.restore_video`)."""
        from runtime.io import is_batch

        if self.segments is not None:
            return "segments"
        return "jobs" if is_batch(self.inputs) or self.on_cluster else "single"

    @property
    def target(self) -> str | None:
        """Where one input's restored video goes: -o, else the default next to the input; None with --verify
        alone (it writes nothing unless -o or --compare is given). A batch's -o is its folder."""
        if self.output is not None or self.path == "jobs":
            return self.output
        if self.segments is None and self.verify is not False:
            return None
        return default_output(self.inputs[0])

    def check(self) -> None:
        """The combinations of options each path refuses, each in one line; ``--json`` first (a refused one is
        not written, :class:`SummaryRefused`); then the option values and one input's files
        (:meth:`check_files`). Nothing here needs the engine, which opens after (seconds)."""
        from runtime.checks import check_values
        from runtime.io import is_batch, source_kind
        from runtime.progress import progress_interval

        batch = is_batch(self.inputs)
        if self.json_out is not None:
            self.check_json(batch)
        if self.segments is not None:
            if batch or self.verify is not False or self.compare is not None:
                raise PahsError(
                    "expected one input and no --verify or --compare with --segment-frames, found them; split one "
                    "video at a time"
                )
            if self.segments.exact and self.segments.warmup is not None:
                raise PahsError("expected --exact-segments or --warmup, found both; the exact mode needs no warm-up")
        elif batch or self.on_cluster:
            how = "with several inputs" if batch else "with --cluster"
            if self.verify is not False:
                raise PahsError(
                    f"expected --verify with one input and no --cluster, found it {how}; verify one file alone"
                )
            if self.compare is not None:
                raise PahsError(f"expected --compare with one input and no --cluster, found it {how}; drop --compare")
            if not batch and (source_kind(self.inputs[0]) == "stdin" or self.output == STDIO):
                raise PahsError(
                    "expected files with --cluster, found standard input or output (-); workers cannot read or write "
                    "this process's pipes: drop --cluster"
                )
        elif self.output == STDIO and self.verify is not False:
            raise PahsError("expected --verify without -o - (its table would mix with the video), found both; drop one")
        check_values(self.lookahead, self.chunk, self.max_pixels, self.spill_dir)
        if not self.quiet:
            progress_interval()  # $PAHS_PROGRESS_INTERVAL, read when progress starts: refused now, not then
        self.check_files()

    def check_files(self) -> None:
        """One input's files, before the engine opens: the input is there and readable; -o and --compare are free
        (--overwrite replaces), differ from each other and from the input, and suit the encoder settings; the
        frame size a video's container declares is within --max-pixels. A batch settles its files when it is
        planned (:func:`runtime.batch.plan_batch`), before the engine opens too."""
        from runtime.checks import check_max_pixels, check_outputs
        from runtime.io import check_input, check_output, declared_size

        if self.path == "jobs":
            return
        (video,) = self.inputs
        check_input(video)
        check_outputs(video, self.target, self.compare)
        for output in (self.target, self.compare):
            if output is not None:
                check_output(output, self.encoder, source=video)
        size = declared_size(video) if self.max_pixels is not None else None
        if size is not None:
            check_max_pixels(*size, self.max_pixels)

    def check_json(self, batch: bool) -> None:
        """``--json`` obeys the rules of every file pahs writes (:func:`runtime.io.check_file_output`): never an
        input (patterns expanded), never -o (or the default output) nor --compare, --overwrite to replace one."""
        from runtime.batch import expand_inputs
        from runtime.io import check_file_output

        inputs = [i for i in expand_inputs(self.inputs) if isinstance(i, str)]
        outputs = [x for x in (self.output, self.compare) if x is not None]
        if self.output is None and not batch and self.verify is False and self.segments is None:
            outputs.append(default_output(self.inputs[0]))
        try:
            check_file_output(self.json_out, "--json", inputs=inputs, outputs=outputs, overwrite=self.encoder.overwrite)
        except PahsError as e:
            raise SummaryRefused(str(e)) from None

    def run_options(self, progress: bool = False) -> RunOptions:
        """How each video is restored, as :class:`~runtime.pipeline.RunOptions` (:func:`pahs.api.run_options`,
        as the Restorer's keywords become them)."""
        from pahs.api import run_options

        return run_options(self.lookahead, self.chunk, self.max_pixels, self.spill_dir, self.encoder, progress)

    def check_window(self, backend: Backend) -> None:
        """``--lookahead`` and ``--chunk`` against the open engine (an online one takes no --lookahead), before any
        frame is read. ``--max-pixels`` and ``--spill-dir`` are checked where each video uses them."""
        from runtime.pipeline import check_options

        window = replace(self.run_options(), max_pixels=None, spill_dir=None)
        check_options(window, backend, lookahead_given=self.lookahead_given)

    def restore_keywords(self) -> dict[str, Any]:
        """:meth:`pahs.Restorer.restore_video`'s settings (its encoder settings are keywords too)."""
        encoder = {name: getattr(self.encoder, name) for name in self.encoder.__dataclass_fields__}
        return dict(
            lookahead=self.lookahead, chunk=self.chunk, max_pixels=self.max_pixels, spill_dir=self.spill_dir,
            **encoder,
        )  # fmt: skip

    def summary_window(self) -> dict[str, Any]:
        """The --json summary's lookahead and chunk."""
        return {"lookahead": "all" if self.lookahead is None else self.lookahead, "chunk": self.chunk}
