"""What the control loop's deciders decide: typed effects, applied by the loop in its one write
transaction of a step (through :func:`fairpool.store.lifecycle.move`) and, for the executor,
after that transaction has committed.

Deciders are pure functions of the loop's view and the time: :func:`fairpool.control.failures.
overdue` (max runtimes), :func:`fairpool.control.lost.stale` (placements on nodes or devices
that are gone), :meth:`fairpool.control.breaker.NodeBreaker.due` (cordons whose cooldown is
over) and :func:`fairpool.control.idle.decide` (idle GPUs, via the sampler).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fairpool.domain.states import StopReason


class HoldCode(StrEnum):
    """Why the loop holds a waiting job back (its ``reason_code`` until ``not_before``); the
    scheduler's own pending codes are :class:`fairpool.scheduler.codes.PendingCode`."""

    RETRY_BACKOFF = "retry-backoff"  # a failed attempt waits out its backoff
    IDLE_HOLD = "idle-hold"  # requeued for idle GPUs: the jobs that waited go first


@dataclass(frozen=True, slots=True)
class Stop:
    """Ask a running job to stop (it becomes *stopping*; its workers are told after commit)."""

    job_id: str
    reason: StopReason
    kind: str  # the event's kind
    message: str
    cause: str | None = None  # of an eviction (metrics count evictions by it)


@dataclass(frozen=True, slots=True)
class Requeue:
    """An admitted job that never started goes back to the queue."""

    job_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Lose:
    """A worker the executor will not report again (its node or devices are gone): it is
    reported lost and the executor is told to forget it."""

    worker_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class Sample:
    """A job's latest GPU reading and idle marks."""

    job_id: str
    util: float
    simulated: bool
    memory_mib: int | None
    idle_since: float | None
    idle_flagged: bool
    event: str | None = None  # an idle change worth telling


@dataclass(frozen=True, slots=True)
class Uncordon:
    """A node the breaker cordoned whose cooldown is over."""

    node: str
