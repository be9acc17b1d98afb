"""Nodes and devices.

A node is a machine with GPUs (devices), CPU and memory; it belongs to one node pool and carries
free-form labels. A device is one physical GPU; fractional workers may share it. ``simulated``
marks inventory that does not exist physically (machines without GPUs) and is always shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fairpool.domain.resources import CPU_UNIT, GPU_UNIT, Resources

DEFAULT_POOL = "default"


@dataclass(frozen=True, slots=True)
class Device:
    """One GPU of a node, addressed by its index on that node."""

    index: int
    memory_mib: int = 81920
    model: str = "simulated-gpu"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    devices: tuple[Device, ...] = ()
    cpu: int = 64 * CPU_UNIT  # millicores
    memory: int = 512 * 1024  # MiB
    pool: str = DEFAULT_POOL
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = True
    cordoned: bool = False
    simulated: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a node needs a name")
        indexes = [d.index for d in self.devices]
        if len(set(indexes)) != len(indexes):
            raise ValueError(f"node {self.name}: device indexes must be unique")
        if self.cpu < 0 or self.memory < 0:
            raise ValueError(f"node {self.name}: cpu and memory must not be negative")

    @property
    def schedulable(self) -> bool:
        """Whether new workers may be placed here (ready and not cordoned)."""
        return self.ready and not self.cordoned

    @property
    def capacity(self) -> Resources:
        return Resources(
            len(self.devices) * GPU_UNIT,
            sum(d.memory_mib for d in self.devices),
            self.cpu,
            self.memory,
        )

    @staticmethod
    def with_gpus(
        name: str,
        gpus: int,
        *,
        gpu_memory_mib: int = 81920,
        cpus: int = 64,
        memory_mib: int = 512 * 1024,
        pool: str = DEFAULT_POOL,
        labels: Mapping[str, str] | None = None,
        simulated: bool = True,
    ) -> Node:
        """Convenience constructor for a node with ``gpus`` identical devices."""
        return Node(
            name=name,
            devices=tuple(Device(i, gpu_memory_mib) for i in range(gpus)),
            cpu=cpus * CPU_UNIT,
            memory=memory_mib,
            pool=pool,
            labels=dict(labels or {}),
            simulated=simulated,
        )
