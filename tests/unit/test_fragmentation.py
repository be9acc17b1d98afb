"""Fragmentation-aware placement of fractions (Strategy.FRAGMENTATION): hand-worked choices
where bin-pack and fragmentation differ, the scores against the measure they stand for, and
bin-pack's choice on ties."""

from __future__ import annotations

import itertools

from fairpool.domain import GPU_UNIT, Job, JobState, Node, Queue, WorkerPlacement, WorkerRequest
from fairpool.scheduler import SchedulerConfig, Snapshot, Strategy, schedule
from fairpool.scheduler.fragmentation import Fragmentation, WorkloadMix, workload_mix
from fairpool.scheduler.plan import Plan
from tests.helpers import frac, job, project

QUEUES = (Queue("d"), project("p"))


def held(jid: str, f: float, node: str, device: int) -> Job:
    """A running fraction ``f`` of device ``device`` of ``node`` (40 GB devices)."""
    milli = round(f * GPU_UNIT)
    return Job(jid, "p", WorkerRequest(gpu_fraction=f), state=JobState.RUNNING, started_at=0.0,
               placements=(WorkerPlacement(0, node, (device,), milli, milli * 40),))


def plan_for(jobs: list[Job], strategy: Strategy, gpus: int = 2) -> Plan:
    snap = Snapshot((Node.with_gpus("n0", gpus, gpu_memory_mib=40000),), QUEUES, tuple(jobs),
                    now=10.0)
    # (consolidation off: the choice of placement alone is compared)
    return schedule(snap, SchedulerConfig(strategy=strategy, consolidate=False))


def devices(plan: Plan) -> dict[str, tuple[int, ...]]:
    return {b.job_id: b.placements[0].devices for b in plan.binds}


def test_fragmentation_leaves_room_for_the_next_half_gpu_jobs_where_binpack_does_not() -> None:
    """One node of two GPUs: A (device 0) holds a 0.25 job, 0.75 free; B (device 1) holds a
    0.5 job, 0.5 free. Waiting, in this order: a 0.25 job ``f``, then two 0.5 jobs ``h1`` and
    ``h2``. The mix (waiting and running workers) is two of 0.25 and three of 0.5 (5 workers).

    Bin-pack puts ``f`` on B, the least free device it fits on: B keeps 0.25. Then ``h1`` goes
    on A (0.75 → 0.25) and ``h2`` fits nowhere.

    Fragmentation scores each device by the rise of the node's fragmentation (× 5 workers):

    * on B: B keeps 250 milli-GPUs; a 0.25 worker can use them (fragment 0), a 0.5 worker
      cannot (fragment 250, for 3 workers): 0 × 2 + 250 × 3 = 750 (F rises by 0.15 GPU);
    * on A: A keeps 500, which both shapes can use: 0.

    So ``f`` goes on A; A and B then have 0.5 free each, and ``h1`` and ``h2`` both run."""
    jobs = [held("a", 0.25, "n0", 0), held("b", 0.5, "n0", 1),
            frac("f", "p", 0.25, t=1), frac("h1", "p", 0.5, t=2), frac("h2", "p", 0.5, t=3)]
    mix = workload_mix(jobs, 40000)
    assert mix == WorkloadMix(fractions=((250, 2), (500, 3)))
    scores = Fragmentation(mix)
    assert (scores.partial(500, 250), scores.partial(750, 250)) == (750, 0)

    packed = plan_for(jobs, Strategy.BINPACK)
    assert devices(packed) == {"f": (1,), "h1": (0,)}
    assert packed.pending["h2"].code == "NO_CAPACITY"

    fragmented = plan_for(jobs, Strategy.FRAGMENTATION)
    assert devices(fragmented)["f"] == (0,)
    assert {devices(fragmented)["h1"], devices(fragmented)["h2"]} == {(0,), (1,)}
    assert "h2" not in fragmented.pending


def test_a_fraction_breaks_a_free_gpu_rather_than_strand_a_half() -> None:
    """Two GPUs: device 0 holds a 0.5 job (0.5 free), device 1 is free. Waiting: a 0.25 job
    ``f`` and a 0.5 job ``h``; with the running 0.5 job the mix is one 0.25 worker and two of
    0.5, no whole GPUs.

    Bin-pack puts ``f`` on the partly used device 0: it keeps 0.25, a fragment to both 0.5
    workers: score 2 × 250 = 500. On the free device 1 it leaves 0.75, which every shape can
    use, and no whole-GPU worker is in the mix to miss the free GPU: score 0. So fragmentation
    breaks device 1 and keeps 0.5 and 0.75 free, both usable by every shape of the mix, where
    bin-pack strands 0.25 on device 0 that the 0.5 workers cannot use."""
    jobs = [held("a", 0.5, "n0", 0), frac("f", "p", 0.25, t=1), frac("h", "p", 0.5, t=2)]
    scores = Fragmentation(workload_mix(jobs, 40000))
    assert (scores.partial(500, 250), scores.whole(1, 250)) == (500, 0)
    assert devices(plan_for(jobs, Strategy.BINPACK))["f"] == (0,)
    assert devices(plan_for(jobs, Strategy.FRAGMENTATION))["f"] == (1,)


def test_a_whole_gpu_job_in_the_mix_keeps_fractions_off_the_last_free_gpu() -> None:
    """The same state with a waiting 1-GPU job ``w`` in the mix (one 0.25, one 0.5 running,
    one whole): breaking device 1 (the node's only free GPU, W = 1 = k) strands it for ``w``:
    score 0 (fractions) + (750 + 0 × 1000) = 750; on device 0 the 0.25 left is a fragment to
    the 0.5 worker (250) and the share taken was one to ``w`` (−250): 0. Fragmentation agrees
    with bin-pack, and ``w`` gets device 1."""
    jobs = [held("a", 0.5, "n0", 0), frac("f", "p", 0.25, t=1), job("w", "p", g=1, t=2)]
    scores = Fragmentation(workload_mix(jobs, 40000))
    assert (scores.partial(500, 250), scores.whole(1, 250)) == (0, 750)
    plan = plan_for(jobs, Strategy.FRAGMENTATION)
    assert devices(plan) == {"f": (0,), "w": (1,)}


def test_scores_are_the_rise_of_the_measure() -> None:
    """Every score is F(after) − F(before) of the node, for every state of a 3-GPU node in
    quarters and every share and mix tried."""
    mixes = [WorkloadMix(((250, 2), (500, 3))), WorkloadMix(((500, 1),), ((1, 4), (2, 1))),
             WorkloadMix((), ((3, 1),)), WorkloadMix(((300, 1), (750, 2)), ((1, 1),))]
    for mix, share in itertools.product(mixes, (250, 500, 300)):
        scores = Fragmentation(mix)
        for frees in itertools.product((0, 250, 500, 750, 1000), repeat=3):
            whole = frees.count(GPU_UNIT)
            for d, free in enumerate(frees):
                if free < share:
                    continue
                after = list(frees)
                after[d] -= share
                rise = scores.fragmentation(after) - scores.fragmentation(frees)
                assert scores.device(free, whole, share) == rise, (mix, frees, d, share)


def test_equal_scores_give_binpacks_plan() -> None:
    """Only 0.25 workers in the mix: no choice leaves a fragment, every score is 0, and the
    plan is bin-pack's to the device."""
    jobs = [held("a", 0.25, "n0", 0), held("b", 0.25, "n0", 2)]
    jobs += [frac(f"f{i}", "p", 0.25, t=i) for i in range(6)]
    assert Fragmentation(workload_mix(jobs, 40000)).order([750], [2], 250) == [("p", 750),
                                                                               ("w", 2)]
    packed = plan_for(jobs, Strategy.BINPACK, gpus=4)
    assert plan_for(jobs, Strategy.FRAGMENTATION, gpus=4).binds == packed.binds
    assert len(packed.binds) == 6


def test_whole_gpus_are_binpacked_as_ever() -> None:
    jobs = [held("a", 0.5, "n0", 0)] + [job(f"w{i}", "p", g=1, t=i) for i in range(3)]
    packed = plan_for(jobs, Strategy.BINPACK, gpus=4)
    assert plan_for(jobs, Strategy.FRAGMENTATION, gpus=4).binds == packed.binds
