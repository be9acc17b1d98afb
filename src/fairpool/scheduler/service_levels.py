"""Where a job stands inside its project: its *rank* (who may preempt whom) and its *key* (the
order waiting jobs are tried in), for each of the in-queue orders of
:class:`~fairpool.domain.queue.InQueueOrder`.

* ``priority``: higher priority first, then submit time (the order fairpool always had).
* ``fifo``: submit time only. Priority still decides who may preempt whom (an urgent class is
  an explicit request), but it does not reorder the waiting line.
* ``attained``: Tiresias-style discretised least-attained service. A job's *level* is how many
  of the thresholds (``SchedulerConfig.service_levels_gpu_s``, GPU-seconds) the service it has
  received crosses: a new job is at level 0, a job that has had 1 GPU-hour at level 1, and so on.
  Inside a priority, lower levels go first and, among equals, earlier submits. A job at a lower
  level may preempt a running job of the same project and priority at a higher level (the
  preempt action; bounded by ``max_order_preemptions`` per cycle, and only a job whose current
  run has lasted ``order_min_run_s``). So that nothing starves, a waiting job is *promoted* back
  to level 0 once it has waited ``promote_after`` times as long as it has run (Tiresias's
  STARVE_LIMIT; 0 turns promotion off). Promotion moves it up the waiting line (its key) but
  not its rank: it preempts with the service it really had, or two long jobs would take turns
  evicting each other.

The rank is one integer, ``priority * LEVEL_SPAN - level``: comparing ranks compares priorities
first and levels second, so the actions that compare priorities compare ranks instead and need
no other change. Pure; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from fairpool.domain.job import Job
from fairpool.domain.queue import InQueueOrder
from fairpool.domain.resources import GPU_UNIT
from fairpool.scheduler.snapshot import SchedulerConfig

#: ranks of one priority span this many levels (more thresholds than this are not used)
LEVEL_SPAN = 16

Key = tuple[int, float, str]


def level(attained_gpu_s: float, thresholds: tuple[float, ...]) -> int:
    """How many thresholds the service crosses (0: below the first)."""
    n = 0
    for t in thresholds[:LEVEL_SPAN - 1]:
        if attained_gpu_s >= t:
            n += 1
    return n


def rank(priority: int, lvl: int) -> int:
    return priority * LEVEL_SPAN - lvl


def level_of(r: int) -> int:
    """The level a rank holds (0 for orders without levels)."""
    return (-r) % LEVEL_SPAN


def job_gpus(job: Job) -> float:
    """GPUs of the whole job, as it asks for them (a fraction counts as its share)."""
    req = job.request
    if req.gpus:
        return float(req.gpus * job.workers)
    if req.gpu_fraction is not None:
        return req.fraction_milli * job.workers / GPU_UNIT
    return 0.0


def promoted(job: Job, now: float, promote_after: float) -> bool:
    """A waiting job that has waited ``promote_after`` times as long as it has run."""
    if promote_after <= 0 or job.attained_gpu_s <= 0:
        return False
    gpus = job_gpus(job)
    if gpus <= 0:
        return False
    ran_s = job.attained_gpu_s / gpus
    since = job.queued_at if job.queued_at is not None else job.submit_time
    return now - since >= promote_after * ran_s


def waiting_level(job: Job, now: float, thresholds: tuple[float, ...],
                  promote_after: float) -> int:
    if promoted(job, now, promote_after):
        return 0
    return level(job.attained_gpu_s, thresholds)


def running_level(job: Job, held_gpus: float, now: float,
                  thresholds: tuple[float, ...]) -> int:
    """The level of a job holding ``held_gpus`` since ``started_at``: its earlier runs and
    this one."""
    started = job.started_at if job.started_at is not None else now
    return level(job.attained_gpu_s + held_gpus * max(0.0, now - started), thresholds)


def key(order: InQueueOrder, job: Job, r: int) -> Key:
    """Sort key of a waiting job inside its project (lower is tried first); ``r``: its rank
    with promotion (:func:`waiting_level`)."""
    if order == InQueueOrder.FIFO:
        return (0, job.submit_time, job.id)
    return (-r, job.submit_time, job.id)


def standing(job: Job, order: InQueueOrder, active: bool, now: float,
             cfg: SchedulerConfig) -> tuple[int, Key]:
    """Rank and key of a job in a project whose order is not by priority alone; ``active``:
    it holds resources (its current run counts)."""
    r = shown = rank(job.priority, 0)
    if order == InQueueOrder.ATTAINED:
        thresholds = cfg.service_levels_gpu_s
        if active:
            r = shown = rank(job.priority, running_level(job, job_gpus(job), now, thresholds))
        else:  # promotion moves it up the line, not its right to preempt
            r = rank(job.priority, level(job.attained_gpu_s, thresholds))
            shown = rank(job.priority, waiting_level(job, now, thresholds, cfg.promote_after))
    return r, key(order, job, shown)


def next_change(jobs: Iterable[tuple[Job, bool]], now: float, cfg: SchedulerConfig) -> float:
    """The earliest time after ``now`` at which the attained-service order may decide
    differently with no event: a running job's run reaches ``order_min_run_s`` or crosses a
    level, a waiting job is promoted. ``jobs``: the jobs of attained-order projects, each with
    whether it holds resources."""
    thresholds = cfg.service_levels_gpu_s
    soon = math.inf
    for job, active in jobs:
        gpus = job_gpus(job)
        if active:
            started = job.started_at if job.started_at is not None else now
            times = [started + cfg.order_min_run_s]
            if gpus > 0:
                times += [started + (t - job.attained_gpu_s) / gpus for t in thresholds
                          if t > job.attained_gpu_s]
        elif cfg.promote_after > 0 and job.attained_gpu_s > 0 and gpus > 0:
            since = job.queued_at if job.queued_at is not None else job.submit_time
            times = [since + cfg.promote_after * job.attained_gpu_s / gpus]
        else:
            continue
        for t in times:
            if now < t < soon:
                soon = t
    return soon
