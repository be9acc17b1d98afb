"""Property tests: with the time-aware fair share on (random past usage, k and half-life),
every invariant of the core still holds, a second cycle evicts nothing (no ping-pong), and
the past never takes a guarantee away: a project's fair share stays at least what its quota
gives it without usage (the minimum of its quota and demand, where the tree's quotas fit)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairpool.scheduler import SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from tests.property.strategies import scenarios
from tests.property.test_invariants import check_invariants

FAST = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
configs = st.builds(SchedulerConfig, usage_k=st.sampled_from([0.5, 1.0, 5.0]),
                    usage_half_life_s=st.sampled_from([10.0, 3600.0]),
                    usage_window_s=st.sampled_from([None, 50.0]))


@st.composite
def with_usage(draw: st.DrawFn) -> Snapshot:
    snap = draw(scenarios())
    projects = [q.name for q in snap.queues if q.parent is not None]
    used = {p: draw(st.sampled_from([0.0, 10.0, 1e3, 1e5])) for p in projects
            if draw(st.booleans())}
    return replace(snap, usage_gpu_s=used)


@FAST
@given(with_usage(), configs)
def test_every_cycle_keeps_the_invariants_with_usage(snap: Snapshot,
                                                     cfg: SchedulerConfig) -> None:
    plan = schedule(snap, cfg)
    check_invariants(snap, plan)
    again = schedule(apply_plan(snap, plan), cfg)
    assert not again.evictions, (plan.evictions, again.evictions)


@FAST
@given(with_usage(), configs)
def test_the_past_never_takes_a_guarantee_away(snap: Snapshot, cfg: SchedulerConfig) -> None:
    without = schedule(replace(snap, usage_gpu_s={}), cfg).fair_shares
    with_past = schedule(snap, cfg).fair_shares
    for q in snap.queues:
        if q.parent is None:
            continue
        floor = min(q.quota.gpu, without[q.name].gpu)
        assert with_past[q.name].gpu >= floor or sum(
            p.quota.gpu for p in snap.queues if p.parent is None) > sum(
            n.capacity.gpu for n in snap.nodes), (q.name, floor, with_past[q.name])
