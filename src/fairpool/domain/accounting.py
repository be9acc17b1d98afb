"""What a job asks for and what it holds, in the domain's integer resources (milli-GPUs, MiB,
millicores, MiB): the one accounting every reader of "GPUs a project has" uses.

- :func:`asked` / :func:`asks`: a waiting job's demand, the nominal request of one worker times
  its workers. Whole GPUs count ``GPU_UNIT`` each with all of the reference device's memory, a
  fraction its milli-GPUs, and GPU memory its share of the *reference device* (rounded up to
  the next milli-GPU, as placement rounds it on a real device).
- :func:`held` / :func:`holds` (:func:`held_units` as a tuple): a placed job's allocation,
  summed from its placements: each worker holds ``share`` milli-GPUs and ``gpu_memory`` MiB on
  each of its devices, and its CPU and memory.
- :func:`reference_memory`: the reference device, the largest device of the cluster (what the
  scheduler's session values GPU-memory requests against before they are placed).

The scheduler's session (and so its plan's ``allocated``), queue status (and so `fairpool
queues` and the queue gauges of /metrics), usage and ``Job.total_gpus_milli`` count with these,
so a project's allocation is the same number everywhere, equal to the sum of its devices'
shares.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fairpool.domain.resources import Resources

if TYPE_CHECKING:  # job.py delegates to this module, so its types are imported for hints only
    from fairpool.domain.job import Job, WorkerPlacement, WorkerRequest


def reference_memory(device_memories_mib: Iterable[int]) -> int:
    """The reference device's memory: the largest of the given devices' (0 without devices)."""
    return max(device_memories_mib, default=0)


def asked(request: WorkerRequest, workers: int, device_memory_mib: int) -> Resources:
    """What ``workers`` workers of ``request`` ask for, GPU memory valued on a device of
    ``device_memory_mib`` (linear in ``workers``: sums over jobs of one request may be taken
    over their summed workers)."""
    return request.nominal(device_memory_mib) * workers


def held(request: WorkerRequest, placements: Iterable[WorkerPlacement]) -> Resources:
    """What a job of ``request`` holds on ``placements`` (one per worker): each worker's share
    and GPU memory on each of its devices, plus its CPU and memory."""
    return Resources(*held_units(request, placements))


def held_units(request: WorkerRequest, placements: Iterable[WorkerPlacement]
               ) -> tuple[int, int, int, int]:
    """:func:`held` as a plain (gpu, gpu_memory, cpu, memory) tuple, for the scheduler's hot
    path (no object per job)."""
    gpu = gmem = count = 0
    for p in placements:
        devices = len(p.devices)
        gpu += p.share * devices
        gmem += p.gpu_memory * devices
        count += 1
    return (gpu, gmem, request.cpu * count, request.memory * count)


def asks(job: Job, device_memory_mib: int) -> Resources:
    """What the whole job asks for (every worker), GPU memory valued on the reference device."""
    return asked(job.request, job.workers, device_memory_mib)


def holds(job: Job) -> Resources:
    """What the job holds now: nothing unless it is placed (a holding state)."""
    return held(job.request, job.placements)
