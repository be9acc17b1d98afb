"""A circuit breaker per node: a node where workers of several jobs keep failing the way broken
machines make them fail (lost, killed by a signal nobody sent, not executable) is cordoned for a
cooldown, so the scheduler stops sending jobs to it, and the event says why; it is uncordoned
when the cooldown ends (a cordon a person set is never lifted by it). Ordinary non-zero exit
codes are the job's own business and do not count, nor do one job's repeated failures; the last
node that can take work is never cordoned."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairpool.services.jobs import add_event
from fairpool.store.db import Store
from fairpool.store.models import NodeRow


class NodeBreaker:
    def __init__(self, failures: int = 3, window_s: float = 60.0, cooldown_s: float = 300.0
                 ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._seen: dict[str, list[tuple[float, str]]] = {}  # node → (time, job) of failures
        self._check_at = 0.0

    @staticmethod
    def counts(exit_code: int | None) -> bool:
        """Failures that point at the machine: lost (None), a signal, or not executable."""
        return exit_code is None or exit_code < 0 or exit_code in (126, 127)

    def failed(self, s: Session, node: str, job_id: str, now: float,
               exit_code: int | None = None) -> None:
        """A worker of ``job_id`` failed on ``node`` (in the caller's transaction)."""
        if not self.counts(exit_code):
            return
        recent = [(t, j) for t, j in self._seen.get(node, []) if now - t <= self.window_s]
        recent = [(t, j) for t, j in recent if j != job_id] + [(now, job_id)]
        self._seen[node] = recent
        if len(recent) < self.failures:
            return
        row = s.get(NodeRow, node)
        if row is None or row.cordoned:
            return
        others = s.execute(select(NodeRow.name).where(
            NodeRow.name != node, NodeRow.ready.is_(True), NodeRow.cordoned.is_(False))).first()
        if others is None:
            return  # cordoning the only node that can take work would stop the whole pool
        jobs = ", ".join(sorted({j for _, j in recent}))
        until = now + self.cooldown_s
        row.cordoned, row.cordon_until = True, until
        row.cordon_reason = (f"{len(recent)} workers failed here within {self.window_s:g} s "
                             f"(jobs {jobs}); cordoned until "
                             f"{time.strftime('%H:%M:%S', time.localtime(until))}")
        add_event(s, job_id, "node-cordoned", f"node {node}: {row.cordon_reason}", now)
        self._seen[node] = []

    def release(self, store: Store, now: float) -> bool:
        """Uncordon nodes whose cooldown is over (checked every few seconds)."""
        if now < self._check_at:
            return False
        self._check_at = now + 5.0
        with store.session() as s:
            due = s.execute(select(NodeRow.name).where(
                NodeRow.cordoned.is_(True), NodeRow.cordon_until.is_not(None),
                NodeRow.cordon_until <= now)).scalars().all()
        if not due:
            return False
        with store.writing() as s:
            for name in due:
                row = s.get(NodeRow, name)
                if row is not None and row.cordon_until is not None and row.cordon_until <= now:
                    row.cordoned, row.cordon_until, row.cordon_reason = False, None, None
            Store.bump(s)
        return True
