"""Prometheus metrics at /metrics: queues (quota, fair share, allocated, pending), jobs by
state, devices (allocation, and utilisation where measured), evictions by reason, and the
scheduling cycles of the control loop (from :class:`~fairpool.control.stats.LoopStats`).

Everything but the cycle counters is read from the store at scrape time, so the numbers are
the store's."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from fairpool.control.stats import CYCLE_BUCKETS, LoopStats
from fairpool.domain import GPU_UNIT
from fairpool.domain.states import HOLDING_VALUES
from fairpool.scheduler import SchedulerConfig
from fairpool.services import queues, usage
from fairpool.store.db import Store
from fairpool.store.models import JobEventRow, JobRow, NodeRow

#: the decayed usage the metric shows is read again at most this often (seconds)
DECAYED_EVERY_S = 60.0


class StoreCollector(Collector):
    def __init__(self, store: Store, stats: LoopStats | None,
                 config: SchedulerConfig | None = None) -> None:
        self.store = store
        self.stats = stats
        self.config = config or SchedulerConfig()  # the decay of usage the loop uses
        self._decayed: tuple[float, dict[str, float]] = (-DECAYED_EVERY_S, {})
        self._lock = threading.Lock()
        self._evictions: dict[str, int] = {}
        self._last_event = 0

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._jobs_and_devices()
        yield self._evicted()
        if self.stats is not None:
            yield from self._cycles(self.stats)

    def _queues(self) -> Iterator[Metric]:
        labels = ["queue", "kind", "parent"]
        quota = GaugeMetricFamily("fairpool_queue_quota_gpus", "Guaranteed GPUs", labels=labels)
        fair = GaugeMetricFamily("fairpool_queue_fair_share_gpus",
                                 "GPUs the last scheduling cycle's fair share gives",
                                 labels=labels)
        alloc = GaugeMetricFamily("fairpool_queue_allocated_gpus",
                                  "GPUs held by placed jobs (the scheduler's accounting: "
                                  "the sum of their devices' shares)",
                                  labels=labels)
        pending = GaugeMetricFamily("fairpool_queue_pending_gpus",
                                    "GPUs asked by waiting jobs (GPU memory as a share of the "
                                    "largest device)", labels=labels)
        cfg = self.config
        decayed = GaugeMetricFamily(
            "fairpool_queue_usage_decayed_gpu_hours",
            f"GPU-hours used, each weighted 0.5 per {cfg.usage_half_life_s:g} s of age, over "
            "the fair share's window: what the time-aware fair share weighs (it acts only "
            "when usage_k > 0)", labels=labels)
        now = time.time()
        if now - self._decayed[0] >= DECAYED_EVERY_S:  # (it reads the window's usage rows)
            self._decayed = (now, usage.decayed(self.store, now, cfg.usage_half_life_s,
                                                cfg.usage_window_s))
        used = self._decayed[1]
        listed = queues.list_queues(self.store)
        by_dept: dict[str, float] = {}
        for q in listed:
            if q.kind == "project" and q.parent is not None:
                by_dept[q.parent] = by_dept.get(q.parent, 0.0) + used.get(q.name, 0.0)
        for q in listed:
            key = [q.name, q.kind, q.parent or ""]
            quota.add_metric(key, q.quota.gpus)
            if q.fair_share is not None:
                fair.add_metric(key, q.fair_share.gpus)
            alloc.add_metric(key, q.allocated.gpus)
            pending.add_metric(key, q.pending.gpus)
            mine = used.get(q.name, 0.0) if q.kind == "project" else by_dept.get(q.name, 0.0)
            decayed.add_metric(key, mine / 3600.0)
        yield from (quota, fair, alloc, pending, decayed)

    def _jobs_and_devices(self) -> Iterator[Metric]:
        with self.store.session() as s:
            counts = s.execute(select(JobRow.project, JobRow.state, func.count())
                               .group_by(JobRow.project, JobRow.state)).all()
            holding = s.execute(select(JobRow.id, JobRow.project, JobRow.placement,
                                       JobRow.gpu_util, JobRow.util_simulated,
                                       JobRow.gpu_memory_used_mib, JobRow.idle_flagged)
                                .where(JobRow.state.in_(HOLDING_VALUES))).all()
            nodes = s.execute(select(NodeRow.name, NodeRow.devices, NodeRow.simulated)).all()
        jobs = GaugeMetricFamily("fairpool_jobs", "Jobs by project and state",
                                 labels=["project", "state"])
        for project, state, n in counts:
            jobs.add_metric([project, state], n)
        yield jobs
        job_util = GaugeMetricFamily("fairpool_job_gpu_utilization",
                                     "Last GPU utilisation reading of a running job (0..1)",
                                     labels=["job", "project", "simulated"])
        job_mem = GaugeMetricFamily("fairpool_job_gpu_memory_used_mib",
                                    "GPU memory a running job used at the last reading (NVML)",
                                    labels=["job", "project"])
        idle = GaugeMetricFamily("fairpool_job_idle", "1 when the idle-GPU policy flagged a job",
                                 labels=["job", "project"])
        held: dict[tuple[str, int], float] = {}
        busy: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for job_id, project, placement, util, simulated, memory, flagged in holding:
            if util is not None:
                job_util.add_metric([job_id, project, str(bool(simulated)).lower()], util)
            if memory is not None:
                job_mem.add_metric([job_id, project], memory)
            idle.add_metric([job_id, project], 1.0 if flagged else 0.0)
            for w in placement or ():
                for d in w["devices"]:
                    share = w["share"] / GPU_UNIT
                    held[(w["node"], d)] = held.get((w["node"], d), 0.0) + share
                    if util is not None:
                        busy.setdefault((w["node"], d), []).append((util, share))
        yield from (job_util, job_mem, idle)
        labels = ["node", "device", "simulated"]
        allocated = GaugeMetricFamily("fairpool_device_allocated",
                                      "Share of a device held by jobs (0..1)", labels=labels)
        used = GaugeMetricFamily("fairpool_device_utilization",
                                 "Utilisation of a device by its jobs, where measured (0..1)",
                                 labels=labels)
        for name, devices, simulated in nodes:
            for d in devices:
                key = [name, str(d["index"]), str(bool(simulated)).lower()]
                allocated.add_metric(key, held.get((name, d["index"]), 0.0))
                readings = busy.get((name, d["index"]))
                if readings:
                    used.add_metric(key, min(1.0, sum(u * sh for u, sh in readings)))
        yield from (allocated, used)

    def _evicted(self) -> Metric:
        """Counted from the store's eviction events by their cause (the scheduler's action,
        ``drain`` or ``idle``), reading only those new since last time."""
        with self._lock, self.store.session() as s:
            rows = s.execute(select(JobEventRow.id, JobEventRow.cause).where(
                JobEventRow.kind == "evicted", JobEventRow.id > self._last_event)
                .order_by(JobEventRow.id)).all()
            for event_id, cause in rows:
                reason = cause or "other"
                self._evictions[reason] = self._evictions.get(reason, 0) + 1
                self._last_event = event_id
            counts = dict(self._evictions)
        family = CounterMetricFamily("fairpool_evictions", "Jobs evicted, by reason",
                                     labels=["reason"])
        for reason, n in sorted(counts.items()):
            family.add_metric([reason], n)
        return family

    def _cycles(self, stats: LoopStats) -> Iterator[Metric]:
        read = stats.read()
        bounds = [*(f"{b:g}" for b in CYCLE_BUCKETS), "+Inf"]
        hist = HistogramMetricFamily("fairpool_scheduling_cycle_seconds",
                                     "Duration of scheduling cycles that had work to do")
        hist.add_metric([], list(zip(bounds, read.buckets, strict=True)), read.total)
        yield hist
        decisions = CounterMetricFamily("fairpool_scheduling_decisions",
                                        "Jobs placed and evicted by scheduling cycles",
                                        labels=["kind", "action"])
        for action, n in read.binds.items():
            decisions.add_metric(["bind", action], n)
        for action, n in read.evictions.items():
            decisions.add_metric(["evict", action], n)
        yield decisions


def registry(store: Store, stats: LoopStats | None,
             config: SchedulerConfig | None = None) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(store, stats, config))
    return reg


def render(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
