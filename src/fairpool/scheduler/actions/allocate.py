"""Allocate: place pending gangs on free capacity, in fair order, all workers or none.

Queue rules (limit, in-quota for non-preemptible jobs, strict quotas) are checked first; then the
gang is placed. A gang shape that did not fit keeps not fitting until capacity is released, so its
reason is cached for the rest of the action and the next job of that shape is rejected at once.
"""

from __future__ import annotations

from fairpool.scheduler.admission import admission_block
from fairpool.scheduler.ordering import JobOrder
from fairpool.scheduler.placement import explain_failure, try_place
from fairpool.scheduler.plan import PendingReason
from fairpool.scheduler.session import JobView, Session

ShapeKey = tuple[object, ...]


def shape_key(view: JobView) -> ShapeKey:
    job = view.job
    return (job.request, job.workers, job.same_node, job.spread, job.selector.key())


def allocate(session: Session) -> None:
    pending = session.waiting()
    order = JobOrder(session, pending)
    failed: dict[ShapeKey, tuple[int, PendingReason]] = {}
    reasons = session.reasons
    for view in order:
        block = admission_block(session, view)
        if block is not None:
            reasons[view.idx] = block
            continue
        key = shape_key(view)
        cached = failed.get(key)
        if cached is not None and cached[0] == session.epoch:
            reasons[view.idx] = cached[1]
            continue
        if try_place(session, view, "allocate"):
            reasons.pop(view.idx, None)
            order.placed()
            continue
        failure = explain_failure(session.cluster, session.cluster.domain(view.job.selector), view)
        reason = PendingReason(failure.code, failure.message)
        failed[key] = (session.epoch, reason)
        reasons[view.idx] = reason
