"""Per-project webhooks as a use case: create one (its secret made here unless given, and
returned once), list them, delete one, list its deliveries, send it a test notification.
Only the project's managers reach these (the API checks ``Perm.MANAGE`` on the project).

The URL and the secret are sealed with the server's secret key; answers show a hint of the
URL (scheme, host, port and first path segment), never the secret. What is sent, when and how
often is fairpool.services.notifier's and webhook_delivery's business.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from fairpool.auth.secretbox import SecretBox
from fairpool.schemas.webhooks import (
    MAX_WEBHOOKS_PER_PROJECT,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
)
from fairpool.services import audit, webhook_delivery, webhook_payloads
from fairpool.services.errors import Conflict, Invalid, NotFound
from fairpool.services.webhook_delivery import WebhookPolicy
from fairpool.store.db import Store
from fairpool.store.models import QueueRow
from fairpool.store.webhook_models import DeliveryRow, WebhookRow


def url_hint(url: str) -> str:
    """``https://hooks.slack.com/services/…`` for a URL with a longer path or a query: enough
    to tell webhooks apart, not the credential a path or query may be."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    segments = [p for p in parts.path.split("/") if p]
    path = f"/{segments[0]}" if segments else ""
    if len(segments) > 1 or parts.query:
        path += "/…"
    return f"{parts.scheme}://{netloc}{path}"[:300]


def webhook_out(row: WebhookRow) -> WebhookOut:
    return WebhookOut(id=row.id, project=row.project, url=row.url_hint, events=list(row.events),
                      format=row.format, min_wait_s=row.min_wait_s, description=row.description,
                      created_by=row.created_by, created_at=row.created_at)


def delivery_out(row: DeliveryRow) -> DeliveryOut:
    return DeliveryOut(id=row.id, webhook_id=row.webhook_id, event=row.event, job_id=row.job_id,
                       array_id=row.array_id, status=row.status, attempts=row.attempts,
                       next_at=row.next_at if row.status == "pending" else None,
                       last_error=row.last_error, response_code=row.response_code,
                       created_at=row.created_at, delivered_at=row.delivered_at)


def _project(s: Session, project: str) -> None:
    row = s.get(QueueRow, project)
    if row is None or row.kind != "project" or row.deleted_at is not None:
        raise NotFound(f"project {project} does not exist")


def _webhook(s: Session, project: str, webhook_id: str) -> WebhookRow:
    _project(s, project)
    row = s.get(WebhookRow, webhook_id)
    if row is None or row.project != project:
        raise NotFound(f"project {project} has no webhook {webhook_id} (`fairpool webhook list "
                       f"{project}` lists them)")
    return row


def create(store: Store, box: SecretBox, policy: WebhookPolicy, actor: str, project: str,
           spec: WebhookCreate, address: str = "") -> WebhookCreated:
    if not policy.allow_private:
        refused = webhook_delivery.private_address(spec.url)
        if refused is not None:
            raise Invalid(f"url: {refused}; this pool delivers only to public addresses "
                          "(webhook_allow_private is off)")
    secret = spec.secret or "whsec_" + secrets.token_urlsafe(32)
    sealed = webhook_delivery.seal(box, spec.url, secret)
    with store.writing() as s:
        _project(s, project)
        count = s.execute(select(func.count()).select_from(WebhookRow)
                          .where(WebhookRow.project == project)).scalar_one()
        if count >= MAX_WEBHOOKS_PER_PROJECT:
            raise Conflict(f"project {project} has {count} webhooks, the most allowed; remove "
                           "one first (`fairpool webhook remove`)")
        row = WebhookRow(id=secrets.token_hex(6), project=project, url_hint=url_hint(spec.url),
                         sealed=sealed, events=list(spec.events), format=spec.format,
                         min_wait_s=spec.min_wait_s, description=spec.description,
                         created_by=actor, created_at=time.time())
        s.add(row)
        audit.record(s, actor, "webhook.create", f"{project}/{row.id}",
                     detail=f"{row.url_hint} {','.join(row.events)} {row.format}",
                     address=address)
    return WebhookCreated(**webhook_out(row).model_dump(), secret=secret)


def list_webhooks(store: Store, project: str) -> list[WebhookOut]:
    with store.session() as s:
        _project(s, project)
        rows = s.execute(select(WebhookRow).where(WebhookRow.project == project)
                         .order_by(WebhookRow.created_at, WebhookRow.id)).scalars()
        return [webhook_out(r) for r in rows]


def remove(store: Store, actor: str, project: str, webhook_id: str, address: str = ""
           ) -> WebhookOut:
    """Delete a webhook and its deliveries (pending ones are not sent)."""
    with store.writing() as s:
        row = _webhook(s, project, webhook_id)
        out = webhook_out(row)
        s.execute(delete(DeliveryRow).where(DeliveryRow.webhook_id == webhook_id))
        s.delete(row)
        audit.record(s, actor, "webhook.delete", f"{project}/{webhook_id}", address=address)
    return out


def deliveries(store: Store, project: str, webhook_id: str, status: str | None = None,
               limit: int = 50) -> list[DeliveryOut]:
    """A webhook's deliveries, newest first."""
    with store.session() as s:
        _webhook(s, project, webhook_id)
        query = select(DeliveryRow).where(DeliveryRow.webhook_id == webhook_id)
        if status is not None:
            query = query.where(DeliveryRow.status == status)
        rows = s.execute(query.order_by(DeliveryRow.created_at.desc(), DeliveryRow.id.desc())
                         .limit(limit)).scalars()
        return [delivery_out(r) for r in rows]


def send_test(store: Store, box: SecretBox, policy: WebhookPolicy, actor: str, project: str,
              webhook_id: str, address: str = "") -> DeliveryOut:
    """Send a ``test`` notification now and say how its first attempt went; one that failed
    is retried like any other."""
    now = time.time()
    with store.writing() as s:
        hook = _webhook(s, project, webhook_id)
        data = webhook_payloads.payload("test", project, now,
                                        f"a test notification sent by {actor}")
        row = DeliveryRow(id=secrets.token_hex(8), webhook_id=webhook_id,
                          key=f"t:{secrets.token_hex(8)}", event="test",
                          body=webhook_payloads.body(hook.format, data), status="pending",
                          attempts=0, next_at=now, created_at=now)
        s.add(row)
        audit.record(s, actor, "webhook.test", f"{project}/{webhook_id}", address=address)
    with webhook_delivery.client(policy) as http:
        done = webhook_delivery.attempt(store, box, policy, http, row.id, now)
    if done is None:  # the notifier took it first: its first attempt is under way there
        done = _first_attempt(store, row.id, time.monotonic() + policy.timeout_s + 2.0)
    return delivery_out(done or row)


def _first_attempt(store: Store, delivery_id: str, until: float) -> DeliveryRow | None:
    """The delivery once an attempt of it has ended (or as it is at ``until``)."""
    while True:
        with store.session() as s:
            row = s.get(DeliveryRow, delivery_id)
            if row is None or row.status != "pending" or row.last_error is not None or (
                    time.monotonic() >= until):
                return row
        time.sleep(0.05)
