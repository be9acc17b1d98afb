"""The control loop: sync → decide → apply → act.

One iteration (:meth:`ControlLoop.step`):
1. *sync*: poll the executor and write its workers' reports (what they free must be seen by
   this iteration's cycle), then bring the in-memory view of live jobs up to date (only jobs
   whose ``seq`` is newer than the last one seen are read);
2. *decide*, purely, on that view and the clock: placements on gone nodes
   (:func:`~fairpool.control.lost.stale`), the scheduler's plan, max runtimes
   (:func:`~fairpool.control.failures.overdue`), idle GPUs (the sampler, with
   :func:`~fairpool.control.idle.decide`), cordons whose cooldown is over
   (:meth:`~fairpool.control.breaker.NodeBreaker.due`), and admitted jobs whose displaced jobs
   have stopped;
3. *apply*: one write transaction (:mod:`fairpool.control.apply`) writes the plan and every
   effect, each change of state through :func:`fairpool.store.lifecycle.move`;
4. *act*, after the commit: stop the workers of stopping jobs, forget lost ones, start the
   workers of jobs marked starting (marked first, so a crash between the two never leaves a
   running worker the store does not know about).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairpool.auth.secretbox import SecretKeyError
from fairpool.control.history import History
from fairpool.domain import Job, JobState, Node, Queue, Resources
from fairpool.domain.states import HOLDING_VALUES, LIVE_VALUES, PENDING_VALUES, STARTED_VALUES
from fairpool.executors.base import Executor, NodeInfo, WorkerPhase, WorkerSpec, WorkerStatus
from fairpool.scheduler import Plan, Scheduler, SchedulerConfig, Snapshot
from fairpool.services.secrets import SecretEnv
from fairpool.store.convert import job_domain, node_domain, queue_domain
from fairpool.store.db import Store
from fairpool.store.lifecycle import stop_reason
from fairpool.store.models import JobRow, NodeRow, QueueRow, UserAccountRow
from fairpool.store.workers import ended

from . import failures, gates, lost
from .apply import Changes, apply, load
from .breaker import NodeBreaker
from .inventory import write_inventory
from .outcomes import Outcomes
from .sampling import UtilSampler
from .settings import LoopSettings
from .stats import LoopStats
from .workers import parse_worker_id, worker_specs

log = logging.getLogger("fairpool.control")
S = JobState


class Signal(Protocol):
    """What the loop needs of an event (threading.Event and multiprocessing.Event both fit)."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class ControlLoop:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        data_dir: Path,
        settings: LoopSettings | None = None,
        *,
        config: SchedulerConfig | None = None,
        clock: Callable[[], float] = time.time,
        wake_event: Signal | None = None,
        stop_event: Signal | None = None,
        secret_env: SecretEnv | None = None,
        stats: LoopStats | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.data_dir = data_dir
        self.settings = st = settings or LoopSettings()
        self.scheduler = Scheduler(config)
        self.clock = clock
        # threading or multiprocessing events: the API may run in another process
        self._wake: Signal = wake_event if wake_event is not None else threading.Event()
        self._stop: Signal = stop_event if stop_event is not None else threading.Event()
        self._thread: threading.Thread | None = None
        self.secret_env = secret_env  # decrypts projects' secrets for their workers
        self.stats = stats  # cycle counters for the metrics endpoint
        self.errors = 0
        self._active = False  # the last iteration changed something
        self._stop_sent: set[str] = set()  # worker ids already told to stop
        self._unapplied: list[WorkerStatus] = []  # reports polled but not yet committed
        self._live: dict[str, JobRow] = {}  # live jobs as of ``_seq`` (detached rows)
        self._domain: dict[str, Job] = {}  # the same jobs as the scheduler sees them
        self._stopping: set[str] = set()  # live jobs being stopped
        self._admitted: set[str] = set()  # live jobs placed but not started
        self._holding: set[str] = set()  # live jobs placed (admitted or started)
        self._dependents: set[str] = set()  # waiting jobs whose dependencies are unmet
        self._gates: dict[str, gates.Gate] = {}  # what the gates read of each live job
        self._seq = -1
        #: generation, nodes, queues and the pool's capacity (the gates' window) read with them
        self._inventory: tuple[int, tuple[Node, ...], tuple[Queue, ...], gates.Capacity] | None = (
            None)
        self._cordons: dict[str, float | None] = {}  # cordoned nodes → end of the cordon
        self._published: dict[str, tuple[Resources, Resources]] = {}  # fair share, allocated
        self._reasons_at = 0.0
        self._allocated_at = 0.0  # allocations were last published then
        self._allocations_pending = False  # a change of allocation waits to be published
        self._reasons_stale = False
        self._deadlines_at = 0.0
        self._synced: list[NodeInfo] | None = None  # the inventory last written
        self._forget_check_at = 0.0
        self.breaker = NodeBreaker(st.breaker_failures, st.breaker_window_s,
                                   st.breaker_cooldown_s)
        self.sampler = UtilSampler(store, executor, st.sample_every_s)
        self.history = History(store, self.scheduler.config)
        self.dependencies = gates.Dependencies()
        self.outcomes = Outcomes(self.breaker, st.retry_base_s, st.retry_cap_s, self._stop_sent)

    # -- running ------------------------------------------------------------------------------
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
        """At start: workers the store says are started but the executor does not know (they
        died with an earlier server) are reported lost, so their jobs are requeued (or end
        cancelled) instead of holding GPUs for ever."""
        with self.store.session() as s:
            rows = s.execute(select(JobRow).where(JobRow.state.in_(STARTED_VALUES))
                             ).scalars().all()
        known = self.executor.known()
        self._unapplied.extend(
            WorkerStatus(w["worker_id"], WorkerPhase.LOST, detail="unknown to the executor "
                         "after a restart")
            for r in rows for w in r.placement or ()
            if not ended(w) and w["worker_id"] not in known)

    def run(self) -> None:
        self.reconcile()
        st = self.settings
        backoff = st.idle_interval_s
        last_sync = self.clock()
        quiet = 0  # iterations in a row in which jobs ran but nothing happened
        while not self._stop.is_set():
            try:
                busy = self.step()
                backoff = st.idle_interval_s
                quiet = 0 if self._active else quiet + 1
                if self.clock() - last_sync >= st.sync_every_s:
                    self.sync_nodes()
                    last_sync = self.clock()
            except Exception:  # a bad iteration must not kill the loop: log, back off, retry
                self.errors += 1
                log.exception("control loop iteration failed")
                self._forget_view()
                busy = False
                backoff = min(backoff * 2, 10.0)
            # while jobs run and nothing changes, look less often (up to quiet_max_s): polling
            # every few ms would take a core's fifth from the jobs themselves; a submit or a
            # cancel wakes the loop at once
            interval = min(st.busy_interval_s * 2 ** min(quiet, 16), st.quiet_max_s)
            self._wake.wait(interval if busy else backoff)
            self._wake.clear()

    def _forget_view(self) -> None:
        """After a failed iteration the view may hold changes that never committed: read
        everything again."""
        self._live.clear()
        self._domain.clear()
        self._stopping.clear()
        self._admitted.clear()
        self._holding.clear()
        self._dependents.clear()
        self._gates.clear()
        self._seq = -1
        self._inventory = None
        self._published.clear()
        self.dependencies.due = True

    # -- inventory ----------------------------------------------------------------------------
    def sync_nodes(self) -> None:
        """Write the executor's inventory: new nodes, changed ones, and gone ones as not ready;
        a node gone for ``forget_after_s`` that nothing holds is deleted (on Ray, a node that
        comes back is a new node). Nothing is written when nothing changed."""
        current = self.executor.nodes()
        now = self.clock()
        if current == self._synced and now < self._forget_check_at:
            return
        forget_after_s = self.settings.forget_after_s
        self._forget_check_at = now + min(60.0, forget_after_s)
        write_inventory(self.store, current, now, forget_after_s)
        self._synced = current

    # -- one iteration ------------------------------------------------------------------------
    def step(self) -> bool:
        st = self.settings
        # sync: reports stay buffered until the transaction that writes them commits
        polled = self.executor.poll()
        if any(x.phase == WorkerPhase.LOST for x in polled):
            self.sync_nodes()  # a lost worker often means a lost node: never place on it again
        self._unapplied.extend(polled)
        statuses = self._unapplied
        if statuses:
            self._observe(statuses)
            self._unapplied = []
        snapshot = self._snapshot()
        now = self.clock()
        # decide
        todo = Changes(now=now)
        holding = [self._live[j] for j in self._holding]  # what the rules over time look at
        todo.requeue, lose = lost.stale(holding, snapshot.nodes)
        plan: Plan | None = None
        if not (todo.requeue or lose):  # else the next iteration applies the losses first
            began = time.perf_counter()
            plan = self.scheduler.cycle(snapshot)
            if not plan.reused:
                todo.plan = plan
                self._reasons_stale = True
                if self.stats is not None:
                    self.stats.cycle(time.perf_counter() - began,
                                     Counter(b.action for b in plan.binds),
                                     Counter(e.action for e in plan.evictions))
        if plan is not None and (not plan.reused or self._allocations_pending):
            todo.shares = self._changed_shares(plan, now)
        if now >= self._deadlines_at:
            self._deadlines_at = now + st.deadlines_every_s
            todo.stops += failures.overdue(holding, now)
        if self.sampler.due(now):
            waiting = any(j.pending and j.total_gpus_milli > 0 for j in self._domain.values())
            todo.samples, idle = self.sampler.collect(holding, waiting, now)
            todo.stops += idle
        todo.uncordon = self.breaker.due(self._cordons, now)
        verdicts = self.dependencies.check(self.store,
                                           [self._live[j] for j in self._dependents])
        todo.released, todo.unmet = verdicts.released, verdicts.unmet
        todo.ready = [j for j in self._admitted
                      if not any(b in self._stopping for b in self._live[j].waits_for or ())]
        if plan is not None and self._reasons_stale and (
                now - self._reasons_at >= st.reasons_every_s):
            todo.reasons = self._changed_reasons(plan)
            self._reasons_at, self._reasons_stale = now, False
        todo.reasons += verdicts.reasons
        # apply
        starting: list[JobRow] = []
        if todo:
            changed, starting = apply(self.store, todo, self.stats)
            self._refresh(changed)
        # act
        stops = [w["worker_id"] for j in self._stopping for w in self._live[j].placement or ()
                 if not ended(w) and w["worker_id"] not in self._stop_sent]
        self._unapplied.extend(WorkerStatus(x.worker_id, WorkerPhase.LOST, detail=x.detail)
                               for x in lose)
        self._act(stops, [x.worker_id for x in lose], self._specs(starting))
        self._active = bool(statuses or todo.changes or stops or lose)
        return self._active or self._busy()

    def _changed_shares(self, plan: Plan, now: float) -> list[dict[str, object]]:
        """Fair shares and allocations readers show, for the queues where either changed: a
        changed fair share at once, allocations alone at most every ``reasons_every_s`` (they
        change with every start and end; writing them each time would cost the busy loop)."""
        rows: list[dict[str, object]] = []
        zero = Resources()
        allocations_due = now - self._allocated_at >= self.settings.reasons_every_s
        for q, fair in plan.fair_shares.items():
            alloc = plan.allocated.get(q, zero)
            published = self._published.get(q)
            if not q or published == (fair, alloc):
                continue
            if published is not None and published[0] == fair and not allocations_due:
                self._allocations_pending = True  # written once due, even if nothing changes
                continue
            self._published[q] = (fair, alloc)
            rows.append({"name": q, "fair_gpu": fair.gpu, "fair_cpu": fair.cpu,
                         "fair_memory": fair.memory, "alloc_gpu": alloc.gpu,
                         "alloc_cpu": alloc.cpu, "alloc_memory": alloc.memory})
        if allocations_due:
            self._allocated_at, self._allocations_pending = now, False
        return rows

    def _changed_reasons(self, plan: Plan) -> list[dict[str, object]]:
        """Why each waiting job waits (only the reasons that changed)."""
        reasons: list[dict[str, object]] = []
        for job_id, reason in plan.pending.items():
            live = self._live.get(job_id)
            if live is None or (live.reason == reason.message and
                                live.reason_code == reason.code):
                continue
            live.reason, live.reason_code = reason.message, reason.code
            reasons.append({"id": job_id, "reason": reason.message, "reason_code": reason.code})
        return reasons

    def _busy(self) -> bool:
        return any(self._live[j].state in STARTED_VALUES for j in self._holding)

    def _snapshot(self) -> Snapshot:
        with self.store.session() as s:
            generation = self.store.generation(s)
            if self._inventory is None or self._inventory[0] != generation:
                rows = list(s.execute(select(NodeRow)).scalars())
                nodes = tuple(node_domain(r) for r in rows)
                self._cordons = {r.name: r.cordon_until for r in rows if r.cordoned}
                queues = tuple(queue_domain(r) for r in s.execute(select(QueueRow).where(
                    QueueRow.deleted_at.is_(None))).scalars())
                self._inventory = (generation, nodes, queues, gates.Capacity.of(nodes))
            if generation != self._seq:
                self._refresh(s.execute(select(JobRow).where(JobRow.seq > self._seq))
                              .scalars(), read=True)
                self._seq = max(self._seq, generation)
        _, nodes, queues, capacity = self._inventory
        now = self.clock()
        jobs, timed = gates.admissible(self._domain.values(), self._gates, now, capacity)
        past = self.history.refresh(now)
        # a held-back job joins the snapshot when its time comes, without a new generation: a
        # snapshot without it must not be the one a later cycle reuses (jobs held back by
        # dependencies or an array's cap join with a change of a job, so a new generation)
        return Snapshot(nodes, queues, tuple(jobs), now=now,
                        generation=None if timed or past else self._seq,
                        runtime_estimates=self.history.runtimes,
                        usage_gpu_s=self.history.usage_gpu_s)

    def _refresh(self, rows: Iterable[JobRow], read: bool = False) -> None:
        """Take changed rows into the in-memory view. Only rows *read* advance ``_seq``: after
        our own write, another writer's earlier generation may still be unread."""
        for row in rows:
            if read:
                self._seq = max(self._seq, row.seq)
            if row.state in LIVE_VALUES:
                self._live[row.id] = row
                self._domain[row.id] = job_domain(row)
                self._gates[row.id] = gates.Gate.of(row)
            else:
                self._live.pop(row.id, None)
                self._domain.pop(row.id, None)
                self._gates.pop(row.id, None)
                self.dependencies.due = True  # a parent may have finished
            for subset, member in (
                    (self._stopping, row.state == S.STOPPING.value),
                    (self._admitted, row.state == S.ADMITTED.value),
                    (self._holding, row.state in HOLDING_VALUES),
                    (self._dependents, bool(row.deps_waiting) and row.state in PENDING_VALUES)):
                if member and row.id in self._live:
                    subset.add(row.id)
                else:
                    subset.discard(row.id)

    # -- sync: worker reports -----------------------------------------------------------------
    def _observe(self, statuses: Iterable[WorkerStatus]) -> None:
        by_job: dict[str, list[WorkerStatus]] = {}
        for x in statuses:
            by_job.setdefault(parse_worker_id(x.worker_id)[0], []).append(x)
        now = self.clock()
        changed = []
        with self.store.writing() as s:
            seq = Store.bump(s)
            rows = load(s, by_job)
            for job_id, reports in by_job.items():
                row = rows.get(job_id)
                if row is not None:
                    self.outcomes.apply(s, row, reports, now, seq)
                    changed.append(row)
        self._refresh(changed)

    # -- act ----------------------------------------------------------------------------------
    def _specs(self, rows: list[JobRow]) -> list[WorkerSpec]:
        """Worker specs of jobs marked starting, built after the commit: choosing a rendezvous
        port touches the network, which has no place inside a transaction."""
        if not rows:
            return []
        secrets: dict[str, dict[str, str]] = {}
        undecryptable = ""
        with self.store.session() as s:
            addresses, accounts = _addresses_and_accounts(s, rows)
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

    def _act(self, stops: list[str], forget: list[str], specs: list[WorkerSpec]) -> None:
        for wid in stops:
            row = self._live.get(parse_worker_id(wid)[0])
            why = stop_reason(row) if row is not None else None
            told = why.told if why is not None else "stopped"
            self.executor.stop(wid, self.settings.grace_s, told)
            self._stop_sent.add(wid)
        for wid in forget:  # on a node that is gone: nothing to wait for
            log.warning("worker %s: its node or devices are gone", wid)
            self.executor.stop(wid, 0)
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


def _addresses_and_accounts(s: Session, rows: list[JobRow]
                            ) -> tuple[dict[str, str], dict[str, str]]:
    """Nodes' addresses, and the Unix accounts admins mapped the jobs' owners to."""
    addresses = {n.name: n.address for n in s.execute(select(NodeRow)).scalars()}
    owners = sorted({r.submitted_by for r in rows if r.submitted_by})
    accounts = {u: a for u, a in s.execute(select(
        UserAccountRow.user, UserAccountRow.account).where(
        UserAccountRow.user.in_(owners)))} if owners else {}
    return addresses, accounts
