"""Deciding (purely) what happens to jobs placed on nodes or devices the inventory no longer
has (a node removed, fewer GPUs after a restart): an admitted job goes back to the queue at
once; the workers of a started job are reported lost, so the attempt is requeued."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fairpool.domain import Node
from fairpool.domain.states import STARTED_VALUES, JobState
from fairpool.store.models import JobRow
from fairpool.store.workers import ended

from .effects import Lose, Requeue

S = JobState


def stale(rows: Iterable[JobRow], nodes: Sequence[Node]) -> tuple[list[Requeue], list[Lose]]:
    devices = {n.name: {d.index for d in n.devices} for n in nodes}

    def gone(w: dict[str, Any]) -> bool:
        return w["node"] not in devices or not set(w["devices"]) <= devices[w["node"]]

    requeue: list[Requeue] = []
    lose: list[Lose] = []
    for r in rows:
        if r.state == S.ADMITTED.value:
            if any(gone(w) for w in r.placement or ()):
                requeue.append(Requeue(r.id, "placed but not started: its node or devices "
                                             "are gone"))
        elif r.state in STARTED_VALUES:
            lose += [Lose(w["worker_id"], f"node {w['node']} or its devices {w['devices']} "
                                          f"are gone")
                     for w in r.placement or () if not ended(w) and gone(w)]
    return requeue, lose
