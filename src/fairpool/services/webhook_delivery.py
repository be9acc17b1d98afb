"""Sending one webhook delivery: claim it (so no other sender of the pool posts it at the same
time), POST its body signed afresh, and record the outcome: delivered on a 2xx answer; else
retried with exponential backoff (``retry_base_s``, doubling, at most ``retry_cap_s``) until
``max_attempts`` attempts, then failed, with the last error kept. Redirects are not followed.

No database transaction is open while a request is in flight, so a slow or unreachable
receiver holds up nothing but its own delivery.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from fairpool.auth.secretbox import SecretBox, SecretKeyError
from fairpool.services import webhook_payloads
from fairpool.store.db import Store
from fairpool.store.webhook_models import DeliveryRow, WebhookRow

#: the most bytes of a receiver's answer read (for the error of a failed delivery)
MAX_ANSWER = 1024


@dataclass(frozen=True)
class WebhookPolicy:
    """How deliveries are made (``ServerSettings.webhook_*``)."""

    timeout_s: float = 5.0
    max_attempts: int = 6
    retry_base_s: float = 10.0
    retry_cap_s: float = 600.0
    #: deliver to loopback, private and link-local addresses (pools live on private networks)
    allow_private: bool = True

    def backoff(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt."""
        return float(min(self.retry_cap_s, self.retry_base_s * 2 ** max(0, attempts - 1)))

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is left to its sender before another may retry it (a
        sender that died mid-request)."""
        return 2 * self.timeout_s + 30.0


def seal(box: SecretBox, url: str, secret: str) -> str:
    return box.seal(json.dumps({"url": url, "secret": secret}))


def unseal(box: SecretBox, sealed: str) -> tuple[str, str]:
    data = json.loads(box.open(sealed))
    return str(data["url"]), str(data["secret"])


def private_address(url: str) -> str | None:
    """The first address of ``url``'s host that is not a global one (loopback, private,
    link-local, reserved), or a reason it cannot be resolved; None when all are global."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return f"{host} cannot be resolved ({exc})"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            return f"{host} resolves to {address}, not a public address"
    return None


def post(http: httpx.Client, url: str, raw: bytes, headers: dict[str, str]
         ) -> tuple[int | None, str | None]:
    """POST once: the answer's status code (None: no answer) and an error (None: a 2xx)."""
    try:
        with http.stream("POST", url, content=raw, headers=headers) as resp:
            answer = b""
            for chunk in resp.iter_bytes():
                answer += chunk
                if len(answer) >= MAX_ANSWER:
                    break
    except httpx.TimeoutException:
        return None, f"no answer within {http.timeout.read or 0:g} s (timed out)"
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return None, f"cannot reach {urlsplit(url).netloc.rsplit('@', 1)[-1]}: {exc}"
    code = resp.status_code
    if 200 <= code < 300:
        return code, None
    if 300 <= code < 400:
        return code, (f"HTTP {code}: redirected to {resp.headers.get('location', '?')[:200]}; "
                      "redirects are not followed, give the webhook its final URL")
    text = " ".join(answer[:MAX_ANSWER].decode("utf-8", "replace").split())[:200]
    return code, f"HTTP {code}" + (f": {text}" if text else "")


def attempt(store: Store, box: SecretBox, policy: WebhookPolicy, http: httpx.Client,
            delivery_id: str, now: float | None = None) -> DeliveryRow | None:
    """Make the next attempt of a pending, due delivery; returns it as it is afterwards (None:
    it was not pending and due, or its webhook was deleted meanwhile)."""
    now = time.time() if now is None else now
    with store.writing() as s:
        row = s.get(DeliveryRow, delivery_id, with_for_update=True)
        if row is None or row.status != "pending" or row.next_at > now:
            return None
        hook = s.get(WebhookRow, row.webhook_id)
        if hook is None:
            return None
        row.attempts += 1
        row.next_at = now + policy.lease_s
        attempts, raw, event = row.attempts, row.body.encode(), row.event
        sealed = hook.sealed
    refused: str | None = None
    code: int | None = None
    error: str | None
    try:
        url, secret = unseal(box, sealed)
    except SecretKeyError as exc:
        error, attempts = f"not sent: {exc}", policy.max_attempts
    else:
        refused = None if policy.allow_private else private_address(url)
        if refused is not None:
            error = f"refused: {refused} (webhook_allow_private is off)"
        else:
            code, error = post(http, url, raw, webhook_payloads.headers(
                secret, delivery_id, event, raw, time.time()))
    done = max(now, time.time())  # now: the time the attempt was due (tests move it on)
    with store.writing() as s:
        row = s.get(DeliveryRow, delivery_id, with_for_update=True)
        if row is None:
            return None
        row.response_code = code
        if error is None:
            row.status, row.delivered_at, row.last_error = "delivered", done, None
        else:
            row.last_error = error
            if attempts >= policy.max_attempts or refused is not None:
                row.status = "failed"
            else:
                row.next_at = done + policy.backoff(attempts)
        return row


def client(policy: WebhookPolicy) -> httpx.Client:
    """The HTTP client deliveries use: bounded timeouts, no redirects."""
    return httpx.Client(timeout=httpx.Timeout(policy.timeout_s), follow_redirects=False,
                        limits=httpx.Limits(max_connections=32, max_keepalive_connections=8))
