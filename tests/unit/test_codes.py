"""The scheduler's codes: their string values are stored (reason_code) and exported (Prometheus
labels), so they are pinned here; and every code a cycle emits is an enum member."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

from fairpool.domain import Job, JobState, NodeSelector, Queue, WorkerPlacement
from fairpool.domain import WorkerRequest as Req
from fairpool.scheduler import (
    Action,
    PendingCode,
    PlacementCode,
    QueueOrder,
    SchedulerConfig,
    Snapshot,
    schedule,
)
from fairpool.scheduler.codes import PENDING_FOR_PLACEMENT
from fairpool.scheduler.plan import Plan
from tests.helpers import gpus, job, nodes, project


def test_values_are_the_stored_strings() -> None:
    assert [a.value for a in Action] == ["allocate", "consolidate", "reclaim", "preempt"]
    assert {c.value for c in PendingCode} == {
        "QUEUE_LIMIT", "OVER_QUOTA_NON_PREEMPTIBLE", "OVER_QUOTA_STRICT", "NO_NODES",
        "TOO_LARGE", "NO_CAPACITY", "NODE_RESOURCES", "DISPLACED",
        "RESERVED",
    }
    assert {c.value for c in PlacementCode} == {
        "NO_NODES", "TOO_LARGE", "NO_CAPACITY", "NODE_RESOURCES",
    }
    assert all(len(c.value) <= 32 for c in PendingCode)  # the reason_code column's width
    assert {p.value: c.value for p, c in PENDING_FOR_PLACEMENT.items()} == {
        c.value: c.value for c in PlacementCode
    }


def test_members_read_as_their_strings() -> None:
    assert Action.RECLAIM == "reclaim" and f"{Action.RECLAIM}: x" == "reclaim: x"
    assert str(PendingCode.NO_CAPACITY) == "NO_CAPACITY"
    assert json.dumps({"code": PendingCode.QUEUE_LIMIT}) == '{"code": "QUEUE_LIMIT"}'
    counts = Counter([Action.ALLOCATE, Action.ALLOCATE])
    assert counts["allocate"] == 2 and "allocate" in counts  # the control loop's counters


def on(j: Job, *where: tuple[str, tuple[int, ...]], started: float = 0.0) -> Job:
    ps = tuple(WorkerPlacement(i, n, d) for i, (n, d) in enumerate(where))
    return replace(j, state=JobState.RUNNING, placements=ps, started_at=started)


def typed(plan: Plan) -> Plan:
    assert all(type(b.action) is Action for b in plan.binds)
    assert all(type(e.action) is Action for e in plan.evictions)
    assert all(type(r.code) is PendingCode for r in plan.pending.values())
    return plan


def test_every_code_a_cycle_emits_is_an_enum_member() -> None:
    seen_codes: set[PendingCode] = set()
    seen_actions: set[Action] = set()

    def run(snap: Snapshot, config: SchedulerConfig | None = None) -> None:
        for order in QueueOrder:
            cfg = replace(config or SchedulerConfig(), order=order)
            plan = typed(schedule(snap, cfg))
            seen_codes.update(r.code for r in plan.pending.values())
            seen_actions.update(b.action for b in plan.binds)
            seen_actions.update(e.action for e in plan.evictions)

    qs = (Queue("d"), project("a", quota=1, limit=2))
    run(Snapshot(nodes(1, 8), qs, tuple(job(f"a{i}", "a", t=i) for i in range(3))))  # limit
    qs = (Queue("d"), project("a", quota=1))
    np = [job("n0", "a", preemptible=False), job("n1", "a", t=1, preemptible=False)]
    run(Snapshot(nodes(1, 4), qs, tuple(np)))  # non-preemptible over quota
    qs = (Queue("d", quota=gpus(1)), project("a", quota=1))
    run(Snapshot(nodes(1, 4), qs, (job("x", "a"), job("y", "a", t=1))),
        SchedulerConfig(lend_idle=False))  # strict quota
    qs = (Queue("d"), project("a", quota=8))
    run(Snapshot(nodes(1, 4), qs, (job("huge", "a", g=8),  # too large
                                   job("nowhere", "a", selector=NodeSelector(pool="x")),
                                   job("fill", "a", g=4, t=1), job("more", "a", g=2, t=2))))
    cpu = tuple(Job(f"c{i}", "a", Req(gpus=1, cpu=5000), submit_time=i) for i in range(2))
    run(Snapshot(nodes(1, 4, cpus=8), qs, cpu))  # GPUs free, CPUs not
    qs = (Queue("d"), project("a", quota=2), project("b", quota=2))
    borrowed = [on(job(f"a{i}", "a", t=i), ("n0", (i,)), started=i) for i in range(4)]
    run(Snapshot(nodes(1, 4), qs, (*borrowed, job("b0", "b", g=2, t=50)), now=100))  # reclaim
    qs = (Queue("d"), project("a", quota=2))
    low = [on(job(f"l{i}", "a", priority=1), ("n0", (i,))) for i in range(2)]
    run(Snapshot(nodes(1, 2), qs, (*low, job("h", "a", priority=9, t=5)), now=10))  # preempt
    qs = (Queue("d"), project("a", quota=6))
    small = [on(job("s0", "a"), ("n0", (0,))), on(job("s1", "a"), ("n1", (0,)))]
    run(Snapshot(nodes(2, 3), qs, (*small, job("big", "a", g=3, t=5)), now=10))  # consolidate
    assert seen_actions == set(Action)
    assert set(PendingCode) - seen_codes <= {PendingCode.DISPLACED,  # (rarely left in a plan)
                                              PendingCode.RESERVED}  # (test_reservations)

