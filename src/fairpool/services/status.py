"""The latest scheduling results the control loop publishes for readers (queue fair shares)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fairpool.domain import Resources


@dataclass
class StatusBoard:
    fair_shares: dict[str, Resources] = field(default_factory=dict)
    updated_at: float = 0.0
    cycles: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish(self, fair_shares: dict[str, Resources]) -> None:
        with self._lock:
            self.fair_shares = dict(fair_shares)
            self.updated_at = time.time()
            self.cycles += 1

    def fair_share(self, queue: str) -> Resources | None:
        with self._lock:
            return self.fair_shares.get(queue)
