"""The audit log: who did what, when, from where, and whether it was allowed; and the throttle
that keeps floods of refusals and failed logins from filling it."""

from __future__ import annotations

import threading
import time

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from fairpool.services.access_specs import AuditOut
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
        self.burst = max(1.0, rate if burst is None else burst)
        self._keys: dict[str, tuple[float, float, int]] = {}  # level, when, left out since
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """None: leave this one out (it is counted); else record it, saying that this many
        were left out before it."""
        now = time.monotonic()
        with self._lock:
            level, at, skipped = self._keys.get(key, (self.burst, now, 0))
            level = min(self.burst, level + (now - at) * self.rate)
            if level < 1.0:
                self._keys[key] = (level, now, skipped + 1)
                return None
            if len(self._keys) > 100_000:  # a flood of distinct keys: start over
                self._keys.clear()
            self._keys[key] = (level - 1.0, now, 0)
            return skipped


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
