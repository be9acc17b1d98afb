"""The start-time estimate on a hand-worked trace.

One node with 2 GPUs, project a (quota 2), now t=10. R1 runs since t=0 with a max runtime of
100 s; R2 since t=0 with none, and a's jobs usually run 300 s (history). Waiting, in order: W1
(1 GPU, no max runtime: 300 s by history), W2 (2 GPUs, 20 s), W3 (1 GPU, max runtime 50 s).

- t=100: R1 ends; W1 takes its GPU (first in line), to end at 400.
- t=300: R2 ends; W2 needs both GPUs and waits; W3 fits and starts, to end at 350.
- t=350: W3 ends; one GPU is free, W2 still needs two.
- t=400: W1 ends; W2 starts.

So W1 starts at 100 (after 1 job ending by its max runtime), W3 at 300 (1 by max runtime, 1 by
history) and W2 at 400 (2 and 2).
"""

from __future__ import annotations

import math
from dataclasses import replace

from fairpool.domain import Job, JobState, Queue, WorkerPlacement
from fairpool.scheduler import Snapshot
from fairpool.scheduler.forecast import forecast
from fairpool.services.estimates import words
from tests.helpers import job, nodes, project

QUEUES = (Queue("d"), project("a", quota=2))


def on(j: Job, dev: int, started: float) -> Job:
    return replace(j, state=JobState.RUNNING, placements=(WorkerPlacement(0, "n0", (dev,)),),
                   started_at=started)


def trace(history: dict[str, float] | None = None) -> Snapshot:
    jobs = (on(job("R1", "a", max_runtime_s=100.0), 0, 0.0), on(job("R2", "a"), 1, 0.0),
            job("W1", "a", t=5.0), job("W2", "a", g=2, t=6.0, max_runtime_s=20.0),
            job("W3", "a", t=7.0, max_runtime_s=50.0))
    return Snapshot(nodes(1, 2), QUEUES, jobs, now=10.0,
                    runtime_estimates={"a": 300.0} if history is None else history)


def test_every_waiting_job_gets_the_hand_worked_start() -> None:
    got = forecast(trace())
    assert {j: e.start for j, e in got.items()} == {"W1": 100.0, "W3": 300.0, "W2": 400.0}
    assert (got["W1"].by_max_runtime, got["W1"].by_history) == (1, 0)
    assert (got["W3"].by_max_runtime, got["W3"].by_history) == (1, 1)
    assert (got["W2"].by_max_runtime, got["W2"].by_history) == (2, 2)
    assert got["W3"].basis == ("1 job ending by their max runtime, 1 job ending as their "
                               "projects' jobs usually do")
    assert all(e.unknown_holders == 0 for e in got.values())


def test_a_job_of_unknown_run_time_keeps_its_gpus() -> None:
    got = forecast(trace(history={}))
    # R2 and W1 have no run time: R1 ends at 100, W1 takes its GPU for ever, the rest wait
    assert got["W1"].start == 100.0 and got["W2"].start is None and got["W3"].start is None
    assert got["W2"].unknown_holders == 2 and got["W2"].until == math.inf  # settled
    assert "2 jobs with no known run time keeping their GPUs" in got["W2"].basis
    assert words(got["W2"], 10.0) == (
        "no start-time estimate: it waits for jobs with no known run time (estimate, based on "
        "1 job ending by their max runtime, 2 jobs with no known run time keeping their GPUs)")
    assert words(got["W1"], 10.0) == (
        "expected to start in about 2 min (estimate, based on 1 job ending by their max "
        "runtime, 1 job with no known run time keeping their GPUs)")  # R2, when W1 starts
    assert words(got["W1"], 100.0).startswith("expected to start now, at the next cycles")
    assert words(None, 10.0) is None


def test_a_running_job_past_its_run_time_ends_now_and_the_horizon_holds() -> None:
    late = replace(trace(), now=150.0)  # R1 should have ended at 100
    assert forecast(late)["W1"].start == 150.0
    short = forecast(trace(), horizon_s=200.0)["W2"]  # 400 is past 10 + 200
    assert short.start is None and short.until == 100.0
    assert words(short, 10.0).startswith("no start-time estimate: it does not start in a "
                                         "forecast of the next 2 min")  # type: ignore[union-attr]
    assert forecast(trace(), max_cycles=1)["W1"].start is None
    assert forecast(trace(), more=lambda: False)["W1"].start is None  # a spent budget stops it


def test_stopping_and_overrunning_jobs() -> None:
    # R1 is being stopped (its GPU back in 30 s); R2 has run 1,000 s where a's jobs usually
    # run 300: it is expected to run 1,000 s more
    snap = trace()
    stopping = replace(snap.jobs[0], state=JobState.STOPPING)
    late = replace(snap, jobs=(stopping, *snap.jobs[1:]), now=1000.0)
    got = forecast(late)
    assert got["W1"].start == 1030.0  # on R1's GPU, to 1,330 by history
    assert got["W3"].start == 1330.0  # on W1's GPU (W2 needs both)
    assert got["W2"].start == 2000.0  # R2 ends at 1,000 + 1,000
