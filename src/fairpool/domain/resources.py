"""Resource vectors: GPUs, GPU memory, CPU and memory, in integer base units.

Nomenclature:
- ``gpu`` is counted in milli-GPUs (``GPU_UNIT`` = 1000 is one whole device), so fractions such as
  0.25 or 0.5 of a device add up exactly;
- ``gpu_memory`` and ``memory`` are MiB, ``cpu`` is millicores.
``UNLIMITED`` marks an absent limit. Integer arithmetic keeps accounting exact and rollbacks
bit-for-bit reversible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fairpool.domain.words import plural

GPU_UNIT = 1000
CPU_UNIT = 1000
UNLIMITED = 1 << 60
RESOURCE_NAMES: tuple[str, ...] = ("gpu", "gpu_memory", "cpu", "memory")


def _fmt_gpu(milli: int) -> str:
    if milli >= UNLIMITED:
        return "unlimited"
    whole, rest = divmod(milli, GPU_UNIT)
    return str(whole) if rest == 0 else f"{milli / GPU_UNIT:g}"


@dataclass(frozen=True, slots=True)
class Resources:
    """An immutable vector of the four schedulable resources (integer base units)."""

    gpu: int = 0
    gpu_memory: int = 0
    cpu: int = 0
    memory: int = 0

    ZERO: ClassVar[Resources]
    INFINITE: ClassVar[Resources]

    @staticmethod
    def of(
        gpus: float = 0, gpu_memory_mib: int = 0, cpus: float = 0, memory_mib: int = 0
    ) -> Resources:
        """Build from human units: whole or fractional GPUs, MiB, CPU cores, MiB."""
        if min(gpus, gpu_memory_mib, cpus, memory_mib) < 0:
            raise ValueError("resource amounts must not be negative")
        return Resources(
            round(gpus * GPU_UNIT), int(gpu_memory_mib), round(cpus * CPU_UNIT), int(memory_mib)
        )

    @staticmethod
    def from_tuple(values: tuple[int, int, int, int] | list[int]) -> Resources:
        return Resources(values[0], values[1], values[2], values[3])

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.gpu, self.gpu_memory, self.cpu, self.memory)

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            _sat(self.gpu + other.gpu),
            _sat(self.gpu_memory + other.gpu_memory),
            _sat(self.cpu + other.cpu),
            _sat(self.memory + other.memory),
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.gpu - other.gpu,
            self.gpu_memory - other.gpu_memory,
            self.cpu - other.cpu,
            self.memory - other.memory,
        )

    def __mul__(self, factor: int) -> Resources:
        return Resources(
            _sat(self.gpu * factor),
            _sat(self.gpu_memory * factor),
            _sat(self.cpu * factor),
            _sat(self.memory * factor),
        )

    __rmul__ = __mul__

    def __le__(self, other: Resources) -> bool:
        """Component-wise: every resource of ``self`` fits in ``other``."""
        return (
            self.gpu <= other.gpu
            and self.gpu_memory <= other.gpu_memory
            and self.cpu <= other.cpu
            and self.memory <= other.memory
        )

    def __ge__(self, other: Resources) -> bool:
        return other <= self

    def __lt__(self, other: Resources) -> bool:
        return self <= other and self != other

    def __gt__(self, other: Resources) -> bool:
        return other < self

    def min(self, other: Resources) -> Resources:
        return Resources(
            min(self.gpu, other.gpu),
            min(self.gpu_memory, other.gpu_memory),
            min(self.cpu, other.cpu),
            min(self.memory, other.memory),
        )

    def max(self, other: Resources) -> Resources:
        return Resources(
            max(self.gpu, other.gpu),
            max(self.gpu_memory, other.gpu_memory),
            max(self.cpu, other.cpu),
            max(self.memory, other.memory),
        )

    def is_zero(self) -> bool:
        return self.gpu == 0 and self.gpu_memory == 0 and self.cpu == 0 and self.memory == 0

    def any_negative(self) -> bool:
        return min(self.gpu, self.gpu_memory, self.cpu, self.memory) < 0

    def dominant_share(self, total: Resources) -> float:
        """DRF: the largest fraction of ``total`` this vector holds on any resource."""
        share = 0.0
        for mine, whole in zip(self.as_tuple(), total.as_tuple(), strict=True):
            if mine <= 0:
                continue
            if whole <= 0:
                return float("inf")
            share = max(share, mine / whole)
        return share

    @property
    def gpus(self) -> float:
        return self.gpu / GPU_UNIT

    def describe(self) -> str:
        """Human text such as ``2 GPUs, 8 CPUs, 32768 MiB``; unlimited parts are omitted."""
        parts = []
        if self.gpu:
            parts.append(plural(self.gpu / GPU_UNIT, "GPU", shown=_fmt_gpu(self.gpu)))
        if self.gpu_memory and self.gpu_memory < UNLIMITED:
            parts.append(f"{self.gpu_memory} MiB GPU memory")
        if self.cpu and self.cpu < UNLIMITED:
            parts.append(plural(self.cpu / CPU_UNIT, "CPU"))
        if self.memory and self.memory < UNLIMITED:
            parts.append(f"{self.memory} MiB memory")
        return ", ".join(parts) if parts else "nothing"


def _sat(value: int) -> int:
    """Saturate at UNLIMITED so that unlimited plus anything stays unlimited."""
    return UNLIMITED if value >= UNLIMITED else value


Resources.ZERO = Resources()
Resources.INFINITE = Resources(UNLIMITED, UNLIMITED, UNLIMITED, UNLIMITED)


def format_gpus(milli: int) -> str:
    """``2500`` → ``2.5``; used in reasons shown to people."""
    return _fmt_gpu(milli)
