"""The attained-service order inside a project, on hand-worked traces.

Project a (quota 2, attained order) on one node with 2 GPUs; the default levels: level 0 below
1 GPU-hour (3,600 GPU-s), level 1 below 10. At t=4,000: R1 has run 1 GPU since t=0 (4,000 GPU-s:
level 1), R2 since t=3,000 (1,000 GPU-s: level 0), and W, submitted at t=3,900, waits (level 0).
W preempts R1 (a higher level, running longer than order_min_run_s) and not R2 (its own level).
R1 goes back to waiting with 4,000 GPU-s attained (level 1): a new job Y goes before it, until
R1 has waited twice as long as it ran (8,000 s, so from t=12,000) and is promoted to level 0;
then it is first (its submit time is the earliest). Promoted, it still does not evict a job of
level 1, as it would if promotion gave it the right to (two long jobs taking turns).
"""

from __future__ import annotations

from dataclasses import replace

from fairpool.domain import Job, JobState, Queue, WorkerPlacement
from fairpool.domain.queue import InQueueOrder
from fairpool.scheduler import SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.session import Session
from tests.helpers import job, nodes, project

ATTAINED = InQueueOrder.ATTAINED
QUEUES = (Queue("d"), replace(project("a", quota=2), job_order=ATTAINED))


def on(j: Job, dev: int, started: float) -> Job:
    return replace(j, state=JobState.RUNNING, placements=(WorkerPlacement(0, "n0", (dev,)),),
                   started_at=started)


def requeued(j: Job, attained: float, at: float) -> Job:
    """``j`` waiting again since ``at`` after runs that had ``attained`` GPU-seconds."""
    return replace(j, attained_gpu_s=attained, queued_at=at)


def test_a_less_served_job_preempts_a_more_served_one_of_its_project() -> None:
    jobs = (on(job("R1", "a", t=0.0), 0, 0.0), on(job("R2", "a", t=1.0), 1, 3000.0),
            job("W", "a", t=3900.0))
    plan = schedule(Snapshot(nodes(1, 2), QUEUES, jobs, now=4000.0))
    assert [e.job_id for e in plan.evictions] == ["R1"]
    e = plan.evictions[0]
    assert e.order and e.cause == "order" and e.for_job == "W"
    assert e.reason == ("preempted by job W, which has received less GPU time (service level "
                        "0 < 1), in project a (attained-service order)")
    # the same trace in the priority order (the default): nothing is evicted
    plain = (Queue("d"), project("a", quota=2))
    assert not schedule(Snapshot(nodes(1, 2), plain, jobs, now=4000.0)).evictions


def test_a_run_shorter_than_the_minimum_is_not_preempted_for_the_order() -> None:
    # R1 has had 4,000 GPU-s over earlier runs but its current run began 100 s ago
    r1 = replace(on(job("R1", "a"), 0, 3900.0), attained_gpu_s=3900.0)
    jobs = (r1, on(job("R2", "a", t=1.0), 1, 3000.0), job("W", "a", t=3950.0))
    snap = Snapshot(nodes(1, 2), QUEUES, jobs, now=4000.0)
    assert not schedule(snap).evictions
    assert [e.job_id for e in schedule(snap, SchedulerConfig(order_min_run_s=50)).evictions] \
        == ["R1"]


def test_a_job_that_waited_long_is_promoted_ahead_of_new_ones() -> None:
    r1 = requeued(job("R1", "a", t=0.0), attained=4000.0, at=4000.0)

    def first(now: float) -> list[str]:
        busy = on(job("B", "a", t=1.0), 1, now - 700.0)  # level 0: never a victim
        y = job("Y", "a", t=now - 100.0)
        plan = schedule(Snapshot(nodes(1, 2), QUEUES, (busy, r1, y), now=now))
        assert not plan.evictions
        return [b.job_id for b in plan.binds]

    assert first(11_000.0) == ["Y"]  # waited 7,000 s < 2 × 4,000: level 1, behind Y
    assert first(12_100.0) == ["R1"]  # waited 8,100 s: promoted, and submitted first
    assert first(12_100.0) == ["R1"]
    off = SchedulerConfig(promote_after=0)
    busy, y = on(job("B", "a", t=1.0), 1, 11_400.0), job("Y", "a", t=12_000.0)
    plan = schedule(Snapshot(nodes(1, 2), QUEUES, (busy, r1, y), now=12_100.0), off)
    assert [b.job_id for b in plan.binds] == ["Y"]  # no promotion: less service first


def test_a_promoted_job_does_not_evict_for_its_place() -> None:
    r1 = requeued(job("R1", "a", t=0.0), attained=4000.0, at=4000.0)
    long = [on(job(f"L{i}", "a", t=1.0 + i), i, 0.0) for i in range(2)]  # level 1 at t=12,100
    plan = schedule(Snapshot(nodes(1, 2), QUEUES, (*long, r1), now=12_100.0))
    assert not plan.evictions and not plan.binds
    y = job("Y", "a", t=12_000.0)  # a new job, level 0, does
    plan = schedule(Snapshot(nodes(1, 2), QUEUES, (*long, r1, y), now=12_100.0))
    assert [e.job_id[0] for e in plan.evictions] == ["L"] and plan.bind_for("Y") is not None


def test_order_preemptions_are_bounded_and_counted_per_cycle() -> None:
    long = [on(job(f"L{i}", "a", t=float(i)), i, 0.0) for i in range(2)]
    new = [job(f"N{i}", "a", t=5000.0 + i) for i in range(2)]
    snap = Snapshot(nodes(1, 2), QUEUES, (*long, *new), now=6000.0)
    assert len(schedule(snap).evictions) == 2
    one = SchedulerConfig(max_order_preemptions=1)
    plan = schedule(snap, one)
    assert len(plan.evictions) == 1 and plan.evictions[0].order
    session = Session(snap, one)
    from fairpool.scheduler.actions.preempt import preempt

    preempt(session)
    assert session.order_preemptions == 1


def test_priority_still_preempts_past_the_bound_and_fifo_ignores_levels() -> None:
    long = [on(job(f"L{i}", "a", t=float(i)), i, 0.0) for i in range(2)]
    urgent = job("U", "a", t=5000.0, priority=90)
    plan = schedule(Snapshot(nodes(1, 2), QUEUES, (*long, urgent), now=6000.0),
                    SchedulerConfig(max_order_preemptions=0))
    assert len(plan.evictions) == 1 and not plan.evictions[0].order
    assert plan.evictions[0].cause == "preempt"
    fifo = (Queue("d"), replace(project("a", quota=2), job_order=InQueueOrder.FIFO))
    new = job("N", "a", t=5000.0)
    assert not schedule(Snapshot(nodes(1, 2), fifo, (*long, new), now=6000.0)).evictions


def test_the_pool_default_applies_to_projects_that_set_none() -> None:
    plain = (Queue("d"), project("a", quota=2))
    jobs = (on(job("R1", "a", t=0.0), 0, 0.0), on(job("R2", "a", t=1.0), 1, 3000.0),
            job("W", "a", t=3900.0))
    snap = Snapshot(nodes(1, 2), plain, jobs, now=4000.0)
    assert [e.job_id for e in schedule(snap, SchedulerConfig(job_order=ATTAINED)).evictions] \
        == ["R1"]


def test_a_reused_plan_ends_when_the_order_would_decide_differently() -> None:
    """R runs alone on the only GPU from t=0, W waits: at t=100 R has had 100 GPU-s (level 0)
    and ran less than order_min_run_s: nothing to do, and the plan holds until R's run reaches
    1,800 s. At t=5,000 (level 1, long enough) the same generation is not reused: W preempts."""
    from fairpool.scheduler import Scheduler

    queues = (Queue("d"), replace(project("a", quota=1), job_order=ATTAINED))
    jobs = (on(job("R", "a"), 0, 0.0), job("W", "a", t=50.0))
    scheduler = Scheduler()
    first = scheduler.cycle(Snapshot(nodes(1, 1), queues, jobs, now=100.0, generation=5))
    assert not first.evictions and first.valid_until == 1800.0
    later = scheduler.cycle(Snapshot(nodes(1, 1), queues, jobs, now=5000.0, generation=5))
    assert not later.reused and [e.job_id for e in later.evictions] == ["R"]
    # promotion is a time too: a requeued job that ran 1,000 s is promoted at 2,000 s of wait
    back = requeued(job("B", "a", t=0.0), attained=1000.0, at=3000.0)
    plan = scheduler.cycle(Snapshot(nodes(1, 1), queues, (on(job("R", "a"), 0, 4900.0), back),
                                    now=4950.0, generation=6))
    assert plan.valid_until == min(4900.0 + 1800.0, 3000.0 + 2 * 1000.0)
