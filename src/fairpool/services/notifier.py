"""The notifier: a thread of the API process that tells per-project webhooks what happened to
their jobs, apart from the control loop (it only reads the events the loop writes), so a slow
or unreachable receiver never holds up scheduling.

Each pass it

1. reads the job events after its *watermark* that may notify (fairpool.services.
   webhook_events), of projects that have webhooks, and writes their deliveries;
2. hands the deliveries that are due, oldest ``next_at`` first and one per webhook at a time,
   to a few sender threads (fairpool.services.webhook_delivery);
3. now and then deletes finished deliveries older than ``keep_s``.

The watermark (kept in ``store_meta``, so a restart resumes where it was) trails the newest
event by ``lag_s``: an event whose transaction commits after a later one's (PostgreSQL hands
out ids before commit) is still read, and a delivery's key (unique per webhook) makes reading
an event twice harmless. The first start begins at the newest event: history is not replayed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fairpool.auth.secretbox import SecretBox
from fairpool.services import webhook_delivery, webhook_events
from fairpool.services.webhook_delivery import WebhookPolicy
from fairpool.store.db import Store
from fairpool.store.models import JobEventRow, JobRow, MetaRow
from fairpool.store.webhook_models import DeliveryRow, WebhookRow

log = logging.getLogger("fairpool.notifier")
CURSOR = "webhooks.watermark"
#: the most events read in one pass
BATCH = 2000


class Notifier:
    """Start with ``start``, end with ``stop``; ``step`` is one pass (tests call it)."""

    def __init__(self, store: Store, box: SecretBox, policy: WebhookPolicy, *,
                 poll_s: float = 0.5, senders: int = 8, lag_s: float = 5.0,
                 keep_s: float = 7 * 86400) -> None:
        self.store, self.box, self.policy = store, box, policy
        self.poll_s, self.lag_s, self.keep_s = poll_s, lag_s, keep_s
        self.senders = senders
        self._pool = ThreadPoolExecutor(senders, thread_name_prefix="fairpool-webhook")
        self._http = webhook_delivery.client(policy)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # webhooks with a delivery being sent
        self._seen: set[int] = set()  # events above the watermark already read
        self._marks: deque[tuple[float, int]] = deque()  # (monotonic time, newest event id)
        self._watermark: int | None = None
        self._saved: int | None = None
        self._saved_at = 0.0
        self._pruned_at = 0.0
        self._thread: threading.Thread | None = None

    # -- the thread -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fairpool-notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()
        try:
            self._save(force=True)
        except Exception:  # the database may be gone at shutdown; the next start re-reads
            log.warning("could not save the webhook watermark", exc_info=True)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            more = False
            try:
                more = self.step()
            except Exception:  # a bad pass must not end notifications for good
                log.exception("webhook notifier pass failed")
            if not more:
                self._wake.wait(self.poll_s)
            self._wake.clear()

    # -- one pass ---------------------------------------------------------------------------
    def step(self, now: float | None = None) -> bool:
        """One pass; True when more events are waiting to be read at once."""
        more = self.scan(now)
        self.send_due(now)
        if time.monotonic() - self._pruned_at > 3600:
            self.prune(now)
        return more

    def scan(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        mono = time.monotonic()
        with self.store.session() as s:
            if self._watermark is None:
                self._watermark = self._load(s)
            newest = int(s.execute(select(func.max(JobEventRow.id))).scalar_one() or 0)
            hooks: dict[str, list[WebhookRow]] = {}
            for hook in s.execute(select(WebhookRow)).scalars():
                hooks.setdefault(hook.project, []).append(hook)
            wanted = {e for rows in hooks.values() for h in rows for e in h.events}
            read: list[webhook_events.Event] = []
            last: int | None = None  # the last event read when there may be more
            if hooks:
                found = s.execute(
                    select(JobEventRow, JobRow).join(JobRow, JobRow.id == JobEventRow.job_id)
                    .where(JobEventRow.id > self._watermark,
                           JobEventRow.kind.in_(webhook_events.KINDS),
                           JobRow.project.in_(list(hooks)))
                    .order_by(JobEventRow.id).limit(BATCH)).all()
                last = found[-1][0].id if len(found) == BATCH else None
                read = [webhook_events.Event(ev.id, ev.at, ev.kind, ev.message, ev.cause, job)
                        for ev, job in found if ev.id not in self._seen]
            made = webhook_events.notices(s, read, wanted) if read else []
            rows = webhook_events.deliveries(s, made, hooks, now) if made else []
        if rows:
            try:
                with self.store.writing() as w:
                    w.add_all(rows)
            except IntegrityError:  # another server wrote some of them first: read again
                return True
            self._wake.set()
        self._seen.update(e.id for e in read)
        self._marks.append((mono, newest))
        self._advance(mono, last)
        self._save()
        return last is not None and bool(read)

    def _advance(self, mono: float, capped_at: int | None) -> None:
        """Move the watermark to the newest event id seen at least ``lag_s`` ago (no further
        than ``capped_at`` when a pass could not read all there was)."""
        target = None
        while self._marks and mono - self._marks[0][0] >= self.lag_s:
            target = self._marks.popleft()[1]
        assert self._watermark is not None
        if target is None or target <= self._watermark:
            return
        if capped_at is not None:
            target = min(target, capped_at)
        self._watermark = target
        self._seen = {i for i in self._seen if i > target}

    def _load(self, s: Session) -> int:
        row = s.get(MetaRow, CURSOR)
        if row is not None:
            self._saved = int(row.value)
            return int(row.value)
        start = int(s.execute(select(func.max(JobEventRow.id))).scalar_one() or 0)
        return start  # saved by the first _save

    def _save(self, force: bool = False) -> None:
        mark = self._watermark
        if mark is None or mark == self._saved:
            return
        if not force and time.monotonic() - self._saved_at < 2.0:
            return
        with self.store.writing() as s:
            row = s.get(MetaRow, CURSOR)
            if row is None:
                s.add(MetaRow(key=CURSOR, value=mark))
            elif row.value < mark:
                row.value = mark
        self._saved, self._saved_at = mark, time.monotonic()

    # -- sending ----------------------------------------------------------------------------
    def send_due(self, now: float | None = None) -> int:
        """Hand due deliveries to the senders; returns how many were handed."""
        now = time.time() if now is None else now
        with self._lock:
            free = self.senders - len(self._busy)
            if free <= 0:
                return 0
            busy = set(self._busy)
        with self.store.session() as s:
            due = s.execute(select(DeliveryRow.id, DeliveryRow.webhook_id)
                            .where(DeliveryRow.status == "pending", DeliveryRow.next_at <= now)
                            .order_by(DeliveryRow.next_at).limit(200)).all()
        handed = 0
        for delivery_id, webhook_id in due:
            if handed >= free:
                break
            if webhook_id in busy:
                continue
            busy.add(webhook_id)
            with self._lock:
                self._busy.add(webhook_id)
            try:
                self._pool.submit(self._send, delivery_id, webhook_id, now)
            except RuntimeError:  # shutting down
                with self._lock:
                    self._busy.discard(webhook_id)
                break
            handed += 1
        return handed

    def _send(self, delivery_id: str, webhook_id: str, now: float) -> None:
        try:
            webhook_delivery.attempt(self.store, self.box, self.policy, self._http,
                                     delivery_id, max(now, time.time()))
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", delivery_id)
        finally:
            with self._lock:
                self._busy.discard(webhook_id)
            self._wake.set()  # its webhook's next delivery may be due

    def prune(self, now: float | None = None) -> int:
        """Delete delivered and failed deliveries older than ``keep_s``."""
        now = time.time() if now is None else now
        self._pruned_at = time.monotonic()
        with self.store.writing() as s:
            gone = s.execute(delete(DeliveryRow).where(
                DeliveryRow.status != "pending", DeliveryRow.created_at < now - self.keep_s))
        return int(getattr(gone, "rowcount", 0) or 0)
