"""Queue-level admission: limits, in-quota rules for non-preemptible jobs, strict quotas.

These checks do not look at nodes; they say whether the job's queues may hold more. The reasons
name the queue and the numbers a person needs to act (raise a limit, free quota, wait).
"""

from __future__ import annotations

from fairpool.domain.resources import RESOURCE_NAMES, Resources
from fairpool.scheduler.codes import PendingCode
from fairpool.scheduler.plan import PendingReason
from fairpool.scheduler.session import JobView, Session


def _kind(session: Session, q: int) -> str:
    return "project" if session.tree.is_leaf(session.queue_names[q]) else "department"


def _only(values: tuple[int, ...] | list[int], req: tuple[int, ...]) -> str:
    """Describe just the resources the job asks for."""
    masked = [v if req[r] else 0 for r, v in enumerate(values)]
    return Resources(*masked).describe()


def admission_block(session: Session, view: JobView) -> PendingReason | None:
    """Why the job's queues may not take it now, or None if they may."""
    req = session.request_total(view)
    q = session.within_limit(view, req)
    if q is not None:
        return PendingReason(
            PendingCode.QUEUE_LIMIT,
            f"{_kind(session, q)} {session.queue_names[q]} is at its limit "
            f"{_only(session.q_limit[q], req)} ({_only(session.q_alloc[q], req)} in use); "
            f"the job needs {_only(req, req)} more",
        )
    if not view.job.preemptible:
        q = session.within_quota(view, req, non_preemptible_only=True)
        if q is not None:
            return PendingReason(
                PendingCode.OVER_QUOTA_NON_PREEMPTIBLE,
                f"non-preemptible jobs must fit in quota: {_kind(session, q)} "
                f"{session.queue_names[q]} has quota {_only(session.q_quota[q], req)} and "
                f"{_only(session.q_alloc_np[q], req)} is held by non-preemptible jobs; the job "
                f"needs {_only(req, req)}",
            )
    if not session.config.lend_idle:
        q = session.within_quota(view, req, non_preemptible_only=False)
        if q is not None:
            return PendingReason(
                PendingCode.OVER_QUOTA_STRICT,
                f"strict quotas: {_kind(session, q)} {session.queue_names[q]} has quota "
                f"{_only(session.q_quota[q], req)} and uses {_only(session.q_alloc[q], req)}",
            )
    return None


def below_fair_share(session: Session, view: JobView, levels: tuple[int, ...]) -> int | None:
    """None if adding the job keeps every level in ``levels`` within its fair share on each
    contended resource the job uses, else the first level that would go above."""
    req = session.request_total(view)
    for q in levels:
        a = session.q_alloc[q]
        fs = session.q_fs[q]
        for r in session.contended:
            if req[r] and a[r] + req[r] > fs[r]:
                return q
    return None


def describe_share(session: Session, q: int) -> str:
    a = session.q_alloc[q]
    fs = session.q_fs[q]
    name = RESOURCE_NAMES[session.contended[0]] if session.contended else "gpu"
    r = RESOURCE_NAMES.index(name)
    mask = tuple(1 if i == r else 0 for i in range(4))
    return (
        f"{_kind(session, q)} {session.queue_names[q]} holds {_only(a, mask)} of its fair share "
        f"{_only(fs, mask)}"
    )


def reclaim_block(session: Session, view: JobView, q: int) -> str:
    """Why ``view`` may not reclaim: adding it would take queue ``q`` above its fair share
    (:func:`below_fair_share`). A job larger than the share itself is told so, and what would
    let it run; otherwise the queue's holding and share are given."""
    req = session.request_total(view)
    a, fs = session.q_alloc[q], session.q_fs[q]
    over = next((r for r in session.contended if req[r] and a[r] + req[r] > fs[r]), None)
    if over is None or req[over] <= fs[over]:
        return f"{describe_share(session, q)}, so it cannot reclaim"
    mask = tuple(1 if i == over else 0 for i in range(4))
    name = session.queue_names[q]
    need, share = _only(req, mask), _only(fs, mask)
    return (f"the job needs {need}, more than {_kind(session, q)} {name}'s fair share of "
            f"{share}, so it cannot reclaim: it starts only when {need} of idle capacity is "
            f"left that no queue below its share wants; a job of at most {share} could "
            f"reclaim, and a quota giving {name} a fair share of {need} would let this one")

