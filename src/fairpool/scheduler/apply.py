"""Apply a plan to a snapshot, purely: what the world looks like once the plan was carried out.

The plan is carried out at once, as by an executor whose workers start and stop instantly (the
simulator is such an executor; tests use this to run a second cycle on the first cycle's
result). Every state change goes through :func:`fairpool.domain.job.moved`, so it takes only
edges of the transition table (:data:`fairpool.domain.states.TRANSITIONS`):

- an evicted job that was started (starting or running) is stopped, then requeued:
  ``running → stopping → requeued``; one that was only admitted goes straight back,
  ``admitted → requeued``;
- a bound job is admitted on its placements, started, and runs from ``now``:
  ``queued|requeued → admitted → starting → running``;
- a job both evicted and bound (a move: consolidation) is evicted first, then bound.

A plan that asks for anything else is refused: evicting a waiting job or binding a placed job
it does not evict raises :class:`~fairpool.domain.states.IllegalTransition`, naming a job the
snapshot lacks :class:`ValueError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from fairpool.domain.job import Job, WorkerPlacement, moved
from fairpool.domain.states import JobState
from fairpool.scheduler.plan import Plan
from fairpool.scheduler.snapshot import Snapshot

S = JobState


def evicted(job: Job, at: float) -> Job:
    """The job once its eviction is carried out: stopped if it was started, then requeued."""
    if job.state in (S.STARTING, S.RUNNING):
        job = moved(job, S.STOPPING, at=at)
    return moved(job, S.REQUEUED, at=at)


def started(job: Job, placements: tuple[WorkerPlacement, ...], at: float) -> Job:
    """The waiting job once its bind is carried out: admitted on ``placements``, started and
    running from ``at``."""
    job = moved(job, S.ADMITTED, at=at, placements=placements)
    return moved(moved(job, S.STARTING, at=at), S.RUNNING, at=at)


def carry_out(plan: Plan, jobs: Iterable[Job], at: float) -> dict[str, Job]:
    """The jobs ``plan`` changes, by id, as they are once it was carried out at ``at`` (each
    evicted first, then bound); ``jobs`` must hold every job the plan names."""
    evictions = {e.job_id for e in plan.evictions}
    binds = {b.job_id: b.placements for b in plan.binds}
    changed: dict[str, Job] = {}
    for job in jobs:
        evict = job.id in evictions
        placements = binds.get(job.id)
        if not evict and placements is None:
            continue
        if evict:
            job = evicted(job, at)
        if placements is not None:
            job = started(job, placements, at)
        changed[job.id] = job
    missing = (evictions | binds.keys()) - changed.keys()
    if missing:
        raise ValueError(f"the plan names jobs that are not there: {', '.join(sorted(missing))}")
    return changed


def apply_plan(snapshot: Snapshot, plan: Plan, now: float | None = None) -> Snapshot:
    """The snapshot once ``plan`` was carried out at ``now`` (default: the snapshot's time),
    jobs in the same order, its generation (if any) one higher."""
    at = snapshot.now if now is None else now
    changed = carry_out(plan, snapshot.jobs, at) if plan.changes else {}
    jobs = tuple(changed.get(j.id, j) for j in snapshot.jobs) if changed else snapshot.jobs
    generation = None if snapshot.generation is None else snapshot.generation + 1
    return replace(snapshot, jobs=jobs, now=at, generation=generation)
