"""Allocate: place waiting gangs on free capacity, in fair order, all workers or none.

Queue rules (limit, in-quota for non-preemptible jobs, strict quotas) are checked first; then the
gang is placed. While allocate runs, free capacity only shrinks and allocations only grow, so a job
that cannot be placed means no job of the same shape can: the reason is cached until capacity is
released, and the rest of the job's group gets the same reason at once.

With reservations on (:mod:`fairpool.scheduler.reservations`), the pass first reserves devices
for the first gangs in fair order that have waited long enough; the free ones are held. A gang
with a reservation is placed with its own holds released. Another job that does not fit on the
capacity left may still be placed on held devices if it ends before their reservation starts
(backfill). One that would fit there but ends later gets a ``RESERVED`` reason of its own and
its group is not failed: a job of the same shape with a shorter run time may still backfill. The
group fails only when the job would not fit even with every hold released.
"""

from __future__ import annotations

from collections.abc import Hashable

from fairpool.scheduler import reservations
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
    book = reservations.prepare(session)
    order = JobOrder(session)
    failed: dict[Hashable, tuple[int, PendingReason]] = {}
    for view in order:
        block = admission_block(session, view)
        if block is not None:
            fail_group(order, session, view, block)
            continue
        if book is not None:
            own = book.by_gang.get(view.idx)
            if own is not None:
                if book.place_own(own):
                    order.placed()
                else:
                    book.note(view, book.own_reason(own))
                continue
        key = session.shape(view)
        cached = failed.get(key)
        if cached is not None and cached[0] == session.epoch:
            reason = cached[1]
        else:
            if try_place(session, view, Action.ALLOCATE):  # (the bind clears the job's reason)
                order.placed()
                continue
            failure = explain_failure(session.cluster, session.cluster.domain(view.job.selector),
                                      view)
            reason = PendingReason(PENDING_FOR_PLACEMENT[failure.code], failure.message)
            failed[key] = (session.epoch, reason)
        if book is not None and book.holding:
            outcome = book.backfill(view)
            if outcome is True:
                order.placed()
                continue
            if isinstance(outcome, PendingReason):
                book.note(view, outcome)  # its own: the rest of its group may still backfill
                continue
        fail_group(order, session, view, reason)
