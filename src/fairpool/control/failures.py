"""Failed attempts and runaway jobs: retries with exponential backoff, and the max runtime.

A failed attempt of a job with retries left is requeued (the whole gang: its other ranks were
stopped when the first one failed) and held back for a backoff that doubles with each retry;
every attempt keeps its events and logs. A job running longer than its max runtime is stopped
(SIGTERM, then SIGKILL after the grace period) and ends failed: :func:`overdue` decides which,
purely, and the loop applies its :class:`~fairpool.control.effects.Stop` effects.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy.orm import Session

from fairpool.domain import JobState
from fairpool.domain.states import StopReason
from fairpool.store.lifecycle import add_event, move
from fairpool.store.models import JobRow

from .effects import HoldCode, Stop

S = JobState


def backoff_s(retry: int, base_s: float, cap_s: float) -> float:
    """The wait before retry number ``retry`` (1, 2, ...): base, 2×base, 4×base, ... ≤ cap."""
    return float(min(cap_s, base_s * 2 ** max(0, retry - 1)))


def retry(s: Session, row: JobRow, now: float, seq: int, why: str, base_s: float,
          cap_s: float) -> bool:
    """Requeue a failed attempt if the job has retries left (in the caller's transaction)."""
    if row.retries >= row.max_retries:
        if row.max_retries:
            add_event(s, row.id, "retries", f"{why}; no retries left ({row.max_retries} used)",
                      now)
        return False
    row.retries += 1
    wait = backoff_s(row.retries, base_s, cap_s)
    attempt = row.attempt
    move(s, row, S.REQUEUED, now=now, seq=seq, kind="retrying", message=(
        f"attempt {attempt} {why}; retry {row.retries} of {row.max_retries} in {wait:g} s as "
        f"attempt {attempt + 1}"))
    row.not_before = now + wait
    row.reason = (f"retry {row.retries} of {row.max_retries} after: {why}; scheduled again "
                  f"after {time.strftime('%H:%M:%S', time.localtime(now + wait))}")
    row.reason_code = HoldCode.RETRY_BACKOFF
    row.exit_code = None
    return True


def overdue(rows: Iterable[JobRow], now: float) -> list[Stop]:
    """Decide (purely): running jobs past their max runtime are to be stopped."""
    return [Stop(r.id, StopReason.TIMEOUT, "timeout", f"ran longer than its max runtime "
                 f"({r.max_runtime_s:g} s): stopping its workers")
            for r in rows if r.state == S.RUNNING.value and r.max_runtime_s is not None
            and r.started_at is not None and now - r.started_at > r.max_runtime_s]
