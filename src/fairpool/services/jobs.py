"""Jobs: submit (idempotent with a client key), list, get, cancel, events, explain, logs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fairpool.domain import JobState
from fairpool.domain.states import FINISHED_VALUES, PENDING_VALUES, StopReason
from fairpool.scheduler import SchedulerConfig
from fairpool.schemas.jobs import EventOut, ExplainOut, JobOut, JobSubmit
from fairpool.services import audit, estimates
from fairpool.services import submission as sub
from fairpool.services.errors import Conflict, Invalid, NotFound
from fairpool.services.views import job_out
from fairpool.store.db import Store
from fairpool.store.lifecycle import add_event, move
from fairpool.store.models import JobEventRow, JobRow


def submit(store: Store, spec: JobSubmit, wake: Callable[[], None] | None = None, *,
           actor: str = "system", max_pending: int | None = None, address: str = "",
           mount_roots: Sequence[Path] | None = None, within: set[str] | None = None
           ) -> tuple[JobOut, bool]:
    """Queue a job; returns it and whether it was created (False: an idempotent replay).
    ``mount_roots``: the host directories mount sources must lie under (none: no mounts);
    ``within``: the projects the submitter may see (its dependencies must be among them)."""
    sub.check_mounts(spec, mount_roots)
    pclass = sub.priority_class(spec)
    digest = sub.request_hash(spec)
    now = time.time()
    with store.session() as s:  # checks read only, outside the write lock
        project = sub.project_row(s, spec.project)
        if spec.client_key is not None:
            existing = _by_key(s, spec.project, spec.client_key)
            if existing is not None:
                return _replay(existing, digest), False
        sub.check_fits(store, s, spec)
        sub.check_quota(store, s, spec, pclass, project)
    try:
        with store.writing() as s:  # the job and its first event, written directly
            seq = Store.bump(s)  # first: it orders this submit among all writers
            # after the bump: no parent can finish between this check and the insert unseen
            needs, decision = sub.check_dependencies(s, spec, within)
            values = sub.row_values(spec, pclass, project, actor, now, digest, needs, decision)
            values["seq"] = seq
            sub.check_pending(s, spec.project, max_pending)
            s.execute(insert(JobRow).values(**values))
            s.execute(insert(JobEventRow).values(
                job_id=values["id"], at=now, kind="submitted",
                message=f"submitted to project {spec.project} by {actor} "
                        f"({sub.describe(spec)})"))
            audit.record(s, actor, "job.submit", f"{spec.project}/{values['id']}",
                         address=address)
    except IntegrityError:
        # a concurrent submit with the same client key won the race: return its job
        with store.session() as s:
            existing = _by_key(s, spec.project, spec.client_key or "")
            if existing is None:
                raise
            return _replay(existing, digest), False
    if wake is not None:
        wake()
    return job_out(JobRow(**values)), True


def _by_key(s: Session, project: str, key: str) -> JobRow | None:
    return s.execute(
        select(JobRow).where(JobRow.project == project, JobRow.client_key == key)
    ).scalar_one_or_none()


def _replay(existing: JobRow, digest: str) -> JobOut:
    if existing.request_hash != digest:
        raise Conflict(f"client key {existing.client_key} was already used for job "
                       f"{existing.id} with a different request; use a new key")
    return job_out(existing)


def get_job(store: Store, job_id: str) -> JobOut:
    with store.session() as s:
        return job_out(_load(s, job_id))


def _load(s: Session, job_id: str) -> JobRow:
    row = s.get(JobRow, job_id)
    if row is None:
        raise NotFound(f"job {job_id} does not exist")
    return row


def list_jobs(store: Store, project: str | None = None, state: str | None = None,
              limit: int = 200, within: set[str] | None = None, *, user: str | None = None,
              array: str | None = None, tasks: bool = True) -> list[JobOut]:
    """Newest first; ``within``: only these projects (those the caller may see); ``user``:
    submitted by them; ``array``: only its tasks (by index); ``tasks=False``: no array tasks."""
    if state is not None and state not in {s.value for s in JobState}:
        raise Invalid(f"unknown state {state!r}; states: {', '.join(s.value for s in JobState)}")
    with store.session() as s:
        order = (JobRow.array_index if array is not None else JobRow.submitted_at.desc())
        query = select(JobRow).order_by(order).limit(limit)
        if project is not None:
            query = query.where(JobRow.project == project)
        if within is not None:
            query = query.where(JobRow.project.in_(sorted(within)))
        if state is not None:
            query = query.where(JobRow.state == state)
        if user is not None:
            query = query.where(JobRow.submitted_by == user)
        if array is not None:
            query = query.where(JobRow.array_id == array)
        elif not tasks:
            query = query.where(JobRow.array_id.is_(None))
        return [job_out(r) for r in s.execute(query).scalars()]


def cancel(store: Store, job_id: str, wake: Callable[[], None] | None = None, *,
           actor: str = "system", address: str = "") -> JobOut:
    with store.writing() as s:
        seq = Store.bump(s)  # first, as every writer does: the counter row orders writers
        row = _load(s, job_id)
        if row.state in FINISHED_VALUES:
            raise Conflict(f"job {job_id} already finished ({row.state}); nothing to cancel")
        cancel_row(s, row, seq, time.time(), actor)
        audit.record(s, actor, "job.cancel", f"{row.project}/{job_id}", address=address)
        out = job_out(row)
    if wake is not None:
        wake()
    return out


def cancel_row(s: Session, row: JobRow, seq: int, now: float, actor: str,
               why: str = "") -> bool:
    """Cancel one live job in the caller's write transaction (after its bump): a waiting job at
    once, a started one by stopping its workers. False if there was nothing to do (finished,
    or being cancelled already). ``why``: added to the event (a bulk cancel says which)."""
    if row.state in FINISHED_VALUES or row.stop_reason == StopReason.CANCEL:
        return False
    state = JobState(row.state)
    if state in (JobState.QUEUED, JobState.REQUEUED, JobState.ADMITTED):
        # nothing runs yet: done at once
        move(s, row, JobState.CANCELLED, now=now, seq=seq,
             message=f"cancelled by {actor} before it started{why}")
    elif state == JobState.STOPPING:  # a cancel wins over why it was being stopped
        row.stop_reason = StopReason.CANCEL.value
        row.seq = seq
        add_event(s, row.id, "cancelling", f"cancel requested by {actor}{why}: its workers "
                  "are already being stopped", now)
    else:
        move(s, row, JobState.STOPPING, now=now, seq=seq, stop=StopReason.CANCEL,
             kind="cancelling",
             message=f"cancel requested by {actor}{why}: stopping its workers")
    return True


def events(store: Store, job_id: str) -> list[EventOut]:
    with store.session() as s:
        _load(s, job_id)
        rows = s.execute(select(JobEventRow).where(JobEventRow.job_id == job_id)
                         .order_by(JobEventRow.id)).scalars()
        return [EventOut(at=r.at, kind=r.kind, message=r.message) for r in rows]


def explain(store: Store, job_id: str, config: SchedulerConfig | None = None) -> ExplainOut:
    """Why the job is where it is; a waiting job also gets its start-time estimate
    (:mod:`fairpool.services.estimates`)."""
    with store.session() as s:
        row = _load(s, job_id)
        last_event = s.execute(select(JobEventRow.message).where(JobEventRow.job_id == job_id)
                               .order_by(JobEventRow.id.desc()).limit(1)).scalar_one_or_none()
    state = row.state
    if state in PENDING_VALUES:
        text = row.reason or "waiting for the next scheduling cycle"
    elif state == JobState.ADMITTED.value and row.waits_for:
        text = (f"placed; starts once the jobs it displaces have stopped: "
                f"{', '.join(row.waits_for)}")
    elif state == JobState.STOPPING.value:
        text = f"stopping ({row.stop_reason})"
    elif state in (JobState.ADMITTED.value, JobState.STARTING.value, JobState.RUNNING.value):
        nodes = sorted({w["node"] for w in row.placement or ()})
        text = f"{state} on {', '.join(nodes)}"
    else:
        text = f"finished: {state}" + (f" with exit code {row.exit_code}"
                                       if row.exit_code is not None else "")
        if state == JobState.CANCELLED.value and last_event is not None:
            text += f" ({last_event})"
    expected_at = estimate = None
    if state in PENDING_VALUES and not row.deps_waiting:
        _, found = estimates.estimates(store, config)
        got = found.get(job_id)
        if got is not None:
            expected_at, estimate = got.start, estimates.words(got, time.time())
    return ExplainOut(job_id=job_id, state=state, code=row.reason_code if state in PENDING_VALUES
                      else None, reason=text, expected_start_at=expected_at, estimate=estimate)


def log_path(data_dir: Path, job_id: str, attempt: int, rank: int) -> Path:
    """One flat directory of logs: no directory to create per job on the hot path."""
    return data_dir / "logs" / f"{job_id}.{attempt}.{rank}.log"


def log_file(store: Store, data_dir: Path, job_id: str, rank: int, attempt: int | None
             ) -> tuple[Path, JobOut]:
    with store.session() as s:
        row = _load(s, job_id)
        out = job_out(row)
    if not 0 <= rank < row.workers:
        raise Invalid(f"job {job_id} has ranks 0..{row.workers - 1}; rank {rank} does not exist")
    use = row.attempt if attempt is None else attempt
    if not 0 <= use <= row.attempt:
        raise Invalid(f"job {job_id} has attempts 0..{row.attempt}")
    return log_path(data_dir, job_id, use, rank), out
