"""The pure scheduling core: snapshot in, plan out.

Nomenclature (see DESIGN.md): a *snapshot* is an immutable view of nodes, queues and jobs; a
*session* is one cycle's working state; *actions* (allocate, consolidate, reclaim, preempt) change
it only through *statements* with an undo log; the *plan* lists binds, evictions and the reason
each pending job waits. This package imports no database, web, executor or Ray code.
"""

from fairpool.scheduler.codes import Action, PendingCode, PlacementCode
from fairpool.scheduler.cycle import Scheduler, schedule
from fairpool.scheduler.plan import Bind, Eviction, PendingReason, Plan
from fairpool.scheduler.snapshot import QueueOrder, SchedulerConfig, Snapshot, Strategy

__all__ = [
    "Action",
    "Bind",
    "Eviction",
    "PendingCode",
    "PendingReason",
    "PlacementCode",
    "Plan",
    "QueueOrder",
    "Scheduler",
    "SchedulerConfig",
    "Snapshot",
    "Strategy",
    "schedule",
]
