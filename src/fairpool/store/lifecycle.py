"""The one path by which a stored job changes state: :func:`move`.

It checks the change against the transition table (:mod:`fairpool.domain.states`), assigns the
state, resets the fields the new state needs (placement, times, stop reason, attempt, idle
marks), stamps the change's store generation (``seq``) and writes the job's event, all in the
caller's write transaction. Everything in the server that changes a job's state calls it: the
control loop (plan, worker outcomes, retries, max runtimes, idle policies, lost nodes), cancel,
and node drains. Events that record a fact without a change of state go through
:func:`add_event`.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from fairpool.domain.accounting import held
from fairpool.domain.resources import GPU_UNIT
from fairpool.domain.states import STARTED_STATES, JobState, StopReason, transition
from fairpool.store.convert import placements, worker_request
from fairpool.store.models import JobEventRow, JobRow
from fairpool.store.workers import Phase

S = JobState


def add_event(s: Session, job_id: str, kind: str, message: str, at: float | None = None,
              cause: str | None = None) -> None:
    """Record something a person should know of a job (``cause``: of an eviction)."""
    s.add(JobEventRow(job_id=job_id, at=time.time() if at is None else at, kind=kind,
                      message=message, cause=cause))


def ran_gpu_s(row: JobRow, now: float) -> float:
    """GPU-seconds the job's current run has received by ``now`` (0 if it is not running)."""
    if row.started_at is None or not row.placement:
        return 0.0
    gpus = held(worker_request(row), placements(row)).gpu / GPU_UNIT
    return max(0.0, now - row.started_at) * gpus


def move(s: Session, row: JobRow, target: JobState, *, now: float, seq: int, message: str,
         kind: str | None = None, stop: StopReason | None = None,
         placement: list[dict[str, Any]] | None = None, waits_for: list[str] | None = None,
         cause: str | None = None) -> None:
    """Change ``row`` to ``target`` (raises :class:`~fairpool.domain.states.IllegalTransition`
    for an edge the table forbids) and write the event ``kind`` (the target state's name when
    not given) with ``message``.

    * admitted: ``placement`` (required) and ``waits_for`` (jobs that must stop first); the
      waiting reason is cleared;
    * starting: every worker is marked starting;
    * running: the start time;
    * stopping: ``stop`` (required) says why, and so what the job becomes once stopped;
    * requeued: the attempt's placement, times, stop reason and idle marks are cleared, and an
      attempt that reached the executor counts as one (the next gets new worker ids); the
      GPU-seconds the run received are added to ``attained_gpu_s`` and ``queued_at`` is set;
    * succeeded, failed, cancelled: the finish time, and no waiting reason; a job that never
      started keeps no placement.
    """
    current = S(row.state)
    transition(current, target)
    if target == S.ADMITTED:
        if placement is None:
            raise ValueError(f"job {row.id}: admitting a job needs its placement")
        row.placement, row.waits_for = placement, waits_for or None
        row.admitted_at = now
        row.reason = row.reason_code = None
    elif target == S.STARTING:
        row.placement = [dict(w, phase=Phase.STARTING) for w in row.placement or ()]
        row.waits_for = None
    elif target == S.RUNNING:
        row.started_at = now
    elif target == S.STOPPING:
        if stop is None:
            raise ValueError(f"job {row.id}: stopping a job needs a stop reason")
        row.stop_reason = stop.value
    else:  # back to the queue, or finished
        if target == S.REQUEUED:  # (the run's service, before its placement goes)
            row.attained_gpu_s = (row.attained_gpu_s or 0.0) + ran_gpu_s(row, now)
            row.queued_at = now
        if target == S.REQUEUED and current in STARTED_STATES:
            row.attempt += 1
        if target == S.REQUEUED or current not in STARTED_STATES:
            row.placement = None
        if target == S.REQUEUED:
            row.started_at = row.admitted_at = None
        else:  # why it waited is history now (its events keep it)
            row.finished_at = now
            row.reason = row.reason_code = None
            row.deps_waiting = False
        row.waits_for = None
        row.stop_reason = None
        row.idle_since, row.idle_flagged = None, False
    row.state = target.value
    row.seq = seq
    add_event(s, row.id, kind or target.value, message, now, cause)


def stop_reason(row: JobRow) -> StopReason | None:
    """Why a stopping job is being stopped (None for any other job)."""
    return StopReason(row.stop_reason) if row.stop_reason is not None else None
