"""Preempt: inside one project, a higher-priority waiting job evicts lower-priority preemptible
jobs past their minimum runtime. Queue rules are re-checked with the victims gone, so a project at
its limit can still swap low-priority work for high-priority work. Jobs evicted earlier in this
cycle wait again and may preempt too, so a reclaimed high-priority job displaces its project's
low-priority work at once instead of one cycle later."""

from __future__ import annotations

from fairpool.scheduler.actions.reclaim import candidate_bound
from fairpool.scheduler.admission import admission_block
from fairpool.scheduler.codes import Action
from fairpool.scheduler.ordering import JobOrder
from fairpool.scheduler.session import JobView, Session
from fairpool.scheduler.victims import evict_to_fit, group_by_node, victims_by_leaf


def preempt(session: Session) -> None:
    by_leaf = victims_by_leaf(session)
    lowest = {leaf: jobs[0].job.priority for leaf, jobs in by_leaf.items()}
    if not lowest:
        return
    order = JobOrder(session, lambda g: g.leaf in lowest and g.priority > lowest[g.leaf])
    for view in order:
        if session.search_budget <= 0:
            break
        prio = view.job.priority
        if prio <= lowest.get(view.leaf, prio):  # the FIFO/SJF/LAS orders ignore the filter
            order.fail_group()
            continue
        lower = [v for v in by_leaf[view.leaf] if v.job.priority < prio
                 and session.evictable(v)]
        if sum(v.acct[0] for v in lower) + session.free_gpu(view) < session.request_total(
            view
        )[0]:
            order.fail_group()  # even evicting all of them would not free enough
            continue
        session.search_budget -= 1
        candidates = group_by_node(session, view, lower)

        def remove(victim: JobView, preemptor: JobView = view) -> bool:
            session.evict(
                victim,
                Action.PREEMPT,
                f"preempted by higher-priority job {preemptor.job.id} "
                f"(priority {preemptor.job.priority} > {victim.job.priority}) in project "
                f"{session.queue_names[victim.leaf]}",
                preemptor.job.id,
            )
            return True

        def admits(preemptor: JobView = view) -> bool:
            return admission_block(session, preemptor) is None

        if evict_to_fit(session, view, Action.PREEMPT, candidates, remove, admits,
                        max_candidates=candidate_bound(session, view)):
            order.placed()
        else:
            order.fail_group()
