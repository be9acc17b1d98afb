"""Mutable per-cycle view of node capacity, with indexes for fast placement.

Per node it keeps the free share of each device (milli-GPUs), free GPU memory per device, free CPU
and memory, and the count of fully free devices. A *domain* is the set of schedulable nodes that
match one node selector; each domain indexes its nodes by number of fully free devices and its
partly used devices by free share, so placement and "can this ever fit" checks cost a few set
lookups instead of a scan of every node. Every change is logged in the shared undo log.
"""

from __future__ import annotations

from collections.abc import Sequence

from fairpool.domain.job import NodeSelector
from fairpool.domain.node import Node
from fairpool.domain.resources import GPU_UNIT
from fairpool.scheduler.statement import UndoLog

SelectorKey = tuple[str | None, tuple[tuple[str, str], ...]]


class Domain:
    """The schedulable nodes matching one selector, indexed by free capacity."""

    __slots__ = ("by_whole", "key", "max_device_memory", "max_devices", "nodes", "partial")

    def __init__(self, key: SelectorKey, max_devices: int) -> None:
        self.key = key
        self.nodes: set[int] = set()
        self.by_whole: list[set[int]] = [set() for _ in range(max_devices + 1)]
        self.partial: dict[int, set[tuple[int, int]]] = {}
        self.max_devices = 0
        self.max_device_memory = 0

    def free_whole(self) -> int:
        return sum(k * len(b) for k, b in enumerate(self.by_whole))

    def largest_block(self) -> int:
        for k in range(len(self.by_whole) - 1, 0, -1):
            if self.by_whole[k]:
                return k
        return 0

    def describe(self) -> str:
        return NodeSelector(self.key[0], dict(self.key[1])).describe()


class ClusterState:
    __slots__ = (
        "cpu_free",
        "dev_free",
        "dev_mem_free",
        "dev_mem_total",
        "dev_pos",
        "domains",
        "log",
        "max_devices",
        "mem_free",
        "node_domains",
        "node_index",
        "nodes",
        "whole_free",
    )

    def __init__(self, nodes: Sequence[Node], log: UndoLog) -> None:
        self.log = log
        self.nodes = list(nodes)
        self.node_index = {n.name: i for i, n in enumerate(self.nodes)}
        if len(self.node_index) != len(self.nodes):
            raise ValueError("node names must be unique")
        self.dev_free = [[GPU_UNIT] * len(n.devices) for n in self.nodes]
        self.dev_mem_total = [[d.memory_mib for d in n.devices] for n in self.nodes]
        self.dev_mem_free = [list(m) for m in self.dev_mem_total]
        self.whole_free = [len(n.devices) for n in self.nodes]
        # None where device index == position (the common case), else index → position
        self.dev_pos: list[dict[int, int] | None] = []
        for node in self.nodes:
            indexes = [d.index for d in node.devices]
            identity = indexes == list(range(len(indexes)))
            self.dev_pos.append(None if identity else {d: i for i, d in enumerate(indexes)})
        self.cpu_free = [n.cpu for n in self.nodes]
        self.mem_free = [n.memory for n in self.nodes]
        self.max_devices = max((len(n.devices) for n in self.nodes), default=0)
        self.domains: dict[SelectorKey, Domain] = {}
        self.node_domains: list[list[Domain]] = [[] for _ in self.nodes]

    def positions(self, n: int, devices: tuple[int, ...]) -> tuple[int, ...]:
        """Device indexes of node ``n`` → positions in its device list."""
        index = self.dev_pos[n]
        if index is None:
            if not devices or (min(devices) >= 0 and max(devices) < len(self.dev_free[n])):
                return devices
            raise KeyError(f"node {self.nodes[n].name} has no devices {devices}")
        try:
            return tuple(index[d] for d in devices)
        except KeyError:
            raise KeyError(f"node {self.nodes[n].name} has no devices {devices}") from None

    def device_index(self, n: int, pos: int) -> int:
        return self.nodes[n].devices[pos].index

    def domain(self, selector: NodeSelector) -> Domain:
        key = selector.key()
        dom = self.domains.get(key)
        if dom is not None:
            return dom
        dom = Domain(key, self.max_devices)
        pool, labels = key
        for i, node in enumerate(self.nodes):
            if not node.schedulable or (pool is not None and node.pool != pool):
                continue
            if any(node.labels.get(k) != v for k, v in labels):
                continue
            dom.nodes.add(i)
            dom.by_whole[self.whole_free[i]].add(i)
            for pos, free in enumerate(self.dev_free[i]):
                if 0 < free < GPU_UNIT:
                    dom.partial.setdefault(free, set()).add((i, pos))
            dom.max_devices = max(dom.max_devices, len(node.devices))
            dom.max_device_memory = max(dom.max_device_memory, *self.dev_mem_total[i], 0)
            self.node_domains[i].append(dom)
        self.domains[key] = dom
        return dom

    # -- changes (each logs its inverse) -------------------------------------------------------
    def occupy(self, n: int, devices: tuple[int, ...], share: int, gmem: int, cpu: int,
               mem: int) -> None:
        """Take ``share`` milli-GPUs and ``gmem`` MiB on each device position of node ``n``."""
        self._apply(n, devices, -share, -gmem, -cpu, -mem)
        self.log.push(self._apply, n, devices, share, gmem, cpu, mem)

    def release(self, n: int, devices: tuple[int, ...], share: int, gmem: int, cpu: int,
                mem: int) -> None:
        self._apply(n, devices, share, gmem, cpu, mem)
        self.log.push(self._apply, n, devices, -share, -gmem, -cpu, -mem)

    def _apply(self, n: int, devices: tuple[int, ...], dshare: int, dgmem: int, dcpu: int,
               dmem: int) -> None:
        self.cpu_free[n] += dcpu
        self.mem_free[n] += dmem
        if not devices:
            return
        free = self.dev_free[n]
        gmem = self.dev_mem_free[n]
        doms = self.node_domains[n]
        whole = self.whole_free[n]
        new_whole = whole
        for d in devices:
            f0 = free[d]
            f1 = f0 + dshare
            free[d] = f1
            gmem[d] += dgmem
            if f0 == GPU_UNIT:
                new_whole -= 1
            elif f0 > 0:
                for dom in doms:
                    bucket = dom.partial[f0]
                    bucket.discard((n, d))
                    if not bucket:
                        del dom.partial[f0]
            if f1 == GPU_UNIT:
                new_whole += 1
            elif f1 > 0:
                for dom in doms:
                    b = dom.partial.get(f1)
                    if b is None:
                        dom.partial[f1] = {(n, d)}
                    else:
                        b.add((n, d))
        if new_whole != whole:
            self.whole_free[n] = new_whole
            for dom in doms:
                dom.by_whole[whole].discard(n)
                dom.by_whole[new_whole].add(n)

    def fingerprint(self) -> tuple[object, ...]:
        """Everything placement depends on, for exact-restore checks in tests."""
        return (
            [list(x) for x in self.dev_free],
            [list(x) for x in self.dev_mem_free],
            list(self.whole_free),
            list(self.cpu_free),
            list(self.mem_free),
            {k: ([set(b) for b in d.by_whole], {f: set(s) for f, s in d.partial.items()})
             for k, d in self.domains.items()},
        )
