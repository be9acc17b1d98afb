"""The control loop: observe the executor, schedule, apply the plan, then act.

One iteration (:meth:`ControlLoop.step`):
1. *observe*: poll the executor and record worker phases and exits (one transaction);
2. *decide*: build a snapshot from the store and run the scheduler (pure, no I/O);
3. *record*: write binds (admitted), evictions (stop requested) and changed pending reasons
   (one transaction);
4. *act*, outside any transaction: stop the workers of jobs asked to stop, start the workers of
   admitted jobs whose displaced jobs have stopped (marked starting first, so a crash between the
   two never leaves a running worker the store does not know).
Every state change goes through the job state machine and writes an event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fairpool.domain import Job, JobState
from fairpool.domain.states import transition
from fairpool.executors.base import Executor, WorkerPhase, WorkerSpec, WorkerStatus
from fairpool.scheduler import Plan, Scheduler, SchedulerConfig, Snapshot
from fairpool.services.jobs import add_event
from fairpool.services.status import StatusBoard
from fairpool.store.convert import job_domain, node_domain, queue_domain
from fairpool.store.db import Store
from fairpool.store.models import JobRow, NodeRow, QueueRow

from .workers import parse_worker_id, placement_json, worker_specs

log = logging.getLogger("fairpool.control")
S = JobState
LIVE = (S.QUEUED, S.REQUEUED, S.ADMITTED, S.STARTING, S.RUNNING)
LIVE_VALUES = [s.value for s in LIVE]


class ControlLoop:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        data_dir: Path,
        *,
        board: StatusBoard | None = None,
        config: SchedulerConfig | None = None,
        grace_s: float = 10.0,
        idle_interval_s: float = 0.5,
        busy_interval_s: float = 0.01,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.executor = executor
        self.data_dir = data_dir
        self.board = board or StatusBoard()
        self.scheduler = Scheduler(config)
        self.grace_s = grace_s
        self.idle_interval_s = idle_interval_s
        self.busy_interval_s = busy_interval_s
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_sent: set[str] = set()  # worker ids already told to stop
        self._cache: dict[str, tuple[int, Job]] = {}  # job id → (version, domain job)
        self.errors = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.sync_nodes()
        self._thread = threading.Thread(target=self.run, name="fairpool-control", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        backoff = self.idle_interval_s
        last_sync = self.clock()
        while not self._stop.is_set():
            try:
                busy = self.step()
                backoff = self.idle_interval_s
                if self.clock() - last_sync > 30:
                    self.sync_nodes()
                    last_sync = self.clock()
            except Exception:  # a bad iteration must not kill the loop: log, back off, retry
                self.errors += 1
                log.exception("control loop iteration failed")
                busy = False
                backoff = min(backoff * 2, 10.0)
            self._wake.wait(self.busy_interval_s if busy else backoff)
            self._wake.clear()

    # -- inventory ----------------------------------------------------------------------------
    def sync_nodes(self) -> None:
        infos = {n.name: n for n in self.executor.nodes()}
        now = self.clock()
        with self.store.session() as s, s.begin():
            changed = False
            rows = {r.name: r for r in s.execute(select(NodeRow)).scalars()}
            for name, info in infos.items():
                devices = [{"index": d.index, "memory_mib": d.memory_mib, "model": d.model,
                            "uuid": d.uuid} for d in info.devices]
                row = rows.get(name)
                if row is None:
                    row = NodeRow(name=name, updated_at=now, cordoned=False)
                    s.add(row)
                values: dict[str, Any] = {
                    "pool": info.pool, "labels": dict(info.labels), "devices": devices,
                    "cpu": info.cpu, "memory": info.memory, "simulated": info.simulated,
                    "address": info.address, "ready": True,
                }
                for key, value in values.items():
                    if getattr(row, key, None) != value:
                        setattr(row, key, value)
                        changed = True
                row.updated_at = now
            for name, row in rows.items():
                if name not in infos and row.ready:
                    row.ready = False
                    changed = True
            if changed:
                Store.bump(s)

    # -- one iteration ------------------------------------------------------------------------
    def step(self) -> bool:
        statuses = self.executor.poll()
        if statuses:
            self._observe(statuses)
        snapshot, rows = self._snapshot()
        plan = self.scheduler.cycle(snapshot)
        if not plan.reused:
            self.board.publish(plan.fair_shares)
            self._record(plan, rows)
        stops, starts = self._pending_effects()
        self._act(stops, starts)
        return bool(statuses or plan.changes or stops or starts or self._active(rows))

    @staticmethod
    def _active(rows: dict[str, JobRow]) -> bool:
        return any(r.state in (S.STARTING.value, S.RUNNING.value) for r in rows.values())

    def _snapshot(self) -> tuple[Snapshot, dict[str, JobRow]]:
        with self.store.session() as s:
            generation = self.store.generation(s)
            queues = tuple(queue_domain(r) for r in s.execute(select(QueueRow)).scalars())
            nodes = tuple(node_domain(r) for r in s.execute(select(NodeRow)).scalars())
            rows = {r.id: r for r in s.execute(
                select(JobRow).where(JobRow.state.in_(LIVE_VALUES))).scalars()}
        jobs = []
        cache = self._cache
        for row in rows.values():
            hit = cache.get(row.id)
            if hit is None or hit[0] != row.version:
                hit = cache[row.id] = (row.version, job_domain(row))
            jobs.append(hit[1])
        if len(cache) > 2 * len(rows) + 1000:
            self._cache = {k: v for k, v in cache.items() if k in rows}
        return Snapshot(nodes, queues, tuple(jobs), now=self.clock(),
                        generation=generation), rows

    # -- observe ------------------------------------------------------------------------------
    def _observe(self, statuses: Iterable[WorkerStatus]) -> None:
        by_job: dict[str, list[WorkerStatus]] = {}
        for st in statuses:
            by_job.setdefault(parse_worker_id(st.worker_id)[0], []).append(st)
        now = self.clock()
        with self.store.session() as s, s.begin():
            for job_id, reports in by_job.items():
                row = s.get(JobRow, job_id)
                if row is not None:
                    self._apply_reports(s, row, reports, now)
            Store.bump(s)

    def _apply_reports(self, s: Session, row: JobRow, reports: list[WorkerStatus],
                       now: float) -> None:
        workers = [dict(w) for w in row.placement or ()]
        by_id = {w["worker_id"]: w for w in workers}
        started = False
        for st in reports:
            w = by_id.get(st.worker_id)
            if w is None:  # a worker of an earlier attempt
                continue
            if st.phase == WorkerPhase.RUNNING:
                w["phase"] = "running"
                started = True
            elif st.phase == WorkerPhase.EXITED:
                w["phase"], w["exit_code"] = "exited", st.exit_code
                if st.exit_code != 0 and row.stop_reason is None:
                    row.stop_reason = "gang-failed" if row.workers > 1 else "failed"
                    row.exit_code = st.exit_code  # the first failure is the one to report
                    add_event(s, row.id, "failed", f"rank {w['rank']} exited with code "
                              f"{st.exit_code}" + ("; stopping the other ranks"
                                                   if row.workers > 1 else ""), now)
            else:
                w["phase"] = "lost"
                if row.stop_reason is None:
                    row.stop_reason = "lost"
                    add_event(s, row.id, "lost", f"rank {w['rank']} was lost: {st.detail}", now)
        row.placement = workers
        row.version += 1
        state = S(row.state)
        if state == S.STARTING and started:
            row.state = transition(state, S.RUNNING).value
            row.started_at = now
            add_event(s, row.id, "running", f"running on {_nodes(workers)}", now)
        if all(w["phase"] in ("exited", "lost") for w in workers):
            self._finish(s, row, workers, now)

    def _finish(self, s: Session, row: JobRow, workers: list[dict[str, Any]], now: float
                ) -> None:
        state = S(row.state)
        reason = row.stop_reason
        codes = [w["exit_code"] for w in workers if w["phase"] == "exited"]
        self._stop_sent.difference_update(w["worker_id"] for w in workers)
        if reason == "cancel":
            row.state = transition(state, S.CANCELLED).value
            add_event(s, row.id, "cancelled", "cancelled; all workers stopped", now)
        elif reason in ("preempt", "lost"):
            mid = S.PREEMPTED if reason == "preempt" else S.LOST
            transition(transition(state, mid), S.REQUEUED)
            row.state = S.REQUEUED.value
            row.attempt += 1
            row.placement = None
            row.started_at = None
            row.admitted_at = None
            row.stop_reason = None
            add_event(s, row.id, "requeued", f"{mid.value}; requeued as attempt {row.attempt}",
                      now)
            return
        elif any(c != 0 for c in codes) or reason in ("failed", "gang-failed"):
            row.state = transition(state, S.FAILED).value
            if row.exit_code is None:
                row.exit_code = next((c for c in codes if c != 0), None)
            add_event(s, row.id, "finished", f"failed with exit code {row.exit_code}", now)
        else:
            row.state = transition(state, S.SUCCEEDED).value
            row.exit_code = 0
            add_event(s, row.id, "finished", "succeeded", now)
        row.finished_at = now
        row.stop_reason = None

    # -- record -------------------------------------------------------------------------------
    def _record(self, plan: Plan, rows: dict[str, JobRow]) -> None:
        evicted = {e.job_id: e for e in plan.evictions}
        now = self.clock()
        with self.store.session() as s, s.begin():
            changed = False
            for e in plan.evictions:
                row = s.get(JobRow, e.job_id)
                if row is None or row.stop_reason is not None:
                    continue
                state = S(row.state)
                add_event(s, row.id, "evicted", f"{e.action}: {e.reason}", now)
                if state == S.ADMITTED:  # never started: back to the queue at once
                    transition(transition(state, S.PREEMPTED), S.REQUEUED)
                    row.state, row.placement, row.waits_for = S.REQUEUED.value, None, None
                else:
                    row.stop_reason = "preempt"
                row.version += 1
                changed = True
            for b in plan.binds:
                if b.job_id in evicted:  # a move: it is requeued and placed again later
                    continue
                row = s.get(JobRow, b.job_id)
                if row is None or row.state not in (S.QUEUED.value, S.REQUEUED.value):
                    continue
                row.state = transition(S(row.state), S.ADMITTED).value
                row.placement = placement_json(row, b)
                row.waits_for = list(b.waits_for) or None
                row.admitted_at = now
                row.reason = row.reason_code = None
                row.version += 1
                add_event(s, row.id, "admitted", f"{b.action}: placed on {_nodes(row.placement)}"
                          + (f"; waits for {', '.join(b.waits_for)} to stop"
                             if b.waits_for else ""), now)
                changed = True
            for job_id, reason in plan.pending.items():
                row = rows.get(job_id)
                if row is None or (row.reason == reason.message and
                                   row.reason_code == reason.code):
                    continue
                s.execute(update(JobRow).where(JobRow.id == job_id).values(
                    reason=reason.message, reason_code=reason.code))
            if changed:
                Store.bump(s)

    # -- act ----------------------------------------------------------------------------------
    def _pending_effects(self) -> tuple[list[str], list[JobRow]]:
        """Workers to stop, and admitted jobs that may start now."""
        with self.store.session() as s:
            stopping = s.execute(select(JobRow).where(JobRow.stop_reason.is_not(None))).scalars()
            stops = [w["worker_id"] for r in stopping for w in r.placement or ()
                     if w["phase"] not in ("exited", "lost")
                     and w["worker_id"] not in self._stop_sent]
            admitted = s.execute(select(JobRow).where(JobRow.state == S.ADMITTED.value)
                                 ).scalars().all()
            blockers = {b for r in admitted for b in r.waits_for or ()}
            still = set()
            if blockers:
                still = set(s.execute(select(JobRow.id).where(
                    JobRow.id.in_(blockers), JobRow.state.in_(
                        [S.ADMITTED.value, S.STARTING.value, S.RUNNING.value]))).scalars())
            ready = [r for r in admitted if not set(r.waits_for or ()) & still]
        return stops, ready

    def _act(self, stops: list[str], ready: list[JobRow]) -> None:
        for wid in stops:
            self.executor.stop(wid, self.grace_s)
            self._stop_sent.add(wid)
        if not ready:
            return
        with self.store.session() as s:
            addresses = {n.name: n.address for n in s.execute(select(NodeRow)).scalars()}
        specs: list[WorkerSpec] = []
        now = self.clock()
        with self.store.session() as s, s.begin():
            for r in ready:
                row = s.get(JobRow, r.id)
                if row is None or row.state != S.ADMITTED.value:
                    continue
                row.state = transition(S.ADMITTED, S.STARTING).value
                row.placement = [dict(w, phase="starting") for w in row.placement or ()]
                row.waits_for = None
                row.version += 1
                specs.extend(worker_specs(row, addresses, self.data_dir))
                add_event(s, row.id, "starting", f"starting attempt {row.attempt}", now)
            Store.bump(s)
        for spec in specs:
            Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
            self.executor.start(spec)


def _nodes(workers: Iterable[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for w in workers:
        counts[w["node"]] = counts.get(w["node"], 0) + 1
    return ", ".join(f"{n} ({c} worker{'s' if c > 1 else ''})" for n, c in sorted(counts.items()))
