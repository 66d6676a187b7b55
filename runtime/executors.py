"""Where jobs run (:class:`runtime.jobs.Job`: the videos of a batch, or the segments of one long video): here, one
after the other (:func:`runtime.batch.run_local`), or on the Ray cluster a :class:`~runtime.cluster.ClusterOptions`
names (:func:`runtime.cluster.run_on_ray`). Callers say where; this module picks the executor, so that the
choice between this machine and Ray is made in one place, below the command line."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .backends import Backend
from .batch import run_local
from .cluster import ClusterOptions, run_on_ray
from .jobs import Job, JobResult


def execute(
    jobs: Sequence[Job],
    open_backend: Callable[..., Backend],
    where: ClusterOptions,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run ``jobs`` here, one after the other (``where.address`` None), or on the Ray cluster ``where`` names.
    ``open_backend``: a picklable callable (each worker opens its backend with it, once, passing ``threads=``;
    here it is called with no argument). One result per job, in the order of ``jobs``."""
    if not where.on_ray:
        return run_local(jobs, open_backend, on_result)
    return run_on_ray(
        jobs, open_backend, address=where.address, workers=where.workers, gpus_per_worker=where.gpus_per_worker,
        cpus_per_worker=where.cpus_per_worker, on_result=on_result,
    )  # fmt: skip
