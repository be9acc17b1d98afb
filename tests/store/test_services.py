"""Services on SQLite and PostgreSQL: queues, submit (idempotent), cancel, status."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

from fairpool.schemas.jobs import JobSubmit
from fairpool.schemas.queues import LimitSpec, ProjectCreate, QueueCreate, QueueUpdate, ResourceSpec
from fairpool.services import jobs, queues
from fairpool.services.errors import Conflict, Invalid, NotFound
from fairpool.store.db import Store
from fairpool.store.models import JobEventRow, JobRow


def setup_queues(store: Store) -> None:
    queues.create_department(store, QueueCreate(name="research", quota=ResourceSpec(gpus=4)))
    queues.create_project(store, ProjectCreate(name="vision", department="research",
                                               quota=ResourceSpec(gpus=2)))


def test_migrations_create_the_schema_and_are_idempotent(store: Store) -> None:
    store.migrate()
    tables = set(inspect(store.engine).get_table_names())
    assert {"queues", "nodes", "jobs", "job_events", "store_meta", "alembic_version"} <= tables
    with store.session() as s:
        assert store.generation(s) == 0


def test_queues(store: Store) -> None:
    setup_queues(store)
    with pytest.raises(Conflict, match="already exists"):
        queues.create_department(store, QueueCreate(name="research"))
    with pytest.raises(NotFound, match="department nope does not exist"):
        queues.create_project(store, ProjectCreate(name="x", department="nope"))
    with pytest.raises(Invalid, match="quota is above its limit"):
        queues.create_project(store, ProjectCreate(name="y", department="research",
                                                   quota=ResourceSpec(gpus=4),
                                                   limit=LimitSpec(gpus=2)))
    out = queues.update_queue(store, "vision", QueueUpdate(limit=LimitSpec(
        gpus=3, cpus=1000, memory_mib=1 << 30), over_quota_weight=3))
    assert out.limit is not None and out.limit.gpus == 3 and out.over_quota_weight == 3
    # a resource left out of a limit is unlimited (null), not capped at 0
    out = queues.update_queue(store, "vision", QueueUpdate(limit=LimitSpec(gpus=4)))
    assert out.limit is not None and (out.limit.gpus, out.limit.cpus, out.limit.memory_mib) == (
        4, None, None)
    out = queues.update_queue(store, "vision", QueueUpdate(unlimited=True))
    assert out.limit is None
    with pytest.raises(NotFound):
        queues.update_queue(store, "ghost", QueueUpdate(priority=1))
    names = [q.name for q in queues.list_queues(store, None)]
    assert names == ["research", "vision"]
    with store.session() as s:
        assert store.generation(s) >= 4  # every change is seen by the scheduler


def test_submit_is_idempotent_with_a_client_key(store: Store) -> None:
    setup_queues(store)
    spec = JobSubmit(project="vision", command=["python", "train.py"], gpus=1,
                     client_key="run-1")
    first, created = jobs.submit(store, spec)
    again, created_again = jobs.submit(store, spec)
    assert created and not created_again and first.id == again.id
    with pytest.raises(Conflict, match="different request"):
        jobs.submit(store, spec.model_copy(update={"gpus": 2}))
    with pytest.raises(NotFound, match="project ghost does not exist"):
        jobs.submit(store, JobSubmit(project="ghost", command=["true"]))
    with pytest.raises(Invalid, match="known classes"):
        jobs.submit(store, JobSubmit(project="vision", command=["true"], priority="urgent"))
    with store.session() as s:
        assert len(s.execute(select(JobRow)).scalars().all()) == 1
        events = s.execute(select(JobEventRow)).scalars().all()
        assert [e.kind for e in events] == ["submitted"]
    listed = jobs.list_jobs(store, project="vision")
    assert [j.id for j in listed] == [first.id]
    with pytest.raises(Invalid, match="unknown state"):
        jobs.list_jobs(store, state="sleeping")


def test_priority_classes_decide_preemptibility(store: Store) -> None:
    setup_queues(store)
    build, _ = jobs.submit(store, JobSubmit(project="vision", command=["make"], priority="build"))
    assert build.priority == "build" and not build.preemptible
    train, _ = jobs.submit(store, JobSubmit(project="vision", command=["t"],
                                            preemptible=False))
    assert train.priority == "train" and not train.preemptible


def test_cancel_of_a_queued_job(store: Store) -> None:
    setup_queues(store)
    job, _ = jobs.submit(store, JobSubmit(project="vision", command=["true"]))
    assert jobs.cancel(store, job.id).state == "cancelled"
    with pytest.raises(Conflict, match="already finished"):
        jobs.cancel(store, job.id)
    with pytest.raises(NotFound):
        jobs.cancel(store, "0123456789ab")
    assert [e.kind for e in jobs.events(store, job.id)] == ["submitted", "cancelled"]
    assert jobs.explain(store, job.id).reason == ("finished: cancelled (cancelled by system "
                                                  "before it started)")
