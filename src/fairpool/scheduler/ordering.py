"""The order in which pending jobs are tried.

FAIR (the default): queue by queue, top-down the tree, by queue priority and then by how full the
queue is relative to its fair share on its dominant resource (DRF); inside a queue, by job priority
then submit time. Queues are kept in a lazy heap: placing a job only makes its queues fuller, so a
popped queue whose key grew is pushed back. FIFO, SJF and LAS order all jobs globally by a key
(submit time, or a per-job key from the snapshot) and exist for the simulator's baselines.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from fairpool.scheduler.session import JobView, Session
from fairpool.scheduler.snapshot import QueueOrder


def job_key(view: JobView) -> tuple[int, float, str]:
    return (-view.job.priority, view.job.submit_time, view.job.id)


class JobOrder:
    """Iterate pending jobs in scheduling order; call :meth:`placed` after a job was bound."""

    def __init__(self, session: Session, views: list[JobView]) -> None:
        self.session = session
        self._placed = False
        self.global_order: list[JobView] | None = None
        order = session.config.order
        if order != QueueOrder.FAIR:
            keys = session.snapshot.order_keys
            self.global_order = sorted(
                views,
                key=lambda v: (keys.get(v.job.id, v.job.submit_time), v.job.submit_time,
                               v.job.id),
            )
            return
        per_leaf: dict[int, list[JobView]] = {}
        for v in views:
            per_leaf.setdefault(v.leaf, []).append(v)
        for jobs in per_leaf.values():
            jobs.sort(key=job_key)
        self.per_leaf = per_leaf

    def placed(self) -> None:
        self._placed = True

    def _queue_key(self, leaf: int, head: JobView) -> tuple[object, ...]:
        s = self.session
        parts: list[object] = []
        for q in head.path:
            parts.append(-s.q_priority[q])
            parts.append(s.share_ratio(q))
        parts.append(job_key(head))
        return tuple(parts)

    def __iter__(self) -> Iterator[JobView]:
        if self.global_order is not None:
            yield from self.global_order
            return
        pos = dict.fromkeys(self.per_leaf, 0)
        heap = [(self._queue_key(leaf, jobs[0]), leaf) for leaf, jobs in self.per_leaf.items()]
        heapq.heapify(heap)
        while heap:
            key, leaf = heap[0]
            jobs = self.per_leaf[leaf]
            fresh = self._queue_key(leaf, jobs[pos[leaf]])
            if fresh != key:
                heapq.heapreplace(heap, (fresh, leaf))
                continue
            self._placed = False
            i = pos[leaf]
            while i < len(jobs):
                view = jobs[i]
                i += 1
                yield view
                if self._placed:
                    break
            pos[leaf] = i
            if i >= len(jobs):
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (self._queue_key(leaf, jobs[i]), leaf))
