"""Deleting projects and departments, on SQLite and PostgreSQL: refused while a project has
live jobs or a department has projects (the message names them), a soft delete that hides the
queue from listings, submits and the scheduler but keeps its finished jobs, a create of the
same name that revives it with the new spec, and the ordering of a delete against a submit in
flight (both take the generation row first)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from fairpool.control.loop import ControlLoop
from fairpool.control.settings import LoopSettings
from fairpool.executors.fake import FakeExecutor
from fairpool.executors.gpus import local_node
from fairpool.schemas.jobs import JobSubmit
from fairpool.schemas.queues import (
    IdlePolicySpec,
    LimitSpec,
    ProjectCreate,
    QueueCreate,
    QueueUpdate,
    ResourceSpec,
)
from fairpool.services import jobs, queues
from fairpool.services import submission as sub
from fairpool.services.errors import Conflict, NotFound
from fairpool.store.db import Store
from fairpool.store.models import AuditRow, JobRow, QueueRow, RoleBindingRow, SecretRow

SPEC = JobSubmit(project="vision", command=["train"], gpus=1)


def setup(store: Store) -> None:
    queues.create_department(store, QueueCreate(name="research", quota=ResourceSpec(gpus=4)))
    for name in ("vision", "nlp"):
        queues.create_project(store, ProjectCreate(name=name, department="research",
                                                   quota=ResourceSpec(gpus=2)))


def generation(store: Store) -> int:
    with store.session() as s:
        return store.generation(s)


def test_a_project_with_live_jobs_is_kept_and_named(store: Store) -> None:
    setup(store)
    ids = [jobs.submit(store, SPEC)[0].id for _ in range(5)]
    with pytest.raises(Conflict) as refused:
        queues.delete_queue(store, "vision")
    message = str(refused.value)
    assert message.startswith("project vision has 5 live jobs (")
    assert f"{ids[0]} queued" in message and "and 2 more" in message
    assert "cancel them" in message
    assert [q.name for q in queues.list_queues(store)] == ["nlp", "research", "vision"]
    for job_id in ids:
        jobs.cancel(store, job_id)
    before = generation(store)
    queues.delete_queue(store, "vision", actor="alice")
    assert generation(store) > before  # the loop re-reads the queues
    assert [q.name for q in queues.list_queues(store)] == ["nlp", "research"]
    with pytest.raises(NotFound, match="queue vision does not exist"):
        queues.queue_status(store, "vision")
    with pytest.raises(NotFound, match="project vision does not exist"):
        jobs.submit(store, SPEC)
    with pytest.raises(NotFound, match="does not exist"):
        queues.update_queue(store, "vision", QueueUpdate(priority=2))
    with pytest.raises(NotFound, match="does not exist"):
        queues.delete_queue(store, "vision")
    # its finished jobs stay, with their project
    assert {j.project for j in jobs.list_jobs(store, project="vision")} == {"vision"}
    assert jobs.get_job(store, ids[0]).state == "cancelled"
    with store.session() as s:
        row = s.get(QueueRow, "vision")
        assert row is not None and row.deleted_at is not None
        audit = s.execute(select(AuditRow).where(AuditRow.action == "queue.delete")).scalar_one()
    assert (audit.actor, audit.target) == ("alice", "vision")


def test_a_department_with_projects_is_kept_and_they_are_listed(store: Store) -> None:
    setup(store)
    with pytest.raises(Conflict, match=r"department research still has 2 projects "
                                       r"\(nlp, vision\); delete them first"):
        queues.delete_queue(store, "research")
    queues.delete_queue(store, "nlp")
    with pytest.raises(Conflict, match=r"still has 1 project \(vision\)"):
        queues.delete_queue(store, "research")
    queues.delete_queue(store, "vision")
    queues.delete_queue(store, "research")
    assert queues.list_queues(store) == []
    with pytest.raises(NotFound, match="department research does not exist"):
        queues.create_project(store, ProjectCreate(name="audio", department="research"))


def test_a_create_revives_a_deleted_queue_with_the_new_spec_only(store: Store) -> None:
    setup(store)
    queues.create_department(store, QueueCreate(name="media", quota=ResourceSpec(gpus=1)))
    queues.update_queue(store, "vision", QueueUpdate(
        limit=LimitSpec(gpus=3), over_quota_weight=5, default_max_runtime_s=60,
        idle=IdlePolicySpec(action="notify", threshold=0.2, after_s=10)))
    with store.writing() as s:
        s.execute(insert(RoleBindingRow).values(subject="bob", role="researcher",
                                                scope="vision", created_by="admin",
                                                created_at=time.time()))
        s.execute(insert(SecretRow).values(project="vision", name="TOKEN", ciphertext="x",
                                           updated_by="admin", updated_at=time.time()))
        s.get_one(QueueRow, "vision").fair_gpu = 1500
    queues.delete_queue(store, "vision")
    with store.session() as s:  # a revived project must not hand its old roles or secrets on
        assert s.execute(select(RoleBindingRow).where(RoleBindingRow.scope == "vision")
                         ).first() is None
        assert s.execute(select(SecretRow)).first() is None
    with pytest.raises(Conflict, match="already exists"):
        queues.create_project(store, ProjectCreate(name="nlp", department="research"))
    out = queues.create_project(store, ProjectCreate(name="vision", department="media",
                                                     quota=ResourceSpec(gpus=1)))
    assert (out.name, out.parent, out.kind, out.quota.gpus) == ("vision", "media", "project", 1)
    assert out.limit is None and out.over_quota_weight == 1 and out.fair_share is None
    with store.session() as s:
        row = s.get_one(QueueRow, "vision")
        assert row.deleted_at is None and row.idle_action == "none"
        assert row.default_max_runtime_s is None
    job, _ = jobs.submit(store, SPEC)
    assert job.project == "vision"
    # a deleted department comes back as a project, and the other way round
    queues.delete_queue(store, "nlp")
    assert queues.create_department(store, QueueCreate(name="nlp")).kind == "department"


def test_the_scheduler_sees_no_deleted_queue(store: Store, tmp_path: Path) -> None:
    setup(store)
    loop = ControlLoop(store, FakeExecutor([local_node(2, name="node-a")]), tmp_path,
                       LoopSettings(grace_s=5, reasons_every_s=0))
    loop.sync_nodes()
    loop.step()
    assert {q.name for q in loop._snapshot().queues} == {"research", "vision", "nlp"}
    queues.delete_queue(store, "nlp")
    assert {q.name for q in loop._snapshot().queues} == {"research", "vision"}
    queues.create_project(store, ProjectCreate(name="nlp", department="research"))
    assert {q.name for q in loop._snapshot().queues} == {"research", "vision", "nlp"}


def _submit_in_write_transaction(store: Store, hold: threading.Event | None = None) -> str:
    """What a submit does in its write transaction (services/jobs.py): the generation row
    first, then the project's check, then the insert; ``hold``: wait before committing."""
    values = sub.row_values(SPEC, sub.priority_class(SPEC), QueueRow(name="vision"), "bob",
                            time.time(), sub.request_hash(SPEC), [], None)
    with store.writing() as s:
        values["seq"] = Store.bump(s)
        sub.project_row(s, "vision")
        s.execute(insert(JobRow).values(**values))
        if hold is not None:
            hold.wait(10)
    return str(values["id"])


def _in_thread(fn: object) -> tuple[threading.Thread, list[object], threading.Event]:
    """Run ``fn`` in a thread; its result or exception lands in the list, then the event."""
    out: list[object] = []
    done = threading.Event()

    def run() -> None:
        try:
            out.append(fn())  # type: ignore[operator]
        except Exception as exc:
            out.append(exc)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out, done


def test_a_delete_waits_for_a_submit_in_flight_and_then_sees_its_job(store: Store) -> None:
    setup(store)
    hold = threading.Event()
    submitter, submitted, _ = _in_thread(lambda: _submit_in_write_transaction(store, hold))
    time.sleep(0.3)  # the submit has bumped and inserted, and holds its transaction
    deleter, deleted, done = _in_thread(lambda: queues.delete_queue(store, "vision"))
    assert not done.wait(0.5), "the delete did not wait for the submit's transaction"
    hold.set()
    submitter.join(10)
    deleter.join(10)
    (job_id,) = submitted
    assert isinstance(job_id, str)
    (refused,) = deleted
    assert isinstance(refused, Conflict), refused
    assert f"{job_id} queued" in str(refused)
    assert [q.name for q in queues.list_queues(store)] == ["nlp", "research", "vision"]


def test_a_submit_after_a_delete_in_flight_finds_no_project(store: Store) -> None:
    setup(store)
    hold = threading.Event()

    def delete() -> None:
        with store.writing() as s:
            queues.delete_in(s, "vision", "alice", "")
            hold.wait(10)

    deleter, _, _ = _in_thread(delete)
    time.sleep(0.3)
    submitter, submitted, done = _in_thread(lambda: _submit_in_write_transaction(store))
    assert not done.wait(0.5), "the submit did not wait for the delete's transaction"
    hold.set()
    deleter.join(10)
    submitter.join(10)
    (refused,) = submitted
    assert isinstance(refused, NotFound) and "project vision does not exist" in str(refused)
    with store.session() as s:
        assert s.execute(select(JobRow)).first() is None
