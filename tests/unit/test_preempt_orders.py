"""Preempt under the simulator's global orders (FIFO, SJF, LAS), where groups are not filtered
before the loop: a waiting job of a project with no lower-priority victims is skipped."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fairpool.domain import JobState, Queue, WorkerPlacement
from fairpool.scheduler import Action, QueueOrder, SchedulerConfig, Snapshot, schedule
from tests.helpers import job, nodes, project


@pytest.mark.parametrize("order", list(QueueOrder))
def test_preempt_skips_projects_without_victims(order: QueueOrder) -> None:
    qs = (Queue("d"), project("a", quota=1), project("b", quota=1), project("c", quota=0))
    held = replace(job("a0", "a", priority=1), state=JobState.RUNNING,
                   placements=(WorkerPlacement(0, "n0", (0,)),), started_at=0.0)
    waiting = (job("b0", "b", priority=5, t=1), job("a1", "a", priority=5, t=2))
    plan = schedule(Snapshot(nodes(1, 1), qs, (held, *waiting), now=10),
                    SchedulerConfig(order=order))
    # b0 comes first in the global orders, and b has no job to preempt: a1 still preempts a0
    assert [(e.job_id, e.action) for e in plan.evictions] == [("a0", Action.PREEMPT)]
    bind = plan.bind_for("a1")
    assert bind is not None and bind.action is Action.PREEMPT
