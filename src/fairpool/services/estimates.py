"""Start-time estimates of waiting jobs, for ``fairpool explain``, the job's page and the API:
the pool as the store holds it now, run forward by the core (:mod:`fairpool.scheduler.
forecast`) with each project's expected run time from its history.

One forecast answers for every waiting job, so it is kept for :data:`KEEP_S` seconds or until
the store's generation changes (a submit, an end, a new node), whichever comes first; a
forecast stops after :data:`MAX_CYCLES` cycles or :data:`BUDGET_S` seconds, and the jobs it
did not reach have no estimate (their words say how far it looked). Also the snapshot the dry
run schedules on (:func:`live_snapshot`).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fairpool.domain.states import LIVE_VALUES
from fairpool.domain.words import duration
from fairpool.scheduler import SchedulerConfig, Snapshot
from fairpool.scheduler.forecast import HORIZON_S, Estimate, forecast
from fairpool.services import usage
from fairpool.store.convert import job_domain, node_domain, queue_domain
from fairpool.store.db import Store
from fairpool.store.models import JobRow, NodeRow, QueueRow

KEEP_S = 30.0
MAX_CYCLES = 200
#: seconds of scheduling cycles one forecast may take (a request waits for it)
BUDGET_S = 2.0


def live_snapshot(s: Session, now: float, runtime_estimates: dict[str, float] | None = None,
                  usage_gpu_s: dict[str, float] | None = None) -> Snapshot:
    """The pool as the scheduler sees it: nodes, live queues, live jobs whose dependencies are
    met and that are not held back until later (a retry's backoff, an idle requeue's hold).
    (An array's cap on tasks that run at once is not applied: its tasks count as free.)"""
    nodes = tuple(node_domain(r) for r in s.execute(select(NodeRow)).scalars())
    queues = tuple(queue_domain(r) for r in s.execute(
        select(QueueRow).where(QueueRow.deleted_at.is_(None))).scalars())
    live = tuple(job_domain(r) for r in s.execute(
        select(JobRow).where(JobRow.state.in_(LIVE_VALUES), JobRow.deps_waiting.is_(False),
                             or_(JobRow.not_before.is_(None), JobRow.not_before <= now))
    ).scalars())
    return Snapshot(nodes, queues, live, now=now, runtime_estimates=runtime_estimates or {},
                    usage_gpu_s=usage_gpu_s or {})


@dataclass
class _Kept:
    generation: int
    at: float
    estimates: dict[str, Estimate]


_lock = threading.Lock()
_computing = threading.Lock()  # one forecast at a time: requests that miss wait for it
_kept: dict[str, _Kept] = {}  # store URL → the last forecast


def estimates(store: Store, config: SchedulerConfig | None = None,
              now: float | None = None) -> tuple[float, dict[str, Estimate]]:
    """(when it was made, the estimate of every waiting job), from the kept forecast when it is
    fresh; requests that find none wait for the one being made instead of making their own."""
    cfg = config or SchedulerConfig()
    now = time.time() if now is None else now
    key = str(store.engine.url)
    with store.session() as s:
        generation = store.generation(s)
    kept = _fresh(key, generation, now)
    if kept is not None:
        return kept
    with _computing:
        kept = _fresh(key, generation, now)  # made while this one waited
        if kept is not None:
            return kept
        used, runtimes = usage.past(store, now, cfg)
        with store.session() as s:
            snapshot = live_snapshot(s, now, runtimes, used)
        deadline = time.monotonic() + BUDGET_S
        made = forecast(snapshot, cfg, max_cycles=MAX_CYCLES,
                        more=lambda: time.monotonic() < deadline)
        with _lock:
            _kept[key] = _Kept(generation, now, made)
    return now, made


def _fresh(key: str, generation: int, now: float) -> tuple[float, dict[str, Estimate]] | None:
    with _lock:
        kept = _kept.get(key)
        if kept is not None and kept.generation == generation and now - kept.at < KEEP_S:
            return kept.at, kept.estimates
    return None


def words(estimate: Estimate | None, now: float) -> str | None:
    """``expected to start in about 12 min (estimate, based on …)``, or None without one."""
    if estimate is None:
        return None
    based = f"(estimate, based on {estimate.basis})"
    if estimate.start is None and estimate.until == math.inf:
        why = ("it waits for jobs with no known run time" if estimate.unknown_holders
               else "it does not start as the pool is, whatever ends")
        return f"no start-time estimate: {why} {based}"
    if estimate.start is None:
        ahead = min(estimate.until, now + HORIZON_S) - now
        return ("no start-time estimate: it does not start in a forecast of the next "
                f"{duration(max(0.0, ahead))} {based}")
    wait = estimate.start - now
    when = "now, at the next cycles" if wait < 1 else f"in about {duration(wait)}"
    return f"expected to start {when} {based}"
