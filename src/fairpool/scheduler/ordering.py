"""The order in which waiting jobs are tried, in groups of identical jobs.

FAIR (the default): queue by queue, top-down the tree, by queue priority and then by how full the
queue is relative to its fair share on its dominant resource (DRF); inside a queue, by job priority
then submit time. Queues are kept in a lazy heap: placing a job only makes its queues fuller, so a
popped queue whose key grew is pushed back.

Inside a queue, jobs with the same priority and the same shape (request, workers, selector,
constraints) form a *group*, tried in submit order. Within one action, capacity only shrinks and a
queue's allocation only grows, so when the head of a group cannot be placed, none of the others
can: :meth:`JobOrder.fail_group` drops the whole group at once. With 100,000 waiting jobs this
turns the cost of a cycle from one attempt per job into one per group.

FIFO, SJF and LAS order all jobs globally by a key (submit time, or a per-job key from the
snapshot) and exist for the simulator's baselines; their groups hold one job each.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator

from fairpool.scheduler.session import JobView, Session
from fairpool.scheduler.snapshot import QueueOrder

JobKey = tuple[int, float, str]


def job_key(view: JobView) -> JobKey:
    return (-view.job.priority, view.job.submit_time, view.job.id)


class Group:
    __slots__ = ("jobs", "pos")

    def __init__(self, jobs: list[JobView]) -> None:
        self.jobs = jobs
        self.pos = 0

    @property
    def head(self) -> JobView:
        return self.jobs[self.pos]


class JobOrder:
    """Iterate waiting jobs in scheduling order. After each job the consumer may call
    :meth:`placed` (the job was bound) or :meth:`fail_group` (no job like it fits now)."""

    def __init__(self, session: Session, views: list[JobView]) -> None:
        self.session = session
        self._placed = False
        self._failed: list[JobView] | None = None
        self._current: Group | None = None
        self.global_order: list[JobView] | None = None
        if session.config.order != QueueOrder.FAIR:
            keys = session.snapshot.order_keys
            self.global_order = sorted(
                views,
                key=lambda v: (keys.get(v.job.id, v.job.submit_time), v.job.submit_time,
                               v.job.id),
            )
            return
        by_shape: dict[tuple[int, int, Hashable], list[JobView]] = {}
        for v in views:
            by_shape.setdefault((v.leaf, v.job.priority, session.shape(v)), []).append(v)
        self.per_leaf: dict[int, list[tuple[JobKey, int, Group]]] = {}
        for n, ((leaf, _, _), jobs) in enumerate(by_shape.items()):
            if len(jobs) > 1:
                jobs.sort(key=job_key)
            self.per_leaf.setdefault(leaf, []).append((job_key(jobs[0]), n, Group(jobs)))
        for heap in self.per_leaf.values():
            heapq.heapify(heap)

    def placed(self) -> None:
        self._placed = True

    def fail_group(self) -> list[JobView]:
        """Drop the current job's group; returns its jobs from the current one on."""
        group = self._current
        if group is None:
            return []
        self._failed = group.jobs[group.pos:]
        return self._failed

    def _leaf_key(self, leaf: int) -> tuple[object, ...]:
        s = self.session
        groups = self.per_leaf[leaf]
        head = groups[0][2].head
        parts: list[object] = []
        for q in head.path:
            parts.append(-s.q_priority[q])
            parts.append(s.share_ratio(q))
        parts.append(groups[0][0])
        return tuple(parts)

    def __iter__(self) -> Iterator[JobView]:
        if self.global_order is not None:
            for view in self.global_order:
                self._current = None
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
                _, n, group = groups[0]
                self._current = group
                self._failed = None
                yield group.head
                if self._failed is not None:
                    heapq.heappop(groups)
                else:
                    group.pos += 1
                    if group.pos >= len(group.jobs):
                        heapq.heappop(groups)
                    else:
                        heapq.heapreplace(groups, (job_key(group.head), n, group))
                if self._placed:
                    break
            if not groups:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (self._leaf_key(leaf), leaf))
