"""Reservations and backfill for large gangs, on hand-worked traces.

The trace of most tests: one node n0 with 4 GPUs, project a. Job A holds GPU 0 until t=100 and
job B GPU 1 until t=200 (by their max runtimes). Gang G (4 workers × 1 GPU) waits since t=0; at
t=10 it has waited past the bound (5 s), so it reserves all four GPUs, to start at t=200. Two
1-GPU jobs wait behind it: L (max runtime 500, submitted first) and S (max runtime 50), of the
same shape, so in the same group. S ends at t=60, before the start: it backfills on a reserved
GPU. L would end at t=510: it waits with the RESERVED reason. At t=200 G starts.
"""

from __future__ import annotations

from dataclasses import replace

from fairpool.domain import Job, JobState, Queue, WorkerPlacement
from fairpool.scheduler import PendingCode, SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from tests.helpers import job, nodes, project

CFG = SchedulerConfig(reserve_after_s=5.0)
QUEUES = (Queue("d"), project("a", quota=4))


def on(j: Job, node: str, dev: int, started: float = 0.0) -> Job:
    return replace(j, state=JobState.RUNNING, placements=(WorkerPlacement(0, node, (dev,)),),
                   started_at=started)


def trace(now: float = 10.0, short: float | None = 50.0) -> Snapshot:
    jobs = (
        on(job("A", "a", max_runtime_s=100.0), "n0", 0),
        on(job("B", "a", max_runtime_s=200.0), "n0", 1),
        job("G", "a", workers=4, t=0.0),
        job("L", "a", t=1.0, max_runtime_s=500.0),
        job("S", "a", t=2.0, max_runtime_s=short),
    )
    return Snapshot(nodes(1, 4), QUEUES, jobs, now=now)


def without(snap: Snapshot, *ids: str, now: float) -> Snapshot:
    """The snapshot at ``now`` once the jobs ``ids`` have ended."""
    return replace(snap, jobs=tuple(j for j in snap.jobs if j.id not in ids), now=now)


def test_a_reservation_is_honoured_and_a_short_job_backfills() -> None:
    plan = schedule(trace(), CFG)
    assert [b.job_id for b in plan.binds] == ["S"]  # the short job backfills
    assert plan.bind_for("S").placements[0].devices[0] in (2, 3)  # type: ignore[union-attr]
    g, long = plan.pending["G"], plan.pending["L"]
    assert g.message == ("reserved n0 for this job; expected to start in about 3 min when "
                         "jobs A, B end (by their max runtime)")
    assert long.code == PendingCode.RESERVED
    assert long.message.startswith("waiting: GPUs on n0 (GPUs ")
    assert "are reserved for job G (a 4-GPU gang waiting for 10 s, expected to start in " \
           "about 3 min)" in long.message
    assert long.message.endswith("this job's max runtime (8 min) ends after that: a job with "
                                 "max runtime under 3 min could run now")
    # t=60: S has ended; t=100: A has ended. G still waits for B, L still may not take its GPUs
    snap = without(apply_plan(trace(), plan), "S", now=60.0)
    snap = without(snap, "A", now=100.0)
    plan = schedule(snap, CFG)
    assert not plan.binds
    assert plan.pending["L"].code == PendingCode.RESERVED
    assert plan.pending["G"].message.endswith(
        "expected to start in about 2 min when job B ends (by its max runtime)")
    # t=200: B has ended; the gang starts (its reservation is consumed), L waits for room
    plan = schedule(without(snap, "B", now=200.0), CFG)
    assert [b.job_id for b in plan.binds] == ["G"]
    assert plan.pending["L"].code == PendingCode.NO_CAPACITY


def test_without_reservations_the_long_job_takes_the_gangs_gpus() -> None:
    plan = schedule(trace(), SchedulerConfig())
    assert {b.job_id for b in plan.binds} == {"L", "S"}  # G would start at t=510, not 200


def test_a_gang_that_has_not_waited_long_enough_reserves_nothing() -> None:
    plan = schedule(trace(now=3.0), CFG)
    assert {b.job_id for b in plan.binds} == {"L", "S"}
    assert plan.valid_until == 5.0  # the cycle is due again when G passes the bound


def test_a_backfill_that_fits_by_its_projects_estimate() -> None:
    snap = trace(short=None)  # S declares no max runtime: its project's history is used
    plan = schedule(replace(snap, runtime_estimates={"a": 150.0}), CFG)
    assert [b.job_id for b in plan.binds] == ["S"]  # 10 + 150 <= 200
    plan = schedule(replace(snap, runtime_estimates={"a": 300.0}), CFG)
    assert not plan.binds
    assert plan.pending["S"].message.endswith(
        "project a's expected run time (5 min) ends after that: a job with max runtime under "
        "3 min could run now")
    plan = schedule(snap, CFG)  # no max runtime, no estimate: it may not backfill
    assert "this job declares no max runtime and project a has no expected run time" in \
        plan.pending["S"].message


def test_unknown_ends_make_no_reservation() -> None:
    snap = trace()
    jobs = tuple(replace(j, max_runtime_s=None) if j.id in ("A", "B") else j for j in snap.jobs)
    plan = schedule(replace(snap, jobs=jobs), CFG)
    assert {b.job_id for b in plan.binds} == {"L", "S"}
    assert plan.pending["G"].code == PendingCode.NO_CAPACITY


def test_the_choice_is_stable_from_cycle_to_cycle() -> None:
    first = schedule(trace(), CFG)
    again = schedule(trace(), CFG)
    assert dict(first.pending) == dict(again.pending)
    assert first.binds == again.binds
    # once S runs on a reserved GPU, the next cycle keeps the same devices and start
    snap = apply_plan(trace(), first, now=20.0)
    plan = schedule(snap, CFG)
    assert not plan.binds
    assert plan.pending["G"].message == ("reserved n0 for this job; expected to start in about "
                                         "3 min when jobs S, A, B end (by their max runtime)")
    assert plan.pending["L"].code == PendingCode.RESERVED
    assert "are reserved for job G (a 4-GPU gang waiting for 20 s" in plan.pending["L"].message


def test_the_gang_reserves_the_devices_that_come_free_first_on_the_fullest_node() -> None:
    # n0: 4 GPUs, 2 held until t=100; n1: 4 GPUs, all held until t=300. A 2-worker gang of
    # 2 GPUs each starts at t=100 on n0 (its two busy GPUs and its two free ones).
    running = [on(job(f"r{i}", "a", max_runtime_s=100.0), "n0", i) for i in range(2)]
    running += [on(job(f"q{i}", "a", max_runtime_s=300.0), "n1", i) for i in range(4)]
    snap = Snapshot(nodes(2, 4), (Queue("d"), project("a", quota=8)),
                    (*running, job("G", "a", g=2, workers=2), job("x", "a", t=1,
                                                                   max_runtime_s=1000.0)),
                    now=10.0)
    plan = schedule(snap, CFG)
    assert plan.pending["G"].message.startswith("reserved n0 for this job; expected to start "
                                                "in about 2 min when jobs r0, r1 end")
    assert plan.pending["x"].code == PendingCode.RESERVED


def test_at_most_the_configured_number_of_reservations() -> None:
    # two 2-GPU nodes, one GPU of each busy; two gangs of 2 workers × 2 GPUs need both nodes:
    # G0 from t=200, then G1 once G0 has run its 50 s
    running = [on(job(f"r{i}", "a", max_runtime_s=100.0 * (i + 1)), f"n{i}", 0)
               for i in range(2)]
    gangs = [job(f"G{i}", "a", g=2, workers=2, t=float(i), max_runtime_s=50.0)
             for i in range(2)]
    snap = Snapshot(nodes(2, 2), (Queue("d"), project("a", quota=4)), (*running, *gangs),
                    now=10.0)
    two = schedule(snap, replace(CFG, max_reservations=2))
    one = schedule(snap, replace(CFG, max_reservations=1))
    assert two.pending["G0"].message == ("reserved n0, n1 for this job; expected to start in "
                                         "about 3 min when jobs r0, r1 end (by their max "
                                         "runtime)")
    assert two.pending["G1"].message == ("reserved n0, n1 for this job; expected to start in "
                                         "about 4 min when job G0 ends (by its max runtime)")
    assert one.pending["G0"] == two.pending["G0"]
    assert "reserved" not in one.pending["G1"].message
