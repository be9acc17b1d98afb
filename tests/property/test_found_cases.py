"""Cases the property tests found, kept as plain tests so that they run every time (Hypothesis
draws new examples on every clean checkout and may not find them again).

``test_reclaim_after_a_preemption_is_not_a_second_eviction``: found on 2026-12-02 by
``test_no_ping_pong``: in one cycle p01's high-priority jobs preempt p01's own 3-GPU gang and
another p01 job was then allocated on the freed GPU, beyond p01's fair share, while p00 (below
its quota) waited; the next cycle reclaimed that job for p00: two evictions where one plan
should have given p00 the GPU at once. Fixed on 2026-12-04: the fair order tries queues below
their fair share before those at or above it, whatever their priority (priority already gave
its queues their larger fair share).
"""

from __future__ import annotations

from fairpool.domain import (
    Device,
    Job,
    JobState,
    Node,
    NodeSelector,
    Queue,
    Resources,
    WorkerPlacement,
    WorkerRequest,
)
from fairpool.scheduler import Snapshot, schedule
from fairpool.scheduler.apply import apply_plan

NO_LIMIT = 2**60
GPU = 40_000  # MiB per simulated device


def _node(name: str, gpus: int) -> Node:
    return Node(name=name, devices=tuple(Device(index=i, memory_mib=GPU, model="simulated-gpu")
                                         for i in range(gpus)),
                cpu=64_000, memory=524_288, pool="default", labels={}, ready=True,
                cordoned=False, simulated=True)


def _queue(name: str, parent: str | None, gpus: int, priority: int = 0) -> Queue:
    return Queue(name=name, parent=parent, quota=Resources(gpu=gpus * 1000, gpu_memory=0, cpu=0,
                                                           memory=0),
                 limit=Resources(gpu=NO_LIMIT, gpu_memory=NO_LIMIT, cpu=NO_LIMIT,
                                 memory=NO_LIMIT),
                 over_quota_weight=1, priority=priority)


def _job(id_: str, project: str, submit: float, *, gpus: int = 0, fraction: float | None = None,
         workers: int = 1, priority: int = 50, preemptible: bool = True,
         placements: tuple[WorkerPlacement, ...] = ()) -> Job:
    return Job(id=id_, project=project,
               request=WorkerRequest(gpus=gpus, gpu_fraction=fraction, gpu_memory_mib=None,
                                     cpu=0, memory=0),
               workers=workers, priority=priority, priority_class="train",
               preemptible=preemptible, submit_time=submit,
               selector=NodeSelector(pool=None, labels={}), same_node=False, spread=False,
               min_runtime_s=0.0, state=JobState.RUNNING if placements else JobState.QUEUED,
               placements=placements, started_at=0.0 if placements else None)


def _whole(worker: int, node: str, device: int) -> WorkerPlacement:
    return WorkerPlacement(worker=worker, node=node, devices=(device,), share=1000,
                           gpu_memory=GPU)


def test_reclaim_after_a_preemption_is_not_a_second_eviction() -> None:
    snap = Snapshot(
        nodes=(_node("n0", 1), _node("n1", 2)),
        queues=(_queue("d0", None, 3), _queue("p00", "d0", 1), _queue("p01", "d0", 2, 1)),
        jobs=(_job("j0", "p00", 0.0, gpus=1),
              _job("j1", "p01", 1.0, fraction=0.25, workers=2),
              _job("j2", "p01", 2.0, gpus=1, workers=3, priority=60, placements=(
                  _whole(0, "n0", 0), _whole(1, "n1", 0), _whole(2, "n1", 1))),
              _job("j100", "p00", 10.0, gpus=1),
              _job("j101", "p01", 11.0, fraction=0.25, priority=100, preemptible=False),
              _job("j102", "p00", 12.0, gpus=1),
              _job("j103", "p00", 13.0, gpus=1),
              _job("j104", "p01", 14.0, fraction=0.25, priority=100, preemptible=False),
              _job("j105", "p01", 15.0, fraction=0.5, workers=3, priority=100,
                   preemptible=False)),
        now=20.0, generation=2, order_keys={})
    plan = schedule(snap)
    assert [e.job_id for e in plan.evictions] == ["j2"]  # the preemption itself is right
    again = schedule(apply_plan(snap, plan))
    assert not again.evictions, again.evictions
