"""The control loop on SQLite and PostgreSQL, with the fake executor: the full life of jobs,
gang failure, reclaim with stop-then-start, and pending reasons."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fairpool.control.loop import ControlLoop
from fairpool.control.settings import LoopSettings
from fairpool.executors.fake import FakeExecutor
from fairpool.executors.gpus import local_node
from fairpool.schemas.jobs import JobSubmit
from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from fairpool.services import jobs, nodes, queues
from fairpool.store.db import Store

FAST = LoopSettings(grace_s=5, reasons_every_s=0)


def make(store: Store, tmp_path: Path, gpus: int = 4) -> tuple[ControlLoop, FakeExecutor]:
    queues.create_department(store, QueueCreate(name="research", quota=ResourceSpec(gpus=gpus)))
    for name in ("vision", "nlp"):
        queues.create_project(store, ProjectCreate(name=name, department="research",
                                                   quota=ResourceSpec(gpus=gpus / 2)))
    fake = FakeExecutor([local_node(gpus, name="node-a")])
    loop = ControlLoop(store, fake, tmp_path, FAST)
    loop.sync_nodes()
    return loop, fake


def submit(store: Store, project: str, gpus: int = 1, workers: int = 1) -> str:
    job, _ = jobs.submit(store, JobSubmit(project=project, command=["train"], gpus=gpus,
                                          workers=workers))
    return job.id


def state(store: Store, job_id: str) -> str:
    return jobs.get_job(store, job_id).state


def test_job_lifecycle(store: Store, tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    job_id = submit(store, "vision", gpus=2)
    loop.step()
    assert state(store, job_id) == "starting"
    (spec,) = fake.started.values()
    assert spec.devices == (0, 1) and spec.world_size == 1 and spec.rank == 0
    assert spec.log_path.endswith(f"logs/{job_id}.0.0.log")
    loop.step()
    assert state(store, job_id) == "running"
    held = nodes.list_nodes(store)[0].devices
    assert [d.holders for d in held[:2]] == [[f"vision/{job_id}"]] * 2
    fake.finish(spec.worker_id, 0)
    loop.step()
    out = jobs.get_job(store, job_id)
    assert out.state == "succeeded" and out.exit_code == 0
    kinds = [e.kind for e in jobs.events(store, job_id)]
    assert kinds == ["submitted", "admitted", "starting", "running", "finished"]


def test_gang_failure_stops_the_other_ranks(store: Store, tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    job_id = submit(store, "vision", gpus=1, workers=2)
    loop.step()
    loop.step()
    ranks = sorted(fake.started.values(), key=lambda s: s.rank)
    assert [s.rank for s in ranks] == [0, 1] and {s.master_port for s in ranks} == {
        ranks[0].master_port}
    fake.finish(ranks[1].worker_id, 7)
    loop.step()  # sees the failure, asks rank 0 to stop
    assert [w for w, _ in fake.stopped] == [ranks[0].worker_id]
    loop.step()  # rank 0 exits on SIGTERM
    out = jobs.get_job(store, job_id)
    assert out.state == "failed" and out.exit_code == 7


def test_reclaim_stops_borrowers_before_starting_the_reclaimer(store: Store,
                                                                 tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    borrowers = [submit(store, "vision") for _ in range(4)]
    loop.step()
    loop.step()
    assert all(state(store, j) == "running" for j in borrowers)
    fake.ignore_term.update(fake.started)  # they take a while to stop
    claim = submit(store, "nlp", gpus=2)
    loop.step()
    assert state(store, claim) == "admitted"  # placed, waiting for the victims
    victims = [w for w, _ in fake.stopped]
    assert len(victims) == 2
    assert not any(s.job_id == claim for s in fake.started.values())
    loop.step()
    assert state(store, claim) == "admitted"  # still waiting: victims ignore SIGTERM
    for wid in victims:
        fake.finish(wid, -9)
    loop.step()
    requeued = [j for j in borrowers if jobs.get_job(store, j).attempt == 1]
    assert len(requeued) == 2 and all(state(store, j) == "requeued" for j in requeued)
    loop.step()
    assert state(store, claim) in ("starting", "running")
    reason = jobs.explain(store, requeued[0]).reason
    assert "needs 1 GPU" in reason and "cannot reclaim" in reason


def test_cancel_of_a_running_job_stops_it(store: Store, tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    job_id = submit(store, "vision")
    loop.step()
    loop.step()
    jobs.cancel(store, job_id)
    loop.step()
    assert fake.stopped and state(store, job_id) == "stopping"
    loop.step()
    assert state(store, job_id) == "cancelled"


def test_lost_worker_requeues_the_job(store: Store, tmp_path: Path) -> None:
    loop, fake = make(store, tmp_path)
    job_id = submit(store, "vision")
    loop.step()
    loop.step()
    (spec,) = fake.started.values()
    fake.lose(spec.worker_id)
    loop.step()
    out = jobs.get_job(store, job_id)
    assert out.attempt == 1 and out.state == "starting"  # requeued and placed again at once
    kinds = [e.kind for e in jobs.events(store, job_id)]
    assert kinds[-4:] == ["lost", "requeued", "admitted", "starting"]
    assert any(s.attempt == 1 for s in fake.started.values())


def test_after_a_restart_workers_the_executor_does_not_know_are_lost(store: Store,
                                                                      tmp_path: Path) -> None:
    loop, _ = make(store, tmp_path)
    running = submit(store, "vision")
    cancelling = submit(store, "vision")
    loop.step()
    loop.step()
    jobs.cancel(store, cancelling)  # asked to stop, but the server dies before it does
    # a new server: a fresh executor that knows none of the old workers
    fresh = FakeExecutor([local_node(4, name="node-a")])
    again = ControlLoop(store, fresh, tmp_path, FAST)
    again.reconcile()
    again.step()
    out = jobs.get_job(store, running)
    assert out.attempt == 1 and out.state in ("starting", "running")
    assert any("unknown to the executor" in e.message for e in jobs.events(store, running))
    assert state(store, cancelling) == "cancelled"


def test_workers_on_vanished_devices_are_requeued(store: Store, tmp_path: Path) -> None:
    loop, _ = make(store, tmp_path)
    big = submit(store, "vision", gpus=4)
    loop.step()
    loop.step()
    assert state(store, big) == "running"
    # the pool restarts with fewer GPUs: the placement no longer exists
    smaller = FakeExecutor([local_node(2, name="node-a")])
    again = ControlLoop(store, smaller, tmp_path, FAST)
    again.sync_nodes()
    assert again.step()  # reports the loss instead of failing the cycle
    again.step()
    out = jobs.get_job(store, big)
    assert out.state == "requeued" and out.attempt == 1
    assert "needs 4 GPUs" in (out.reason or "") or "largest node" in (out.reason or "")
    small = submit(store, "nlp")
    again.step()
    assert state(store, small) == "starting"  # scheduling goes on


def test_nodes_join_leave_and_are_forgotten(store: Store, tmp_path: Path) -> None:
    queues.create_department(store, QueueCreate(name="research", quota=ResourceSpec(gpus=4)))
    queues.create_project(store, ProjectCreate(name="vision", department="research",
                                               quota=ResourceSpec(gpus=4)))
    now = [1000.0]
    a, b = local_node(2, name="node-a"), local_node(2, name="node-b")
    fake = FakeExecutor([a])
    loop = ControlLoop(store, fake, tmp_path, replace(FAST, forget_after_s=600),
                       clock=lambda: now[0])
    loop.sync_nodes()
    fake.set_nodes([a, b])  # a node joins: used without a restart
    loop.sync_nodes()
    job = submit(store, "vision", gpus=2)
    other = submit(store, "vision", gpus=2)
    loop.step()
    loop.step()
    held = {jobs.get_job(store, j).placement[0].node for j in (job, other)}
    assert held == {"node-a", "node-b"}
    on_b = job if jobs.get_job(store, job).placement[0].node == "node-b" else other

    fake.set_nodes([a])  # node-b leaves
    loop.sync_nodes()
    listed = {n.name: n for n in nodes.list_nodes(store)}
    assert not listed["node-b"].ready and listed["node-a"].ready
    now[0] += 601
    loop.sync_nodes()
    assert "node-b" in {n.name for n in nodes.list_nodes(store)}  # a job still holds it
    fake.finish(next(iter(w for w in fake.running if w.startswith(on_b))), 0)
    loop.step()
    assert state(store, on_b) == "succeeded"
    now[0] += 61
    loop.sync_nodes()
    assert {n.name for n in nodes.list_nodes(store)} == {"node-a"}
