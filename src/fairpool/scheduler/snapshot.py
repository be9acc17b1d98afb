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
from fairpool.domain.queue import Queue


class Strategy(StrEnum):
    BINPACK = "binpack"
    SPREAD = "spread"


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


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[Node, ...]
    queues: tuple[Queue, ...]
    jobs: tuple[Job, ...]
    now: float = 0.0
    generation: int | None = None
    #: optional per-job sort keys for the FIFO/SJF/LAS orders (job id → key; lower runs first)
    order_keys: dict[str, float] = field(default_factory=dict)
