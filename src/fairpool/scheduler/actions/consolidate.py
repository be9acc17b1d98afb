"""Consolidate: when a pending gang fits nowhere only because free GPUs are scattered, move
running preemptible single-worker jobs to other nodes to open a block for it.

A move is an eviction plus a bind elsewhere in the same plan. The GPUs moved for one pending job
never exceed the GPUs that job asks for, only jobs past their minimum runtime move, and at most
``max_consolidations`` pending jobs trigger moves per cycle.
"""

from __future__ import annotations

from fairpool.domain.resources import GPU_UNIT
from fairpool.scheduler.admission import admission_block
from fairpool.scheduler.codes import Action, PendingCode
from fairpool.scheduler.groups import Group
from fairpool.scheduler.ordering import JobOrder
from fairpool.scheduler.placement import place_gang
from fairpool.scheduler.plan import Bind
from fairpool.scheduler.session import JobView, Session
from fairpool.scheduler.statement import Statement
from fairpool.scheduler.victims import evict_to_fit, group_by_node, protected


def _fragmented(session: Session, view: JobView) -> bool:
    """Enough GPU is free in the job's domain in total, just not in the right places."""
    need = session.request_total(view)[0]
    if need <= 0:
        return False
    if view.job.request.gpus:
        return session.cluster.domain(view.job.selector).free_whole() * GPU_UNIT >= need
    return session.free_gpu(view) >= need


class _Mover:
    """The ``remove`` step of :func:`~fairpool.scheduler.victims.evict_to_fit` for one pending
    job: evict a victim and bind it on another node, or leave it as it was. The GPUs moved never
    exceed what the job asks for; what has been moved is read from the session's binds (the
    moves still in effect), so a search that is rolled back gives its allowance back with no
    undo of its own."""

    __slots__ = ("limit", "moves", "session", "target")

    def __init__(self, session: Session, target: JobView) -> None:
        self.session = session
        self.target = target
        self.limit = session.request_total(target)[0]
        self.moves: list[tuple[JobView, Bind]] = []  # each victim moved, with its new bind

    def moved(self) -> int:
        """Milli-GPUs moved by the moves that have not been rolled back."""
        binds = self.session.binds
        self.moves = [(v, b) for v, b in self.moves if binds.get(v.idx) is b]
        return sum(v.acct[0] for v, _ in self.moves)

    def __call__(self, victim: JobView) -> bool:
        if self.moved() + victim.acct[0] > self.limit:
            return False
        session = self.session
        target = self.target.job.id
        old = {n for n, _ in victim.slots}
        with Statement(session.log) as st:
            session.evict(victim, Action.CONSOLIDATE,
                          f"moved to another node to open room for job {target}", target)
            got = place_gang(session, victim, exclude=old)
            if got is None:
                return False
            # a job placed earlier in this cycle is simply placed elsewhere
            session.bind(victim, got[0], got[1],
                         Action.ALLOCATE if victim.job.pending else Action.CONSOLIDATE)
            st.commit()
        self.moves.append((victim, session.binds[victim.idx]))
        return True


def consolidate(session: Session) -> None:
    budget = session.config.max_consolidations
    if budget <= 0:
        return
    movable = [
        v for v in session.holders()
        if v.job.workers == 1 and v.acct[0] > 0
        and not protected(session, v)
    ]
    if not movable:
        return
    movable.sort(key=lambda v: (v.acct[0], v.job.priority, v.job.id))  # small moves first
    free = sum(sum(devs) for devs in session.cluster.dev_free)
    if free <= 0:
        return
    def worth_a_look(group: Group) -> bool:
        head = group.jobs[0]
        reason = session.reason_of(head)
        return reason is not None and reason.code == PendingCode.NO_CAPACITY and (
            session.request_total(head)[0] <= free)

    order = JobOrder(session, worth_a_look)
    fragmented: dict[tuple[object, int], bool] = {}  # (domain, GPUs needed) → enough free?
    for view in order:
        if budget <= 0:
            break
        reason = session.reason_of(view)
        if reason is None or reason.code != PendingCode.NO_CAPACITY:
            order.fail_group()
            continue
        key = (view.job.selector.key(), session.request_total(view)[0])
        scattered = fragmented.get(key)
        if scattered is None:
            scattered = fragmented[key] = _fragmented(session, view)
        if not scattered or admission_block(session, view) is not None:
            order.fail_group()
            continue
        budget -= 1
        candidates = group_by_node(session, view, movable)
        if evict_to_fit(session, view, Action.CONSOLIDATE, candidates, _Mover(session, view)):
            order.placed()
            fragmented.clear()
        else:
            order.fail_group()
