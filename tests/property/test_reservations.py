"""Property tests: with reservations and backfill on, every invariant of the core still holds (no
over-commit, gangs whole, limits, protected jobs kept, a reason for every waiting job, no
ping-pong, exact rollback), and a job is told it waits for a reservation only for a gang that is
still waiting."""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairpool.domain import Job, WorkerRequest
from fairpool.scheduler import PendingCode, SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from tests.property.strategies import scenarios
from tests.property.test_codes_and_reasons import assert_actions_roll_back
from tests.property.test_invariants import check_invariants

FAST = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

configs = st.builds(
    SchedulerConfig,
    reserve_after_s=st.sampled_from([0.0, 5.0, 50.0]),
    reserve_min_gpus=st.sampled_from([2, 3, 8]),
    max_reservations=st.sampled_from([1, 2, 4]),
    lend_idle=st.booleans(),
)


@st.composite
def with_runtimes(draw: st.DrawFn) -> Snapshot:
    """A reachable state whose jobs declare max runtimes (or not) and whose projects may have
    an expected run time, so that reservations are made and backfill is tried."""
    snap = draw(scenarios())
    runtimes = st.sampled_from([90.0, 30.0, 400.0, 5.0, None])
    jobs = tuple(replace(j, max_runtime_s=draw(runtimes)) for j in snap.jobs)
    projects = [q.name for q in snap.queues if q.parent is not None]
    estimates = {p: draw(st.sampled_from([10.0, 200.0])) for p in projects
                 if draw(st.booleans())}
    # gangs waiting since the start, then small jobs behind them, so that reservations are made
    # and backfill is tried in most examples
    extra = []
    for i in range(draw(st.integers(1, 2))):
        extra.append(Job(f"g{i}", draw(st.sampled_from(projects)),
                         WorkerRequest(gpus=1),
                         workers=draw(st.sampled_from([2, 3])), submit_time=float(i),
                         max_runtime_s=draw(runtimes)))
    for i in range(draw(st.integers(0, 3))):
        extra.append(Job(f"s{i}", draw(st.sampled_from(projects)), WorkerRequest(gpus=1),
                         submit_time=5.0 + i, max_runtime_s=draw(runtimes)))
    return replace(snap, jobs=jobs + tuple(extra), runtime_estimates=estimates)


@FAST
@given(with_runtimes(), configs)
def test_every_cycle_keeps_the_invariants_with_reservations(snap: Snapshot,
                                                            cfg: SchedulerConfig) -> None:
    plan = schedule(snap, cfg)
    check_invariants(snap, plan)
    bound = {b.job_id for b in plan.binds}
    for job_id, reason in plan.pending.items():
        if reason.code == PendingCode.RESERVED:
            assert job_id not in bound
            named = re.search(r"reserved for jobs? (.+?) \(", reason.message)
            assert named is not None, reason
            assert not set(named.group(1).split(", ")) & bound, reason


@FAST
@given(with_runtimes(), configs)
def test_no_ping_pong_with_reservations(snap: Snapshot, cfg: SchedulerConfig) -> None:
    plan = schedule(snap, cfg)
    again = schedule(apply_plan(snap, plan), cfg)
    assert not again.evictions, (plan.evictions, again.evictions)


@FAST
@given(with_runtimes(), configs)
def test_a_rollback_takes_reservations_back(snap: Snapshot, cfg: SchedulerConfig) -> None:
    assert_actions_roll_back(snap, cfg)


@FAST
@given(with_runtimes(), configs)
def test_the_same_snapshot_gives_the_same_plan(snap: Snapshot, cfg: SchedulerConfig) -> None:
    first, again = schedule(snap, cfg), schedule(snap, cfg)
    assert first.binds == again.binds and first.evictions == again.evictions
    assert dict(first.pending) == dict(again.pending)
