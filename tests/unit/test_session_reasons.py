"""Pending reasons go through the session's logged methods: a rolled-back statement restores them
exactly, whichever action wrote them (allocate, consolidate, reclaim, preempt)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fairpool.domain import Job, JobState, Queue, WorkerPlacement
from fairpool.scheduler import Action, PendingCode, QueueOrder, SchedulerConfig, Snapshot
from fairpool.scheduler.actions.allocate import allocate
from fairpool.scheduler.actions.consolidate import consolidate
from fairpool.scheduler.actions.preempt import preempt
from fairpool.scheduler.actions.reclaim import reclaim
from fairpool.scheduler.placement import try_place
from fairpool.scheduler.plan import PendingReason
from fairpool.scheduler.session import BOUND, PENDING, Session
from fairpool.scheduler.statement import Statement
from tests.helpers import job, nodes, project

ORDERS = [QueueOrder.FAIR, QueueOrder.FIFO]  # FAIR: reasons mostly per group; FIFO: per job


def on(j: Job, *where: tuple[str, tuple[int, ...]], started: float = 0.0) -> Job:
    ps = tuple(WorkerPlacement(i, n, d) for i, (n, d) in enumerate(where))
    return replace(j, state=JobState.RUNNING, placements=ps, started_at=started)


def reasons(session: Session) -> object:
    """Every trace of why jobs wait: own reasons, group reasons, and the plan's view of both."""
    groups = {k: g.reason for k, g in session.groups.items() if g.reason is not None}
    return dict(session.reasons), groups, dict(session.to_plan().pending)


def state(session: Session) -> object:
    return (reasons(session), session.cluster.fingerprint(),
            [list(a) for a in session.q_alloc],
            [(v.status, v.placements, v.acct) for v in session.jobs],
            dict(session.binds), dict(session.evictions))


def fresh(snap: Snapshot, order: QueueOrder = QueueOrder.FAIR, **config: object) -> Session:
    session = Session(snap, SchedulerConfig(order=order, **config))  # type: ignore[arg-type]
    for v in session.jobs:  # domain indexes are built lazily; build them before comparing
        session.cluster.domain(v.job.selector)
    return session


def prepared(snap: Snapshot, order: QueueOrder, **config: object) -> Session:
    """A session after a committed allocate: every job that did not fit has a reason."""
    session = fresh(snap, order, **config)
    allocate(session)
    return session


def fragmented() -> Snapshot:
    """Two 3-GPU nodes with one small job each: a 3-GPU job fits only if one moves."""
    qs = (Queue("d"), project("a", quota=6))
    small = [on(job("s0", "a"), ("n0", (0,))), on(job("s1", "a"), ("n1", (0,)))]
    return Snapshot(nodes(2, 3), qs, (*small, job("big", "a", g=3, t=5),
                                       job("big2", "a", g=3, t=6)), now=10)


def borrowed() -> Snapshot:
    """Project a borrowed all 4 GPUs; b (below its share) and a (above it) both wait."""
    qs = (Queue("d"), project("a", quota=2), project("b", quota=2))
    a = [on(job(f"a{i}", "a", t=i), ("n0", (i,)), started=i) for i in range(4)]
    waiting = (job("a9", "a", t=40), job("b0", "b", t=50), job("b1", "b", g=4, t=51))
    return Snapshot(nodes(1, 4), qs, (*a, *waiting), now=100.0)


@pytest.mark.parametrize("order", ORDERS)
def test_rollback_of_allocate_takes_back_every_reason(order: QueueOrder) -> None:
    qs = (Queue("d"), project("a", quota=1, limit=2))
    jobs = [job(f"a{i}", "a", t=i) for i in range(4)] + [job("huge", "a", g=9, t=9)]
    session = fresh(Snapshot(nodes(1, 8), qs, tuple(jobs)), order)
    before = state(session)
    with Statement(session.log):
        allocate(session)
        codes = {r.code for r in session.to_plan().pending.values()}
        assert codes == {PendingCode.QUEUE_LIMIT}  # the limit is checked before the size
    assert state(session) == before
    assert not session.reasons and not session.to_plan().pending


@pytest.mark.parametrize("order", ORDERS)
def test_rollback_of_consolidate_restores_reasons(order: QueueOrder) -> None:
    session = prepared(fragmented(), order, reclaim=False, preempt=False)
    big = session.by_id["big"]
    assert session.reason_of(big) is not None
    assert session.reason_of(big).code == PendingCode.NO_CAPACITY  # type: ignore[union-attr]
    before = state(session)
    with Statement(session.log):
        consolidate(session)
        assert big.status == BOUND and session.binds[big.idx].action == Action.CONSOLIDATE
        assert any(e.action is Action.CONSOLIDATE for e in session.evictions.values())
        assert reasons(session) != before[0]  # type: ignore[index]
    assert state(session) == before


@pytest.mark.parametrize("order", ORDERS)
def test_rollback_of_reclaim_restores_reasons_and_notes(order: QueueOrder) -> None:
    session = prepared(borrowed(), order)
    before = state(session)
    with Statement(session.log):
        reclaim(session)
        assert session.by_id["b0"].status == BOUND
        note = session.reason_of(session.by_id["a9"])
        assert note is not None and note.message.endswith("so it cannot reclaim")
    assert state(session) == before
    kept = session.reason_of(session.by_id["a9"])
    assert kept is not None and "cannot reclaim" not in kept.message


@pytest.mark.parametrize("order", ORDERS)
def test_rollback_of_preempt_restores_reasons(order: QueueOrder) -> None:
    qs = (Queue("d"), project("a", quota=2))
    low = [on(job(f"l{i}", "a", priority=1), ("n0", (i,))) for i in range(2)]
    session = prepared(Snapshot(nodes(1, 2), qs, (*low, job("h", "a", priority=9, t=5)),
                                now=10), order)
    before = state(session)
    with Statement(session.log):
        preempt(session)
        assert session.by_id["h"].status == BOUND
    assert state(session) == before


def test_displaced_reason_is_logged_and_rolled_back() -> None:
    qs = (Queue("d"), project("a", quota=2))
    session = fresh(Snapshot(nodes(1, 1), qs, (job("p", "a"), job("q", "a", t=1))))
    p = session.by_id["p"]
    own = PendingReason(PendingCode.NO_CAPACITY, "waiting")
    session.set_reason(p, own)
    with Statement(session.log):
        assert try_place(session, p, Action.ALLOCATE)
        assert p.idx not in session.reasons  # the bind took the job's own reason (logged)
        before = state(session)
        with Statement(session.log):
            session.evict(p, Action.PREEMPT, "test", "q")
            assert p.status == PENDING
            assert session.reasons[p.idx].code is PendingCode.DISPLACED
            assert "(preempt)" in session.reasons[p.idx].message
        assert state(session) == before
    # the bind is rolled back too: the reason it took away comes back
    assert p.status == PENDING and session.reasons[p.idx] is own


def test_reason_methods_log_only_changes() -> None:
    qs = (Queue("d"), project("a"))
    session = Session(Snapshot(nodes(1, 1), qs, (job("p", "a"), job("q", "a"))))
    p = session.by_id["p"]
    group = p.group
    assert group is not None
    r1 = PendingReason(PendingCode.NO_CAPACITY, "one")
    r2 = PendingReason(PendingCode.QUEUE_LIMIT, "two")
    log = session.log
    with Statement(log):
        session.clear_reason(p)  # nothing to clear: nothing logged
        session.set_group_reason(group, None)
        assert log.mark() == 0
        session.set_reason(p, r1)
        session.set_reason(p, r1)  # the same object again: no entry
        session.set_reason(p, r2)
        with Statement(log) as inner:
            session.set_group_reason(group, r1)
            session.clear_reason(p)
            assert log.mark() == 4
            assert session.reason_of(p) is r1 and session.reason_of(session.by_id["q"]) is r1
        assert session.reasons[p.idx] is r2 and group.reason is None
        with Statement(log) as inner:
            session.clear_reason(p)
            inner.commit()
        assert p.idx not in session.reasons and log.mark() == 3  # kept for the outer one
    assert not session.reasons and group.reason is None


def test_changes_outside_statements_are_final_and_not_kept() -> None:
    qs = (Queue("d"), project("a"))
    session = Session(Snapshot(nodes(1, 2), qs, (job("p", "a"), job("q", "a"))))
    p, q = session.by_id["p"], session.by_id["q"]
    session.set_reason(p, PendingReason(PendingCode.NO_CAPACITY, "one"))
    assert try_place(session, q, Action.ALLOCATE)
    assert session.log.mark() == 0  # nothing could roll these back
    with Statement(session.log) as st:
        assert try_place(session, p, Action.ALLOCATE)
        assert session.log.mark() > 0
        st.commit()
    assert session.log.mark() == 0 and p.status == q.status == BOUND
    assert p.idx not in session.reasons
