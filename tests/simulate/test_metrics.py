"""Simulation metrics on hand-built results, each expected number worked out in a comment."""

from __future__ import annotations

import json
import math

import pytest

from fairpool.simulate.metrics import (
    guarantee_violation_by_project,
    jain_index,
    jain_of,
    sample_durations,
    summarize,
)
from fairpool.simulate.records import JobRecord, Sample, SimResult

KEYS = {
    "jobs", "finished", "avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_queue_s", "makespan_s",
    "utilisation", "evictions", "lost_gpu_hours", "guarantee_violation_s", "jain_index",
    "wall_s", "cycles",
}


def sample(
    t: float,
    allocated: dict[str, float],
    demand: dict[str, float],
    fair_share: dict[str, float] | None = None,
) -> Sample:
    return Sample(t=t, allocated=allocated, demand=demand, fair_share=fair_share or {},
                  busy_gpus=sum(allocated.values()))


def result(
    samples: list[Sample],
    end_s: float,
    quotas: dict[str, float],
    jobs: list[JobRecord] | None = None,
    gpus: int = 4,
) -> SimResult:
    return SimResult(policy="p", trace="t", gpus=gpus, quotas=quotas, jobs=jobs or [],
                     samples=samples, end_s=end_s)


def fifo_two_jobs() -> SimResult:
    # One GPU. A: submit 0, runs 0-10. B: submit 0, waits for A, runs 10-30.
    jobs = [
        JobRecord("A", "X", 1.0, submit_s=0.0, duration_s=10.0, first_start_s=0.0,
                  finish_s=10.0, used_gpu_s=10.0),
        JobRecord("B", "X", 1.0, submit_s=0.0, duration_s=20.0, first_start_s=10.0,
                  finish_s=30.0, used_gpu_s=20.0),
    ]
    samples = [sample(0.0, {"X": 1.0}, {"X": 2.0}, {"X": 1.0}),
               sample(10.0, {"X": 1.0}, {"X": 1.0}, {"X": 1.0})]
    res = result(samples, 30.0, {"X": 1.0}, jobs, gpus=1)
    res.wall_s, res.cycles = 0.25, 7
    return res


def test_fifo_two_jobs_on_one_gpu() -> None:
    s = summarize(fifo_two_jobs())
    assert set(s) >= KEYS
    assert (s["jobs"], s["finished"]) == (2, 2)
    assert s["avg_jct_s"] == 20.0  # JCTs 10 and 30
    assert s["p50_jct_s"] == 20.0  # linear between 10 and 30
    assert s["p99_jct_s"] == 29.8  # 10 + 0.99 * (30 - 10)
    assert s["avg_queue_s"] == 5.0  # waits 0 and 10
    assert s["makespan_s"] == 30.0  # last finish 30 - first submit 0
    assert s["utilisation"] == 1.0  # (1 GPU * 10 s + 1 GPU * 20 s) / (1 GPU * 30 s)
    assert s["guarantee_violation_s"] == 0.0  # quota 1, always 1 allocated
    assert s["jain_index"] == 1.0  # one project: no sample with 2 projects
    assert (s["evictions"], s["lost_gpu_hours"]) == (0, 0.0)
    assert (s["wall_s"], s["cycles"]) == (0.25, 7)


def test_sample_durations_last_until_end() -> None:
    assert sample_durations(fifo_two_jobs()) == [10.0, 20.0]
    # Nothing counts after end_s: a sample beyond it holds for 0 s, and the one before it
    # only until end_s.
    res = result([sample(0.0, {}, {}), sample(50.0, {}, {})], 40.0, {})
    assert sample_durations(res) == [40.0, 0.0]


def test_partial_utilisation_from_first_sample() -> None:
    # 4 GPUs; 2 busy over 100-200, 4 busy over 200-300: (200 + 400) / (4 * (300 - 100)) = 0.75
    res = result([sample(100.0, {"X": 2.0}, {"X": 2.0}), sample(200.0, {"X": 4.0}, {"X": 4.0})],
                 300.0, {"X": 4.0})
    assert summarize(res)["utilisation"] == 0.75


def test_unfinished_and_unstarted_jobs() -> None:
    jobs = [
        JobRecord("A", "X", 1.0, submit_s=5.0, duration_s=10.0, first_start_s=7.0, finish_s=20.0),
        JobRecord("B", "X", 1.0, submit_s=1.0, duration_s=10.0, first_start_s=12.0),  # running
        JobRecord("C", "X", 1.0, submit_s=2.0, duration_s=10.0),  # never started
    ]
    s = summarize(result([], 20.0, {}, jobs))
    assert (s["jobs"], s["finished"]) == (3, 1)
    assert s["avg_jct_s"] == 15.0  # only A: 20 - 5
    assert s["avg_queue_s"] == 6.5  # A waited 2, B waited 11; C is not counted
    assert s["makespan_s"] == 19.0  # A finished at 20, B was submitted first at 1


def test_evictions_and_lost_gpu_hours() -> None:
    jobs = [JobRecord("A", "X", 2.0, 0.0, 10.0, evictions=2, lost_gpu_s=7200.0),
            JobRecord("B", "X", 1.0, 0.0, 10.0, evictions=1, lost_gpu_s=1800.0)]
    s = summarize(result([], 0.0, {}, jobs))
    assert s["evictions"] == 3
    assert s["lost_gpu_hours"] == 2.5  # (7200 + 1800) / 3600


def test_guarantee_violated_for_50_seconds() -> None:
    # X: quota 2, demand 2, allocated 1 over 0-50 (short), then 2 over 50-100 (met).
    res = result([sample(0.0, {"X": 1.0}, {"X": 2.0}), sample(50.0, {"X": 2.0}, {"X": 2.0})],
                 100.0, {"X": 2.0, "Y": 1.0})
    assert summarize(res)["guarantee_violation_s"] == 50.0
    assert guarantee_violation_by_project(res) == {"X": 50.0, "Y": 0.0}  # Y had no demand


def test_guarantee_met_when_demand_below_quota() -> None:
    # X: quota 4 but asks for 1 and gets 1 -> guaranteed min(4, 1) = 1 is met.
    res = result([sample(0.0, {"X": 1.0}, {"X": 1.0})], 100.0, {"X": 4.0})
    assert summarize(res)["guarantee_violation_s"] == 0.0
    # Getting 1 GPU less 1e-9 is rounding, not a shortfall.
    res = result([sample(0.0, {"X": 1.0 - 1e-9}, {"X": 1.0})], 100.0, {"X": 4.0})
    assert summarize(res)["guarantee_violation_s"] == 0.0


def test_guarantee_below_quota_unmet_and_projects_add_up() -> None:
    # Over 0-30: X (quota 4, demand 1) gets 0.5 -> short; Y (quota 2, demand 3) gets 1 -> short;
    # Z has demand but no quota -> guaranteed 0, never short. Over 30-40 all are served.
    res = result([sample(0.0, {"X": 0.5, "Y": 1.0}, {"X": 1.0, "Y": 3.0, "Z": 2.0}),
                  sample(30.0, {"X": 1.0, "Y": 2.0}, {"X": 1.0, "Y": 3.0, "Z": 2.0})],
                 40.0, {"X": 4.0, "Y": 2.0})
    assert guarantee_violation_by_project(res) == {"X": 30.0, "Y": 30.0, "Z": 0.0}
    assert summarize(res)["guarantee_violation_s"] == 60.0  # 30 s for X plus 30 s for Y


def test_jain_equal_normalised_shares() -> None:
    # A gets 2 of fair share 2 (demand 4), B gets 1 of demand 1 (fair share 3): x = 1, 1 -> J = 1.
    res = result([sample(0.0, {"A": 2.0, "B": 1.0}, {"A": 4.0, "B": 1.0}, {"A": 2.0, "B": 3.0})],
                 10.0, {})
    assert summarize(res)["jain_index"] == 1.0


def test_jain_two_projects_unequal() -> None:
    # x_A = 2/2 = 1, x_B = 1/2 = 0.5: J = 1.5² / (2 * (1 + 0.25)) = 2.25 / 2.5 = 0.9
    res = result([sample(0.0, {"A": 2.0, "B": 1.0}, {"A": 2.0, "B": 2.0}, {"A": 2.0, "B": 2.0})],
                 10.0, {})
    assert summarize(res)["jain_index"] == 0.9


def test_jain_time_weighted_with_quota_fallback_and_skips() -> None:
    # 0-10: no fair shares, so entitlement = min(demand, quota): A min(4, 2) = 2 gets 2 -> x = 1;
    #       B min(2, 2) = 2 gets 1 -> x = 0.5; C has quota 0 -> entitlement 0, skipped. J = 0.9.
    # 10-40: A x = 1, B x = 1 -> J = 1.
    # 40-60: only A has demand -> under 2 projects, not counted.
    # Index = (0.9 * 10 + 1 * 30) / 40 = 0.975
    q = {"A": 2.0, "B": 2.0}
    res = result([sample(0.0, {"A": 2.0, "B": 1.0}, {"A": 4.0, "B": 2.0, "C": 1.0}),
                  sample(10.0, {"A": 2.0, "B": 2.0}, {"A": 4.0, "B": 2.0}),
                  sample(40.0, {"A": 1.0}, {"A": 1.0, "B": 0.0})], 60.0, q)
    assert jain_index(res) == pytest.approx(0.975)
    assert summarize(res)["jain_index"] == 0.975


def test_jain_of_extremes() -> None:
    assert jain_of([4.0, 0.0, 0.0, 0.0]) == 0.25  # one of 4 gets everything: 1/n
    assert jain_of([0.0, 0.0]) == 1.0  # Σx² = 0
    assert jain_of([3.0]) == 1.0
    assert jain_of([]) == 1.0


def test_empty_result() -> None:
    s = summarize(SimResult(policy="p", trace="t", gpus=8, quotas={"X": 1.0}, jobs=[]))
    assert set(s) >= KEYS
    assert s["jobs"] == s["finished"] == s["evictions"] == 0
    for key in ("avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_queue_s", "makespan_s",
                "utilisation", "lost_gpu_hours", "guarantee_violation_s"):
        assert s[key] == 0.0, key
    assert s["jain_index"] == 1.0


def test_json_encodable_without_nan() -> None:
    for res in (fifo_two_jobs(),
                SimResult(policy="p", trace="t", gpus=0, quotas={}, jobs=[]),
                result([sample(5.0, {"X": 1.0}, {"X": 1.0})], 5.0, {"X": 1.0}, gpus=0)):
        res.wall_s = math.nan  # a broken timer must not leak NaN into the JSON
        text = json.dumps(summarize(res), allow_nan=False)
        assert all(math.isfinite(v) for v in json.loads(text).values())
