"""The domain's accounting (fairpool.domain.accounting): what each form of request asks for, what
placements hold, and that the scheduler's own accounting (session, plan) is exactly that."""

from __future__ import annotations

from collections import defaultdict

from fairpool.domain import (
    GPU_UNIT,
    Job,
    JobState,
    Node,
    Queue,
    Resources,
    WorkerPlacement,
    WorkerRequest,
)
from fairpool.domain.accounting import asked, asks, held, holds, reference_memory
from fairpool.scheduler import Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from fairpool.scheduler.session import Session
from tests.helpers import project

BIG = 81920  # MiB: an 80 GiB device
SMALL = 40960


def test_reference_memory_is_the_largest_device() -> None:
    assert reference_memory([SMALL, BIG, SMALL]) == BIG
    assert reference_memory([]) == 0


def test_whole_gpus_ask_devices_with_all_their_memory() -> None:
    r = WorkerRequest(gpus=2, cpu=4000, memory=1024)
    assert asked(r, 3, BIG) == Resources(6 * GPU_UNIT, 6 * BIG, 12000, 3072)


def test_a_fraction_asks_its_milli_gpus_and_that_share_of_device_memory() -> None:
    assert asked(WorkerRequest(gpu_fraction=0.5), 1, BIG) == Resources(500, BIG // 2)
    assert asked(WorkerRequest(gpu_fraction=0.25, cpu=1000), 2, BIG) == Resources(
        500, BIG // 2, 2000)
    # a tiny fraction still asks one milli-GPU
    assert asked(WorkerRequest(gpu_fraction=0.0001), 1, BIG).gpu == 1


def test_gpu_memory_asks_its_share_of_the_reference_device_rounded_up() -> None:
    r = WorkerRequest(gpu_memory_mib=20_000)
    assert asked(r, 1, BIG) == Resources(245, 20_000)  # 20000/81920 = 0.2441…
    assert asked(r, 4, BIG) == Resources(980, 80_000)  # per worker, times the workers
    assert asked(r, 1, SMALL) == Resources(489, 20_000)  # 0.4882… of a smaller device
    assert asked(WorkerRequest(gpu_memory_mib=BIG), 1, BIG).gpu == GPU_UNIT
    # the example: 0.5 of a device and 20,000 MiB on 80 GiB devices are 0.745 GPUs
    both = asked(WorkerRequest(gpu_fraction=0.5), 1, BIG) + asked(r, 1, BIG)
    assert both.gpu == 745


def test_cpu_only_jobs_ask_no_gpu() -> None:
    assert asked(WorkerRequest(cpu=2000, memory=512), 2, BIG) == Resources(0, 0, 4000, 1024)


def test_held_sums_every_workers_share_of_every_device() -> None:
    gang = (WorkerPlacement(0, "n0", (0, 1), GPU_UNIT, BIG),
            WorkerPlacement(1, "n1", (2, 3), GPU_UNIT, BIG))
    assert held(WorkerRequest(gpus=2, cpu=1000, memory=10), gang) == Resources(
        4 * GPU_UNIT, 4 * BIG, 2000, 20)
    shared = (WorkerPlacement(0, "n0", (3,), 245, 20_000),)
    assert held(WorkerRequest(gpu_memory_mib=20_000), shared) == Resources(245, 20_000)
    cpu_only = (WorkerPlacement(0, "n0", (), 0, 0), WorkerPlacement(1, "n0", (), 0, 0))
    assert held(WorkerRequest(cpu=500, memory=64), cpu_only) == Resources(0, 0, 1000, 128)
    assert held(WorkerRequest(gpus=1), ()) == Resources.ZERO


def _jobs() -> tuple[Job, ...]:
    return (
        Job("half", "vision", WorkerRequest(gpu_fraction=0.5, cpu=1000, memory=100)),
        Job("mem", "vision", WorkerRequest(gpu_memory_mib=20_000, cpu=500)),
        Job("gang", "nlp", WorkerRequest(gpus=1, cpu=2000, memory=1000), workers=2),
        Job("memgang", "nlp", WorkerRequest(gpu_memory_mib=30_000), workers=3, spread=True),
        Job("cpu", "nlp", WorkerRequest(cpu=3000, memory=2048), workers=2),
    )


def _snapshot(jobs: tuple[Job, ...]) -> Snapshot:
    cluster = (Node.with_gpus("big", 4, gpu_memory_mib=BIG),
               Node.with_gpus("small", 2, gpu_memory_mib=SMALL))
    queues = (Queue("d"), project("vision", quota=2), project("nlp", quota=2))
    return Snapshot(cluster, queues, jobs)


def _per_queue(jobs: tuple[Job, ...]) -> dict[str, Resources]:
    out: dict[str, Resources] = defaultdict(lambda: Resources.ZERO)
    for j in jobs:
        out[j.project] += holds(j)
        out["d"] += holds(j)
    return dict(out)


def test_a_placed_worker_holds_its_request_valued_on_the_device_it_got() -> None:
    snap = _snapshot(_jobs())
    plan = schedule(snap)
    placed = {b.job_id: b.placements for b in plan.binds}
    assert set(placed) == {j.id for j in snap.jobs}
    memory = {(n.name, d.index): d.memory_mib for n in snap.nodes for d in n.devices}
    ref = reference_memory(memory.values())
    assert ref == BIG
    on_small = 0
    for job in snap.jobs:
        per_worker = [asked(job.request, 1, memory[p.node, p.devices[0]] if p.devices else ref)
                      for p in placed[job.id]]
        assert held(job.request, placed[job.id]) == sum(per_worker, Resources.ZERO), job.id
        if all(p.node == "big" for p in placed[job.id]):
            assert held(job.request, placed[job.id]) == asks(job, ref), job.id
        else:
            on_small += 1
    assert on_small  # the spread GPU-memory gang reaches the 40 GiB devices


def test_the_scheduler_accounts_exactly_what_the_domain_says() -> None:
    snap = _snapshot(_jobs())
    plan = schedule(snap)
    after = apply_plan(snap, plan)
    expected = _per_queue(after.jobs)
    assert expected["vision"].gpu >= 745 and expected["nlp"].gpu > 2 * GPU_UNIT
    # the plan's allocation: every queue fair_shares has, leaf and parent
    assert set(plan.allocated) == set(plan.fair_shares)
    assert {q: r for q, r in plan.allocated.items() if r != Resources.ZERO} == expected
    # the next cycle starts from it: its session counts the same, and so does its plan
    session = Session(after)
    assert {session.queue_names[q]: Resources(*a) for q, a in enumerate(session.q_alloc)
            if any(a)} == expected
    again = schedule(after)
    assert not again.changes
    assert {q: r for q, r in again.allocated.items() if r != Resources.ZERO} == expected


def test_a_stopping_job_still_holds_its_devices() -> None:
    snap = apply_plan(_snapshot(_jobs()), schedule(_snapshot(_jobs())))
    gang = next(j for j in snap.jobs if j.id == "gang")
    stopping = Job(gang.id, gang.project, gang.request, workers=gang.workers,
                   state=JobState.STOPPING, placements=gang.placements)
    assert holds(stopping) == holds(gang)
    assert (holds(gang).gpu, holds(gang).cpu, holds(gang).memory) == (2 * GPU_UNIT, 4000, 2000)
    assert holds(Job("w", "nlp", WorkerRequest(gpus=1))) == Resources.ZERO  # waiting


def test_total_gpus_milli_is_the_held_share_once_placed() -> None:
    snap = apply_plan(_snapshot(_jobs()), schedule(_snapshot(_jobs())))
    for job in snap.jobs:
        assert job.total_gpus_milli == holds(job).gpu, job.id
    waiting = {j.id: j.total_gpus_milli for j in _jobs()}
    # not placed: whole GPUs and fractions exactly; GPU memory as at most a device per worker
    assert waiting == {"half": 500, "mem": GPU_UNIT, "gang": 2 * GPU_UNIT,
                       "memgang": 3 * GPU_UNIT, "cpu": 0}
