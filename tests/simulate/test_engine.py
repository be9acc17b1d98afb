"""The simulator on hand-made traces whose answers are worked out by hand, and conservation on
a real trace sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairpool.simulate.engine import ClusterSpec, Simulation
from fairpool.simulate.policies import POLICIES, policy_names
from fairpool.simulate.records import SimResult, Trace, TraceJob
from tests.simulate.conftest import SAMPLE, TRACES, needs_traces


def trace(jobs: list[TraceJob], quotas: dict[str, float]) -> Trace:
    return Trace("hand", tuple(jobs), quotas, dict.fromkeys(quotas, "d"),
                 {"d": sum(quotas.values())})


def run(t: Trace, policy: str, gpus: int, per_node: int | None = None,
        checkpoint_s: float = 1800) -> SimResult:
    return Simulation(t, POLICIES[policy], ClusterSpec(gpus, per_node or gpus),
                      checkpoint_s=checkpoint_s).run()


def times(result: SimResult) -> dict[str, tuple[float | None, float | None]]:
    return {j.job_id: (j.first_start_s, j.finish_s) for j in result.jobs}


def test_fifo_versus_sjf_on_one_gpu() -> None:
    # a (10 s) and b (2 s) arrive together on one GPU.
    # FIFO: a 0–10, b 10–12 → JCTs 10 and 12. SJF: b 0–2, a 2–12 → JCTs 2 and 12.
    t = trace([TraceJob("a", 0, 10, 1, "p"), TraceJob("b", 0, 2, 1, "p")], {"p": 1})
    assert times(run(t, "fifo", 1)) == {"a": (0, 10), "b": (10, 12)}
    assert times(run(t, "sjf", 1)) == {"a": (2, 12), "b": (0, 2)}


def test_reclaim_evicts_the_borrower_and_it_loses_work_since_its_checkpoint() -> None:
    # 2 GPUs, A and B own one each. A runs two 100 s jobs from 0 (borrowing B's GPU); B's 10 s
    # job arrives at 40. fairpool reclaims: a borrower stops at 40, keeps 30 s (checkpoint every
    # 30 s), loses 10 GPU-s, restarts at 50 when B is done and needs 70 s more → ends at 120.
    t = trace([TraceJob("a1", 0, 100, 1, "A"), TraceJob("a2", 0, 100, 1, "A"),
               TraceJob("b1", 40, 10, 1, "B")], {"A": 1, "B": 1})
    fair = run(t, "fairpool", 2, checkpoint_s=30)
    by_id = {j.job_id: j for j in fair.jobs}
    assert times(fair)["b1"] == (40, 50)
    evicted = [j for j in fair.jobs if j.evictions]
    assert len(evicted) == 1 and evicted[0].finish_s == 120
    assert evicted[0].lost_gpu_s == 10 and evicted[0].used_gpu_s == 110
    assert sum(j.evictions for j in fair.jobs) == 1 and by_id["b1"].evictions == 0
    # strict quotas: A never borrows, so its second job waits for its first
    assert times(run(t, "strict-quota", 2, checkpoint_s=30)) == {
        "a1": (0, 100), "a2": (100, 200), "b1": (40, 50)}
    # FIFO: B waits for A's borrowed GPU
    assert times(run(t, "fifo", 2))["b1"] == (100, 110)


def test_las_demotes_long_jobs_and_lets_new_ones_preempt() -> None:
    # One GPU. L (5 h) starts at 0 and passes 1 GPU-hour at 3,600 s, dropping a level. S (100 s)
    # arrives at 4,000 at the top level and preempts L, which ran 4,000 s: it keeps 3,600 s
    # (checkpoints every 1,800 s), loses 400. S runs 4,000–4,100; L resumes and needs
    # 18,000 − 3,600 = 14,400 s more → ends at 18,500.
    t = trace([TraceJob("L", 0, 18000, 1, "p"), TraceJob("S", 4000, 100, 1, "p")], {"p": 1})
    las = run(t, "las", 1)
    assert times(las) == {"L": (0, 18500), "S": (4000, 4100)}
    long_job = next(j for j in las.jobs if j.job_id == "L")
    assert long_job.evictions == 1 and long_job.lost_gpu_s == 400
    assert times(run(t, "fifo", 1)) == {"L": (0, 18000), "S": (18000, 18100)}


def test_gangs_fractions_and_jobs_that_never_fit() -> None:
    t = trace([TraceJob("gang", 0, 50, 16, "p", workers=2),  # 2 nodes of 8
               TraceJob("half1", 0, 10, 0.5, "p"), TraceJob("half2", 0, 10, 0.5, "p"),
               TraceJob("huge", 0, 10, 64, "p")], {"p": 17})
    result = run(t, "fifo", 17, per_node=8)  # nodes of 8, 8 and 1 GPUs
    got = times(result)
    assert got["gang"] == (0, 50)
    assert got["half1"] == (0, 10) and got["half2"] == (0, 10)  # both on the last GPU at once
    assert got["huge"] == (None, None)  # more GPUs than the cluster: never runs




@needs_traces
@pytest.mark.parametrize(("path", "gpus"), [
    (SAMPLE, 32),
    (TRACES / "pollux" / "workload-6.csv", 64),
    (TRACES / "elasticflow" / "cluster10.csv", 64),
    (TRACES / "elasticflow" / "philly_103959.csv", 64),
])
def test_conservation_on_real_traces(path: Path, gpus: int) -> None:
    from fairpool.simulate.traces import load_trace

    t = load_trace(path, gpus=gpus)
    for name in POLICIES:
        result = run(t, name, gpus, per_node=8, checkpoint_s=600)
        assert len(result.jobs) == len(t.jobs)  # one record per job
        finished = [j for j in result.jobs if j.finish_s is not None]
        fits = [j for j in t.jobs if j.gpus <= gpus]
        if name != "strict-quota":  # with strict quotas, jobs bigger than their quota wait
            assert len(finished) == len(fits), name
        for j in finished:  # every finished job did all its work exactly once, plus what it lost
            assert j.used_gpu_s == pytest.approx(j.duration_s * j.gpus + j.lost_gpu_s), name
            assert j.first_start_s is not None and j.first_start_s >= j.submit_s
        busy = result.samples
        assert all(s.busy_gpus <= gpus + 1e-9 for s in busy), name
        assert [s.t for s in busy] == sorted(s.t for s in busy)
        if name in ("fifo", "sjf", "strict-quota"):
            assert sum(j.evictions for j in result.jobs) == 0


def test_policy_names() -> None:
    names = policy_names("all")
    assert names == list(POLICIES) and names[:5] == ["fifo", "sjf", "las", "strict-quota",
                                                     "fairpool"]
    assert all(n.startswith("fairpool-") for n in names[5:])  # variants of the default
    assert policy_names("default") == names[:5]  # what fairpool simulate shows by default
    assert policy_names("fifo, fairpool") == ["fifo", "fairpool"]
    with pytest.raises(ValueError, match="unknown policy bogus"):
        policy_names("fifo,bogus")


def test_reference_shares_are_the_cores_fair_shares() -> None:
    import random

    from fairpool.domain import GPU_UNIT, Resources
    from fairpool.scheduler.fair_share import fair_shares

    quotas = {"a": 10.0, "b": 30.0, "c": 0.0, "d": 24.0}
    t = Trace("q", (), quotas, {"a": "x", "b": "x", "c": "y", "d": "y"}, {"x": 40, "y": 24})
    sim = Simulation(t, POLICIES["fifo"], ClusterSpec(64, 8))
    rng = random.Random(7)
    for _ in range(200):
        demand = {p: float(rng.choice([1, 3, 8, 20, 70])) for p in quotas if rng.random() < 0.7}
        core = fair_shares(sim.project_tree, sim.capacity,
                           {p: Resources(gpu=round(g * GPU_UNIT)) for p, g in demand.items()})
        assert sim._reference_shares(demand) == pytest.approx(
            {p: core[p].gpu / GPU_UNIT for p in demand})


@needs_traces
@pytest.mark.parametrize(("path", "gpus"), [
    (SAMPLE, 32),
    (TRACES / "elasticflow" / "philly_103959.csv", 48),
])
def test_skipping_idle_cycles_changes_nothing(path: Path, gpus: int) -> None:
    """The engine skips cycles that provably cannot act; running every cycle gives the same
    life for every job."""
    from fairpool.simulate.traces import load_trace

    t = load_trace(path, gpus=gpus)
    for name, policy in POLICIES.items():
        fast = Simulation(t, policy, ClusterSpec(gpus, 8), checkpoint_s=600).run()
        slow = Simulation(t, policy, ClusterSpec(gpus, 8), checkpoint_s=600, fast=False).run()
        assert fast.jobs == slow.jobs, name
        assert fast.cycles <= slow.cycles


def test_las_demotes_a_running_job_through_every_level() -> None:
    # One GPU, levels at 1 and 10 GPU-hours. A (20 h of work) starts at 0; B (100 h) arrives at
    # 0.5 h. At 1 h A drops a level and B (still at the top) preempts it; A keeps its 1 h (two
    # checkpoints). B passes 1 h at 2 h (same level as A: no preemption) and 10 h at 11 h, when
    # A outranks it and takes the GPU back: A needs 19 h more → ends at 30 h. B then resumes
    # with 90 h left (its checkpoints cover all 10 h) → ends at 120 h.
    h = 3600.0
    t = trace([TraceJob("A", 0, 20 * h, 1, "p"), TraceJob("B", 0.5 * h, 100 * h, 1, "p")],
              {"p": 1})
    result = run(t, "las", 1)
    got = times(result)  # (wakes at a threshold are a microsecond late)
    assert got["A"] == pytest.approx((0, 30 * h)) and got["B"] == pytest.approx((h, 120 * h))
    assert [j.evictions for j in result.jobs] == [1, 1]
    assert result.samples[-1].t <= result.end_s


def test_gangs_that_cannot_fit_the_node_sizes_never_run() -> None:
    # 12 GPUs as nodes of 8 and 4: a 12-GPU job is 2 workers of 6, and only one node has 6
    t = trace([TraceJob("big", 0, 10, 12, "p", workers=2), TraceJob("small", 0, 10, 4, "p")],
              {"p": 12})
    for name in POLICIES:
        got = times(run(t, name, 12, per_node=8))
        assert got["big"] == (None, None) and got["small"] == (0, 10), name
