"""The idle-GPU policy (Run:ai's idle GPU timeout), decided purely from a job's utilisation.

A job whose GPUs stay below its project's threshold for ``after_s`` is flagged (shown in
``fairpool jobs`` and on the dashboard). What happens next is the project's choice:
``notify`` only flags; ``preempt`` requeues a flagged job when other jobs wait for GPUs;
``stop`` ends it once it has been idle for ``stop_after_s``. A job with no reading (NVML absent,
nothing reported) is never judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IdleAction(StrEnum):
    NONE = "none"
    NOTIFY = "notify"
    PREEMPT = "preempt"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class IdlePolicy:
    action: IdleAction = IdleAction.NONE
    threshold: float = 0.05
    after_s: float = 1800.0
    stop_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class IdleState:
    since: float | None  # below the threshold since then
    flagged: bool


@dataclass(frozen=True, slots=True)
class IdleDecision:
    state: IdleState
    event: str | None = None  # a change worth telling the job's owners
    act: str | None = None  # "preempt" | "stop"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def decide(policy: IdlePolicy, current: IdleState, util: float | None, now: float,
           others_wait: bool) -> IdleDecision:
    if policy.action == IdleAction.NONE or util is None:
        return IdleDecision(current)
    if util >= policy.threshold:
        if current.flagged:
            return IdleDecision(IdleState(None, False),
                                f"busy again: GPU utilisation {util:.0%}")
        return IdleDecision(IdleState(None, False)) if current.since is not None else (
            IdleDecision(current))
    since = current.since if current.since is not None else now
    idle_for = now - since
    flagged = current.flagged or idle_for >= policy.after_s
    state = IdleState(since, flagged)
    event = None
    if flagged and not current.flagged:
        event = (f"GPUs idle: utilisation below {policy.threshold:.0%} for "
                 f"{_minutes(idle_for)} (project policy: {policy.action})")
    if policy.action == IdleAction.PREEMPT and flagged and others_wait:
        return IdleDecision(state, event, "preempt")
    if (policy.action == IdleAction.STOP and policy.stop_after_s is not None
            and idle_for >= policy.stop_after_s):
        return IdleDecision(state, event, "stop")
    return IdleDecision(state, event)
