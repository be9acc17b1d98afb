"""Property tests: invariants of every cycle over random clusters and workloads."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings

from fairpool.domain import GPU_UNIT, JobState, QueueTree
from fairpool.scheduler import Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from fairpool.scheduler.codes import Action
from fairpool.scheduler.placement import try_place
from fairpool.scheduler.plan import Plan
from fairpool.scheduler.session import PENDING, Session
from fairpool.scheduler.statement import Statement
from tests.property.strategies import scenarios

#: the same 300 examples on every run (derandomize), so that CI on a clean checkout judges the
#: change it runs for and not the luck of the draw; a case found by exploring locally goes to
#: test_found_cases.py, where it runs every time
FAST = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def device_use(snap: Snapshot) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    share: dict[tuple[str, int], int] = defaultdict(int)
    memory: dict[tuple[str, int], int] = defaultdict(int)
    for j in snap.jobs:
        if j.state == JobState.RUNNING:
            for p in j.placements:
                for d in p.devices:
                    share[(p.node, d)] += p.share
                    memory[(p.node, d)] += p.gpu_memory
    return share, memory


def queue_gpus(snap: Snapshot) -> dict[str, int]:
    tree = QueueTree.build(snap.queues)
    out: dict[str, int] = defaultdict(int)
    for j in snap.jobs:
        if j.state == JobState.RUNNING:
            for q in tree.path(j.project):
                out[q] += sum(p.share * len(p.devices) for p in j.placements)
    return out


def check_invariants(snap: Snapshot, plan: Plan) -> Snapshot:
    """Assert what every cycle keeps, and return the state after the plan."""
    after = apply_plan(snap, plan)
    by_id = {j.id: j for j in snap.jobs}
    # no device over-committed, fractions and GPU memory included
    share, memory = device_use(after)
    mem_total = {(n.name, d.index): d.memory_mib for n in snap.nodes for d in n.devices}
    assert all(v <= GPU_UNIT for v in share.values())
    assert all(memory[k] <= mem_total[k] for k in memory)
    # gangs all or nothing, on nodes matching the selector
    nodes = {n.name: n for n in snap.nodes}
    for b in plan.binds:
        job = by_id[b.job_id]
        assert len(b.placements) == job.workers
        for p in b.placements:
            assert job.selector.pool in (None, nodes[p.node].pool)
        if job.same_node:
            assert len({p.node for p in b.placements}) == 1
    # no queue above its limit (limits were respected when the state was built)
    limits = {q.name: q.limit.gpu for q in snap.queues}
    for q, used in queue_gpus(after).items():
        assert used <= limits[q], (q, used)
    # non-preemptible jobs are never evicted; protected jobs neither
    for e in plan.evictions:
        job = by_id[e.job_id]
        assert job.preemptible
        assert job.started_at is None or snap.now >= job.started_at + job.min_runtime_s
    # every job left waiting has a reason: why it waits, or why it was evicted
    evicted = {e.job_id: e.reason for e in plan.evictions}
    for j in after.jobs:
        if j.state in (JobState.QUEUED, JobState.REQUEUED):
            reason = plan.pending[j.id].message if j.id in plan.pending else evicted[j.id]
            assert reason
    return after


@FAST
@given(scenarios())
def test_every_cycle_keeps_the_invariants(snap: Snapshot) -> None:
    check_invariants(snap, schedule(snap))


@FAST
@given(scenarios())
def test_no_ping_pong(snap: Snapshot) -> None:
    plan = schedule(snap)
    again = schedule(apply_plan(snap, plan))
    assert not again.evictions, (plan.evictions, again.evictions)


@FAST
@given(scenarios(whole_only=True))
def test_below_quota_with_reclaimable_demand_gets_it_in_one_cycle(snap: Snapshot) -> None:
    plan = schedule(snap)
    tree = QueueTree.build(snap.queues)
    before = queue_gpus(snap)
    fs = {q: r.gpu for q, r in plan.fair_shares.items()}
    quota = {q.name: q.quota.gpu for q in snap.queues}
    bound = {by.job_id for by in plan.binds}
    running = [j for j in snap.jobs if j.state == JobState.RUNNING]
    for p in tree.leaves():
        waiting = [j for j in snap.jobs if j.project == p and j.pending]
        if not waiting or before[p] + GPU_UNIT > quota[p]:
            continue
        dept = tree.queues[p].parent
        # a victim exists whose eviction keeps its queues at or above fair share
        victim_exists = any(
            v.project != p and before[v.project] - GPU_UNIT >= fs[v.project] and (
                tree.queues[v.project].parent == dept or (
                    before[dept] + GPU_UNIT <= fs[dept]
                    and before[tree.queues[v.project].parent] - GPU_UNIT
                    >= fs[tree.queues[v.project].parent]))
            for v in running
        )
        if victim_exists:
            assert any(j.id in bound for j in waiting), (p, plan.pending)


@FAST
@given(scenarios())
def test_statement_rollback_restores_the_session_exactly(snap: Snapshot) -> None:
    session = Session(snap)
    for v in session.jobs:  # domain indexes are built lazily; build them before comparing
        session.cluster.domain(v.job.selector)

    def state() -> object:
        return (session.cluster.fingerprint(), [list(a) for a in session.q_alloc],
                [list(a) for a in session.q_alloc_np], [(v.status, v.placements, v.acct)
                                                       for v in session.jobs],
                dict(session.binds), dict(session.evictions),
                [set(s) for s in session.node_jobs])

    before = state()
    with Statement(session.log):
        for v in session.jobs:
            if v.status == PENDING:
                try_place(session, v, Action.ALLOCATE)
        for v in session.jobs:
            if session.evictable(v) and v.job.preemptible:
                session.evict(v, Action.RECLAIM, "test", None)
    assert state() == before
