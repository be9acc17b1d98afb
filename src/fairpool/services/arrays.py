"""Job arrays and sweeps: submit all the tasks in one transaction, report an array with its
tasks counted by state, list its tasks, cancel it. Each task is a job of its own (quotas, fair
share, the pending limit, logs and explain treat it as one); ``FAIRPOOL_ARRAY_ID``,
``FAIRPOOL_ARRAY_INDEX`` and its sweep parameters are in its environment. A cap
(``max_running``) is kept by the control loop (:mod:`fairpool.control.gates`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fairpool.domain.states import FINISHED_VALUES, HOLDING_VALUES, PENDING_VALUES, JobState
from fairpool.schemas.arrays import ArrayOut, ArraySubmit
from fairpool.schemas.jobs import JobOut
from fairpool.services import audit
from fairpool.services import submission as sub
from fairpool.services.errors import Conflict, Invalid, NotFound
from fairpool.services.jobs import cancel_row
from fairpool.services.views import job_out
from fairpool.store.db import Store
from fairpool.store.models import ArrayRow, JobEventRow, JobRow

#: the reason code of a task held back by its array's cap
ARRAY_CAP = "array-cap"
#: the reason code of a task the scheduler does not look at yet: the loop shows it an array's
#: waiting tasks lowest index first, as many as the pool could hold (control/gates.py)
ARRAY_ORDER = "array-order"


def submit_array(store: Store, spec: ArraySubmit, wake: Callable[[], None] | None = None, *,
                 actor: str = "system", max_pending: int | None = None, address: str = "",
                 mount_roots: Sequence[Path] | None = None, within: set[str] | None = None
                 ) -> tuple[ArrayOut, bool]:
    """Queue every task of an array in one transaction; returns the array and whether it was
    created (False: an idempotent replay of its client key)."""
    sub.check_mounts(spec, mount_roots)
    pclass = sub.priority_class(spec)
    digest = sub.request_hash(spec)
    indices = spec.index_list()
    params = spec.params or [{} for _ in indices]
    now = time.time()
    with store.session() as s:
        project = sub.project_row(s, spec.project)
        if spec.client_key is not None:
            existing = _by_key(s, spec.project, spec.client_key)
            if existing is not None:
                return _replay(s, existing, digest), False
        sub.check_fits(store, s, spec)
        sub.check_quota(store, s, spec, pclass, project)
    array_id = sub.new_id()
    try:
        with store.writing() as s:
            seq = Store.bump(s)
            needs, decision = sub.check_dependencies(s, spec, within)
            sub.check_pending(s, spec.project, max_pending, adding=len(indices))
            base = sub.row_values(spec, pclass, project, actor, now, digest, needs, decision)
            base.update(client_key=None, seq=seq, array_id=array_id,
                        array_cap=spec.max_running)
            s.execute(insert(ArrayRow).values(
                id=array_id, project=spec.project, name=spec.name, size=len(indices),
                max_running=spec.max_running, indices=spec.indices or f"0-{len(indices) - 1}",
                submitted_at=now, submitted_by=actor, client_key=spec.client_key,
                request_hash=digest))
            rows = list(_tasks(base, array_id, spec, indices, params))
            s.execute(insert(JobRow), rows)
            message = (f"submitted to project {spec.project} by {actor} as task of array "
                       f"{array_id} ({sub.describe(spec)})")
            s.execute(insert(JobEventRow), [
                {"job_id": r["id"], "at": now, "kind": "submitted", "message": message}
                for r in rows])
            audit.record(s, actor, "array.submit", f"{spec.project}/{array_id}",
                         address=address)
    except IntegrityError:
        with store.session() as s:
            existing = _by_key(s, spec.project, spec.client_key or "")
            if existing is None:
                raise
            return _replay(s, existing, digest), False
    if wake is not None:
        wake()
    return get_array(store, array_id), True


def _tasks(base: dict[str, object], array_id: str, spec: ArraySubmit, indices: list[int],
           params: list[dict[str, str]]) -> Iterable[dict[str, object]]:
    env = dict(spec.env)
    cap = spec.max_running
    held = f"array {array_id} runs at most {cap} tasks at once"
    behind = f"waiting for earlier tasks of array {array_id} to start (lowest index first)"
    for k, (index, values) in enumerate(zip(indices, params, strict=True)):
        task = dict(base)
        suffix = f"[{index}]"
        task["id"] = sub.new_id()
        task["name"] = spec.name[:128 - len(suffix)] + suffix if spec.name else ""
        task["array_index"] = index
        # a microsecond apart, in index order: the queue's FIFO then starts them in that order
        task["submitted_at"] = float(base["submitted_at"]) + k * 1e-6  # type: ignore[arg-type]
        task["params"] = dict(values) or None
        task["env"] = {**env, **values, "FAIRPOOL_ARRAY_ID": array_id,
                       "FAIRPOOL_ARRAY_INDEX": str(index)}
        if task["deps_waiting"]:
            pass  # its dependencies' reason
        elif cap is not None and k >= cap:
            task["reason"], task["reason_code"] = held, ARRAY_CAP
        elif k > 0:  # until the scheduler looks at it, and says why if it must wait then
            task["reason"], task["reason_code"] = behind, ARRAY_ORDER
        yield task


def _by_key(s: Session, project: str, key: str) -> ArrayRow | None:
    return s.execute(select(ArrayRow).where(ArrayRow.project == project,
                                            ArrayRow.client_key == key)).scalar_one_or_none()


def _replay(s: Session, existing: ArrayRow, digest: str) -> ArrayOut:
    if existing.request_hash != digest:
        raise Conflict(f"client key {existing.client_key} was already used for array "
                       f"{existing.id} with a different request; use a new key")
    return array_out(existing, counts(s, [existing.id]).get(existing.id, {}))


def counts(s: Session, ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Each array's tasks by state, in one query."""
    out: dict[str, dict[str, int]] = {}
    if not ids:
        return out
    for array_id, state, n in s.execute(
            select(JobRow.array_id, JobRow.state, func.count())
            .where(JobRow.array_id.in_(list(ids))).group_by(JobRow.array_id, JobRow.state)):
        out.setdefault(str(array_id), {})[state] = int(n)
    return out


def summary(by_state: dict[str, int]) -> str:
    """The array as one state: running while a task holds resources, queued while all wait,
    else (all finished) succeeded if every task did, failed if one failed, else cancelled; a
    mix of finished and waiting tasks is running too (it is under way)."""
    if any(by_state.get(s) for s in HOLDING_VALUES):
        return JobState.RUNNING.value
    waiting = sum(by_state.get(s, 0) for s in PENDING_VALUES)
    finished = sum(by_state.get(s, 0) for s in FINISHED_VALUES)
    if waiting:
        return JobState.QUEUED.value if not finished else JobState.RUNNING.value
    if by_state.get(JobState.FAILED.value):
        return JobState.FAILED.value
    if by_state.get(JobState.CANCELLED.value):
        return JobState.CANCELLED.value
    return JobState.SUCCEEDED.value


def array_out(row: ArrayRow, by_state: dict[str, int]) -> ArrayOut:
    return ArrayOut(id=row.id, name=row.name, project=row.project, size=row.size,
                    indices=row.indices, max_running=row.max_running,
                    submitted_at=row.submitted_at, submitted_by=row.submitted_by,
                    counts=dict(sorted(by_state.items())), state=summary(by_state),
                    client_key=row.client_key)


def _load(s: Session, array_id: str) -> ArrayRow:
    row = s.get(ArrayRow, array_id)
    if row is None:
        raise NotFound(f"array {array_id} does not exist")
    return row


def get_array(store: Store, array_id: str) -> ArrayOut:
    with store.session() as s:
        row = _load(s, array_id)
        return array_out(row, counts(s, [array_id]).get(array_id, {}))


def list_arrays(store: Store, project: str | None = None, user: str | None = None,
                limit: int = 200, within: set[str] | None = None) -> list[ArrayOut]:
    """Newest first; ``within``: only these projects."""
    with store.session() as s:
        query = select(ArrayRow).order_by(ArrayRow.submitted_at.desc()).limit(limit)
        if project is not None:
            query = query.where(ArrayRow.project == project)
        if user is not None:
            query = query.where(ArrayRow.submitted_by == user)
        if within is not None:
            query = query.where(ArrayRow.project.in_(sorted(within)))
        rows = list(s.execute(query).scalars())
        by_array = counts(s, [r.id for r in rows])
        return [array_out(r, by_array.get(r.id, {})) for r in rows]


def tasks(store: Store, array_id: str, state: str | None = None, limit: int = 1000
          ) -> list[JobOut]:
    """The array's tasks by index."""
    if state is not None and state not in {s.value for s in JobState}:
        raise Invalid(f"unknown state {state!r}; states: {', '.join(s.value for s in JobState)}")
    with store.session() as s:
        _load(s, array_id)
        query = (select(JobRow).where(JobRow.array_id == array_id)
                 .order_by(JobRow.array_index).limit(limit))
        if state is not None:
            query = query.where(JobRow.state == state)
        return [job_out(r) for r in s.execute(query).scalars()]


def cancel_array(store: Store, array_id: str, wake: Callable[[], None] | None = None, *,
                 actor: str = "system", address: str = "") -> ArrayOut:
    """Cancel every task that has not finished (an array that has finished: 409)."""
    with store.writing() as s:
        seq = Store.bump(s)
        row = _load(s, array_id)
        live = list(s.execute(select(JobRow).where(
            JobRow.array_id == array_id, JobRow.state.not_in(FINISHED_VALUES))).scalars())
        if not live:
            raise Conflict(f"every task of array {array_id} has finished; nothing to cancel")
        now = time.time()
        for task in live:
            cancel_row(s, task, seq, now, actor, f" (array {array_id})")
        audit.record(s, actor, "array.cancel", f"{row.project}/{array_id}", address=address)
    if wake is not None:
        wake()
    return get_array(store, array_id)
