"""Jobs, gangs and workers.

A job is what a user submits: ``workers`` identical workers (its gang, placed all or nothing), each
asking for whole GPUs, a GPU fraction (0 < f < 1) or an amount of GPU memory, plus CPU and memory.
A running job carries one :class:`WorkerPlacement` per worker: the node and devices it holds and
the share of each device (in milli-GPUs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fairpool.domain.resources import GPU_UNIT, Resources
from fairpool.domain.states import HOLDING_STATES, PENDING_STATES, JobState, transition

MAX_WORKERS = 4096
MAX_GPUS_PER_WORKER = 64


@dataclass(frozen=True, slots=True)
class WorkerRequest:
    """What one worker asks for. Exactly one GPU form may be used: ``gpus`` (whole devices),
    ``gpu_fraction`` (0 < f < 1 of one device) or ``gpu_memory_mib`` (memory on one device)."""

    gpus: int = 0
    gpu_fraction: float | None = None
    gpu_memory_mib: int | None = None
    cpu: int = 0  # millicores
    memory: int = 0  # MiB

    def __post_init__(self) -> None:
        forms = sum(
            (self.gpus > 0, self.gpu_fraction is not None, self.gpu_memory_mib is not None)
        )
        if forms > 1:
            raise ValueError("ask for whole GPUs, a GPU fraction or GPU memory, not several")
        if self.gpus < 0 or self.gpus > MAX_GPUS_PER_WORKER:
            raise ValueError(f"gpus per worker must be between 0 and {MAX_GPUS_PER_WORKER}")
        if self.gpu_fraction is not None and not 0 < self.gpu_fraction < 1:
            raise ValueError("gpu fraction must be strictly between 0 and 1 (use gpus for whole)")
        if self.gpu_memory_mib is not None and self.gpu_memory_mib <= 0:
            raise ValueError("gpu memory must be a positive number of MiB")
        if self.cpu < 0 or self.memory < 0:
            raise ValueError("cpu and memory must not be negative")

    @property
    def fractional(self) -> bool:
        return self.gpu_fraction is not None or self.gpu_memory_mib is not None

    @property
    def fraction_milli(self) -> int:
        """Share of one device for a fraction request, in milli-GPUs (at least 1)."""
        assert self.gpu_fraction is not None
        return max(1, round(self.gpu_fraction * GPU_UNIT))

    def nominal(self, device_memory_mib: int) -> Resources:
        """Resources of one worker, taking ``device_memory_mib`` as the device size for
        fractional requests (placement uses the real device's size)."""
        if self.gpu_fraction is not None:
            milli = self.fraction_milli
            mem = milli * device_memory_mib // GPU_UNIT
        elif self.gpu_memory_mib is not None:
            mem = self.gpu_memory_mib
            milli = -(-mem * GPU_UNIT // max(device_memory_mib, 1))
        else:
            milli = self.gpus * GPU_UNIT
            mem = self.gpus * device_memory_mib
        return Resources(milli, mem, self.cpu, self.memory)


@dataclass(frozen=True, slots=True)
class NodeSelector:
    """Where a job may run: a node pool (None: any) and labels that must all match."""

    pool: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def key(self) -> tuple[str | None, tuple[tuple[str, str], ...]]:
        return (self.pool, tuple(sorted(self.labels.items())))

    def describe(self) -> str:
        parts = [f"pool={self.pool}"] if self.pool else []
        parts += [f"{k}={v}" for k, v in sorted(self.labels.items())]
        return ", ".join(parts) if parts else "any node"


ANY_NODE = NodeSelector()


@dataclass(frozen=True, slots=True)
class WorkerPlacement:
    """Where one worker of a job runs: node name, device indexes, milli-GPU share per device."""

    worker: int
    node: str
    devices: tuple[int, ...] = ()
    share: int = GPU_UNIT  # milli-GPUs held on each listed device
    gpu_memory: int = 0  # MiB held on each listed device


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    project: str
    request: WorkerRequest
    workers: int = 1
    priority: int = 50
    priority_class: str = "train"
    preemptible: bool = True
    submit_time: float = 0.0
    selector: NodeSelector = ANY_NODE
    same_node: bool = False
    spread: bool = False
    min_runtime_s: float = 0.0
    state: JobState = JobState.QUEUED
    placements: tuple[WorkerPlacement, ...] = ()
    started_at: float | None = None
    #: the declared bound on one run (seconds), after which the job is stopped; None: unbounded
    max_runtime_s: float | None = None
    #: GPU-seconds of service received in earlier runs (before an eviction); the current run's
    #: service is added from ``started_at`` by whoever needs it
    attained_gpu_s: float = 0.0
    #: when the job last went back to waiting after a run (None: waiting since submitted)
    queued_at: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"job {self.id}: workers must be between 1 and {MAX_WORKERS}")
        if self.state in HOLDING_STATES and len(self.placements) != self.workers:
            raise ValueError(
                f"job {self.id}: a placed job needs one placement per worker "
                f"({len(self.placements)} for {self.workers} workers)"
            )

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def active(self) -> bool:
        """Placed: it holds resources on nodes (a stopping job until it has stopped)."""
        return self.state in HOLDING_STATES

    @property
    def stopping(self) -> bool:
        return self.state == JobState.STOPPING

    @property
    def total_gpus_milli(self) -> int:
        """Milli-GPUs of the whole job (:mod:`fairpool.domain.accounting`): what its placements
        hold once placed, else what it asks for. A GPU-memory worker not placed yet counts as
        the one whole device it takes at most; ``accounting.asks`` values it on a known
        device."""
        from fairpool.domain import accounting  # it imports this module's types

        if self.placements:
            return accounting.holds(self).gpu
        return accounting.asks(self, self.request.gpu_memory_mib or 0).gpu


def moved(job: Job, target: JobState, *, at: float,
          placements: tuple[WorkerPlacement, ...] | None = None) -> Job:
    """The job after the state change ``job.state → target`` at ``at``, checked against the
    transition table (pure: the simulator and :func:`fairpool.scheduler.apply_plan` move jobs
    only through it, as the server does through ``fairpool.control.lifecycle.move``). Placed
    on ``placements`` when admitted; placements and start time are dropped when the job goes
    back to the queue or finishes; going back after a run, it keeps the GPU-seconds that run
    received (``attained_gpu_s``) and the time it went back (``queued_at``)."""
    state = transition(job.state, target)
    if state == JobState.ADMITTED:
        if placements is None:
            raise ValueError(f"job {job.id}: admitting a job needs its placements")
        return replace(job, state=state, placements=placements, started_at=None)
    if state == JobState.RUNNING:
        return replace(job, state=state, started_at=at)
    if state in HOLDING_STATES:
        return replace(job, state=state)
    if state == JobState.REQUEUED and job.started_at is not None and job.placements:
        from fairpool.domain import accounting  # it imports this module's types

        ran = max(0.0, at - job.started_at) * accounting.holds(job).gpu / GPU_UNIT
        return replace(job, state=state, placements=(), started_at=None,
                       attained_gpu_s=job.attained_gpu_s + ran, queued_at=at)
    if state == JobState.REQUEUED:
        return replace(job, state=state, placements=(), started_at=None, queued_at=at)
    return replace(job, state=state, placements=(), started_at=None)
