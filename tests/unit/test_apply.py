"""apply_plan moves jobs only along edges of the state table, through moved(): every edge the
table forbids is refused, and each kind of plan entry takes exactly the path it should."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

import fairpool.scheduler.apply as apply_module
from fairpool.domain import Job, JobState, Queue, WorkerPlacement
from fairpool.domain.job import moved
from fairpool.domain.states import HOLDING_STATES, TRANSITIONS, IllegalTransition
from fairpool.scheduler import Bind, Eviction, Plan, SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from fairpool.scheduler.codes import Action
from tests.helpers import job, nodes, project

S = JobState
ON_N0 = (WorkerPlacement(0, "n0", (0,)),)
ON_N1 = (WorkerPlacement(0, "n1", (0,)),)
Edge = tuple[str, JobState, JobState]


def in_state(state: JobState, jid: str = "j") -> Job:
    j = job(jid, "p")
    if state in HOLDING_STATES:
        return replace(j, state=state, placements=ON_N0, started_at=0.0)
    return replace(j, state=state)


FORBIDDEN = [(a, b) for a in S for b in S if b not in TRANSITIONS[a]]
ALLOWED = [(a, b) for a in S for b in TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_moved_refuses_every_edge_the_table_forbids(current: JobState, target: JobState) -> None:
    with pytest.raises(IllegalTransition):
        moved(in_state(current), target, at=1.0, placements=ON_N1)


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_moved_takes_every_edge_the_table_allows(current: JobState, target: JobState) -> None:
    after = moved(in_state(current), target, at=5.0, placements=ON_N1)
    assert after.state == target
    assert bool(after.placements) == (target in HOLDING_STATES)
    if target == S.ADMITTED:
        assert after.placements == ON_N1 and after.started_at is None
    if target == S.RUNNING:
        assert after.started_at == 5.0


def test_the_forbidden_edges_include_the_ones_apply_plan_used_to_take() -> None:
    assert (S.QUEUED, S.RUNNING) in FORBIDDEN and (S.REQUEUED, S.RUNNING) in FORBIDDEN
    assert (S.RUNNING, S.QUEUED) in FORBIDDEN and (S.ADMITTED, S.RUNNING) in FORBIDDEN


@pytest.fixture
def edges(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Edge]]:
    """Every move apply_plan makes, as (job, from, to)."""
    seen: list[Edge] = []

    def recording(j: Job, target: JobState, *, at: float,
                  placements: tuple[WorkerPlacement, ...] | None = None) -> Job:
        seen.append((j.id, j.state, target))
        return moved(j, target, at=at, placements=placements)

    monkeypatch.setattr(apply_module, "moved", recording)
    yield seen


def snapshot(*jobs: Job) -> Snapshot:
    return Snapshot(nodes(2, 1), (Queue("d"), project("p")), jobs, now=7.0, generation=3)


def test_a_bind_admits_starts_and_runs_the_job(edges: list[Edge]) -> None:
    for waiting in (S.QUEUED, S.REQUEUED):
        edges.clear()
        plan = Plan(binds=[Bind("j", ON_N1, Action.ALLOCATE)])
        after = apply_plan(snapshot(in_state(waiting)), plan)
        (j,) = after.jobs
        assert (j.state, j.placements, j.started_at) == (S.RUNNING, ON_N1, 7.0)
        assert edges == [("j", waiting, S.ADMITTED), ("j", S.ADMITTED, S.STARTING),
                         ("j", S.STARTING, S.RUNNING)]
        assert after.generation == 4 and after.now == 7.0


def test_an_eviction_stops_a_started_job_and_requeues_it(edges: list[Edge]) -> None:
    for started in (S.RUNNING, S.STARTING):
        edges.clear()
        plan = Plan(evictions=[Eviction("j", Action.RECLAIM, "reclaimed")])
        (j,) = apply_plan(snapshot(in_state(started)), plan).jobs
        assert (j.state, j.placements, j.started_at) == (S.REQUEUED, (), None)
        assert edges == [("j", started, S.STOPPING), ("j", S.STOPPING, S.REQUEUED)]


def test_an_admitted_job_that_is_evicted_goes_straight_back(edges: list[Edge]) -> None:
    plan = Plan(evictions=[Eviction("j", Action.PREEMPT, "preempted")])
    (j,) = apply_plan(snapshot(in_state(S.ADMITTED)), plan).jobs
    assert j.state == S.REQUEUED and edges == [("j", S.ADMITTED, S.REQUEUED)]


def test_a_move_is_an_eviction_then_a_bind(edges: list[Edge]) -> None:
    plan = Plan(binds=[Bind("j", ON_N1, Action.CONSOLIDATE)],
                evictions=[Eviction("j", Action.CONSOLIDATE, "moved")])
    (j,) = apply_plan(snapshot(in_state(S.RUNNING)), plan, now=9.0).jobs
    assert (j.state, j.placements, j.started_at) == (S.RUNNING, ON_N1, 9.0)
    assert [(a, b) for _, a, b in edges] == [
        (S.RUNNING, S.STOPPING), (S.STOPPING, S.REQUEUED), (S.REQUEUED, S.ADMITTED),
        (S.ADMITTED, S.STARTING), (S.STARTING, S.RUNNING)]


def test_untouched_jobs_keep_their_order_and_identity() -> None:
    jobs = (in_state(S.RUNNING, "r"), in_state(S.QUEUED, "q"), in_state(S.STOPPING, "s"))
    plan = Plan(binds=[Bind("q", ON_N1, Action.ALLOCATE)])
    after = apply_plan(snapshot(*jobs), plan)
    assert [j.id for j in after.jobs] == ["r", "q", "s"]
    assert after.jobs[0] is jobs[0] and after.jobs[2] is jobs[2]
    same = snapshot(*jobs)
    assert apply_plan(same, Plan()).jobs is same.jobs  # an empty plan changes no job


def test_plans_that_ask_for_a_forbidden_edge_are_refused() -> None:
    evict_waiting = Plan(evictions=[Eviction("j", Action.RECLAIM, "x")])
    with pytest.raises(IllegalTransition, match="from queued to"):
        apply_plan(snapshot(in_state(S.QUEUED)), evict_waiting)
    bind_running = Plan(binds=[Bind("j", ON_N1, Action.ALLOCATE)])
    with pytest.raises(IllegalTransition, match="from running to admitted"):
        apply_plan(snapshot(in_state(S.RUNNING)), bind_running)
    with pytest.raises(IllegalTransition, match="from stopping to admitted"):
        apply_plan(snapshot(in_state(S.STOPPING)), bind_running)
    with pytest.raises(ValueError, match="not there: ghost"):
        apply_plan(snapshot(in_state(S.QUEUED)), Plan(binds=[Bind("ghost", ON_N1,
                                                                  Action.ALLOCATE)]))


def test_cycles_through_apply_plan_take_only_table_edges(edges: list[Edge]) -> None:
    """Real plans (allocate, reclaim, preempt, consolidate) over a few cycles."""
    qs = (Queue("d"), project("a", quota=1), project("b", quota=3))
    jobs = [job(f"a{i}", "a", t=i) for i in range(4)]
    snap = Snapshot(nodes(2, 2), qs, tuple(jobs), now=0.0)
    for step in range(6):
        plan = schedule(snap, SchedulerConfig())
        snap = apply_plan(snap, plan, now=float(step * 100))
        if step == 1:  # b's jobs arrive: b reclaims its quota from a
            snap = replace(snap, jobs=snap.jobs + tuple(job(f"b{i}", "b", t=150 + i)
                                                        for i in range(3)))
    assert edges and all(b in TRANSITIONS[a] for _, a, b in edges)
    assert any(b == S.STOPPING for _, _, b in edges)  # something was evicted
    by_job: dict[str, list[tuple[JobState, JobState]]] = {}
    for jid, a, b in edges:
        path = by_job.setdefault(jid, [])
        assert not path or path[-1][1] == a  # each job's moves chain: no state set around them
        path.append((a, b))
