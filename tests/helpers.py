"""Small builders for hand-made clusters in tests."""

from __future__ import annotations

from dataclasses import replace

from fairpool.domain import GPU_UNIT, Job, JobState, Node, Queue, Resources, WorkerRequest
from fairpool.scheduler import Plan, SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.apply import apply_plan

G = GPU_UNIT


def gpus(n: float) -> Resources:
    return Resources(gpu=round(n * G))


def nodes(count: int, gpus_each: int, **kw: object) -> tuple[Node, ...]:
    return tuple(Node.with_gpus(f"n{i}", gpus_each, **kw) for i in range(count))  # type: ignore[arg-type]


def project(name: str, dept: str = "d", quota: float = 0, limit: float | None = None,
            weight: int = 1, priority: int = 0) -> Queue:
    lim = Resources.INFINITE if limit is None else replace(Resources.INFINITE, gpu=round(limit * G))
    return Queue(name, parent=dept, quota=gpus(quota), limit=lim, over_quota_weight=weight,
                 priority=priority)


def job(jid: str, proj: str, g: int = 1, workers: int = 1, t: float = 0.0, **kw: object) -> Job:
    return Job(jid, proj, WorkerRequest(gpus=g), workers=workers, submit_time=t, **kw)  # type: ignore[arg-type]


def frac(jid: str, proj: str, f: float, workers: int = 1, t: float = 0.0, **kw: object) -> Job:
    return Job(jid, proj, WorkerRequest(gpu_fraction=f), workers=workers, submit_time=t, **kw)  # type: ignore[arg-type]


def run_until_stable(snap: Snapshot, config: SchedulerConfig | None = None,
                     rounds: int = 10) -> tuple[Snapshot, Plan]:
    """Run cycles, applying each plan, until a cycle changes nothing."""
    plan = schedule(snap, config)
    for _ in range(rounds):
        if not plan.changes:
            return snap, plan
        snap = apply_plan(snap, plan)
        plan = schedule(snap, config)
    raise AssertionError("scheduler did not reach a fixed point")


def running(snap: Snapshot) -> dict[str, Job]:
    return {j.id: j for j in snap.jobs if j.state == JobState.RUNNING}


def gpus_of(snap: Snapshot, proj: str) -> float:
    return sum(j.total_gpus_milli for j in snap.jobs
               if j.project == proj and j.state == JobState.RUNNING) / G
