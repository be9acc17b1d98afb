"""Counters the control loop keeps for the metrics endpoint, in memory shared with the API
process (created before the fork): a histogram of scheduling cycle durations and the decisions
cycles made."""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from fairpool.scheduler.codes import Action

#: upper bounds (seconds) of the cycle-duration histogram buckets; the last is +Inf
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: the scheduler's actions, and the loop's own idle evictions
DECISIONS = (*(a.value for a in Action), "idle")


@dataclass(frozen=True)
class CycleStats:
    buckets: list[float]  # cumulative counts, one per bound and one for +Inf
    total: float
    count: float
    binds: dict[str, float]  # jobs placed, by action
    evictions: dict[str, float]  # jobs evicted, by action


class LoopStats:
    def __init__(self, ctx: Any = None) -> None:
        mp = ctx or multiprocessing.get_context("fork")
        n = len(CYCLE_BUCKETS) + 1
        # [bucket counts..., sum, count, binds by action..., evictions by action...]
        self._values: SynchronizedArray[float] = mp.Array("d", n + 2 + 2 * len(DECISIONS))
        self._n = n

    def cycle(self, seconds: float, binds: dict[str, int], evictions: dict[str, int]) -> None:
        with self._values.get_lock():
            v = self._values
            index = next((i for i, b in enumerate(CYCLE_BUCKETS) if seconds <= b), self._n - 1)
            v[index] += 1
            v[self._n] += seconds
            v[self._n + 1] += 1
            self._add(binds, self._n + 2)
            self._add(evictions, self._n + 2 + len(DECISIONS))

    def evicted(self, action: str, count: int = 1) -> None:
        with self._values.get_lock():
            self._add({action: count}, self._n + 2 + len(DECISIONS))

    def _add(self, counts: dict[str, int], base: int) -> None:
        for action, count in counts.items():
            if action in DECISIONS:
                self._values[base + DECISIONS.index(action)] += count

    def read(self) -> CycleStats:
        with self._values.get_lock():
            v = [float(self._values[i]) for i in range(len(self._values))]
        cumulative, running = [], 0.0
        for count in v[:self._n]:
            running += count
            cumulative.append(running)
        base = self._n + 2
        return CycleStats(
            buckets=cumulative, total=v[self._n], count=v[self._n + 1],
            binds={a: v[base + i] for i, a in enumerate(DECISIONS)},
            evictions={a: v[base + len(DECISIONS) + i] for i, a in enumerate(DECISIONS)})
