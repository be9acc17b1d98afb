"""How the control loop runs: its timings, retry backoff and circuit breaker, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoopSettings:
    grace_s: float = 10.0  # between SIGTERM and SIGKILL when a worker is stopped
    idle_interval_s: float = 0.5  # between iterations when no job runs
    busy_interval_s: float = 0.002  # between iterations while jobs run (grows while quiet)
    quiet_max_s: float = 0.016  # the longest wait while jobs run and nothing changes
    #: pending reasons are written at most this often: with thousands of waiting jobs,
    #: comparing and writing them every iteration would cost more than scheduling them
    reasons_every_s: float = 0.5
    deadlines_every_s: float = 1.0  # how often max runtimes are checked
    sync_every_s: float = 30.0  # how often the executor's inventory is taken
    forget_after_s: float = 600.0  # a gone node nothing holds is deleted after this long
    sample_every_s: float = 10.0  # GPU utilisation readings and idle policies
    retry_base_s: float = 5.0  # the first retry's backoff (doubles with each retry)
    retry_cap_s: float = 300.0  # the longest backoff
    breaker_failures: int = 3  # jobs failing on a node within the window that cordon it
    breaker_window_s: float = 60.0
    breaker_cooldown_s: float = 300.0  # how long the breaker's cordon lasts
