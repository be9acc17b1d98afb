"""Evict-to-fit: the search shared by reclaim, preempt and consolidate.

Given a pending gang and candidate victims (already filtered and ordered by the calling action),
victims are taken node by node — nodes where the gang would find the most room first — each one
re-checked against the action's rule at the moment it would be evicted, until the gang fits. A
second pass then keeps only the victims on the nodes the gang actually uses, so no job is evicted
that did not make room. Everything happens in one statement: if the gang cannot be completed, the
cluster is exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fairpool.scheduler.placement import could_fit, place_gang
from fairpool.scheduler.session import BOUND, JobView, Session
from fairpool.scheduler.statement import Statement

#: takes a victim out of the way; returns False (having changed nothing) if it may not
Remove = Callable[[JobView], bool]


def protected(session: Session, view: JobView) -> bool:
    """True while a job is inside its minimum runtime (or cannot be evicted at all). A job
    placed earlier in this cycle has not started, so only its preemptibility counts."""
    job = view.job
    if not job.preemptible:
        return True
    if job.min_runtime_s <= 0 or view.status == BOUND:
        return False
    started = job.started_at if job.started_at is not None else session.now
    return session.now < started + job.min_runtime_s


def group_by_node(session: Session, view: JobView, candidates: Sequence[JobView]) -> list[JobView]:
    """Order candidates node by node: nodes with the most free GPU first, then those where the
    candidates hold most; within a node the callers' order is kept. Candidates on no node of the gang's domain
    are dropped: evicting them would not help."""
    cs = session.cluster
    dom = cs.domain(view.job.selector)
    per_node: dict[int, list[JobView]] = {}
    room: dict[int, int] = {}
    for v in candidates:
        if not session.evictable(v):
            continue
        for n, _ in v.slots:
            if n in dom.nodes:
                per_node.setdefault(n, []).append(v)
                room[n] = room.get(n, 0) + v.acct[0]
                break
    # most free room first (fewest victims needed), then most room held by candidates
    ordered = sorted(per_node, key=lambda n: (-sum(cs.dev_free[n]), -room[n]))
    return [v for n in ordered for v in per_node[n]]


def evict_to_fit(
    session: Session,
    view: JobView,
    action: str,
    candidates: Sequence[JobView],
    remove: Remove,
    admits: Callable[[], bool] = lambda: True,
) -> bool:
    """Make room for ``view`` by removing candidates, bind it, and return True; or change nothing
    and return False. ``admits`` re-checks the queue rules once victims are gone."""
    job = view.job
    cs = session.cluster
    dom = cs.domain(job.selector)
    with Statement(session.log) as st:
        taken: list[JobView] = []
        origin: dict[int, set[int]] = {}  # victim → the nodes it held before removal
        got = None
        for v in candidates:
            if not session.evictable(v):
                continue
            nodes = {n for n, _ in v.slots}
            if not remove(v):
                continue
            taken.append(v)
            origin[v.idx] = nodes
            if not could_fit(dom, job.request, job.workers, job.same_node) or not admits():
                continue
            got = place_gang(session, view)
            if got is not None:
                break
        if got is None:
            return False
        used = {n for n, _ in got[0]}
        needed = [v for v in taken if origin[v.idx] & used]
        if len(needed) < len(taken):
            # second pass: only the victims on the nodes the gang uses
            st.rollback()
            kept = [v for v in needed if remove(v)]
            if len(kept) == len(needed) and admits():
                got = place_gang(session, view, only=used)
            else:
                got = None
            if got is None:  # replay the first pass exactly
                st.rollback()
                for v in taken:
                    if not remove(v):
                        return False
                got = place_gang(session, view)
                if got is None or not admits():
                    return False
                needed = taken
            taken = needed
        waits = tuple(v.job.id for v in taken if v.idx in session.evictions)
        session.bind(view, got[0], got[1], action, waits)
        st.commit()
        return True
