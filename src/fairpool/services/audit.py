"""The audit log: who did what, when, from where, and whether it was allowed; and the throttle
that keeps floods of refusals and failed logins from filling it."""

from __future__ import annotations

import threading
import time

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from fairpool.schemas.access import AuditOut
from fairpool.services.buckets import Buckets
from fairpool.store.db import Store
from fairpool.store.models import AuditRow

_INSERT = insert(AuditRow)  # one statement, compiled once: it is on the submit path


def record(s: Session, actor: str, action: str, target: str = "", outcome: str = "ok",
           detail: str = "", address: str = "") -> None:
    """Add an entry in the caller's transaction, so an action and its record commit together."""
    s.execute(_INSERT, {"at": time.time(), "actor": actor[:253] or "-", "action": action[:48],
                        "target": target[:300], "outcome": outcome, "detail": detail[:2000],
                        "address": address[:64]})


def record_now(store: Store, actor: str, action: str, target: str = "", outcome: str = "ok",
               detail: str = "", address: str = "") -> None:
    with store.writing() as s:
        record(s, actor, action, target, outcome, detail, address)


class Throttle:
    """Bounds how many records a flood writes: per key (a caller), at most ``rate`` a second
    on average and ``burst`` at once. What is left out is counted, and the count goes with the
    key's next record ("N more not recorded"), so the log still says how many there were."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self._buckets = Buckets(rate, rate if burst is None else burst)
        self._skipped: dict[str, int] = {}  # key → left out since its last record
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """None: leave this one out (it is counted); else record it, saying that this many
        were left out before it."""
        now = time.monotonic()
        with self._lock:
            level = self._buckets.level(key, now)
            if level < 1.0:
                self._buckets.set(key, level, now)
                if len(self._skipped) > 100_000:
                    self._skipped.clear()
                self._skipped[key] = self._skipped.get(key, 0) + 1
                return None
            self._buckets.set(key, level - 1.0, now)
            return self._skipped.pop(key, 0)


def query(store: Store, actor: str | None = None, action: str | None = None,
          outcome: str | None = None, since: float | None = None, until: float | None = None,
          limit: int = 200) -> list[AuditOut]:
    q = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if actor is not None:
        q = q.where(AuditRow.actor == actor)
    if action is not None:
        q = q.where(AuditRow.action == action)
    if outcome is not None:
        q = q.where(AuditRow.outcome == outcome)
    if since is not None:
        q = q.where(AuditRow.at >= since)
    if until is not None:
        q = q.where(AuditRow.at < until)
    with store.session() as s:
        return [AuditOut(id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target,
                         outcome=r.outcome, detail=r.detail, address=r.address)
                for r in s.execute(q).scalars()]
