"""The control loop: observe the executor, schedule, apply the plan, then act.

One iteration (:meth:`ControlLoop.step`):
1. *observe*: poll the executor and record worker phases and exits (one transaction);
2. *decide*: bring the in-memory view of live jobs up to date (only jobs whose ``seq`` is newer
   than the last one seen are read) and run the scheduler on the snapshot (pure, no I/O);
3. *record*: write binds (admitted, or starting when nothing has to stop first), evictions (stop
   requested) and changed pending reasons (one transaction);
4. *act*, outside any transaction: stop the workers of jobs asked to stop, start the workers of
   jobs marked starting (marked first, so a crash between the two never leaves a running worker
   the store does not know about).
Every state change goes through the job state machine and writes an event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fairpool.auth.secretbox import SecretKeyError
from fairpool.domain import Job, JobState, Node, Queue, Resources
from fairpool.domain.states import PENDING_STATES, transition
from fairpool.executors.base import (
    Executor,
    NodeInfo,
    WorkerPhase,
    WorkerSpec,
    WorkerStatus,
)
from fairpool.scheduler import Plan, Scheduler, SchedulerConfig, Snapshot
from fairpool.services.jobs import add_event, requeue_unstarted
from fairpool.services.secrets import SecretEnv
from fairpool.store.convert import job_domain, node_domain, queue_domain
from fairpool.store.db import Store
from fairpool.store.models import JobRow, NodeRow, QueueRow, UserAccountRow

from . import failures
from .breaker import NodeBreaker
from .inventory import write_inventory
from .outcomes import Outcomes, nodes_text
from .sampling import UtilSampler
from .stats import LoopStats
from .workers import parse_worker_id, placement_json, worker_specs

log = logging.getLogger("fairpool.control")


class Signal(Protocol):
    """What the loop needs of an event (threading.Event and multiprocessing.Event both fit)."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...
S = JobState
LIVE = (S.QUEUED, S.REQUEUED, S.ADMITTED, S.STARTING, S.RUNNING)
LIVE_VALUES = [s.value for s in LIVE]
HOLDING = (S.ADMITTED.value, S.STARTING.value, S.RUNNING.value)
#: what a stopping worker is told (``$FAIRPOOL_STOP_FILE``), by the job's stop reason: a
#: preempted job is requeued and should checkpoint; the others end
STOP_REASONS = {"preempt": "preempted", "idle-preempt": "preempted", "cancel": "cancelled",
                "idle-stop": "cancelled", "timeout": "timeout", "failed": "failed",
                "gang-failed": "failed", "lost": "failed"}
#: the longest wait between two looks at running jobs when nothing changes (see ``run``)
QUIET_MAX_S = 0.016
#: Pending reasons are written at most this often: with thousands of waiting jobs, comparing
#: and writing them every iteration would cost more than scheduling them.
REASONS_EVERY_S = 0.5


class ControlLoop:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        data_dir: Path,
        *,
        config: SchedulerConfig | None = None,
        grace_s: float = 10.0,
        idle_interval_s: float = 0.5,
        busy_interval_s: float = 0.002,
        reasons_every_s: float = REASONS_EVERY_S,
        clock: Callable[[], float] = time.time,
        wake_event: Signal | None = None,
        stop_event: Signal | None = None,
        sync_every_s: float = 30.0,
        forget_after_s: float = 600.0,
        secret_env: SecretEnv | None = None,
        stats: LoopStats | None = None,
        sample_every_s: float = 10.0,
        retry_base_s: float = 5.0,
        retry_cap_s: float = 300.0,
        breaker: NodeBreaker | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.data_dir = data_dir
        self._fair: dict[str, Resources] = {}
        self.scheduler = Scheduler(config)
        self.grace_s = grace_s
        self.idle_interval_s = idle_interval_s
        self.busy_interval_s = busy_interval_s
        self._active = False  # the last iteration changed something
        self.clock = clock
        # threading or multiprocessing events: the API may run in another process
        self._wake: Signal = wake_event if wake_event is not None else threading.Event()
        self._stop: Signal = stop_event if stop_event is not None else threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_sent: set[str] = set()  # worker ids already told to stop
        self._unapplied: list[WorkerStatus] = []  # reports polled but not yet committed
        self._live: dict[str, JobRow] = {}  # live jobs as of ``_seq`` (detached rows)
        self._domain: dict[str, Job] = {}  # the same jobs as the scheduler sees them
        self.reasons_every_s = reasons_every_s
        self._reasons_at = 0.0
        self._reasons_stale = False
        self._stopping: set[str] = set()  # live jobs asked to stop
        self._admitted: set[str] = set()  # live jobs placed but not started
        self._seq = -1
        self._inventory: tuple[int, tuple[Node, ...], tuple[Queue, ...]] | None = None
        self.sync_every_s = sync_every_s  # how often the executor's inventory is taken
        self._synced: list[NodeInfo] | None = None  # the inventory last written
        self.forget_after_s = forget_after_s  # gone nodes are deleted after this long
        self._forget_check_at = 0.0
        self.errors = 0
        self.secret_env = secret_env  # decrypts projects' secrets for their workers
        self.stats = stats  # cycle counters for the metrics endpoint
        self.sampler = UtilSampler(store, executor, sample_every_s, stats)
        self._deadlines_at = 0.0
        self.breaker = breaker or NodeBreaker()
        self.outcomes = Outcomes(self.breaker, retry_base_s, retry_cap_s, self._stop_sent)

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

    def reconcile(self) -> None:
        """At start: workers the store says are starting or running but the executor does not
        know (they died with an earlier server) are reported lost, so their jobs are requeued
        (or end cancelled) instead of holding GPUs for ever."""
        with self.store.session() as s:
            rows = s.execute(select(JobRow).where(JobRow.state.in_(
                [S.STARTING.value, S.RUNNING.value]))).scalars().all()
        known = self.executor.known()
        self._unapplied.extend(
            WorkerStatus(w["worker_id"], WorkerPhase.LOST, detail="unknown to the executor "
                         "after a restart")
            for r in rows for w in r.placement or ()
            if w["phase"] not in ("exited", "lost") and w["worker_id"] not in known)

    def run(self) -> None:
        self.reconcile()
        backoff = self.idle_interval_s
        last_sync = self.clock()
        quiet = 0  # iterations in a row in which jobs ran but nothing happened
        while not self._stop.is_set():
            try:
                busy = self.step()
                backoff = self.idle_interval_s
                quiet = 0 if self._active else quiet + 1
                if self.clock() - last_sync >= self.sync_every_s:
                    self.sync_nodes()
                    last_sync = self.clock()
            except Exception:  # a bad iteration must not kill the loop: log, back off, retry
                self.errors += 1
                log.exception("control loop iteration failed")
                busy = False
                backoff = min(backoff * 2, 10.0)
            # while jobs run and nothing changes, look less often (up to QUIET_MAX_S): polling
            # every few ms would take a core's fifth from the jobs themselves; a submit or a
            # cancel wakes the loop at once
            interval = min(self.busy_interval_s * 2 ** min(quiet, 16), QUIET_MAX_S)
            self._wake.wait(interval if busy else backoff)
            self._wake.clear()

    # -- inventory ----------------------------------------------------------------------------
    def sync_nodes(self) -> None:
        """Write the executor's inventory: new nodes, changed ones, and gone ones as not ready;
        a node gone for ``forget_after_s`` that nothing holds is deleted (on Ray, a node that
        comes back is a new node). Nothing is written when nothing changed."""
        current = self.executor.nodes()
        now = self.clock()
        if current == self._synced and now < self._forget_check_at:
            return
        self._forget_check_at = now + min(60.0, self.forget_after_s)
        write_inventory(self.store, current, now, self.forget_after_s)
        self._synced = current

    # -- one iteration ------------------------------------------------------------------------
    def step(self) -> bool:
        # reports stay buffered until the transaction that applies them commits
        polled = self.executor.poll()
        if any(st.phase == WorkerPhase.LOST for st in polled):
            self.sync_nodes()  # a lost worker often means a lost node: never place on it again
        self._unapplied.extend(polled)
        statuses = self._unapplied
        if statuses:
            self._observe(statuses)
            self._unapplied = []
        snapshot = self._snapshot()
        if self._drop_stale(snapshot):
            return True  # the next iteration applies the losses, then schedules
        began = time.perf_counter()
        plan = self.scheduler.cycle(snapshot)
        starts: list[WorkerSpec] = []
        if not plan.reused:
            if self.stats is not None:
                self.stats.cycle(time.perf_counter() - began,
                                 Counter(b.action for b in plan.binds),
                                 Counter(e.action for e in plan.evictions))
            if plan.fair_shares != self._fair:
                self._publish(plan.fair_shares)
            starts = self._record(plan)
            self._reasons_stale = True
        if self._reasons_stale and self.clock() - self._reasons_at >= self.reasons_every_s:
            self._write_reasons(plan)
            self._reasons_at, self._reasons_stale = self.clock(), False
        now = self.clock()
        if now >= self._deadlines_at:  # max runtimes, checked every second
            self._deadlines_at = now + 1.0
            late = failures.overdue(self._live.values(), now)
            if late:
                self._refresh(failures.stop_overdue(self.store, late, now))
        self.breaker.release(self.store, now)
        if self.sampler.due(now):
            waiting = any(j.state in PENDING_STATES and j.total_gpus_milli > 0
                          for j in self._domain.values())
            self._refresh(self.sampler.sample(list(self._live.values()), waiting, now))
        stops, ready = self._pending_effects()
        starts += self._mark_starting(ready)
        self._act(stops, starts)
        self._active = bool(statuses or plan.changes or stops or starts)
        return self._active or self._busy()

    def _drop_stale(self, snapshot: Snapshot) -> bool:
        """Jobs placed on nodes or devices the inventory no longer has (a node removed, fewer
        GPUs after a restart) are reported lost now; the scheduler would reject them."""
        devices = {n.name: {d.index for d in n.devices} for n in snapshot.nodes}

        def gone(w: dict[str, Any]) -> bool:
            return w["node"] not in devices or not set(w["devices"]) <= devices[w["node"]]

        admitted = [r.id for r in self._live.values() if r.state == S.ADMITTED.value
                    and any(gone(w) for w in r.placement or ())]
        if admitted:  # never started: back to the queue at once
            self._requeue_admitted(admitted, "its node or devices are gone")
        lost = [
            WorkerStatus(w["worker_id"], WorkerPhase.LOST, detail=f"node {w['node']} or its "
                         f"devices {w['devices']} are gone")
            for r in self._live.values() if r.state in (S.STARTING.value, S.RUNNING.value)
            for w in r.placement or ()
            if w["phase"] not in ("exited", "lost") and gone(w)
        ]
        for st in lost:
            log.warning("worker %s: %s", st.worker_id, st.detail)
            self.executor.stop(st.worker_id, 0)
        self._unapplied.extend(lost)
        return bool(lost or admitted)

    def _requeue_admitted(self, job_ids: list[str], why: str) -> None:
        now = self.clock()
        changed = []
        with self.store.writing() as s:
            seq = Store.bump(s)
            for row in _load(s, job_ids).values():
                if row.state != S.ADMITTED.value:
                    continue
                requeue_unstarted(row)
                row.admitted_at = None
                row.seq = seq
                add_event(s, row.id, "requeued", f"placed but not started: {why}", now)
                changed.append(row)
        self._refresh(changed)

    def _publish(self, shares: dict[str, Resources]) -> None:
        """Store the fair shares readers show (only those that changed)."""
        changed = [{"name": q, "fair_gpu": r.gpu, "fair_cpu": r.cpu, "fair_memory": r.memory}
                   for q, r in shares.items() if q and self._fair.get(q) != r]
        if changed:
            with self.store.writing() as s:
                s.execute(update(QueueRow), changed)
        self._fair = dict(shares)

    def _busy(self) -> bool:
        return any(r.state in (S.STARTING.value, S.RUNNING.value) for r in self._live.values())

    def _snapshot(self) -> Snapshot:
        with self.store.session() as s:
            generation = self.store.generation(s)
            if self._inventory is None or self._inventory[0] != generation:
                nodes = tuple(node_domain(r) for r in s.execute(select(NodeRow)).scalars())
                queues = tuple(queue_domain(r) for r in s.execute(select(QueueRow)).scalars())
                self._inventory = (generation, nodes, queues)
            if generation != self._seq:
                self._refresh(s.execute(select(JobRow).where(JobRow.seq > self._seq))
                              .scalars(), read=True)
                self._seq = max(self._seq, generation)
        _, nodes, queues = self._inventory
        now = self.clock()
        jobs = tuple(j for j in self._domain.values()
                     if not (j.pending and (self._live[j.id].not_before or 0) > now))
        # a held-back job joins the snapshot when its time comes, without a new generation: a
        # snapshot without all pending jobs must not be the one a later cycle reuses
        held = len(jobs) != len(self._domain)
        return Snapshot(nodes, queues, jobs, now=now,
                        generation=None if held else self._seq)

    def _refresh(self, rows: Iterable[JobRow], read: bool = False) -> None:
        """Take changed rows into the in-memory view. Only rows *read* advance ``_seq``: after
        our own write, another writer's earlier generation may still be unread."""
        for row in rows:
            if read:
                self._seq = max(self._seq, row.seq)
            if row.state in LIVE_VALUES:
                self._live[row.id] = row
                self._domain[row.id] = job_domain(row)
            else:
                self._live.pop(row.id, None)
                self._domain.pop(row.id, None)
            for subset, member in ((self._stopping, row.stop_reason is not None),
                                   (self._admitted, row.state == S.ADMITTED.value)):
                if member and row.id in self._live:
                    subset.add(row.id)
                else:
                    subset.discard(row.id)

    # -- observe ------------------------------------------------------------------------------
    def _observe(self, statuses: Iterable[WorkerStatus]) -> None:
        by_job: dict[str, list[WorkerStatus]] = {}
        for st in statuses:
            by_job.setdefault(parse_worker_id(st.worker_id)[0], []).append(st)
        now = self.clock()
        changed = []
        with self.store.writing() as s:
            seq = Store.bump(s)
            rows = _load(s, by_job)
            for job_id, reports in by_job.items():
                row = rows.get(job_id)
                if row is not None:
                    self.outcomes.apply(s, row, reports, now)
                    row.seq = seq
                    changed.append(row)
        self._refresh(changed)

    # -- record -------------------------------------------------------------------------------
    def _record(self, plan: Plan) -> list[WorkerSpec]:
        """Write the plan; returns the workers to start (jobs bound with nothing to wait for)."""
        evicted = {e.job_id for e in plan.evictions}
        now = self.clock()
        changed: list[JobRow] = []
        with self.store.writing() as s:
            seq = Store.bump(s) if plan.changes else 0
            rows = _load(s, [e.job_id for e in plan.evictions] + [b.job_id for b in plan.binds])
            for e in plan.evictions:
                row = rows.get(e.job_id)
                if row is None or row.stop_reason is not None or row.state not in LIVE_VALUES:
                    continue
                state = S(row.state)
                add_event(s, row.id, "evicted", f"{e.action}: {e.reason}", now)
                if state == S.ADMITTED:  # never started: back to the queue at once
                    requeue_unstarted(row)
                else:
                    row.stop_reason = "preempt"
                row.seq = seq
                changed.append(row)
            starting: list[JobRow] = []
            for b in plan.binds:
                if b.job_id in evicted:  # a move: it is requeued and placed again later
                    continue
                row = rows.get(b.job_id)
                if row is None or row.state not in (S.QUEUED.value, S.REQUEUED.value):
                    continue
                row.state = transition(S(row.state), S.ADMITTED).value
                row.placement = placement_json(row, b)
                row.waits_for = list(b.waits_for) or None
                row.admitted_at = now
                row.reason = row.reason_code = None
                row.seq = seq
                where = nodes_text(row.placement)
                add_event(s, row.id, "admitted", f"{b.action}: placed on {where}"
                          + (f"; waits for {', '.join(b.waits_for)} to stop"
                             if b.waits_for else ""), now)
                if not b.waits_for:
                    self._start_row(s, row, now)
                    starting.append(row)
                changed.append(row)
        self._refresh(changed)
        return self._specs(starting)

    def _write_reasons(self, plan: Plan) -> None:
        """Store why each waiting job waits (only the reasons that changed)."""
        reasons = []
        for job_id, reason in plan.pending.items():
            live = self._live.get(job_id)
            if live is None or (live.reason == reason.message and
                                live.reason_code == reason.code):
                continue
            live.reason, live.reason_code = reason.message, reason.code
            reasons.append({"id": job_id, "reason": reason.message, "reason_code": reason.code})
        if reasons:
            with self.store.writing() as s:  # one bulk UPDATE by primary key
                s.execute(update(JobRow), reasons)

    def _start_row(self, s: Session, row: JobRow, now: float) -> None:
        """Mark an admitted job starting (in the caller's transaction)."""
        row.state = transition(S(row.state), S.STARTING).value
        row.placement = [dict(w, phase="starting") for w in row.placement or ()]
        row.waits_for = None
        add_event(s, row.id, "starting", f"starting attempt {row.attempt}", now)

    def _specs(self, rows: list[JobRow]) -> list[WorkerSpec]:
        """Worker specs of jobs marked starting, built after the commit: choosing a rendezvous
        port touches the network, which has no place inside a transaction."""
        if not rows:
            return []
        secrets: dict[str, dict[str, str]] = {}
        undecryptable = ""
        with self.store.session() as s:
            addresses = {n.name: n.address for n in s.execute(select(NodeRow)).scalars()}
            owners = sorted({r.submitted_by for r in rows if r.submitted_by})
            accounts = {u: a for u, a in s.execute(select(
                UserAccountRow.user, UserAccountRow.account).where(
                UserAccountRow.user.in_(owners)))} if owners else {}
            if self.secret_env is not None:
                try:
                    secrets = self.secret_env.for_projects(s, (r.project for r in rows))
                except SecretKeyError as exc:
                    undecryptable = str(exc)
        specs: list[WorkerSpec] = []
        for row in rows:
            try:
                if undecryptable:
                    raise RuntimeError(undecryptable)
                specs += worker_specs(row, addresses, self.data_dir,
                                      self.executor.rendezvous_port, secrets.get(row.project),
                                      accounts.get(row.submitted_by or ""))
            except Exception as exc:  # e.g. rank 0's node left: requeue the job
                log.warning("job %s: cannot start: %s", row.id, exc)
                self._unapplied.extend(
                    WorkerStatus(w["worker_id"], WorkerPhase.LOST, detail=str(exc)
                                 if undecryptable else
                                 f"no rendezvous port on node {w['node']}: {exc}")
                    for w in row.placement or ())
        return specs

    # -- act ----------------------------------------------------------------------------------
    def _pending_effects(self) -> tuple[list[str], list[str]]:
        """Workers to stop, and admitted jobs whose displaced jobs have all stopped."""
        live = self._live
        stops = [w["worker_id"] for j in self._stopping for w in live[j].placement or ()
                 if w["phase"] not in ("exited", "lost") and w["worker_id"] not in self._stop_sent]
        # a displaced job blocks only while its workers are being stopped: once stopped it may
        # be placed again elsewhere, and that must not hold up the job that displaced it
        ready = [j for j in self._admitted
                 if not any(b in self._stopping for b in live[j].waits_for or ())]
        return stops, ready

    def _mark_starting(self, ready: list[str]) -> list[WorkerSpec]:
        if not ready:
            return []
        now = self.clock()
        changed = []
        with self.store.writing() as s:
            seq = Store.bump(s)
            rows = _load(s, ready)
            for job_id in ready:
                row = rows.get(job_id)
                if row is None or row.state != S.ADMITTED.value:
                    continue
                self._start_row(s, row, now)
                row.seq = seq
                changed.append(row)
        self._refresh(changed)
        return self._specs(changed)

    def _act(self, stops: list[str], specs: list[WorkerSpec]) -> None:
        for wid in stops:
            row = self._live.get(parse_worker_id(wid)[0])
            reason = STOP_REASONS.get(row.stop_reason or "", "stopped") if row else "stopped"
            self.executor.stop(wid, self.grace_s, reason)
            self._stop_sent.add(wid)
        if specs:
            (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        for spec in specs:
            try:
                self.executor.start(spec)
            except Exception as exc:  # the worker never ran: report it so the job ends
                log.exception("starting worker %s failed", spec.worker_id)
                self._unapplied.extend([
                    WorkerStatus(spec.worker_id, WorkerPhase.RUNNING),
                    WorkerStatus(spec.worker_id, WorkerPhase.EXITED, 126, f"start failed: {exc}"),
                ])


def _load(s: Session, ids: Iterable[str]) -> dict[str, JobRow]:
    """Rows by id in one query (one at a time, each lookup would flush the changes so far)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    return {r.id: r for r in s.execute(select(JobRow).where(JobRow.id.in_(wanted))).scalars()}
