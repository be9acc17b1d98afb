"""The SDK's webhook operations, as functions of a :class:`~fairpool.client.Client`:

    from fairpool.client import Client
    from fairpool.client import webhooks
    with Client() as c:
        hook = webhooks.add(c, "vision", "https://ci.example/hooks/fairpool",
                            events=["finished", "failed"])
        print(hook.secret)               # shown once: keep it to verify signatures
        print(webhooks.deliveries(c, "vision", hook.id))

Only a project's managers may use them (see docs/webhooks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fairpool.client.http import Transport, build, segment
from fairpool.schemas.webhooks import DeliveryOut, WebhookCreate, WebhookCreated, WebhookOut


def _path(project: str, webhook_id: str | None = None, tail: str = "") -> str:
    path = f"/api/v1/projects/{segment(project)}/webhooks"
    if webhook_id is not None:
        path += f"/{segment(webhook_id)}"
    return path + tail


def add(c: Transport, project: str, url: str, *, events: Sequence[str] | None = None,
        format: str = "json", secret: str | None = None, min_wait_s: float = 60.0,
        description: str = "") -> WebhookCreated:
    """Create a webhook; the answer carries its signing secret, which is never shown again."""
    fields: dict[str, Any] = {"url": url, "format": format, "min_wait_s": min_wait_s,
                              "description": description}
    if events is not None:
        fields["events"] = list(events)
    if secret is not None:
        fields["secret"] = secret
    return c._send("POST", _path(project), build(WebhookCreate, **fields), WebhookCreated)


def list_all(c: Transport, project: str) -> list[WebhookOut]:
    return c._get(_path(project), list[WebhookOut])


def remove(c: Transport, project: str, webhook_id: str) -> WebhookOut:
    return c._send("DELETE", _path(project, webhook_id), None, WebhookOut)


def deliveries(c: Transport, project: str, webhook_id: str, status: str | None = None,
               limit: int = 50) -> list[DeliveryOut]:
    """A webhook's deliveries, newest first (``status``: pending, delivered or failed)."""
    params: dict[str, Any] = {"limit": limit}
    if status is not None:
        params["status"] = status
    return c._get(_path(project, webhook_id, "/deliveries"), list[DeliveryOut], params=params)


def send_test(c: Transport, project: str, webhook_id: str) -> DeliveryOut:
    """Send a test notification now; the answer says how its first attempt went."""
    return c._send("POST", _path(project, webhook_id, "/test"), None, DeliveryOut)
