"""The node circuit breaker's decision, through the control loop with the fake executor on
SQLite and PostgreSQL: which failures point at a node (lost workers, the machine's start
failures, the job's own kinds once per user and per project), that one job counts once,
that the last node is never cordoned, and that the reason names no job."""

from __future__ import annotations

import errno
from pathlib import Path

from fairpool.control.loop import ControlLoop
from fairpool.control.settings import LoopSettings
from fairpool.executors.base import Failure, WorkerPhase, WorkerStatus, start_failure
from fairpool.executors.fake import FakeExecutor
from fairpool.executors.gpus import local_node
from fairpool.schemas.jobs import JobSubmit
from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from fairpool.services import jobs, nodes, queues
from fairpool.store.db import Store

NODES = ("node-a", "node-b", "node-c")


def make(store: Store, tmp_path: Path) -> tuple[ControlLoop, FakeExecutor]:
    queues.create_department(store, QueueCreate(name="d", quota=ResourceSpec(gpus=24)))
    for name in ("p1", "p2", "p3"):
        queues.create_project(store, ProjectCreate(name=name, department="d",
                                                   quota=ResourceSpec(gpus=8)))
    fake = FakeExecutor([local_node(8, name=n, pool=n) for n in NODES])
    loop = ControlLoop(store, fake, tmp_path, LoopSettings(
        grace_s=5, reasons_every_s=0, breaker_failures=3, breaker_window_s=60,
        breaker_cooldown_s=60))
    loop.sync_nodes()
    return loop, fake


def run(loop: ControlLoop, fake: FakeExecutor, store: Store, who: list[tuple[str, str]],
        node: str = "node-a") -> list[str]:
    """Start one job per (user, project) on ``node``; returns their worker ids."""
    ids = [jobs.submit(store, JobSubmit(project=p, command=["x"], gpus=1, node_pool=node),
                       actor=user)[0].id for user, p in who]
    loop.step()
    loop.step()
    return [w for w, s in fake.started.items() if s.job_id in ids and w in fake.running]


def cordoned(store: Store) -> dict[str, str | None]:
    return {n.name: n.cordon_reason for n in nodes.list_nodes(store) if n.cordoned}


def end(fake: FakeExecutor, status: WorkerStatus) -> None:
    fake._end(status)  # an end the fake has no helper for (how an executor reports it)


def test_one_users_command_and_signal_failures_never_cordon(store: Store,
                                                            tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    # one researcher in two projects, and two members of one project: six jobs each node
    for node, who in (("node-a", [("rita", "p1"), ("rita", "p2")] * 3),
                      ("node-b", [("rita", "p1"), ("ralph", "p1")] * 3)):
        workers = run(loop, fake, store, who, node)
        assert len(workers) == 6
        for i, wid in enumerate(workers):
            fake.finish(wid, 127 if i % 2 else -9)
        loop.step()
    assert cordoned(store) == {}


def test_command_failures_of_three_users_in_three_projects_cordon(store: Store,
                                                                  tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    # two users in two projects, twice each: two count (one per user and project), not enough
    workers = run(loop, fake, store, [("rita", "p1"), ("oscar", "p2")] * 2)
    for wid in workers:
        fake.finish(wid, 127)
    loop.step()
    assert cordoned(store) == {}
    # a third user in a third project: three count
    workers += run(loop, fake, store, [("sam", "p3")])
    fake.finish(workers[-1], 127)
    loop.step()
    job_ids = {fake.started[w].job_id for w in workers}
    reason = cordoned(store)["node-a"]
    assert reason is not None and reason.startswith(
        "workers of 3 jobs failed here within 60 s: 3 could not run their command (jobs of 3 "
        "users in 3 projects); cordoned until ")
    assert not any(j in reason for j in job_ids)
    told = [j for j in job_ids if any(e.kind == "node-cordoned" and "node node-a" in e.message
                                      for e in jobs.events(store, j))]
    assert len(told) == 3  # each failing job that counted is told its own node was cordoned


def test_a_flood_does_not_make_another_tenants_failure_decisive(store: Store,
                                                                tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    for wid in run(loop, fake, store, [("rita", "p1")] * 6):
        fake.finish(wid, 127)
    loop.step()
    (innocent,) = run(loop, fake, store, [("oscar", "p2")])
    fake.finish(innocent, -11)  # a segfault of its own
    loop.step()
    assert cordoned(store) == {}
    # nor does it hide those of others: with a third tenant's, three count
    for wid in run(loop, fake, store, [("oscar", "p2")] * 5 + [("sam", "p3")]):
        fake.finish(wid, 127)
    loop.step()
    assert list(cordoned(store)) == ["node-a"]


def test_lost_workers_and_machine_start_failures_cordon_whoever_ran(store: Store,
                                                                    tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    workers = run(loop, fake, store, [("rita", "p1")] * 3)
    fake.lose(workers[0])
    fake.lose(workers[1])
    end(fake, WorkerStatus(workers[2], WorkerPhase.EXITED, 126, "cannot fork",
                           failure=start_failure(OSError(errno.EAGAIN, "again"))))
    loop.step()
    reason = cordoned(store)["node-a"] or ""
    assert "workers of 3 jobs failed here" in reason and "2 lost, 1 could not be started" in (
        reason) and "users" not in reason


def test_one_job_counts_once_and_ordinary_or_final_ends_never(store: Store,
                                                              tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    workers = run(loop, fake, store, [("rita", "p1"), ("oscar", "p2"), ("oscar", "p2")])
    fake.finish(workers[0], 1)  # ordinary exit code
    end(fake, WorkerStatus(workers[1], WorkerPhase.EXITED, 126, "no account", final=True))
    fake.lose(workers[2])
    loop.step()
    assert cordoned(store) == {}
    # a retried job that is lost again and again on the node is one job
    job_id = jobs.submit(store, JobSubmit(project="p1", command=["x"], gpus=1,
                                          node_pool="node-a", max_retries=5), actor="rita")[0].id
    for _ in range(3):
        loop.step()
        loop.step()
        (wid,) = [w for w in fake.running if fake.started[w].job_id == job_id]
        fake.lose(wid)
        loop.step()
    assert cordoned(store) == {}


def test_the_last_node_that_can_take_work_is_never_cordoned(store: Store,
                                                           tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    for node in NODES:
        workers = run(loop, fake, store, [("rita", "p1")] * 3, node)
        for wid in workers:
            fake.lose(wid)
        loop.step()
    assert sorted(cordoned(store)) == ["node-a", "node-b"]


def test_how_an_end_is_told() -> None:
    def fault(code: int | None, **kw: object) -> Failure | None:
        phase = WorkerPhase.LOST if code is None else WorkerPhase.EXITED
        return WorkerStatus("w", phase, code, **kw).fault()  # type: ignore[arg-type]

    assert fault(None) == Failure.LOST
    assert fault(0) is None and fault(1) == Failure.EXIT
    assert fault(127) == fault(126) == Failure.COMMAND
    assert fault(-9) == Failure.SIGNAL
    assert fault(126, final=True) == Failure.FINAL
    assert fault(-15, failure=Failure.STOPPED) == Failure.STOPPED
    assert WorkerStatus("w", WorkerPhase.RUNNING).fault() is None
    for number in (errno.EAGAIN, errno.ENOMEM, errno.ENOSPC):
        assert start_failure(OSError(number, "x")) == Failure.START
    for exc in (FileNotFoundError(errno.ENOENT, "x"), PermissionError(errno.EACCES, "x"),
                OSError(errno.E2BIG, "x"), ValueError("embedded null byte")):
        assert start_failure(exc) == Failure.COMMAND
