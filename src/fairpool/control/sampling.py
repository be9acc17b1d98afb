"""Every few seconds: read the GPU utilisation of running jobs, record it (the job's last
reading and the usage stretches accounting sums), and apply the projects' idle-GPU policies
(decided by :mod:`fairpool.control.idle`)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fairpool.control.idle import IdleAction, IdlePolicy, IdleState, decide
from fairpool.control.stats import LoopStats
from fairpool.domain import JobState
from fairpool.executors.base import Executor
from fairpool.services import usage
from fairpool.services.jobs import add_event
from fairpool.store.db import Store
from fairpool.store.models import JobRow, QueueRow


class UtilSampler:
    def __init__(self, store: Store, executor: Executor, every_s: float = 10.0,
                 stats: LoopStats | None = None) -> None:
        self.store = store
        self.executor = executor
        self.every_s = every_s
        self.stats = stats
        self._next = 0.0
        self._idle: dict[str, IdleState] = {}

    def due(self, now: float) -> bool:
        return now >= self._next

    def sample(self, live: Iterable[JobRow], others_wait: bool, now: float) -> list[JobRow]:
        """Record a reading of every running job that has one; returns the jobs an idle policy
        asked to stop (their rows, changed and committed)."""
        self._next = now + self.every_s
        running = {r.id: r for r in live if r.state == JobState.RUNNING.value
                   and r.stop_reason is None and usage.job_gpus(r) > 0}
        self._idle = {k: v for k, v in self._idle.items() if k in running}
        if not running:
            return []
        readings = self.executor.utilisation()
        per_job: dict[str, list[tuple[float, bool]]] = {}
        memory: dict[str, int] = {}
        for row in running.values():
            for w in row.placement or ():
                got = readings.get(w["worker_id"])
                if got is not None:
                    per_job.setdefault(row.id, []).append((got.util, got.simulated))
                    if got.memory_mib is not None:
                        memory[row.id] = memory.get(row.id, 0) + got.memory_mib
        if not per_job:
            return []
        stopping: list[JobRow] = []
        with self.store.writing() as s:
            projects = {running[j].project for j in per_job}
            policies = {q.name: IdlePolicy(IdleAction(q.idle_action), q.idle_threshold,
                                           q.idle_after_s, q.idle_stop_after_s)
                        for q in s.execute(select(QueueRow).where(QueueRow.name.in_(projects)))
                        .scalars()}
            seq = None
            for job_id, values in per_job.items():
                row = running[job_id]
                util = sum(v for v, _ in values) / len(values)
                simulated = any(sim for _, sim in values)
                current = self._idle.get(job_id, IdleState(row.idle_since, row.idle_flagged))
                decision = decide(policies.get(row.project, IdlePolicy()), current, util, now,
                                  others_wait)
                self._idle[job_id] = decision.state
                s.execute(update(JobRow).where(JobRow.id == job_id).values(
                    gpu_util=util, util_simulated=simulated,
                    gpu_memory_used_mib=memory.get(job_id), idle_since=decision.state.since,
                    idle_flagged=decision.state.flagged))
                usage.sampled(s, job_id, util, simulated, now)
                if decision.event is not None:
                    add_event(s, job_id, "idle", decision.event, now)
                if decision.act is None:
                    continue
                fresh = s.get(JobRow, job_id)
                if fresh is None or fresh.stop_reason is not None:
                    continue
                if seq is None:
                    seq = Store.bump(s)
                idle_for = now - (decision.state.since or now)
                if decision.act == "preempt":
                    fresh.stop_reason = "idle-preempt"
                    add_event(s, job_id, "evicted", f"idle: GPUs idle for {idle_for:.0f} s "
                              "while other jobs wait (project policy: preempt)", now)
                    if self.stats is not None:
                        self.stats.evicted("idle")
                else:
                    fresh.stop_reason = "idle-stop"
                    add_event(s, job_id, "stopping", f"GPUs idle for {idle_for:.0f} s: stopped "
                              "by the project's idle policy", now)
                fresh.seq = seq
                stopping.append(fresh)
        return stopping


def hold_back(s: Session, row: JobRow, now: float) -> None:
    """A job requeued because its GPUs were idle waits for its project's idle time before it
    may be scheduled again, so the jobs that were waiting get the GPUs."""
    queue = s.get(QueueRow, row.project)
    wait = queue.idle_after_s if queue is not None else 1800.0
    row.not_before = now + wait
    row.reason = (f"held back for {wait:g} s after its GPUs were idle (project idle policy); "
                  f"scheduled again after {time.strftime('%H:%M:%S', time.localtime(now + wait))}")
    row.reason_code = "idle-hold"
