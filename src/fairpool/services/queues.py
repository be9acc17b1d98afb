"""Departments and projects: create, change quotas and limits, delete, and read their status.

A delete is soft: the row stays (``deleted_at`` set) for the finished jobs and the usage
history that name it, and is hidden from every listing, the scheduler and submits; a create of
the same name revives it with the new spec. Deleting and creating take the store's generation
row first, as every writer does, so a submit (which checks its project after its own bump)
and a delete are ordered: either the job is in and the delete is refused, or the project is
gone and the submit is."""

from __future__ import annotations

import time

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, load_only

from fairpool.domain import GPU_UNIT, Resources, WorkerRequest
from fairpool.domain.accounting import asked, held, reference_memory
from fairpool.domain.resources import CPU_UNIT
from fairpool.domain.states import HOLDING_VALUES, LIVE_VALUES, PENDING_VALUES
from fairpool.domain.words import plural
from fairpool.schemas.queues import (
    MAX_CPUS,
    MAX_GPUS,
    MAX_MEMORY_MIB,
    IdlePolicySpec,
    LimitSpec,
    ProjectCreate,
    QueueCreate,
    QueueOut,
    QueueUpdate,
    ResourcesOut,
    ResourceSpec,
)
from fairpool.services import audit, quota_tree
from fairpool.services.errors import Conflict, Invalid, NotFound
from fairpool.services.scopes import forget_paths
from fairpool.services.views import queue_out, resources_out
from fairpool.store.convert import placements, worker_request
from fairpool.store.db import Store
from fairpool.store.models import JobRow, NodeRow, QueueRow, RoleBindingRow, SecretRow

HOLDING, WAITING = "holding", "waiting"


def _units(spec: ResourceSpec) -> tuple[int, int, int]:
    return round(spec.gpus * GPU_UNIT), round(spec.cpus * CPU_UNIT), spec.memory_mib


def _limit_units(limit: LimitSpec) -> tuple[int | None, int | None, int | None]:
    """A limit in stored units; None where a resource has no limit: left out, null, or given
    at its maximum (what older clients send for "no limit on it")."""
    gpus, cpus, memory = limit.gpus, limit.cpus, limit.memory_mib
    return (None if gpus is None or gpus >= MAX_GPUS else round(gpus * GPU_UNIT),
            None if cpus is None or cpus >= MAX_CPUS else round(cpus * CPU_UNIT),
            None if memory is None or memory >= MAX_MEMORY_MIB else memory)


def _set(row: QueueRow, quota: ResourceSpec | None, limit: LimitSpec | None,
         unlimited: bool) -> None:
    if quota is not None:
        row.quota_gpu, row.quota_cpu, row.quota_memory = _units(quota)
    if unlimited:
        row.limit_gpu = row.limit_cpu = row.limit_memory = None
    elif limit is not None:  # the new limit replaces the old one whole
        row.limit_gpu, row.limit_cpu, row.limit_memory = _limit_units(limit)
    for what, q, lim in (("GPU", row.quota_gpu, row.limit_gpu), ("CPU", row.quota_cpu,
                                                                  row.limit_cpu),
                         ("memory", row.quota_memory, row.limit_memory)):
        if lim is not None and q > lim:
            raise Invalid(f"queue {row.name}: {what} quota is above its limit; "
                          f"raise the limit or lower the quota")


def _create(store: Store, spec: QueueCreate, kind: str, parent: str | None, actor: str,
            address: str) -> QueueOut:
    with store.writing() as s:
        Store.bump(s)  # the generation row first: a delete of the parent waits for this
        old = s.get(QueueRow, spec.name)
        if old is not None and old.deleted_at is None:
            raise Conflict(f"a queue named {spec.name} already exists; pick another name")
        if parent is not None:
            dept = s.get(QueueRow, parent)
            if dept is None or dept.kind != "department" or dept.deleted_at is not None:
                raise NotFound(f"department {parent} does not exist; create it first with "
                               f"`fairpool department create {parent}`")
        row = old if old is not None else QueueRow(name=spec.name)
        _fresh(row, kind, parent, spec)
        _set(row, spec.quota, spec.limit, unlimited=False)
        if old is None:
            s.add(row)
        quota_tree.check(s, row, spec.over_commit)
        if isinstance(spec, ProjectCreate):
            if spec.idle is not None:
                _set_idle(row, spec.idle)
            row.default_max_runtime_s = spec.default_max_runtime_s
            row.job_order = spec.job_order
        audit.record(s, actor, f"{kind}.create", spec.name, address=address,
                     detail=_summary(row) + ("" if old is None else
                                             "; revived a deleted queue of this name"))
    forget_paths(store)
    return queue_status(store, spec.name)


def _fresh(row: QueueRow, kind: str, parent: str | None, spec: QueueCreate) -> None:
    """A new queue's fields, also on the row of a deleted one of the same name (revived as
    if new: nothing of its old quota, limits, policies or published shares stays)."""
    row.parent, row.kind, row.deleted_at, row.created_at = parent, kind, None, time.time()
    row.over_quota_weight, row.priority = spec.over_quota_weight, spec.priority
    row.quota_gpu = row.quota_cpu = row.quota_memory = 0
    row.limit_gpu = row.limit_cpu = row.limit_memory = None
    row.fair_gpu = row.fair_cpu = row.fair_memory = None
    row.alloc_gpu = row.alloc_cpu = row.alloc_memory = None
    row.idle_action, row.idle_threshold, row.idle_after_s = "none", 0.05, 1800.0
    row.idle_stop_after_s = row.default_max_runtime_s = row.job_order = None


def _set_idle(row: QueueRow, idle: IdlePolicySpec) -> None:
    row.idle_action, row.idle_threshold = idle.action, idle.threshold
    row.idle_after_s, row.idle_stop_after_s = idle.after_s, idle.stop_after_s


def _summary(row: QueueRow) -> str:
    caps = [what for amount, what in (
        (row.limit_gpu, plural((row.limit_gpu or 0) / GPU_UNIT, "GPU")),
        (row.limit_cpu, plural((row.limit_cpu or 0) / CPU_UNIT, "CPU")),
        (row.limit_memory, f"{row.limit_memory} MiB"))
        if amount is not None]
    return (f"quota {plural(row.quota_gpu / GPU_UNIT, 'GPU')}, "
            f"{plural(row.quota_cpu / CPU_UNIT, 'CPU')}, "
            f"{row.quota_memory} MiB; limit {', '.join(caps) or 'none'}; weight "
            f"{row.over_quota_weight}; priority {row.priority}"
            + (f"; order {row.job_order or 'pool default'}" if row.kind == "project" else ""))


def create_department(store: Store, spec: QueueCreate, actor: str = "system",
                      address: str = "") -> QueueOut:
    return _create(store, spec, "department", None, actor, address)


def create_project(store: Store, spec: ProjectCreate, actor: str = "system",
                   address: str = "") -> QueueOut:
    return _create(store, spec, "project", spec.department, actor, address)


def update_queue(store: Store, name: str, spec: QueueUpdate, actor: str = "system",
                 address: str = "") -> QueueOut:
    with store.writing() as s:
        Store.bump(s)  # the generation row first, as every writer takes it (no lock cycles)
        row = s.get(QueueRow, name)
        if row is None or row.deleted_at is not None:
            raise NotFound(f"queue {name} does not exist")
        before = quota_tree.quotas(row)
        _set(row, spec.quota, spec.limit, spec.unlimited)
        if spec.quota is not None:
            quota_tree.check(s, row, spec.over_commit, before)
        if spec.over_quota_weight is not None:
            row.over_quota_weight = spec.over_quota_weight
        if spec.priority is not None:
            row.priority = spec.priority
        if (spec.idle is not None or spec.default_max_runtime_s is not None
                or spec.job_order is not None):
            if row.kind != "project":
                raise Invalid(f"{name} is a department; idle-GPU policies, max runtimes and "
                              "the order of waiting jobs are set per project")
            if spec.job_order is not None:
                row.job_order = None if spec.job_order == "default" else spec.job_order
            if spec.idle is not None:
                _set_idle(row, spec.idle)
            if spec.default_max_runtime_s is not None:
                row.default_max_runtime_s = spec.default_max_runtime_s or None
        audit.record(s, actor, "queue.update", name, detail=_summary(row), address=address)
    return queue_status(store, name)


#: live jobs a refused delete names (the rest are counted)
NAMED = 3


def delete_queue(store: Store, name: str, actor: str = "system", address: str = "") -> None:
    """Delete an empty project (no live job) or department (no project left), with its role
    bindings and secrets: a revived queue of the same name starts without them."""
    with store.writing() as s:
        delete_in(s, name, actor, address)


def delete_in(s: Session, name: str, actor: str, address: str) -> None:
    """:func:`delete_queue` in the caller's write transaction (that has not bumped yet)."""
    Store.bump(s)  # first: a submit that bumped before us has its job in, one after waits
    row = s.get(QueueRow, name)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"queue {name} does not exist")
    if row.kind == "department":
        children = sorted(s.execute(select(QueueRow.name).where(
            QueueRow.parent == name, QueueRow.deleted_at.is_(None))).scalars())
        if children:
            raise Conflict(f"department {name} still has {plural(len(children), 'project')} "
                           f"({', '.join(children)}); delete them first")
    else:
        live = s.execute(select(JobRow.id, JobRow.state).where(
            JobRow.project == name, JobRow.state.in_(LIVE_VALUES))
            .order_by(JobRow.submitted_at).limit(NAMED)).all()
        if live:
            count = s.execute(select(func.count()).select_from(JobRow).where(
                JobRow.project == name, JobRow.state.in_(LIVE_VALUES))).scalar_one()
            named = ", ".join(f"{job_id} {state}" for job_id, state in live)
            more = f" and {count - len(live)} more" if count > len(live) else ""
            raise Conflict(f"project {name} has {plural(count, 'live job')} ({named}{more}); "
                           f"cancel them (fairpool cancel) or wait for them to finish, then "
                           f"delete it")
    roles = len(s.execute(delete(RoleBindingRow).where(RoleBindingRow.scope == name)
                          .returning(RoleBindingRow.id)).all())
    secrets = len(s.execute(delete(SecretRow).where(SecretRow.project == name)
                            .returning(SecretRow.name)).all())
    row.deleted_at = time.time()
    audit.record(s, actor, "queue.delete", name, address=address,
                 detail=f"{row.kind}; removed {plural(roles, 'role binding')} and "
                        f"{plural(secrets, 'secret')}")


def _usage(s: Session) -> dict[tuple[str, str], tuple[Resources, int]]:
    """(project, holding|waiting) → (resources, jobs), counted as the scheduler counts them
    (:mod:`fairpool.domain.accounting`): a holding job what its placements hold, a waiting job
    what it asks for, GPU memory valued on the reference device (the cluster's largest)."""
    out: dict[tuple[str, str], tuple[Resources, int]] = {}

    def add(key: tuple[str, str], amount: Resources, jobs: int) -> None:
        prev, n = out.get(key, (Resources.ZERO, 0))
        out[key] = (prev + amount, n + jobs)

    ref = reference_memory(d["memory_mib"] for (devices,) in s.execute(select(NodeRow.devices))
                           for d in devices)
    # what waiting jobs ask for is linear in their workers: one sum per project and request
    shape = (JobRow.gpus, JobRow.gpu_fraction, JobRow.gpu_memory_mib, JobRow.cpu, JobRow.memory)
    for project, gpus, fraction, gmem, cpu, memory, workers, n in s.execute(
            select(JobRow.project, *shape, func.sum(JobRow.workers), func.count())
            .where(JobRow.state.in_(PENDING_VALUES)).group_by(JobRow.project, *shape)):
        request = WorkerRequest(gpus=gpus, gpu_fraction=fraction, gpu_memory_mib=gmem, cpu=cpu,
                                memory=memory)
        add((project, WAITING), asked(request, int(workers), ref), int(n))
    holding = (select(JobRow).options(load_only(JobRow.project, *shape, JobRow.placement))
               .where(JobRow.state.in_(HOLDING_VALUES)))
    for row in s.execute(holding).scalars():
        add((row.project, HOLDING), held(worker_request(row), placements(row)), 1)
    return out


def queue_status(store: Store, name: str) -> QueueOut:
    items = list_queues(store, only=name)
    if not items:
        raise NotFound(f"queue {name} does not exist")
    return items[0]


def list_queues(store: Store, only: str | None = None) -> list[QueueOut]:
    with store.session() as s:
        query = select(QueueRow).where(QueueRow.deleted_at.is_(None)).order_by(QueueRow.name)
        if only is not None:
            query = query.where(QueueRow.name == only)
        rows = s.execute(query).scalars().all()
        every = list(s.execute(select(QueueRow)).scalars())
        parents = {r.name: r.parent for r in every}
        children: dict[str, list[QueueRow]] = {}
        for r in every:
            if r.parent is not None and r.deleted_at is None:
                children.setdefault(r.parent, []).append(r)
        usage = _usage(s)
    totals: dict[tuple[str, str], tuple[Resources, int]] = {}
    for (project, kind), (amount, jobs) in usage.items():
        node: str | None = project
        while node is not None:  # a project's use counts for its department too
            prev, n = totals.get((node, kind), (Resources.ZERO, 0))
            totals[node, kind] = (prev + amount, n + jobs)
            node = parents.get(node)
    out = []
    nothing = (Resources.ZERO, 0)
    for row in rows:
        act, running = totals.get((row.name, HOLDING), nothing)
        wait, waiting = totals.get((row.name, WAITING), nothing)
        out.append(queue_out(
            row,
            fair_share=None if row.fair_gpu is None else resources_out(
                row.fair_gpu, row.fair_cpu or 0, row.fair_memory or 0),
            planned=None if row.alloc_gpu is None else resources_out(
                row.alloc_gpu, row.alloc_cpu or 0, row.alloc_memory or 0),
            allocated=resources_out(act.gpu, act.cpu, act.memory),
            pending=resources_out(wait.gpu, wait.cpu, wait.memory),
            running_jobs=running, pending_jobs=waiting,
            over_committed=_excess(row, children.get(row.name, [])),
        ))
    return out


def _excess(row: QueueRow, children: list[QueueRow]) -> ResourcesOut | None:
    if row.kind != "department":
        return None
    excess = quota_tree.over_committed(row, children)
    if not excess:
        return None
    return resources_out(excess.get("gpu", 0), excess.get("cpu", 0), excess.get("memory", 0))
