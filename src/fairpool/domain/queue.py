"""The queue tree: departments → projects (a project is a leaf queue).

Each queue has, per resource, a ``quota`` (deserved, guaranteed), a ``limit`` (hard cap,
unlimited by default), an ``over_quota_weight`` (its share of idle surplus) and a ``priority``
(surplus goes to higher priorities first). Jobs are submitted to leaf queues only. The tree may
be deeper than two levels; every algorithm here walks it generically.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from fairpool.domain.resources import Resources

ROOT = ""  # the implicit root queue's name


class InQueueOrder(StrEnum):
    """The order of a project's waiting jobs (see :mod:`fairpool.scheduler.service_levels`)."""

    FIFO = "fifo"  # submit order; priority does not reorder waiting jobs
    PRIORITY = "priority"  # higher priority first, then submit order
    ATTAINED = "attained"  # priority, then least GPU-time received (levels), then submit order


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    parent: str | None = None  # None: child of the implicit root (a department)
    quota: Resources = Resources.ZERO
    limit: Resources = Resources.INFINITE
    over_quota_weight: int = 1
    priority: int = 0
    job_order: InQueueOrder | None = None  # None: the pool's default

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a queue needs a non-empty name")
        if self.quota.any_negative():
            raise ValueError(f"queue {self.name}: quota must not be negative")
        if self.limit.any_negative():
            raise ValueError(f"queue {self.name}: limit must not be negative")
        if self.over_quota_weight < 0:
            raise ValueError(f"queue {self.name}: over-quota weight must be >= 0")
        if not self.quota <= self.limit:
            raise ValueError(
                f"queue {self.name}: quota ({self.quota.describe()}) exceeds its limit "
                f"({self.limit.describe()}); raise the limit or lower the quota"
            )


@dataclass(slots=True)
class QueueTree:
    """A validated tree of queues with parent/child lookups and root-to-leaf paths."""

    queues: dict[str, Queue]
    children: dict[str, list[str]] = field(default_factory=dict)

    @staticmethod
    def build(queues: Iterable[Queue]) -> QueueTree:
        by_name: dict[str, Queue] = {}
        for q in queues:
            if q.name in by_name:
                raise ValueError(f"duplicate queue name {q.name!r}")
            by_name[q.name] = q
        children: dict[str, list[str]] = {ROOT: []}
        for q in by_name.values():
            children.setdefault(q.name, [])
        for q in sorted(by_name.values(), key=lambda q: q.name):
            parent = ROOT if q.parent is None else q.parent
            if parent != ROOT and parent not in by_name:
                raise ValueError(f"queue {q.name!r} names unknown parent {q.parent!r}")
            children[parent].append(q.name)
        tree = QueueTree(by_name, children)
        tree._check_acyclic()
        return tree

    def _check_acyclic(self) -> None:
        seen: set[str] = set()
        stack = [ROOT]
        while stack:
            name = stack.pop()
            for child in self.children[name]:
                if child in seen:
                    raise ValueError(f"queue {child!r} is reachable twice: the tree has a cycle")
                seen.add(child)
                stack.append(child)
        missing = set(self.queues) - seen
        if missing:
            raise ValueError(f"queues {sorted(missing)} form a cycle and hang off no department")

    def is_leaf(self, name: str) -> bool:
        return name in self.queues and not self.children[name]

    def leaves(self) -> Iterator[str]:
        return (n for n in self.queues if not self.children[n])

    def path(self, name: str) -> list[str]:
        """Queue names from the top-level department down to ``name`` (root excluded)."""
        out = []
        current: str | None = name
        while current is not None:
            out.append(current)
            current = self.queues[current].parent
        out.reverse()
        return out
