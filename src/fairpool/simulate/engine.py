"""The discrete-event simulator: the real scheduling core on a virtual clock.

Events are job arrivals, job completions, LAS level changes and the end of minimum-runtime
protections. After the events of one instant are applied, the core runs one cycle on a snapshot
of the simulated cluster (:func:`fairpool.scheduler.schedule`, exactly as the control loop runs
it) and its plan is carried out at once by :func:`fairpool.scheduler.apply.apply_plan` (the
simulator is an executor whose workers start and stop instantly), so every job moves only along
the edges of the state table (:func:`fairpool.domain.job.moved`; a completion is
``running → succeeded``):

- a bound job starts (restarts, after an eviction) on the placement the core chose and runs at
  full speed for its remaining work;
- an evicted job stops and goes back to the queue. It keeps the work up to its last checkpoint
  (``checkpoint_s`` of run time after each start, default 30 minutes) and loses the rest: that
  GPU time is counted as lost, and it needs that much more run time later.

A job's work is its trace duration: the run time on the GPUs it asked for, without interruption.
Jobs that could never fit on the cluster, even empty (:func:`fairpool.scheduler.fit.misfit`,
the scheduler's own check, with the whole gang: more GPUs than the cluster, or a worker larger
than a node) never run and are reported as unfinished. Fair shares are the core's
(:func:`fairpool.scheduler.fair_share.fair_shares`). Cycles only run at instants where something
changed, so a quiet cluster costs nothing.
"""

from __future__ import annotations

import heapq
import math
import statistics
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from fairpool.domain import GPU_UNIT, Job, JobState, Node, Queue, Resources, WorkerRequest
from fairpool.domain.job import moved
from fairpool.domain.priority import resolve_priority_class
from fairpool.domain.queue import InQueueOrder, QueueTree
from fairpool.scheduler import Plan, Snapshot, schedule
from fairpool.scheduler import service_levels as levels
from fairpool.scheduler.apply import apply_plan
from fairpool.scheduler.fair_share import fair_shares
from fairpool.scheduler.fit import Inventory, misfit
from fairpool.scheduler.forecast import RECENT_RUNS, forecast

from .policies import Policy
from .records import JobRecord, Sample, SimResult, Trace, TraceJob

ALL = "all"  # the single queue of tenant-less policies
DEFAULT_CHECKPOINT_S = 1800.0
_ARRIVE, _FINISH, _WAKE = 0, 1, 2
_SHARES_MEMO = 4096  # demands whose reference shares are remembered


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    gpus: int
    gpus_per_node: int = 8

    def nodes(self) -> tuple[Node, ...]:
        if self.gpus <= 0 or self.gpus_per_node <= 0:
            raise ValueError("the cluster needs at least one GPU and one GPU per node")
        full, rest = divmod(self.gpus, self.gpus_per_node)
        sizes = [self.gpus_per_node] * full + ([rest] if rest else [])
        return tuple(Node.with_gpus(f"node-{i:04d}", n) for i, n in enumerate(sizes))


@dataclass(slots=True)
class _SimJob:
    trace: TraceJob
    record: JobRecord
    domain: Job
    saved_s: float = 0.0  # work done up to the last checkpoint before the current run
    run_start: float | None = None
    epoch: int = 0  # bumps on every start and stop, so stale completion events are ignored
    attained_gpu_s: float = 0.0  # service received, for LAS

    @property
    def gpus(self) -> float:
        return self.trace.gpus


class _Waiting:
    """The waiting jobs, with per-project counts of their sizes (GPUs), kept as they change so
    that deciding whether a cycle could act costs little."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.sizes: dict[str, dict[float, int]] = {}  # project -> GPUs -> jobs

    def __bool__(self) -> bool:
        return bool(self.ids)

    def add(self, job_id: str, project: str, gpus: float) -> None:
        if job_id not in self.ids:
            self.ids.add(job_id)
            sizes = self.sizes.setdefault(project, {})
            sizes[gpus] = sizes.get(gpus, 0) + 1

    def discard(self, job_id: str, project: str, gpus: float) -> None:
        if job_id in self.ids:
            self.ids.remove(job_id)
            sizes = self.sizes[project]
            sizes[gpus] -= 1
            if not sizes[gpus]:
                del sizes[gpus]
            if not sizes:
                del self.sizes[project]

    def smallest(self) -> float:
        return min((min(s) for s in self.sizes.values()), default=math.inf)

    def smallest_by_project(self) -> Iterable[tuple[str, float]]:
        return ((p, min(s)) for p, s in self.sizes.items())

    def gpus_by_project(self) -> Iterable[tuple[str, float]]:
        return ((p, sum(g * n for g, n in s.items())) for p, s in self.sizes.items())


def _request(job: TraceJob) -> tuple[WorkerRequest, int]:
    if job.gpus < 1:
        return WorkerRequest(gpu_fraction=job.gpus), 1
    per_worker = job.gpus / job.workers
    if per_worker != int(per_worker):  # uneven split: one GPU per worker
        return WorkerRequest(gpus=1), math.ceil(job.gpus)
    return WorkerRequest(gpus=int(per_worker)), job.workers


class Simulation:
    """One policy on one trace. ``run`` returns the :class:`SimResult`."""

    def __init__(self, trace: Trace, policy: Policy, cluster: ClusterSpec, *,
                 checkpoint_s: float = DEFAULT_CHECKPOINT_S, record_samples: bool = True,
                 fast: bool = True, estimate_every: int = 0) -> None:
        if checkpoint_s <= 0:
            raise ValueError("checkpoint_s must be positive")
        self.trace, self.policy, self.cluster = trace, policy, cluster
        self.checkpoint_s = checkpoint_s
        self.record_samples = record_samples
        self.nodes = cluster.nodes()
        self.inventory = Inventory.of(self.nodes)
        self.capacity = Resources(gpu=cluster.gpus * GPU_UNIT)
        self.project_tree = QueueTree.build(self._tenant_queues())
        self.queues = ((Queue(ALL, parent=None, quota=self.capacity),) if policy.single_queue
                       else tuple(self.project_tree.queues.values()))
        self.jobs: dict[str, _SimJob] = {}
        self.live: dict[str, Job] = {}  # waiting and running jobs, as the core sees them
        self.waiting = _Waiting()
        self.mixed = len({j.priority for j in trace.jobs}) > 1
        cfg = policy.config
        #: the attained-service order inside projects (the core ranks jobs by level; the
        #: simulator wakes it when a running job crosses a level or a waiting one is promoted)
        self.attained = not policy.single_queue and cfg.job_order == InQueueOrder.ATTAINED
        self.levels = policy.las_thresholds or (cfg.service_levels_gpu_s if self.attained
                                                else ())
        #: decayed GPU-seconds per project, for a policy with the time-aware fair share
        self.usage: dict[str, float] = {}
        self.usage_at = 0.0
        self.usage_rate = (math.log(2) / cfg.usage_half_life_s
                           if cfg.usage_k > 0 and not policy.single_queue else None)
        self.fast = fast
        #: replay of the start-time estimate: every this many jobs (0: none) gets one at submit
        self.estimate_every = estimate_every
        self._arrived: list[str] = []
        self._arrivals = 0
        #: the run times of each project's finished jobs (the latest), and their median: the
        #: expected run time the core gets, as the real loop reads it from history
        self.runs: dict[str, deque[float]] = {}
        self.expected: dict[str, float] = {}
        self.project_alloc: dict[str, float] = {}  # GPUs held per trace project
        self.events: list[tuple[float, int, int, str, int]] = []
        #: demand (project, milli-GPUs) → reference shares, of recent computations (a demand
        #: comes back often: preemption and LAS level changes move GPUs, not demand)
        self._shares_memo: dict[frozenset[tuple[str, int]], dict[str, float]] = {}
        self.seq = 0
        self.result = SimResult(policy=policy.name, trace=trace.name, gpus=cluster.gpus,
                                quotas=dict(trace.quotas), jobs=[])

    def _tenant_queues(self) -> list[Queue]:
        t = self.trace
        queues = [Queue(d, parent=None, quota=Resources(gpu=round(q * GPU_UNIT)))
                  for d, q in sorted(t.department_quotas.items())]
        for project, dept in sorted(t.departments.items()):
            quota = t.quotas.get(project, 0.0)
            queues.append(Queue(project, parent=dept, quota=Resources(gpu=round(quota * GPU_UNIT))))
        return queues

    def _max_runtime(self, tj: TraceJob) -> float | None:
        """What the job declares: its duration times the policy's factor (traces carry none)."""
        factor = self.policy.max_runtime_factor
        return None if factor is None else tj.duration_s * factor

    # -- events -------------------------------------------------------------------------------
    def _push(self, at: float, kind: int, job_id: str = "", epoch: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, kind, self.seq, job_id, epoch))

    def run(self) -> SimResult:
        started = time.perf_counter()
        for tj in self.trace.jobs:
            rec = JobRecord(tj.job_id, tj.project, tj.gpus, tj.submit_s, tj.duration_s)
            self.result.jobs.append(rec)
            request, workers = _request(tj)
            if misfit(self.inventory, request, workers, whole_gang=True) is not None:
                continue  # never runs: reported unfinished
            cls = resolve_priority_class(tj.priority)
            domain = Job(id=tj.job_id, project=ALL if self.policy.single_queue else tj.project,
                         request=request, workers=workers, priority=cls.value,
                         priority_class=cls.name, preemptible=cls.preemptible,
                         submit_time=tj.submit_s, max_runtime_s=self._max_runtime(tj))
            self.jobs[tj.job_id] = _SimJob(tj, rec, domain)
            self._push(tj.submit_s, _ARRIVE, tj.job_id)
        now = 0.0
        while self.events:
            now = self.events[0][0]
            changed = False
            while self.events and self.events[0][0] <= now:
                _, kind, _, job_id, epoch = heapq.heappop(self.events)
                changed |= self._event(kind, job_id, epoch, now)
            if self._arrived:
                self._estimate(now)
            if changed and self.waiting and self._may_act(now):
                self._cycle(now)
            elif changed:
                self._sample(now)
        self.result.end_s = max((r.finish_s for r in self.result.jobs
                                 if r.finish_s is not None), default=now)
        self.result.wall_s = time.perf_counter() - started
        return self.result

    def _event(self, kind: int, job_id: str, epoch: int, now: float) -> bool:
        if kind == _WAKE:  # a protection ends (no job), or a running job changes LAS level
            return not job_id or epoch == self.jobs[job_id].epoch
        job = self.jobs[job_id]
        if kind == _ARRIVE:
            self._arrivals += 1
            if self.estimate_every and self._arrivals % self.estimate_every == 1 % (
                    self.estimate_every):
                self._arrived.append(job_id)
            self.live[job_id] = job.domain
            self.waiting.add(job_id, job.trace.project, job.gpus)
            if self.policy.las_thresholds:
                self._set_las_priority(job)
            return True
        if epoch != job.epoch:  # _FINISH of a run that was stopped meanwhile
            return False
        self._stop(job, now, finished=True)
        return True

    def _las_outranks(self, now: float) -> bool:
        lowest = math.inf
        for job_id in self.live:
            job = self.jobs[job_id]
            if job.run_start is not None:
                lowest = min(lowest, self.policy.las_priority(self._attained(job, now)))
        return any(self.jobs[j].domain.priority > lowest for j in self.waiting.ids)

    def _order_outranks(self, now: float) -> bool:
        """In the attained-service order: does a waiting job outrank a running job of its own
        project (a lower service level at the same priority, or a higher priority)?"""
        lowest: dict[str, int] = {}
        for job_id in self.live:
            job = self.jobs[job_id]
            if job.run_start is not None:
                d = job.domain
                r = levels.rank(d.priority, levels.running_level(d, job.gpus, now, self.levels))
                lowest[d.project] = min(lowest.get(d.project, r), r)
        for job_id in self.waiting.ids:
            d = self.jobs[job_id].domain
            low = lowest.get(d.project)
            # (a promoted job goes first but preempts at the level of the service it has had)
            if low is not None and levels.rank(d.priority,
                                               levels.level(d.attained_gpu_s, self.levels)) > low:
                return True
        return False

    def _may_act(self, now: float) -> bool:
        """Whether a cycle could change anything; when it cannot, the events are applied and
        the core is not run (a saturated cluster would otherwise run it on every arrival).

        A cycle can only start a waiting job if the free GPUs hold the smallest one (with strict
        quotas: within its project's and department's room); moves do not create room. Beyond
        that, reclaim needs a waiting project below its fair share, and preemption a waiting
        job that outranks a running one (checked for LAS; traces with several priority classes
        always run the core).
        ``fast=False`` runs every cycle, and the tests check both give the same result."""
        cfg = self.policy.config
        if not self.fast or (cfg.preempt and self.mixed and not self.policy.las_thresholds):
            return True
        t, waiting, alloc = self.trace, self.waiting, self.project_alloc
        free = self.cluster.gpus - sum(alloc.values()) + 1e-9
        if cfg.lend_idle:
            if waiting.smallest() <= free:
                return True
            if self.policy.las_thresholds:  # one queue: preemption needs a waiting job that
                return self._las_outranks(now)  # outranks a running one
            if self.attained and self._order_outranks(now):
                return True
        else:
            dept_alloc: dict[str, float] = {}
            for p, g in alloc.items():
                dept_alloc[t.departments[p]] = dept_alloc.get(t.departments[p], 0.0) + g
            for p, smallest in waiting.smallest_by_project():
                d = t.departments[p]
                room = min(free, t.quotas.get(p, 0.0) - alloc.get(p, 0.0),
                           t.department_quotas.get(d, 0.0) - dept_alloc.get(d, 0.0))
                if smallest <= room + 1e-9:
                    return True
        if cfg.reclaim and cfg.lend_idle:
            demand = dict(alloc)
            for p, g in waiting.gpus_by_project():
                demand[p] = demand.get(p, 0.0) + g
            fair = self._reference_shares({p: g for p, g in demand.items() if g > 0})
            return any(alloc.get(p, 0.0) < fair.get(p, 0.0) - 1e-9
                       for p, _ in waiting.gpus_by_project())
        return False

    # -- the core -----------------------------------------------------------------------------
    def _cycle(self, now: float) -> None:
        if self.policy.las_thresholds:  # a running job's level follows its service
            for job_id in self.live:
                job = self.jobs[job_id]
                if job.run_start is not None:
                    self._set_las_priority(job, now)
        keys: dict[str, float] = {}
        if self.policy.config.order.value == "sjf":
            keys = {j: self.jobs[j].trace.duration_s for j in self.live}
        elif self.policy.las_thresholds:
            keys = {j: self._attained(self.jobs[j], now) for j in self.live}
        self._decay_to(now)
        snapshot = self._snapshot(now, keys)
        plan = schedule(snapshot, self.policy.config)
        self.result.cycles += 1
        if plan.changes:
            self._apply(snapshot, plan, now)
        if plan.valid_until != math.inf and plan.valid_until > now:
            self._push(plan.valid_until, _WAKE)
        self._sample(now, plan)

    def _apply(self, snapshot: Snapshot, plan: Plan, now: float) -> None:
        """Carry the plan out with :func:`apply_plan` (the jobs' states and placements), then
        keep the simulator's own books: run time, lost work, completion events. The plan is
        applied to the part of the snapshot it names, so a cycle costs what it changes."""
        named = dict.fromkeys([e.job_id for e in plan.evictions] +
                              [b.job_id for b in plan.binds])
        part = replace(snapshot, jobs=tuple(self.live[j] for j in named))
        for moved_job in apply_plan(part, plan, now).jobs:
            self.live[moved_job.id] = self.jobs[moved_job.id].domain = moved_job
        for e in plan.evictions:
            self._stop(self.jobs[e.job_id], now, finished=False)  # a move restarts below
        for bind in plan.binds:
            job_id = bind.job_id
            job = self.jobs[job_id]
            job.domain = self.live[job_id]  # as the eviction of a move may have left it
            job.run_start = now
            job.epoch += 1
            p = job.trace.project
            self._decay_to(now)
            self.project_alloc[p] = self.project_alloc.get(p, 0.0) + job.gpus
            if job.record.first_start_s is None:
                job.record.first_start_s = now
            self.waiting.discard(job_id, job.trace.project, job.gpus)
            self._push(now + job.trace.duration_s - job.saved_s, _FINISH, job_id, job.epoch)
            self._schedule_las_drop(job, now)

    def _stop(self, job: _SimJob, now: float, *, finished: bool) -> None:
        assert job.run_start is not None
        ran = now - job.run_start
        p = job.trace.project
        self._decay_to(now)
        self.project_alloc[p] -= job.gpus
        job.record.used_gpu_s += ran * job.gpus
        job.attained_gpu_s += ran * job.gpus
        job.run_start = None
        job.epoch += 1
        if finished:
            job.saved_s = job.trace.duration_s
            job.record.finish_s = now
            job.domain = moved(job.domain, JobState.SUCCEEDED, at=now)
            del self.live[job.trace.job_id]
            runs = self.runs.setdefault(job.domain.project, deque(maxlen=RECENT_RUNS))
            runs.append(job.trace.duration_s)
            self.expected[job.domain.project] = statistics.median(runs)
            return
        kept = math.floor(ran / self.checkpoint_s) * self.checkpoint_s
        job.record.evictions += 1
        job.record.lost_gpu_s += (ran - kept) * job.gpus
        job.saved_s += kept
        if self.policy.las_thresholds:
            self._set_las_priority(job)
        elif self.attained and self.policy.config.promote_after > 0 and job.gpus > 0:
            ran_s = job.domain.attained_gpu_s / job.gpus  # wake when it is promoted
            self._push(now + self.policy.config.promote_after * ran_s + 1e-6, _WAKE,
                       job.trace.job_id, job.epoch)
        self.live[job.trace.job_id] = job.domain
        self.waiting.add(job.trace.job_id, job.trace.project, job.gpus)

    # -- LAS ----------------------------------------------------------------------------------
    def _snapshot(self, now: float, keys: dict[str, float] | None = None) -> Snapshot:
        return Snapshot(self.nodes, self.queues, tuple(self.live.values()), now=now,
                        order_keys=keys or {}, usage_gpu_s=dict(self.usage),
                        runtime_estimates=dict(self.expected))

    def _estimate(self, now: float) -> None:
        """The start-time estimate of the jobs that arrived now, as fairpool explain would
        give it at submit: a forecast from the pool as it is (:mod:`fairpool.scheduler.
        forecast`)."""
        self._decay_to(now)
        got = forecast(self._snapshot(now), self.policy.config)
        for job_id in self._arrived:
            rec = self.jobs[job_id].record
            rec.estimated = True
            est = got.get(job_id)
            rec.estimated_start_s = None if est is None else est.start
        self._arrived.clear()

    def _decay_to(self, now: float) -> None:
        """Bring the projects' decayed usage (time-aware fair share) to ``now``: what it was,
        decayed, plus what each project held since, weighted as it ages. The simulator looks
        back without a window (policies that use it set ``usage_window_s=None``)."""
        if self.usage_rate is None or now <= self.usage_at:
            return
        r, d = self.usage_rate, math.exp(-self.usage_rate * (now - self.usage_at))
        for p in set(self.usage) | set(self.project_alloc):
            held = self.project_alloc.get(p, 0.0)
            self.usage[p] = self.usage.get(p, 0.0) * d + held * (1 - d) / r
        self.usage_at = now

    def _attained(self, job: _SimJob, now: float) -> float:
        running = 0.0 if job.run_start is None else (now - job.run_start) * job.gpus
        return job.attained_gpu_s + running

    def _set_las_priority(self, job: _SimJob, now: float | None = None) -> None:
        attained = job.attained_gpu_s if now is None else self._attained(job, now)
        priority = self.policy.las_priority(attained)
        if priority != job.domain.priority:
            job.domain = replace(job.domain, priority=priority)
            self.live[job.trace.job_id] = job.domain

    def _schedule_las_drop(self, job: _SimJob, now: float) -> None:
        """A running job crosses LAS thresholds: wake up at each to lower its priority (a wake
        of a run that has ended is ignored)."""
        if not self.levels or job.gpus <= 0:
            return
        if self.attained:  # it may be preempted for the order once its run has lasted this
            self._push(now + self.policy.config.order_min_run_s + 1e-6, _WAKE,
                       job.trace.job_id, job.epoch)
        for t in self.levels:  # every level it will cross while it runs
            if t > job.attained_gpu_s:
                at = now + (t - job.attained_gpu_s) / job.gpus + 1e-6
                self._push(at, _WAKE, job.trace.job_id, job.epoch)

    # -- samples ------------------------------------------------------------------------------
    def _reference_shares(self, demand: dict[str, float],
                          plan: Plan | None = None) -> dict[str, float]:
        """Each project's fair share of GPUs for this demand (GPUs per project) under the
        trace's quotas: the reference every policy is measured against, whether or not the
        policy itself uses quotas. Only projects with demand are listed. They are the core's
        own: the shares of ``plan``, a cycle on this demand, when the policy schedules on the
        trace's department → project tree (and its past usage does not bend them); else
        :func:`fair_shares` on that tree (single-queue policies have none), remembered for
        recent demands."""
        milli = {p: m for p, g in demand.items() if (m := round(g * GPU_UNIT)) > 0}
        if plan is not None and not self.policy.single_queue and self.usage_rate is None:
            return {p: plan.fair_shares[p].gpu / GPU_UNIT for p in milli}
        key = frozenset(milli.items())
        fair = self._shares_memo.get(key)
        if fair is None:
            if len(self._shares_memo) >= _SHARES_MEMO:
                self._shares_memo.clear()
            shares = fair_shares(self.project_tree, self.capacity,
                                 {p: Resources(gpu=m) for p, m in milli.items()})
            fair = self._shares_memo[key] = {p: shares[p].gpu / GPU_UNIT for p in milli}
        return dict(fair)

    def _sample(self, now: float, plan: Plan | None = None) -> None:
        if not self.record_samples:
            return
        allocated = {p: g for p, g in self.project_alloc.items() if g > 1e-9}
        demand = dict(allocated)
        for p, g in self.waiting.gpus_by_project():
            demand[p] = demand.get(p, 0.0) + g
        fair = self._reference_shares(demand, plan)
        sample = Sample(now, allocated, demand, fair, sum(allocated.values()))
        samples = self.result.samples
        if samples and samples[-1].t == now:
            samples[-1] = sample
        else:
            samples.append(sample)


def simulate(trace: Trace, policies: Iterable[Policy], cluster: ClusterSpec, *,
             checkpoint_s: float = DEFAULT_CHECKPOINT_S) -> dict[str, SimResult]:
    """Run each policy on the trace (independently, from an empty cluster)."""
    return {p.name: Simulation(trace, p, cluster, checkpoint_s=checkpoint_s).run()
            for p in policies}
