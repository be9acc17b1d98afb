"""The job state machine, as one transition table, and the sets of states everything else uses.

States: queued → admitted → starting → running → succeeded | failed | cancelled. A job asked to
stop while its workers run is *stopping* until they have all ended, with a :class:`StopReason`
that says what it becomes then (:meth:`StopReason.outcome`); an attempt that ends and goes back
to the queue (preempted, lost, or failed with retries left) is *requeued*. Every change of a
job's state is checked by :func:`transition` against :data:`TRANSITIONS`, which raises
:class:`IllegalTransition` for anything the table does not allow; the server changes states
through ``fairpool.control.lifecycle.move`` only, pure code through
``fairpool.domain.job.moved``.

The sets below (pending, holding, started, live, finished) are the only definitions of those
words in the code base.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    ADMITTED = "admitted"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REQUEUED = "requeued"
    CANCELLED = "cancelled"


S = JobState

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.QUEUED: frozenset({S.ADMITTED, S.CANCELLED}),
    S.REQUEUED: frozenset({S.ADMITTED, S.CANCELLED}),
    # placed, nothing started yet: evicted or lost → straight back to the queue
    S.ADMITTED: frozenset({S.STARTING, S.REQUEUED, S.CANCELLED}),
    # an attempt's workers may all end at once (succeeded, failed, retried, lost) or some may
    # have to be stopped first (stopping)
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.SUCCEEDED, S.FAILED, S.REQUEUED}),
    S.RUNNING: frozenset({S.STOPPING, S.SUCCEEDED, S.FAILED, S.REQUEUED}),
    S.STOPPING: frozenset({S.CANCELLED, S.FAILED, S.REQUEUED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}

#: Jobs waiting for the scheduler.
PENDING_STATES = frozenset({S.QUEUED, S.REQUEUED})
#: Jobs that hold resources on nodes (placed; a stopping job holds them until it has stopped).
HOLDING_STATES = frozenset({S.ADMITTED, S.STARTING, S.RUNNING, S.STOPPING})
#: Jobs whose workers were handed to the executor (they may be running).
STARTED_STATES = frozenset({S.STARTING, S.RUNNING, S.STOPPING})
#: Jobs the control loop keeps in view: pending or holding.
LIVE_STATES = PENDING_STATES | HOLDING_STATES
#: Jobs that will never change again.
FINISHED_STATES = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED})

#: The same sets as the strings stored in the database.
PENDING_VALUES = tuple(sorted(s.value for s in PENDING_STATES))
HOLDING_VALUES = tuple(sorted(s.value for s in HOLDING_STATES))
STARTED_VALUES = tuple(sorted(s.value for s in STARTED_STATES))
LIVE_VALUES = tuple(sorted(s.value for s in LIVE_STATES))
FINISHED_VALUES = tuple(sorted(s.value for s in FINISHED_STATES))


class StopReason(StrEnum):
    """Why a job is stopping; it knows what the job becomes once its workers have ended."""

    PREEMPT = "preempt"  # the scheduler (or a drain) moves it away: requeued
    IDLE_PREEMPT = "idle-preempt"  # its GPUs were idle while others waited: requeued, held back
    LOST = "lost"  # a worker was lost: the attempt is requeued
    CANCEL = "cancel"  # a person cancelled it
    IDLE_STOP = "idle-stop"  # the project's idle policy stops it: cancelled
    TIMEOUT = "timeout"  # ran past its max runtime: failed
    FAILED = "failed"  # a worker failed: failed, or requeued if it has retries left
    GANG_FAILED = "gang-failed"  # one rank of a gang failed: the others are stopped

    def outcome(self) -> JobState:
        """What the job becomes once every worker has ended (a failure with retries left is
        requeued instead: see :attr:`retryable`)."""
        return _OUTCOMES[self]

    @property
    def retryable(self) -> bool:
        """A failure of the job's own that its retry policy may turn into a requeue."""
        return self in (StopReason.FAILED, StopReason.GANG_FAILED)

    @property
    def told(self) -> str:
        """What a stopping worker is told (``$FAIRPOOL_STOP_FILE``): a job that will be
        requeued should checkpoint; the others end."""
        return _TOLD[self]


_OUTCOMES = {
    StopReason.PREEMPT: S.REQUEUED, StopReason.IDLE_PREEMPT: S.REQUEUED,
    StopReason.LOST: S.REQUEUED, StopReason.CANCEL: S.CANCELLED,
    StopReason.IDLE_STOP: S.CANCELLED, StopReason.TIMEOUT: S.FAILED,
    StopReason.FAILED: S.FAILED, StopReason.GANG_FAILED: S.FAILED,
}
_TOLD = {
    StopReason.PREEMPT: "preempted", StopReason.IDLE_PREEMPT: "preempted",
    StopReason.LOST: "failed", StopReason.CANCEL: "cancelled",
    StopReason.IDLE_STOP: "cancelled", StopReason.TIMEOUT: "timeout",
    StopReason.FAILED: "failed", StopReason.GANG_FAILED: "failed",
}


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
