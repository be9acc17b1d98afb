"""Request and response models of per-project webhooks and their deliveries.

A webhook is told of its project's jobs: ``finished`` (succeeded), ``failed``, ``preempted``
(evicted: reclaimed, preempted, drained or idle), ``requeued`` (an attempt ended and the job
waits again: after a preemption, a lost node or a retry), ``idle`` (its GPUs were found idle)
and ``started`` (it started after waiting at least the webhook's ``min_wait_s``). The tasks of
a job array are told of once, when the whole array has finished. See docs/webhooks.md.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, StringConstraints, field_validator

from fairpool.schemas.base import Input, printable

EVENTS = ("finished", "failed", "preempted", "requeued", "idle", "started")
Event = Literal["finished", "failed", "preempted", "requeued", "idle", "started"]
DEFAULT_EVENTS: tuple[Event, ...] = ("finished", "failed")
Format = Literal["json", "slack"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
#: a webhook's or a delivery's id
WEBHOOK_ID = r"^[0-9a-f]{12}$"
MAX_URL = 2048
MAX_WEBHOOKS_PER_PROJECT = 20


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a webhook's address (None: nothing)."""
    if len(url) > MAX_URL:
        return f"the URL is {len(url)} characters long; at most {MAX_URL}"
    if any(c.isspace() or ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in url):
        return "the URL must not contain spaces or control characters (percent-encode them)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"the URL is not valid: {exc}"
    if parts.scheme not in ("http", "https"):
        return (f"the URL must start with http:// or https:// (not {parts.scheme or 'nothing'}"
                "://)")
    if not parts.hostname:
        return "the URL has no host name"
    if port == 0:
        return "the URL's port must be from 1 to 65535"
    return None


class WebhookCreate(Input):
    url: str = Field(description="where to POST notifications: http:// or https://")
    events: list[Event] = Field(default_factory=lambda: list(DEFAULT_EVENTS), min_length=1,
                                max_length=len(EVENTS),
                                description=f"which of {', '.join(EVENTS)}")
    format: Format = Field("json", description="json (fairpool's payload) or slack (a Slack "
                                               "incoming webhook's {text, blocks})")
    secret: Annotated[str, StringConstraints(min_length=16, max_length=256)] | None = Field(
        None, description="the HMAC-SHA256 signing key; default: one made by the server, "
                          "returned once in the answer")
    min_wait_s: float = Field(60.0, ge=0, le=30 * 86400,
                              description="started: only for jobs that waited at least this")
    description: Annotated[str, StringConstraints(max_length=200)] = ""

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        problem = url_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url

    @field_validator("events")
    @classmethod
    def _events(cls, events: list[Event]) -> list[Event]:
        return [e for e in EVENTS if e in events]  # once each, in a fixed order

    @field_validator("secret")
    @classmethod
    def _secret(cls, secret: str | None) -> str | None:
        if secret is not None and not all(" " < c <= "~" for c in secret):
            raise ValueError("the secret must be printable ASCII without spaces")
        return secret

    @field_validator("description")
    @classmethod
    def _description(cls, text: str) -> str:
        return printable("the description", text)


class WebhookOut(BaseModel):
    """A webhook; neither its secret nor its whole URL is returned (a Slack URL's path is a
    credential): ``url`` keeps the scheme, host, port and first path segment."""

    id: str
    project: str
    url: str
    events: list[str]
    format: str
    min_wait_s: float
    description: str
    created_by: str
    created_at: float


class WebhookCreated(WebhookOut):
    secret: str = Field(description="the signing secret; shown only in this response")


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    event: str
    job_id: str | None
    array_id: str | None
    status: DeliveryStatus
    attempts: int
    next_at: float | None = Field(description="when the next attempt is due (pending only)")
    last_error: str | None
    response_code: int | None
    created_at: float
    delivered_at: float | None
