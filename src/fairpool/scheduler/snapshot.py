"""The scheduler's input: an immutable view of nodes, queues and jobs at one instant, and the
scheduler's configuration.

A snapshot is built once per cycle by whoever runs the scheduler (the control loop or the
simulator). ``generation`` is an optional change counter from the store: two snapshots with the
same generation describe the same state, which lets :class:`fairpool.scheduler.cycle.Scheduler`
skip a cycle in which nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from fairpool.domain.job import Job
from fairpool.domain.node import Node
from fairpool.domain.queue import InQueueOrder, Queue


class Strategy(StrEnum):
    """Where placement puts workers: bin-pack (least free room that fits), spread (most), or
    bin-pack with fractions placed where they fragment the pool least for the workload mix
    (:mod:`fairpool.scheduler.fragmentation`)."""

    BINPACK = "binpack"
    SPREAD = "spread"
    FRAGMENTATION = "fragmentation"


class QueueOrder(StrEnum):
    """How pending jobs are ordered across queues in allocate."""

    FAIR = "fair"  # queue priority, then distance below fair share (DRF), then job order
    FIFO = "fifo"  # submit time only
    SHORTEST_FIRST = "sjf"  # by the job's expected duration (an oracle, for the simulator)
    LEAST_ATTAINED = "las"  # by service the job already received (Tiresias-style)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    strategy: Strategy = Strategy.BINPACK
    order: QueueOrder = QueueOrder.FAIR
    lend_idle: bool = True  # False: strict quotas, no queue ever exceeds its quota
    consolidate: bool = True
    reclaim: bool = True
    preempt: bool = True
    max_consolidations: int = 16  # pending jobs that may trigger moves per cycle
    max_reclaim_attempts: int = 4096  # evict-to-fit searches per cycle (reclaim + preempt)
    #: reservations for large gangs (fairpool.scheduler.reservations): a gang that has waited
    #: this long reserves the devices it will get (None: no reservations); a job of this many
    #: GPUs counts as a gang even with one worker; at most this many reservations per cycle
    reserve_after_s: float | None = None
    reserve_min_gpus: int = 8
    max_reservations: int = 4
    #: the order of waiting jobs inside a project that sets none (fairpool.scheduler.
    #: service_levels); the attained-service order's levels (GPU-seconds), promotion factor,
    #: how many preemptions per cycle may enforce it, and how long a job's current run must
    #: have lasted before it may be preempted for the order
    job_order: InQueueOrder = InQueueOrder.PRIORITY
    service_levels_gpu_s: tuple[float, ...] = (3600.0, 36000.0)
    promote_after: float = 2.0
    max_order_preemptions: int = 8
    order_min_run_s: float = 1800.0  # (the best of 600, 1800, 3600 s on generated workloads)
    #: time-aware fair share (fairpool.scheduler.usage_share): how much past usage lowers an
    #: over-quota weight (0: not at all), its half-life and the window it looks back over
    usage_k: float = 0.0
    usage_half_life_s: float = 86400.0
    usage_window_s: float | None = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[Node, ...]
    queues: tuple[Queue, ...]
    jobs: tuple[Job, ...]
    now: float = 0.0
    generation: int | None = None
    #: optional per-job sort keys for the FIFO/SJF/LAS orders (job id → key; lower runs first)
    order_keys: dict[str, float] = field(default_factory=dict)
    #: expected run time (seconds) of a job of each project, from its history, for jobs that
    #: declare no ``max_runtime_s`` (project → seconds); used by estimates and backfill
    runtime_estimates: dict[str, float] = field(default_factory=dict)
    #: decayed GPU-seconds each project used (usage_share.decayed_gpu_s with the config's
    #: half-life and window), for the time-aware fair share
    usage_gpu_s: dict[str, float] = field(default_factory=dict)
