"""Jobs on a Ray cluster (Ray Core: actors; one job is one video, or one segment, never frames as rows). Every
call into Ray is in this module; Ray is optional (the ``cluster`` extra) and imported only when used.

Decisions:

- Workers are actors that open the backend once (``open_backend(threads=n)``, a picklable callable) and
  reuse it for every job they get. ``n`` is the CPUs the worker reserved (at least 1): a CPU runtime left to
  its default takes every core of the machine, so two workers on one machine would each run as many threads
  as it has cores and slow each other down (measured: docs/SEGMENTS.md). The driver hands a worker its next
  job when it finishes one (no queue on the workers), so long and short videos balance themselves; results
  come back in completion order to ``on_result`` and in job order from :func:`run_on_ray`. Each job writes its
  own output on its worker, whole or not at all (:class:`pahs_export.atomic.AtomicOutput`), so inputs, outputs,
  the engine and ``$PAHS_CACHE`` must be on storage every worker sees, at the same paths.
- A worker that dies (killed, out of memory, a crash in a library) is restarted by Ray (``max_restarts``) and its
  job run again (``max_task_retries``): at most :data:`MAX_ATTEMPTS` attempts, then the job is reported failed
  once. Attempts are counted by a small ledger actor that every attempt reports to as it starts (Ray's retries
  are invisible to the caller); the ledger also says which workers ran the earlier attempts, and a retry
  removes the temporaries (``.NAME.partial-<pid>-<host>-*``) those dead workers left beside the target, on any
  machine, before it writes the same target. (:class:`~pahs_export.atomic.AtomicOutput` sweeps only what dead
  processes of its own machine left; a retry may run elsewhere.)
- A job that fails on its input (a :class:`PahsError`, an FFmpeg error: :func:`runtime.batch.run_job`) returns a
  failed result rather than raising, so Ray never retries it: it is reported once.
- Sizes (:func:`worker_shape`): with ``gpus_per_worker`` G, one worker per G GPUs of the cluster, each with one
  CPU; on CPUs, one worker per machine (a backend step already spreads over the machine's cores), each
  reserving the cluster's CPUs shared out among the workers, at most a machine's worth. Never more workers
  than jobs. A worker no machine can hold is refused in one line before any starts.
- ``address``: "local" starts a private Ray on this machine for the run (no dashboard, Ray's own logs quiet,
  as many CPUs as the workers need) and stops it at the end; "auto" joins the cluster ``ray start`` runs here;
  anything else is an address (``ray://host:10001`` for Ray Client, ``host:6379`` for the head's GCS). A Ray
  already initialised in this process (a notebook, tests) is used as it is and left running. An address is
  reached within :data:`CONNECT_SECONDS` or refused in one line (:func:`_join`: a socket check first, then
  ``ray.init`` waited for in a thread), and a termination signal stops the connect too.
- A termination signal stops the driver at its next poll (:data:`POLL_SECONDS`): the workers are killed and the
  temporaries of the jobs they were running removed, so nothing partial is left; finished outputs stay.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import shutil
import signal
import socket
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pahs_export.atomic import PARTIAL, owner_tag
from pahs_export.errors import PahsError

from .backends import Backend, BackendWrapper, StepOutputs
from .batch import one_line, run_job, worker_name
from .io import check_interrupted
from .jobs import Job, JobResult

MAX_ATTEMPTS = 3  # runs of one job, the first included, before a job whose workers keep dying is reported failed
POLL_SECONDS = 0.5  # how often the driver checks for a termination signal while it waits for the workers
CONNECT_SECONDS = 30.0  # an address is reached (checked, then ray.init) within this, or refused in one line
HANDSHAKE_SECONDS = 10.0  # how long a server that accepted the connection may take to answer HTTP/2's greeting
SIGNAL_POLL_SECONDS = 0.2  # how often the address check looks for a termination signal
QUIET_RAY = {"logging_level": logging.ERROR, "log_to_driver": True}  # ray.init: no INFO lines of Ray's own
INSTALL = 'pip install -e ".[cluster]"'  # how to get Ray (from a source checkout; pip install "pahs[cluster]")
# TEST-ONLY hook, set by tests/runtime/test_cluster.py and read here (_test_exit) only: PAHS_TEST_WORKER_EXIT=
# MARKER:NAME makes the worker that restores the job NAME (its name, or that name's last part) exit abruptly
# (os._exit(1), as a crash or the OOM killer would) after EXIT_AFTER_STEPS backend steps, if the file MARKER does
# not exist yet; it creates MARKER first, so exactly one worker dies, once. An empty MARKER (":NAME"): every
# worker that takes NAME dies, every time (a video that always kills its worker). Never set it outside tests.
TEST_EXIT_VARIABLE = "PAHS_TEST_WORKER_EXIT"
EXIT_AFTER_STEPS = 3
# Variables of the driver's environment that workers take over (a cache every worker sees; the test hook).
FORWARDED_VARIABLES = ("PAHS_CACHE", TEST_EXIT_VARIABLE)


@dataclass(frozen=True)
class ClusterOptions:
    """Where jobs run: sequentially on this machine (``address`` None), or on a Ray cluster."""

    address: str | None = None  # None: here, sequentially; "local", "auto", or ray://host:port / host:port
    workers: int | None = None  # actors to start; None: see worker_shape
    gpus_per_worker: float | None = None  # GPUs each worker reserves; None: none (CPU workers)
    cpus_per_worker: float | None = None  # CPUs each worker reserves; None: see worker_shape

    @property
    def on_ray(self) -> bool:
        """Whether jobs run on Ray (an address is given), not here."""
        return self.address is not None


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PahsError(
            f'expected Ray for --cluster, found it not installed; {INSTALL} (or pip install "pahs[cluster]"), '
            "or drop --cluster to run here"
        ) from None
    return ray


def check_cluster_options(options: ClusterOptions) -> None:
    """One line for a count that cannot be: ``workers`` below 1, GPUs or CPUs per worker not above 0."""
    if options.workers is not None and options.workers < 1:
        raise PahsError(f"expected --workers of at least 1, found {options.workers}; leave it out for the default")
    for flag, value, todo in (
        ("--gpus-per-worker", options.gpus_per_worker, "leave it out for CPU workers"),
        ("CPUs per worker", options.cpus_per_worker, "leave it out for the default"),
    ):
        if value is not None and not value > 0:
            raise PahsError(f"expected {flag} above 0, found {value:g}; {todo}")


# -- the cluster --------------------------------------------------------------------------------------------------


def _connect(ray: Any, options: ClusterOptions) -> bool:
    """Initialise Ray for ``options.address``; True when this call started it (and must shut it down). An
    address is reached within :data:`CONNECT_SECONDS` or refused in one line (:func:`_join`)."""
    if ray.is_initialized():
        return False
    address = options.address
    if address != "local":
        _join(ray, address)
        return True
    handlers = _signal_handlers()
    try:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        need = (options.workers or 1) * int(options.cpus_per_worker or 1)
        ray.init(address="local", num_cpus=max(cpus, need), include_dashboard=False, **QUIET_RAY)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        raise _no_cluster(address, one_line(e)) from None
    finally:
        _restore_signal_handlers(handlers)
    return True


def _no_cluster(address: str | None, found: str) -> PahsError:
    hint = "start one with `ray start --head`" if address == "auto" else "check the address"
    return PahsError(
        f"expected a Ray cluster at --cluster {address}, found {found}; {hint}, or use --cluster local to start "
        "one here"
    )


# -- reaching a cluster: bounded, quiet, and a termination signal stops it -----------------------------------------


def _join(ray: Any, address: str) -> None:
    """Connect to the cluster at ``address`` ("auto" or an address) within :data:`CONNECT_SECONDS`, or raise a
    one-line :class:`PahsError`. Ray's own connect retries for minutes against an address where nothing answers,
    printing its core library's log lines, and a signal waits for it: so the address is first tried with a plain
    socket (:func:`probe_address`: nothing listening fails at once, a socket that never answers within
    :data:`HANDSHAKE_SECONDS`), then ``ray.init`` runs in a thread that the main thread waits for, checking for
    termination signals, until the deadline. Ray's core library logs only errors while it connects."""
    deadline = time.monotonic() + CONNECT_SECONDS
    host, port = _bootstrap(address)
    problem = probe_address(host, port, deadline)
    if problem is not None:
        raise _no_cluster(address, problem)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # not the warnings of every retry
    outcome: dict[str, BaseException] = {}

    def init() -> None:
        try:
            logging.getLogger("ray").setLevel(logging.ERROR)  # not "SIGTERM handler is not set" (our thread)
            ray.init(address=address, **QUIET_RAY)
        except BaseException as e:  # handed to the main thread
            outcome["error"] = e

    connecting = threading.Thread(target=init, name="pahs-ray-connect", daemon=True)
    connecting.start()
    while connecting.is_alive():
        connecting.join(POLL_SECONDS)
        check_interrupted()
        if connecting.is_alive() and time.monotonic() > deadline:
            # The thread is left inside ray.init (it cannot be stopped); the process is about to end.
            raise _no_cluster(address, f"no answer from Ray within {CONNECT_SECONDS:g} s")
    error = outcome.get("error")
    if isinstance(error, (ConnectionError, RuntimeError, ValueError, TimeoutError)):
        raise _no_cluster(address, one_line(error)) from None
    if error is not None:
        raise error


def _bootstrap(address: str) -> tuple[str, int]:
    """The host and port that ``address`` names (``ray://host:port``, ``host:port``, ``[v6]:port``; "auto": the
    cluster ``ray start`` recorded on this machine), or a one-line error."""
    target = address
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address  # Ray's own reading of "auto"

            target = canonicalize_bootstrap_address("auto") or ""
        except (ConnectionError, ImportError, ValueError) as e:
            raise _no_cluster(address, one_line(e) if not isinstance(e, ImportError) else "none") from None
    host, _, port = target.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PahsError(
            f"expected --cluster local, auto, or an address HOST:PORT (ray://HOST:PORT for Ray Client), found "
            f"{address!r}; check the address"
        )
    return host, int(port)


HTTP2_GREETING = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # preface, SETTINGS
SETTINGS_FRAME = 4  # the HTTP/2 frame type a gRPC server answers the greeting with


def probe_address(host: str, port: int, deadline: float) -> str | None:
    """None when something at ``host:port`` answers as a Ray cluster does (Ray's GCS and its Ray Client server
    are gRPC servers: they answer HTTP/2's greeting with a SETTINGS frame); else what was found, for a one-line
    error. Gives up at ``deadline`` (``time.monotonic()``), and after :data:`HANDSHAKE_SECONDS` without an
    answer; a termination signal stops it within :data:`SIGNAL_POLL_SECONDS` (:class:`runtime.io.Interrupted`).
    With ``RAY_USE_TLS`` set, only the connection is tried (the greeting would need TLS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        return f"no such host ({one_line(e)})"
    family, kind, proto, _, where = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setblocking(False)
        error = sock.connect_ex(where)
        if error not in (0, errno.EINPROGRESS):
            return f"nothing listening there ({os.strerror(error).lower()})"
        if not _wait_socket(sock, deadline, write=True):
            return f"no answer to a connection within {CONNECT_SECONDS:g} s"
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            return f"nothing listening there ({os.strerror(error).lower()})"
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return None
        sock.sendall(HTTP2_GREETING)
        answer = b""
        until = min(deadline, time.monotonic() + HANDSHAKE_SECONDS)
        while len(answer) < 9:
            if not _wait_socket(sock, until, write=False):
                return f"a server that accepted the connection but did not answer within {HANDSHAKE_SECONDS:g} s"
            try:
                chunk = sock.recv(64)
            except OSError as e:
                return f"a server that dropped the connection ({one_line(e)})"
            if not chunk:
                return "a server that closed the connection without answering as Ray does"
            answer += chunk
    if answer[3] != SETTINGS_FRAME:
        return "a server that does not speak Ray's protocol (gRPC)"
    return None


def _wait_socket(sock: socket.socket, until: float, write: bool) -> bool:
    """Wait until ``sock`` is writable (``write``) or readable, checking for termination signals; False at
    ``until``."""
    while True:
        check_interrupted()
        left = until - time.monotonic()
        if left <= 0:
            return False
        ready = select.select([] if write else [sock], [sock] if write else [], [], min(left, SIGNAL_POLL_SECONDS))
        if ready[0] or ready[1]:
            return True


def _signal_handlers() -> dict[int, Any]:
    return {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


def _restore_signal_handlers(handlers: dict[int, Any]) -> None:
    """``ray.init`` replaces the SIGTERM handler (with one that exits at once, and its core library's stack
    dump): put back the Python handlers the caller had (`pahs-run`'s stop the run cleanly and remove what it
    was writing: :func:`runtime.io.termination_handlers`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for s, handler in handlers.items():
        if callable(handler):
            signal.signal(s, handler)


@dataclass(frozen=True)
class WorkerShape:
    """How many workers, and what each reserves."""

    workers: int  # actors started
    cpus: float  # CPUs each reserves
    gpus: float  # GPUs each reserves (0: a CPU worker)


def worker_shape(nodes: Sequence[dict[str, float]], options: ClusterOptions, jobs: int) -> WorkerShape:
    """The workers for ``jobs`` jobs on a cluster whose machines have the resources ``nodes`` (``{"CPU": n,
    "GPU": m}`` each): see the module docstring. A worker no machine can hold is a one-line error."""
    cpus = [n.get("CPU", 0.0) for n in nodes] or [0.0]
    gpus = [n.get("GPU", 0.0) for n in nodes] or [0.0]
    g = options.gpus_per_worker or 0.0
    if g:
        if max(gpus) < g:
            raise PahsError(
                f"expected a machine with {g:g} GPUs for --gpus-per-worker {g:g}, found at most {max(gpus):g} per "
                "machine in the cluster; lower --gpus-per-worker, or drop it to run on CPUs"
            )
        count = options.workers or max(1, int(sum(gpus) // g))
        per_cpu = options.cpus_per_worker or 1.0
    else:
        count = options.workers or len(nodes) or 1
        per_cpu = options.cpus_per_worker or float(max(1, min(min(cpus), sum(cpus) // count)))
    if max(cpus) < per_cpu:
        raise PahsError(
            f"expected a machine with {per_cpu:g} CPUs for each worker, found at most {max(cpus):g} per machine in "
            "the cluster; ask for fewer CPUs per worker"
        )
    return WorkerShape(max(1, min(count, jobs)), per_cpu, g)


def worker_threads(shape: WorkerShape) -> int:
    """The CPU threads each worker's backend runs a step with: its whole reserved CPUs, at least 1 (what Ray
    also sets ``OMP_NUM_THREADS`` to in the worker)."""
    return max(1, int(shape.cpus))


def _node_resources(ray: Any) -> list[dict[str, float]]:
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


# -- the actors (plain classes; ray.remote makes actors of them where they are used) ------------------------------


class _Ledger:
    """Counts the attempts of every job: each attempt reports itself as it starts (see the module docstring)."""

    def __init__(self) -> None:
        self.owners: dict[int, list[str]] = {}  # job index -> owner tag of the worker of each attempt, in order

    def start(self, index: int, owner: str) -> list[str]:
        """Record an attempt of job ``index`` by the worker ``owner``; the owners of the earlier attempts."""
        owners = self.owners.setdefault(index, [])
        earlier = list(owners)
        owners.append(owner)
        return earlier

    def owners_of(self, index: int) -> list[str]:
        return list(self.owners.get(index, []))


class _ExitAfter(BackendWrapper):
    """TEST-ONLY (see :data:`TEST_EXIT_VARIABLE`): the process exits abruptly at the ``steps``-th backend step."""

    def __init__(self, inner: Backend, steps: int, marker: Path | None) -> None:
        super().__init__(inner)
        self.steps, self.marker = steps, marker

    def run(self, role: str, *inputs: Any) -> StepOutputs:
        self.steps -= 1
        if self.steps <= 0:
            if self.marker is None:  # dies every time
                os._exit(1)
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # only the first gets it
            except FileExistsError:
                return self.inner.run(role, *inputs)
            os._exit(1)
        return self.inner.run(role, *inputs)


def _test_exit(job: Job, backend: Backend) -> Backend:
    """TEST-ONLY: ``backend``, wrapped to die mid-job when :data:`TEST_EXIT_VARIABLE` names ``job``."""
    hook = os.environ.get(TEST_EXIT_VARIABLE)
    if not hook or ":" not in hook:
        return backend
    marker, name = hook.rsplit(":", 1)
    if name not in (job.name, Path(job.name).name) or (marker and os.path.exists(marker)):
        return backend
    return _ExitAfter(backend, EXIT_AFTER_STEPS, Path(marker) if marker else None)


def _one_line_warning(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None, line: Any = None):
    print(f"warning: {message}", file=file if file is not None else sys.stderr, flush=True)


class _Worker:
    """A worker: the backend opened once, then one job at a time."""

    def __init__(self, open_backend: Callable[..., Backend], environment: dict[str, str], threads: int) -> None:
        os.environ.update(environment)
        warnings.showwarning = _one_line_warning  # damaged-input warnings reach the driver's log as one line each
        self.owner, self.name = owner_tag(), worker_name()
        self.backend: Backend | None = None
        self.problem: str | None = None
        try:
            self.backend = open_backend(threads=threads)
        except Exception as e:  # reported by ready(): a worker that cannot open the engine takes no job
            self.problem = one_line(e)

    def ready(self) -> str | None:
        """None when the backend is open; else why it could not be opened."""
        return None if self.problem is None else f"{self.name}: {self.problem}"

    def run(self, index: int, job: Job, ledger: Any) -> JobResult:
        import ray

        earlier = ray.get(ledger.start.remote(index, self.owner))
        for owner in earlier:  # the workers of earlier attempts died: what they were writing goes
            remove_partials(job.output, owner)
        assert self.backend is not None, "a worker that could not open the backend got a job"
        result = run_job(job, _test_exit(job, self.backend), self.name)
        return replace(result, attempts=len(earlier) + 1)


def remove_partials(output: str, owner: str) -> list[Path]:
    """Remove the temporaries the writer ``owner`` (``<pid>-<host>``, :func:`pahs_export.atomic.owner_tag`) left
    for the target ``output`` (``.NAME.partial-<owner>-*`` beside it); the caller knows that writer is gone.
    Returns what was removed."""
    target = Path(output.rstrip("/" + os.sep) or output)
    parent = target.parent if str(target.parent) else Path(".")
    prefix = f".{target.name}{PARTIAL}{owner}-"
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        if name.startswith(prefix):
            path = parent / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# -- the driver ---------------------------------------------------------------------------------------------------


def run_on_ray(
    jobs: Sequence[Job],
    open_backend: Callable[..., Backend],
    *,
    address: str,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run ``jobs`` on the Ray cluster at ``address`` ("local", "auto", or an address; see the module docstring)
    with ``workers`` actors (None: :func:`worker_shape`), each reserving ``gpus_per_worker`` GPUs and
    ``cpus_per_worker`` CPUs, each opening its backend once with ``open_backend(threads=`` its whole reserved
    CPUs, at least 1 ``)`` (picklable).
    ``on_result`` gets each result as its job ends; returns one result per job, in the order of ``jobs``. A
    job whose workers died :data:`MAX_ATTEMPTS` times is failed; workers that cannot open the backend take no
    job, and if none can, that is a one-line error."""
    options = ClusterOptions(address, workers, gpus_per_worker, cpus_per_worker)
    check_cluster_options(options)
    ray = require_ray()
    if not jobs:
        return []
    started = _connect(ray, options)
    try:
        shape = worker_shape(_node_resources(ray), options, len(jobs))
        return _Driver(ray, jobs, open_backend, shape, on_result).run()
    finally:
        if started:
            ray.shutdown()


class _Driver:
    """One run of :func:`run_on_ray` on a connected Ray."""

    def __init__(
        self,
        ray: Any,
        jobs: Sequence[Job],
        open_backend: Callable[..., Backend],
        shape: WorkerShape,
        on_result: Callable[[JobResult], None] | None,
    ) -> None:
        self.ray, self.jobs, self.on_result = ray, jobs, on_result
        environment = {k: os.environ[k] for k in FORWARDED_VARIABLES if k in os.environ}
        if "PAHS_CACHE" in environment:
            environment["PAHS_CACHE"] = os.path.abspath(environment["PAHS_CACHE"])
        self.ledger = ray.remote(_Ledger).options(num_cpus=0).remote()
        worker = ray.remote(_Worker).options(
            num_cpus=shape.cpus,
            num_gpus=shape.gpus,
            max_restarts=-1,  # a dead worker is always replaced; each job's attempts are bounded instead
            max_task_retries=MAX_ATTEMPTS - 1,
        )
        threads = worker_threads(shape)
        self.actors = [worker.remote(open_backend, environment, threads) for _ in range(shape.workers)]
        self.results: list[JobResult | None] = [None] * len(jobs)
        self.running: dict[Any, tuple[Any, int | None]] = {}  # ref -> (actor, job index; None: its ready())

    def run(self) -> list[JobResult]:
        ray = self.ray
        queue = deque(range(len(self.jobs)))
        problems: list[str] = []
        finished = False
        try:
            self.running = {actor.ready.remote(): (actor, None) for actor in self.actors}
            while queue or any(index is not None for _, index in self.running.values()):
                if not self.running:  # every worker failed to start
                    raise PahsError(
                        f"expected workers that open the engine, found {len(problems)} that could not "
                        f"({problems[0]}); the engine, inputs, outputs and $PAHS_CACHE must be on storage every "
                        "worker sees, and pahs installed on every machine"
                    )
                done, _ = ray.wait(list(self.running), num_returns=1, timeout=POLL_SECONDS)
                check_interrupted()
                for ref in done:
                    actor, index = self.running.pop(ref)
                    if index is None:
                        problem = self._ready(ref)
                        if problem is not None:
                            problems.append(problem)
                            ray.kill(actor, no_restart=True)
                            continue
                    else:
                        self._finish(index, self._result(ref, index))
                    if queue:
                        nxt = queue.popleft()
                        self.running[actor.run.remote(nxt, self.jobs[nxt], self.ledger)] = (actor, nxt)
            finished = True
        finally:
            self._stop(clean=not finished)
        assert all(r is not None for r in self.results), "a job without a result"
        return list(self.results)  # type: ignore[arg-type]

    def _ready(self, ref: Any) -> str | None:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            return f"a worker could not start: {_ray_error_line(e)}"

    def _result(self, ref: Any, index: int) -> JobResult:
        ray, job = self.ray, self.jobs[index]
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as e:  # every attempt's worker died
            owners = ray.get(self.ledger.owners_of.remote(index))
            for owner in owners:  # each dead attempt's temporary (a retry removes the earlier ones; none follows)
                remove_partials(job.output, owner)
            attempts = len(owners) or MAX_ATTEMPTS
            error = (
                f"the worker restoring it died {attempts} times ({_ray_error_line(e)}); it may need more memory "
                "than a worker has"
            )
        except ray.exceptions.RayError as e:  # not expected: run_job turns errors into results
            attempts, error = 1, f"unexpected {_ray_error_line(e)}"
        return JobResult(job.name, job.output, "failed", error=error, attempts=attempts)

    def _finish(self, index: int, result: JobResult) -> None:
        self.results[index] = result
        if self.on_result is not None:
            self.on_result(result)

    def _stop(self, clean: bool) -> None:
        """Kill the workers; when stopped early, remove what the jobs still running were writing."""
        ray = self.ray
        owners: dict[int, list[str]] = {}
        if clean:
            for _, index in self.running.values():
                if index is not None:
                    try:
                        owners[index] = ray.get(self.ledger.owners_of.remote(index), timeout=10)
                    except Exception:  # the ledger is gone: the next run's sweep is the fallback
                        pass
        for actor in [*self.actors, self.ledger]:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass
        for index, tags in owners.items():
            for owner in tags:
                remove_partials(self.jobs[index].output, owner)


def _ray_error_line(error: BaseException) -> str:
    """The first line of a Ray error, which carries a traceback and advice after it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else 'no message'}"
