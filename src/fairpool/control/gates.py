"""What holds a waiting job back before the scheduler sees it: its dependencies, its array's
cap, and a backoff (``not_before``).

* :func:`admissible`: the jobs of the loop's view the scheduler may consider now. A job whose
  dependencies are not met (``deps_waiting``) is left out; of an array with a cap
  (``max_running``), only as many waiting tasks (lowest index first) as the cap leaves room for
  beside the tasks that hold resources; a job held back until ``not_before`` is left out until
  then. Of any array, at most one more waiting task than the whole pool could hold at once
  (:func:`window`) is shown, lowest index first: tasks of an array are alike (one project,
  priority, request and submit time), so the scheduler would start the same number whichever
  it saw, and the demand it sees still exceeds the pool, which is all fair share needs of it.
  A 10,000-task array costs a cycle what a dozen jobs do, as Slurm keeps a pending array as
  one record and splits tasks off as they start.
* :class:`Dependencies`: reads the parents of jobs that wait for dependencies (when a job has
  finished since the last look) and decides, with :func:`fairpool.domain.dependencies.decide`,
  which are released, which can never be met (cancelled with that reason) and which still wait
  (their reason kept current).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fairpool.domain import GPU_UNIT, Job, Node, Resources
from fairpool.domain.dependencies import Need, Verdict, decide
from fairpool.domain.states import HOLDING_VALUES, PENDING_VALUES
from fairpool.store.db import Store
from fairpool.store.models import JobRow
from fairpool.store.parents import parent_states


@dataclass(frozen=True, slots=True)
class Capacity:
    """The whole pool at once: its resources and its largest GPU's memory (the reference that
    makes a GPU-memory request the fewest milli-GPUs, so that :func:`window` never says less
    than could fit)."""

    total: Resources
    device_memory_mib: int

    @staticmethod
    def of(nodes: Iterable[Node]) -> Capacity:
        gpu = gpu_memory = cpu = memory = largest = 0
        for n in nodes:
            gpu += len(n.devices) * GPU_UNIT
            gpu_memory += sum(d.memory_mib for d in n.devices)
            largest = max([largest, *(d.memory_mib for d in n.devices)])
            cpu += n.cpu
            memory += n.memory
        return Capacity(Resources(gpu, gpu_memory, cpu, memory), largest or 1)


def window(job: Job, capacity: Capacity) -> int | None:
    """One more than the tasks like ``job`` the whole pool could hold at once (so that their
    demand exceeds the pool); None when its request is empty (no bound)."""
    need = job.request.nominal(capacity.device_memory_mib).as_tuple()
    have = capacity.total.as_tuple()
    bounds = [h // (n * job.workers) for n, h in zip(need, have, strict=True) if n > 0]
    return min(bounds) + 1 if bounds else None


@dataclass(frozen=True, slots=True)
class Gate:
    """What the gates read of a live job, taken from its row once when the row changes (the
    loop keeps one per live job: reading a mapped row's attributes on every cycle, for every
    waiting task of a large array, cost more than the rest of the cycle)."""

    state: str
    array_id: str | None = None
    array_index: int = 0
    array_cap: int | None = None
    deps_waiting: bool = False
    not_before: float = 0.0

    @staticmethod
    def of(row: JobRow) -> Gate:
        return Gate(row.state, row.array_id, row.array_index or 0, row.array_cap,
                    bool(row.deps_waiting), row.not_before or 0.0)


def admissible(jobs: Iterable[Job], live: Mapping[str, Gate], now: float,
               capacity: Capacity | None = None) -> tuple[list[Job], bool]:
    """The jobs the scheduler may see, and whether one was left out only for its time (a
    snapshot without it must not be reused once that time comes). ``capacity``: the pool's,
    for the window of each array (None: every waiting task of an uncapped array is shown)."""
    out: list[Job] = []
    timed = False
    capped: dict[str, list[tuple[int, Job]]] = {}
    holding: dict[str, int] = {}
    windowed = capacity is not None
    for job in jobs:
        row = live[job.id]
        array_id = row.array_id
        if array_id is not None and (windowed or row.array_cap is not None):
            if row.state in HOLDING_VALUES:
                holding[array_id] = holding.get(array_id, 0) + 1
            elif not row.deps_waiting and row.not_before <= now:
                capped.setdefault(array_id, []).append((row.array_index, job))
                continue
        if job.pending:
            if row.deps_waiting:
                continue
            if row.not_before > now:
                timed = True
                continue
        out.append(job)
    for array_id, waiting in capped.items():
        first = waiting[0][1]
        cap = live[first.id].array_cap
        room = len(waiting) if cap is None else max(0, cap - holding.get(array_id, 0))
        shown = None if capacity is None else window(first, capacity)
        room = room if shown is None else min(room, shown)
        if room >= len(waiting):
            out.extend(job for _, job in waiting)
        elif room:
            out.extend(job for _, job in heapq.nsmallest(room, waiting, key=lambda t: t[0]))
    return out, timed


@dataclass(frozen=True, slots=True)
class Unmet:
    """A waiting job whose dependencies can never be met: it is cancelled with ``message``."""

    job_id: str
    message: str


@dataclass(slots=True)
class Verdicts:
    released: list[str] = field(default_factory=list)
    unmet: list[Unmet] = field(default_factory=list)
    reasons: list[dict[str, object]] = field(default_factory=list)


class Dependencies:
    """Looks at the parents of waiting dependents when something has finished since the last
    look (``due``), not on every iteration."""

    def __init__(self) -> None:
        self.due = True  # at start: parents may have finished while the server was down

    def check(self, store: Store, live: Iterable[JobRow]) -> Verdicts:
        out = Verdicts()
        if not self.due:
            return out
        self.due = False
        waiting = [r for r in live if r.deps_waiting and r.state in PENDING_VALUES]
        if not waiting:
            return out
        needs = {r.id: [Need.of(d) for d in r.depends or ()] for r in waiting}
        with store.session() as s:
            states = parent_states(s, (n for each in needs.values() for n in each))
        for row in waiting:
            decision = decide(needs[row.id], states)
            if decision.verdict == Verdict.MET:
                out.released.append(row.id)
            elif decision.verdict == Verdict.NEVER:
                out.unmet.append(Unmet(row.id, decision.text))
            elif decision.text != row.reason:
                row.reason = decision.text
                out.reasons.append({"id": row.id, "reason": decision.text,
                                    "reason_code": row.reason_code})
        return out
