"""Token buckets by key: on average ``rate`` a second, ``burst`` at once. One arithmetic for the
API's submit limits (api/limits.py) and the audit log's throttle (services/audit.py)."""

from __future__ import annotations


class Buckets:
    """Levels of a bucket per key; not locked: each owner holds its own lock around them."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, float(burst))
        self._levels: dict[str, tuple[float, float]] = {}  # key → (level, when)

    def level(self, key: str, now: float) -> float:
        """How much ``key``'s bucket holds at ``now`` (a new key: full)."""
        level, at = self._levels.get(key, (self.burst, now))
        return min(self.burst, level + (now - at) * self.rate)

    def set(self, key: str, level: float, now: float) -> None:
        if len(self._levels) > 100_000:  # a flood of distinct keys: start over
            self._levels.clear()
        self._levels[key] = (level, now)
