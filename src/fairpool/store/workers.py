"""The workers of a job's current attempt as a job row stores them (its ``placement`` JSON): one
:class:`WorkerRecord` per rank, with the :class:`Phase` it is in."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, NotRequired, TypedDict, cast


class Phase(StrEnum):
    """Where one worker of the current attempt is (stored in the job's placement JSON)."""

    PENDING = "pending"  # placed, not handed to the executor yet
    STARTING = "starting"  # handed to the executor
    RUNNING = "running"
    EXITED = "exited"
    LOST = "lost"  # the executor lost it: how it ended is unknown


ENDED = frozenset({Phase.EXITED, Phase.LOST})


class WorkerRecord(TypedDict):
    """One worker of a job's current attempt, as the ``placement`` JSON stores it."""

    rank: int
    worker_id: str
    node: str
    devices: list[int]
    share: int  # milli-GPUs held on each device
    gpu_memory: int  # MiB held on each device
    phase: Phase
    exit_code: int | None
    detail: NotRequired[str | None]  # how it ended, as the executor told
    final: NotRequired[bool]  # no retry could mend how it ended


def records(placement: Iterable[dict[str, Any]] | None) -> list[WorkerRecord]:
    """The worker records of a job row's placement JSON (copies, safe to change)."""
    return [cast(WorkerRecord, dict(w)) for w in placement or ()]


def ended(w: WorkerRecord | dict[str, Any]) -> bool:
    return w["phase"] in ENDED
