"""Preempt: inside one project, a higher-priority waiting job evicts lower-priority preemptible
jobs past their minimum runtime. Queue rules are re-checked with the victims gone, so a project at
its limit can still swap low-priority work for high-priority work."""

from __future__ import annotations

from fairpool.scheduler.admission import admission_block
from fairpool.scheduler.ordering import JobOrder
from fairpool.scheduler.session import EVICTED, PENDING, JobView, Session
from fairpool.scheduler.victims import evict_to_fit, group_by_node, protected


def preempt(session: Session) -> None:
    pending = session.waiting()
    if not pending:
        return
    by_leaf: dict[int, list[JobView]] = {}
    for v in session.jobs:
        if session.evictable(v) and not protected(session, v):
            by_leaf.setdefault(v.leaf, []).append(v)
    for jobs in by_leaf.values():
        jobs.sort(key=lambda v: (v.job.priority, -(v.job.started_at or 0.0), v.job.id))
    failed: set[tuple[object, ...]] = set()
    order = JobOrder(session, pending)
    for view in order:
        if session.search_budget <= 0:
            break
        if view.status not in (PENDING, EVICTED):
            continue
        prio = view.job.priority
        lower = [v for v in by_leaf.get(view.leaf, ()) if v.job.priority < prio]
        if not lower:
            continue
        key = (view.leaf, prio, view.job.request, view.job.workers, view.job.same_node,
               view.job.selector.key())
        if key in failed:
            continue
        session.search_budget -= 1
        candidates = group_by_node(session, view, lower)

        def remove(victim: JobView, preemptor: JobView = view) -> bool:
            session.evict(
                victim,
                "preempt",
                f"preempted by higher-priority job {preemptor.job.id} "
                f"(priority {preemptor.job.priority} > {victim.job.priority}) in project "
                f"{session.queue_names[victim.leaf]}",
                preemptor.job.id,
            )
            return True

        def admits(preemptor: JobView = view) -> bool:
            return admission_block(session, preemptor) is None

        if evict_to_fit(session, view, "preempt", candidates, remove, admits):
            session.reasons.pop(view.idx, None)
            order.placed()
        else:
            failed.add(key)
