"""What jobs wait for, read from the store: the states of the jobs and of the tasks of the
arrays that dependencies name (counts by state), for
:func:`fairpool.domain.dependencies.decide`."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fairpool.domain.dependencies import Need
from fairpool.store.models import JobRow


def parent_states(s: Session, needs: Iterable[Need]) -> dict[str, dict[str, int]]:
    """Each parent's counts of tasks by state (a job: its one state); a parent that does not
    exist is absent. Two queries, however many parents."""
    jobs: set[str] = set()
    arrays: set[str] = set()
    for need in needs:
        (arrays if need.array else jobs).add(need.id)
    out: dict[str, dict[str, int]] = {}
    for chunk in _chunks(sorted(jobs)):
        for job_id, state in s.execute(select(JobRow.id, JobRow.state)
                                       .where(JobRow.id.in_(chunk))):
            out[job_id] = {state: 1}
    for chunk in _chunks(sorted(arrays)):
        for array_id, state, n in s.execute(
                select(JobRow.array_id, JobRow.state, func.count())
                .where(JobRow.array_id.in_(chunk)).group_by(JobRow.array_id, JobRow.state)):
            out.setdefault(str(array_id), {})[state] = int(n)
    return out


def _chunks(ids: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]
