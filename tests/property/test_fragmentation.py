"""Property tests: with fragmentation-aware placement of fractions (Strategy.FRAGMENTATION),
every cycle keeps the invariants of the core (no device over-committed, gangs whole, limits,
protected jobs kept, a reason for every waiting job), gives the same plan for the same
snapshot, does not ping-pong, and rolls back exactly."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairpool.scheduler import SchedulerConfig, Snapshot, Strategy, schedule
from fairpool.scheduler.apply import apply_plan
from fairpool.scheduler.plan import Plan
from tests.property.strategies import clusters, jobs, queue_trees, scenarios
from tests.property.test_codes_and_reasons import assert_actions_roll_back
from tests.property.test_invariants import check_invariants

FAST = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FRAGMENTATION = SchedulerConfig(strategy=Strategy.FRAGMENTATION)


@st.composite
def fragmented(draw: st.DrawFn) -> Snapshot:
    """A state the new strategy itself reached: a first workload placed by it, then arrivals
    (so that partly used devices are where fragmentation put them, not bin-pack)."""
    nodes = draw(clusters())
    queues = draw(queue_trees(sum(len(n.devices) for n in nodes)))
    projects = [q.name for q in queues if q.parent is not None]
    first = draw(jobs(projects, 0, draw(st.integers(0, 12)), 0.0))
    snap = Snapshot(nodes, queues, tuple(first), now=0.0, generation=1)
    snap = apply_plan(snap, schedule(snap, FRAGMENTATION), now=0.0)
    second = draw(jobs(projects, 100, draw(st.integers(0, 8)), 10.0))
    return replace(snap, jobs=snap.jobs + tuple(second), now=draw(st.sampled_from([20.0, 100.0])))


states = st.one_of(scenarios(), fragmented())


def same(a: Plan, b: Plan) -> bool:
    return (a.binds, a.evictions, dict(a.pending), a.fair_shares, a.allocated) == (
        b.binds, b.evictions, dict(b.pending), b.fair_shares, b.allocated)


@FAST
@given(states)
def test_every_cycle_keeps_the_invariants_with_fragmentation(snap: Snapshot) -> None:
    plan = schedule(snap, FRAGMENTATION)
    check_invariants(snap, plan)
    # the same snapshot (and an equal one, built anew) gives the same plan
    assert same(plan, schedule(snap, FRAGMENTATION))
    assert same(plan, schedule(replace(snap, jobs=tuple(snap.jobs)), FRAGMENTATION))


@FAST
@given(states)
def test_no_ping_pong_with_fragmentation(snap: Snapshot) -> None:
    plan = schedule(snap, FRAGMENTATION)
    again = schedule(apply_plan(snap, plan), FRAGMENTATION)
    assert not again.evictions, (plan.evictions, again.evictions)


@FAST
@given(states)
def test_actions_roll_back_with_fragmentation(snap: Snapshot) -> None:
    assert_actions_roll_back(snap, FRAGMENTATION)
