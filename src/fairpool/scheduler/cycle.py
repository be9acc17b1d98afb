"""One scheduling cycle: snapshot in, plan out. Pure; no I/O.

:func:`schedule` builds a session from the snapshot, computes fair shares, runs the actions in
order (allocate → consolidate → reclaim → preempt), again while a round evicts something, and
returns the plan. :class:`Scheduler` adds
the one piece of memory a long-running loop wants: if a snapshot has the same ``generation`` as
the last one, the last plan changed nothing, and no minimum runtime has ended since, the cycle
cannot decide anything new, so the previous plan is returned as is.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

from fairpool.scheduler import reservations
from fairpool.scheduler.actions.allocate import allocate
from fairpool.scheduler.actions.consolidate import consolidate
from fairpool.scheduler.actions.preempt import preempt
from fairpool.scheduler.actions.reclaim import reclaim
from fairpool.scheduler.plan import Plan
from fairpool.scheduler.session import PENDING, Session
from fairpool.scheduler.snapshot import SchedulerConfig, Snapshot
from fairpool.scheduler.victims import protection_ends

#: Rounds of the action sequence per cycle. A round that evicts something changes the picture
#: (evicted jobs wait again, freed room may serve others), so the sequence runs again, up to
#: this bound, until a round evicts nothing: then the next cycle, on this plan's result, has
#: nothing left to evict either.
MAX_ROUNDS = 4


def schedule(snapshot: Snapshot, config: SchedulerConfig | None = None) -> Plan:
    # A cycle allocates many small objects that all live exactly as long as the cycle; the
    # cyclic garbage collector's passes over them would cost as much as the cycle itself.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _schedule(snapshot, config)
    finally:
        if enabled:
            gc.enable()


def _schedule(snapshot: Snapshot, config: SchedulerConfig | None) -> Plan:
    session = Session(snapshot, config)
    cfg = session.config
    for _ in range(MAX_ROUNDS):
        evicted = len(session.evictions)
        allocate(session)
        if cfg.consolidate:
            consolidate(session)
        if cfg.reclaim and cfg.lend_idle:
            reclaim(session)
        if cfg.preempt:
            preempt(session)
        if len(session.evictions) == evicted:
            break
    plan = session.to_plan()
    if any(v.status == PENDING for v in session.jobs):
        plan.valid_until = min(protection_ends(session), reservations.next_change(session))
    return plan


@dataclass(slots=True)
class CycleStats:
    cycles: int = 0
    reused: int = 0
    last_duration_s: float = 0.0


class Scheduler:
    """Runs cycles and skips those in which nothing can change."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self._last: Plan | None = None
        self._last_generation: int | None = None
        self.stats = CycleStats()

    def cycle(self, snapshot: Snapshot) -> Plan:
        start = time.perf_counter()
        last = self._last
        if (
            last is not None
            and snapshot.generation is not None
            and snapshot.generation == self._last_generation
            and not last.changes
            and snapshot.now < last.valid_until
        ):
            plan = Plan(
                pending=last.pending,
                fair_shares=last.fair_shares,
                allocated=last.allocated,
                reused=True,
                valid_until=last.valid_until,
            )
            self.stats.reused += 1
        else:
            plan = schedule(snapshot, self.config)
            self._last = plan
            self._last_generation = snapshot.generation
        self.stats.cycles += 1
        self.stats.last_duration_s = time.perf_counter() - start
        return plan
