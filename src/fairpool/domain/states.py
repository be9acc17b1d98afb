"""The job state machine, as one transition table.

States: queued → admitted → starting → running → succeeded | failed | cancelled; a scheduler
eviction moves an active job to preempted, a lost node to lost, and both come back through
requeued. Every change of a job's state must go through :func:`transition`, which raises
:class:`IllegalTransition` for anything the table does not allow.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    ADMITTED = "admitted"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PREEMPTED = "preempted"
    REQUEUED = "requeued"
    CANCELLED = "cancelled"
    LOST = "lost"


S = JobState

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.QUEUED: frozenset({S.ADMITTED, S.CANCELLED}),
    S.REQUEUED: frozenset({S.ADMITTED, S.CANCELLED}),
    S.ADMITTED: frozenset({S.STARTING, S.PREEMPTED, S.CANCELLED, S.LOST, S.FAILED}),
    S.STARTING: frozenset(
        {S.RUNNING, S.SUCCEEDED, S.FAILED, S.PREEMPTED, S.CANCELLED, S.LOST}
    ),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.PREEMPTED, S.CANCELLED, S.LOST}),
    S.PREEMPTED: frozenset({S.REQUEUED, S.CANCELLED}),
    S.LOST: frozenset({S.REQUEUED, S.FAILED, S.CANCELLED}),
    S.FAILED: frozenset({S.REQUEUED}),
    S.SUCCEEDED: frozenset(),
    S.CANCELLED: frozenset(),
}

#: Jobs waiting for the scheduler.
PENDING_STATES = frozenset({S.QUEUED, S.REQUEUED})
#: Jobs that hold resources on nodes.
ACTIVE_STATES = frozenset({S.ADMITTED, S.STARTING, S.RUNNING})
#: Jobs that will never change again (failed may still be retried by a retry policy).
TERMINAL_STATES = frozenset({S.SUCCEEDED, S.CANCELLED})


class IllegalTransition(ValueError):
    def __init__(self, current: JobState, target: JobState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final state)"
        super().__init__(
            f"a job cannot go from {current} to {target}; from {current} it may go to {allowed}"
        )
        self.current = current
        self.target = target


def can_transition(current: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[current]


def transition(current: JobState, target: JobState) -> JobState:
    """Return ``target`` if the table allows ``current → target``, else raise."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
    return target
