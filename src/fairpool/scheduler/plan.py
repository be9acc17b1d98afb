"""The scheduler's output: binds, evictions with their reason, and why each pending job waits.

A job that appears both in ``evictions`` and ``binds`` is being moved (consolidation): its workers
stop and start again at the new placement. A bind whose ``waits_for`` is not empty uses resources
that the listed evicted jobs still hold; it must start only once they have stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from fairpool.domain.job import WorkerPlacement
from fairpool.domain.resources import Resources
from fairpool.scheduler.codes import Action, PendingCode


@dataclass(frozen=True, slots=True)
class Bind:
    job_id: str
    placements: tuple[WorkerPlacement, ...]
    action: Action
    waits_for: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Eviction:
    job_id: str
    action: Action  # consolidate, reclaim or preempt (allocate never evicts)
    reason: str
    for_job: str | None = None
    #: a preemption that enforces a project's attained-service order (same priority)
    order: bool = False

    @property
    def cause(self) -> str:
        """What the job's evicted event (and the evictions metric) records as its cause."""
        return "order" if self.order else str(self.action)


@dataclass(frozen=True, slots=True)
class PendingReason:
    """Why a job waits, in words a person can act on. ``code`` is stable for programs."""

    code: PendingCode
    message: str


class PendingReasons(Mapping[str, PendingReason]):
    """Job id → reason, read lazily from the cycle's own tables (a large cluster has 100,000
    waiting jobs, most sharing their group's reason; consumers look up a few, or write out
    only the ones that changed)."""

    __slots__ = ("_ids", "_index", "_reason_at", "_waiting")

    def __init__(
        self,
        reason_at: Callable[[int], PendingReason | None],
        waiting: Callable[[], Iterator[int]],
        index: Callable[[str], int | None],
        ids: Callable[[int], str],
    ) -> None:
        self._reason_at = reason_at
        self._waiting = waiting
        self._index = index
        self._ids = ids

    def __getitem__(self, job_id: str) -> PendingReason:
        idx = self._index(job_id)
        reason = None if idx is None else self._reason_at(idx)
        if reason is None:
            raise KeyError(job_id)
        return reason

    def __iter__(self) -> Iterator[str]:
        return (self._ids(i) for i in self._waiting())

    def __len__(self) -> int:
        return sum(1 for _ in self._waiting())


@dataclass(slots=True)
class Plan:
    binds: list[Bind] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    pending: Mapping[str, PendingReason] = field(default_factory=dict)
    fair_shares: dict[str, Resources] = field(default_factory=dict)
    #: queue → what it holds once this plan is applied (binds in, evictions out), for every
    #: queue fair_shares has, counted by fairpool.domain.accounting as queue status counts it
    allocated: dict[str, Resources] = field(default_factory=dict)
    reused: bool = False  # True when a no-change cycle returned the previous plan
    valid_until: float = float("inf")  # the plan may change after this time even with no events

    @property
    def changes(self) -> bool:
        return bool(self.binds or self.evictions)

    def bind_for(self, job_id: str) -> Bind | None:
        return next((b for b in self.binds if b.job_id == job_id), None)

    def eviction_for(self, job_id: str) -> Eviction | None:
        return next((e for e in self.evictions if e.job_id == job_id), None)
