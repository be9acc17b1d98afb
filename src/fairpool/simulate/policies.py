"""The policies a simulation compares, each a configuration of the same scheduling core.

- ``fifo``: one queue for everybody, jobs in submit order; a job that does not fit is skipped
  for now and later ones may start (backfill); nothing is ever evicted.
- ``sjf``: the same, in order of the trace's duration (an oracle no real scheduler has).
- ``las``: Tiresias-style discretised least-attained-service: one queue, jobs in order of the
  GPU-seconds they already received; a job's priority drops as its service crosses each
  threshold (default 1 and 10 GPU-hours) and the core's preempt action lets a job of a higher
  level evict running jobs of a lower one (they lose the work since their last checkpoint).
- ``strict-quota``: the department → project tree with quotas and no lending: a project never
  holds more than its quota, even when GPUs sit idle (Helios's per-VC clusters).
- ``fairpool-attained``: fairpool with the attained-service order inside every project
  (:mod:`fairpool.scheduler.service_levels`): quotas and fair share across projects, and inside
  each, less-served jobs first, with bounded in-project preemption and promotion.
- ``fairpool``: fairpool's default: quotas, idle GPUs lent by fair share (DRF across queues),
  reclaim of lent GPUs when their owner needs them, preemption by priority, consolidation.
- ``fairpool-decay``: fairpool with the time-aware fair share
  (:mod:`fairpool.scheduler.usage_share`): a project's over-quota weight falls with the GPU
  time it used recently (half-life 1 day, ``k`` 1; the simulator looks back without a window).
- ``fairpool-backfill``: fairpool with reservations for large gangs and backfill
  (:mod:`fairpool.scheduler.reservations`); every job declares a max runtime of twice its
  trace duration (the traces carry none, and people over-estimate), which is all the core knows
  of how long a job runs.
- ``fairpool-fragmentation``: fairpool's default with fragmentation-aware placement of GPU
  fractions (``Strategy.FRAGMENTATION``, :mod:`fairpool.scheduler.fragmentation`): each
  fraction goes where it least reduces the pool's room for the mix of jobs it is seeing.

Baselines without tenants (fifo, sjf, las) put every job in one queue; the simulator still
tracks which project each job belongs to for the fairness metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from fairpool.domain.queue import InQueueOrder
from fairpool.scheduler.snapshot import QueueOrder, SchedulerConfig, Strategy

#: Priority of a job in LAS level 0 (least attained); each level below is 10 lower.
LAS_TOP_PRIORITY = 80
LAS_THRESHOLDS_S = (3600.0, 36000.0)  # GPU-seconds: level 0 below 1 GPU-hour, 1 below 10
#: fairpool-backfill: gangs reserve after this wait, and jobs declare this multiple of their
#: duration as max runtime (users over-estimate their run times, typically by 2× or more)
BACKFILL_RESERVE_AFTER_S = 0.0
BACKFILL_RUNTIME_FACTOR = 2.0
#: fairpool-decay: how much past usage counts, and its half-life
DECAY_K = 1.0
DECAY_HALF_LIFE_S = 86400.0


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    config: SchedulerConfig
    single_queue: bool  # every job in one queue (no tenants)
    las_thresholds: tuple[float, ...] = ()  # attained GPU-seconds where a job's level drops
    #: the max runtime each job declares, as a multiple of its trace duration (people ask for
    #: more than they use); None: jobs declare none, as in the traces
    max_runtime_factor: float | None = None

    def las_priority(self, attained_gpu_s: float) -> int:
        level = sum(1 for t in self.las_thresholds if attained_gpu_s >= t)
        return LAS_TOP_PRIORITY - 10 * level


POLICIES: dict[str, Policy] = {
    "fifo": Policy("fifo", SchedulerConfig(order=QueueOrder.FIFO, consolidate=False,
                                           reclaim=False, preempt=False), single_queue=True),
    "sjf": Policy("sjf", SchedulerConfig(order=QueueOrder.SHORTEST_FIRST, consolidate=False,
                                         reclaim=False, preempt=False), single_queue=True),
    "las": Policy("las", SchedulerConfig(order=QueueOrder.LEAST_ATTAINED, consolidate=False,
                                         reclaim=False, preempt=True), single_queue=True,
                  las_thresholds=LAS_THRESHOLDS_S),
    "strict-quota": Policy("strict-quota", SchedulerConfig(lend_idle=False, consolidate=False,
                                                           reclaim=False, preempt=False),
                           single_queue=False),
    "fairpool": Policy("fairpool", SchedulerConfig(), single_queue=False),
    "fairpool-attained": Policy("fairpool-attained",
                                SchedulerConfig(job_order=InQueueOrder.ATTAINED),
                                single_queue=False),
    "fairpool-decay": Policy("fairpool-decay",
                             SchedulerConfig(usage_k=DECAY_K, usage_half_life_s=DECAY_HALF_LIFE_S,
                                             usage_window_s=None), single_queue=False),
    "fairpool-backfill": Policy("fairpool-backfill",
                                SchedulerConfig(reserve_after_s=BACKFILL_RESERVE_AFTER_S),
                                single_queue=False, max_runtime_factor=BACKFILL_RUNTIME_FACTOR),
    "fairpool-fragmentation": Policy("fairpool-fragmentation",
                                     SchedulerConfig(strategy=Strategy.FRAGMENTATION),
                                     single_queue=False),
}


#: what ``fairpool simulate`` compares unless told otherwise: the baselines and the default
#: (five columns fit a terminal; ``all`` adds the variants of the default)
HEADLINE = ("fifo", "sjf", "las", "strict-quota", "fairpool")


def policy_names(spec: str) -> list[str]:
    """``default`` (:data:`HEADLINE`), ``all`` or a comma-separated list of policy names,
    validated."""
    if spec == "default":
        return list(HEADLINE)
    names = list(POLICIES) if spec == "all" else [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown or not names:
        raise ValueError(f"unknown policy {', '.join(unknown) or repr(spec)}; choose from "
                         f"{', '.join(POLICIES)}, default or all")
    return names
