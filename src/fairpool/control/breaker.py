"""A circuit breaker per node: a node where workers of several jobs keep failing the way broken
machines make them fail is cordoned for a cooldown, so the scheduler stops sending jobs to it,
and it is uncordoned when the cooldown ends (a cordon a person set is never lifted by it).

A node fault is told apart from a job's own failure by the kind the executor reports
(:class:`fairpool.executors.base.Failure`), never guessed from an exit code here:

* the machine's: a lost worker (its end unknown) and a start the executor could not make for
  want of the machine's resources; these count whoever's jobs they hit;
* the job's own: its command could not run (exit 126/127, not found, a bad working directory)
  and a signal the executor did not send (the job killed itself, or its own memory limit did);
  of these one counts per user and per project (failures of jobs of distinct users in distinct
  projects): one researcher in however many projects, or one project's members together,
  cannot cordon a node, and one tenant's flood does not hide the failures of the others;
* never: ordinary non-zero exit codes, the executor's own stops, and ends no retry could mend.

``failures`` distinct jobs that count within ``window_s`` trip it; one job's repeated failures
count once, and the last node that can take work is never cordoned. The reason, which every
viewer of the nodes sees, gives counts and kinds, never the failing jobs' ids; each failing job
gets an event saying its node was cordoned."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairpool.domain.words import plural
from fairpool.executors.base import JOB_FAULTS, NODE_FAULTS, Failure
from fairpool.store.lifecycle import add_event
from fairpool.store.models import JobRow, NodeRow

from .effects import Uncordon

#: how each kind that counts is told in a cordon reason
_TOLD = {Failure.LOST: "lost", Failure.START: "could not be started",
         Failure.COMMAND: "could not run their command",
         Failure.SIGNAL: "killed by a signal the executor did not send"}


@dataclass(frozen=True, slots=True)
class Seen:
    """One failure of a job's worker on a node."""

    at: float
    job: str
    user: str
    project: str
    failure: Failure


def evidence(recent: list[Seen]) -> list[Seen]:
    """The failures among ``recent`` (one node's, within the window, one per job and kind)
    that point at the node: the machine's kinds all; of the job's kinds, one per user and one
    per project (as many as the fewer of their distinct users and projects), so that one
    tenant's flood neither trips the breaker nor drowns out the failures of the others."""
    machine = [f for f in recent if f.failure in NODE_FAULTS]
    users: set[str] = set()
    projects: set[str] = set()
    own = []
    for f in sorted((f for f in recent if f.failure in JOB_FAULTS), key=lambda f: f.at):
        if f.user not in users and f.project not in projects:
            users.add(f.user)
            projects.add(f.project)
            own.append(f)
    return machine + own


def reason(counted: list[Seen], window_s: float, until: float) -> str:
    """A cordon reason fit for every viewer: counts and kinds, no job ids or names."""
    jobs = len({f.job for f in counted})
    kinds = Counter(f.failure for f in counted)
    told = ", ".join(f"{kinds[k]} {_TOLD[k]}" for k in _TOLD if kinds[k])
    own = [f for f in counted if f.failure in JOB_FAULTS]
    whose = (f" (jobs of {plural(len({f.user for f in own}), 'user')} in "
             f"{plural(len({f.project for f in own}), 'project')})" if own else "")
    return (f"workers of {plural(jobs, 'job')} failed here within {window_s:g} s: {told}{whose}; "
            f"cordoned until {time.strftime('%H:%M:%S', time.localtime(until))}")


class NodeBreaker:
    def __init__(self, failures: int = 3, window_s: float = 60.0, cooldown_s: float = 300.0
                 ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._seen: dict[str, list[Seen]] = {}  # node → failures within the window
        self._check_at = 0.0

    def saw(self, node: str, job: str, user: str, project: str, failure: Failure | None,
            now: float) -> list[Seen] | None:
        """Decide (purely, on what it has seen): a worker of ``job`` failed on ``node`` the way
        ``failure`` says; returns the failures that count when they trip the breaker (kinds
        that never point at a node are ignored)."""
        if failure not in NODE_FAULTS and failure not in JOB_FAULTS:
            return None
        machine = failure in NODE_FAULTS
        recent = [f for f in self._seen.get(node, []) if now - f.at <= self.window_s and not (
            f.job == job and (f.failure in NODE_FAULTS) == machine)]  # a job counts once
        recent.append(Seen(now, job, user, project, failure))
        self._seen[node] = recent
        counted = evidence(recent)
        return counted if len({f.job for f in counted}) >= self.failures else None

    def failed(self, s: Session, node: str, job: JobRow, failure: Failure | None, now: float
               ) -> None:
        """Hear of a failure (in the caller's transaction) and cordon the node when it trips,
        unless it is already cordoned or the last node that can take work."""
        counted = self.saw(node, job.id, job.submitted_by or "", job.project, failure, now)
        if counted is None:
            return
        row = s.get(NodeRow, node)
        if row is None or row.cordoned:
            return
        others = s.execute(select(NodeRow.name).where(
            NodeRow.name != node, NodeRow.ready.is_(True), NodeRow.cordoned.is_(False))).first()
        if others is None:
            return  # cordoning the only node that can take work would stop the whole pool
        until = now + self.cooldown_s
        row.cordoned, row.cordon_until = True, until
        row.cordon_reason = reason(counted, self.window_s, until)
        for job_id in sorted({f.job for f in counted}):  # each is told of its own node only
            if job_id == job.id or s.get(JobRow, job_id) is not None:
                add_event(s, job_id, "node-cordoned", f"node {node}, where a worker of this "
                          f"job failed, was cordoned: {row.cordon_reason}", now)
        self._seen[node] = []

    def due(self, cordons: Mapping[str, float | None], now: float) -> list[Uncordon]:
        """Decide (purely): nodes whose timed cordon is over, from the cordons' ends
        (``None``: a cordon without an end, which only a person lifts); looked at every few
        seconds."""
        if now < self._check_at:
            return []
        self._check_at = now + 5.0
        return [Uncordon(n) for n, until in sorted(cordons.items())
                if until is not None and until <= now]


def uncordon(s: Session, due: list[Uncordon], now: float) -> bool:
    """Lift the cordons that are due (in the caller's transaction), unless one was changed
    since; returns whether any was."""
    lifted = False
    for u in due:
        row = s.get(NodeRow, u.node)
        if row is not None and row.cordon_until is not None and row.cordon_until <= now:
            row.cordoned, row.cordon_until, row.cordon_reason = False, None, None
            lifted = True
    return lifted
