"""What webhooks receive: the JSON and Slack bodies, the signature a receiver checks, the URL
shown instead of the whole one, and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from fairpool.schemas.webhooks import WebhookCreate
from fairpool.services import webhook_payloads as wp
from fairpool.services.webhook_delivery import WebhookPolicy
from fairpool.services.webhook_events import classify
from fairpool.services.webhooks import url_hint
from fairpool.store.models import ArrayRow, JobRow


def job(**kw: object) -> JobRow:
    fields: dict[str, object] = dict(
        id="a1b2c3d4e5f6", name="train <b>&", project="vision", state="failed", exit_code=3,
        reason=None, submitted_by="alice", attempt=0, submitted_at=100.0, started_at=110.0,
        finished_at=130.0, array_id=None, array_index=None)
    fields.update(kw)
    return JobRow(**fields)


def test_the_signature_is_an_hmac_of_the_timestamp_and_the_raw_body() -> None:
    raw = wp.body("json", wp.payload("failed", "vision", 130.0, "failed with exit code 3",
                                     job=wp.job_fields(job()))).encode()
    headers = wp.headers("s3cret-s3cret-s3cret", "d1", "failed", raw, 1_700_000_000.7)
    assert headers["X-Fairpool-Timestamp"] == "1700000000"
    assert headers["X-Fairpool-Event"] == "failed" and headers["X-Fairpool-Delivery"] == "d1"
    # what docs/webhooks.md tells receivers to compute
    expected = hmac.new(b"s3cret-s3cret-s3cret", b"1700000000." + raw,
                        hashlib.sha256).hexdigest()
    assert headers["X-Fairpool-Signature"] == f"sha256={expected}"
    assert wp.signature("other-secret-other", "1700000000", raw) != headers[
        "X-Fairpool-Signature"]
    assert wp.signature("s3cret-s3cret-s3cret", "1700000001", raw) != headers[
        "X-Fairpool-Signature"]


def test_the_verifier_in_the_docs_accepts_our_signature_and_nothing_else() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", docs, re.S)
    assert len(code.strip().splitlines()) <= 8
    scope: dict[str, object] = {}
    exec(code, scope)
    verify = scope["verify"]
    assert callable(verify)
    raw = b'{"event":"finished"}'
    sent = wp.headers("whsec_abcdefghijklmnop", "d1", "finished", raw, time.time())
    assert verify("whsec_abcdefghijklmnop", sent, raw)
    assert not verify("whsec_abcdefghijklmnoq", sent, raw)
    assert not verify("whsec_abcdefghijklmnop", sent, raw + b" ")
    old = wp.headers("whsec_abcdefghijklmnop", "d1", "finished", raw, time.time() - 3600)
    assert not verify("whsec_abcdefghijklmnop", old, raw)


def test_the_json_payload_names_the_event_the_job_and_its_outcome() -> None:
    data = json.loads(wp.body("json", wp.payload(
        "preempted", "vision", 120.0, "reclaim: over its fair share", job=wp.job_fields(
            job(state="stopping", exit_code=None)), cause="reclaim")))
    assert data["event"] == "preempted" and data["project"] == "vision"
    assert data["cause"] == "reclaim" and data["at"] == 120.0 and data["array"] is None
    assert data["job"]["id"] == "a1b2c3d4e5f6" and data["job"]["name"] == "train <b>&"
    assert data["job"]["submitted_by"] == "alice" and data["job"]["state"] == "stopping"
    assert len(wp.payload("failed", "p", 0, "x" * 5000)["message"]) == wp.MAX_MESSAGE


def test_slack_bodies_escape_other_peoples_text() -> None:
    data = wp.payload("failed", "vision", 130.0, "<!channel> exit & <https://evil|click>",
                      job=wp.job_fields(job(submitted_by="<@U123>")))
    out = json.loads(wp.body("slack", data))
    assert set(out) == {"text", "blocks"}
    text = out["text"]
    assert "Job train &lt;b&gt;&amp; (`a1b2c3d4e5f6`) in project vision failed" in text
    assert "&lt;!channel&gt; exit &amp; &lt;https://evil|click&gt;" in text
    assert "<" not in text and ">" not in text
    section, context = out["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "<" not in section["text"]["text"]
    assert "submitted by &lt;@U123&gt;" in context["elements"][0]["text"]
    assert "exit code 3" in context["elements"][0]["text"]


def test_a_long_slack_message_is_cut_to_what_a_section_takes() -> None:
    data = wp.payload("failed", "vision", 1.0, "<&>" * 400, job=wp.job_fields(job()))
    section = json.loads(wp.body("slack", data))["blocks"][0]["text"]["text"]
    assert len(section) <= 3000 and section.endswith("…")
    assert section.rstrip("…").endswith(("&lt;", "&amp;", "&gt;"))  # no entity cut in half


def test_an_arrays_slack_body_counts_its_tasks() -> None:
    array = ArrayRow(id="0123456789ab", project="nlp", name="sweep", size=3, submitted_by="bo",
                     submitted_at=1.0)
    data = wp.payload("failed", "nlp", 5.0, "all tasks finished",
                      array=wp.array_fields(array, {"succeeded": 2, "failed": 1}))
    out = json.loads(wp.body("slack", data))
    assert "Array sweep (`0123456789ab`, 3 tasks) in project nlp failed" in out["text"]
    assert "1 failed, 2 succeeded" in out["blocks"][1]["elements"][0]["text"]


@pytest.mark.parametrize(("kind", "state", "event"), [
    ("finished", "succeeded", "finished"), ("finished", "failed", "failed"),
    ("evicted", "stopping", "preempted"), ("evicted", "requeued", "preempted"),
    ("requeued", "requeued", "requeued"), ("retrying", "requeued", "requeued"),
    ("idle", "running", "idle"), ("running", "running", "started"),
    ("cancelled", "cancelled", None), ("submitted", "queued", None), ("failed", "stopping", None),
])
def test_which_job_events_notify(kind: str, state: str, event: str | None) -> None:
    assert classify(kind, state) == event


@pytest.mark.parametrize(("url", "hint"), [
    ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
    ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/services/…"),
    ("https://user:pw@ci.example/x?token=abc", "https://ci.example/x/…"),
    ("https://[::1]:9000", "https://[::1]:9000"),
])
def test_the_url_shown_leaves_out_what_may_be_a_credential(url: str, hint: str) -> None:
    assert url_hint(url) == hint


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://x/y", "must start with http:// or https://"),
    ("http:///nohost", "has no host name"),
    ("http://x:99999/", "not valid"),
    ("http://x/a b", "spaces or control characters"),
    ("https://x/" + "a" * 3000, "at most 2048"),
])
def test_bad_urls_are_refused_saying_why(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WebhookCreate(url=url)


def test_events_are_checked_and_kept_once_in_order() -> None:
    spec = WebhookCreate(url="http://h/x", events=["failed", "finished", "failed"])
    assert spec.events == ["finished", "failed"]
    with pytest.raises(ValidationError, match="events"):
        WebhookCreate(url="http://h/x", events=["exploded"])
    with pytest.raises(ValidationError, match="at least 16"):
        WebhookCreate(url="http://h/x", secret="short")


def test_retries_back_off_exponentially_up_to_a_cap() -> None:
    policy = WebhookPolicy(retry_base_s=10, retry_cap_s=60)
    assert [policy.backoff(n) for n in range(1, 6)] == [10, 20, 40, 60, 60]
