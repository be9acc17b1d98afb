"""The scheduler's output: binds, evictions with their reason, and why each pending job waits.

A job that appears both in ``evictions`` and ``binds`` is being moved (consolidation): its workers
stop and start again at the new placement. A bind whose ``waits_for`` is not empty uses resources
that the listed evicted jobs still hold; it must start only once they have stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fairpool.domain.job import WorkerPlacement
from fairpool.domain.resources import Resources


@dataclass(frozen=True, slots=True)
class Bind:
    job_id: str
    placements: tuple[WorkerPlacement, ...]
    action: str  # allocate | consolidate | reclaim | preempt
    waits_for: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Eviction:
    job_id: str
    action: str  # consolidate | reclaim | preempt
    reason: str
    for_job: str | None = None


@dataclass(frozen=True, slots=True)
class PendingReason:
    """Why a job waits, in words a person can act on. ``code`` is stable for programs."""

    code: str
    message: str


@dataclass(slots=True)
class Plan:
    binds: list[Bind] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    pending: dict[str, PendingReason] = field(default_factory=dict)
    fair_shares: dict[str, Resources] = field(default_factory=dict)
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
