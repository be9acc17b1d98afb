"""The discrete-event simulator: the real scheduling core on a virtual clock.

Events are job arrivals, job completions, LAS level changes and the end of minimum-runtime
protections. After the events of one instant are applied, the core runs one cycle on a snapshot
of the simulated cluster (:func:`fairpool.scheduler.schedule`, exactly as the control loop runs
it) and its plan is carried out at once:

- a bound job starts (restarts, after an eviction) on the placement the core chose and runs at
  full speed for its remaining work;
- an evicted job stops and goes back to the queue. It keeps the work up to its last checkpoint
  (``checkpoint_s`` of run time after each start, default 30 minutes) and loses the rest: that
  GPU time is counted as lost, and it needs that much more run time later.

A job's work is its trace duration: the run time on the GPUs it asked for, without interruption.
Jobs that ask for more GPUs than the whole cluster (or than a node, for fractions) never run and
are reported as unfinished. Cycles only run at instants where something changed, so a quiet
cluster costs nothing.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from fairpool.domain import GPU_UNIT, Job, JobState, Node, Queue, Resources, WorkerRequest
from fairpool.domain.priority import resolve_priority_class
from fairpool.domain.queue import ROOT, QueueTree
from fairpool.scheduler import Plan, Snapshot, schedule
from fairpool.scheduler.fair_share import Claimant, divide

from .policies import Policy
from .records import JobRecord, Sample, SimResult, Trace, TraceJob

ALL = "all"  # the single queue of tenant-less policies
DEFAULT_CHECKPOINT_S = 1800.0
_ARRIVE, _FINISH, _WAKE = 0, 1, 2


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


def _fits(job: TraceJob, node_sizes: list[int]) -> bool:
    """Whether the job's workers fit on nodes of these sizes at all (when they are empty)."""
    request, workers = _request(job)
    if request.gpus == 0:
        return job.gpus <= 1 and any(node_sizes)
    return sum(size // request.gpus for size in node_sizes) >= workers


class Simulation:
    """One policy on one trace. ``run`` returns the :class:`SimResult`."""

    def __init__(self, trace: Trace, policy: Policy, cluster: ClusterSpec, *,
                 checkpoint_s: float = DEFAULT_CHECKPOINT_S, record_samples: bool = True,
                 fast: bool = True) -> None:
        if checkpoint_s <= 0:
            raise ValueError("checkpoint_s must be positive")
        self.trace, self.policy, self.cluster = trace, policy, cluster
        self.checkpoint_s = checkpoint_s
        self.record_samples = record_samples
        self.nodes = cluster.nodes()
        self.capacity = Resources(gpu=cluster.gpus * GPU_UNIT)
        self.project_tree = QueueTree.build(self._tenant_queues())
        self.queues = ((Queue(ALL, parent=None, quota=self.capacity),) if policy.single_queue
                       else tuple(self.project_tree.queues.values()))
        self.jobs: dict[str, _SimJob] = {}
        self.live: dict[str, Job] = {}  # waiting and running jobs, as the core sees them
        self.waiting = _Waiting()
        self.mixed = len({j.priority for j in trace.jobs}) > 1
        self.fast = fast
        self.project_alloc: dict[str, float] = {}  # GPUs held per trace project
        self.events: list[tuple[float, int, int, str, int]] = []
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

    # -- events -------------------------------------------------------------------------------
    def _push(self, at: float, kind: int, job_id: str = "", epoch: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, kind, self.seq, job_id, epoch))

    def run(self) -> SimResult:
        started = time.perf_counter()
        sizes = [len(n.devices) for n in self.nodes]
        for tj in self.trace.jobs:
            rec = JobRecord(tj.job_id, tj.project, tj.gpus, tj.submit_s, tj.duration_s)
            self.result.jobs.append(rec)
            if not _fits(tj, sizes):
                continue  # never runs: reported unfinished
            request, workers = _request(tj)
            cls = resolve_priority_class(tj.priority)
            domain = Job(id=tj.job_id, project=ALL if self.policy.single_queue else tj.project,
                         request=request, workers=workers, priority=cls.value,
                         priority_class=cls.name, preemptible=cls.preemptible,
                         submit_time=tj.submit_s)
            self.jobs[tj.job_id] = _SimJob(tj, rec, domain)
            self._push(tj.submit_s, _ARRIVE, tj.job_id)
        now = 0.0
        while self.events:
            now = self.events[0][0]
            changed = False
            while self.events and self.events[0][0] <= now:
                _, kind, _, job_id, epoch = heapq.heappop(self.events)
                changed |= self._event(kind, job_id, epoch, now)
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
        snapshot = Snapshot(self.nodes, self.queues, tuple(self.live.values()), now=now,
                            order_keys=keys)
        plan = schedule(snapshot, self.policy.config)
        self.result.cycles += 1
        self._apply(plan, now)
        if plan.valid_until != math.inf and plan.valid_until > now:
            self._push(plan.valid_until, _WAKE)
        self._sample(now)

    def _apply(self, plan: Plan, now: float) -> None:
        binds = {b.job_id: b for b in plan.binds}
        for e in plan.evictions:
            job = self.jobs[e.job_id]
            if job.run_start is None:
                continue
            self._stop(job, now, finished=False)  # a move (consolidation) restarts below
        for job_id, bind in binds.items():
            job = self.jobs[job_id]
            job.run_start = now
            job.epoch += 1
            p = job.trace.project
            self.project_alloc[p] = self.project_alloc.get(p, 0.0) + job.gpus
            if job.record.first_start_s is None:
                job.record.first_start_s = now
            job.domain = replace(job.domain, state=JobState.RUNNING,
                                 placements=bind.placements, started_at=now)
            self.live[job_id] = job.domain
            self.waiting.discard(job_id, job.trace.project, job.gpus)
            self._push(now + job.trace.duration_s - job.saved_s, _FINISH, job_id, job.epoch)
            self._schedule_las_drop(job, now)

    def _stop(self, job: _SimJob, now: float, *, finished: bool) -> None:
        assert job.run_start is not None
        ran = now - job.run_start
        p = job.trace.project
        self.project_alloc[p] -= job.gpus
        job.record.used_gpu_s += ran * job.gpus
        job.attained_gpu_s += ran * job.gpus
        job.run_start = None
        job.epoch += 1
        if finished:
            job.saved_s = job.trace.duration_s
            job.record.finish_s = now
            del self.live[job.trace.job_id]
            return
        kept = math.floor(ran / self.checkpoint_s) * self.checkpoint_s
        job.record.evictions += 1
        job.record.lost_gpu_s += (ran - kept) * job.gpus
        job.saved_s += kept
        job.domain = replace(job.domain, state=JobState.REQUEUED, placements=(),
                             started_at=None)
        if self.policy.las_thresholds:
            self._set_las_priority(job)
        self.live[job.trace.job_id] = job.domain
        self.waiting.add(job.trace.job_id, job.trace.project, job.gpus)

    # -- LAS ----------------------------------------------------------------------------------
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
        if not self.policy.las_thresholds or job.gpus <= 0:
            return
        for t in self.policy.las_thresholds:  # every level it will cross while it runs
            if t > job.attained_gpu_s:
                at = now + (t - job.attained_gpu_s) / job.gpus + 1e-6
                self._push(at, _WAKE, job.trace.job_id, job.epoch)

    # -- samples ------------------------------------------------------------------------------
    def _reference_shares(self, demand: dict[str, float]) -> dict[str, float]:
        """Each project's fair share of GPUs for this demand under the trace's quotas (the same
        water-filling as the core, GPUs only): the reference every policy is measured against,
        whether or not the policy itself uses quotas."""
        tree = self.project_tree
        milli = {p: round(g * GPU_UNIT) for p, g in demand.items()}
        depts = tree.children[ROOT]
        dept_demand = [sum(milli.get(k, 0) for k in tree.children[d]) for d in depts]
        total = min(self.capacity.gpu, sum(dept_demand))
        dept_share = divide(total, [_claimant(tree.queues[d], dd)
                                    for d, dd in zip(depts, dept_demand, strict=True)], GPU_UNIT)
        fair: dict[str, float] = {}
        for d, share in zip(depts, dept_share, strict=True):
            kids = [k for k in tree.children[d] if milli.get(k, 0) > 0]
            if not kids:
                continue
            split = divide(share, [_claimant(tree.queues[k], milli[k]) for k in kids], GPU_UNIT)
            fair.update((k, v / GPU_UNIT) for k, v in zip(kids, split, strict=True))
        return fair

    def _sample(self, now: float) -> None:
        if not self.record_samples:
            return
        allocated = {p: g for p, g in self.project_alloc.items() if g > 1e-9}
        demand = dict(allocated)
        for p, g in self.waiting.gpus_by_project():
            demand[p] = demand.get(p, 0.0) + g
        fair = self._reference_shares(demand)
        sample = Sample(now, allocated, demand, fair, sum(allocated.values()))
        samples = self.result.samples
        if samples and samples[-1].t == now:
            samples[-1] = sample
        else:
            samples.append(sample)


def _claimant(queue: Queue, demand_milli: int) -> Claimant:
    return Claimant(quota=queue.quota.gpu, demand=demand_milli, weight=queue.over_quota_weight,
                    priority=queue.priority)


def simulate(trace: Trace, policies: Iterable[Policy], cluster: ClusterSpec, *,
             checkpoint_s: float = DEFAULT_CHECKPOINT_S) -> dict[str, SimResult]:
    """Run each policy on the trace (independently, from an empty cluster)."""
    return {p.name: Simulation(trace, p, cluster, checkpoint_s=checkpoint_s).run()
            for p in policies}
