"""Which job events notify which webhooks, and what each notification says.

A job event (``job_events``, written by fairpool.store.lifecycle) becomes a webhook event:

=================  ==========================================================================
``finished``       a ``finished`` event of a job that succeeded
``failed``         a ``finished`` event of a job that failed (its retries, if any, used up)
``preempted``      an ``evicted`` event (cause: the scheduler's action, ``drain`` or ``idle``)
``requeued``       ``requeued`` (an attempt ended: preempted or lost) or ``retrying``
``idle``           an ``idle`` event (its GPUs were found idle)
``started``        ``running``, when the job had waited at least the webhook's ``min_wait_s``
                   since it was submitted, requeued or released by its dependencies
=================  ==========================================================================

The tasks of a job array notify nothing one by one: when the last of them finishes
(``finished`` or ``cancelled``), the array notifies once, ``failed`` if any task failed and
``finished`` otherwise, with the count of its tasks in each state. A webhook hears only of
events after its creation.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fairpool.domain.states import FINISHED_VALUES
from fairpool.services import webhook_payloads
from fairpool.store.models import ArrayRow, JobEventRow, JobRow
from fairpool.store.webhook_models import DeliveryRow, WebhookRow

#: the job events that may notify (``cancelled``: only as the end of an array)
KINDS = ("finished", "cancelled", "evicted", "requeued", "retrying", "idle", "running")
#: the events after which a job waits again (the wait of ``started`` counts from the last)
WAITS_FROM = ("requeued", "retrying", "evicted", "released")


@dataclass(frozen=True)
class Event:
    """A job event with the job it is of."""

    id: int
    at: float
    kind: str
    message: str
    cause: str | None
    job: JobRow


def classify(kind: str, state: str) -> str | None:
    """The webhook event of a job event of ``kind`` for a job now in ``state`` (None: none)."""
    if kind == "finished":
        return {"succeeded": "finished", "failed": "failed"}.get(state)
    return {"evicted": "preempted", "requeued": "requeued", "retrying": "requeued",
            "idle": "idle", "running": "started"}.get(kind)


def waited(s: Session, e: Event) -> float:
    """How long the job had waited when it started: since it was submitted, or since the last
    event before this one that put it back in the queue."""
    since = s.execute(select(func.max(JobEventRow.at)).where(
        JobEventRow.job_id == e.job.id, JobEventRow.id < e.id,
        JobEventRow.kind.in_(WAITS_FROM))).scalar_one_or_none()
    return e.at - max(e.job.submitted_at, since or 0.0)


def array_end(s: Session, array_id: str) -> dict[str, int] | None:
    """The count of an array's tasks by state once all have finished (None: some have not)."""
    counts = {str(state): int(n) for state, n in s.execute(
        select(JobRow.state, func.count()).where(JobRow.array_id == array_id)
        .group_by(JobRow.state)).all()}
    if not counts or any(state not in FINISHED_VALUES for state in counts):
        return None
    return counts


@dataclass(frozen=True)
class Notice:
    """One notification to make to every webhook of ``project`` that wants ``event``."""

    key: str
    event: str
    project: str
    at: float
    data: dict[str, Any]
    job_id: str | None = None
    array_id: str | None = None
    waited_s: float | None = None


def notices(s: Session, events: Iterable[Event], wanted: set[str]) -> list[Notice]:
    """What ``events`` notify, among the webhook events in ``wanted``."""
    out: list[Notice] = []
    ended: set[str] = set()
    for e in events:
        row = e.job
        if row.array_id is not None:
            if e.kind not in ("finished", "cancelled") or row.array_id in ended:
                continue
            counts = array_end(s, row.array_id)
            if counts is None:
                continue
            ended.add(row.array_id)
            event = "failed" if counts.get("failed") else "finished"
            if event not in wanted:
                continue
            array = s.get(ArrayRow, row.array_id)
            fields = (webhook_payloads.array_fields(array, counts) if array is not None else
                      {"id": row.array_id, "name": "", "project": row.project,
                       "size": sum(counts.values()), "submitted_by": row.submitted_by,
                       "submitted_at": row.submitted_at, "counts": counts})
            tally = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            out.append(Notice(f"a:{row.array_id}", event, row.project, e.at,
                              webhook_payloads.payload(event, row.project, e.at,
                                                       f"all tasks finished: {tally}",
                                                       array=fields),
                              array_id=row.array_id))
            continue
        kind = classify(e.kind, row.state)
        if kind is None or kind not in wanted:
            continue
        wait = waited(s, e) if kind == "started" else None
        out.append(Notice(f"e:{e.id}", kind, row.project, e.at, webhook_payloads.payload(
            kind, row.project, e.at, e.message, job=webhook_payloads.job_fields(row),
            cause=e.cause if kind == "preempted" else None, waited_s=wait),
            job_id=row.id, waited_s=wait))
    return out


def deliveries(s: Session, found: Sequence[Notice], hooks: dict[str, list[WebhookRow]],
               now: float) -> list[DeliveryRow]:
    """The deliveries ``found`` makes to the webhooks (by project) that want each, less those
    already written (by an earlier pass or another server)."""
    rows: list[DeliveryRow] = []
    for n in found:
        for hook in hooks.get(n.project, ()):
            if n.event not in hook.events or n.at < hook.created_at:
                continue
            if n.event == "started" and (n.waited_s or 0.0) < hook.min_wait_s:
                continue
            rows.append(DeliveryRow(
                id=secrets.token_hex(8), webhook_id=hook.id, key=n.key, event=n.event,
                job_id=n.job_id, array_id=n.array_id,
                body=webhook_payloads.body(hook.format, n.data), status="pending", attempts=0,
                next_at=now, created_at=now))
    if not rows:
        return rows
    query = select(DeliveryRow.webhook_id, DeliveryRow.key).where(
        DeliveryRow.webhook_id.in_({r.webhook_id for r in rows}),
        DeliveryRow.key.in_({r.key for r in rows}))
    have = {(str(w), str(k)) for w, k in s.execute(query)}
    return [r for r in rows if (r.webhook_id, r.key) not in have]
