"""Dependencies between jobs, decided purely: whether what a job waits for is met, still
pending, or can never be met, and how to say so.

A job may wait for jobs and for whole arrays. A dependency names its parent and the outcome it
needs (:class:`On`): ``ok`` (the parent succeeded; an array: every task did), ``any`` (the parent
finished, however; an array: every task did) or ``failed`` (the parent failed or was cancelled;
an array: every task finished and at least one did not succeed). The parent's state is given as
counts of tasks by state (one job: one entry). Cycles cannot occur: a dependency must name a job
that already exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

from fairpool.domain.states import FINISHED_VALUES, JobState


class On(StrEnum):
    OK = "ok"
    ANY = "any"
    FAILED = "failed"


class Verdict(Enum):
    MET = "met"
    WAIT = "wait"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Need:
    """One dependency: the parent's id, whether it is an array, and the outcome needed."""

    id: str
    on: On
    array: bool = False

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "array": self.array, "on": self.on.value}

    @classmethod
    def of(cls, data: Mapping[str, object]) -> Need:
        return cls(id=str(data["id"]), on=On(str(data["on"])), array=bool(data.get("array")))


_WANT = {On.OK: "succeed", On.ANY: "finish", On.FAILED: "fail"}


def verdict(need: Need, counts: Mapping[str, int]) -> Verdict:
    """Whether ``need`` is met by a parent whose tasks are in these states (counts by state;
    an empty mapping: the parent is gone, which can never meet it)."""
    total = sum(counts.values())
    if total == 0:
        return Verdict.NEVER
    finished = sum(n for state, n in counts.items() if state in FINISHED_VALUES)
    succeeded = counts.get(JobState.SUCCEEDED.value, 0)
    unsuccessful = finished - succeeded
    if need.on == On.OK:
        if unsuccessful:
            return Verdict.NEVER
        return Verdict.MET if succeeded == total else Verdict.WAIT
    if finished < total:
        return Verdict.WAIT
    if need.on == On.ANY:
        return Verdict.MET
    return Verdict.MET if unsuccessful else Verdict.NEVER


def subject(need: Need) -> str:
    return f"array {need.id}" if need.array else f"job {need.id}"


def waiting_text(need: Need, counts: Mapping[str, int]) -> str:
    """``waiting for job X to succeed``; for an array, with how many tasks have finished."""
    if not need.array:
        return f"waiting for job {need.id} to {_WANT[need.on]}"
    total = sum(counts.values())
    finished = sum(n for state, n in counts.items() if state in FINISHED_VALUES)
    every = {On.OK: "every task of", On.ANY: "every task of",
             On.FAILED: "the tasks of"}[need.on]
    tail = " (and one to fail)" if need.on == On.FAILED else ""
    return (f"waiting for {every} array {need.id} to "
            f"{'finish' if need.on == On.FAILED else _WANT[need.on]}{tail}: "
            f"{finished} of {total} finished")


def never_text(need: Need, counts: Mapping[str, int]) -> str:
    """Why ``need`` can no longer be met: ``job X failed; it had to succeed``."""
    if not counts:
        return f"{subject(need)} no longer exists"
    if not need.array:
        (state,) = [s for s, n in counts.items() if n]
        return f"job {need.id} {state}; it had to {_WANT[need.on]}"
    if need.on == On.OK:
        bad = {s: n for s, n in counts.items()
               if s in FINISHED_VALUES and s != JobState.SUCCEEDED.value and n}
        what = ", ".join(f"{n} {s}" for s, n in sorted(bad.items()))
        return f"array {need.id} has tasks that did not succeed ({what}); all had to succeed"
    return f"every task of array {need.id} succeeded; one had to fail"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a waiting job: ``verdict`` and the text that goes with it (the reason
    it waits, or why it is cancelled)."""

    verdict: Verdict
    text: str


def decide(needs: Iterable[Need], states: Mapping[str, Mapping[str, int]]) -> Decision:
    """All ``needs`` together: never if one can never be met, wait if one is still pending
    (the text names the first), else met. ``states``: each parent's counts by state."""
    waiting: str | None = None
    for need in needs:
        counts = states.get(need.id, {})
        v = verdict(need, counts)
        if v == Verdict.NEVER:
            return Decision(Verdict.NEVER, f"dependency can never be met: "
                                           f"{never_text(need, counts)}")
        if v == Verdict.WAIT and waiting is None:
            waiting = waiting_text(need, counts)
    if waiting is not None:
        return Decision(Verdict.WAIT, waiting)
    return Decision(Verdict.MET, "dependencies met")
