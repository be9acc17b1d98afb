"""Groups of interchangeable waiting jobs.

A group holds the waiting jobs of one queue with the same rank (priority, and level in the
attained-service order: :mod:`fairpool.scheduler.service_levels`) and the same shape (request,
workers, selector, constraints), in their queue's order. See :mod:`fairpool.scheduler.ordering`
for why they exist: when the head of a group cannot be placed, none of the others can.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fairpool.scheduler.plan import PendingReason
    from fairpool.scheduler.session import JobView

GroupKey = tuple[int, int, Hashable]  # leaf, rank, shape
JobKey = tuple[int, float, str]


def job_key(view: JobView) -> JobKey:
    """Order inside a queue (the session computes it per job: by default higher priority first,
    then earlier submit, then id)."""
    return view.key


class Group:
    """``reason``: why the group's waiting jobs wait, set when its head could not be placed
    (every job of the group after the head waits for the same reason, so it is kept once). It
    changes only through :meth:`fairpool.scheduler.session.Session.set_group_reason`, which logs
    the undo."""

    __slots__ = ("jobs", "leaf", "rank", "reason")

    def __init__(self, leaf: int, rank: int, jobs: list[JobView]) -> None:
        self.leaf = leaf
        self.rank = rank
        self.jobs = jobs
        self.reason: PendingReason | None = None
