"""The order in which waiting jobs are tried, in groups of identical jobs.

FAIR (the default): queue by queue, top-down the tree: first the queues below their fair share,
then by queue priority, then by how full the queue is relative to its fair share on its dominant
resource (DRF); inside a queue, by its order (job priority then submit time by default). A queue
at or above its fair share never takes capacity ahead of one below it: its priority already gave
it its larger fair share, and a GPU it took past that would be reclaimed in the next cycle.
Queues are kept in a lazy heap: placing a job only makes its queues fuller, so a popped queue
whose key grew is pushed back.

Inside a queue, jobs with the same priority and the same shape (request, workers, selector,
constraints) form a *group*, tried in submit order. Within one action, capacity only shrinks and a
queue's allocation only grows, so when the head of a group cannot be placed, none of the others
can: :meth:`JobOrder.fail_group` drops the whole group at once. With 100,000 waiting jobs this
turns the cost of a cycle from one attempt per job into one per group. The groups are built once
per cycle (the session keeps them; a job evicted during the cycle joins its group).

FIFO, SJF and LAS order all jobs globally by a key (submit time, or a per-job key from the
snapshot) and exist for the simulator's baselines; their groups hold one job each.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from fairpool.scheduler.groups import Group, JobKey, job_key
from fairpool.scheduler.session import EVICTED, PENDING, JobView, Session
from fairpool.scheduler.snapshot import QueueOrder


def _waits(view: JobView) -> bool:
    return view.status == PENDING or view.status == EVICTED


class JobOrder:
    """Iterate waiting jobs in scheduling order. After each job the consumer may call
    :meth:`placed` (the job was bound) or :meth:`fail_group` (no job like it fits now).

    ``include`` filters whole groups (e.g. preempt only looks at groups that outrank someone)."""

    def __init__(self, session: Session, include: Callable[[Group], bool] | None = None) -> None:
        self.session = session
        self._placed = False
        self._failed = False
        self._current: tuple[Group, int] | None = None
        self.global_order: list[JobView] | None = None
        if session.config.order != QueueOrder.FAIR:
            keys = session.snapshot.order_keys
            self.global_order = sorted(
                session.waiting(),
                key=lambda v: (keys.get(v.job.id, v.job.submit_time), v.job.submit_time,
                               v.job.id),
            )
            return
        self.per_leaf: dict[int, list[tuple[JobKey, int, int]]] = {}
        self.groups: list[Group] = []
        self.pos: list[int] = []
        for g in (g for groups in session.leaf_groups.values() for g in groups):
            if include is not None and not include(g):
                continue
            i = self._skip(g, 0)
            if i >= len(g.jobs):
                continue
            n = len(self.groups)
            self.groups.append(g)
            self.pos.append(i)
            self.per_leaf.setdefault(g.leaf, []).append((job_key(g.jobs[i]), n, g.leaf))
        for heap in self.per_leaf.values():
            heapq.heapify(heap)

    @staticmethod
    def _skip(group: Group, i: int) -> int:
        jobs = group.jobs
        while i < len(jobs) and not _waits(jobs[i]):
            i += 1
        return i

    def placed(self) -> None:
        self._placed = True

    def fail_group(self) -> Group | None:
        """Drop the current job's group (none in the global orders: there a job is alone)."""
        if self._current is None:
            return None
        self._failed = True
        return self._current[0]

    def _leaf_key(self, leaf: int) -> tuple[object, ...]:
        s = self.session
        heap = self.per_leaf[leaf]
        head_key, n, _ = heap[0]
        parts: list[object] = []
        for q in self.groups[n].jobs[0].path:
            ratio = s.share_ratio(q)
            # below its fair share first, whatever its priority (a share of 0 is never below)
            parts.append(ratio >= 1.0 or not any(s.q_fs[q]))
            parts.append(-s.q_priority[q])
            parts.append(ratio)
        parts.append(head_key)
        return tuple(parts)

    def __iter__(self) -> Iterator[JobView]:
        if self.global_order is not None:
            for view in self.global_order:
                self._current = None
                if _waits(view):
                    yield view
            return
        per_leaf = self.per_leaf
        heap = [(self._leaf_key(leaf), leaf) for leaf in per_leaf]
        heapq.heapify(heap)
        while heap:
            key, leaf = heap[0]
            fresh = self._leaf_key(leaf)
            if fresh != key:
                heapq.heapreplace(heap, (fresh, leaf))
                continue
            groups = per_leaf[leaf]
            self._placed = False
            while groups:
                _, n, _ = groups[0]
                group = self.groups[n]
                i = self._skip(group, self.pos[n])
                if i >= len(group.jobs):
                    heapq.heappop(groups)
                    continue
                self._current = (group, i)
                self._failed = False
                yield group.jobs[i]
                if self._failed:
                    heapq.heappop(groups)
                else:
                    i = self._skip(group, i + 1)
                    self.pos[n] = i
                    if i >= len(group.jobs):
                        heapq.heappop(groups)
                    else:
                        heapq.heapreplace(groups, (job_key(group.jobs[i]), n, leaf))
                if self._placed:
                    break
            if not groups:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (self._leaf_key(leaf), leaf))
