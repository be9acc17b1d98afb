"""Property: over random clusters and workloads, carrying out a cycle's plan (and the next
cycle's) with apply_plan takes only edges of the state table, and leaves every job bound by the
plan running where the plan put it and every evicted one (not moved) requeued."""

from __future__ import annotations

import pytest
from hypothesis import given

from fairpool.domain import Job, JobState, WorkerPlacement
from fairpool.domain.job import moved
from fairpool.domain.states import TRANSITIONS
from fairpool.scheduler import Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from tests.property.strategies import scenarios
from tests.property.test_invariants import FAST


@FAST
@given(scenarios())
def test_apply_plan_takes_only_table_edges(snap: Snapshot) -> None:
    import fairpool.scheduler.apply as apply_module

    edges: list[tuple[JobState, JobState]] = []

    def recording(job: Job, target: JobState, *, at: float,
                  placements: tuple[WorkerPlacement, ...] | None = None) -> Job:
        edges.append((job.state, target))
        return moved(job, target, at=at, placements=placements)

    with pytest.MonkeyPatch.context() as patch:  # per example: hypothesis reuses the test
        patch.setattr(apply_module, "moved", recording)
        for _ in range(2):
            plan = schedule(snap)
            after = apply_plan(snap, plan)
            by_id = {j.id: j for j in after.jobs}
            for b in plan.binds:
                assert by_id[b.job_id].state == JobState.RUNNING
                assert by_id[b.job_id].placements == b.placements
            bound = {b.job_id for b in plan.binds}
            for e in plan.evictions:
                if e.job_id not in bound:
                    assert by_id[e.job_id].state == JobState.REQUEUED
            snap = after
    assert all(b in TRANSITIONS[a] for a, b in edges), edges
