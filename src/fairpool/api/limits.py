"""Limits against abuse: the size of a request body, and rate limits on submit: per user (all
of a user's tokens share one budget, so minting tokens buys nothing) and per project (all its
members together)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fairpool.auth.rbac import Principal
from fairpool.services.buckets import Buckets
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
    """A token bucket per key: ``rate`` requests a second on average, ``burst`` at once.
    A rate of 0 turns the limit off. Not locked: its owner (:class:`SubmitLimiter`) holds one
    lock over the buckets it takes from together."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.buckets = Buckets(rate, self.burst)

    def wait(self, level: float) -> float:
        """Seconds until a bucket at ``level`` allows a request (0: now)."""
        return 0.0 if self.rate <= 0 or level >= 1.0 else (1.0 - level) / self.rate


class SubmitLimiter:
    """The submit limit: a bucket per user and one per project, shared by all who submit to
    it; a submit takes from both or from neither."""

    def __init__(self, user: RateLimiter, project: RateLimiter) -> None:
        self.user = user
        self.project = project
        self._lock = threading.Lock()

    def take(self, user: str, project: str) -> tuple[float, RateLimiter]:
        """(0, the user limit) when allowed, else the seconds until a submit would be and
        the limit it hit."""
        now = time.monotonic()
        with self._lock:
            levels = [(limiter, key, limiter.buckets.level(key, now))
                      for limiter, key in ((self.user, user), (self.project, project))
                      if limiter.rate > 0]
            for limiter, _, level in levels:
                wait = limiter.wait(level)
                if wait > 0:
                    return wait, limiter
            for limiter, key, level in levels:
                limiter.buckets.set(key, level - 1.0, now)
            return 0.0, self.user


def submit_limited(limiter: SubmitLimiter, guard: Any) -> Any:
    """A dependency that runs ``guard`` (which returns the caller, and has checked the body's
    ``project``) and then takes from the caller's bucket and the project's."""

    async def check(request: Request, who: Principal = guard) -> Principal:
        body = await request.json()
        project = str(body.get("project")) if isinstance(body, dict) else ""
        wait, hit = limiter.take(who.user, project)
        if wait <= 0:
            return who
        limit = f"at most {hit.rate:g}/s (bursts of {hit.burst}); retry in {wait:.1f} s"
        if hit is limiter.user:
            raise TooMany(f"too many submit requests from {who.user}: {limit} (the limit is "
                          f"per user, whichever token)", wait)
        raise TooMany(f"too many submit requests to project {project}: its members together "
                      f"may submit {limit}", wait)

    return Depends(check)
