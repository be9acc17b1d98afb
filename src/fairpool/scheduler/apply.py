"""Apply a plan to a snapshot, purely: what the world looks like once the plan was carried out.

Evicted jobs go back to the queue (preempted → requeued) without placements; bound jobs run at
their new placements from ``now``. The simulator uses this as its "executor", and tests use it to
run a second cycle on the first cycle's result.
"""

from __future__ import annotations

from dataclasses import replace

from fairpool.domain.job import Job
from fairpool.domain.states import JobState
from fairpool.scheduler.plan import Plan
from fairpool.scheduler.snapshot import Snapshot


def apply_plan(snapshot: Snapshot, plan: Plan, now: float | None = None) -> Snapshot:
    at = snapshot.now if now is None else now
    evicted = {e.job_id for e in plan.evictions}
    binds = {b.job_id: b for b in plan.binds}
    jobs: list[Job] = []
    for job in snapshot.jobs:
        bind = binds.get(job.id)
        if bind is not None:
            job = replace(job, state=JobState.RUNNING, placements=bind.placements, started_at=at)
        elif job.id in evicted:
            job = replace(job, state=JobState.REQUEUED, placements=(), started_at=None)
        jobs.append(job)
    generation = None if snapshot.generation is None else snapshot.generation + 1
    return replace(snapshot, jobs=tuple(jobs), now=at, generation=generation)
