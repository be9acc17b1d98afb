"""The loop's window on job arrays (fairpool.control.gates.window and admissible): the scheduler
sees an array's waiting tasks lowest index first, one more than the whole pool could hold, and
decides what it would have decided seeing them all."""

from __future__ import annotations

from dataclasses import replace

from fairpool.control.gates import Capacity, Gate, admissible, window
from fairpool.domain import Job, JobState, Node, Queue, WorkerRequest
from fairpool.scheduler import Snapshot, schedule
from fairpool.scheduler.apply import apply_plan
from tests.helpers import G, frac, job, nodes, project

POOL = nodes(2, 4)  # 8 GPUs, 128 CPUs


def task(array: str, index: int, proj: str = "p", g: int = 1, state: str = "queued",
         cap: int | None = None) -> tuple[Job, Gate]:
    jid = f"{array}-{index:04d}"
    return job(jid, proj, g, t=1.0), Gate(state, array, index, cap)


def test_the_window_is_one_more_than_the_pool_holds() -> None:
    cap = Capacity.of(POOL)
    assert window(job("a", "p", 1), cap) == 9
    assert window(job("a", "p", 2), cap) == 5
    assert window(job("a", "p", 1, workers=2), cap) == 5
    assert window(frac("a", "p", 0.25), cap) == 33
    cpu_only = Job("c", "p", WorkerRequest(cpu=500), submit_time=0.0)
    assert window(cpu_only, cap) == 128 * 1000 // 500 + 1
    assert window(Job("z", "p", WorkerRequest(), submit_time=0.0), cap) is None
    # a GPU-memory request counts against the largest GPU: never fewer than could fit
    mixed = Capacity.of((Node.with_gpus("big", 1, gpu_memory_mib=80_000),
                         Node.with_gpus("small", 1, gpu_memory_mib=20_000)))
    assert window(Job("m", "p", WorkerRequest(gpu_memory_mib=20_000), submit_time=0.0),
                  mixed) == 4 + 1 + 1  # 4 on the big one, 1 on the small, one more


def test_an_array_is_shown_lowest_indices_first() -> None:
    made = [task("arr", i) for i in range(100)]
    made += [task("arr", 100 + i, state="running") for i in range(3)]
    jobs = [j for j, _ in made]
    live = {j.id: r for j, r in made}
    seen, _ = admissible(jobs, live, 0.0, Capacity.of(POOL))
    waiting = sorted(j.id for j in seen if live[j.id].state == "queued")
    assert waiting == [f"arr-{i:04d}" for i in range(9)]
    assert {f"arr-{100 + i:04d}" for i in range(3)} <= {j.id for j in seen}  # holders stay
    every, _ = admissible(jobs, live, 0.0)  # no capacity: all of them
    assert len(every) == 103


def test_a_cap_and_the_window_both_hold() -> None:
    made = [task("arr", i, cap=20) for i in range(100)]
    made += [task("arr", 100 + i, cap=20, state="running") for i in range(3)]
    live = {j.id: r for j, r in made}
    seen, _ = admissible([j for j, _ in made], live, 0.0, Capacity.of(POOL))
    assert sum(1 for j in seen if live[j.id].state == "queued") == 9  # window < 20 - 3
    small = Capacity.of(nodes(8, 4))  # 33 > 17 left by the cap
    seen, _ = admissible([j for j, _ in made], live, 0.0, small)
    assert sum(1 for j in seen if live[j.id].state == "queued") == 17


def _world() -> tuple[tuple[Queue, ...], list[Job], dict[str, Gate]]:
    queues = (Queue("d"), project("p", quota=2), project("q", quota=4), project("r"))
    made = [task("big", i, "p") for i in range(300)]
    made += [(replace(j, request=WorkerRequest(gpu_fraction=0.5)), r)
             for j, r in (task("half", i, "r") for i in range(80))]
    jobs = [j for j, _ in made] + [job(f"q{i}", "q", 1, t=2.0) for i in range(3)]
    live = {j.id: r for j, r in made}
    live.update({f"q{i}": Gate("queued") for i in range(3)})
    return queues, jobs, live


def _held(snap: Snapshot) -> dict[str, float]:
    out: dict[str, float] = {}
    for j in snap.jobs:
        if j.state in (JobState.ADMITTED, JobState.RUNNING, JobState.STARTING):
            out[j.project] = out.get(j.project, 0.0) + j.total_gpus_milli / G
    return out


def test_the_scheduler_decides_the_same_seeing_the_window() -> None:
    """Cycle after cycle (each plan applied, then some running tasks finish), the scheduler
    given the window binds as many GPUs per project and publishes the same GPU fair shares as
    the scheduler given every task."""
    queues, jobs, live = _world()
    full = Snapshot(POOL, queues, tuple(jobs))
    windowed = full
    cap = Capacity.of(POOL)
    for cycle in range(6):
        seen, _ = admissible(windowed.jobs, live, 0.0, cap)
        assert len(seen) < len(windowed.jobs) / 4
        a = schedule(full)
        b = schedule(replace(windowed, jobs=tuple(seen)))
        assert {k: v.gpu for k, v in a.fair_shares.items()} == {
            k: v.gpu for k, v in b.fair_shares.items()}, cycle
        full, windowed = apply_plan(full, a), apply_plan(windowed, b)
        assert _held(full) == _held(windowed), cycle
        for state in (full, windowed):  # the first two running tasks of p finish
            done = [j.id for j in state.jobs if j.project == "p"
                    and j.state == JobState.RUNNING][:2]
            if state is full:
                full = replace(full, jobs=tuple(j for j in full.jobs if j.id not in done))
            else:
                windowed = replace(windowed, jobs=tuple(j for j in windowed.jobs
                                                        if j.id not in done))
        for j in windowed.jobs:  # the loop's view follows the states
            if j.id in live:
                live[j.id] = replace(live[j.id], state=j.state.value)
