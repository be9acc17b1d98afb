"""A local HTTP receiver for webhook tests: a real server on 127.0.0.1 in a thread that keeps
every request it gets and answers with the status codes it is told (200 once they run out)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    at: float

    @property
    def data(self) -> Any:
        return json.loads(self.raw)

    def signed_with(self, secret: str) -> bool:
        """What a receiver does (docs/webhooks.md): HMAC-SHA256 of ``timestamp.body``."""
        timestamp = self.headers["x-fairpool-timestamp"]
        mac = hmac.new(secret.encode(), timestamp.encode() + b"." + self.raw, hashlib.sha256)
        return hmac.compare_digest("sha256=" + mac.hexdigest(),
                                   self.headers["x-fairpool-signature"])


class Receiver:
    def __init__(self) -> None:
        self.got: list[Received] = []
        self.codes: list[int] = []  # answers to give, in order; then 200
        self.headers: dict[str, str] = {}  # added to every answer
        self.delay_s = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.got.append(Received(self.path, {k.lower(): v for k, v in
                                                             self.headers.items()}, raw,
                                                 time.time()))
                    code = receiver.codes.pop(0) if receiver.codes else 200
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                self.send_response(code)
                for k, v in receiver.headers.items():
                    self.send_header(k, v)
                body = b"ok" if code < 300 else b"receiver says no"
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.got if r.path == path]

    def wait_for(self, check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or check}; got {self.got}")


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()
