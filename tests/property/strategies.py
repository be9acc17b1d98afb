"""Hypothesis strategies: random small clusters, queue trees and workloads in valid states.

Running jobs are never invented: a random first workload is scheduled and applied, then new jobs
arrive and time moves on, so every generated state is one the scheduler itself could reach.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from fairpool.domain import Job, Node, Queue, Resources, WorkerRequest
from fairpool.scheduler import SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from tests.helpers import G


@st.composite
def clusters(draw: st.DrawFn, max_nodes: int = 4) -> tuple[Node, ...]:
    count = draw(st.integers(1, max_nodes))
    pools = draw(st.sampled_from([("default",), ("a", "b")]))
    return tuple(
        Node.with_gpus(f"n{i}", draw(st.integers(1, 4)), pool=pools[i % len(pools)],
                       gpu_memory_mib=40000)
        for i in range(count)
    )


@st.composite
def queue_trees(draw: st.DrawFn, capacity: int) -> tuple[Queue, ...]:
    depts = draw(st.integers(1, 2))
    out: list[Queue] = []
    budget = capacity
    for d in range(depts):
        projects = []
        for p in range(draw(st.integers(1, 3))):
            quota = draw(st.integers(0, max(0, min(budget, 3))))
            budget -= quota
            limit = draw(st.one_of(st.none(), st.integers(quota, quota + 4)))
            projects.append(Queue(
                f"p{d}{p}", parent=f"d{d}", quota=Resources(gpu=quota * G),
                limit=Resources.INFINITE if limit is None else replace(Resources.INFINITE,
                                                                      gpu=limit * G),
                over_quota_weight=draw(st.integers(1, 3)), priority=draw(st.integers(0, 1)),
            ))
        dept_quota = sum(q.quota.gpu for q in projects)
        out.append(Queue(f"d{d}", quota=Resources(gpu=dept_quota)))
        out.extend(projects)
    return tuple(out)


@st.composite
def jobs(draw: st.DrawFn, projects: list[str], start: int, count: int, t0: float,
         whole_only: bool = False) -> list[Job]:
    out = []
    for i in range(count):
        if whole_only:
            req = WorkerRequest(gpus=1)
            workers = 1
        else:
            kind = draw(st.sampled_from(["whole", "whole", "fraction", "memory"]))
            if kind == "whole":
                req = WorkerRequest(gpus=draw(st.integers(1, 3)))
            elif kind == "fraction":
                req = WorkerRequest(gpu_fraction=draw(st.sampled_from([0.25, 0.5, 0.3])))
            else:
                req = WorkerRequest(gpu_memory_mib=draw(st.sampled_from([10000, 20000])))
            workers = draw(st.integers(1, 3))
        np = not whole_only and draw(st.booleans()) and draw(st.booleans())
        out.append(Job(
            f"j{start + i}", draw(st.sampled_from(projects)), req, workers=workers,
            priority=100 if np else draw(st.sampled_from([50, 50, 60])),
            preemptible=not np, submit_time=t0 + i,
            same_node=(not whole_only) and workers > 1 and draw(st.booleans()),
            min_runtime_s=draw(st.sampled_from([0.0, 0.0, 50.0])) if not whole_only else 0.0,
        ))
    return out


@st.composite
def scenarios(draw: st.DrawFn, whole_only: bool = False) -> Snapshot:
    nodes = draw(clusters())
    capacity = sum(len(n.devices) for n in nodes)
    queues = draw(queue_trees(capacity))
    projects = [q.name for q in queues if q.parent is not None]
    first = draw(jobs(projects, 0, draw(st.integers(0, 10)), 0.0, whole_only))
    snap = Snapshot(nodes, queues, tuple(first), now=0.0, generation=1)
    snap = apply_plan(snap, schedule(snap, SchedulerConfig()), now=0.0)
    second = draw(jobs(projects, 100, draw(st.integers(0, 8)), 10.0, whole_only))
    now = draw(st.sampled_from([20.0, 100.0]))
    return replace(snap, jobs=snap.jobs + tuple(second), now=now)
