"""Preempt: inside one project, a waiting job evicts preemptible jobs of lower rank past their
minimum runtime. Rank is priority and, in a project with the attained-service order, the level
of service received (:mod:`fairpool.scheduler.service_levels`): a job of the same priority that
has had less GPU-time may preempt one that has had more. Such order preemptions are bounded per
cycle (``SchedulerConfig.max_order_preemptions``) and counted
(``Session.order_preemptions``). Queue rules are re-checked with the victims gone, so a project
at its limit can still swap low-rank work for high-rank work. Jobs evicted earlier in this cycle
wait again and may preempt too, so a reclaimed high-priority job displaces its project's
low-priority work at once instead of one cycle later."""

from __future__ import annotations

from dataclasses import replace

from fairpool.scheduler.actions.reclaim import candidate_bound
from fairpool.scheduler.admission import admission_block
from fairpool.scheduler.codes import Action
from fairpool.scheduler.ordering import JobOrder
from fairpool.scheduler.service_levels import level_of
from fairpool.scheduler.session import RUNNING, JobView, Session
from fairpool.scheduler.victims import evict_to_fit, group_by_node, victims_by_leaf


def _why(session: Session, preemptor: JobView, victim: JobView) -> str:
    project = session.queue_names[victim.leaf]
    if preemptor.job.priority > victim.job.priority:
        return (f"preempted by higher-priority job {preemptor.job.id} "
                f"(priority {preemptor.job.priority} > {victim.job.priority}) in project "
                f"{project}")
    return (f"preempted by job {preemptor.job.id}, which has received less GPU time (service "
            f"level {level_of(preemptor.rank)} < {level_of(victim.rank)}), in project "
            f"{project} (attained-service order)")


def _ran_long_enough(session: Session, victim: JobView) -> bool:
    """An order preemption only takes a running job whose current run has lasted
    ``SchedulerConfig.order_min_run_s``; never one placed in this cycle (it was placed in the
    order, which a promoted job's place in it may have put ahead)."""
    if victim.status != RUNNING:
        return False
    started = victim.job.started_at
    return started is None or session.now - started >= session.config.order_min_run_s


def _order_victims(session: Session, preemptor: JobView) -> int:
    """Jobs of the preemptor's priority it has evicted so far in its current attempt."""
    prio = preemptor.job.priority
    return sum(1 for idx, e in session.evictions.items()
               if e.for_job == preemptor.job.id and session.jobs[idx].job.priority == prio)


def preempt(session: Session) -> None:
    by_leaf = victims_by_leaf(session)
    lowest = {leaf: jobs[0].rank for leaf, jobs in by_leaf.items()}
    if not lowest:
        return
    bound = session.config.max_order_preemptions
    order = JobOrder(session, lambda g: g.leaf in lowest and g.rank > lowest[g.leaf])
    for view in order:
        if session.search_budget <= 0:
            break
        rank = view.rank
        if rank <= lowest.get(view.leaf, rank):  # the FIFO/SJF/LAS orders ignore the filter
            order.fail_group()
            continue
        prio = view.job.priority
        by_order = session.order_preemptions < bound
        lower = [v for v in by_leaf[view.leaf] if v.rank < rank and session.evictable(v)
                 and (v.job.priority < prio or (by_order and _ran_long_enough(session, v)))]
        if sum(v.acct[0] for v in lower) + session.free_gpu(view) < session.request_total(
            view
        )[0]:
            order.fail_group()  # even evicting all of them would not free enough
            continue
        session.search_budget -= 1
        candidates = group_by_node(session, view, lower)

        def remove(victim: JobView, preemptor: JobView = view) -> bool:
            if (victim.job.priority == preemptor.job.priority
                    and session.order_preemptions + _order_victims(session, preemptor) >= bound):
                return False  # the bound holds inside one preemptor's attempt too
            session.evict(victim, Action.PREEMPT, _why(session, preemptor, victim),
                          preemptor.job.id)
            return True

        def admits(preemptor: JobView = view) -> bool:
            return admission_block(session, preemptor) is None

        if evict_to_fit(session, view, Action.PREEMPT, candidates, remove, admits,
                        max_candidates=candidate_bound(session, view)):
            for idx, e in list(session.evictions.items()):
                if e.for_job == view.job.id and session.jobs[idx].job.priority == prio:
                    session.evictions[idx] = replace(e, order=True)
                    session.order_preemptions += 1
            order.placed()
        else:
            order.fail_group()
