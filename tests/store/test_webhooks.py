"""Webhooks on SQLite and PostgreSQL: which job events become deliveries (once, across
restarts), an array's single notification, and a delivery's attempts against a local
receiver (retried with backoff, then failed; redirects not followed)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.config import Config
from cryptography.fernet import Fernet
from sqlalchemy import inspect, select

from fairpool.auth.secretbox import SecretBox
from fairpool.schemas.queues import ProjectCreate, QueueCreate
from fairpool.schemas.webhooks import EVENTS, WebhookCreate
from fairpool.services import queues, webhook_delivery, webhooks
from fairpool.services.errors import NotFound
from fairpool.services.notifier import Notifier
from fairpool.services.webhook_delivery import WebhookPolicy
from fairpool.store.db import MIGRATIONS, Store
from fairpool.store.lifecycle import add_event
from fairpool.store.models import ArrayRow, JobRow
from fairpool.store.webhook_models import DeliveryRow
from tests.receiver import Receiver, receiver

BOX = SecretBox(Fernet.generate_key())
POLICY = WebhookPolicy(timeout_s=2, max_attempts=3, retry_base_s=10, retry_cap_s=100)


@pytest.fixture
def pool(store: Store) -> Store:
    queues.create_department(store, QueueCreate(name="research"))
    for name in ("vision", "nlp"):
        queues.create_project(store, ProjectCreate(name=name, department="research"))
    return store


@pytest.fixture
def local() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def add_job(store: Store, job_id: str, project: str = "vision", state: str = "running",
            submitted_at: float | None = None, array_id: str | None = None) -> None:
    with store.writing() as s:
        s.add(JobRow(id=job_id, project=project, command=["true"], state=state,
                     submitted_at=time.time() if submitted_at is None else submitted_at,
                     request_hash="h", array_id=array_id,
                     array_index=None if array_id is None else int(job_id[-1], 16)))


def event(store: Store, job_id: str, kind: str, message: str = "", state: str | None = None,
          cause: str | None = None, at: float | None = None) -> None:
    with store.writing() as s:
        if state is not None:
            row = s.get(JobRow, job_id)
            assert row is not None
            row.state = state
        add_event(s, job_id, kind, message or kind, at, cause)


def delivered(store: Store) -> list[DeliveryRow]:
    with store.session() as s:
        return list(s.execute(select(DeliveryRow).order_by(DeliveryRow.created_at,
                                                           DeliveryRow.key)).scalars())


def hook(store: Store, url: str = "http://127.0.0.1:9/x", project: str = "vision",
         **kw: object) -> str:
    spec = WebhookCreate(url=url, **kw)
    return webhooks.create(store, BOX, POLICY, "admin", project, spec).id


def test_migration_0009_adds_and_removes_the_webhook_tables(store: Store) -> None:
    assert {"webhooks", "webhook_deliveries"} <= set(inspect(store.engine).get_table_names())
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    assert not {"webhooks", "webhook_deliveries"} & set(
        inspect(store.engine).get_table_names())
    store.migrate()
    assert {"webhooks", "webhook_deliveries"} <= set(inspect(store.engine).get_table_names())


def test_job_events_become_one_delivery_each_even_across_restarts(pool: Store) -> None:
    now = time.time()
    for job_id in ("j-ok", "j-bad", "j-pre", "j-soon", "j-late", "j-other"):
        add_job(pool, job_id, "nlp" if job_id == "j-other" else "vision",
                submitted_at=now - 300 if job_id == "j-late" else now)
    event(pool, "j-ok", "submitted")  # history before the first start: not replayed
    notifier = Notifier(pool, BOX, POLICY, lag_s=3600)  # the watermark stays put
    notifier.scan()
    webhook_id = hook(pool, events=list(EVENTS), min_wait_s=60)
    event(pool, "j-ok", "finished", "succeeded", state="succeeded")
    event(pool, "j-bad", "failed", "rank 0 exited with code 3")  # a fact, not the outcome
    event(pool, "j-bad", "finished", "failed with exit code 3", state="failed")
    event(pool, "j-pre", "evicted", "reclaim: over its fair share", state="stopping",
          cause="reclaim")
    event(pool, "j-pre", "requeued", "preempted; requeued as attempt 1", state="requeued")
    event(pool, "j-pre", "idle", "GPUs idle: utilisation below 5% for 60 s")
    event(pool, "j-soon", "running", "running on n0")  # waited moments: not "started"
    event(pool, "j-late", "running", "running on n0")
    event(pool, "j-other", "finished", "succeeded", state="succeeded")  # no webhook there
    notifier.scan()
    rows = delivered(pool)
    assert sorted((r.event, r.job_id) for r in rows) == [
        ("failed", "j-bad"), ("finished", "j-ok"), ("idle", "j-pre"), ("preempted", "j-pre"),
        ("requeued", "j-pre"), ("started", "j-late")]
    assert {r.webhook_id for r in rows} == {webhook_id} and all(
        r.status == "pending" and r.attempts == 0 for r in rows)
    body = {r.event: json.loads(r.body) for r in rows}
    assert body["failed"]["job"]["exit_code"] is None  # as stored; the loop sets it
    assert body["failed"]["message"] == "failed with exit code 3"
    assert body["preempted"]["cause"] == "reclaim"
    assert body["started"]["waited_s"] >= 299
    notifier.scan()
    restarted = Notifier(pool, BOX, POLICY, lag_s=3600)  # reads the same events again
    restarted.scan()
    assert len(delivered(pool)) == 6


def test_the_watermark_survives_a_restart_so_nothing_is_lost(pool: Store) -> None:
    add_job(pool, "j-1")
    hook(pool)
    first = Notifier(pool, BOX, POLICY, lag_s=0)
    first.scan()
    first.scan()
    first.stop()  # saves the watermark
    event(pool, "j-1", "finished", "succeeded", state="succeeded")  # while it was down
    Notifier(pool, BOX, POLICY, lag_s=0).scan()
    assert [(r.event, r.job_id) for r in delivered(pool)] == [("finished", "j-1")]


def test_a_webhook_hears_only_of_what_it_asked_for_after_it_was_made(pool: Store) -> None:
    add_job(pool, "j-1", submitted_at=time.time() - 500)
    notifier = Notifier(pool, BOX, POLICY, lag_s=3600)
    notifier.scan()
    event(pool, "j-1", "running", at=time.time() - 100)  # before the webhook was made
    hook(pool, events=["failed", "started"], min_wait_s=0)
    event(pool, "j-1", "finished", "succeeded", state="succeeded")  # not asked for
    notifier.scan()
    assert delivered(pool) == []


def test_an_array_notifies_once_when_all_its_tasks_have_finished(pool: Store) -> None:
    with pool.writing() as s:
        s.add(ArrayRow(id="0123456789ab", project="vision", name="sweep", size=3,
                       indices="0-2", submitted_at=time.time(), submitted_by="alice",
                       request_hash="h"))
    tasks = ["a-task-0", "a-task-1", "a-task-2"]
    for job_id in tasks:
        add_job(pool, job_id, array_id="0123456789ab", submitted_at=time.time() - 600)
    notifier = Notifier(pool, BOX, POLICY, lag_s=3600)
    notifier.scan()
    hook(pool, events=list(EVENTS), min_wait_s=0)
    event(pool, tasks[0], "running")
    event(pool, tasks[0], "finished", "succeeded", state="succeeded")
    event(pool, tasks[1], "evicted", "reclaim: x", state="requeued", cause="reclaim")
    event(pool, tasks[1], "finished", "failed with exit code 1", state="failed")
    notifier.scan()
    assert delivered(pool) == []  # one task is still running; tasks notify nothing alone
    event(pool, tasks[2], "cancelled", "cancelled by alice", state="cancelled")
    notifier.scan()
    notifier.scan()
    rows = delivered(pool)
    assert [(r.event, r.array_id, r.job_id, r.key) for r in rows] == [
        ("failed", "0123456789ab", None, "a:0123456789ab")]
    data = json.loads(rows[0].body)
    assert data["array"]["counts"] == {"cancelled": 1, "failed": 1, "succeeded": 1}
    assert data["array"]["name"] == "sweep" and data["array"]["size"] == 3
    assert data["job"] is None and data["project"] == "vision"


def test_a_delivery_is_signed_retried_with_backoff_and_not_redirected(
        pool: Store, local: Receiver) -> None:
    add_job(pool, "j-1")
    notifier = Notifier(pool, BOX, POLICY, lag_s=3600)
    notifier.scan()
    created = webhooks.create(pool, BOX, POLICY, "admin", "vision",
                              WebhookCreate(url=local.url + "/hook?k=1", format="slack"))
    event(pool, "j-1", "finished", "failed with exit code 2", state="failed")
    notifier.scan()
    (row,) = delivered(pool)
    local.codes = [503, 302]
    local.headers = {"location": local.url + "/elsewhere"}
    with webhook_delivery.client(POLICY) as http:
        now = time.time()
        after = webhook_delivery.attempt(pool, BOX, POLICY, http, row.id, now)
        assert after is not None and after.status == "pending" and after.attempts == 1
        assert after.last_error == "HTTP 503: receiver says no" and after.response_code == 503
        assert after.next_at >= now + POLICY.retry_base_s
        assert webhook_delivery.attempt(pool, BOX, POLICY, http, row.id, now + 1) is None
        after = webhook_delivery.attempt(pool, BOX, POLICY, http, row.id, now + 11)
        assert after is not None and after.attempts == 2 and after.response_code == 302
        assert "redirects are not followed" in (after.last_error or "")
        assert after.next_at >= now + 11 + 2 * POLICY.retry_base_s - 1
        after = webhook_delivery.attempt(pool, BOX, POLICY, http, row.id, now + 1000)
        assert after is not None and after.status == "delivered" and after.attempts == 3
    assert [r.path for r in local.got] == ["/hook?k=1"] * 3  # /elsewhere never asked
    first, last = local.got[0], local.got[-1]
    assert all(r.signed_with(created.secret) for r in local.got)
    assert not first.signed_with("whsec_not-the-secret")
    assert first.headers["x-fairpool-event"] == "failed"
    assert first.headers["x-fairpool-delivery"] == row.id
    assert first.raw == last.raw and "blocks" in first.data
    assert "failed with exit code 2" in first.data["text"]


def test_an_unreachable_receiver_fails_after_its_attempts_with_the_error_kept(
        pool: Store) -> None:
    add_job(pool, "j-1")
    notifier = Notifier(pool, BOX, POLICY, lag_s=3600)
    notifier.scan()
    hook(pool, url="http://127.0.0.1:9/nobody-listens")
    event(pool, "j-1", "finished", "succeeded", state="succeeded")
    notifier.scan()
    (row,) = delivered(pool)
    with webhook_delivery.client(POLICY) as http:
        for n in range(POLICY.max_attempts):
            after = webhook_delivery.attempt(pool, BOX, POLICY, http, row.id,
                                             time.time() + 1000 * (n + 1))
            assert after is not None and after.attempts == n + 1
    assert after is not None
    assert after.status == "failed" and "cannot reach 127.0.0.1:9" in (after.last_error or "")
    assert webhook_delivery.attempt(pool, BOX, POLICY, http, row.id, time.time() + 1e6) is None


def test_private_addresses_are_refused_when_the_pool_says_so(pool: Store) -> None:
    strict = WebhookPolicy(allow_private=False)
    with pytest.raises(Exception, match="not a public address"):
        webhooks.create(pool, BOX, strict, "admin", "vision",
                        WebhookCreate(url="http://127.0.0.1:8080/x"))
    assert webhook_delivery.private_address("http://10.1.2.3/") is not None
    assert webhook_delivery.private_address("http://8.8.8.8/") is None


def test_listing_deleting_and_testing_webhooks(pool: Store, local: Receiver) -> None:
    made = webhooks.create(pool, BOX, POLICY, "admin", "vision",
                           WebhookCreate(url=local.url + "/a/b/c", description="ci"))
    assert made.secret.startswith("whsec_") and made.url == local.url + "/a/…"
    assert made.events == ["finished", "failed"] and made.min_wait_s == 60
    listed = webhooks.list_webhooks(pool, "vision")
    assert [h.id for h in listed] == [made.id] and "secret" not in listed[0].model_dump()
    assert webhooks.list_webhooks(pool, "nlp") == []
    tested = webhooks.send_test(pool, BOX, POLICY, "admin", "vision", made.id)
    assert tested.status == "delivered" and tested.response_code == 200
    (got,) = local.got
    assert got.path == "/a/b/c" and got.data["event"] == "test" and got.signed_with(made.secret)
    assert [d.id for d in webhooks.deliveries(pool, "vision", made.id)] == [tested.id]
    with pytest.raises(NotFound, match="project nlp has no webhook"):
        webhooks.deliveries(pool, "nlp", made.id)
    with pytest.raises(NotFound, match="project ghost does not exist"):
        webhooks.list_webhooks(pool, "ghost")
    webhooks.remove(pool, "admin", "vision", made.id)
    assert webhooks.list_webhooks(pool, "vision") == [] and delivered(pool) == []
