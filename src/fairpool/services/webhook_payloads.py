"""What a webhook receives: the body of each notification (fairpool's JSON, or a Slack
incoming webhook's ``{text, blocks}``) and the headers that sign it.

The signature is ``X-Fairpool-Signature: sha256=HEX``, HEX being the HMAC-SHA256, keyed with
the webhook's secret, of ``TIMESTAMP + "." + BODY``: the value of ``X-Fairpool-Timestamp``
(Unix seconds), a full stop and the raw body bytes. A receiver that checks it and refuses old
timestamps knows the body came from its pool and is not a replay (docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from fairpool import __version__
from fairpool.store.models import ArrayRow, JobRow

#: the most characters of an event's message a notification carries
MAX_MESSAGE = 1000
#: the most characters of it in a Slack body, escaped (a section's text may have 3000)
SLACK_MESSAGE = 2000
_TITLES = {"finished": "finished", "failed": "failed", "preempted": "was preempted",
           "requeued": "was requeued", "idle": "has idle GPUs",
           "started": "started", "test": "test notification"}


def job_fields(row: JobRow) -> dict[str, Any]:
    """The job as a notification shows it."""
    return {"id": row.id, "name": row.name, "project": row.project, "state": row.state,
            "exit_code": row.exit_code, "reason": row.reason, "submitted_by": row.submitted_by,
            "attempt": row.attempt, "submitted_at": row.submitted_at,
            "started_at": row.started_at, "finished_at": row.finished_at,
            "array_id": row.array_id, "array_index": row.array_index}


def array_fields(array: ArrayRow, counts: dict[str, int]) -> dict[str, Any]:
    """A finished array: its id, name, size and how many of its tasks ended in each state."""
    return {"id": array.id, "name": array.name, "project": array.project, "size": array.size,
            "submitted_by": array.submitted_by, "submitted_at": array.submitted_at,
            "counts": dict(sorted(counts.items()))}


def payload(event: str, project: str, at: float, message: str, *,
            job: dict[str, Any] | None = None, array: dict[str, Any] | None = None,
            cause: str | None = None, waited_s: float | None = None) -> dict[str, Any]:
    """The JSON payload: what happened (``event``) in which project, when, the event's
    message, and the job (or the array) it happened to."""
    out: dict[str, Any] = {"event": event, "project": project, "at": at,
                           "message": message[:MAX_MESSAGE], "job": job, "array": array}
    if cause is not None:
        out["cause"] = cause
    if waited_s is not None:
        out["waited_s"] = round(waited_s, 3)
    return out


def slack_escape(text: object) -> str:
    """Text for Slack's mrkdwn: ``&``, ``<`` and ``>`` as Slack asks (so no ``<!channel>`` or
    link comes from other people's text)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, most: int) -> str:
    """``text`` cut to at most ``most`` characters (and an ellipsis), never inside an entity
    such as ``&amp;``."""
    if len(text) <= most:
        return text
    cut = text[:most - 1]
    amp = cut.rfind("&")
    if amp > cut.rfind(";"):
        cut = cut[:amp]
    return cut + "…"


def _subject(data: dict[str, Any]) -> str:
    """What a Slack line is about, escaped."""
    job, array = data.get("job"), data.get("array")
    if array is not None:
        name = f" {slack_escape(array['name'])}" if array["name"] else ""
        return f"Array{name} (`{array['id']}`, {array['size']} tasks)"
    if job is not None:
        name = f" {slack_escape(job['name'])}" if job["name"] else ""
        return f"Job{name} (`{job['id']}`)"
    return "fairpool"


def slack(data: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming webhook's body for the payload ``data``: a plain ``text`` (for
    notifications and clients without blocks) and the same as mrkdwn blocks."""
    subject, project = _subject(data), str(data.get("project") or "")
    event = str(data["event"])
    title = _TITLES.get(event, event)
    where = f" in project {slack_escape(project)}" if project else ""
    message = _cut(slack_escape(data.get("message") or ""), SLACK_MESSAGE)
    headline = f"{subject}{where} {title}" if event != "test" else (
        f"fairpool test notification{where}")
    details = []
    job, array = data.get("job"), data.get("array")
    if array is not None:
        details.append(", ".join(f"{n} {state}" for state, n in array["counts"].items()))
    if job is not None:
        if job.get("submitted_by"):
            details.append(f"submitted by {slack_escape(job['submitted_by'])}")
        if job.get("exit_code") is not None:
            details.append(f"exit code {job['exit_code']}")
        details.append(f"attempt {job['attempt']}")
    if data.get("waited_s") is not None:
        details.append(f"waited {data['waited_s']:.0f} s")
    text = headline + (f": {message}" if message else "")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*" + (
            f"\n{message}" if message else "")}}]
    if details:
        blocks.append({"type": "context",
                       "elements": [{"type": "mrkdwn", "text": " · ".join(details)}]})
    return {"text": text, "blocks": blocks}


def body(fmt: str, data: dict[str, Any]) -> str:
    """The body sent, as text (its UTF-8 bytes are what is signed)."""
    return json.dumps(slack(data) if fmt == "slack" else data, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


def signature(secret: str, timestamp: str, raw: bytes) -> str:
    """``sha256=HEX``: the HMAC-SHA256 of ``timestamp.body`` keyed with ``secret``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def headers(secret: str, delivery_id: str, event: str, raw: bytes, now: float
            ) -> dict[str, str]:
    """The headers of one attempt (signed anew each time, with its own timestamp)."""
    timestamp = str(int(now))
    return {"Content-Type": "application/json", "User-Agent": f"fairpool/{__version__}",
            "X-Fairpool-Event": event, "X-Fairpool-Delivery": delivery_id,
            "X-Fairpool-Timestamp": timestamp,
            "X-Fairpool-Signature": signature(secret, timestamp, raw)}
