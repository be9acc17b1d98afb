"""Finding jobs the way people name them, and acting on many at once: resolve a reference (a
full id, a unique id prefix, ``ARRAY:INDEX``, a job's or an array's name) among the projects
the caller may see, and cancel every job a list of ids and filters selects."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from fairpool.domain.states import FINISHED_VALUES, LIVE_VALUES, JobState
from fairpool.domain.words import plural
from fairpool.schemas.arrays import BulkCancel, BulkCancelOut, RefOut
from fairpool.services import audit
from fairpool.services.errors import Conflict, Invalid, NotFound
from fairpool.services.jobs import cancel_row
from fairpool.store.db import Store
from fairpool.store.models import ArrayRow, JobRow

HEX = re.compile(r"^[0-9a-f]+$")
MIN_PREFIX = 3
SHOWN = 10  # matches listed in an ambiguity


def resolve(store: Store, ref: str, within: set[str] | None) -> RefOut:
    """What ``ref`` names; NotFound if nothing the caller may see, Conflict (listing the
    matches) if several."""
    ref = ref.strip()
    if not ref:
        raise Invalid("give a job id, an id prefix, ARRAY:INDEX or a name")
    with store.session() as s:
        array_part, sep, index = ref.rpartition(":")
        if sep:
            return _task(s, array_part, index, within)
        return _one(ref, _matches(s, ref, within))


Q = TypeVar("Q")


def _visible(query: Q, column: InstrumentedAttribute[str], within: set[str] | None) -> Q:
    """``query`` limited to the projects ``within`` (None: all)."""
    if within is None:
        return query
    limited: Any = query
    return cast(Q, limited.where(column.in_(sorted(within))))


def _matches(s: Session, ref: str, within: set[str] | None, arrays_only: bool = False
             ) -> list[RefOut]:
    found: list[RefOut] = []
    by_id = HEX.fullmatch(ref) is not None and len(ref) >= MIN_PREFIX
    if by_id:
        exact = len(ref) == 12
        job_q = select(JobRow.id, JobRow.project, JobRow.name, JobRow.state)
        job_q = job_q.where(JobRow.id == ref) if exact else job_q.where(
            JobRow.id.like(ref + "%"))
        arr_q = select(ArrayRow.id, ArrayRow.project, ArrayRow.name)
        arr_q = arr_q.where(ArrayRow.id == ref) if exact else arr_q.where(
            ArrayRow.id.like(ref + "%"))
        if not arrays_only:
            found += [RefOut(kind="job", id=i, project=p, name=n) for i, p, n, _ in s.execute(
                _visible(job_q, JobRow.project, within).limit(SHOWN + 1))]
        found += [RefOut(kind="array", id=i, project=p, name=n) for i, p, n in s.execute(
            _visible(arr_q, ArrayRow.project, within).limit(SHOWN + 1))]
    if found:
        return found
    # a name: of arrays, and of jobs (an array's tasks are named NAME[INDEX])
    found += [RefOut(kind="array", id=i, project=p, name=n) for i, p, n in s.execute(
        _visible(select(ArrayRow.id, ArrayRow.project, ArrayRow.name)
                 .where(ArrayRow.name == ref), ArrayRow.project, within).limit(SHOWN + 1))]
    if not arrays_only:
        found += [RefOut(kind="job", id=i, project=p, name=n) for i, p, n in s.execute(
            _visible(select(JobRow.id, JobRow.project, JobRow.name)
                     .where(JobRow.name == ref),
                     JobRow.project, within).limit(SHOWN + 1))]
    return found


def _one(ref: str, found: list[RefOut]) -> RefOut:
    if not found:
        raise NotFound(f"no job or array you can see is {ref!r} (an id, an id prefix of at "
                       f"least {MIN_PREFIX} characters, ARRAY:INDEX or a name)")
    if len(found) == 1:
        return found[0]
    listed = "; ".join(f"{m.kind} {m.id}" + (f" {m.name!r}" if m.name else "") +
                       f" in {m.project}" for m in found[:SHOWN])
    more = " and more" if len(found) > SHOWN else ""
    raise Conflict(f"{ref!r} is ambiguous: it matches {listed}{more}; give more of the id")


def _task(s: Session, array_ref: str, index: str, within: set[str] | None) -> RefOut:
    if not index.isdigit():
        raise Invalid(f"{array_ref}:{index}: the task index must be a number")
    array = _one(array_ref, _matches(s, array_ref, within, arrays_only=True))
    row = s.execute(select(JobRow.id, JobRow.project, JobRow.name).where(
        JobRow.array_id == array.id, JobRow.array_index == int(index))).first()
    if row is None:
        raise NotFound(f"array {array.id} has no task {int(index)}")
    return RefOut(kind="job", id=row[0], project=row[1], name=row[2])


def cancel_many(store: Store, spec: BulkCancel, cancellable: set[str] | None,
                wake: Callable[[], None] | None = None, *, actor: str = "system",
                address: str = "") -> BulkCancelOut:
    """Cancel (or, dry run, list) every live job among ``spec.ids`` and every live job that
    matches all of its filters, in projects of ``cancellable`` (None: every project). Listed
    ids in other projects, or that do not exist, are refused, not cancelled."""
    if spec.state is not None and spec.state not in LIVE_VALUES:
        states = ", ".join(LIVE_VALUES)
        hint = " (finished jobs cannot be cancelled)" if spec.state in {
            s.value for s in JobState} else ""
        raise Invalid(f"state {spec.state!r} cannot be cancelled{hint}; give one of {states}")
    with store.writing() as s:
        seq = 0 if spec.dry_run else Store.bump(s)
        rows: dict[str, JobRow] = {}
        refused: list[str] = []
        finished = 0
        if spec.ids:
            listed = {r.id: r for i in range(0, len(spec.ids), 500) for r in s.execute(
                select(JobRow).where(JobRow.id.in_(spec.ids[i:i + 500]))).scalars()}
            for job_id in dict.fromkeys(spec.ids):
                row = listed.get(job_id)
                if row is None or (cancellable is not None and row.project not in cancellable):
                    refused.append(job_id)
                elif row.state in FINISHED_VALUES:
                    finished += 1
                else:
                    rows[job_id] = row
        if spec.project is not None or spec.array is not None or spec.user is not None:
            query = select(JobRow).where(JobRow.state.in_(
                [spec.state] if spec.state is not None else LIVE_VALUES))
            if spec.project is not None:
                query = query.where(JobRow.project == spec.project)
            if spec.array is not None:
                query = query.where(JobRow.array_id == spec.array)
            if spec.user is not None:
                query = query.where(JobRow.submitted_by == spec.user)
            if cancellable is not None:
                query = query.where(JobRow.project.in_(sorted(cancellable)))
            for row in s.execute(query).scalars():
                rows.setdefault(row.id, row)
        elif spec.state is not None:
            rows = {k: r for k, r in rows.items() if r.state == spec.state}
        matched = sorted(rows)
        cancelled: list[str] = []
        if spec.dry_run:
            cancelled = [k for k in matched if rows[k].stop_reason != "cancel"]
        else:
            now = time.time()
            for job_id in matched:
                if cancel_row(s, rows[job_id], seq, now, actor, " (bulk cancel)"):
                    cancelled.append(job_id)
            if cancelled:
                audit.record(s, actor, "job.cancel-many", plural(len(cancelled), "job"),
                             address=address)
    if cancelled and not spec.dry_run and wake is not None:
        wake()
    return BulkCancelOut(matched=matched, cancelled=cancelled, finished=finished,
                         refused=refused, dry_run=spec.dry_run)
