"""The scheduler's codes: which action made a decision, why a job waits, why a gang did not fit.

They are :class:`~enum.StrEnum` members whose values are the stable strings programs see: the
control loop stores pending codes in the database (``reason_code``) and actions are exported as
Prometheus labels, so a value never changes once released. A member compares equal to its value
(``Action.RECLAIM == "reclaim"``) and formats as it, so consumers that hold plain strings keep
working.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """The action behind a bind or an eviction (see :mod:`fairpool.scheduler.actions`)."""

    ALLOCATE = "allocate"
    CONSOLIDATE = "consolidate"
    RECLAIM = "reclaim"
    PREEMPT = "preempt"


class PlacementCode(StrEnum):
    """Why a gang does not fit on the nodes it may use
    (:class:`~fairpool.scheduler.placement.PlacementFailure`)."""

    NO_NODES = "NO_NODES"  # no ready, uncordoned node matches the selector
    TOO_LARGE = "TOO_LARGE"  # larger than any matching node or GPU, even an empty one
    NO_CAPACITY = "NO_CAPACITY"  # not enough free GPU in the right places now
    NODE_RESOURCES = "NODE_RESOURCES"  # GPUs are free, but not with the CPUs/memory next to them


class PendingCode(StrEnum):
    """Why a job waits (:class:`~fairpool.scheduler.plan.PendingReason`): a queue rule, a
    placement failure (same values as :class:`PlacementCode`), or a place lost in this cycle."""

    QUEUE_LIMIT = "QUEUE_LIMIT"
    OVER_QUOTA_NON_PREEMPTIBLE = "OVER_QUOTA_NON_PREEMPTIBLE"
    OVER_QUOTA_STRICT = "OVER_QUOTA_STRICT"
    NO_NODES = "NO_NODES"
    TOO_LARGE = "TOO_LARGE"
    NO_CAPACITY = "NO_CAPACITY"
    NODE_RESOURCES = "NODE_RESOURCES"
    DISPLACED = "DISPLACED"  # placed earlier in this cycle, then its room went to another job
    RESERVED = "RESERVED"  # would fit on GPUs reserved for a waiting gang, and ends after it starts


#: The pending code for each placement failure (built by value: every placement code must be a
#: pending code, or importing this module fails).
PENDING_FOR_PLACEMENT: dict[PlacementCode, PendingCode] = {
    code: PendingCode(code.value) for code in PlacementCode
}
