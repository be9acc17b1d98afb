"""The start-time estimate replayed in the simulator, on a hand-worked trace: one GPU, project
p; C (100 s) at t=0, A (100 s) at t=100, B (50 s) at t=150, D (10 s) at t=160.

- C arrives to an idle pool: expected to start now (0), starts at 0.
- A arrives at 100 as C ends: C's run is p's history (100 s); A starts at once: estimate 100.
- B arrives at 150: A started at 100 and p's jobs run 100 s, so B is expected at 200, and
  starts at 200.
- D arrives at 160: A ends at 200, then B runs 100 s by history (it runs 50): expected at 300,
  starts at 250: 50 s late.

So the errors are 0, 0, 0, 50: median 0, and over the jobs that waited ≥ 1 min (B 50 s: no;
D 90 s: yes) 50."""

from __future__ import annotations

import pytest

from fairpool.simulate.engine import ClusterSpec, Simulation
from fairpool.simulate.metrics import estimate_accuracy
from fairpool.simulate.policies import POLICIES
from fairpool.simulate.records import Trace, TraceJob

JOBS = (TraceJob("C", 0.0, 100.0, 1.0, "p"), TraceJob("A", 100.0, 100.0, 1.0, "p"),
        TraceJob("B", 150.0, 50.0, 1.0, "p"), TraceJob("D", 160.0, 10.0, 1.0, "p"))
TRACE = Trace("hand", JOBS, quotas={"p": 1.0}, departments={"p": "default"},
              department_quotas={"default": 1.0})


def test_each_estimate_at_submit_is_the_hand_worked_one() -> None:
    result = Simulation(TRACE, POLICIES["fairpool"], ClusterSpec(1, 1), estimate_every=1).run()
    got = {j.job_id: (j.estimated_start_s, j.first_start_s) for j in result.jobs}
    assert got == {"C": (0.0, 0.0), "A": (100.0, 100.0), "B": (200.0, 200.0),
                   "D": (300.0, 250.0)}
    acc = estimate_accuracy(result)
    assert acc["sampled"] == acc["compared"] == 4 and acc["no_estimate"] == 0
    assert acc["median_abs_error_s"] == 0.0 and acc["median_bias_s"] == 0.0
    assert acc["p90_abs_error_s"] == pytest.approx(35.0)  # linear between 0 and 50
    assert (acc["waited"], acc["waited_median_abs_error_s"]) == (1, 50.0)


def test_without_sampling_nothing_is_estimated() -> None:
    result = Simulation(TRACE, POLICIES["fairpool"], ClusterSpec(1, 1)).run()
    assert not any(j.estimated for j in result.jobs)
    assert estimate_accuracy(result)["sampled"] == 0
