"""Limits against abuse: the size of a request body, and a per-caller rate limit on submit."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fairpool.auth.rbac import Principal
from fairpool.services.errors import ServiceError


class TooMany(ServiceError):
    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether the client declared the length
    or streams the body in chunks, before any handler sees them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0
        too_big = False
        started = False

        async def counted() -> Message:
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    raise _TooLarge
            return message

        async def answer(message: Message) -> None:
            # once the body was cut off, whatever the app makes of that (FastAPI answers 400
            # "error parsing the body") is replaced by the 413
            nonlocal started
            if too_big and not started:
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not too_big or started:
                raise
        if too_big and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": f"the request body is larger than {self.max_bytes} bytes; "
                                    "send less (commands and environments have their own "
                                    "limits, see /docs)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class RateLimiter:
    """A token bucket per caller: ``rate`` requests a second on average, ``burst`` at once.
    A rate of 0 turns the limit off."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until a request would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            level, at = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - at) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            return (1.0 - level) / self.rate


def rate_limited(limiter: RateLimiter, guard: Any, what: str) -> Any:
    """A dependency that runs ``guard`` (which returns the caller) and then takes from the
    caller's bucket (keyed by token, or by user for identity-provider tokens)."""

    async def check(request: Request, who: Principal = guard) -> Principal:
        key = who.token_id or f"user:{who.user}"
        wait = limiter.take(key)
        if wait > 0:
            raise TooMany(f"too many {what} requests from {who.user}: at most "
                          f"{limiter.rate:g}/s (bursts of {limiter.burst}); retry in "
                          f"{wait:.1f} s", wait)
        return who

    return Depends(check)
