"""Allocate: place waiting gangs on free capacity, in fair order, all workers or none.

Queue rules (limit, in-quota for non-preemptible jobs, strict quotas) are checked first; then the
gang is placed. While allocate runs, free capacity only shrinks and allocations only grow, so a job
that cannot be placed means no job of the same shape can: the reason is cached until capacity is
released, and the rest of the job's group gets the same reason at once.
"""

from __future__ import annotations

from collections.abc import Hashable

from fairpool.scheduler.admission import admission_block
from fairpool.scheduler.codes import PENDING_FOR_PLACEMENT, Action
from fairpool.scheduler.ordering import JobOrder
from fairpool.scheduler.placement import explain_failure, try_place
from fairpool.scheduler.plan import PendingReason
from fairpool.scheduler.session import JobView, Session


def fail_group(order: JobOrder, session: Session, view: JobView, reason: PendingReason) -> None:
    """Give ``reason`` to the job and, in group mode, to every job of its group after it."""
    group = order.fail_group()
    if group is not None:
        if view.idx in session.reasons:
            session.clear_reason(view)
        session.set_group_reason(group, reason)
    else:
        session.set_reason(view, reason)


def allocate(session: Session) -> None:
    order = JobOrder(session)
    failed: dict[Hashable, tuple[int, PendingReason]] = {}
    for view in order:
        block = admission_block(session, view)
        if block is not None:
            fail_group(order, session, view, block)
            continue
        key = session.shape(view)
        cached = failed.get(key)
        if cached is not None and cached[0] == session.epoch:
            fail_group(order, session, view, cached[1])
            continue
        if try_place(session, view, Action.ALLOCATE):  # (the bind clears the job's reason)
            order.placed()
            continue
        failure = explain_failure(session.cluster, session.cluster.domain(view.job.selector), view)
        reason = PendingReason(PENDING_FOR_PLACEMENT[failure.code], failure.message)
        failed[key] = (session.epoch, reason)
        fail_group(order, session, view, reason)
