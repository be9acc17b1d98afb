"""A simulated run moves every job only along edges of the state table: each state change goes
through moved() (the engine's completions, apply_plan's binds and evictions), each job's changes
chain from queued to its last state, and the engine's books agree with that history."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import pytest

import fairpool.scheduler.apply as apply_module
import fairpool.simulate.engine as engine_module
from fairpool.domain import Job, JobState, WorkerPlacement
from fairpool.domain.job import moved
from fairpool.domain.states import TRANSITIONS
from fairpool.simulate.engine import ClusterSpec, Simulation
from fairpool.simulate.policies import POLICIES
from fairpool.simulate.records import Trace, TraceJob
from tests.simulate.conftest import SAMPLE, needs_traces

S = JobState
History = dict[str, list[tuple[JobState, JobState]]]


@pytest.fixture
def history(monkeypatch: pytest.MonkeyPatch) -> Iterator[History]:
    """Every move of every job, in order, wherever the simulator makes it."""
    seen: History = {}

    def recording(job: Job, target: JobState, *, at: float,
                  placements: tuple[WorkerPlacement, ...] | None = None) -> Job:
        seen.setdefault(job.id, []).append((job.state, target))
        return moved(job, target, at=at, placements=placements)

    monkeypatch.setattr(apply_module, "moved", recording)
    monkeypatch.setattr(engine_module, "moved", recording)
    yield seen


def check(sim: Simulation, history: History) -> None:
    for job_id, path in history.items():
        assert path[0][0] == S.QUEUED, (job_id, path)
        for (_, b), (c, _) in pairwise(path):
            assert b == c, (job_id, path)  # no state was set between two moves
        assert all(b in TRANSITIONS[a] for a, b in path), (job_id, path)
        assert sim.jobs[job_id].domain.state == path[-1][1]
    for job_id, job in sim.jobs.items():
        path = history.get(job_id, [])
        assert sum(1 for edge in path if edge == (S.STOPPING, S.REQUEUED)) == job.record.evictions
        if job.record.finish_s is not None:
            assert path[-1] == (S.RUNNING, S.SUCCEEDED)
        elif not path:
            assert job.domain.state == S.QUEUED  # never started
    evicted = {(S.RUNNING, S.STOPPING), (S.STOPPING, S.REQUEUED)}
    assert all(edge in evicted for p in history.values() for edge in p
               if S.STOPPING in edge)


def hand_trace(jobs: list[TraceJob], quotas: dict[str, float]) -> Trace:
    return Trace("hand", tuple(jobs), quotas, dict.fromkeys(quotas, "d"),
                 {"d": sum(quotas.values())})


def test_reclaim_moves_the_borrower_through_stopping(history: History) -> None:
    t = hand_trace([TraceJob("a1", 0, 100, 1, "A"), TraceJob("a2", 0, 100, 1, "A"),
                    TraceJob("b1", 40, 10, 1, "B")], {"A": 1, "B": 1})
    sim = Simulation(t, POLICIES["fairpool"], ClusterSpec(2, 2), checkpoint_s=30)
    sim.run()
    check(sim, history)
    evicted = [j for j, p in history.items() if (S.RUNNING, S.STOPPING) in p]
    assert len(evicted) == 1
    assert history[evicted[0]] == [
        (S.QUEUED, S.ADMITTED), (S.ADMITTED, S.STARTING), (S.STARTING, S.RUNNING),
        (S.RUNNING, S.STOPPING), (S.STOPPING, S.REQUEUED),
        (S.REQUEUED, S.ADMITTED), (S.ADMITTED, S.STARTING), (S.STARTING, S.RUNNING),
        (S.RUNNING, S.SUCCEEDED)]


def test_las_preemption_and_jobs_that_never_fit(history: History) -> None:
    t = hand_trace([TraceJob("L", 0, 18000, 1, "p"), TraceJob("S", 4000, 100, 1, "p"),
                    TraceJob("huge", 0, 10, 8, "p")], {"p": 1})
    sim = Simulation(t, POLICIES["las"], ClusterSpec(1, 1))
    sim.run()
    check(sim, history)
    assert (S.RUNNING, S.STOPPING) in history["L"]
    assert "huge" not in history and "huge" not in sim.jobs  # never admitted, never moved


@needs_traces
@pytest.mark.parametrize("policy", list(POLICIES))
def test_every_policy_on_a_real_trace_takes_only_table_edges(
        policy: str, history: History) -> None:
    from fairpool.simulate.traces import load_trace

    t = load_trace(SAMPLE, gpus=24)
    sim = Simulation(t, POLICIES[policy], ClusterSpec(24, 8), checkpoint_s=600)
    sim.run()
    check(sim, history)
    assert history
