"""Reclaim: a queue below its fair share takes back resources lent to queues above theirs.

Only preemptible jobs past their minimum runtime are victims; a victim's queues (each level below
the point where the two paths meet) must stay at or above their fair share after the eviction, and
the reclaimer's must stay at or below theirs after the bind, on every contended resource the job
asks for. Together the two rules rule out ping-pong: after a reclaim neither side may reclaim back.
"""

from __future__ import annotations

from fairpool.scheduler.admission import admission_block, below_fair_share, describe_share
from fairpool.scheduler.ordering import JobOrder
from fairpool.scheduler.plan import PendingReason
from fairpool.scheduler.session import EVICTED, PENDING, JobView, Session
from fairpool.scheduler.victims import evict_to_fit, group_by_node, protected


def _diverging(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        i += 1
    return i


def reclaim_allowed(session: Session, reclaimer: JobView, victim: JobView) -> bool:
    """The two fair-share rules for one reclaimer/victim pair, at the current accounting."""
    req = session.request_total(reclaimer)
    i = _diverging(reclaimer.path, victim.path)
    if below_fair_share(session, reclaimer, reclaimer.path[i:]) is not None:
        return False
    acct = victim.acct
    for q in victim.path[i:]:
        a = session.q_alloc[q]
        fs = session.q_fs[q]
        for r in session.contended:
            if req[r] and acct[r] and a[r] - acct[r] < fs[r]:
                return False
    return True


def _over_share(session: Session, leaf: int) -> bool:
    a = session.q_alloc[leaf]
    fs = session.q_fs[leaf]
    return any(a[r] > fs[r] for r in session.contended)


def reclaim(session: Session) -> None:
    if not session.contended:
        return
    pending = session.waiting()
    if not pending:
        return
    by_leaf: dict[int, list[JobView]] = {}
    for v in session.jobs:
        if session.evictable(v) and not protected(session, v):
            by_leaf.setdefault(v.leaf, []).append(v)
    for jobs in by_leaf.values():  # lowest priority, then newest, go first
        jobs.sort(key=lambda v: (v.job.priority, -(v.job.started_at or 0.0), v.job.id))
    failed: set[tuple[int, object]] = set()
    noted: set[int] = set()
    order = JobOrder(session, pending)
    for view in order:
        if session.search_budget <= 0:
            break
        if view.status not in (PENDING, EVICTED) or admission_block(session, view) is not None:
            continue
        over = below_fair_share(session, view, view.path[-1:])
        if over is not None:
            _note(session, view, noted, f"{describe_share(session, over)}, so it cannot reclaim")
            continue
        key = (view.leaf, (view.job.request, view.job.workers, view.job.same_node,
                           view.job.selector.key()))
        if key in failed:
            continue
        leaves = sorted((leaf for leaf in by_leaf if leaf != view.leaf and
                         _over_share(session, leaf)), key=lambda q: -session.share_ratio(q))
        candidates = group_by_node(session, view, [v for q in leaves for v in by_leaf[q]])
        if not candidates:
            failed.add(key)
            _note(session, view, noted, "no preemptible jobs of projects above their fair share "
                  "can be reclaimed")
            continue
        session.search_budget -= 1
        project = session.queue_names[view.leaf]

        def remove(victim: JobView, reclaimer: JobView = view, project: str = project) -> bool:
            if not reclaim_allowed(session, reclaimer, victim):
                return False
            session.evict(
                victim,
                "reclaim",
                f"reclaimed by project {project} (below its fair share) for job "
                f"{reclaimer.job.id}",
                reclaimer.job.id,
            )
            return True

        if evict_to_fit(session, view, "reclaim", candidates, remove):
            session.reasons.pop(view.idx, None)
            order.placed()
        else:
            failed.add(key)
            _note(session, view, noted, "reclaiming from projects above their fair share would "
                  "not free a large enough block")


def _note(session: Session, view: JobView, noted: set[int], text: str) -> None:
    """Append why reclaim did not help to the job's pending reason (once)."""
    if view.idx in noted:
        return
    noted.add(view.idx)
    base = session.reasons.get(view.idx)
    if base is None:
        return
    session.reasons[view.idx] = PendingReason(base.code, f"{base.message}; {text}")
