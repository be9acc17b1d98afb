"""Failed attempts and runaway jobs: retries with exponential backoff, and the max runtime.

A failed attempt of a job with retries left is requeued (the whole gang: its other ranks were
stopped when the first one failed) and held back for a backoff that doubles with each retry;
every attempt keeps its events and logs. A job running longer than its max runtime is stopped
(SIGTERM, then SIGKILL after the grace period) and ends failed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairpool.domain import JobState
from fairpool.domain.states import transition
from fairpool.services.jobs import add_event
from fairpool.store.db import Store
from fairpool.store.models import JobRow

S = JobState


def backoff_s(retry: int, base_s: float, cap_s: float) -> float:
    """The wait before retry number ``retry`` (1, 2, ...): base, 2×base, 4×base, ... ≤ cap."""
    return float(min(cap_s, base_s * 2 ** max(0, retry - 1)))


def next_attempt(row: JobRow) -> None:
    """Bookkeeping of a job whose attempt ended and that goes back to the queue."""
    row.attempt += 1
    row.placement = None
    row.started_at = row.admitted_at = None
    row.stop_reason = None


def retry(s: Session, row: JobRow, now: float, why: str, base_s: float, cap_s: float) -> bool:
    """Requeue a failed attempt if the job has retries left (in the caller's transaction)."""
    if row.retries >= row.max_retries:
        if row.max_retries:
            add_event(s, row.id, "retries", f"{why}; no retries left ({row.max_retries} used)",
                      now)
        return False
    state = transition(S(row.state), S.FAILED)
    row.state = transition(state, S.REQUEUED).value
    row.retries += 1
    wait = backoff_s(row.retries, base_s, cap_s)
    row.not_before = now + wait
    row.reason = (f"retry {row.retries} of {row.max_retries} after: {why}; scheduled again "
                  f"after {time.strftime('%H:%M:%S', time.localtime(now + wait))}")
    row.reason_code = "retry-backoff"
    next_attempt(row)
    row.exit_code = None
    add_event(s, row.id, "retrying", f"attempt {row.attempt - 1} {why}; retry {row.retries} of "
              f"{row.max_retries} in {wait:g} s as attempt {row.attempt}", now)
    return True


def overdue(rows: Iterable[JobRow], now: float) -> list[JobRow]:
    """Running jobs past their max runtime that are not being stopped yet."""
    return [r for r in rows if r.state == S.RUNNING.value and r.stop_reason is None
            and r.max_runtime_s is not None and r.started_at is not None
            and now - r.started_at > r.max_runtime_s]


def stop_overdue(store: Store, late: list[JobRow], now: float) -> list[JobRow]:
    """Ask jobs past their max runtime to stop; returns their changed rows."""
    ids = [r.id for r in late]
    changed = []
    with store.writing() as s:
        seq = Store.bump(s)
        for row in s.execute(select(JobRow).where(JobRow.id.in_(ids))).scalars():
            if row.state != S.RUNNING.value or row.stop_reason is not None:
                continue
            row.stop_reason = "timeout"
            row.seq = seq
            add_event(s, row.id, "timeout", f"ran longer than its max runtime "
                      f"({row.max_runtime_s:g} s): stopping its workers", now)
            changed.append(row)
    return changed
