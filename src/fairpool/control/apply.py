"""The control loop's one write transaction of a step: the plan (evictions, binds), the
deciders' effects (requeues, stops, readings, lifted cordons), admitted jobs whose displaced
jobs have stopped, pending reasons and the published fair shares and allocations.

Each row is re-read inside the transaction and each change re-checked against it (a cancel
may have come in since the loop's view was taken); every change of state goes through
:func:`fairpool.store.lifecycle.move`. The executor is not called here: the loop acts after
the commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fairpool.domain import JobState
from fairpool.domain.states import StopReason
from fairpool.scheduler import Plan
from fairpool.store.db import Store
from fairpool.store.lifecycle import add_event, move
from fairpool.store.models import JobRow, QueueRow

from . import sampling
from .breaker import uncordon
from .effects import Requeue, Sample, Stop, Uncordon
from .gates import Unmet
from .outcomes import nodes_text
from .stats import LoopStats
from .workers import placement_json

S = JobState
PLACED = (S.ADMITTED.value, S.STARTING.value, S.RUNNING.value)  # may be evicted


@dataclass(slots=True)
class Changes:
    """What one step decided to write."""

    now: float
    plan: Plan | None = None  # a new plan (None: nothing new to write)
    requeue: list[Requeue] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    uncordon: list[Uncordon] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)  # admitted jobs that may start now
    released: list[str] = field(default_factory=list)  # waiting jobs whose dependencies are met
    unmet: list[Unmet] = field(default_factory=list)  # waiting jobs whose never will be
    reasons: list[dict[str, object]] = field(default_factory=list)  # bulk, by job id
    shares: list[dict[str, object]] = field(default_factory=list)  # bulk, by queue name

    @property
    def changes(self) -> bool:
        """Whether jobs or nodes change in a way the scheduler must see."""
        return bool((self.plan is not None and self.plan.changes) or self.requeue
                    or self.stops or self.uncordon or self.ready or self.released
                    or self.unmet)

    def __bool__(self) -> bool:
        return self.changes or bool(self.samples or self.reasons or self.shares)


def apply(store: Store, todo: Changes, stats: LoopStats | None = None
          ) -> tuple[list[JobRow], list[JobRow]]:
    """Write ``todo``; returns the jobs changed and those of them marked starting."""
    now = todo.now
    plan = todo.plan
    changed: list[JobRow] = []
    starting: list[JobRow] = []
    with store.writing() as s:
        seq = Store.bump(s) if todo.changes else 0
        ids = ([r.job_id for r in todo.requeue] + [x.job_id for x in todo.stops] + todo.ready
               + todo.released + [u.job_id for u in todo.unmet])
        if plan is not None:
            ids += [e.job_id for e in plan.evictions] + [b.job_id for b in plan.binds]
        rows = load(s, ids)
        for r in todo.requeue:
            row = rows.get(r.job_id)
            if row is not None and row.state == S.ADMITTED.value:
                move(s, row, S.REQUEUED, now=now, seq=seq, message=r.message)
                changed.append(row)
        if plan is not None:
            _plan(s, plan, rows, now, seq, changed, starting)
        for x in todo.stops:
            row = rows.get(x.job_id)
            if row is None or row.state != S.RUNNING.value:
                continue  # it ended, or is being stopped already
            move(s, row, S.STOPPING, now=now, seq=seq, stop=x.reason, kind=x.kind,
                 message=x.message, cause=x.cause)
            if x.reason == StopReason.IDLE_PREEMPT and stats is not None:
                stats.evicted("idle")
            changed.append(row)
        sampling.record(s, todo.samples, now)
        for job_id in todo.ready:
            row = rows.get(job_id)
            if row is not None and row.state == S.ADMITTED.value:
                move(s, row, S.STARTING, now=now, seq=seq,
                     message=f"starting attempt {row.attempt}")
                changed.append(row)
                starting.append(row)
        _dependencies(s, todo, rows, seq, changed)
        uncordon(s, todo.uncordon, now)
        if todo.reasons:
            s.execute(update(JobRow), todo.reasons)  # one bulk UPDATE by primary key
        if todo.shares:
            s.execute(update(QueueRow), todo.shares)
    return changed, starting


def _plan(s: Session, plan: Plan, rows: dict[str, JobRow], now: float, seq: int,
          changed: list[JobRow], starting: list[JobRow]) -> None:
    """Evictions (an admitted job goes back to the queue at once, a started one is stopped),
    then binds (admitted; starting at once when nothing has to stop first)."""
    evicted = {e.job_id for e in plan.evictions}
    for e in plan.evictions:
        row = rows.get(e.job_id)
        if row is None or row.state not in PLACED:
            continue  # finished, requeued or being stopped since the snapshot
        target = S.REQUEUED if row.state == S.ADMITTED.value else S.STOPPING
        move(s, row, target, now=now, seq=seq, kind="evicted", message=f"{e.action}: {e.reason}",
             cause=e.cause, stop=StopReason.PREEMPT if target == S.STOPPING else None)
        changed.append(row)
    for b in plan.binds:
        if b.job_id in evicted:  # a move: it is requeued and placed again later
            continue
        row = rows.get(b.job_id)
        if row is None or row.state not in (S.QUEUED.value, S.REQUEUED.value):
            continue
        placement = placement_json(row, b)
        waits = list(b.waits_for)
        move(s, row, S.ADMITTED, now=now, seq=seq, placement=placement, waits_for=waits,
             message=f"{b.action}: placed on {nodes_text(placement)}" + (
                 f"; waits for {', '.join(waits)} to stop" if waits else ""))
        if not waits:
            move(s, row, S.STARTING, now=now, seq=seq,
                 message=f"starting attempt {row.attempt}")
            starting.append(row)
        changed.append(row)


def _dependencies(s: Session, todo: Changes, rows: dict[str, JobRow], seq: int,
                  changed: list[JobRow]) -> None:
    """Waiting jobs whose dependencies are met join the scheduler's view; those whose
    dependencies never will be are cancelled, saying why."""
    pending = (S.QUEUED.value, S.REQUEUED.value)
    for job_id in todo.released:
        row = rows.get(job_id)
        if row is not None and row.deps_waiting and row.state in pending:
            row.deps_waiting = False
            row.reason = row.reason_code = None
            row.seq = seq
            add_event(s, job_id, "released", "its dependencies are met", todo.now)
            changed.append(row)
    for u in todo.unmet:
        row = rows.get(u.job_id)
        if row is not None and row.deps_waiting and row.state in pending:
            move(s, row, S.CANCELLED, now=todo.now, seq=seq, message=u.message)
            changed.append(row)


def load(s: Session, ids: Iterable[str]) -> dict[str, JobRow]:
    """Rows by id in one query (one at a time, each lookup would flush the changes so far)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    return {r.id: r for r in s.execute(select(JobRow).where(JobRow.id.in_(wanted))).scalars()}
