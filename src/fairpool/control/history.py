"""What the control loop reads of the past for the core, every ``every_s`` seconds: each
project's decayed GPU usage (the time-aware fair share,
:mod:`fairpool.scheduler.usage_share`) and its jobs' expected run time (backfill, start-time
estimates). Between reads the last values are used; a read that changes them makes the next
snapshot one the scheduler does not reuse a plan for (the shares may move with no job
changing)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fairpool.scheduler import SchedulerConfig
from fairpool.services import usage
from fairpool.store.db import Store


@dataclass
class History:
    store: Store
    config: SchedulerConfig
    every_s: float = 60.0
    usage_gpu_s: dict[str, float] = field(default_factory=dict)
    runtimes: dict[str, float] = field(default_factory=dict)
    _read_at: float = -float("inf")

    def refresh(self, now: float) -> bool:
        """Read again if it is time; whether the values changed."""
        if now - self._read_at < self.every_s:
            return False
        self._read_at = now
        used, runtimes = usage.past(self.store, now, self.config)
        changed = used != self.usage_gpu_s or runtimes != self.runtimes
        self.usage_gpu_s, self.runtimes = used, runtimes
        return changed
