"""Webhooks end to end: a real ``fairpool up`` with real jobs, notifying local HTTP receivers
(signed JSON, Slack bodies, an array's one notification), a receiver that is down or too
slow (retried, then failed, while jobs keep starting and finishing), and who may manage them,
through the CLI and the SDK."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator

import httpx
import pytest

from fairpool.client import Client, FairpoolError
from fairpool.client import webhooks as hooks
from tests.e2e.conftest import Pool, free_port, launch, start_pool, stop_pool
from tests.receiver import Receiver, receiver

PY = sys.executable
PROJECTS = ("vision", "nlp", "batch", "sweeps")


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    p = start_pool(tmp_path_factory.mktemp("webhooks"), "--simulate-gpus", "2", env_extra={
        "FAIRPOOL_WEBHOOK_RETRY_BASE_S": "0.3", "FAIRPOOL_WEBHOOK_MAX_ATTEMPTS": "3",
        "FAIRPOOL_WEBHOOK_TIMEOUT_S": "1.5"})
    try:
        p.cli("department", "create", "research", "--quota-gpus", "2")
        for name in PROJECTS:
            p.cli("project", "create", name, "-d", "research")
        yield p
    finally:
        stop_pool(p)


@pytest.fixture
def local() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def test_finished_and_failed_jobs_are_posted_signed(pool: Pool, local: Receiver) -> None:
    made = json.loads(pool.cli("webhook", "add", "vision", local.url + "/ci", "--events",
                               "finished,failed", "--json").stdout)
    assert made["secret"].startswith("whsec_") and made["events"] == ["finished", "failed"]
    ok = pool.client.submit(project="vision", command=[PY, "-c", "pass"], name="ok-job")
    bad = pool.client.submit(project="vision", command=[PY, "-c", "raise SystemExit(3)"],
                             name="bad-job")
    assert pool.wait(ok.id, {"succeeded", "failed"}) == "succeeded"
    assert pool.wait(bad.id, {"succeeded", "failed"}) == "failed"
    local.wait_for(lambda: len(local.at("/ci")) >= 2, what="two notifications")
    got = {r.data["job"]["id"]: r for r in local.at("/ci")}
    assert set(got) == {ok.id, bad.id}
    assert all(r.signed_with(made["secret"]) for r in got.values())
    assert not got[ok.id].signed_with("whsec_someone-elses-secret")
    done, failed = got[ok.id].data, got[bad.id].data
    assert done["event"] == "finished" and done["job"]["exit_code"] == 0
    assert done["job"]["name"] == "ok-job" and done["job"]["submitted_by"] == "admin"
    assert failed["event"] == "failed" and failed["job"]["exit_code"] == 3
    assert "exit code 3" in failed["message"] and failed["project"] == "vision"
    assert got[bad.id].headers["x-fairpool-event"] == "failed"
    sent = json.loads(pool.cli("webhook", "deliveries", "vision", made["id"], "--json").stdout)
    assert sorted((d["job_id"], d["status"], d["attempts"]) for d in sent) == sorted(
        [(ok.id, "delivered", 1), (bad.id, "delivered", 1)])
    assert {d["id"] for d in sent} == {r.headers["x-fairpool-delivery"] for r in got.values()}
    listed = pool.cli("webhook", "list", "vision").stdout
    assert made["id"] in listed and made["secret"] not in listed
    pool.cli("webhook", "remove", "vision", made["id"])
    assert hooks.list_all(pool.client, "vision") == []


def test_slack_bodies_and_the_test_command(pool: Pool, local: Receiver) -> None:
    out = pool.cli("webhook", "add", "nlp", local.url + "/slack/T0/B0/XYZ", "--format", "slack",
                   "--events", "failed")
    secret = out.stdout.strip()
    assert "not shown again" in out.stderr and secret.startswith("whsec_")
    (made,) = hooks.list_all(pool.client, "nlp")
    assert made.url == local.url + "/slack/…" and made.format == "slack"
    tested = pool.cli("webhook", "test", "nlp", made.id)
    assert "delivered (HTTP 200)" in tested.stdout
    first = local.at("/slack/T0/B0/XYZ")[0]
    assert first.signed_with(secret) and first.headers["x-fairpool-event"] == "test"
    assert first.data["text"].startswith("fairpool test notification in project nlp")
    job = pool.client.submit(project="nlp", command=[PY, "-c", "raise SystemExit(1)"],
                             name="<!here> & co")
    pool.wait(job.id, {"failed"})
    local.wait_for(lambda: len(local.at("/slack/T0/B0/XYZ")) >= 2, what="the failure")
    body = local.at("/slack/T0/B0/XYZ")[1].data
    assert set(body) == {"text", "blocks"} and body["blocks"][0]["type"] == "section"
    assert f"Job &lt;!here&gt; &amp; co (`{job.id}`) in project nlp failed" in body["text"]
    assert "<!here>" not in json.dumps(body)


def test_a_receiver_down_or_slow_holds_up_neither_jobs_nor_other_webhooks(
        pool: Pool, local: Receiver) -> None:
    with receiver() as slow:
        slow.delay_s = 3.0  # longer than the pool's webhook timeout (1.5 s)
        down = hooks.add(pool.client, "batch", f"http://127.0.0.1:{free_port()}/down",
                         events=["finished"])
        late = hooks.add(pool.client, "batch", slow.url + "/slow", events=["finished"])
        hooks.add(pool.client, "batch", local.url + "/fast", events=["finished"])
        jobs = [pool.client.submit(project="batch", command=[PY, "-c", "pass"])
                for _ in range(6)]
        for job in jobs:
            assert pool.wait(job.id, {"succeeded", "failed"}, timeout=30) == "succeeded"
        finished = {j.id: pool.client.job(j.id) for j in jobs}
        for job in finished.values():  # scheduling went on as usual
            assert job.finished_at is not None and job.finished_at - job.submitted_at < 15
        local.wait_for(lambda: len(local.at("/fast")) == 6, what="six notifications")
        for r in local.at("/fast"):
            at = finished[r.data["job"]["id"]].finished_at
            assert at is not None and r.at - at < 5, "a slow receiver delayed another webhook"

        def gave_up() -> bool:
            sent = hooks.deliveries(pool.client, "batch", down.id)
            return len(sent) == 6 and all(d.status == "failed" for d in sent)

        pool.until(gave_up, timeout=30, what="the deliveries to the down receiver to fail")
        for d in hooks.deliveries(pool.client, "batch", down.id):
            assert d.attempts == 3 and "cannot reach 127.0.0.1" in (d.last_error or "")
            assert d.next_at is None and d.delivered_at is None
        pool.until(lambda: any("timed out" in (d.last_error or "") for d in hooks.deliveries(
            pool.client, "batch", late.id)), timeout=30, what="a timed-out attempt")
        # the pool still starts and finishes jobs at once
        again = pool.client.submit(project="batch", command=[PY, "-c", "pass"])
        assert pool.wait(again.id, {"succeeded"}, timeout=15) == "succeeded"
    for h in hooks.list_all(pool.client, "batch"):
        hooks.remove(pool.client, "batch", h.id)


def test_an_array_notifies_once_when_all_its_tasks_have_finished(pool: Pool,
                                                                  local: Receiver) -> None:
    made = hooks.add(pool.client, "sweeps", local.url + "/array",
                     events=["finished", "failed", "started"], min_wait_s=0)
    array = pool.client.submit_array(project="sweeps", name="sweep", indices="0-2", command=[
        PY, "-c", "import os, sys; sys.exit(3 if os.environ['FAIRPOOL_ARRAY_INDEX'] == '1' "
        "else 0)"])
    local.wait_for(lambda: bool(local.at("/array")), what="the array's notification")
    (got,) = local.at("/array")
    assert got.signed_with(made.secret) and got.headers["x-fairpool-event"] == "failed"
    data = got.data
    assert data["event"] == "failed" and data["job"] is None
    assert data["array"]["id"] == array.id and data["array"]["name"] == "sweep"
    assert data["array"]["counts"] == {"failed": 1, "succeeded": 2}
    # the tasks' own events (started, finished, failed) were read before the last one was
    sent = hooks.deliveries(pool.client, "sweeps", made.id)
    assert [(d.array_id, d.event, d.status) for d in sent] == [(array.id, "failed",
                                                                "delivered")]


def test_only_a_projects_managers_manage_its_webhooks(pool: Pool) -> None:
    admin = pool.client
    tokens = {user: admin.create_token(user).token for user in ("rita", "dora")}
    admin.grant("rita", "researcher", "vision")
    admin.grant("dora", "department-admin", "research")
    with Client(pool.url, token=tokens["rita"]) as rita:
        for call in (lambda: hooks.add(rita, "vision", "http://127.0.0.1:9/x"),
                     lambda: hooks.list_all(rita, "vision")):
            with pytest.raises(FairpoolError) as refused:
                call()
            assert refused.value.status == 403
            assert "rita may not manage projects" in refused.value.message
        with pytest.raises(FairpoolError) as hidden:
            hooks.list_all(rita, "nlp")
        assert hidden.value.status == 404
    with Client(pool.url, token=tokens["dora"]) as dora:
        made = hooks.add(dora, "vision", "http://127.0.0.1:9/x", events=["idle"])
        assert made.created_by == "dora" and made.events == ["idle"]
        assert [h.id for h in hooks.list_all(dora, "vision")] == [made.id]
        hooks.remove(dora, "vision", made.id)
    resp = httpx.post(pool.url + "/api/v1/projects/vision/webhooks", headers=pool.auth,
                      json={"url": "file:///etc/passwd"}, timeout=30)
    assert resp.status_code == 422 and "http:// or https://" in resp.json()["error"]
    for args, says in ((("add", "vision", "ftp://x/y"), "url: the URL must start with"),
                       (("add", "vision", "http://x/", "--events", "done"), "--events"),
                       (("remove", "vision", "0123456789ab"), "has no webhook 0123456789ab"),
                       (("list", "ghost"), "project ghost does not exist")):
        out = pool.cli("webhook", *args, check=False)
        assert out.returncode != 0 and out.stderr.startswith("error: ")
        assert says in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_webhooks_survive_a_restart_without_repeats(pool: Pool, local: Receiver) -> None:
    made = hooks.add(pool.client, "vision", local.url + "/restart", events=["finished"])
    first = pool.client.submit(project="vision", command=[PY, "-c", "pass"])
    pool.wait(first.id, {"succeeded"})
    local.wait_for(lambda: len(local.at("/restart")) == 1, what="the first notification")
    pool.proc.send_signal(signal.SIGINT)  # a clean stop, as Ctrl-C
    pool.proc.wait(30)
    pool.proc = launch(pool.data_dir.parent, pool.args, pool.env, pool.url, timeout=60)
    pool.client.close()
    pool.client = Client(pool.url, token=pool.token)
    second = pool.client.submit(project="vision", command=[PY, "-c", "pass"])
    pool.wait(second.id, {"succeeded"})
    local.wait_for(lambda: len(local.at("/restart")) == 2, what="the second notification")
    assert [r.data["job"]["id"] for r in local.at("/restart")] == [first.id, second.id]
    assert len(hooks.deliveries(pool.client, "vision", made.id)) == 2
