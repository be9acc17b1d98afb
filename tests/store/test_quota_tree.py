"""Quotas that are guarantees (fairpool.services.quota_tree), on SQLite and PostgreSQL: a
department's projects may not be promised more than it has, nor the departments more GPUs than
the pool's nodes; ``over_commit`` accepts it and the department then says by how much."""

from __future__ import annotations

import time

import pytest

from fairpool.domain import GPU_UNIT
from fairpool.domain.resources import CPU_UNIT
from fairpool.schemas.queues import ProjectCreate, QueueCreate, QueueUpdate, ResourceSpec
from fairpool.services import queues
from fairpool.services.errors import Conflict, NotFound
from fairpool.store.db import Store
from fairpool.store.models import NodeRow


def _tree(store: Store) -> None:
    queues.create_department(store, QueueCreate(name="research", quota=ResourceSpec(
        gpus=4, cpus=8, memory_mib=4096)))
    queues.create_project(store, ProjectCreate(name="vision", department="research",
                                               quota=ResourceSpec(gpus=2)))
    queues.create_project(store, ProjectCreate(name="nlp", department="research",
                                               quota=ResourceSpec(gpus=1)))


def test_projects_may_not_be_promised_more_than_their_department(store: Store) -> None:
    _tree(store)
    with pytest.raises(Conflict) as refused:
        queues.create_project(store, ProjectCreate(name="big", department="research",
                                                   quota=ResourceSpec(gpus=100)))
    assert refused.value.message == (
        "department research has a GPU quota of 4 GPUs and its projects would be promised "
        "103 GPUs (big 100 GPUs, nlp 1 GPU, vision 2 GPUs); give big at most 1 GPU, raise "
        "research's quota first (`fairpool department set-quota research …`), or pass "
        "--over-commit (REST: over_commit) to promise more than there is")
    with pytest.raises(NotFound):  # refused: nothing was made
        queues.queue_status(store, "big")
    queues.create_project(store, ProjectCreate(name="big", department="research",
                                               quota=ResourceSpec(gpus=1)))  # what is left
    with pytest.raises(Conflict, match="give vision at most 2 GPUs"):
        queues.update_queue(store, "vision", QueueUpdate(quota=ResourceSpec(gpus=3)))
    with pytest.raises(Conflict, match=r"CPU quota of 8 CPUs .* promised 9 CPUs"):
        queues.update_queue(store, "nlp", QueueUpdate(quota=ResourceSpec(gpus=1, cpus=9)))
    with pytest.raises(Conflict, match="memory quota of 4096 MiB"):
        queues.update_queue(store, "nlp", QueueUpdate(quota=ResourceSpec(gpus=1,
                                                                         memory_mib=5000)))
    assert all(q.over_committed is None for q in queues.list_queues(store))


def test_a_department_may_not_go_below_what_its_projects_are_promised(store: Store) -> None:
    _tree(store)
    with pytest.raises(Conflict, match=r"department research's GPU quota would be 2 GPUs but "
                                       r"its projects' quotas add up to 3 GPUs \(nlp 1 GPU, "
                                       r"vision 2 GPUs\); lower theirs first"):
        queues.update_queue(store, "research", QueueUpdate(quota=ResourceSpec(gpus=2)))
    queues.update_queue(store, "research", QueueUpdate(quota=ResourceSpec(gpus=3, cpus=8,
                                                                          memory_mib=4096)))
    queues.delete_queue(store, "nlp")  # a deleted project is promised nothing
    queues.update_queue(store, "research", QueueUpdate(quota=ResourceSpec(gpus=2)))


def test_over_commit_is_accepted_and_shown(store: Store) -> None:
    _tree(store)
    queues.create_project(store, ProjectCreate(name="big", department="research",
                                               quota=ResourceSpec(gpus=100), over_commit=True))
    dept = queues.queue_status(store, "research")
    assert dept.over_committed is not None and dept.over_committed.gpus == 99
    assert dept.over_committed.cpus == 0
    assert queues.queue_status(store, "big").over_committed is None  # a project: never
    queues.update_queue(store, "research", QueueUpdate(quota=ResourceSpec(gpus=1),
                                                       over_commit=True))
    assert queues.queue_status(store, "research").over_committed.gpus == 102  # type: ignore[union-attr]
    # mending an over-committed tree needs no flag: a project's quota lowered (even if still
    # over), a department's raised (even if still short)
    queues.update_queue(store, "big", QueueUpdate(quota=ResourceSpec(gpus=50)))
    queues.update_queue(store, "research", QueueUpdate(quota=ResourceSpec(gpus=2)))
    assert queues.queue_status(store, "research").over_committed.gpus == 51  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="give vision at most 0 GPUs"):  # worse: refused
        queues.update_queue(store, "vision", QueueUpdate(quota=ResourceSpec(gpus=3)))
    queues.update_queue(store, "big", QueueUpdate(quota=ResourceSpec(gpus=0)))
    queues.update_queue(store, "research", QueueUpdate(quota=ResourceSpec(gpus=3)))
    assert queues.queue_status(store, "research").over_committed is None


def _gpus(store: Store, count: int) -> None:
    with store.writing() as s:
        s.add(NodeRow(name="n0", pool="default", labels={}, cpu=2 * CPU_UNIT, memory=1024,
                      simulated=True, ready=True, cordoned=False, updated_at=time.time(),
                      devices=[{"index": i, "memory_mib": 1000, "model": "sim",
                                "uuid": f"n0-{i}"} for i in range(count)]))
        Store.bump(s)


def test_departments_may_not_be_promised_more_gpus_than_the_pool_has(store: Store) -> None:
    queues.create_department(store, QueueCreate(name="big", quota=ResourceSpec(gpus=100)))
    _gpus(store, 6)  # no nodes were known: no pool total was checked; now there are 6 GPUs
    with pytest.raises(Conflict, match=r"the departments' GPU quotas would add up to 101 GPUs "
                                       r"but the pool has 6 GPUs \(big 100 GPUs, small 1 GPU\)"
                                       r"; give small at most 0 GPUs"):
        queues.create_department(store, QueueCreate(name="small", quota=ResourceSpec(gpus=1)))
    queues.update_queue(store, "big", QueueUpdate(quota=ResourceSpec(gpus=4)))
    queues.create_department(store, QueueCreate(name="small", quota=ResourceSpec(gpus=2)))
    with pytest.raises(Conflict, match="give small at most 2 GPUs"):
        queues.update_queue(store, "small", QueueUpdate(quota=ResourceSpec(gpus=3)))
    queues.update_queue(store, "small", QueueUpdate(quota=ResourceSpec(gpus=3),
                                                    over_commit=True))
    # the pool is over-committed now; a department that asks for no GPUs is still welcome
    queues.create_department(store, QueueCreate(name="none"))
    assert queues.queue_status(store, "small").quota.gpus * GPU_UNIT == 3 * GPU_UNIT
