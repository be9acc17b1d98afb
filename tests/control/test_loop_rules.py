"""The loop's time rules with the fake executor and a fake clock (no sleeps): retry backoff,
max runtime, the breaker's cordon and its cooldown, and the idle-GPU policy."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from fairpool.control.settings import LoopSettings
from fairpool.executors.base import WorkerPhase, WorkerStatus
from fairpool.schemas.jobs import JobSubmit
from fairpool.schemas.queues import IdlePolicySpec, QueueUpdate
from fairpool.services import jobs, nodes, queues
from fairpool.store.db import Store
from fairpool.store.models import JobEventRow

from .conftest import Clock, pool


def _submit(store: Store, project: str = "p1", gpus: int = 1, actor: str = "rita",
            **kw: object) -> str:
    spec = JobSubmit(project=project, command=["train"], gpus=gpus, **kw)  # type: ignore[arg-type]
    return jobs.submit(store, spec, actor=actor)[0].id


def _state(store: Store, job_id: str) -> str:
    return jobs.get_job(store, job_id).state


def _kinds(store: Store, job_id: str) -> list[str]:
    return [e.kind for e in jobs.events(store, job_id)]


def test_a_failed_attempt_waits_out_its_backoff(store: Store, tmp_path: Path,
                                               clock: Clock) -> None:
    loop, fake = pool(store, tmp_path, clock, LoopSettings(reasons_every_s=0, retry_base_s=30))
    job_id = _submit(store, max_retries=2)
    loop.step()
    loop.step()
    fake.finish(f"{job_id}.0.0", 3)
    loop.step()
    out = jobs.get_job(store, job_id)
    assert out.state == "requeued" and out.attempt == 1
    clock.advance(29)
    loop.step()
    assert _state(store, job_id) == "requeued"  # held back: 30 s for the first retry
    clock.advance(2)
    loop.step()
    assert _state(store, job_id) == "starting"
    loop.step()
    fake.finish(f"{job_id}.1.0", 3)
    loop.step()
    clock.advance(59)
    loop.step()
    assert _state(store, job_id) == "requeued"  # the second waits twice as long
    clock.advance(2)
    loop.step()
    loop.step()
    fake.finish(f"{job_id}.2.0", 3)
    loop.step()
    out = jobs.get_job(store, job_id)
    assert out.state == "failed" and out.exit_code == 3  # no retries left
    assert _kinds(store, job_id).count("retrying") == 2


def test_a_job_past_its_max_runtime_is_stopped_and_fails(store: Store, tmp_path: Path,
                                                         clock: Clock) -> None:
    loop, fake = pool(store, tmp_path, clock)
    job_id = _submit(store, max_runtime_s=60)
    loop.step()
    loop.step()
    assert _state(store, job_id) == "running"
    clock.advance(59)
    loop.step()
    assert _state(store, job_id) == "running" and not fake.stopped
    clock.advance(2)
    fake.ignore_term.add(f"{job_id}.0.0")  # it takes its grace period to end
    loop.step()
    assert _state(store, job_id) == "stopping"
    assert fake.stopped == [(f"{job_id}.0.0", 5)]
    assert jobs.explain(store, job_id).reason == "stopping (timeout)"
    fake.finish(f"{job_id}.0.0", -15)
    loop.step()
    out = jobs.get_job(store, job_id)
    assert out.state == "failed" and out.exit_code == -15
    assert _kinds(store, job_id)[-2:] == ["timeout", "finished"]


def test_the_breaker_cordons_for_its_cooldown_only(store: Store, tmp_path: Path,
                                                   clock: Clock) -> None:
    settings = LoopSettings(reasons_every_s=0, breaker_failures=3, breaker_window_s=60,
                            breaker_cooldown_s=120)
    loop, fake = pool(store, tmp_path, clock, settings, nodes=2, gpus=4)
    ids = [_submit(store, project=p, gpus=4, actor=u)
           for u, p in (("u1", "p1"), ("u2", "p2"), ("u3", "p1"), ("u4", "p2"), ("u5", "p1"))]
    loop.step()
    loop.step()
    on_0 = [j for j in ids if fake.started.get(f"{j}.0.0") and
            fake.started[f"{j}.0.0"].node == "node-0"]
    assert len(on_0) == 1  # one 4-GPU job per node; the others wait
    lost: set[str] = set()
    for _ in range(3):  # node-0 loses the worker of whatever job runs there
        (job_id,) = [j for j in ids if _state(store, j) == "running"
                     and jobs.get_job(store, j).placement[0].node == "node-0"]
        fake.lose(f"{job_id}.{jobs.get_job(store, job_id).attempt}.0")
        lost.add(job_id)
        clock.advance(1)
        loop.step()
        loop.step()
        if nodes.list_nodes(store)[0].cordoned:
            break
        assert len(lost) < 3
        jobs.cancel(store, job_id)  # so that another job gets node-0
        for _ in range(3):  # stopped, cancelled; the next placed; running
            loop.step()
    assert len(lost) == 3
    node = nodes.list_nodes(store)[0]
    assert node.name == "node-0" and node.cordoned and node.cordon_reason is not None
    assert "3 lost" in node.cordon_reason
    clock.advance(119)
    loop.step()
    assert nodes.list_nodes(store)[0].cordoned
    clock.advance(6)
    loop.step()
    assert not nodes.list_nodes(store)[0].cordoned


def test_idle_gpus_are_preempted_while_others_wait(store: Store, tmp_path: Path,
                                                   clock: Clock) -> None:
    loop, fake = pool(store, tmp_path, clock, LoopSettings(reasons_every_s=0,
                                                           sample_every_s=10))
    queues.update_queue(store, "p1", QueueUpdate(idle=IdlePolicySpec(
        action="preempt", threshold=0.1, after_s=60)))
    idle = _submit(store, gpus=4)
    loop.step()
    loop.step()
    fake.set_utilisation(f"{idle}.0.0", 0.0)
    waiting = _submit(store, project="p2", gpus=2)
    for _ in range(6):  # idle for 50 s: not yet
        clock.advance(10)
        loop.step()
    assert _state(store, idle) == "running"
    clock.advance(10)
    loop.step()  # idle 60 s with others waiting: preempted (stop, then requeued)
    loop.step()
    assert _state(store, idle) == "requeued"
    out = jobs.get_job(store, idle)
    assert out.reason is not None and out.reason.startswith("held back for 60 s")
    loop.step()
    assert _state(store, waiting) in ("starting", "running")
    with store.session() as s:
        causes = s.execute(select(JobEventRow.cause).where(
            JobEventRow.job_id == idle, JobEventRow.kind == "evicted")).scalars().all()
    assert causes == ["idle"]
    clock.advance(61)
    loop.step()
    loop.step()
    assert _state(store, idle) in ("admitted", "starting", "queued", "requeued", "running")


def test_a_lost_worker_of_a_gang_stops_the_others_then_requeues(store: Store, tmp_path: Path,
                                                                clock: Clock) -> None:
    loop, fake = pool(store, tmp_path, clock)
    job_id = _submit(store, gpus=1, workers=2)
    loop.step()
    loop.step()
    fake.ignore_term.add(f"{job_id}.0.1")
    fake._end(WorkerStatus(f"{job_id}.0.0", WorkerPhase.LOST, detail="gone"))
    loop.step()
    assert _state(store, job_id) == "stopping"
    assert [w for w, _ in fake.stopped] == [f"{job_id}.0.1"]
    fake.finish(f"{job_id}.0.1", -15)
    loop.step()
    out = jobs.get_job(store, job_id)
    assert out.attempt == 1 and out.state == "starting"  # requeued, and placed again at once
    assert _kinds(store, job_id)[-4:] == ["lost", "requeued", "admitted", "starting"]


def test_the_plans_allocation_is_published_beside_the_fair_shares(
        store: Store, tmp_path: Path, clock: Clock) -> None:
    loop, fake = pool(store, tmp_path, clock)
    job_id = _submit(store, gpus=2)
    _submit(store, project="p2", gpus=1)
    loop.step()
    loop.step()
    p1, p2, d = (queues.queue_status(store, q) for q in ("p1", "p2", "d"))
    assert p1.fair_share is not None and p1.planned is not None and p2.planned is not None
    assert (p1.planned.gpus, p2.planned.gpus, d.planned and d.planned.gpus) == (2, 1, 3)
    assert p1.planned == p1.allocated  # the plan and the jobs' holdings agree
    fake.finish(f"{job_id}.0.0", 0)
    loop.step()
    p1 = queues.queue_status(store, "p1")
    assert p1.planned is not None and p1.planned.gpus == 0 == p1.allocated.gpus


def test_allocations_alone_are_published_at_most_every_half_second(
        store: Store, tmp_path: Path, clock: Clock) -> None:
    loop, fake = pool(store, tmp_path, clock, LoopSettings(reasons_every_s=0.5))
    small = [_submit(store, gpus=1) for _ in range(2)]
    _submit(store, gpus=4)  # waits: p1 wants more than the pool, so its fair share stays 4
    loop.step()  # the first plan is published at once (new fair shares)
    p1 = queues.queue_status(store, "p1")
    assert p1.fair_share is not None and p1.fair_share.gpus == 4
    assert p1.planned is not None and p1.planned.gpus == 2
    clock.advance(0.1)
    fake.finish(f"{small[0]}.0.0", 0)
    loop.step()  # the fair share stays, the allocation changed: it waits
    p1 = queues.queue_status(store, "p1")
    assert p1.fair_share is not None and p1.fair_share.gpus == 4
    assert p1.planned is not None and p1.planned.gpus == 2 and p1.allocated.gpus == 1
    clock.advance(0.5)
    loop.step()  # nothing new happened, but the change is due now
    p1 = queues.queue_status(store, "p1")
    assert p1.planned is not None and p1.planned.gpus == 1
