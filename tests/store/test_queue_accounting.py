"""Queue status on SQLite and PostgreSQL counts what the scheduler counts: its per-queue sums
(grouped in SQL for waiting jobs, from placements for holding ones) equal the scheduler's
session built from the same rows, for whole-GPU gangs, fractions, GPU memory (on devices of two
sizes), CPU-only jobs and a stopping job."""

from __future__ import annotations

import time
from collections import defaultdict

from sqlalchemy import select

from fairpool.domain import GPU_UNIT, Resources
from fairpool.domain.accounting import asks
from fairpool.domain.resources import CPU_UNIT
from fairpool.domain.states import LIVE_VALUES, JobState
from fairpool.scheduler import Snapshot, schedule
from fairpool.scheduler.session import Session
from fairpool.schemas.jobs import JobSubmit
from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from fairpool.services import jobs, queues
from fairpool.store.convert import job_domain, node_domain, queue_domain
from fairpool.store.db import Store
from fairpool.store.models import JobRow, NodeRow, QueueRow

BIG, SMALL = 81920, 40960
CMD = ["python", "train.py"]


def _nodes(store: Store) -> None:
    with store.writing() as s:
        for name, count, memory in (("big", 4, BIG), ("small", 2, SMALL)):
            s.add(NodeRow(name=name, pool="default", labels={}, cpu=64 * CPU_UNIT,
                          memory=512 * 1024, simulated=True, ready=True, cordoned=False,
                          updated_at=time.time(),
                          devices=[{"index": i, "memory_mib": memory, "model": "sim",
                                    "uuid": f"{name}-{i}"} for i in range(count)]))
        Store.bump(s)


def _submit(store: Store, project: str, **fields: object) -> str:
    out, _ = jobs.submit(store, JobSubmit(project=project, command=CMD, **fields))
    return out.id


def _snapshot(store: Store) -> Snapshot:
    with store.session() as s:
        nodes = tuple(node_domain(r) for r in s.execute(select(NodeRow)).scalars())
        qs = tuple(queue_domain(r) for r in s.execute(select(QueueRow)).scalars())
        live = tuple(job_domain(r) for r in s.execute(
            select(JobRow).where(JobRow.state.in_(LIVE_VALUES))).scalars())
    return Snapshot(nodes, qs, live)


def _place(store: Store) -> None:
    """Run a cycle on the store's rows and write its binds as the control loop does (running,
    one worker record per rank)."""
    plan = schedule(_snapshot(store))
    assert plan.binds
    with store.writing() as s:
        for bind in plan.binds:
            row = s.get(JobRow, bind.job_id)
            assert row is not None
            row.state, row.started_at = JobState.RUNNING.value, time.time()
            row.placement = [{"rank": p.worker, "worker_id": f"{row.id}-{p.worker}",
                              "node": p.node, "devices": list(p.devices), "share": p.share,
                              "gpu_memory": p.gpu_memory, "phase": "running",
                              "exit_code": None} for p in bind.placements]
        Store.bump(s)


def test_queue_status_counts_what_the_scheduler_counts(store: Store) -> None:
    queues.create_department(store, QueueCreate(name="research", quota=ResourceSpec(gpus=4)))
    for name in ("vision", "nlp"):
        queues.create_project(store, ProjectCreate(name=name, department="research",
                                                   quota=ResourceSpec(gpus=2)))
    _nodes(store)
    _submit(store, "vision", gpu_fraction=0.5, cpus=1, memory_mib=100)
    _submit(store, "vision", gpu_memory_mib=20_000, cpus=0.5)
    _submit(store, "nlp", gpus=1, workers=2, cpus=2, memory_mib=1000)
    _submit(store, "nlp", gpu_memory_mib=30_000, workers=3)
    _submit(store, "nlp", cpus=3, memory_mib=2048, workers=2)
    stopping = _submit(store, "vision", gpus=1)
    _place(store)
    with store.writing() as s:  # one of them is being stopped: it still holds its devices
        row = s.get(JobRow, stopping)
        assert row is not None and row.state == "running"
        row.state, row.stop_reason = JobState.STOPPING.value, "preempt"
    # and some wait: GPU memory (of either device size), fractions, a gang too large to fit
    _submit(store, "vision", gpu_memory_mib=20_000, workers=2)
    _submit(store, "vision", gpu_memory_mib=50_000)
    _submit(store, "nlp", gpu_fraction=0.25, workers=3, cpus=1)
    _submit(store, "nlp", gpus=4, workers=3)

    snap = _snapshot(store)
    session = Session(snap)
    assert session.ref_memory == BIG
    alloc = {session.queue_names[q]: Resources(*a) for q, a in enumerate(session.q_alloc)}
    asked: dict[str, Resources] = defaultdict(lambda: Resources.ZERO)
    counts: dict[tuple[str, bool], int] = defaultdict(int)
    for job in snap.jobs:
        for queue in ("research", job.project):
            counts[queue, job.active] += 1
            if job.pending:
                asked[queue] += asks(job, session.ref_memory)
    status = {q.name: q for q in queues.list_queues(store)}
    assert set(status) == set(alloc) == {"research", "vision", "nlp"}
    for name, q in status.items():
        a, p = alloc[name], asked[name]
        assert (q.allocated.gpus, q.allocated.cpus, q.allocated.memory_mib) == (
            a.gpu / GPU_UNIT, a.cpu / CPU_UNIT, a.memory), name
        assert (q.pending.gpus, q.pending.cpus, q.pending.memory_mib) == (
            p.gpu / GPU_UNIT, p.cpu / CPU_UNIT, p.memory), name
        assert (q.running_jobs, q.pending_jobs) == (counts[name, True], counts[name, False])
    # the numbers themselves: 0.5 + 20000/81920 (rounded up to 0.245) + the stopping GPU
    assert status["vision"].allocated.gpus == 1.745
    assert status["vision"].pending.gpus == (2 * 245 + 611) / GPU_UNIT
    assert status["research"].allocated.gpus == (alloc["vision"].gpu + alloc["nlp"].gpu) / 1000
    # the device view adds up to the same: every device's holders' shares
    with store.session() as s:
        shares = sum(w["share"] * len(w["devices"]) for (placement,) in s.execute(
            select(JobRow.placement).where(JobRow.placement.is_not(None))) for w in placement)
    assert shares == alloc["research"].gpu
