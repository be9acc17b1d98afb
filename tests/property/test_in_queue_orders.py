"""Property tests: with the fifo and attained-service orders inside projects (and the pool
default), every invariant of the core still holds (no over-commit, gangs whole, limits,
protected jobs kept, a reason for every waiting job, no ping-pong), and an order preemption
stays inside its bounds: a victim of the preemptor's own project and priority, at a higher
level of service, running for at least ``order_min_run_s``, at most ``max_order_preemptions``
of them per cycle."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairpool.domain import Job, JobState, Resources, WorkerPlacement, WorkerRequest
from fairpool.domain.queue import InQueueOrder
from fairpool.scheduler import SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from fairpool.scheduler.service_levels import level, running_level
from tests.property.strategies import clusters, queue_trees, scenarios
from tests.property.test_codes_and_reasons import assert_actions_roll_back
from tests.property.test_invariants import check_invariants

FAST = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: (weighted toward what exercises order preemption)
ORDERS = st.sampled_from([None, *InQueueOrder, InQueueOrder.ATTAINED, InQueueOrder.ATTAINED])

configs = st.builds(
    SchedulerConfig,
    job_order=st.sampled_from([*InQueueOrder, InQueueOrder.ATTAINED]),
    service_levels_gpu_s=st.sampled_from([(10.0, 100.0), (5.0,), (10.0, 100.0),
                                          (3600.0, 36000.0)]),
    promote_after=st.sampled_from([0.0, 0.5, 2.0]),
    max_order_preemptions=st.sampled_from([0, 1, 8, 8]),
    order_min_run_s=st.sampled_from([0.0, 15.0, 0.0, 600.0]),
)


@st.composite
def ordered(draw: st.DrawFn) -> Snapshot:
    """A reachable state whose projects choose orders and whose jobs have had service."""
    snap = draw(st.one_of(scenarios(), full(), full()))
    queues = tuple(q if q.parent is None else replace(q, job_order=draw(ORDERS))
                   for q in snap.queues)
    served = st.sampled_from([0.0, 5.0, 60.0, 500.0, 4000.0])
    jobs = tuple(replace(j, attained_gpu_s=draw(served),
                         queued_at=draw(st.sampled_from([None, 0.0, 15.0])))
                 if j.pending else j for j in snap.jobs)
    return replace(snap, queues=queues, jobs=jobs)


@st.composite
def full(draw: st.DrawFn) -> Snapshot:
    """Every GPU held by a 1-GPU job that started at some time, and jobs waiting behind them
    in the same projects: the state where the order decides who gets the next GPU and may
    preempt. (One priority: preemption by priority followed by a reclaim is the known case of
    tests/property/test_found_cases.py.)"""
    nodes = draw(clusters())
    queues = tuple(replace(q, limit=Resources.INFINITE)  # (so that the state is reachable)
                   for q in draw(queue_trees(sum(len(n.devices) for n in nodes))))
    projects = [q.name for q in queues if q.parent is not None][:2]  # (so that jobs meet)
    now = 200.0
    running = [Job(f"r{n.name}-{d.index}", draw(st.sampled_from(projects)),
                   WorkerRequest(gpus=1), submit_time=0.0, state=JobState.RUNNING,
                   placements=(WorkerPlacement(0, n.name, (d.index,)),),
                   started_at=draw(st.sampled_from([0.0, 150.0, 195.0])))
               for n in nodes for d in n.devices]
    waiting = [Job(f"w{i}", draw(st.sampled_from(projects)),
                   WorkerRequest(gpus=draw(st.sampled_from([1, 1, 2]))), submit_time=100.0 + i)
               for i in range(draw(st.integers(1, 5)))]
    return Snapshot(nodes, queues, tuple(running + waiting), now=now, generation=1)


@FAST
@given(ordered(), configs)
def test_every_cycle_keeps_the_invariants_in_every_order(snap: Snapshot,
                                                         cfg: SchedulerConfig) -> None:
    plan = schedule(snap, cfg)
    check_invariants(snap, plan)
    by_id = {j.id: j for j in snap.jobs}
    order_of = {q.name: q.job_order or cfg.job_order for q in snap.queues}
    orders = [e for e in plan.evictions if e.order]
    assert len(orders) <= cfg.max_order_preemptions
    for e in orders:
        victim, preemptor = by_id[e.job_id], by_id[e.for_job or ""]
        assert victim.project == preemptor.project and victim.priority == preemptor.priority
        assert order_of[victim.project] == InQueueOrder.ATTAINED
        assert victim.started_at is not None
        assert snap.now - victim.started_at >= cfg.order_min_run_s
        gpus = sum(p.share * len(p.devices) for p in victim.placements) / 1000
        thresholds = cfg.service_levels_gpu_s
        assert level(preemptor.attained_gpu_s, thresholds) < running_level(
            victim, gpus, snap.now, thresholds)


@FAST
@given(ordered(), configs)
def test_no_ping_pong_in_every_order(snap: Snapshot, cfg: SchedulerConfig) -> None:
    """No job placed by a cycle is evicted by the next; and unless the first cycle used up its
    order preemptions (the bound spreads them over cycles), the next evicts nothing."""
    plan = schedule(snap, cfg)
    again = schedule(apply_plan(snap, plan), cfg)
    bound = {b.job_id for b in plan.binds}
    assert not {e.job_id for e in again.evictions} & bound, (plan.evictions, again.evictions)
    if sum(1 for e in plan.evictions if e.order) < cfg.max_order_preemptions:
        assert not again.evictions, (plan.evictions, again.evictions)


@FAST
@given(ordered(), configs)
def test_a_rollback_takes_order_preemptions_back(snap: Snapshot, cfg: SchedulerConfig) -> None:
    assert_actions_roll_back(snap, cfg)
