"""Every few seconds: read the GPU utilisation of running jobs and decide, with the projects'
idle-GPU policies (:mod:`fairpool.control.idle`), what to record (the job's last reading and the
usage stretches accounting sums) and which jobs to stop; the loop writes both in its one
transaction of the step."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fairpool.control.effects import HoldCode, Sample, Stop
from fairpool.control.idle import IdleAction, IdlePolicy, IdleState, decide
from fairpool.domain import JobState
from fairpool.domain.states import StopReason
from fairpool.executors.base import Executor
from fairpool.services import usage
from fairpool.store.db import Store
from fairpool.store.lifecycle import add_event
from fairpool.store.models import JobRow, QueueRow


class UtilSampler:
    def __init__(self, store: Store, executor: Executor, every_s: float = 10.0) -> None:
        self.store = store
        self.executor = executor
        self.every_s = every_s
        self._next = 0.0
        self._idle: dict[str, IdleState] = {}

    def due(self, now: float) -> bool:
        return now >= self._next

    def collect(self, live: Iterable[JobRow], others_wait: bool, now: float
                ) -> tuple[list[Sample], list[Stop]]:
        """Read the utilisation of every running job that holds GPUs and decide, with its
        project's idle policy (:func:`fairpool.control.idle.decide`), what to record and which
        jobs to stop; nothing is written here (the loop applies both in its transaction)."""
        self._next = now + self.every_s
        running = {r.id: r for r in live if r.state == JobState.RUNNING.value
                   and usage.job_gpus(r) > 0}
        self._idle = {k: v for k, v in self._idle.items() if k in running}
        if not running:
            return [], []
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
            return [], []
        projects = sorted({running[j].project for j in per_job})
        with self.store.session() as s:
            policies = {q.name: IdlePolicy(IdleAction(q.idle_action), q.idle_threshold,
                                           q.idle_after_s, q.idle_stop_after_s)
                        for q in s.execute(select(QueueRow).where(QueueRow.name.in_(projects)))
                        .scalars()}
        samples: list[Sample] = []
        stops: list[Stop] = []
        for job_id, values in per_job.items():
            row = running[job_id]
            util = sum(v for v, _ in values) / len(values)
            current = self._idle.get(job_id, IdleState(row.idle_since, row.idle_flagged))
            decision = decide(policies.get(row.project, IdlePolicy()), current, util, now,
                              others_wait)
            self._idle[job_id] = decision.state
            samples.append(Sample(job_id, util, any(sim for _, sim in values),
                                  memory.get(job_id), decision.state.since,
                                  decision.state.flagged, decision.event))
            idle_for = now - (decision.state.since or now)
            if decision.act == "preempt":
                stops.append(Stop(job_id, StopReason.IDLE_PREEMPT, "evicted", (
                    f"idle: GPUs idle for {idle_for:.0f} s while other jobs wait (project "
                    "policy: preempt)"), cause="idle"))
            elif decision.act == "stop":
                stops.append(Stop(job_id, StopReason.IDLE_STOP, "stopping", (
                    f"GPUs idle for {idle_for:.0f} s: stopped by the project's idle policy")))
        return samples, stops


def record(s: Session, samples: list[Sample], now: float) -> None:
    """Write the readings (in the caller's transaction): each job's last reading and idle
    marks, and the usage stretches accounting sums."""
    for x in samples:
        s.execute(update(JobRow).where(JobRow.id == x.job_id).values(
            gpu_util=x.util, util_simulated=x.simulated, gpu_memory_used_mib=x.memory_mib,
            idle_since=x.idle_since, idle_flagged=x.idle_flagged))
        usage.sampled(s, x.job_id, x.util, x.simulated, now)
        if x.event is not None:
            add_event(s, x.job_id, "idle", x.event, now)


def hold_back(s: Session, row: JobRow, now: float) -> None:
    """A job requeued because its GPUs were idle waits for its project's idle time before it
    may be scheduled again, so the jobs that were waiting get the GPUs."""
    queue = s.get(QueueRow, row.project)
    wait = queue.idle_after_s if queue is not None else 1800.0
    row.not_before = now + wait
    row.reason = (f"held back for {wait:g} s after its GPUs were idle (project idle policy); "
                  f"scheduled again after {time.strftime('%H:%M:%S', time.localtime(now + wait))}")
    row.reason_code = HoldCode.IDLE_HOLD
