"""One scheduling cycle's working state: cluster capacity, queue accounting, job views, decisions.

The session is built from a :class:`~fairpool.scheduler.snapshot.Snapshot`; actions change it only
through :meth:`Session.bind` and :meth:`Session.evict` (devices through
:class:`~fairpool.scheduler.cluster_state.ClusterState`) and pending reasons only through
:meth:`Session.set_reason`, :meth:`Session.clear_reason` and :meth:`Session.set_group_reason`, all
of which log their inverse, so any statement can be rolled back exactly. Queue accounting is kept
for every level of the tree: a job counts against its project and every ancestor up to the
department.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any

from fairpool.domain.accounting import held_units, reference_memory
from fairpool.domain.job import Job, WorkerPlacement
from fairpool.domain.queue import InQueueOrder, QueueTree
from fairpool.domain.resources import GPU_UNIT, Resources
from fairpool.domain.states import HOLDING_STATES, PENDING_STATES
from fairpool.scheduler import service_levels as levels
from fairpool.scheduler import usage_share
from fairpool.scheduler.cluster_state import ClusterState
from fairpool.scheduler.codes import Action, PendingCode
from fairpool.scheduler.fair_share import fair_shares
from fairpool.scheduler.fragmentation import Fragmentation, workload_mix
from fairpool.scheduler.groups import Group, GroupKey, job_key
from fairpool.scheduler.plan import Bind, Eviction, PendingReason, PendingReasons, Plan
from fairpool.scheduler.service_levels import LEVEL_SPAN, Key
from fairpool.scheduler.snapshot import SchedulerConfig, Snapshot, Strategy
from fairpool.scheduler.statement import UndoLog

PENDING, RUNNING, BOUND, EVICTED = 0, 1, 2, 3
Vec = list[int]
Slot = tuple[int, tuple[int, ...]]
#: Quotas are GPU quotas for GPU jobs (GPU memory follows the GPUs); CPU and memory quotas
#: govern jobs without GPUs.
QUOTA_GPU = (0,)
QUOTA_HOST = (2, 3)


class JobView:
    """A job inside one session: its status there, where it sits and what it is accounted."""

    __slots__ = (
        "acct", "group", "idx", "job", "key", "leaf", "path", "placements", "rank", "shape",
        "slots", "status", "unit",
    )

    def __init__(self, job: Job, idx: int, leaf: int, path: tuple[int, ...]) -> None:
        self.job = job
        self.idx = idx
        self.leaf = leaf
        self.path = path
        self.status = PENDING
        self.placements: tuple[WorkerPlacement, ...] = ()
        self.slots: tuple[Slot, ...] = ()  # (node position, device positions) per worker
        self.acct: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.unit: tuple[int, int, int, int] = (0, 0, 0, 0)  # nominal per-worker request
        self.shape: Hashable | None = None
        self.group: Group | None = None  # its group while it waits (see fairpool.scheduler.groups)
        #: where it stands in its project (fairpool.scheduler.service_levels): who may preempt
        #: whom (rank) and the order waiting jobs are tried in (key)
        self.rank = job.priority * LEVEL_SPAN
        self.key: Key = (-self.rank, job.submit_time, job.id)


class UnknownProject(ValueError):
    pass


def accounted(job: Job, placements: Iterable[WorkerPlacement]) -> tuple[int, int, int, int]:
    """What ``job`` holds on ``placements`` (:func:`fairpool.domain.accounting.held`)."""
    return held_units(job.request, placements)


class Session:
    def __init__(self, snapshot: Snapshot, config: SchedulerConfig | None = None) -> None:
        self.snapshot = snapshot
        self.config = config or SchedulerConfig()
        self.now = snapshot.now
        self.log = UndoLog()
        self.cluster = ClusterState(snapshot.nodes, self.log)
        self.tree = QueueTree.build(snapshot.queues)
        names = list(self.tree.queues)
        self.queue_names = names
        self.q_index = {name: i for i, name in enumerate(names)}
        qs = [self.tree.queues[n] for n in names]
        self.q_quota = [q.quota.as_tuple() for q in qs]
        self.q_limit = [q.limit.as_tuple() for q in qs]
        self.q_priority = [q.priority for q in qs]
        self.q_order = [q.job_order or self.config.job_order for q in qs]
        self.order_preemptions = 0  # preemptions that enforced an in-queue order this cycle
        self.q_alloc: list[Vec] = [[0, 0, 0, 0] for _ in names]
        self.q_alloc_np: list[Vec] = [[0, 0, 0, 0] for _ in names]  # non-preemptible part
        self.paths = {n: tuple(self.q_index[p] for p in self.tree.path(n)) for n in names}
        self.search_budget = self.config.max_reclaim_attempts  # evict-to-fit searches left
        self.epoch = 0  # bumped whenever capacity is released (invalidates "cannot fit" caches)
        self.jobs: list[JobView] = []
        self.by_id: dict[str, JobView] = {}
        self.node_jobs: list[set[int]] = [set() for _ in snapshot.nodes]
        self.binds: dict[int, Bind] = {}
        self.evictions: dict[int, Eviction] = {}
        self._reasons: dict[int, PendingReason] = {}  # a job's own reason (over its group's)
        self.running: list[JobView] = []  # jobs holding resources when the cycle began
        self.scratch: dict[str, Any] = {}  # caches actions keep across the rounds of a cycle
        self._selector_keys: dict[int, Hashable] = {}
        #: waiting jobs in groups of interchangeable ones (see fairpool.scheduler.groups)
        self.groups: dict[GroupKey, Group] = {}
        self.leaf_groups: dict[int, list[Group]] = {}
        self.ref_memory = reference_memory(  # GPU-memory requests are valued on it
            d.memory_mib for n in snapshot.nodes for d in n.devices
        )
        self._load_jobs(snapshot.jobs)
        #: scores of fraction placements against this cycle's workload mix (None: not used)
        self.fragmentation = Fragmentation(workload_mix(
            (v.job for v in self.jobs), self.ref_memory,
        )) if self.config.strategy == Strategy.FRAGMENTATION else None
        self._index_groups()
        self._fair_share()

    @property
    def reasons(self) -> Mapping[int, PendingReason]:
        """Job index → the job's own pending reason (read only: see :meth:`set_reason`)."""
        return self._reasons

    # -- construction ------------------------------------------------------------------------
    def _load_jobs(self, jobs: Iterable[Job]) -> None:
        """One pass over the snapshot's jobs: views, device occupancy, accounting, and demand
        per leaf (allocated plus pending) for fair share. This is the hot path of a cycle on a
        large cluster, so it avoids building intermediate objects."""
        cluster = self.cluster
        node_index = cluster.node_index
        paths = self.paths
        nominal: dict[tuple[object, ...], tuple[int, int, int, int]] = {}
        ref = self.ref_memory
        views = self.jobs
        by_id = self.by_id
        node_jobs = self.node_jobs
        demand = self.leaf_demand = [[0, 0, 0, 0] for _ in self.queue_names]
        selector_keys = self._selector_keys
        groups = self.groups
        q_order = self.q_order
        for job in jobs:
            state = job.state
            active = state in HOLDING_STATES
            if not active and state not in PENDING_STATES:
                continue
            path = paths.get(job.project)
            if path is None or self.tree.children[job.project]:
                raise UnknownProject(f"job {job.id}: {job.project!r} is not a project (leaf queue)")
            idx = len(views)
            view = JobView(job, idx, path[-1], path)
            req = job.request
            rkey = (req.gpus, req.gpu_fraction, req.gpu_memory_mib, req.cpu, req.memory)
            unit = nominal.get(rkey)
            if unit is None:
                unit = nominal[rkey] = req.nominal(ref).as_tuple()
            view.unit = unit
            if by_id.setdefault(job.id, view) is not view:
                raise ValueError(f"job id {job.id} appears twice in the snapshot")
            views.append(view)
            d = demand[path[-1]]
            order = q_order[path[-1]]
            if order != InQueueOrder.PRIORITY:
                view.rank, view.key = levels.standing(job, order, active, self.now, self.config)
            if not active:
                w = job.workers
                d[0] += unit[0] * w
                d[1] += unit[1] * w
                d[2] += unit[2] * w
                d[3] += unit[3] * w
                sel = job.selector
                skey = selector_keys.get(id(sel))
                if skey is None:
                    skey = selector_keys[id(sel)] = sel.key()
                shape = view.shape = (rkey, w, job.same_node, job.spread, job.preemptible, skey)
                gkey = (path[-1], view.rank, shape)
                group = groups.get(gkey)
                if group is None:
                    group = groups[gkey] = Group(path[-1], view.rank, [view])
                else:
                    group.jobs.append(view)
                view.group = group
                continue
            slots = []
            for p in job.placements:
                n = node_index.get(p.node)
                if n is None:
                    raise ValueError(f"job {job.id} runs on unknown node {p.node}")
                devs = cluster.positions(n, p.devices)
                slots.append((n, devs))
                cluster._apply(n, devs, -p.share, -p.gpu_memory, -req.cpu, -req.memory)
                node_jobs[n].add(idx)
            acct = accounted(job, job.placements)
            view.slots = tuple(slots)
            self.running.append(view)
            view.status = RUNNING
            view.placements = job.placements
            view.acct = acct
            self._account(view, acct, 1)
            d[0] += acct[0]
            d[1] += acct[1]
            d[2] += acct[2]
            d[3] += acct[3]

    def _index_groups(self) -> None:
        for group in self.groups.values():
            if len(group.jobs) > 1:
                group.jobs.sort(key=job_key)
            self.leaf_groups.setdefault(group.leaf, []).append(group)

    def _fair_share(self) -> None:
        names = self.queue_names
        demand = {
            names[q]: Resources(*d) for q, d in enumerate(self.leaf_demand) if any(d)
        }
        capacity = Resources.ZERO
        for node in self.snapshot.nodes:
            if node.schedulable:
                capacity = capacity + node.capacity
        self.capacity = capacity
        factors = usage_share.factors_for(self.tree, self.config, self.snapshot.usage_gpu_s,
                                          capacity.gpu / GPU_UNIT)
        shares = fair_shares(self.tree, capacity, demand, factors)
        self.q_fs = [shares[n].as_tuple() for n in names]
        total = [sum(d[r] for d in self.leaf_demand) for r in range(4)]
        # resources whose demand exceeds capacity: the only ones reclaim looks at (GPU memory
        # follows the GPUs and is not judged on its own)
        self.contended = tuple(r for r in (0, 2, 3) if total[r] > capacity.as_tuple()[r])

    # -- accounting --------------------------------------------------------------------------
    def _account(self, view: JobView, acct: tuple[int, int, int, int], sign: int) -> None:
        np = not view.job.preemptible
        for q in view.path:
            a = self.q_alloc[q]
            a[0] += sign * acct[0]
            a[1] += sign * acct[1]
            a[2] += sign * acct[2]
            a[3] += sign * acct[3]
            if np:
                b = self.q_alloc_np[q]
                b[0] += sign * acct[0]
                b[1] += sign * acct[1]
                b[2] += sign * acct[2]
                b[3] += sign * acct[3]

    def request_total(self, view: JobView) -> tuple[int, int, int, int]:
        u = view.unit
        w = view.job.workers
        return (u[0] * w, u[1] * w, u[2] * w, u[3] * w)

    # -- decisions (logged) ------------------------------------------------------------------
    def bind(
        self,
        view: JobView,
        slots: tuple[Slot, ...],
        placements: tuple[WorkerPlacement, ...],
        action: Action,
        waits_for: tuple[str, ...] = (),
    ) -> None:
        """Record a bind for devices the caller has already occupied in the cluster state; the
        job's own pending reason goes (logged, like the rest)."""
        prev = (view.status, view.placements, view.acct, view.slots)
        view.status = BOUND
        view.placements = placements
        view.slots = slots
        view.acct = accounted(view.job, placements)
        self._account(view, view.acct, 1)
        nodes = {n for n, _ in slots}
        for n in nodes:
            self.node_jobs[n].add(view.idx)
        self.binds[view.idx] = Bind(view.job.id, placements, action, waits_for)
        self.log.push(self._unbind, view, prev, nodes)
        if view.idx in self._reasons:
            self.clear_reason(view)

    def _unbind(
        self,
        view: JobView,
        prev: tuple[int, tuple[WorkerPlacement, ...], tuple[int, int, int, int], tuple[Slot, ...]],
        nodes: set[int],
    ) -> None:
        self._account(view, view.acct, -1)
        for n in nodes:
            self.node_jobs[n].discard(view.idx)
        del self.binds[view.idx]
        view.status, view.placements, view.acct, view.slots = prev

    def holders(self) -> list[JobView]:
        """Jobs holding resources now: running before the cycle or placed in it."""
        out = [v for v in self.running if v.status == RUNNING or v.status == BOUND]
        out.extend(self.jobs[i] for i in self.binds if self.jobs[i].job.pending)
        return out

    def evictable(self, view: JobView) -> bool:
        """Holding resources in this session: running before the cycle, or placed in it."""
        return view.status == RUNNING or view.status == BOUND

    def evict(self, view: JobView, action: Action, reason: str, for_job: str | None) -> None:
        """Release a job's devices: a running job is evicted (recorded in the plan); a job placed
        earlier in this cycle loses that placement and waits again (nothing has started yet;
        a job moved in this cycle stays evicted)."""
        if view.status == BOUND:
            self._release(view)
            bind = self.binds.pop(view.idx)
            prev = (view.status, view.placements, view.acct, view.slots)
            view.status = EVICTED if view.idx in self.evictions else PENDING
            self.log.push(self._restore_bind, view, bind, prev)
            self.set_reason(view, PendingReason(
                PendingCode.DISPLACED,
                f"it was placed, then its room went to job {for_job} ({action})",
            ))
            return
        assert view.status == RUNNING, "only jobs running before this cycle can be evicted"
        nodes = self._release(view)
        view.status = EVICTED
        self._join_group(view)
        self.evictions[view.idx] = Eviction(view.job.id, action, reason, for_job)
        self.epoch += 1
        self.log.push(self._unevict, view, nodes)

    def _release(self, view: JobView) -> set[int]:
        """Give back a job's devices and accounting (devices logged; the caller logs the rest)."""
        cluster = self.cluster
        req = view.job.request
        nodes = set()
        for (n, devs), p in zip(view.slots, view.placements, strict=True):
            cluster.release(n, devs, p.share, p.gpu_memory, req.cpu, req.memory)
            nodes.add(n)
        self._account(view, view.acct, -1)
        for n in nodes:
            self.node_jobs[n].discard(view.idx)
        return nodes

    def _restore_bind(
        self,
        view: JobView,
        bind: Bind,
        prev: tuple[int, tuple[WorkerPlacement, ...], tuple[int, int, int, int], tuple[Slot, ...]],
    ) -> None:
        view.status, view.placements, view.acct, view.slots = prev
        self._account(view, view.acct, 1)
        for n, _ in view.slots:
            self.node_jobs[n].add(view.idx)
        self.binds[view.idx] = bind

    def _unevict(self, view: JobView, nodes: set[int]) -> None:
        self._account(view, view.acct, 1)
        for n in nodes:
            self.node_jobs[n].add(view.idx)
        view.status = RUNNING
        del self.evictions[view.idx]

    # -- pending reasons (logged) ------------------------------------------------------------
    def set_reason(self, view: JobView, reason: PendingReason) -> None:
        """Give the job its own reason to wait (it takes precedence over its group's)."""
        old = self._reasons.get(view.idx)
        if old is not reason:
            self._reasons[view.idx] = reason
            self.log.push(self._put_reason, view.idx, old)

    def clear_reason(self, view: JobView) -> None:
        """Drop the job's own reason (its group's, if any, applies again)."""
        old = self._reasons.pop(view.idx, None)
        if old is not None:
            self.log.push(self._put_reason, view.idx, old)

    def set_group_reason(self, group: Group, reason: PendingReason | None) -> None:
        """Give every waiting job of the group without a reason of its own this reason."""
        old = group.reason
        if old is not reason:
            group.reason = reason
            if self.log.open:  # (this runs once per group and action: skip the call if final)
                self.log.push(setattr, group, "reason", old)

    def _put_reason(self, idx: int, reason: PendingReason | None) -> None:
        if reason is None:
            del self._reasons[idx]
        else:
            self._reasons[idx] = reason

    # -- queries -----------------------------------------------------------------------------
    def within_limit(self, view: JobView, req: tuple[int, int, int, int]) -> int | None:
        """None if adding ``req`` keeps every level within its limit, else the queue index."""
        for q in view.path:
            a = self.q_alloc[q]
            lim = self.q_limit[q]
            if (a[0] + req[0] > lim[0] or a[1] + req[1] > lim[1] or a[2] + req[2] > lim[2]
                    or a[3] + req[3] > lim[3]):
                return q
        return None

    def within_quota(self, view: JobView, req: tuple[int, int, int, int],
                     non_preemptible_only: bool) -> int | None:
        """None if ``req`` fits under every level's quota (counting only non-preemptible use
        when asked), else the first queue index that it would exceed."""
        alloc = self.q_alloc_np if non_preemptible_only else self.q_alloc
        checked = QUOTA_GPU if req[0] else QUOTA_HOST
        for q in view.path:
            a = alloc[q]
            quota = self.q_quota[q]
            for r in checked:
                if a[r] + req[r] > quota[r]:
                    return q
        return None

    def share_ratio(self, q: int) -> float:
        """How full a queue is relative to its fair share, on its dominant resource."""
        a = self.q_alloc[q]
        fs = self.q_fs[q]
        ratio = 0.0
        for r in range(4):
            if a[r] <= 0:
                continue
            if fs[r] <= 0:
                return float("inf")
            x = a[r] / fs[r]
            if x > ratio:
                ratio = x
        return ratio

    def shape(self, view: JobView) -> Hashable:
        """What makes two jobs interchangeable for placement and queue rules."""
        if view.shape is not None:
            return view.shape
        job = view.job
        sel = job.selector
        key = self._selector_keys.get(id(sel))
        if key is None:
            key = self._selector_keys[id(sel)] = sel.key()
        r = job.request
        rkey = (r.gpus, r.gpu_fraction, r.gpu_memory_mib, r.cpu, r.memory)
        view.shape = (rkey, job.workers, job.same_node, job.spread, job.preemptible, key)
        return view.shape

    def _join_group(self, view: JobView) -> None:
        """A job evicted in this cycle waits again: it joins its group (kept in submit order)."""
        key = (view.leaf, view.rank, self.shape(view))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(view.leaf, view.rank, [view])
            self.leaf_groups.setdefault(view.leaf, []).append(group)
        elif view not in group.jobs:
            bisect.insort(group.jobs, view, key=job_key)
        view.group = group

    def free_gpu(self, view: JobView) -> int:
        """Free milli-GPUs on the nodes the job may use."""
        dom = self.cluster.domain(view.job.selector)
        partial = sum(f * len(devs) for f, devs in dom.partial.items())
        return dom.free_whole() * GPU_UNIT + partial

    def waiting(self) -> list[JobView]:
        """Jobs that want a place: pending ones, and those evicted earlier in this cycle (placing
        one of those again turns its eviction into a move)."""
        return [v for v in self.jobs if v.status == PENDING or v.status == EVICTED]

    def _index_of(self, job_id: str) -> int | None:
        view = self.by_id.get(job_id)
        return None if view is None else view.idx

    def _id_of(self, idx: int) -> str:
        return self.jobs[idx].job.id

    def _waits(self, idx: int) -> bool:
        return self.jobs[idx].status == PENDING

    def reason_of(self, view: JobView) -> PendingReason | None:
        """Why a job waits: its own reason, else its group's."""
        own = self._reasons.get(view.idx)
        if own is not None:
            return own
        return view.group.reason if view.group is not None else None

    def _reason_at(self, idx: int) -> PendingReason | None:
        view = self.jobs[idx]
        return self.reason_of(view) if view.status == PENDING else None

    def _waiting_with_reasons(self) -> Iterator[int]:
        for idx in self._reasons:
            if self.jobs[idx].status == PENDING:
                yield idx
        for group in self.groups.values():
            if group.reason is None:
                continue
            for view in group.jobs:
                if view.status == PENDING and view.idx not in self._reasons:
                    yield view.idx

    def to_plan(self) -> Plan:
        names = self.queue_names
        return Plan(
            binds=list(self.binds.values()),
            evictions=list(self.evictions.values()),
            pending=PendingReasons(self._reason_at, self._waiting_with_reasons,
                                   self._index_of, self._id_of),
            fair_shares={names[q]: Resources(*self.q_fs[q]) for q in range(len(names))},
            allocated={names[q]: Resources(*self.q_alloc[q]) for q in range(len(names))},
        )
